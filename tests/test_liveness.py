"""Liveness hint: the converted weights against the authors' outputs, the crop, the API, unsafe files."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from siamgui.core.errors import ImageError, ModelFileError
from siamgui.core.face import liveness
from siamgui.core.resources import resources_dir

sys.path.insert(0, str(REPO))
from bench import make_liveness, verify_liveness  # noqa: E402

MODELS = resources_dir() / "models"
FIXTURE = REPO / "tests" / "data" / "liveness_parity.npz"
SHARED_MODELS = REPO.parent / "shared" / "models"
SOURCE_SHA = {"2.7_80x80_MiniFASNetV2.pth": "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
              "4_0_0_80x80_MiniFASNetV1SE.pth": "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990"}


@pytest.fixture(scope="module")
def model():
    return liveness.get_model()


def test_bundled_weights_match_provenance(model):
    record = json.loads((MODELS / "PROVENANCE.json").read_text())[liveness.MODEL_FILE]
    assert hashlib.sha256((MODELS / liveness.MODEL_FILE).read_bytes()).hexdigest() == record["sha256"]
    assert "Apache License" in (MODELS / "LICENSE-silent-face.txt").read_text()
    specs = {s["variant"]: s for s in model.specs}
    assert specs["MiniFASNetV2"]["scale"] == 2.7 and specs["MiniFASNetV1SE"]["scale"] == 4.0
    assert all(s["input"] == [80, 80] for s in specs.values())
    assert {s["source_file"]: s["source_sha256"] for s in specs.values()} == SOURCE_SHA
    assert model.meta["channels"] == "BGR" and json.loads(model.meta["classes"]) == ["spoof", "real", "spoof"]


def test_networks_match_the_reference_forward_pass(model):
    ref = np.load(FIXTURE)
    x = verify_liveness.seeded_inputs(int(ref["seed"]))
    assert verify_liveness.digest(x) == str(ref["inputs_sha256"])  # the same inputs the reference saw
    assert [s["variant"] for s in model.specs] == list(ref["variants"])
    with torch.inference_mode():
        t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).float()
        ours = np.stack([torch.softmax(net(t), 1).numpy() for net in model.nets])
    assert np.abs(ours - ref["reference_softmax"]).max() < 1e-5
    assert ref["reference_softmax"].std() > 0.01  # the outputs differ between inputs: a real check


def test_crop_region_matches_the_reference():
    ref = np.load(FIXTURE)
    ours = [liveness.crop_region(tuple(size), tuple(box), float(scale))
            for size, box, scale in zip(ref["box_sizes"], ref["boxes"], ref["box_scales"])]
    assert np.array_equal(np.array(ours), ref["reference_regions"])


def test_crop_is_clipped_inside_the_image():
    assert liveness.crop_region((640, 480), (300, 200, 100, 100), 2.7) == (215, 115, 485, 385)
    left, top, right, bottom = liveness.crop_region((250, 250), (0, 0, 120, 120), 4.0)
    assert (left, top) == (0, 0) and right <= 249 and bottom <= 249
    patch = liveness.liveness_crop(np.zeros((250, 250, 3), np.uint8), (0, 0, 120, 120), 4.0)
    assert patch.shape == (80, 80, 3) and patch.dtype == np.uint8


def test_hint_api(model):
    from conftest import LFW_ROOT

    path = LFW_ROOT / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
    if path.is_file():
        from PIL import Image

        rgb = np.asarray(Image.open(path).convert("RGB"))
        box = (70, 70, 110, 125)
    else:
        rgb = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
        box = (100, 60, 100, 120)
    hint = liveness.liveness_hint(rgb, box)
    assert 0.0 <= hint.score_real <= 1.0 and hint.label in ("real", "spoof")
    assert "Silent-Face-Anti-Spoofing" in hint.source and "hint" in hint.message().lower()
    assert hint.to_dict()["label"] == hint.label
    same = liveness.liveness_hint(np.ascontiguousarray(rgb[:, :, ::-1]), box, bgr=True)
    assert same == hint
    probs = model.probabilities(np.ascontiguousarray(rgb[:, :, ::-1]), box)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1.0)
    assert hint.score_real == pytest.approx(probs[:, 1].mean())
    grey = liveness.liveness_hint(rgb[:, :, 0], box)
    assert grey.label in ("real", "spoof")


@pytest.mark.parametrize("box", [(0, 0, 0, 10), (500, 10, 20, 20), (-50, -50, 20, 20)])
def test_a_box_outside_the_image_is_refused(box):
    with pytest.raises(ImageError):
        liveness.liveness_hint(np.zeros((100, 100, 3), np.uint8), box)
    with pytest.raises(ImageError):
        liveness.liveness_hint(np.zeros((100, 100, 3), np.float32), (10, 10, 50, 50))


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch should-not-exist",))


def test_loading_refuses_a_pickle(tmp_path, monkeypatch):
    import pickle

    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "2.7_80x80_MiniFASNetV2.pth"
    torch.save({"module.conv1.conv.weight": _Evil()}, bad)
    with pytest.raises(pickle.UnpicklingError):
        make_liveness.read_pth(bad)
    assert not (tmp_path / "should-not-exist").exists()
    with pytest.raises(ModelFileError):  # the app reads safetensors only
        liveness.LivenessModel.load(bad)


def test_missing_or_foreign_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="missing"):
        liveness.LivenessModel.load(tmp_path / "none.safetensors")
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(ModelFileError, match="not a siamgui liveness model"):
        liveness.LivenessModel.load(other)


def test_file_names_give_scale_and_size():
    assert make_liveness.parse_name("2.7_80x80_MiniFASNetV2.pth") == (2.7, 80, 80, "MiniFASNetV2")
    assert make_liveness.parse_name("4_0_0_80x80_MiniFASNetV1SE.pth") == (4.0, 80, 80, "MiniFASNetV1SE")
    with pytest.raises(ValueError):
        make_liveness.parse_name("model.pth")


@pytest.mark.skipif(not (SHARED_MODELS / "2.7_80x80_MiniFASNetV2.pth").is_file(), reason="needs ../shared/models")
def test_converter_reproduces_the_bundled_tensors(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "liveness.safetensors"
    make_liveness.convert([SHARED_MODELS / n for n in SOURCE_SHA], out,
                          (SHARED_MODELS / "LICENSE-silent-face.txt").read_text())
    made, bundled = load_file(str(out)), load_file(str(MODELS / liveness.MODEL_FILE))
    assert made.keys() == bundled.keys() and all(torch.equal(made[k], bundled[k]) for k in made)
    assert "liveness.safetensors" in json.loads((tmp_path / "PROVENANCE.json").read_text())
    assert liveness.LivenessModel.load(out).specs == liveness.get_model().specs


def test_detector_boxes_are_mapped_to_the_authors_detector():
    box = (100.0, 80.0, 60.0, 80.0)
    assert liveness.reference_box(box, None) == box
    assert liveness.reference_box(box, "unknown") == box
    x, y, w, h = liveness.reference_box(box, "mtcnn")
    cal = liveness.REFERENCE_BOX["mtcnn"]
    assert (w, h) == pytest.approx((60 * cal["w"], 80 * cal["h"]))
    assert (x + w / 2, y + h / 2) == pytest.approx((130 + cal["dx"] * w, 120 + cal["dy"] * h))
    rgb = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    mapped = liveness.liveness_hint(rgb, box, detector="mtcnn")
    assert mapped == liveness.liveness_hint(rgb, liveness.reference_box(box, "mtcnn"))

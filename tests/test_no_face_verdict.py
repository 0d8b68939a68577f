"""No verdict without a face, and face quality in the CLI (issue #16).

The bundled face model on a drawn face (which its detector finds) and a plain gradient (no
face); an LFW photo too when ../shared is present.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from _gui_helpers import face_canvas, no_face
from conftest import LFW_ROOT, lfw_available

from siamgui.cli import main
from siamgui.core.gallery import Gallery
from siamgui.core.verifier import Verifier


@pytest.fixture(scope="module")
def face_verifier():
    return Verifier(None, device="cpu", precision="float32")


@pytest.fixture(scope="module")
def pics(tmp_path_factory):
    d = tmp_path_factory.mktemp("pics")
    out = {"face": d / "face.png", "face2": d / "face2.png", "gradient": d / "gradient.png", "sharp": d / "sharp.png"}
    cv2.imwrite(str(out["sharp"]), grainy(face_canvas((240, 240), [(0, 30, 30, 180)])))
    cv2.imwrite(str(out["face"]), face_canvas((240, 240), [(0, 30, 30, 180)]))
    cv2.imwrite(str(out["face2"]), face_canvas((260, 250), [(0, 50, 40, 180)]))
    cv2.imwrite(str(out["gradient"]), no_face(200))
    return out


def grainy(bgr: np.ndarray, sd: float = 6.0) -> np.ndarray:
    """A camera's grain on a drawn face: its sharpness then passes the quality check (drawn faces are soft)."""
    noise = np.random.default_rng(0).normal(0, sd, bgr.shape)
    return np.clip(bgr.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- the core rule -------------------------------------------------------------------------------------
def test_no_face_gives_no_verdict(face_verifier, pics):
    r = face_verifier.compare(pics["face"], pics["gradient"], threshold=1e9)
    assert r.missing_faces == ("B",) and r.same is None and not r.has_verdict
    assert np.isfinite(r.distance)  # still reported, for information
    r.apply_threshold(1e9)
    assert r.same is None, "a new threshold does not make a verdict"
    assert "image B" in r.no_face_message()
    both = face_verifier.compare(pics["gradient"], pics["gradient"])
    assert both.missing_faces == ("A", "B") and both.same is None
    best = face_verifier.compare(pics["gradient"], pics["face"], face_policy="best")
    assert best.missing_faces == ("A",) and best.same is None
    whole = face_verifier.compare(pics["face"], pics["gradient"], face_policy="whole", threshold=1e9)
    assert whole.missing_faces == () and whole.same is True
    ok = face_verifier.compare(pics["face"], pics["face2"])
    assert ok.missing_faces == () and ok.same == (ok.distance < ok.threshold)


def test_a_generic_model_always_gives_a_verdict(tiny_model, pics):
    r = Verifier(tiny_model, device="cpu").compare(pics["gradient"], pics["gradient"])
    assert r.missing_faces == () and r.same is True


def test_evaluate_keeps_the_lfw_convention(face_verifier, pics):
    """Evaluation's pair distances align a miss from the centre and count it (no refusal)."""
    d = face_verifier.pair_distances([(pics["face"], pics["gradient"])])
    want = face_verifier.compare(pics["face"], pics["gradient"]).distance
    assert d.shape == (1,) and d[0] == pytest.approx(want, abs=1e-5)


@pytest.mark.skipif(not lfw_available(), reason="LFW not in ../shared/data")
def test_a_real_face_against_no_face(face_verifier, pics):
    photo = LFW_ROOT / "George_W_Bush" / "George_W_Bush_0001.jpg"
    r = face_verifier.compare(photo, pics["gradient"])
    assert r.missing_faces == ("B",) and r.same is None
    assert face_verifier.compare(photo, LFW_ROOT / "George_W_Bush" / "George_W_Bush_0002.jpg").same is not None


SIGNATURES = LFW_ROOT.parent.parent / "signatures" / "test" / "w085_n05"


@pytest.mark.skipif(not SIGNATURES.is_dir(), reason="signatures not in ../shared/data")
def test_two_signatures_get_no_verdict_from_the_face_model(capsys):
    """The issue's case: two handwritten signatures compared with the bundled face model."""
    a, b = SIGNATURES / "m1.png", SIGNATURES / "m2.png"
    assert main(["compare", str(a), str(b), "--precision", "float32"]) == 2
    cap = capsys.readouterr()
    line = one_line(cap.err)
    assert "m1.png (image A) and" in line and "m2.png (image B)" in line and cap.out == ""


# -- the CLI ---------------------------------------------------------------------------------------------
def test_cli_compare_without_a_face_exits_2(pics, capsys):
    base = ["compare", str(pics["face"]), str(pics["gradient"]), "--precision", "float32"]
    for extra in ([], ["--json"]):
        assert main(base + extra) == 2
        cap = capsys.readouterr()
        line = one_line(cap.err)
        assert "gradient.png" in line and "image B" in line and "--face whole" in line
        assert "face.png (image A)" not in line and cap.out == ""
    assert main(base + ["--face", "whole", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["same"] in (True, False) and out["quality"] == [None, None]


def test_cli_compare_reports_quality(pics, tmp_path, capsys):
    blurred = tmp_path / "blurred.png"
    cv2.imwrite(str(blurred), cv2.GaussianBlur(cv2.imread(str(pics["face2"])), (0, 0), 6))
    assert main(["compare", str(pics["face"]), str(blurred), "--json", "--precision", "float32"]) == 0
    out = json.loads(capsys.readouterr().out)
    qa, qb = out["quality"]
    assert set(qa) >= {"sharpness", "inter_eye_px", "yaw", "brightness", "reasons", "verdict"}
    assert qb["sharpness"] < qa["sharpness"] and "blurred" in qb["reasons"] and qb["verdict"] == "poor"
    assert main(["compare", str(pics["face"]), str(blurred), "--precision", "float32"]) == 0
    text = capsys.readouterr().out
    assert "quality B poor: blurred" in text  # (the drawn face A is soft too)


def test_gallery_identify_claims_no_identity_without_a_face(face_verifier, pics, tmp_path, capsys):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.enroll(face_verifier, "ann", [pics["face"]])
        r = g.identify(face_verifier, pics["gradient"], threshold=1e9)
        assert r.no_face and r.best is None and r.candidates  # the ranking stays, for information
        whole = g.identify(face_verifier, pics["gradient"], threshold=1e9, face_policy="whole")
        assert not whole.no_face and whole.best == "ann"
        faces = g.identify_faces(face_verifier, pics["gradient"], threshold=1e9)
        assert faces.faces[0].label == "no face found" and faces.faces[0].result.best is None
        faces.apply_threshold(1e9)
        assert faces.faces[0].result.best is None
        assert g.identify(face_verifier, pics["face2"]).best == "ann"
    assert main(["gallery", "identify", str(pics["gradient"]), "--gallery", str(path), "--precision", "float32"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "gradient.png" in line and "--face whole" in line


def test_cli_gallery_add_refuses_poor_faces(pics, tmp_path, capsys):
    common = ["--gallery", str(tmp_path / "g.sqlite"), "--precision", "float32"]
    assert main(["gallery", "add", "ann", str(pics["face"]), *common]) == 2  # a soft drawn face: blurred
    line = one_line(capsys.readouterr().err)
    assert "face.png" in line and "poor" in line and "blurred" in line
    assert main(["gallery", "add", "ann", str(pics["gradient"]), *common]) == 2
    assert "no face detected" in one_line(capsys.readouterr().err)
    assert main(["gallery", "add", "ann", str(pics["sharp"]), str(pics["face"]), "--skip-bad", "--json", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["added"] == 1 and out["skipped"] == 1
    assert main(["gallery", "add", "ann", str(pics["face"]), "--allow-poor", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 1
    root = tmp_path / "people"
    (root / "bob").mkdir(parents=True)
    cv2.imwrite(str(root / "bob" / "soft.png"), cv2.imread(str(pics["face2"])))
    cv2.imwrite(str(root / "bob" / "sharp.png"), cv2.imread(str(pics["sharp"])))
    assert main(["gallery", "import", str(root), "--json", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["added"] == 1 and out["skipped"] == 1


def test_batch_rows_give_no_verdict_without_a_face(pics, tmp_path, capsys):
    """``compare --pairs`` follows the same rule: the distance for information, an empty verdict and the reason."""
    import csv

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"a,b\n{pics['face']},{pics['face2']}\n{pics['face']},{pics['gradient']}\n")
    out = tmp_path / "out.csv"
    assert main(["compare", "--device", "cpu", "--pairs", str(pairs), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["same"] in ("0", "1") and rows[0]["error"] == ""
    assert rows[1]["same"] == "" and rows[1]["distance"] != "" and "no face found" in rows[1]["error"]
    assert rows[1]["error"].endswith("in b")
    whole = tmp_path / "whole.csv"
    assert main(["compare", "--device", "cpu", "--face", "whole", "--pairs", str(pairs), "--out", str(whole)]) == 0
    assert all(r["same"] in ("0", "1") for r in csv.DictReader(whole.open()))
    capsys.readouterr()

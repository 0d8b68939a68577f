"""Every face of a photo: compare ``--face best`` and ``gallery identify --all-faces``.

Synthetic group pictures with a known answer: drawn faces (run everywhere, bundled
face model) and real LFW faces pasted onto one canvas (``lfw``, skipped without the data).
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from _gui_helpers import face_canvas, no_face
from conftest import LFW_ROOT, lfw_available

from siamgui.cli import main
from siamgui.core.face.multi import MAX_FACES, MIN_JUDGED_SIDE, face_issue
from siamgui.core.gallery import Gallery
from siamgui.core.verifier import Verifier


@pytest.fixture(scope="module")
def face_verifier():
    return Verifier(None, device="cpu", precision="float32")


def centre_in(box, region) -> bool:
    """Whether box (x, y, w, h)'s centre lies in region (x, y, side)."""
    x, y, side = region
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return x <= cx <= x + side and y <= cy <= y + side


def write(path, arr):
    cv2.imwrite(str(path), arr)
    return path


# -- the rule for a face too small or too poor to judge ---------------------------------------------
def test_face_issue_rule():
    from siamgui.cli import compare, gallery
    from siamgui.core.verifier import COMPARE_FACE_POLICIES

    assert gallery.MAX_FACES == MAX_FACES and compare.FACE_CHOICES == COMPARE_FACE_POLICIES  # the CLI's copies
    assert face_issue((10, 10, 80, 90), (200, 200)) is None
    assert "too small" in face_issue((10, 10, MIN_JUDGED_SIDE - 1, 80), (200, 200))
    assert face_issue((150, 10, 80, 80), (200, 200)) == "cut by the image border"


# -- compare --face best -----------------------------------------------------------------------------
def test_compare_best_finds_the_person_among_several(face_verifier, tmp_path, capsys, monkeypatch):
    v = face_verifier
    a = write(tmp_path / "a.png", face_canvas((260, 260), [(1, 40, 40, 180)]))
    # B: person 0 large (the main face), person 1 smaller, person 2 smaller still
    regions = [(20, 30, 220), (280, 60, 150), (460, 90, 120)]
    group = face_canvas((600, 280), [(0, *regions[0]), (1, *regions[1]), (2, *regions[2])])
    b = write(tmp_path / "group.png", group)

    main_face = v.compare(a, b)
    assert main_face.faces_used is None and main_face.face_distances is None
    assert main_face.faces[1].used_box is not None and centre_in(main_face.faces[1].used_box, regions[0])

    calls = []
    real = v.embed_prepared
    monkeypatch.setattr(v, "embed_prepared", lambda arrays, *a, **k: calls.append(len(arrays)) or real(arrays, *a, **k))
    v.cache.clear()
    best = v.compare(a, b, face_policy="best")
    assert calls == [4], "both images' faces are embedded in one batch"
    i, j = best.faces_used
    assert i == 0 and centre_in(best.face_boxes[1][j], regions[1])
    assert best.faces[1].used_box == tuple(best.face_boxes[1][j])
    assert len(best.face_distances) == 1 and len(best.face_distances[0]) == 3
    assert best.distance == pytest.approx(min(best.face_distances[0])) == best.face_distances[0][j]
    assert best.distance < 0.15 < main_face.distance
    assert any("best-matching" in n for n in best.notes)

    # the CLI: faces_used, every face's distance and the boxes in --json; the default keeps its keys
    assert main(["compare", str(a), str(b), "--face", "best", "--json", "--precision", "float32"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["faces_used"] == [0, j] and out["faces"] == [1, 3]
    assert out["face_distances"][0][j] == pytest.approx(out["distance"])
    assert len(out["face_boxes"][1]) == 3 and out["face_boxes"][1][j] == list(best.face_boxes[1][j])
    assert main(["compare", str(a), str(b), "--json", "--precision", "float32"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert set(default) == {"distance", "threshold", "same", "model", "device", "precision", "faces", "quality"}
    assert default["distance"] == pytest.approx(main_face.distance, abs=1e-5)
    assert main(["compare", str(a), str(b), "--face", "best", "--precision", "float32"]) == 0
    text = capsys.readouterr().out
    assert f"face B    {j + 1} of 3" in text


def test_one_face_each_gives_the_main_face_answer(face_verifier, tmp_path):
    a = write(tmp_path / "a.png", face_canvas((240, 240), [(2, 30, 30, 180)]))
    b = write(tmp_path / "b.png", face_canvas((300, 260), [(2, 70, 40, 190)]))
    best = face_verifier.compare(a, b, face_policy="best")
    assert best.faces_used == (0, 0)
    # the same face, found by a finer detector pyramid (smaller faces): a box a pixel or so apart
    assert best.distance == pytest.approx(face_verifier.compare(a, b).distance, abs=0.01)
    assert not best.notes


def test_no_face_gives_the_whole_image_answer(face_verifier, tmp_path):
    a = write(tmp_path / "noface.png", no_face(200))
    b = write(tmp_path / "group.png", face_canvas((500, 260), [(0, 20, 30, 200), (1, 280, 60, 150)]))
    best = face_verifier.compare(a, b, face_policy="best")
    main_face = face_verifier.compare(a, b)
    assert best.face_boxes[0] == [None] and best.faces_used[0] == 0
    assert best.faces[0].mode == main_face.faces[0].mode == "centre"
    assert any(n.startswith("Image A: No face") for n in best.notes)
    assert len(best.face_distances) == 1 and len(best.face_distances[0]) == 2


def test_a_crowd_is_capped(face_verifier, monkeypatch):
    side, cols, rows = 100, 10, 5
    crowd = face_canvas((cols * side, rows * side),
                        [((r + c) % 4, c * side + 4, r * side + 4, side - 8) for r in range(rows) for c in range(cols)])
    calls = []
    real = face_verifier.embed_prepared
    monkeypatch.setattr(face_verifier, "embed_prepared",
                        lambda arrays, *a, **k: calls.append(len(arrays)) or real(arrays, *a, **k))
    a = face_verifier.analyse_faces(crowd, bgr=True)
    assert len(a.faces) == MAX_FACES and a.info.found > MAX_FACES
    assert calls == [len(a.rows)] and len(a.rows) <= MAX_FACES
    assert f"Only the {MAX_FACES} largest of {a.info.found} faces are used" in a.info.message()


# -- gallery identify --all-faces ----------------------------------------------------------------------
@pytest.fixture
def drawn_gallery(face_verifier, tmp_path):
    path = tmp_path / "people.sqlite"
    with Gallery(path) as g:
        for k, name in enumerate(("ann", "bob", "cid")):
            g.enroll(face_verifier, name, [face_canvas((240, 240), [(k, 30, 30, 180)])], bgr=True)
    return path


def test_identify_all_faces_labels_every_face(face_verifier, drawn_gallery, tmp_path, capsys):
    # ann (large), cid, a stranger (person 3) and a face too small to judge
    regions = [(10, 20, 230), (260, 60, 170), (450, 80, 150), (620, 120, 50)]
    probe = face_canvas((700, 280), [(0, *regions[0]), (2, *regions[1]), (3, *regions[2]), (1, *regions[3])])
    with Gallery(drawn_gallery) as g:
        res = g.identify_faces(face_verifier, probe, bgr=True, threshold=0.2)
        single = g.identify(face_verifier, probe, bgr=True, threshold=0.2)
    assert single.best == "cid"  # the main face: of faces of similar size, the one nearest the centre
    assert len(res.faces) == 4
    areas = [f.box[2] * f.box[3] for f in res.faces]
    assert areas == sorted(areas, reverse=True), "largest first"
    assert [f.label for f in res.faces[:3]] == ["ann", "cid", "Unknown"]
    for f, region in zip(res.faces, regions):
        assert centre_in(f.box, region)
    assert res.faces[2].result.candidates[0].name != "Unknown" and res.faces[2].result.best is None
    tiny = res.faces[3]
    assert tiny.result is None and "too small" in tiny.issue and tiny.label == tiny.issue
    assert res.primary is res.faces[0].result
    assert any("too small" in n for n in res.notes)
    # the threshold moves every verdict, not the rankings
    res.apply_threshold(10.0)
    assert [f.label for f in res.faces[:3]] == ["ann", "cid", res.faces[2].result.candidates[0].name]

    # the CLI: one result per face, with its box
    path = write(tmp_path / "probe.png", probe)
    args = ["gallery", "identify", str(path), "--gallery", str(drawn_gallery), "--all-faces", "--threshold", "0.2",
            "--precision", "float32"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["best"] for f in out["faces"]] == ["ann", "cid", None, None]
    assert out["faces"][3]["issue"].startswith("too small") and out["faces"][3]["distance"] is None
    assert out["faces"][0]["box"] == list(res.faces[0].box) and out["faces_found"] == 4
    assert all(len(f["candidates"]) == 3 for f in out["faces"][:3])
    assert main(args) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("face 1  box [") and "  ann  " in text[0]
    assert "not judged: too small" in text[3] and text[-1].startswith("threshold 0.2000")


def test_identify_all_faces_without_a_face_and_bad_input(face_verifier, drawn_gallery, tmp_path, capsys):
    with Gallery(drawn_gallery) as g:
        res = g.identify_faces(face_verifier, no_face(200))
        single = g.identify(face_verifier, no_face(200))
    assert len(res.faces) == 1 and res.faces[0].box is None
    assert res.faces[0].result.distance == pytest.approx(single.distance, abs=1e-5)
    assert res.notes and "No face" in res.notes[0]
    # --all-faces with --face whole: exit 2, one line
    path = write(tmp_path / "x.png", no_face(100))
    assert main(["gallery", "identify", str(path), "--gallery", str(drawn_gallery), "--all-faces",
                 "--face", "whole"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--all-faces" in err
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert main(["compare", str(bad), str(path), "--face", "best"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_not_a_face_model(tiny_model, shapes_dir, tmp_path):
    """A generic model: --face best and --all-faces give the usual single answer."""
    v = Verifier(tiny_model, device="cpu")
    cls = sorted(p for p in shapes_dir.iterdir() if p.is_dir())
    a, b = sorted(cls[0].iterdir())[0], sorted(cls[1].iterdir())[0]
    best = v.compare(a, b, face_policy="best")
    assert best.distance == pytest.approx(v.compare(a, b).distance, abs=1e-6) and best.faces_used == (0, 0)
    with Gallery(tmp_path / "g.sqlite") as g:
        g.enroll(v, "zero", [a])
        res = g.identify_faces(v, a)
    assert len(res.faces) == 1 and res.faces[0].box is None and res.faces[0].label == "zero" and not res.notes


# -- real faces (LFW) pasted onto one canvas ---------------------------------------------------------------
def lfw_face(name: str, n: int) -> np.ndarray:
    """The central 170 px of an LFW photo (BGR): its labelled face, roughly centred."""
    img = cv2.imread(str(LFW_ROOT / name / f"{name}_{n:04d}.jpg"))
    return img[40:210, 40:210]


def lfw_canvas(people) -> tuple[np.ndarray, list]:
    """``people`` = ((name, n, side), ...) pasted left to right; returns the canvas and the regions."""
    width = sum(side for _, _, side in people) + 20 * (len(people) + 1)
    canvas = np.full((max(side for _, _, side in people) + 40, width, 3), 128, np.uint8)
    regions, x = [], 20
    for name, n, side in people:
        canvas[20:20 + side, x:x + side] = cv2.resize(lfw_face(name, n), (side, side), interpolation=cv2.INTER_AREA)
        regions.append((x, 20, side))
        x += side + 20
    return canvas, regions


@pytest.mark.lfw
def test_lfw_compare_best_and_identify_all_faces(face_verifier, tmp_path):
    if not lfw_available():
        pytest.skip("LFW is not in ../shared/data/lfw")
    v = face_verifier
    # Powell is the main face (of faces at least half its area, the most central: none here)
    group, regions = lfw_canvas([("Colin_Powell", 1, 240), ("Tony_Blair", 1, 150), ("Serena_Williams", 1, 140)])
    group_path = write(tmp_path / "group.png", group)
    blair = LFW_ROOT / "Tony_Blair" / "Tony_Blair_0002.jpg"
    main_face = v.compare(blair, group_path)
    assert not main_face.same and centre_in(main_face.faces[1].used_box, regions[0])
    best = v.compare(blair, group_path, face_policy="best")
    assert best.same and centre_in(best.face_boxes[1][best.faces_used[1]], regions[1])

    with Gallery(tmp_path / "g.sqlite") as g:
        for name in ("Colin_Powell", "Tony_Blair", "Serena_Williams"):
            g.enroll(v, name, [LFW_ROOT / name / f"{name}_{n:04d}.jpg" for n in (2, 3)])
        res = g.identify_faces(v, group_path)
    named = {f.label: f.box for f in res.faces if f.result is not None and f.result.best is not None}
    for name, region in zip(("Colin_Powell", "Tony_Blair", "Serena_Williams"), regions):
        assert name in named and centre_in(named[name], region), (name, [(f.box, f.label) for f in res.faces])

"""MTCNN detector: the bundled weights, NMS against a hand loop, faces on LFW photos, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import LFW_ROOT, lfw_available
from siamgui.core.face import mtcnn
from siamgui.core.errors import ModelFileError
from siamgui.core.resources import resources_dir

MODELS = resources_dir() / "models"


@pytest.fixture(scope="module")
def detector():
    return mtcnn.get_detector(MODELS / "mtcnn.safetensors")


def test_bundled_weights_match_provenance():
    import hashlib

    record = json.loads((MODELS / "PROVENANCE.json").read_text())["mtcnn.safetensors"]
    assert hashlib.sha256((MODELS / "mtcnn.safetensors").read_bytes()).hexdigest() == record["sha256"]
    assert "MIT" in (MODELS / "LICENSE-mtcnn.txt").read_text()


def _nms_by_hand(boxes, scores, threshold, use_min, one=1.0):
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        ok = True
        for j in keep:
            w = max(0.0, min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0]) + one)
            h = max(0.0, min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1]) + one)
            ai = (boxes[i][2] - boxes[i][0] + one) * (boxes[i][3] - boxes[i][1] + one)
            aj = (boxes[j][2] - boxes[j][0] + one) * (boxes[j][3] - boxes[j][1] + one)
            o = w * h / (min(ai, aj) if use_min else ai + aj - w * h)
            if o > threshold:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize("matrix_max", [1000, 0], ids=["overlap-matrix", "row-by-row"])
@pytest.mark.parametrize("method,plus_one", [("union", True), ("min", True), ("union", False)])
def test_nms_matches_a_hand_loop(method, plus_one, matrix_max, monkeypatch):
    monkeypatch.setattr(mtcnn, "_NMS_MATRIX_MAX", matrix_max)  # both ways of computing it
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 80, (60, 2))
    wh = rng.uniform(5, 40, (60, 2))
    boxes = np.column_stack([xy, xy + wh])
    scores = rng.permutation(60).astype(np.float64) / 60  # distinct: no ties to break
    for t in (0.3, 0.5, 0.7):
        got = mtcnn._nms(boxes, scores, t, method, plus_one)
        expect = _nms_by_hand(boxes.tolist(), scores.tolist(), t, method == "min", 1.0 if plus_one else 0.0)
        assert list(got) == expect
        assert t > 0.5 or len(expect) < len(boxes)  # the test boxes do overlap


def _reference_crops(rgb: np.ndarray, boxes: np.ndarray, size: int):
    """facenet-pytorch's way: each box's in-image part through F.interpolate(mode="area")."""
    import torch
    import torch.nn.functional as F

    img = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float()
    h, w = rgb.shape[:2]
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x1, y1 = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    x2, y2 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    crops = [F.interpolate(img[:, :, y1[k] - 1:y2[k], x1[k] - 1:x2[k]], size=(size, size), mode="area")
             for k in range(len(b))]
    return (torch.cat(crops) - 127.5) * 0.0078125


@pytest.mark.parametrize("shape", [(250, 250), (480, 640), (37, 91), (300, 200)])
def test_resizes_from_the_summed_area_table_equal_f_interpolate(shape):
    import torch

    rng = np.random.default_rng(sum(shape))
    h, w = shape
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    x1, y1 = rng.uniform(-40, w, 300), rng.uniform(-40, h, 300)
    side = rng.uniform(3, 1.5 * max(h, w), 300)
    boxes = np.column_stack([x1, y1, x1 + side, y1 + side * rng.uniform(0.8, 1.2, 300)]).astype(np.float32)
    boxes = boxes[mtcnn.MTCNN._valid(boxes, w, h)]  # the cascade crops only these
    assert len(boxes) > 100
    table = mtcnn.MTCNN._integral(rgb)
    for size in (24, 48):
        got = mtcnn.MTCNN._crops(table, (h, w), boxes, size)
        want = _reference_crops(rgb, boxes, size)
        assert got.shape == want.shape and torch.equal(got, want)  # bit for bit
    # the P-Net pyramid: the whole image at each scale, as F.interpolate(mode="area") gives it
    import torch.nn.functional as F

    img = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float()
    zero = np.zeros(1, np.int64)
    for s in (0.6, 0.6 * 0.709, 0.6 * 0.709 ** 4, 0.13):
        size = (int(h * s + 1), int(w * s + 1))
        got = mtcnn.MTCNN._area(table, w, zero, zero, np.array([h]), np.array([w]), *size)
        assert torch.equal(got, F.interpolate(img, size=size, mode="area"))


def test_no_face_in_flat_noise_or_tiny_images(detector):
    rng = np.random.default_rng(0)
    assert len(detector.detect(np.full((120, 160, 3), 128, np.uint8))) == 0
    assert len(detector.detect(rng.integers(0, 256, (8, 300, 3), dtype=np.uint8))) == 0  # under 12 px
    assert len(detector.detect(rng.integers(0, 256, (90, 90), dtype=np.uint8))) == 0  # grey input accepted


def test_damaged_or_foreign_detector_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}     ")
    with pytest.raises(ModelFileError, match="could not be read"):
        mtcnn.MTCNN.load(bad)
    from safetensors.torch import save_file
    import torch

    other = tmp_path / "other.safetensors"
    save_file({"pnet.conv1.weight": torch.zeros(3, 3)}, str(other))
    with pytest.raises(ModelFileError, match="does not hold MTCNN"):
        mtcnn.MTCNN.load(other)


@pytest.mark.lfw
def test_finds_the_face_and_its_landmarks_on_lfw_photos(detector):
    if not lfw_available():
        pytest.skip("needs the shared LFW data")
    from PIL import Image

    for name in ("George_W_Bush/George_W_Bush_0001.jpg", "Colin_Powell/Colin_Powell_0001.jpg"):
        rgb = np.asarray(Image.open(LFW_ROOT / name).convert("RGB"))
        found = detector.detect(rgb, min_face=30)
        assert len(found) >= 1 and found.scores[0] > 0.95
        # LFW frames the labelled face in the middle of a 250x250 image
        centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
        k = int(np.argmin(np.abs(centres - 125).sum(1)))
        x1, y1, x2, y2 = found.boxes[k]
        assert abs((x1 + x2) / 2 - 125) < 25 and abs((y1 + y2) / 2 - 125) < 30 and 60 < x2 - x1 < 160
        eyes, nose, mouth = found.points[k][:2], found.points[k][2], found.points[k][3:]
        assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]  # left-to-right in the image
        assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()  # eyes above the nose above the mouth
        assert (found.points[k][:, 0] > x1).all() and (found.points[k][:, 0] < x2).all()


@pytest.mark.lfw
def test_aligner_with_mtcnn_matches_the_haar_route_on_an_easy_face():
    """Both detectors only start dlib's landmark model; on a clear frontal face the chips agree."""
    if not lfw_available():
        pytest.skip("needs the shared LFW data")
    from PIL import Image

    from siamgui.core.face.aligners import get_aligner

    img = Image.open(LFW_ROOT / "Colin_Powell/Colin_Powell_0001.jpg").convert("RGB")
    aligner = get_aligner("dlib5")
    chip_m, info_m = aligner(img, {"detector": "mtcnn", "refine": 1}, "largest", 150)
    chip_h, info_h = aligner(img, {"detector": "haar", "refine": 1}, "largest", 150)
    assert info_m.mode == info_h.mode == "face" and info_m.count >= 1
    assert np.abs(np.array(info_m.landmarks) - np.array(info_h.landmarks)).max() < 3.0
    diff = np.abs(np.asarray(chip_m, np.int16) - np.asarray(chip_h, np.int16))
    assert diff.mean() < 12


def test_unknown_detector_is_a_model_error():
    from PIL import Image

    from siamgui.core.face.aligners import get_aligner

    with pytest.raises(ModelFileError, match="Unknown face detector"):
        get_aligner("dlib5")(Image.new("RGB", (80, 80)), {"detector": "yolo"}, "largest", 150)


def test_the_detector_runs_on_the_encoders_device(monkeypatch):
    from PIL import Image

    from siamgui.core.resources import has_bundled_model
    from siamgui.core.verifier import Verifier

    if not has_bundled_model():
        pytest.skip("needs the bundled model")
    seen = []
    real = mtcnn.get_detector
    monkeypatch.setattr(mtcnn, "get_detector", lambda path, device="cpu": seen.append(str(device)) or real(path, device))
    v = Verifier(None, device="cpu")
    v.preprocessor.spec.face["detector"] = "mtcnn"  # the bundled model's is YuNet (run by OpenCV)
    v.prepare(Image.new("RGB", (64, 64), (120, 110, 100)))
    assert seen and set(seen) == {str(v.device)}


@pytest.mark.lfw
def test_large_photos_are_searched_on_a_reduced_copy_in_full_size_coordinates(monkeypatch):
    if not lfw_available():
        pytest.skip("needs the shared LFW data")
    from PIL import Image

    from siamgui.core.face import alignment

    img = Image.open(LFW_ROOT / "Colin_Powell/Colin_Powell_0001.jpg").convert("RGB")
    small = alignment.detect_faces_mtcnn(np.asarray(img), {})
    big = np.asarray(img.resize((2000, 2000), Image.BICUBIC))
    seen = []
    real = mtcnn.MTCNN.detect
    monkeypatch.setattr(mtcnn.MTCNN, "detect", lambda self, rgb, min_face=20: seen.append(rgb.shape) or real(self, rgb, min_face))
    large = alignment.detect_faces_mtcnn(big, {})
    from siamgui.core.face.detect import DETECT_MAX_SIDE

    assert seen == [(DETECT_MAX_SIDE, DETECT_MAX_SIDE, 3)]
    (x, y, w, h), _ = small[0]
    (bx, by, bw, bh), _ = large[0]
    k = 2000 / 250
    assert abs(bx - k * x) < 0.08 * k * w and abs(by - k * y) < 0.08 * k * h and abs(bw / (k * w) - 1) < 0.1


@pytest.mark.lfw
def test_camera_preview_boxes_come_from_the_same_detector():
    if not lfw_available():
        pytest.skip("needs the shared LFW data")
    from PIL import Image

    from siamgui.core.face import alignment
    from siamgui.gui.camera_view import preview_faces

    face = np.asarray(Image.open(LFW_ROOT / "Colin_Powell/Colin_Powell_0001.jpg").convert("RGB"))
    frame_rgb = np.full((480, 640, 3), 90, np.uint8)
    frame_rgb[110:360, 300:550] = face
    boxes = preview_faces(np.ascontiguousarray(frame_rgb[:, :, ::-1]))  # the worker gets BGR frames
    from siamgui.core.modelfile import bundled_face_config

    cfg = bundled_face_config()
    expect = alignment.face_boxes(frame_rgb, cfg)
    assert boxes == expect and len(boxes) >= 1
    x, y, w, h = boxes[0]
    assert 300 < x + w / 2 < 550 and 110 < y + h / 2 < 360

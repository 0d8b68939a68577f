"""YuNet face detector: the bundled file, a drawn face, model files asking for it, bad files, threads."""

from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pytest

from conftest import LFW_ROOT, lfw_available
from siamgui.core.errors import ModelFileError
from siamgui.core.resources import resources_dir

MODELS = resources_dir() / "models"
YUNET = MODELS / "yunet_s_640_640.onnx"


def _need_yunet():
    if not YUNET.is_file():
        pytest.skip(f"the YuNet model file {YUNET.name} is not in this checkout")
    import cv2

    if not hasattr(cv2, "FaceDetectorYN"):
        pytest.skip("this OpenCV has no FaceDetectorYN")


def drawn_face(size: int = 240, skin=(225, 180, 150)) -> np.ndarray:
    """A flat cartoon face (hair, eyes with brows, nose, lips, neck) that YuNet scores about 0.9."""
    import cv2

    img = np.zeros((size, size, 3), np.uint8)
    img[:] = (70, 90, 110)
    s = size / 240.0

    def p(x, y):
        return int(round(x * s)), int(round(y * s))

    cv2.rectangle(img, p(95, 190), p(145, 240), tuple(int(c * 0.85) for c in skin), -1)
    cv2.ellipse(img, p(120, 120), p(60, 78), 0, 0, 360, skin, -1)
    cv2.ellipse(img, p(120, 62), p(66, 40), 0, 180, 360, (50, 35, 25), -1)
    for x in (97, 143):
        cv2.ellipse(img, p(x, 108), p(12, 6), 0, 0, 360, (245, 245, 245), -1)
        cv2.circle(img, p(x, 108), max(1, int(5 * s)), (50, 35, 25), -1)
        cv2.line(img, p(x - 14, 92), p(x + 12, 90), (60, 40, 30), max(1, int(4 * s)))
    cv2.ellipse(img, p(120, 140), p(9, 5), 0, 0, 360, tuple(int(c * 0.7) for c in skin), -1)
    cv2.ellipse(img, p(120, 163), p(20, 7), 0, 0, 360, (170, 70, 70), -1)
    return cv2.GaussianBlur(img, (0, 0), 3 * s)


def test_bundled_file_matches_provenance_and_licence():
    _need_yunet()
    record = json.loads((MODELS / "PROVENANCE.json").read_text())[YUNET.name]
    data = YUNET.read_bytes()
    assert hashlib.sha256(data).hexdigest() == record["sha256"] and len(data) == record["bytes"]
    assert "Apache" in record["licence"]
    assert "Apache License" in (MODELS / "LICENSE-yunet.txt").read_text()


def test_finds_a_drawn_face_with_its_points():
    _need_yunet()
    from siamgui.core.face import yunet

    boxes, scores, points = yunet.detect(drawn_face(), YUNET)
    assert len(scores) == 1 and scores[0] > 0.6
    x, y, w, h = boxes[0]
    assert abs(x + w / 2 - 120) < 15 and 80 < h < 200
    eyes, nose, mouth = points[0][:2], points[0][2], points[0][3:]
    assert eyes[0, 0] < 120 < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]  # left-to-right in the image
    assert np.abs(eyes - [[97, 108], [143, 108]]).max() < 12
    assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()


def test_no_face_in_flat_or_noisy_images_and_grey_input_is_accepted():
    _need_yunet()
    from siamgui.core.face import yunet

    rng = np.random.default_rng(0)
    assert len(yunet.detect(np.full((120, 160, 3), 128, np.uint8), YUNET)[1]) == 0
    assert len(yunet.detect(rng.integers(0, 256, (90, 90), dtype=np.uint8), YUNET)[1]) == 0
    grey = np.ascontiguousarray(drawn_face()[:, :, 1])
    assert len(yunet.detect(grey, YUNET, 0.3)[1]) == 1


def test_large_images_are_searched_reduced_in_full_size_coordinates():
    _need_yunet()
    import cv2

    from siamgui.core.face import yunet

    small_boxes, _, small_points = yunet.detect(drawn_face(), YUNET)
    boxes, _, points = yunet.detect(cv2.resize(drawn_face(), (1600, 1600), interpolation=cv2.INTER_CUBIC), YUNET)
    assert len(small_boxes) == len(boxes) == 1
    side = small_boxes[0][2:].max()
    assert np.abs(boxes[0] / (1600 / 240) - small_boxes[0]).max() < 0.1 * side
    assert np.abs(points[0] / (1600 / 240) - small_points[0]).max() < 0.1 * side


def test_rows_that_are_not_faces_are_dropped(monkeypatch):
    """OpenCV's detector has returned a row of infinities on a tiny image; such rows never reach the caller."""
    _need_yunet()
    from siamgui.core.face import yunet

    good = [10, 12, 20, 24] + [15, 20, 25, 20, 20, 26, 16, 30, 24, 30] + [0.9]
    rows = np.array([good, [np.inf] * 15, [10, 12, 0, 24] + good[4:], [500, 12, 20, 24] + good[4:],
                     good[:14] + [np.nan]], np.float32)

    class Stub:
        def setInputSize(self, size):
            pass

        def setScoreThreshold(self, t):
            pass

        def detect(self, img):
            return 1, rows

    monkeypatch.setattr(yunet, "get_detector", lambda path: Stub())
    boxes, scores, points = yunet.detect(np.zeros((64, 64, 3), np.uint8), YUNET)
    assert boxes.tolist() == [[10, 12, 20, 24]] and scores.tolist() == pytest.approx([0.9])
    assert points.shape == (1, 5, 2)


def test_missing_or_damaged_model_file_is_a_model_error(tmp_path):
    _need_yunet()
    from siamgui.core.face import yunet

    with pytest.raises(ModelFileError, match="missing"):
        yunet.detect(drawn_face(), tmp_path / "absent.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file at all")
    with pytest.raises(ModelFileError, match="could not be loaded"):
        yunet.detect(drawn_face(), bad)


def test_one_detector_per_thread_gives_the_same_faces():
    _need_yunet()
    from siamgui.core.face import yunet

    images = [drawn_face(size) for size in (160, 240, 320, 400)]
    expect = [yunet.detect(img, YUNET)[0] for img in images]
    got, errors, objects = {}, [], set()

    def work(i):
        try:
            for _ in range(3):
                for j, img in enumerate(images):
                    got[(i, j)] = yunet.detect(img, YUNET)[0]
            objects.add(id(yunet.get_detector(YUNET)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(objects) == 3
    for (i, j), boxes in got.items():
        assert np.array_equal(boxes, expect[j])


def test_relaxed_pass_finds_a_weak_face(monkeypatch):
    """A face under the first pass's score threshold is found by the relaxed second pass."""
    _need_yunet()
    from PIL import Image

    from siamgui.core.face import yunet
    from siamgui.core.face.aligners import get_aligner

    img = Image.fromarray(drawn_face())
    score = float(yunet.detect(np.asarray(img), YUNET)[1][0])
    monkeypatch.setattr(yunet, "SCORE_THRESHOLD", min(0.99, score + 0.02))
    monkeypatch.setattr(yunet, "RELAXED_SCORE_THRESHOLD", score - 0.1)
    _, info = get_aligner("dlib5")(img, {"detector": "yunet", "refine": 1}, "largest", 150)
    assert info.relaxed and info.mode == "face" and info.count == 1


def _face_model(path, face: dict):
    import torch

    from siamgui.core.modelfile import make_meta, save_model
    from siamgui.core.models import SiameseNetwork, build_encoder
    from siamgui.core.preprocess import preset_spec

    torch.manual_seed(0)
    spec = preset_spec("face", 32)
    spec.face.update(face)
    kwargs = {"in_channels": 3, "width": 8, "embedding_dim": 16}
    net = SiameseNetwork(build_encoder("compact-cnn", **kwargs)).eval()
    save_model(path, net, make_meta(architecture={"name": "compact-cnn", "kwargs": kwargs}, preprocess=spec,
                                    threshold=0.5, name="yunet test"))
    return path


def test_a_model_file_asking_for_yunet_aligns_a_face(tmp_path):
    _need_yunet()
    from PIL import Image

    from siamgui.core.verifier import Verifier

    v = Verifier(str(_face_model(tmp_path / "m.safetensors", {"detector": "yunet"})), device="cpu")
    assert v.loaded.spec.face["detector"] == "yunet"
    arr, info = v.prepare(Image.fromarray(drawn_face()))
    assert arr.shape == (32, 32, 3) and info.mode == "face" and info.count == 1 and not info.relaxed
    x, y, w, h = info.used_box
    assert abs(x + w / 2 - 120) < 15
    assert len(info.landmarks) == 5


def test_yunet_points_can_seed_the_landmarks_and_nothing_else():
    _need_yunet()
    from PIL import Image

    from siamgui.core.face.aligners import get_aligner

    img = Image.fromarray(drawn_face())
    aligner = get_aligner("dlib5")
    _, boxed = aligner(img, {"detector": "yunet", "refine": 1}, "largest", 150)
    _, seeded = aligner(img, {"detector": "yunet", "yunet_points": "seed", "refine": 0}, "largest", 150)
    assert seeded.mode == "face" and np.abs(np.array(seeded.landmarks) - np.array(boxed.landmarks)).max() < 8
    with pytest.raises(ModelFileError, match="Unknown use of YuNet's points 'chip'"):
        aligner(img, {"detector": "yunet", "yunet_points": "chip"}, "largest", 150)


def test_unknown_detector_in_a_model_file_is_a_model_error(tmp_path):
    from safetensors.torch import load_file, save_file

    from siamgui.core.modelfile import load_model, read_metadata

    path = _face_model(tmp_path / "ok.safetensors", {"detector": "yunet"})
    meta = read_metadata(path)
    meta["preprocess"]["face"]["detector"] = "yolo"
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), metadata={"siamgui": json.dumps(meta)})
    with pytest.raises(ModelFileError, match="unknown face detector 'yolo'"):
        load_model(bad)


@pytest.mark.lfw
def test_yunet_and_mtcnn_give_the_same_landmarks_on_an_lfw_face():
    """Both detectors only start dlib's landmark model; on a clear frontal face the results agree."""
    _need_yunet()
    if not lfw_available():
        pytest.skip("needs the shared LFW data")
    from PIL import Image

    from siamgui.core.face.aligners import get_aligner

    img = Image.open(LFW_ROOT / "Colin_Powell/Colin_Powell_0001.jpg").convert("RGB")
    aligner = get_aligner("dlib5")
    chip_y, info_y = aligner(img, {"detector": "yunet", "refine": 1}, "largest", 150)
    chip_m, info_m = aligner(img, {"detector": "mtcnn", "refine": 1}, "largest", 150)
    assert info_y.mode == info_m.mode == "face" and info_y.count >= 1
    assert np.abs(np.array(info_y.landmarks) - np.array(info_m.landmarks)).max() < 2.0
    diff = np.abs(np.asarray(chip_y, np.int16) - np.asarray(chip_m, np.int16))
    assert diff.mean() < 8

"""Face quality measures on drawn faces (blur, size, pose, exposure) and the camera's frame picker."""

from __future__ import annotations

import math

import numpy as np
import pytest

from siamgui.core.face import quality as Q
from siamgui.core.face.detect import FaceInfo
from siamgui.core.face.landmarks import CHIP_TEMPLATE_5


def drawn_face(side: int = 160, image: int = 256, seed: int = 0):
    """A face-like drawing (side lighting, fine skin-like texture) and dlib's 5 landmarks on it
    (a face square of ``side`` px)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((image, image, 3), 120, np.float32)
    x0 = y0 = (image - side) / 2
    cv2.ellipse(img, (image // 2, int(y0 + 0.5 * side)), (int(0.6 * side), int(0.75 * side)), 0, 0, 360,
                (170, 130, 110), -1)
    img += np.linspace(-45, 45, image, dtype=np.float32)[None, :, None]
    # the fine detail a sharp photo has and a blurred one loses
    texture = cv2.GaussianBlur(rng.normal(0, 1, (image, image)).astype(np.float32), (0, 0), side / 160)
    img += (texture / texture.std() * 10)[:, :, None]
    pts = CHIP_TEMPLATE_5 * side + (x0, y0)
    for (ax, ay), (bx, by) in ((pts[0], pts[1]), (pts[2], pts[3])):
        cv2.line(img, (int(ax), int(ay)), (int(bx), int(by)), (30, 20, 20), max(1, side // 40))
    cv2.circle(img, (int(pts[4][0]), int(pts[4][1])), max(1, side // 30), (60, 40, 40), -1)
    cv2.line(img, (int(x0 + 0.3 * side), int(y0 + 0.85 * side)), (int(x0 + 0.7 * side), int(y0 + 0.85 * side)),
             (80, 30, 30), max(1, side // 50))
    return np.clip(img, 0, 255).astype(np.uint8), pts


def rotation(yaw=0.0, pitch=0.0, roll=0.0) -> np.ndarray:
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def projected(yaw=0.0, pitch=0.0, roll=0.0, scale=1.5, at=(128.0, 128.0)) -> np.ndarray:
    """The generic face turned by these angles (face_pose's signs), seen from far (orthographic)."""
    return (Q.FACE_MODEL_3D @ rotation(-yaw, pitch, roll).T)[:, :2] * scale + at


def test_a_sharp_drawn_face_is_good():
    img, pts = drawn_face()
    q = Q.assess_face(img, pts)
    assert q.good, q.reasons
    assert q.verdict == "good" and q.message() == "Face quality: good."
    assert abs(q.roll) < 1 and abs(q.yaw) < 1 and abs(q.pitch) < 1
    assert q.inter_eye_px == pytest.approx(Q.TEMPLATE_INTER_EYE * 160, rel=1e-6)


def test_blur_lowers_sharpness_and_is_named():
    import cv2

    img, pts = drawn_face()
    sharp = Q.assess_face(img, pts)
    values = [Q.assess_face(cv2.GaussianBlur(img, (0, 0), s), pts).sharpness for s in (1.0, 2.0, 4.0)]
    assert sharp.sharpness > values[0] > values[1] > values[2]
    blurred = Q.assess_face(cv2.GaussianBlur(img, (0, 0), 6.0), pts)  # 3 px where it is measured
    assert "blurred" in blurred.reasons and not blurred.good
    assert "Face quality: poor (blurred" in blurred.message()


def test_a_tiny_face_is_too_small_but_not_called_blurred():
    import cv2

    img, pts = drawn_face(side=160)
    small = cv2.resize(img, (24, 24), interpolation=cv2.INTER_AREA)
    q = Q.assess_face(small, pts * 24 / 256)
    assert q.inter_eye_px < 10
    assert any(r.startswith("face too small") for r in q.reasons)
    assert "blurred" not in q.reasons  # measured at its own resolution, not enlarged
    large = Q.assess_face(img, pts)
    assert large.inter_eye_px > 4 * q.inter_eye_px and not any(r.startswith("face too small") for r in large.reasons)


@pytest.mark.parametrize("angles", [(20, 0, 0), (-35, 0, 0), (0, 15, 0), (0, -20, 0), (0, 0, 30), (25, 10, -40)])
def test_pose_is_recovered_from_projected_landmarks(angles):
    yaw, pitch, roll = Q.face_pose(projected(*angles))
    assert (yaw, pitch, roll) == pytest.approx(angles, abs=0.01)


def test_pose_signs():
    pts = projected(yaw=30)
    assert Q.face_pose(pts)[0] > 0 and pts[4, 0] > pts[:4, 0].mean()  # nose towards the image's right
    pts = projected(pitch=20)
    down = pts[4, 1] - pts[[0, 2], 1].mean()  # the nose, in front of the outer eye corners, drops
    assert Q.face_pose(pts)[1] > 0 and down > projected()[4, 1] - projected()[[0, 2], 1].mean()
    _, _, roll = Q.face_pose(projected(roll=20))
    pts = projected(roll=20)
    assert roll > 0 and pts[0, 1] > pts[2, 1]  # clockwise: the image-right eye is lower


def test_rotated_and_sideways_landmarks_are_named():
    img, pts = drawn_face()
    centre = pts.mean(0)
    a = math.radians(60)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    rolled = Q.assess_face(img, (pts - centre) @ rot.T + centre)
    assert rolled.roll == pytest.approx(60, abs=0.5) and "head tilted" in rolled.reasons
    sideways = Q.assess_face(img, projected(yaw=60, at=tuple(centre)))
    assert abs(sideways.yaw) == pytest.approx(60, abs=0.5) and "face turned sideways" in sideways.reasons
    nodding = Q.assess_face(img, projected(pitch=45, at=tuple(centre)))
    assert "face tilted up or down" in nodding.reasons


def test_dark_and_overexposed_faces():
    img, pts = drawn_face()
    dark = Q.assess_face((img * 0.1).astype(np.uint8), pts)
    assert dark.brightness < 20 and "too dark" in dark.reasons
    bright = Q.assess_face(np.clip(img.astype(np.float32) * 4, 0, 255).astype(np.uint8), pts)
    assert bright.brightness > 230 and bright.clipped > 0.5
    assert "too bright" in bright.reasons and "over- or underexposed" in bright.reasons
    normal = Q.assess_face(img, pts)
    assert 60 < normal.brightness < 200 and normal.clipped < 0.05


def test_box_only_and_face_info():
    img, pts = drawn_face()
    q = Q.assess_face(img, box=(48, 48, 160, 160))
    assert q.yaw is None and q.pitch is None and q.roll is None
    assert q.inter_eye_px == pytest.approx(Q.TEMPLATE_INTER_EYE * 160)
    info = FaceInfo(boxes=[(48, 48, 160, 160)], used_box=(48, 48, 160, 160), mode="face",
                    landmarks=[tuple(p) for p in pts])
    assert Q.assess(img, info).good
    missed = FaceInfo(mode="centre", landmarks=[tuple(p) for p in pts])
    assert Q.assess(img, missed).reasons[0] == "no face detected"
    assert Q.assess(img, FaceInfo(mode="whole")) is None and Q.assess(img, None) is None
    d = q.to_dict()
    assert d["verdict"] == "good" and d["reasons"] == [] and set(d) >= {"sharpness", "inter_eye_px", "yaw", "clipped"}
    with pytest.raises(ValueError):
        Q.assess_face(img)


def test_thresholds_decide_the_verdict():
    img, pts = drawn_face()
    strict = Q.QualityThresholds(min_inter_eye_px=500)
    assert not Q.assess_face(img, pts, thresholds=strict).good
    assert Q.assess_face(img, pts).good


def test_a_flat_region_has_zero_sharpness_and_edge_faces_do_not_fail():
    flat = np.full((100, 100, 3), 128, np.uint8)
    q = Q.assess_face(flat, box=(10, 10, 80, 80))
    assert q.sharpness == 0.0 and "blurred" in q.reasons
    q = Q.assess_face(flat, box=(-500, -500, 20, 20))  # outside the image: still an answer
    assert q.sharpness == 0.0


def _q(sharp: float, good: bool = True) -> Q.FaceQuality:
    return Q.FaceQuality(sharp, 40.0, 0.0, 0.0, 0.0, 120.0, 0.0, () if good else ("blurred",))


def test_best_frame_prefers_good_then_sharp_within_the_window():
    entries = [(0.0, _q(0.9)), (9.2, _q(0.3)), (9.5, _q(0.5, good=False)), (9.7, None), (9.9, _q(0.2))]
    assert Q.best_frame(entries, now=10.0) == 1  # the sharpest good one of the last second
    assert Q.best_frame(entries, now=10.0, window=0.2) == 4
    assert Q.best_frame(entries, now=20.0) is None
    assert Q.best_frame([(1.0, None)], now=1.0) is None
    assert Q.best_frame([(1.0, _q(0.1, good=False)), (1.1, _q(0.05, good=False))], now=1.5) == 0
    assert Q.best_frame([(1.0, _q(0.3)), (1.1, _q(0.3))], now=1.5) == 1  # a tie: the newer


def test_recent_frames_keeps_one_second():
    buf = Q.RecentFrames(window=1.0)
    assert buf.best(0.0) is None
    buf.add(0.0, "f0", _q(0.9))
    buf.add(0.5, "f1", _q(0.2))
    buf.add(1.4, "f2", None)
    assert [e[1] for e in buf.entries] == ["f1", "f2"]
    frame, q = buf.best(1.4)
    assert frame == "f1" and q.sharpness == 0.2



@pytest.fixture(scope="module")
def face_verifier():
    from siamgui.core.resources import bundled_model_path
    from siamgui.core.verifier import Verifier

    return Verifier(bundled_model_path(), device="cpu")


@pytest.mark.lfw
def test_lfw_face_is_good_and_its_blurred_copy_is_refused_at_enrolment(face_verifier, tmp_path):
    import cv2

    from PIL import Image

    from conftest import LFW_ROOT, lfw_available
    from siamgui.core.errors import GalleryError, ImageError
    from siamgui.core.gallery import Gallery

    if not lfw_available():
        pytest.skip("needs the shared LFW data")
    path = LFW_ROOT / "George_W_Bush" / "George_W_Bush_0001.jpg"
    _, info = face_verifier.prepare(path)
    q = Q.assess_source(path, info)
    assert q.good, q.reasons
    rgb = np.asarray(Image.open(path).convert("RGB"))
    blurred = cv2.GaussianBlur(rgb, (0, 0), 4.0)
    with Gallery(tmp_path / "g.sqlite") as g:
        with pytest.raises(GalleryError, match="blurred"):
            g.enroll(face_verifier, "gwb", [blurred], min_quality=Q.DEFAULT_THRESHOLDS, skip_bad=True)
        with pytest.raises(ImageError, match="Face quality: poor"):
            g.enroll(face_verifier, "gwb", [blurred], min_quality=Q.DEFAULT_THRESHOLDS)
        assert g.enroll(face_verifier, "gwb", [path], min_quality=Q.DEFAULT_THRESHOLDS).added == 1
        assert g.enroll(face_verifier, "gwb", [blurred]).added == 1  # told to accept it (the default)
    folder = tmp_path / "people" / "gwb"
    folder.mkdir(parents=True)
    Image.fromarray(rgb).save(folder / "sharp.png")
    Image.fromarray(blurred).save(folder / "blurred.png")
    with Gallery(tmp_path / "g2.sqlite") as g:
        res = g.import_folder(face_verifier, tmp_path / "people", min_quality=Q.DEFAULT_THRESHOLDS)
        assert res.added == 1 and [name for name, _ in res.skipped] == ["blurred.png"]


@pytest.mark.lfw
def test_a_preview_box_gives_the_same_quality_as_the_aligner(face_verifier):
    from PIL import Image

    from conftest import LFW_ROOT, lfw_available

    if not lfw_available():
        pytest.skip("needs the shared LFW data")
    path = LFW_ROOT / "George_W_Bush" / "George_W_Bush_0002.jpg"
    rgb = np.asarray(Image.open(path).convert("RGB"))
    _, info = face_verifier.prepare(rgb)
    from siamgui.core.face.alignment import detect_any

    box = detect_any(rgb, face_verifier.loaded.spec.face)[0][0]
    q = Q.assess_detection(np.ascontiguousarray(rgb[:, :, ::-1]), box, face_verifier.loaded.spec.face, bgr=True)
    assert q == Q.assess(rgb, info)

"""Face quality: is this face sharp, large, frontal and well exposed enough to compare?

A blurred, tiny, dark or sideways face still gives an embedding, and a confident-looking
distance that means little. :func:`assess_face` measures, from the image and the 5 landmarks
of dlib's predictor (:mod:`siamgui.core.face.landmarks`: right eye outer and inner corner,
left eye outer and inner corner, bottom of the nose):

- ``sharpness``: variance of the Laplacian of the face's grey values divided by their
  variance (so it does not depend on contrast), on the central part of dlib's face square
  shrunk to at most :data:`MEASURE_SIDE` pixels (the scale the face model sees; never
  enlarged, so a small face is not called blurred for being small);
- ``inter_eye_px``: distance between the eye centres in the image's pixels;
- ``yaw``, ``pitch``, ``roll`` in degrees: the rotation that best maps a generic 3-D face's
  five points onto the landmarks (:func:`face_pose`); roll is exact, yaw approximate, pitch
  rough (five points barely constrain it);
- ``brightness`` (mean grey 0..255) and ``clipped`` (fraction of pixels at or below
  :data:`DARK_CLIP` or at or above :data:`BRIGHT_CLIP`) on the same region.

The verdict compares them with :class:`QualityThresholds`; the defaults were chosen from
measurements on LFW (``bench/quality_lfw.py``; figures and reasoning in docs/quality.md).
Pure NumPy/OpenCV and no network: cheap enough for every preview frame.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from siamgui.core.face.landmarks import CHIP_TEMPLATE_5, similarity_transform

#: The measured region is shrunk to at most this many pixels a side.
MEASURE_SIDE = 80
#: The measured region: this fraction of dlib's face square (brows to chin), centred.
REGION_FRACTION = 0.8
DARK_CLIP, BRIGHT_CLIP = 5, 250
#: Distance between the eye centres of the landmark template, as a fraction of the face square.
TEMPLATE_INTER_EYE = float(np.linalg.norm(CHIP_TEMPLATE_5[0:2].mean(0) - CHIP_TEMPLATE_5[2:4].mean(0)))

#: A generic face's five points in millimetres (x to the image's right, y down, z away from
#: the camera): the template's layout scaled to a 90 mm outer-eye span, the inner eye corners
#: 10 mm and the bottom of the nose 12 mm nearer the camera than the outer corners.
_SPAN_MM = 90.0
_DEPTH_MM = np.array([0.0, -10.0, 0.0, -10.0, -12.0])
FACE_MODEL_3D = np.column_stack([
    (CHIP_TEMPLATE_5 - CHIP_TEMPLATE_5[:4].mean(0)) * _SPAN_MM / (CHIP_TEMPLATE_5[0, 0] - CHIP_TEMPLATE_5[2, 0]),
    _DEPTH_MM,
])


@dataclass(frozen=True)
class QualityThresholds:
    """The limits a good face stays within (docs/quality.md says how they were chosen)."""

    min_sharpness: float = 0.015
    min_inter_eye_px: float = 10.0
    max_yaw: float = 35.0
    max_pitch: float = 30.0
    max_roll: float = 50.0
    min_brightness: float = 20.0
    max_brightness: float = 200.0
    max_clipped: float = 0.03


DEFAULT_THRESHOLDS = QualityThresholds()


@dataclass(frozen=True)
class FaceQuality:
    sharpness: float
    inter_eye_px: float
    #: Degrees; None when the face has no landmarks (only a box).
    yaw: float | None
    pitch: float | None
    roll: float | None
    brightness: float
    clipped: float
    #: Plain-word reasons the face is poor; empty when it is good.
    reasons: tuple[str, ...] = field(default=())

    @property
    def good(self) -> bool:
        return not self.reasons

    @property
    def verdict(self) -> str:
        return "good" if self.good else "poor"

    def message(self) -> str:
        if self.good:
            return "Face quality: good."
        return "Face quality: poor (" + "; ".join(self.reasons) + ")."

    def to_dict(self) -> dict:
        d = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        d["reasons"] = list(self.reasons)
        d["verdict"] = self.verdict
        return d


def face_pose(landmarks) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from dlib's 5 landmarks.

    The rotation of :data:`FACE_MODEL_3D` that best fits them under a scaled orthographic
    camera (POS: least-squares 2x3 projection, rows made orthonormal). Signs: yaw > 0 when
    the nose points to the image's right, pitch > 0 when the face looks down, roll > 0 when
    the face is turned clockwise in the image.
    """
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    model = FACE_MODEL_3D - FACE_MODEL_3D.mean(0)
    proj = np.linalg.solve(model.T @ model, model.T @ (pts - pts.mean(0))).T  # (2, 3) = s * R[:2]
    r1 = proj[0] / (np.linalg.norm(proj[0]) or 1.0)
    r2 = proj[1] - (proj[1] @ r1) * r1
    r2 /= np.linalg.norm(r2) or 1.0
    r = np.array([r1, r2, np.cross(r1, r2)])
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return -yaw, pitch, roll


def face_square(landmarks=None, box=None) -> tuple[float, float, float]:
    """Centre (x, y) and side of dlib's face square: from the landmarks (the similarity that
    maps the template onto them), else the box (x, y, w, h) taken as that square."""
    if landmarks is not None:
        m, t = similarity_transform(CHIP_TEMPLATE_5, np.asarray(landmarks, np.float64))
        cx, cy = m @ np.array([0.5, 0.5]) + t
        return float(cx), float(cy), float(math.sqrt(abs(np.linalg.det(m))))
    x, y, w, h = (float(v) for v in box)
    return x + w / 2, y + h / 2, max(w, h)


def measure_region(rgb: np.ndarray, centre_x: float, centre_y: float, side: float) -> np.ndarray:
    """The grey (float32) central part of the face square, shrunk to at most :data:`MEASURE_SIDE`."""
    from siamgui.core.face.detect import _import_cv2

    cv2 = _import_cv2()
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    half = side * REGION_FRACTION / 2
    h, w = grey.shape[:2]
    x0, x1 = max(0, int(round(centre_x - half))), min(w, int(round(centre_x + half)))
    y0, y1 = max(0, int(round(centre_y - half))), min(h, int(round(centre_y + half)))
    region = grey[y0:y1, x0:x1]
    if region.shape[0] < 3 or region.shape[1] < 3:
        return np.zeros((3, 3), np.float32)
    longest = max(region.shape[:2])
    if longest > MEASURE_SIDE:
        k = MEASURE_SIDE / longest
        size = (max(3, int(round(region.shape[1] * k))), max(3, int(round(region.shape[0] * k))))
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    return region.astype(np.float32)


def sharpness(region: np.ndarray) -> float:
    """Variance of the Laplacian over the variance of the values (0 for a flat region)."""
    from siamgui.core.face.detect import _import_cv2

    cv2 = _import_cv2()
    spread = float(region.var())
    if spread < 1e-6:
        return 0.0
    lap = cv2.Laplacian(region, cv2.CV_32F, ksize=1)[1:-1, 1:-1]
    return float(lap.var()) / spread


def exposure(region: np.ndarray) -> tuple[float, float]:
    """Mean grey value and the fraction of clipped (near black or near white) pixels."""
    clipped = np.count_nonzero((region <= DARK_CLIP) | (region >= BRIGHT_CLIP)) / max(1, region.size)
    return float(region.mean()), float(clipped)


def judge(q: dict, t: QualityThresholds) -> tuple[str, ...]:
    """The reasons, in plain words, that measures ``q`` fail thresholds ``t``."""
    reasons = []
    if q["sharpness"] < t.min_sharpness:
        reasons.append("blurred")
    if q["inter_eye_px"] < t.min_inter_eye_px:
        reasons.append(f"face too small ({q['inter_eye_px']:.0f} px between the eyes, "
                       f"{t.min_inter_eye_px:.0f} needed)")
    if q["yaw"] is not None and abs(q["yaw"]) > t.max_yaw:
        reasons.append("face turned sideways")
    if q["pitch"] is not None and abs(q["pitch"]) > t.max_pitch:
        reasons.append("face tilted up or down")
    if q["roll"] is not None and abs(q["roll"]) > t.max_roll:
        reasons.append("head tilted")
    if q["brightness"] < t.min_brightness:
        reasons.append("too dark")
    elif q["brightness"] > t.max_brightness:
        reasons.append("too bright")
    if q["clipped"] > t.max_clipped:
        reasons.append("over- or underexposed")
    return tuple(reasons)


def assess_face(image, landmarks=None, box=None, thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> FaceQuality:
    """The quality of one face in ``image`` (RGB or grey uint8 array, or PIL image), given
    dlib's 5 ``landmarks`` (preferred) or else its ``box`` (x, y, w, h)."""
    if landmarks is None and box is None:
        raise ValueError("assess_face needs the face's landmarks or its box")
    rgb = np.asarray(image)
    cx, cy, side = face_square(landmarks, box)
    region = measure_region(rgb, cx, cy, side)
    if landmarks is not None:
        pts = np.asarray(landmarks, np.float64).reshape(5, 2)
        inter_eye = float(np.linalg.norm(pts[0:2].mean(0) - pts[2:4].mean(0)))
        yaw, pitch, roll = face_pose(pts)
    else:
        inter_eye, (yaw, pitch, roll) = side * TEMPLATE_INTER_EYE, (None, None, None)
    brightness, clipped = exposure(region)
    q = {"sharpness": sharpness(region), "inter_eye_px": inter_eye, "yaw": yaw, "pitch": pitch,
         "roll": roll, "brightness": brightness, "clipped": clipped}
    return FaceQuality(**q, reasons=judge(q, thresholds))


def assess(image, face, thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> FaceQuality | None:
    """The quality of the face a :class:`~siamgui.core.face.detect.FaceInfo` reports in
    ``image``; None when detection was bypassed (nothing to judge). A face whose landmarks
    were searched in the middle of the image because none was detected is judged too, with
    "no face detected" among its reasons."""
    if face is None or (face.landmarks is None and face.used_box is None):
        return None
    q = assess_face(image, face.landmarks, face.used_box, thresholds)
    if face.mode == "centre":
        q = FaceQuality(**{**asdict(q), "reasons": ("no face detected",) + q.reasons})
    return q


def assess_source(source, face, thresholds: QualityThresholds = DEFAULT_THRESHOLDS, *,
                  bgr: bool = False) -> FaceQuality | None:
    """:func:`assess` for an image given as the verifier takes it (path, bytes, array, PIL image),
    decoded the same way, so ``face`` (from ``Verifier.prepare``/``compare``) matches its pixels."""
    from siamgui.core.images import load_image

    return assess(np.asarray(load_image(source, bgr=bgr)), face, thresholds)


def assess_detection(image, box, face_cfg: dict | None = None, *, bgr: bool = False,
                     thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> FaceQuality:
    """The quality of a face known by its detector box (x, y, w, h), as a camera preview has
    it: dlib's landmarks are found from the box as the ``dlib5`` aligner does (``face_cfg``:
    the model's face settings; default the bundled model's detector, YuNet), then judged."""
    from siamgui.core.face import alignment

    cfg = face_cfg or {}
    rgb = np.asarray(image)
    if bgr and rgb.ndim == 3:
        rgb = np.ascontiguousarray(rgb[:, :, 2::-1])
    cal = alignment.calibration(str(cfg.get("detector", "yunet")))
    pts = alignment.landmarks_for_box(rgb, alignment.detector_to_dlib_box(box, cal), cfg)
    return assess_face(rgb, pts, thresholds=thresholds)


# -- choosing a camera frame -------------------------------------------------------------
def frame_rank(q: FaceQuality | None) -> tuple:
    """Sort key, higher is better: good before poor, fewer problems, then sharper."""
    if q is None:
        return (False, -math.inf, -math.inf)
    return (q.good, -len(q.reasons), q.sharpness)


def best_frame(entries: Sequence[tuple[float, FaceQuality | None]], now: float, window: float = 1.0) -> int | None:
    """Index of the best of ``entries`` ((timestamp s, quality or None when no face)) at most
    ``window`` seconds before ``now``; the newest wins a tie; None when none has a face."""
    best, best_key = None, None
    for i, (t, q) in enumerate(entries):
        if q is None or t < now - window or t > now:
            continue
        key = frame_rank(q)
        if best_key is None or key >= best_key:
            best, best_key = i, key
    return best


class RecentFrames:
    """The last ``window`` seconds of camera frames with their qualities (no threads, no Qt)."""

    def __init__(self, window: float = 1.0):
        self.window = window
        self.entries: list[tuple[float, object, FaceQuality | None]] = []

    def add(self, t: float, frame, quality: FaceQuality | None) -> None:
        self.entries.append((t, frame, quality))
        self.entries = [e for e in self.entries if e[0] >= t - self.window]

    def best(self, now: float):
        """(frame, quality) of the best recent frame with a face, or None."""
        i = best_frame([(t, q) for t, _, q in self.entries], now, self.window)
        return None if i is None else self.entries[i][1:]

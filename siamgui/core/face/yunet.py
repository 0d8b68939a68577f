"""YuNet face detector (Shiqi Yu et al., Apache-2.0) through OpenCV's ``cv2.FaceDetectorYN`` (no Qt).

A small anchor-free CNN exported to ONNX (``resources/models/yunet_*.onnx``, see
PROVENANCE.json); OpenCV's DNN module runs it, so it needs no torch. Each detection
is a box, a score and five landmarks (the eyes, the nose tip, the mouth corners).

``cv2.FaceDetectorYN`` keeps per-call state (its input size, its network's buffers), so
each thread gets its own detector object (:func:`get_detector`); the input size is set
for every image. Like the other detectors, a large image is searched on a copy
reduced by :func:`siamgui.core.face.detect.reduced_for_detection`; a search that drops
small faces anyway runs on a smaller copy still (:func:`working_scale`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from siamgui.core.errors import ModelFileError
from siamgui.core.face import detect as face_mod

#: The bundled network (the same file as OpenCV Zoo's ``face_detection_yunet_2023mar.onnx``).
DEFAULT_FILE = "yunet_s_640_640.onnx"
#: Scores below this are dropped (OpenCV Zoo's demo uses 0.6 too); the relaxed pass goes lower.
SCORE_THRESHOLD = 0.6
RELAXED_SCORE_THRESHOLD = 0.3
NMS_THRESHOLD = 0.3
TOP_K = 5000
#: A search that keeps faces down to a fraction of the shorter side runs on a copy where that
#: smallest face is this many pixels: YuNet still finds faces of that size, and its time grows
#: with the area it searches (bench/README.md, "Face detectors").
MIN_FACE_PX = 20


_local = threading.local()
_check_lock = threading.Lock()
_checked: set[str] = set()


def _create(path: Path):
    cv2 = face_mod._import_cv2()  # the one locked first import
    try:
        return cv2.FaceDetectorYN.create(str(path), "", (320, 320), SCORE_THRESHOLD, NMS_THRESHOLD, TOP_K)
    except cv2.error as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise ModelFileError(f"The face detector {path.name} could not be loaded "
                             f"({(lines[-1] if lines else 'OpenCV error')[:160]}).") from None


def get_detector(path: str | Path):
    """This thread's ``cv2.FaceDetectorYN`` for the ONNX file ``path`` (created on first use)."""
    path = Path(path)
    key = str(path)
    if key not in _checked:
        with _check_lock:
            if not path.is_file():
                raise ModelFileError(f"The face detector {path.name} is missing (looked in {path.parent}).")
            _checked.add(key)
    cache = getattr(_local, "detectors", None)
    if cache is None:
        cache = _local.detectors = {}
    det = cache.get(key)
    if det is None:
        det = cache[key] = _create(path)
    return det


def working_scale(shape, min_size_fraction: float = 0.0) -> float:
    """The factor an image of ``shape`` is searched at: :data:`DETECT_MAX_SIDE` on the longer
    side at most, and, when faces under ``min_size_fraction`` of the shorter side are dropped
    anyway, small enough that the smallest kept face is :data:`MIN_FACE_PX` pixels."""
    scale = face_mod.detection_scale(shape)
    if min_size_fraction > 0:
        scale = min(scale, MIN_FACE_PX / (min(shape[0], shape[1]) * min_size_fraction))
    return min(1.0, scale)


def detect(rgb: np.ndarray, path: str | Path, score_threshold: float = SCORE_THRESHOLD,
           scale: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YuNet's faces in an RGB (or grey) uint8 image with scores at least ``score_threshold``:
    boxes (N, 4) as x, y, w, h, scores (N,) and points (N, 5, 2) (the eyes, the nose tip, the
    mouth corners; as MTCNN's, the left one in the image first), float32, in the image's pixels.
    ``scale``: search a copy shrunk by this factor (default: :data:`DETECT_MAX_SIDE` at most)."""
    cv2 = face_mod._import_cv2()
    small, scale = face_mod.reduced_for_detection(rgb, scale)
    if small.ndim == 2:
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    else:
        bgr = np.ascontiguousarray(small[:, :, 2::-1])
    h, w = bgr.shape[:2]
    det = get_detector(path)
    det.setInputSize((w, h))
    det.setScoreThreshold(float(score_threshold))
    _, found = det.detect(bgr)
    found = np.zeros((0, 15), np.float32) if found is None else np.asarray(found, np.float32).reshape(-1, 15)
    found = found[plausible(found, w, h)]
    return found[:, :4] / scale, found[:, 14].copy(), found[:, 4:14].reshape(-1, 5, 2) / scale


def plausible(rows: np.ndarray, w: int, h: int) -> np.ndarray:
    """Which of ``cv2.FaceDetectorYN``'s rows are faces at all: finite, a positive size, the
    centre inside the w x h image, a score in [0, 1]. On a tiny image it has returned, now and
    then, a row of infinities."""
    with np.errstate(invalid="ignore"):
        cx = rows[:, 0] + rows[:, 2] / 2
        cy = rows[:, 1] + rows[:, 3] / 2
        return (np.isfinite(rows).all(1) & (rows[:, 2] > 0) & (rows[:, 3] > 0) & (cx >= 0) & (cx <= w)
                & (cy >= 0) & (cy <= h) & (rows[:, 14] >= 0) & (rows[:, 14] <= 1))

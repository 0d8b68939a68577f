"""Face detection and cropping for the ``face`` preset (OpenCV, no Qt).

The detector is OpenCV's Haar cascade shipped in ``cv2.data.haarcascades``.
:func:`find_faces` returns boxes largest first; :func:`face_chip` cuts the
square region the model sees. The policy for zero or several faces is the
caller's: ``"largest"`` (default) uses the main face (:func:`main_face`: the
biggest, or the most central of faces of similar size), ``"whole"`` ignores
detection and uses the centre of the whole image.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from siamgui.core.errors import SiamguiError

FACE_POLICIES = ("largest", "whole")


@dataclass
class FaceInfo:
    """What face processing did to one image (for display and messages)."""

    #: All detected boxes (x, y, w, h) in the input image, largest first.
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    #: The box actually used, or None when the whole image was used.
    used_box: tuple[int, int, int, int] | None = None
    #: "face" when a detected face was used, "centre" when landmarks were searched
    #: in the middle of the image because none was detected, "whole" otherwise.
    mode: str = "whole"
    #: Optional landmarks (x, y) of the used face, in input-image coordinates.
    landmarks: list[tuple[float, float]] | None = None
    #: True when ``boxes`` come from the relaxed second pass (the first found none).
    relaxed: bool = False

    @property
    def count(self) -> int:
        return len(self.boxes)

    def message(self) -> str:
        if self.count == 0 and self.mode == "centre":
            return "No face detected; the face was aligned from the centre of the image."
        if self.count == 0:
            return "No face found; the whole image was compared."
        if self.count > 1 and self.mode == "face":
            return (f"{self.count} faces found; the main one (the largest, or the most central "
                    "of similar size) was used.")
        if self.mode == "whole":
            return "Face detection was bypassed; the whole image was compared."
        return "One face found."


_cascade = None
_cascade_lock = threading.Lock()
_cv2_lock = threading.Lock()
_cv2 = None


def _import_cv2():
    """Import OpenCV once, under a lock.

    cv2's loader swaps modules in ``sys.modules`` while it runs, so a second
    thread importing it at that moment gets a half-initialised module without
    ``cv2.data`` (seen with the training decode threads).
    """
    global _cv2
    if _cv2 is None:
        with _cv2_lock:
            if _cv2 is None:
                import cv2

                _cv2 = cv2
    return _cv2


def _get_cascade():
    global _cascade
    with _cascade_lock:
        if _cascade is None:
            cv2 = _import_cv2()
            path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
            cascade = cv2.CascadeClassifier(path)
            if cascade.empty():
                raise SiamguiError(f"OpenCV's face detector could not be loaded from {path}.")
            _cascade = cascade
        return _cascade


#: Detectors search a copy reduced to this longer side (landmarks and chips use the full image).
DETECT_MAX_SIDE = 640


def detection_scale(shape) -> float:
    """The factor :func:`reduced_for_detection` shrinks an image of ``shape`` (h, w, ...) by."""
    longest = max(shape[0], shape[1])
    return 1.0 if longest <= DETECT_MAX_SIDE else DETECT_MAX_SIDE / longest


def reduced_for_detection(arr: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, float]:
    """``arr`` shrunk to :data:`DETECT_MAX_SIDE` on its longer side when larger (or by ``scale``
    when given, at most 1), and the scale applied (1.0 when left alone): the same boxes, much
    faster (a 4000x3000 photo took 1.2 s and 335 MB in MTCNN at full size)."""
    scale = detection_scale(arr.shape) if scale is None else min(1.0, float(scale))
    if scale == 1.0:
        return arr, 1.0
    h, w = arr.shape[:2]
    cv2 = _import_cv2()
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    # Area averaging against aliasing where it matters; above half size bilinear is enough, and faster.
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR), scale


def centre_distance(box, size: tuple[int, int]) -> float:
    """Squared distance from the centre of box (x, y, w, h) to that of an image of ``size`` (w, h)."""
    x, y, w, h = box
    return (x + w / 2.0 - size[0] / 2.0) ** 2 + (y + h / 2.0 - size[1] / 2.0) ** 2


def find_faces(rgb: np.ndarray, min_size_fraction: float = 0.12) -> list[tuple[int, int, int, int]]:
    """Detect frontal faces in an RGB uint8 array; boxes largest first."""
    cv2 = _import_cv2()

    grey, scale = reduced_for_detection(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb)
    min_side = max(20, int(min(grey.shape[:2]) * min_size_fraction))
    cascade = _get_cascade()
    # CascadeClassifier is not documented as thread-safe; detections are short.
    with _cascade_lock:
        found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    boxes = [tuple(int(round(v / scale)) for v in b) for b in (found if len(found) else [])]
    boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
    return boxes


#: Faces at least this fraction of the largest one's area count as "of similar size".
MAIN_FACE_AREA_FRACTION = 0.5


def main_face(boxes, candidates, size: tuple[int, int], fraction: float = MAIN_FACE_AREA_FRACTION) -> int:
    """Among ``candidates`` (indices into ``boxes``, each x, y, w, h), the face nearest the
    centre of an image of ``size`` (w, h) of those at least ``fraction`` of the largest
    one's area: of people of similar size, the one in the middle is the subject."""
    def area(k):
        return float(boxes[k][2]) * float(boxes[k][3])

    biggest = max(area(k) for k in candidates)
    return min((k for k in candidates if area(k) >= fraction * biggest), key=lambda k: centre_distance(boxes[k], size))


def square_region(box: tuple[int, int, int, int], margin: float) -> tuple[float, float, float, float]:
    """A square (left, top, right, bottom) around ``box`` grown by ``margin`` per side."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def centre_square(size: tuple[int, int]) -> tuple[float, float, float, float]:
    w, h = size
    side = min(w, h)
    return ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)


def face_chip(image: Image.Image, margin: float = 0.2, policy: str = "largest") -> tuple[Image.Image, FaceInfo]:
    """Return the square region of ``image`` the model should see, and what was found."""
    if policy not in FACE_POLICIES:
        raise ValueError(f"Unknown face policy {policy!r}; choose from {FACE_POLICIES}")
    boxes = find_faces(np.asarray(image))
    info = FaceInfo(boxes=boxes)
    if policy == "largest" and boxes:
        info.used_box = boxes[main_face(boxes, range(len(boxes)), image.size)]
        info.mode = "face"
        region = square_region(info.used_box, margin)
    else:
        region = centre_square(image.size)
    # PIL crops outside the image with black, which is what we want at borders.
    return image.crop(tuple(int(round(v)) for v in region)), info


def box_aligner(image: Image.Image, cfg: dict, policy: str, out_size: int):
    """Aligner ``"box"``: a square around the Haar box, grown by the model's margin."""
    return face_chip(image, margin=float(cfg.get("margin", 0.15)), policy=policy)

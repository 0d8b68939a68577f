"""Landmark-based face alignment for the ``face`` preset (no Qt, no dlib).

Aligner ``"dlib5"`` (used by the bundled dlib face model):

1. detect faces with OpenCV's Haar cascade (:func:`siamgui.core.face.find_faces`);
2. turn the chosen Haar box into the box dlib's landmark model expects (a fixed
   scale and shift, measured on LFW DevTrain images: Haar boxes are larger and
   sit higher than dlib's HOG boxes);
3. find 5 landmarks with dlib's shape predictor (:mod:`siamgui.core.landmarks`),
   then ``refine`` times re-fit the box to those landmarks and predict again,
   so the result depends little on the detector's box;
4. warp to dlib's 150x150 face chip (5-point template, padding 0.25) exactly
   as ``dlib.get_face_chip`` does.

When no face is detected under policy ``"largest"``, the landmarks are searched
from a box in the middle of the image (half its shorter side; mode
``"centre"``), so a missed face still gets aligned if it is roughly central;
the image is never dropped. Policy ``"whole"`` bypasses detection and landmarks
and resizes the centre square, like the ``box`` aligner.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from siamgui.core.errors import ModelFileError
from siamgui.core.face import FaceInfo, centre_square, find_faces, register_aligner
from siamgui.core.landmarks import chip_transform, extract_chip, get_predictor, grey_intensity
from siamgui.core.resources import resources_dir

#: Haar box (x, y, w, h) -> dlib-style box: centre shift (fractions of w, h) and size factor.
#: Measured on LFW pairsDevTrain images (median over faces of the landmark-refitted box).
HAAR_TO_DLIB = {"dx": 0.0, "dy": 0.037, "scale": 0.89}
#: Side of the fallback box for a missed face, as a fraction of the image's shorter side.
MISS_BOX_FRACTION = 0.5


def landmark_model_path(cfg: dict):
    name = str(cfg.get("landmarks", "shape_predictor_5.safetensors"))
    if "/" in name or "\\" in name or name.startswith("."):
        raise ModelFileError(f"The model names an invalid landmark file {name!r}.")
    return resources_dir() / "models" / name


def haar_to_dlib_box(box: tuple[int, int, int, int], cal: dict | None = None) -> tuple[float, float, float, float]:
    cal = cal or HAAR_TO_DLIB
    x, y, w, h = box
    side = max(w, h) * cal["scale"]
    cx = x + w / 2.0 + cal["dx"] * w
    cy = y + h / 2.0 + cal["dy"] * h
    return (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)


def centre_box(width: int, height: int, fraction: float = MISS_BOX_FRACTION) -> tuple[float, float, float, float]:
    side = min(width, height) * fraction
    cx, cy = width / 2.0, height / 2.0
    return (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)


def landmarks_for_box(rgb: np.ndarray, box, cfg: dict, grey: np.ndarray | None = None) -> np.ndarray:
    """5 landmarks for a dlib-style box, refined ``cfg['refine']`` times by re-fitting the box."""
    predictor = get_predictor(landmark_model_path(cfg))
    grey = grey_intensity(rgb) if grey is None else grey
    pts = predictor.predict(grey, box)
    for _ in range(int(cfg.get("refine", 1))):
        pts = predictor.predict(grey, predictor.box_from_landmarks(pts))
    return pts


def align_landmarks(rgb: np.ndarray, pts: np.ndarray, out_size: int, padding: float = 0.25) -> np.ndarray:
    return extract_chip(rgb, chip_transform(pts, out_size, padding), out_size)


@register_aligner("dlib5")
def dlib5_aligner(image: Image.Image, cfg: dict, policy: str, out_size: int) -> tuple[Image.Image, FaceInfo]:
    if policy not in ("largest", "whole"):
        raise ValueError(f"Unknown face policy {policy!r}")
    rgb = np.asarray(image)
    boxes = find_faces(rgb)
    info = FaceInfo(boxes=boxes)
    if policy == "whole":
        crop = image.crop(tuple(int(round(v)) for v in centre_square(image.size)))
        return crop.resize((out_size, out_size), Image.BILINEAR, reducing_gap=3.0), info
    if boxes:
        info.used_box = boxes[0]
        info.mode = "face"
        box = haar_to_dlib_box(boxes[0])
    else:
        info.mode = "centre"
        box = centre_box(image.size[0], image.size[1])
    pts = landmarks_for_box(rgb, box, cfg)
    info.landmarks = [(float(x), float(y)) for x, y in pts]
    chip = align_landmarks(rgb, pts, out_size, float(cfg.get("padding", 0.25)))
    return Image.fromarray(chip), info

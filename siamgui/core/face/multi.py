"""Every face of a photo: detection once, then the model's own alignment per face.

The main-face path (:mod:`siamgui.core.face.alignment`, :mod:`siamgui.core.face.detect`)
picks one face per image. Group pictures need them all: comparing the
best-matching face (``--face best``) and labelling every face in the gallery.
:func:`find_faces_all` runs the model's detector once, down to smaller faces
than the main-face search; :func:`face_crops` cuts each face as the model's
aligner would (dlib's 5 landmarks and chip for ``dlib5``, the margin square for
``box``); :func:`face_issue` is the one rule for a face too small or too poor to judge.

At most :data:`MAX_FACES` faces per image are used (the largest), so a crowd
stays responsive; how many were found is reported beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from siamgui.core.errors import ModelFileError
from siamgui.core.face.alignment import (WHOLE_FRACTION, YUNET_POINTS_IN_BOX, align_landmarks, calibration,
                                         detect_faces, detect_faces_mtcnn, detect_faces_yunet, detector_to_dlib_box,
                                         inside_fraction, landmarks_for_box)
from siamgui.core.face.detect import FaceInfo, square_region
from siamgui.core.face.landmarks import fit_box, grey_intensity

#: The most faces of one image that are aligned and embedded (the largest first).
MAX_FACES = 32
#: Faces are searched down to this fraction of the image's shorter side (at least 20 px in
#: the detector's copy): smaller than the main-face search (0.12), as group photos have small faces.
ALL_FACES_MIN_FRACTION = 0.05
#: A face whose box is narrower or shorter than this (pixels of the photo) is not judged.
MIN_JUDGED_SIDE = 40


@dataclass
class Face:
    """One detected face of a photo."""

    #: (x, y, w, h) in the photo's pixels.
    box: tuple[int, int, int, int]
    #: The detector's confidence (MTCNN's score, Haar's neighbour count).
    score: float
    #: Why the face is not judged (:func:`face_issue`), None when it is.
    issue: str | None = None
    #: The 5 landmarks (x, y) it was aligned with (``dlib5`` models), in the photo's pixels.
    landmarks: list[tuple[float, float]] | None = None
    #: The detector's own five points (YuNet), which may seed the landmark search.
    points: np.ndarray | None = field(default=None, repr=False)

    @property
    def judged(self) -> bool:
        return self.issue is None


def face_issue(box, image_size: tuple[int, int]) -> str | None:
    """Why a face cannot be judged, or None: the one place to swap in a face-quality assessment.

    The rule: a box narrower or shorter than :data:`MIN_JUDGED_SIDE` px (too few pixels
    for the 150 px chip the face model sees), or one cut by the image border (less than
    :data:`~siamgui.core.face.alignment.WHOLE_FRACTION` inside: half a face).
    """
    side = min(float(box[2]), float(box[3]))
    if side < MIN_JUDGED_SIDE:
        return f"too small to judge ({side:.0f} px; at least {MIN_JUDGED_SIDE})"
    if inside_fraction(box, image_size) < WHOLE_FRACTION:
        return "cut by the image border"
    return None


def find_faces_all(rgb: np.ndarray, cfg: dict, with_landmarks: bool = False) -> list[tuple]:
    """Every face the model's detector finds, ((x, y, w, h), confidence), largest first;
    ``with_landmarks``: YuNet's items also carry its five points (other detectors have none)."""
    detector = str(cfg.get("detector", "haar"))
    if detector == "mtcnn":
        return detect_faces_mtcnn(rgb, cfg, min_size_fraction=ALL_FACES_MIN_FRACTION)
    if detector == "yunet":
        return detect_faces_yunet(rgb, cfg, min_size_fraction=ALL_FACES_MIN_FRACTION, with_landmarks=with_landmarks)
    if detector == "haar":
        return [(tuple(float(v) for v in b), float(n))
                for b, n in detect_faces(rgb, min_size_fraction=ALL_FACES_MIN_FRACTION)]
    raise ModelFileError(f"Unknown face detector {detector!r} in the model's preprocessing.")


def face_crops(image: Image.Image, cfg: dict, faces: list[Face], out_size: int) -> list[Image.Image]:
    """Each face as the model's aligner cuts it (``dlib5``: landmarks, then the chip at ``out_size``;
    ``box``: the square around the box grown by the model's margin); fills ``Face.landmarks``."""
    align = str(cfg.get("align", "box"))
    if align == "box":
        margin = float(cfg.get("margin", 0.15))
        return [image.crop(tuple(int(round(v)) for v in square_region(f.box, margin))) for f in faces]
    if align != "dlib5":
        raise ModelFileError(f"Unknown face alignment {align!r} in the model's preprocessing.")
    rgb = np.asarray(image)
    grey = grey_intensity(rgb)
    detector = str(cfg.get("detector", "haar"))
    cal = calibration(detector)
    seed = detector == "yunet" and str(cfg.get("yunet_points", "")) == "seed"
    padding = float(cfg.get("padding", 0.25))
    out = []
    for f in faces:
        # the same start as the main-face aligner's, so one face gives one embedding either way
        start = fit_box(f.points, YUNET_POINTS_IN_BOX) if seed and f.points is not None else \
            detector_to_dlib_box(f.box, cal)
        pts = landmarks_for_box(rgb, start, cfg, grey)
        f.landmarks = [(float(x), float(y)) for x, y in pts]
        out.append(Image.fromarray(align_landmarks(rgb, pts, out_size, padding)))
    return out


def detect_all(image: Image.Image, cfg: dict, max_faces: int = MAX_FACES) -> tuple[list[Face], int]:
    """The largest ``max_faces`` faces of ``image`` with their issues, and how many were found."""
    found = find_faces_all(np.asarray(image), cfg, with_landmarks=True)
    faces = [Face(tuple(int(round(v)) for v in d[0]), float(d[1]), face_issue(d[0], image.size),
                  points=d[2] if len(d) > 2 else None)
             for d in found[:max_faces]]
    return faces, len(found)


@dataclass
class FacesInfo(FaceInfo):
    """:class:`FaceInfo` for every face of an image: ``boxes`` are the faces used (largest first),
    ``issues`` why some are not judged; ``used_box`` the face a best-face comparison chose."""

    issues: list[str | None] = field(default_factory=list)
    #: Faces the detector found (more than ``count`` when :data:`MAX_FACES` capped them).
    found: int = 0

    @classmethod
    def of(cls, faces: list[Face], found: int) -> "FacesInfo":
        return cls(boxes=[f.box for f in faces], mode="face", issues=[f.issue for f in faces], found=found)

    @property
    def unjudged(self) -> int:
        return sum(1 for i in self.issues if i is not None)

    def message(self) -> str:
        n = self.count
        if n == 1:
            text = "One face found."
        elif self.used_box is not None:
            text = f"{n} faces found; the best-matching one was used."
        else:
            text = f"{n} faces found."
        if self.found > n:
            text += f" Only the {n} largest of {self.found} faces are used."
        if self.unjudged:
            text += (f" {self.unjudged} {'is' if self.unjudged == 1 else 'are'} too small or cut by the border "
                     "to judge.")
        return text

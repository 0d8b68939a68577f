"""The aligners by the name a model file's ``face.align`` gives them.

An aligner is ``f(image, face_cfg, policy, out_size) -> (PIL crop, FaceInfo)``.
"""

from __future__ import annotations

from siamgui.core.errors import SiamguiError
from siamgui.core.face.alignment import dlib5_aligner
from siamgui.core.face.detect import box_aligner

ALIGNERS = {"box": box_aligner, "dlib5": dlib5_aligner}


def get_aligner(name: str):
    try:
        return ALIGNERS[name]
    except KeyError:
        raise SiamguiError(f"Unknown face alignment {name!r} in the model's preprocessing.") from None

"""Landmark-based face alignment for the ``face`` preset (no Qt, no dlib).

Aligner ``"dlib5"`` (used by the bundled dlib face model):

1. detect faces with the detector the model's ``face.detector`` names: ``"yunet"``
   (:mod:`siamgui.core.face.yunet`, the bundled model's), ``"mtcnn"``
   (:mod:`siamgui.core.face.mtcnn`) or ``"haar"`` (OpenCV's cascade, as
   :func:`siamgui.core.face.detect.find_faces`), and take the main face among the
   confident, whole ones (:func:`choose_face`);
2. turn the chosen box into the box dlib's landmark model expects (a fixed
   scale and shift per detector, measured on LFW DevTrain images by
   ``bench/calibrate_detector.py``: Haar boxes are larger and sit higher than dlib's
   HOG boxes, MTCNN's and YuNet's are taller);
3. find 5 landmarks with dlib's shape predictor (:mod:`siamgui.core.face.landmarks`),
   then ``refine`` times re-fit the box to those landmarks and predict again,
   so the result depends little on the detector's box;
4. warp to dlib's 150x150 face chip (5-point template, padding 0.25) exactly
   as ``dlib.get_face_chip`` does.

When no face is detected, a relaxed second pass (Haar: finer scales, 2 neighbours;
MTCNN: faces down to 12 px; YuNet: any size, a lower score threshold) is tried and its
box nearest the centre used; when that finds nothing either
under policy ``"largest"``, the landmarks are searched
from a box in the middle of the image (half its shorter side; mode
``"centre"``), so a missed face still gets aligned if it is roughly central;
the image is never dropped. Policy ``"whole"`` bypasses detection and landmarks
and resizes the centre square, like the ``box`` aligner. Policy ``"centre"``
(used by ``bench/lfw_eval.py --face centre``) takes the face nearest the image
centre instead of the largest, as LFW's protocol labels the centred person.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from siamgui.core.errors import ModelFileError
from siamgui.core.face import detect as face_mod
from siamgui.core.face import yunet
from siamgui.core.face.detect import FaceInfo, centre_square
from siamgui.core.face.landmarks import chip_transform, extract_chip, fit_box, get_predictor, grey_intensity
from siamgui.core.resources import resources_dir

#: Haar box (x, y, w, h) -> dlib-style box: centre shift (fractions of w, h) and size factor.
#: Measured on LFW pairsDevTrain images (median over faces of the landmark-refitted box).
HAAR_TO_DLIB = {"dx": 0.0, "dy": 0.037, "scale": 0.89}
#: The same for MTCNN's boxes (300 DevTrain faces: medians dx -0.003, dy 0.014, scale 0.83).
MTCNN_TO_DLIB = {"dx": 0.0, "dy": 0.014, "scale": 0.83}
#: The same for YuNet's boxes.
YUNET_TO_DLIB = {"dx": 0.0, "dy": 0.006, "scale": 0.83}
FACE_DETECTORS = ("haar", "mtcnn", "yunet")
#: The file a detector's weights come from when the model names none (``face.detector_file``).
DETECTOR_FILES = {"mtcnn": "mtcnn.safetensors", "yunet": yunet.DEFAULT_FILE}
#: A box counts as a confident face when its neighbour count is at least this fraction of the best's.
CONFIDENT_FRACTION = 0.5
#: Side of the fallback box for a missed face, as a fraction of the image's shorter side.
MISS_BOX_FRACTION = 0.5
#: A face box with less than this fraction inside the image counts as cut by the border.
WHOLE_FRACTION = 0.9


def landmark_model_path(cfg: dict):
    name = str(cfg.get("landmarks", "shape_predictor_5.safetensors"))
    if "/" in name or "\\" in name or name.startswith("."):
        raise ModelFileError(f"The model names an invalid landmark file {name!r}.")
    return resources_dir() / "models" / name


def detector_to_dlib_box(box: tuple[float, float, float, float], cal: dict | None = None
                         ) -> tuple[float, float, float, float]:
    """A detector's box (x, y, w, h) -> dlib's (left, top, right, bottom) by calibration ``cal``."""
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


def detect_faces(rgb: np.ndarray, min_size_fraction: float = 0.12, relaxed: bool = False
                 ) -> list[tuple[tuple[int, int, int, int], int]]:
    """Haar boxes with their neighbour counts (the cascade's confidence), largest first.

    Same detector and settings as :func:`siamgui.core.face.detect.find_faces`; ``relaxed``
    (the second pass when that finds nothing) uses finer scales, fewer neighbours
    and smaller faces.
    """
    scale_factor, neighbours_min = (1.05, 2) if relaxed else (1.1, 5)
    if relaxed:
        min_size_fraction = min(min_size_fraction, 0.08)
    cv2 = face_mod._import_cv2()  # the one locked first import (a racy one in two threads breaks cv2)
    grey, scale = face_mod.reduced_for_detection(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb)
    min_side = max(20, int(min(grey.shape[:2]) * min_size_fraction))
    cascade = face_mod._get_cascade()
    with face_mod._cascade_lock:
        found, neighbours = cascade.detectMultiScale2(grey, scaleFactor=scale_factor, minNeighbors=neighbours_min,
                                                      minSize=(min_side, min_side))
    out = [(tuple(int(round(v / scale)) for v in b), int(n)) for b, n in zip(found, neighbours)]
    out.sort(key=lambda bn: bn[0][2] * bn[0][3], reverse=True)
    return out


def detector_model_path(cfg: dict):
    name = str(cfg.get("detector_file") or DETECTOR_FILES.get(str(cfg.get("detector", "mtcnn")), "mtcnn.safetensors"))
    if "/" in name or "\\" in name or name.startswith("."):
        raise ModelFileError(f"The model names an invalid face detector file {name!r}.")
    return resources_dir() / "models" / name


def detect_faces_mtcnn(rgb: np.ndarray, cfg: dict, min_size_fraction: float = 0.12, relaxed: bool = False
                       ) -> list[tuple[tuple[float, float, float, float], float]]:
    """MTCNN boxes (x, y, w, h) in pixels (floats) with their scores, largest first.

    Faces smaller than ``min_size_fraction`` of the image's shorter side (at
    least 20 px) are not searched, as with the Haar detector; ``relaxed`` searches
    down to 12 px. As with the Haar detector, a large image is searched on a reduced
    copy (:func:`siamgui.core.face.detect.reduced_for_detection`) and the boxes scaled back. Runs on
    ``cfg["device"]`` (the encoder's; default the CPU).
    """
    from siamgui.core.face import mtcnn

    path = detector_model_path(cfg)
    if not path.is_file():
        raise ModelFileError(f"The face detector {path.name} is missing (looked in {path.parent}).")
    det = mtcnn.get_detector(path, cfg.get("device", "cpu"))
    rgb, scale = face_mod.reduced_for_detection(rgb)
    h, w = rgb.shape[:2]
    min_face = 12 if relaxed else max(20, int(min(h, w) * min_size_fraction))
    found = det.detect(rgb, min_face)
    boxes = found.boxes / scale
    out = [((float(x1), float(y1), float(x2 - x1), float(y2 - y1)), float(sc))
           for (x1, y1, x2, y2), sc in zip(boxes, found.scores)]
    out.sort(key=lambda bs: bs[0][2] * bs[0][3], reverse=True)
    return out


def detect_faces_yunet(rgb: np.ndarray, cfg: dict, min_size_fraction: float = 0.12, relaxed: bool = False,
                       with_landmarks: bool = False):
    """YuNet boxes (x, y, w, h) in pixels (floats) with their scores, largest first.

    As with the other detectors, faces smaller than ``min_size_fraction`` of the (reduced)
    image's shorter side (at least 20 px) are dropped; ``relaxed`` keeps every size and
    lowers the score threshold. ``with_landmarks``: each item also carries YuNet's five
    points ((5, 2) array) as a third element.
    """
    scale = yunet.working_scale(rgb.shape, 0.0 if relaxed else min_size_fraction)
    boxes, scores, points = yunet.detect(rgb, detector_model_path(cfg),
                                         yunet.RELAXED_SCORE_THRESHOLD if relaxed else yunet.SCORE_THRESHOLD, scale)
    min_side = 0.0 if relaxed else max(20, int(min(rgb.shape[:2]) * scale * min_size_fraction)) / scale
    out = []
    for box, score, pts in zip(boxes, scores, points):
        if min(box[2], box[3]) >= min_side:
            item = (tuple(float(v) for v in box), float(score))
            out.append(item + (pts.astype(np.float64),) if with_landmarks else item)
    out.sort(key=lambda bs: bs[0][2] * bs[0][3], reverse=True)
    return out


def calibration(detector: str) -> dict:
    """The box -> dlib box calibration of a detector named in a model file."""
    cals = {"haar": HAAR_TO_DLIB, "mtcnn": MTCNN_TO_DLIB, "yunet": YUNET_TO_DLIB}
    if detector not in cals:
        raise ModelFileError(f"Unknown face detector {detector!r} in the model's preprocessing.")
    return cals[detector]


def detect_any(rgb: np.ndarray, cfg: dict, relaxed: bool = False):
    """The boxes and confidences of the detector ``cfg["detector"]`` names (default Haar), largest first."""
    detector = str(cfg.get("detector", "haar"))
    calibration(detector)
    if detector == "mtcnn":
        return detect_faces_mtcnn(rgb, cfg, relaxed=relaxed)
    if detector == "yunet":
        return detect_faces_yunet(rgb, cfg, relaxed=relaxed)
    return detect_faces(rgb, relaxed=relaxed)


def face_boxes(rgb: np.ndarray, cfg: dict) -> list[tuple[int, int, int, int]]:
    """Whole-pixel boxes (x, y, w, h) of the first pass of the model's detector, largest first:
    what a camera preview draws, so the box shown is the one a capture starts from."""
    return [_int_box(d[0]) for d in detect_any(rgb, cfg)]


def _int_box(box) -> tuple[int, int, int, int]:
    return tuple(int(round(v)) for v in box)


def inside_fraction(box, size: tuple[int, int]) -> float:
    """The fraction of box (x, y, w, h) that lies inside an image of ``size`` (w, h)."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        return 0.0
    iw = max(0.0, min(x + w, size[0]) - max(x, 0.0))
    ih = max(0.0, min(y + h, size[1]) - max(y, 0.0))
    return iw * ih / (w * h)


def choose_face(detections, policy: str = "largest", size: tuple[int, int] | None = None) -> int:
    """Index of the face to use; ``detections`` are ((x, y, w, h), confidence), largest first.

    Only *confident* boxes are considered: confidence (Haar's neighbour count, MTCNN's
    score) at least half the best one's. Haar's false positives are sometimes larger
    than the real face, but gather far fewer neighbouring detections (on LFW DevTrain
    this beat the plain largest box: 98.7 % against 98.4 % best accuracy).

    With the image ``size`` (w, h) given, a face cut by the image border (less than
    :data:`WHOLE_FRACTION` of its box inside) is passed over for a whole one: MTCNN
    finds half faces at the edge of a frame, often larger than the person in the
    middle. Then ``"largest"`` takes the *main* face (:func:`siamgui.core.face.detect.main_face`):
    of the faces at least half the largest one's area, the one nearest the image
    centre, since of two people of similar size the one in the middle is the subject.
    On LFW DevTrain (photos framed on the labelled person) the centred face was never
    below 0.84x the largest's width, and choosing it raised best accuracy from
    99.05 % to 99.32 %. Without ``size``: the largest confident box.

    ``"centre"``: the box nearest the centre, whatever its size or confidence (LFW's
    convention, for ``bench/lfw_eval.py --face centre``).
    """
    best = max(n for _, n in detections)
    confident = [k for k, (_, n) in enumerate(detections) if n >= CONFIDENT_FRACTION * best] or [0]
    if size is not None:
        confident = [k for k in confident if inside_fraction(detections[k][0], size) >= WHOLE_FRACTION] or confident
    if policy == "centre" and size is not None:
        return min(range(len(detections)), key=lambda k: face_mod.centre_distance(detections[k][0], size))
    if size is not None:
        return face_mod.main_face([b for b, _ in detections], confident, size)
    return confident[0]


#: Median position of YuNet's five points in the landmark-refitted dlib box (0-1 coordinates;
#: bench/calibrate_detector.py on DevTrain faces): ``face.yunet_points = "seed"`` fits a dlib box to them.
YUNET_POINTS_IN_BOX = np.array([[0.2937, 0.3386], [0.718, 0.3361], [0.5088, 0.5773], [0.3329, 0.7632],
                                [0.6952, 0.7608]])
#: What a model file may ask YuNet's own points for: nothing (the box starts the landmarks) or "seed".
YUNET_POINT_USES = ("", "seed")


def dlib5_aligner(image: Image.Image, cfg: dict, policy: str, out_size: int) -> tuple[Image.Image, FaceInfo]:
    if policy not in ("largest", "whole", "centre"):
        raise ValueError(f"Unknown face policy {policy!r}")
    rgb = np.asarray(image)
    detector = str(cfg.get("detector", "haar"))
    cal = calibration(detector)
    use_points = str(cfg.get("yunet_points", "")) if detector == "yunet" else ""
    if use_points not in YUNET_POINT_USES:
        raise ModelFileError(f"Unknown use of YuNet's points {use_points!r} in the model's preprocessing.")

    def detect(relaxed=False):
        if use_points:
            return detect_faces_yunet(rgb, cfg, relaxed=relaxed, with_landmarks=True)
        return detect_any(rgb, cfg, relaxed=relaxed)

    detections = detect()
    boxes = [d[0] for d in detections]
    info = FaceInfo(boxes=[_int_box(b) for b in boxes])
    if policy == "whole":
        crop = image.crop(tuple(int(round(v)) for v in centre_square(image.size)))
        return crop.resize((out_size, out_size), Image.BILINEAR, reducing_gap=3.0), info
    grey = grey_intensity(rgb)
    if not boxes and policy != "whole":
        # Second, relaxed pass; its boxes are less reliable, so the one nearest the centre is used.
        detections = detect(relaxed=True)
        boxes = [d[0] for d in detections]
        info.boxes = [_int_box(b) for b in boxes]
        info.relaxed = True
        if boxes:
            policy = "centre"
    if boxes:
        k = choose_face([(d[0], 1 if info.relaxed else d[1]) for d in detections], policy, image.size)
        if use_points == "seed":
            pts = landmarks_for_box(rgb, fit_box(detections[k][2], YUNET_POINTS_IN_BOX), cfg, grey)
        else:
            pts = landmarks_for_box(rgb, detector_to_dlib_box(boxes[k], cal), cfg, grey)
        info.used_box = _int_box(boxes[k])
        info.mode = "face"
    else:
        info.mode = "centre"
        pts = landmarks_for_box(rgb, centre_box(image.size[0], image.size[1]), cfg, grey)
    info.landmarks = [(float(x), float(y)) for x, y in pts]
    chip = align_landmarks(rgb, pts, out_size, float(cfg.get("padding", 0.25)))
    return Image.fromarray(chip), info

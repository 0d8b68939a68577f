"""Face landmarks with dlib's 5-point shape predictor, evaluated in NumPy (no dlib).

The predictor (Kazemi & Sullivan's cascade of regression trees, dlib
``shape_predictor.h``) is read from the ``.safetensors`` file that
``siamgui import-dlib shape_predictor_5_face_landmarks.dat`` writes. Each of
its 15 stages samples 800 grey pixels placed relative to the current shape,
walks 500 depth-4 trees on pixel differences and adds their leaf vectors to
the shape. All trees of a stage are evaluated together with array indexing.

Also here: the face-chip geometry of dlib's ``get_face_chip_details`` and
``extract_image_chip`` (bilinear, 0 outside the image; OpenCV samples it, rounding
where dlib truncates), so the network sees the chips it was trained on.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamgui.core.errors import ModelFileError

#: dlib's 5-point chip template (interpolation.h, get_face_chip_details): right eye
#: outer/inner corner, left eye outer/inner corner, bottom of the nose; unit square.
CHIP_TEMPLATE_5 = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])


@dataclass
class ShapePredictor:
    """dlib's cascade of regression trees (Kazemi & Sullivan), as arrays.

    ``initial_shape`` (P, 2) in box-normalised coordinates; per cascade stage
    ``s``: ``anchor[s]`` (F,), ``deltas[s]`` (F, 2), ``split_idx[s]`` (T, S, 2),
    ``split_thresh[s]`` (T, S), ``leaves[s]`` (T, S+1, P*2).
    """

    initial_shape: np.ndarray
    anchor: list[np.ndarray]
    deltas: list[np.ndarray]
    split_idx: list[np.ndarray]
    split_thresh: list[np.ndarray]
    leaves: list[np.ndarray]

    def to_tensors(self) -> dict[str, np.ndarray]:
        out = {"initial_shape": self.initial_shape.astype(np.float32)}
        for s in range(len(self.anchor)):
            out[f"stage{s}.anchor"] = self.anchor[s].astype(np.int32)
            out[f"stage{s}.deltas"] = self.deltas[s].astype(np.float32)
            out[f"stage{s}.split_idx"] = self.split_idx[s].astype(np.int32)
            out[f"stage{s}.split_thresh"] = self.split_thresh[s].astype(np.float32)
            out[f"stage{s}.leaves"] = self.leaves[s].astype(np.float32)
        return out

    @classmethod
    def from_tensors(cls, t: dict[str, np.ndarray]) -> "ShapePredictor":
        n = len([k for k in t if k.endswith(".anchor")])
        g = lambda s, k: np.asarray(t[f"stage{s}.{k}"])  # noqa: E731
        return cls(np.asarray(t["initial_shape"], np.float32), [g(s, "anchor") for s in range(n)],
                   [g(s, "deltas") for s in range(n)], [g(s, "split_idx") for s in range(n)],
                   [g(s, "split_thresh") for s in range(n)], [g(s, "leaves") for s in range(n)])



def similarity_transform(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ M @ src + t`` without reflection, as dlib's
    find_similarity_transform (Umeyama). In 2-D its SVD has a closed form: with the centred
    points as complex numbers, ``M`` is the rotation-scale ``z = sum(conj(s) * d) / sum(|s|^2)``
    (tests/test_landmarks_exact.py checks it against the SVD); far cheaper per call."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mf, mt = src.mean(0), dst.mean(0)
    ds, dd = src - mf, dst - mt
    m = _rotation_scale(ds, (ds ** 2).sum(1).mean(), dd)
    return m, mt - m @ mf


def _rotation_scale(ds: np.ndarray, sigma_from: float, dd: np.ndarray) -> np.ndarray:
    """The 2x2 ``c * R`` taking centred points ``ds`` (mean squared norm ``sigma_from``) nearest to ``dd``."""
    if sigma_from == 0:
        return np.eye(2)
    n = len(ds)
    a = float((ds[:, 0] @ dd[:, 0] + ds[:, 1] @ dd[:, 1]) / n / sigma_from)
    b = float((ds[:, 0] @ dd[:, 1] - ds[:, 1] @ dd[:, 0]) / n / sigma_from)
    return np.array([[a, -b], [b, a]])


def grey_intensity(rgb: np.ndarray) -> np.ndarray:
    """dlib's rgb -> grey: ``(r + g + b) // 3`` (uint8)."""
    if rgb.ndim == 2:
        return rgb
    total = rgb[..., 0].astype(np.uint16)
    total += rgb[..., 1]
    total += rgb[..., 2]
    return (total // 3).astype(np.uint8)


class LandmarkPredictor:
    def __init__(self, sp: ShapePredictor, meta: dict | None = None):
        self.sp = sp
        self.meta = meta or {}
        self.n_points = len(sp.initial_shape)
        self._depth = int(round(math.log2(sp.leaves[0].shape[1]))) if sp.leaves else 0
        self._init = sp.initial_shape.astype(np.float32)
        # The mean shape's half of similarity_transform(self._init, shape), computed once
        # (same operations as there, so the per-stage transforms are bit-identical).
        init64 = self._init.astype(np.float64)
        self._init_centred = init64 - init64.mean(0)
        self._init_spread = (self._init_centred ** 2).sum(1).mean()
        # Per stage, flat arrays for walking all trees at once: every split's two pixel
        # indices and threshold (tree t, node k at t * S + k), and the leaves as rows.
        self._stages = []
        for s in range(len(sp.anchor)):
            idx = sp.split_idx[s].astype(np.intp)
            n_trees, n_splits = idx.shape[:2]
            leaves = sp.leaves[s]
            self._stages.append((
                np.ascontiguousarray(sp.anchor[s], np.intp),
                np.ascontiguousarray(sp.deltas[s]),
                np.ascontiguousarray(idx[..., 0].ravel()),
                np.ascontiguousarray(idx[..., 1].ravel()),
                np.ascontiguousarray(sp.split_thresh[s].ravel()),
                np.arange(n_trees, dtype=np.intp) * n_splits,
                np.arange(n_trees, dtype=np.intp) * leaves.shape[1],
                np.ascontiguousarray(leaves.reshape(-1, leaves.shape[2])),
            ))
        # A tree's leaf is a function of its splits' outcomes: with depth <= 4 (dlib's default)
        # all 2^15 outcomes fit a table, one lookup per tree instead of a walk of `depth` steps.
        self._leaf_table = _leaf_table(self._depth) if 0 < self._depth <= 4 else None
        self._split_bits = (1 << np.arange(2 ** self._depth - 1)).astype(np.intp)

    @classmethod
    def load(cls, path: str | Path) -> "LandmarkPredictor":
        from safetensors import safe_open
        from safetensors.numpy import load_file

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"The face landmark model {path.name} is missing (looked in {path.parent}).")
        try:
            with safe_open(str(path), framework="np") as f:
                meta = json.loads((f.metadata() or {}).get("siamgui", "{}"))
            tensors = load_file(str(path))
            sp = ShapePredictor.from_tensors(tensors)
        except Exception as exc:  # noqa: BLE001 - safetensors' own error type too: any failure means damaged
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"The face landmark model {path.name} is damaged ({reason}).") from None
        return cls(sp, meta)

    def predict(self, grey: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """Landmarks (P, 2) in image pixels for a face box ``(left, top, right, bottom)``.

        ``box`` uses dlib's rectangle convention (right/bottom inclusive); ``grey``
        is the (H, W) uint8 intensity image from :func:`grey_intensity`.
        """
        h, w = grey.shape[:2]
        left, top, right, bottom = (float(v) for v in box)
        sx, sy = right - left, bottom - top
        scale = np.array([sx, sy])
        offset = np.array([left, top])
        shape = self._init.copy()
        # A zero border: a pixel position outside the image reads 0 once clipped onto it.
        padded = np.zeros((h + 2, w + 2), np.float32)
        padded[1:-1, 1:-1] = grey
        flat = padded.ravel()
        lo, hi = np.array([-1, -1]), np.array([w, h])
        stride = np.array([1, w + 2])
        for anchor, deltas, i0, i1, thresh, split_base, leaf_base, leaves in self._stages:
            m = self._shape_transform(shape).astype(np.float32)
            pts = deltas @ m.T + shape[anchor]  # float32, normalised space
            # Pixel positions: floor(left + sx * x + 0.5) and floor(top + sy * y + 0.5) in double.
            p = np.floor(pts.astype(np.float64) * scale + offset + 0.5).astype(np.intp)
            feats = flat[np.minimum(np.maximum(p, lo), hi) @ stride + (w + 3)]  # ufuncs: np.clip's wrapper is slower
            # Every split of every tree at once (cheaper than gathering level by level).
            go_left = (feats[i0] - feats[i1]) > thresh
            delta = leaves[leaf_base + self._leaves_reached(go_left, split_base)].sum(0, dtype=np.float32)
            shape = shape + delta.reshape(-1, 2)
        out = np.empty_like(shape, dtype=np.float64)
        out[:, 0] = left + sx * shape[:, 0]
        out[:, 1] = top + sy * shape[:, 1]
        return out

    def _leaves_reached(self, go_left: np.ndarray, split_base: np.ndarray) -> np.ndarray:
        """Each tree's leaf (0 .. 2^depth - 1) from all its splits' outcomes (tree-major)."""
        if self._leaf_table is not None:
            return self._leaf_table[go_left.reshape(len(split_base), -1) @ self._split_bits]
        node = np.zeros(len(split_base), np.intp)
        for _ in range(self._depth):
            node = 2 * node + 2 - go_left[split_base + node]
        return node - (2 ** self._depth - 1)

    def _shape_transform(self, dst: np.ndarray) -> np.ndarray:
        """``similarity_transform(self._init, dst)[0]`` with the mean shape's terms precomputed."""
        dst = dst.astype(np.float64)
        return _rotation_scale(self._init_centred, self._init_spread, dst - dst.mean(0))

    def box_from_landmarks(self, pts: np.ndarray) -> tuple[float, float, float, float]:
        """The square box for which this predictor's mean shape best fits ``pts`` (least squares)."""
        return fit_box(pts, self._init)


def _leaf_table(depth: int) -> np.ndarray:
    """The leaf reached for each pattern of split outcomes (bit k: split k goes left)."""
    n_splits = 2 ** depth - 1
    codes = np.arange(2 ** n_splits, dtype=np.intp)
    node = np.zeros_like(codes)
    for _ in range(depth):
        node = 2 * node + 2 - ((codes >> node) & 1)
    return node - n_splits


def fit_box(pts: np.ndarray, template: np.ndarray) -> tuple[float, float, float, float]:
    """The square box (left, top, right, bottom) in which ``template`` (points in 0-1 box
    coordinates) best fits ``pts`` (least squares)."""
    u = np.asarray(template, np.float64)
    p = np.asarray(pts, np.float64)
    # p = [l, t] + s * u: solve for l, t, s
    n = len(u)
    a = np.zeros((2 * n, 3))
    a[:n, 0], a[n:, 1] = 1, 1
    a[:n, 2], a[n:, 2] = u[:, 0], u[:, 1]
    b = np.r_[p[:, 0], p[:, 1]]
    (l, t, s), *_ = np.linalg.lstsq(a, b, rcond=None)
    return (l, t, l + s, t + s)


_predictors: dict[str, LandmarkPredictor] = {}
_lock = threading.Lock()


def get_predictor(path: str | Path) -> LandmarkPredictor:
    key = str(path)
    with _lock:
        if key not in _predictors:
            _predictors[key] = LandmarkPredictor.load(path)
        return _predictors[key]


# -- face chips -------------------------------------------------------------------------
def chip_transform(landmarks: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The 2x3 affine mapping chip pixel (x, y, 1) to image coordinates, as dlib computes it.

    Follows ``get_face_chip_details`` (similarity from the padded template to the
    landmarks), ``chip_details`` (angle, scale, ``centered_drect``) and
    ``extract_image_chips`` (chip corners to the rotated rectangle's corners).
    """
    if len(landmarks) != 5:
        raise ValueError("5 landmarks expected")
    template = (padding + CHIP_TEMPLATE_5) / (2 * padding + 1) * size
    m, t = similarity_transform(template, landmarks)
    p = m @ np.array([1.0, 0.0])
    angle = math.atan2(p[1], p[0])
    scale = math.hypot(p[0], p[1])
    centre = m @ np.array([size / 2.0, size / 2.0]) + t
    half = (size * scale - 1) / 2.0  # centered_drect: width-- then +-width/2
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])

    def corner(dx, dy):
        return rot @ np.array([dx, dy]) + centre

    tl, tr, bl = corner(-half, -half), corner(half, -half), corner(-half, half)
    a = np.empty((2, 3))
    a[:, 0] = (tr - tl) / (size - 1)
    a[:, 1] = (bl - tl) / (size - 1)
    a[:, 2] = tl
    return a


def extract_chip(rgb: np.ndarray, affine: np.ndarray, size: int = 150) -> np.ndarray:
    """Sample a (size, size, 3) uint8 chip from ``rgb`` through ``affine`` (chip -> image).

    When the chip is much smaller than its source region (over 2x), the source is
    first halved (Gaussian pyramid) as dlib does, so bilinear sampling does not alias.
    OpenCV's bilinear warp rounds where dlib's truncates (at most a few grey levels apart,
    tests/test_landmarks_exact.py) and takes a sixth of the time of the same sampling in numpy.
    """
    from siamgui.core.face.detect import _import_cv2  # the one locked first import (threads race otherwise)

    cv2 = _import_cv2()
    a = np.asarray(affine, np.float64).copy()
    img = rgb
    span = math.hypot(a[0, 0], a[1, 0]) * (size - 1) + 1  # source width of the chip
    level_scale = 1.0
    while span / (2.0 * level_scale) > size and min(img.shape[:2]) > 4:
        img = cv2.pyrDown(img)
        level_scale *= 2.0
    a /= level_scale
    if min(img.shape[:2]) < 2:  # a one-pixel-wide image: repeat its edge so every 2x2 neighbourhood exists
        img = cv2.copyMakeBorder(img, 0, max(0, 2 - img.shape[0]), 0, max(0, 2 - img.shape[1]),
                                 cv2.BORDER_REPLICATE)
    return cv2.warpAffine(np.ascontiguousarray(img), a, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)

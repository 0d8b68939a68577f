"""Face landmarks with dlib's 5-point shape predictor, evaluated in NumPy (no dlib).

The predictor (Kazemi & Sullivan's cascade of regression trees, dlib
``shape_predictor.h``) is read from the ``.safetensors`` file that
``siamgui import-dlib shape_predictor_5_face_landmarks.dat`` writes. Each of
its 15 stages samples 800 grey pixels placed relative to the current shape,
walks 500 depth-4 trees on pixel differences and adds their leaf vectors to
the shape. All trees of a stage are walked together with array indexing.

Also here: the face-chip geometry of dlib's ``get_face_chip_details`` and
``extract_image_chip`` (bilinear, values truncated, 0 outside the image), so
the network sees the chips it was trained on.
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
    """Least-squares similarity ``dst ~ M @ src + t`` (Umeyama, as dlib's find_similarity_transform)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mf, mt = src.mean(0), dst.mean(0)
    ds, dd = src - mf, dst - mt
    sigma_from = (ds ** 2).sum(1).mean()
    cov = dd.T @ ds / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    det = np.linalg.det(cov)
    if det < 0 or (det == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        if d[1] < d[0]:
            s[1, 1] = -1
        else:
            s[0, 0] = -1
    r = u @ s @ vt
    c = (d * np.diag(s)).sum() / sigma_from if sigma_from != 0 else 1.0
    m = c * r
    return m, mt - m @ mf


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
                np.arange(n_trees, dtype=np.intp) * leaves.shape[1] - n_splits,
                np.ascontiguousarray(leaves.reshape(-1, leaves.shape[2])),
            ))

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
        flat = grey.ravel()
        depth = self._depth
        for anchor, deltas, i0, i1, thresh, split_base, leaf_base, leaves in self._stages:
            m = self._shape_transform(shape).astype(np.float32)
            pts = deltas @ m.T + shape[anchor]  # float32, normalised space
            # Pixel positions: floor(left + sx * x + 0.5) and floor(top + sy * y + 0.5) in double.
            p = np.floor(pts.astype(np.float64) * scale + offset + 0.5).astype(np.intp)
            px, py = p[:, 0], p[:, 1]
            inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
            feats = np.zeros(len(px), np.float32)
            feats[inside] = flat[py[inside] * w + px[inside]]
            # Every split of every tree at once (cheaper than gathering level by level).
            go_left = (feats[i0] - feats[i1]) > thresh
            node = np.zeros(len(split_base), np.intp)
            for _ in range(depth):
                node = 2 * node + 2 - go_left[split_base + node]
            delta = leaves[leaf_base + node].sum(0, dtype=np.float32)
            shape = shape + delta.reshape(-1, 2)
        out = np.empty_like(shape, dtype=np.float64)
        out[:, 0] = left + sx * shape[:, 0]
        out[:, 1] = top + sy * shape[:, 1]
        return out

    def _shape_transform(self, dst: np.ndarray) -> np.ndarray:
        """``similarity_transform(self._init, dst)[0]`` with the mean shape's terms precomputed."""
        dst = dst.astype(np.float64)
        ds = self._init_centred
        dd = dst - dst.mean(0)
        cov = dd.T @ ds / len(ds)
        u, d, vt = np.linalg.svd(cov)
        s0 = s1 = 1.0
        det = np.linalg.det(cov)
        if det < 0 or (det == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
            if d[1] < d[0]:
                s1 = -1.0
            else:
                s0 = -1.0
        r = u @ np.array([[s0, 0.0], [0.0, s1]]) @ vt
        sigma_from = self._init_spread
        c = (d[0] * s0 + d[1] * s1) / sigma_from if sigma_from != 0 else 1.0
        return c * r

    def box_from_landmarks(self, pts: np.ndarray) -> tuple[float, float, float, float]:
        """The square box for which this predictor's mean shape best fits ``pts`` (least squares)."""
        return fit_box(pts, self._init)


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


def _bilinear_truncate(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """dlib's interpolate_bilinear for uint8 RGB: double maths, truncation, 0 outside."""
    h, w = img.shape[:2]
    if h < 2 or w < 2:  # a one-pixel-wide image: repeat its edge so every 2x2 neighbourhood exists
        img = np.pad(img, ((0, max(0, 2 - h)), (0, max(0, 2 - w))) + ((0, 0),) * (img.ndim - 2), mode="edge")
        h, w = img.shape[:2]
    c = img.shape[2] if img.ndim == 3 else 1
    x0 = np.floor(xs).ravel()
    y0 = np.floor(ys).ravel()
    fx = xs.ravel() - x0
    fy = ys.ravel() - y0
    x0 = x0.astype(np.intp)
    y0 = y0.astype(np.intp)
    ok = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < w) & (y0 + 1 < h)
    i00 = np.clip(y0, 0, h - 2) * w + np.clip(x0, 0, w - 2)
    # Channel planes (C, H*W): gathering along the last axis and weighting by (N,)
    # vectors is faster than row gathers and (N, 1) x (N, C) broadcasts.
    # Element by element the arithmetic is the same double expression as dlib's.
    planes = np.ascontiguousarray(img.reshape(h * w, c).T)
    gx = 1 - fx
    v = np.take(planes, i00, axis=1).astype(np.float64)
    v *= gx
    v += fx * np.take(planes, i00 + 1, axis=1)  # (1-fx)*tl + fx*tr
    v *= 1 - fy
    lower = np.take(planes, i00 + w, axis=1).astype(np.float64)
    lower *= gx
    lower += fx * np.take(planes, i00 + w + 1, axis=1)  # (1-fx)*bl + fx*br
    lower *= fy
    v += lower
    out = v.astype(np.uint8)  # values lie in [0, 255]; astype truncates like static_cast
    out[:, ~ok] = 0
    return np.ascontiguousarray(out.T).reshape(xs.shape + (c,)) if img.ndim == 3 else out.reshape(xs.shape)


_grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in _grids:
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        _grids[size] = (ys, xs)
    return _grids[size]


def extract_chip(rgb: np.ndarray, affine: np.ndarray, size: int = 150) -> np.ndarray:
    """Sample a (size, size, 3) uint8 chip from ``rgb`` through ``affine`` (chip -> image).

    When the chip is much smaller than its source region (over 2x), the source is
    first halved (Gaussian pyramid) as dlib does, so bilinear sampling does not alias.
    """
    a = np.asarray(affine, np.float64).copy()
    img = rgb
    span = math.hypot(a[0, 0], a[1, 0]) * (size - 1) + 1  # source width of the chip
    level_scale = 1.0
    if span / 2.0 > size:
        from siamgui.core.face.detect import _import_cv2  # the one locked first import (threads race otherwise)

        cv2 = _import_cv2()
        while span / (2.0 * level_scale) > size and min(img.shape[:2]) > 4:
            img = cv2.pyrDown(img)
            level_scale *= 2.0
        a /= level_scale
    ys, xs = _grid(size)
    sx = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
    sy = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    return _bilinear_truncate(np.ascontiguousarray(img), sx, sy)

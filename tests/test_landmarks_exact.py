"""The fast landmark predictor and chip sampler give what straightforward code gives.

The references below are the plain versions (one level of the tree walk at a time,
the library's ``similarity_transform``, dlib's bilinear sampling written out). The
predictor must match its reference bit for bit; the closed-form similarity must equal
dlib's SVD (Umeyama) form; OpenCV's chip warp may differ from dlib's truncating sampler
by rounding only (a few grey levels; LFW accuracy with it: bench/README.md).
"""

import math

import numpy as np
import pytest

from siamgui.core.face import landmarks as lm
from siamgui.core.face.dlib_format import ShapePredictor
from siamgui.core.resources import resources_dir

from conftest import LFW_ROOT, lfw_available


# -- references ---------------------------------------------------------------------------
def reference_predict(pred: lm.LandmarkPredictor, grey: np.ndarray, box) -> np.ndarray:
    sp = pred.sp
    h, w = grey.shape
    left, top, right, bottom = (float(v) for v in box)
    sx, sy = right - left, bottom - top
    init = sp.initial_shape.astype(np.float32)
    depth = int(round(math.log2(sp.leaves[0].shape[1])))
    shape = init.copy()
    for s in range(len(sp.anchor)):
        m = lm.similarity_transform(init, shape)[0].astype(np.float32)
        pts = sp.deltas[s] @ m.T + shape[sp.anchor[s]]
        feats = np.zeros(len(pts), np.float32)
        for f, (x, y) in enumerate(pts):
            px = math.floor(left + sx * float(x) + 0.5)
            py = math.floor(top + sy * float(y) + 0.5)
            if 0 <= px < w and 0 <= py < h:
                feats[f] = grey[py, px]
        idx, thresh, leaves = sp.split_idx[s], sp.split_thresh[s], sp.leaves[s]
        n_trees, n_splits = thresh.shape
        chosen = np.empty((n_trees, leaves.shape[2]), np.float32)
        for t in range(n_trees):
            node = 0
            for _ in range(depth):
                a, b = idx[t, node]
                node = 2 * node + (1 if feats[a] - feats[b] > thresh[t, node] else 2)
            chosen[t] = leaves[t, node - n_splits]
        shape = shape + chosen.sum(0, dtype=np.float32).reshape(-1, 2)
    out = np.empty(shape.shape, np.float64)
    out[:, 0] = left + sx * shape[:, 0]
    out[:, 1] = top + sy * shape[:, 1]
    return out


def reference_bilinear(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if h < 2 or w < 2:
        img = np.pad(img, ((0, max(0, 2 - h)), (0, max(0, 2 - w))) + ((0, 0),) * (img.ndim - 2), mode="edge")
        h, w = img.shape[:2]
    c = img.shape[2] if img.ndim == 3 else 1
    x0, y0 = np.floor(xs), np.floor(ys)
    fx, fy = (xs - x0).reshape(-1, 1), (ys - y0).reshape(-1, 1)
    x0, y0 = x0.astype(np.intp).ravel(), y0.astype(np.intp).ravel()
    ok = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < w) & (y0 + 1 < h)
    x0c, y0c = np.clip(x0, 0, w - 2), np.clip(y0, 0, h - 2)
    im = img.reshape(h, w, c).astype(np.float64)
    tl, tr = im[y0c, x0c], im[y0c, x0c + 1]
    bl, br = im[y0c + 1, x0c], im[y0c + 1, x0c + 1]
    v = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
    out = v.astype(np.uint8)
    out[~ok] = 0
    return out.reshape(xs.shape + (c,)) if img.ndim == 3 else out.reshape(xs.shape)


# -- predictors and images ----------------------------------------------------------------
def random_predictor(seed: int = 0, n_stages: int = 4, n_trees: int = 40, depth: int = 3,
                     n_feats: int = 60, n_points: int = 5) -> lm.LandmarkPredictor:
    rng = np.random.default_rng(seed)
    n_splits = 2 ** depth - 1
    init = rng.uniform(0.2, 0.8, (n_points, 2)).astype(np.float32)
    return lm.LandmarkPredictor(ShapePredictor(
        init,
        [rng.integers(0, n_points, n_feats).astype(np.int32) for _ in range(n_stages)],
        [rng.normal(0, 0.15, (n_feats, 2)).astype(np.float32) for _ in range(n_stages)],
        [rng.integers(0, n_feats, (n_trees, n_splits, 2)).astype(np.int32) for _ in range(n_stages)],
        [rng.normal(0, 30, (n_trees, n_splits)).astype(np.float32) for _ in range(n_stages)],
        [rng.normal(0, 0.003, (n_trees, n_splits + 1, 2 * n_points)).astype(np.float32) for _ in range(n_stages)],
    ))


def smooth_image(rng, h: int, w: int, channels: int = 3) -> np.ndarray:
    """Random blobs: smooth enough that landmark splits are not pure noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, channels))
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, max(2, max(h, w) / 2))
        img += rng.uniform(-90, 90, channels) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    img += rng.normal(0, 8, img.shape) + 128
    return np.clip(img, 0, 255).astype(np.uint8)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """dlib's find_similarity_transform as written there: SVD of the covariance, no reflection."""
    ds, dd = src - src.mean(0), dst - dst.mean(0)
    cov = dd.T @ ds / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(cov) < 0:
        s[1 if d[1] < d[0] else 0] *= -1
    return (d * np.diag(s)).sum() / (ds ** 2).sum(1).mean() * (u @ s @ vt)


def random_boxes(rng, h: int, w: int, n: int):
    for _ in range(n):  # some partly or wholly outside the image, some tiny
        cx, cy = rng.uniform(-0.2 * w, 1.2 * w), rng.uniform(-0.2 * h, 1.2 * h)
        side = rng.uniform(3, 1.3 * max(h, w))
        yield (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def bundled_predictor():
    path = resources_dir() / "models" / "shape_predictor_5.safetensors"
    if not path.is_file():
        pytest.skip("bundled landmark model missing")
    return lm.get_predictor(path)


# -- tests --------------------------------------------------------------------------------
def test_predict_matches_reference_random_model():
    rng = np.random.default_rng(1)
    # depth 3: the leaf table; depth 5: too deep for a table, the trees are walked
    for pred in (random_predictor(), random_predictor(seed=8, depth=5)):
        for h, w in ((80, 120), (64, 64), (1, 7)):
            grey = lm.grey_intensity(smooth_image(rng, h, w))
            for box in random_boxes(rng, h, w, 25):
                np.testing.assert_array_equal(pred.predict(grey, box), reference_predict(pred, grey, box))


def test_predict_matches_reference_bundled_model():
    pred = bundled_predictor()
    rng = np.random.default_rng(2)
    images = [smooth_image(rng, 120, 100)]
    if lfw_available():
        from PIL import Image

        images.append(np.asarray(Image.open(LFW_ROOT / "George_W_Bush" / "George_W_Bush_0001.jpg").convert("RGB")))
    boxes_checked = 0
    for rgb in images:
        grey = lm.grey_intensity(rgb)
        h, w = grey.shape
        for box in [(w * 0.28, h * 0.28, w * 0.72, h * 0.72)] + list(random_boxes(rng, h, w, 2)):
            got = pred.predict(grey, box)
            np.testing.assert_array_equal(got, reference_predict(pred, grey, box))
            boxes_checked += 1
    assert boxes_checked >= 3


def test_closed_form_similarity_equals_umeyama():
    rng = np.random.default_rng(7)
    for k in range(200):
        src = rng.normal(size=(int(rng.integers(2, 70)), 2))
        if k % 3 == 0:  # a near-similarity with noise; otherwise any points, mirrored ones included
            ang, sc = rng.uniform(-3, 3), rng.uniform(0.1, 5)
            m = sc * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
            dst = src @ m.T + rng.normal(scale=0.05, size=src.shape) + rng.normal(size=2)
        else:
            dst = rng.normal(size=src.shape) * rng.uniform(0.1, 10)
            if k % 3 == 1:
                dst[:, 0] = -src[:, 0] + 0.1 * dst[:, 0]
        m, t = lm.similarity_transform(src, dst)
        np.testing.assert_allclose(m, umeyama(src, dst), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(t, dst.mean(0) - m @ src.mean(0), atol=1e-12)


def test_predict_is_not_trivially_constant():
    # Guards the comparison above: different images give different landmarks.
    pred = random_predictor(seed=4)
    rng = np.random.default_rng(5)
    box = (10.0, 10.0, 70.0, 70.0)
    a = pred.predict(lm.grey_intensity(smooth_image(rng, 80, 80)), box)
    b = pred.predict(lm.grey_intensity(smooth_image(rng, 80, 80)), box)
    assert not np.array_equal(a, b)


def test_extract_chip_matches_reference():
    rng = np.random.default_rng(6)
    img = smooth_image(rng, 90, 110)
    for scale in (0.4, 1.0, 3.0):  # 3.0: the chip spans over twice its size, so the pyramid is used
        angle = rng.uniform(-0.6, 0.6)
        size = 40
        c, s = math.cos(angle) * scale, math.sin(angle) * scale
        affine = np.array([[c, -s, rng.uniform(-10, 60)], [s, c, rng.uniform(-10, 50)]])
        chip = lm.extract_chip(img, affine, size)
        assert chip.shape == (size, size, 3) and chip.flags.c_contiguous
        # reference: the same geometry, through the reference sampler
        a, src = affine.copy(), img
        span = math.hypot(a[0, 0], a[1, 0]) * (size - 1) + 1
        if span / 2.0 > size:
            import cv2

            level = 1.0
            while span / (2.0 * level) > size and min(src.shape[:2]) > 4:
                src = cv2.pyrDown(src)
                level *= 2.0
            a /= level
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        want = reference_bilinear(src, a[0, 0] * xs + a[0, 1] * ys + a[0, 2], a[1, 0] * xs + a[1, 1] * ys + a[1, 2])
        diff = np.abs(chip.astype(int) - want.astype(int))
        inside = want.reshape(-1, 3).any(1).reshape(size, size)  # dlib's 0 outside: the warp blends at the border
        inside[1:-1, 1:-1] &= inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]
        assert diff[inside].max() <= 3 and diff[inside].mean() < 1.0, (diff[inside].max(), diff[inside].mean())
        assert chip.std() > 1  # not an all-black chip that would match trivially

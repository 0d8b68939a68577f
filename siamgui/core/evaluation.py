"""Verification metrics: ROC, AUC, EER, accuracy and thresholds.

Convention: a pair is predicted "same" when ``distance < threshold``.
``same`` arrays are booleans (True = same class), the opposite of the loss's
``dissimilar`` label.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _check(distances, same) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64).ravel()
    s = np.asarray(same, dtype=bool).ravel()
    if d.shape != s.shape:
        raise ValueError("distances and labels differ in length")
    if len(d) == 0:
        raise ValueError("no pairs to evaluate")
    if not np.all(np.isfinite(d)):
        raise ValueError("distances contain NaN or infinity")
    return d, s


def roc_curve(distances, same) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(far, tar, thresholds)``: accepting pairs with ``distance < threshold``.

    Thresholds run from below the smallest distance (nothing accepted) to above
    the largest (everything accepted), one point per distinct distance.
    """
    d, s = _check(distances, same)
    n_same, n_diff = s.sum(), (~s).sum()
    order = np.argsort(d, kind="mergesort")
    d_sorted, s_sorted = d[order], s[order]
    tp = np.cumsum(s_sorted)
    fp = np.cumsum(~s_sorted)
    # keep the last index of each run of equal distances
    last = np.r_[np.flatnonzero(np.diff(d_sorted)), len(d_sorted) - 1]
    tar = np.r_[0.0, tp[last] / max(n_same, 1)]
    far = np.r_[0.0, fp[last] / max(n_diff, 1)]
    nxt = np.r_[d_sorted[last][1:], d_sorted[-1] + 1e-6 + abs(d_sorted[-1]) * 1e-6]
    thresholds = np.r_[d_sorted[0] - 1e-6, (d_sorted[last] + nxt) / 2.0]
    thresholds[-1] = nxt[-1]
    return far, tar, thresholds


def auc(distances, same) -> float:
    """Area under the ROC curve (probability a same pair is closer than a different one)."""
    far, tar, _ = roc_curve(distances, same)
    return float(np.trapezoid(tar, far))


def eer(distances, same) -> tuple[float, float]:
    """Equal error rate and the threshold where FAR = FRR (linear interpolation)."""
    far, tar, thr = roc_curve(distances, same)
    frr = 1.0 - tar
    diff = far - frr  # increases from -1 to +1
    i = int(np.searchsorted(diff, 0.0))
    if i == 0:
        return float(far[0]), float(thr[0])
    if i >= len(diff):
        return float(far[-1]), float(thr[-1])
    d0, d1 = diff[i - 1], diff[i]
    w = 0.0 if d1 == d0 else -d0 / (d1 - d0)
    rate = far[i - 1] + w * (far[i] - far[i - 1])
    return float(rate), float(thr[i - 1] + w * (thr[i] - thr[i - 1]))


def accuracy_at(distances, same, threshold: float) -> float:
    d, s = _check(distances, same)
    return float(np.mean((d < threshold) == s))


def best_threshold(distances, same) -> tuple[float, float]:
    """The threshold that maximises accuracy, and that accuracy.

    Among equally good thresholds the middle one of the best run is chosen
    (a stable, margin-maximising choice).
    """
    far, tar, thr = roc_curve(distances, same)
    d, s = _check(distances, same)
    n_same, n_diff = s.sum(), (~s).sum()
    acc = (tar * n_same + (1.0 - far) * n_diff) / len(d)
    best = acc.max()
    idx = np.flatnonzero(np.isclose(acc, best, rtol=0, atol=1e-12))
    # first maximal run
    run_end = idx[0]
    while run_end + 1 < len(acc) and np.isclose(acc[run_end + 1], best, rtol=0, atol=1e-12):
        run_end += 1
    return float((thr[idx[0]] + thr[run_end]) / 2.0), float(best)


def threshold_at_far(distances, same, target_far: float) -> float:
    """The largest threshold whose false-accept rate is at most ``target_far``."""
    d, s = _check(distances, same)
    diff = np.sort(d[~s])
    if len(diff) == 0:
        return float(d.max() + 1e-6)
    k = int(np.floor(target_far * len(diff) + 1e-9))
    if k >= len(diff):
        return float(diff[-1] + 1e-6)
    return float(diff[k])  # accepts exactly the k distances strictly below (ties aside)


def histograms(distances, same, bins: int = 40) -> dict:
    d, s = _check(distances, same)
    edges = np.linspace(d.min(), d.max() if d.max() > d.min() else d.min() + 1.0, bins + 1)
    return {"edges": edges.tolist(), "same": np.histogram(d[s], edges)[0].tolist(),
            "different": np.histogram(d[~s], edges)[0].tolist()}


def tenfold_accuracy(distances, same, folds) -> tuple[float, float]:
    """Standard LFW View 2 protocol: threshold chosen on 9 folds, tested on the 10th."""
    d, s = _check(distances, same)
    folds = np.asarray(folds)
    accs = []
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        t, _ = best_threshold(d[train], s[train])
        accs.append(accuracy_at(d[test], s[test], t))
    return float(np.mean(accs)), float(np.std(accs))


@dataclass
class Metrics:
    pairs: int
    auc: float
    eer: float
    eer_threshold: float
    threshold: float
    accuracy: float
    best_threshold: float
    best_accuracy: float

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(distances, same, threshold: float) -> Metrics:
    d, s = _check(distances, same)
    rate, t_eer = eer(d, s)
    t_best, acc_best = best_threshold(d, s)
    return Metrics(len(d), auc(d, s), rate, t_eer, float(threshold), accuracy_at(d, s, threshold), t_best, acc_best)


OPERATING_POINTS = ("best-accuracy", "eer", "far")


def choose_threshold(distances, same, point: str = "best-accuracy", target_far: float = 0.01) -> float:
    """The threshold for an operating point: best accuracy, EER, or a target FAR."""
    if point == "best-accuracy":
        return best_threshold(distances, same)[0]
    if point == "eer":
        return eer(distances, same)[1]
    if point == "far":
        return threshold_at_far(distances, same, target_far)
    raise ValueError(f"Unknown operating point {point!r}; choose from {OPERATING_POINTS}")

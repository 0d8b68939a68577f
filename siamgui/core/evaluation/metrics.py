"""Verification metrics: ROC, DET, AUC, EER, accuracy, TAR at FAR and thresholds.

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


#: The false-accept rates at which TAR is reported: 10^-1 .. 10^-4.
FAR_LEVELS = (1e-1, 1e-2, 1e-3, 1e-4)
#: Below this many false accepts at the operating point a TAR figure is marked rough.
ROUGH_BELOW = 10


@dataclass
class TarAtFar:
    """TAR at one FAR level, with the impostor pairs behind it.

    ``supported`` is False when there are fewer than ``1 / far`` impostor pairs: the
    threshold would then sit below every impostor distance, and no measured FAR could
    tell ``far`` from zero. ``false_accepts`` is how many impostor pairs the threshold
    accepts (``floor(far * impostor_pairs)``, fewer on ties); under :data:`ROUGH_BELOW`
    the figure rests on a handful of pairs.
    """

    far: float
    supported: bool
    impostor_pairs: int
    false_accepts: int = 0
    tar: float | None = None
    threshold: float | None = None

    @property
    def impostors_needed(self) -> int:
        return round(1.0 / self.far)

    @property
    def rough(self) -> bool:
        return self.supported and self.false_accepts < ROUGH_BELOW

    def to_dict(self) -> dict:
        return {**asdict(self), "rough": self.rough}


def far_level_supported(far: float, impostor_pairs: int) -> bool:
    """A level is supported when at least ``1 / far`` impostor pairs stand behind it."""
    return impostor_pairs * far >= 1.0 - 1e-9


def tar_at_far(distances, same, levels=FAR_LEVELS) -> list[TarAtFar]:
    """True-accept rate at each false-accept level (threshold from :func:`threshold_at_far`)."""
    d, s = _check(distances, same)
    impostors = d[~s]
    genuine = d[s]
    out = []
    for far in levels:
        n = len(impostors)
        if not far_level_supported(far, n) or len(genuine) == 0:
            out.append(TarAtFar(float(far), False, n))
            continue
        t = threshold_at_far(d, s, far)
        out.append(TarAtFar(float(far), True, n, int(np.sum(impostors < t)), float(np.mean(genuine < t)), t))
    return out


def det_curve(distances, same) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(far, frr, thresholds)``: the ROC's points as error rates (for a log-log DET plot)."""
    far, tar, thr = roc_curve(distances, same)
    return far, 1.0 - tar, thr


def rates_at(distances, same, thresholds) -> dict[str, np.ndarray]:
    """FAR, FRR, accuracy and error counts at each threshold (``distance < threshold`` accepts)."""
    d, s = _check(distances, same)
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    genuine, impostors = np.sort(d[s]), np.sort(d[~s])
    false_accepts = np.searchsorted(impostors, t, side="left")  # impostors strictly below t
    false_rejects = len(genuine) - np.searchsorted(genuine, t, side="left")
    return {"threshold": t, "far": false_accepts / max(len(impostors), 1),
            "frr": false_rejects / max(len(genuine), 1),
            "accuracy": 1.0 - (false_accepts + false_rejects) / len(d),
            "false_accepts": false_accepts, "false_rejects": false_rejects}


def threshold_table(distances, same, *, extra=(), steps: int = 12) -> list[dict]:
    """Candidate thresholds with their FAR, FRR and accuracy, ascending.

    The candidates: ``steps`` evenly spaced ones between the 1st and 99th percentile of
    all distances, the EER and best-accuracy thresholds, the threshold of each supported
    FAR level, and ``extra`` (e.g. the model's own), each labelled.
    """
    d, s = _check(distances, same)
    labelled: dict[float, str] = {}
    lo, hi = np.percentile(d, [1, 99])
    for t in np.linspace(lo, hi, steps):
        labelled.setdefault(round(float(t), 4), "")
    for t, label in [(eer(d, s)[1], "EER"), (best_threshold(d, s)[0], "best accuracy"),
                     *((r.threshold, f"FAR {r.far:g}") for r in tar_at_far(d, s) if r.supported),
                     *extra]:
        key = round(float(t), 4)
        labelled[key] = ", ".join(x for x in (labelled.get(key, ""), label) if x)
    ts = sorted(labelled)
    r = rates_at(d, s, ts)
    return [{"threshold": t, "label": labelled[t], "far": float(r["far"][i]), "frr": float(r["frr"][i]),
             "accuracy": float(r["accuracy"][i]), "false_accepts": int(r["false_accepts"][i]),
             "false_rejects": int(r["false_rejects"][i])} for i, t in enumerate(ts)]

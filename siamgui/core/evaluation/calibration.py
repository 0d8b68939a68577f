"""What a threshold means for a model: FAR and FRR at each threshold on its calibration data.

A model file may carry a compact table under the metadata key ``"calibration"``
(:data:`CALIBRATION_KEY`), written when the model is trained or evaluated::

    {"source": "LFW View 2", "genuine_pairs": 3000, "impostor_pairs": 3000,
     "thresholds": [...], "far": [...], "frr": [...]}

Thresholds ascend; ``far[i]``/``frr[i]`` are the rates when ``distance < thresholds[i]``
accepts. Between rows the rates are interpolated linearly. The bundled model's
table (from LFW) also lives in ``resources/models/face.calibration.json``, used when
the model file has none (:func:`calibration_for`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from siamgui.core.evaluation.metrics import _check, rates_at

CALIBRATION_KEY = "calibration"
#: Resource file with the bundled model's table, beside the model file.
BUNDLED_CALIBRATION_NAME = "face.calibration.json"


@dataclass
class Calibration:
    source: str
    genuine_pairs: int
    impostor_pairs: int
    thresholds: np.ndarray
    far: np.ndarray
    frr: np.ndarray

    def to_dict(self) -> dict:
        return {"source": self.source, "genuine_pairs": self.genuine_pairs, "impostor_pairs": self.impostor_pairs,
                "thresholds": [round(float(t), 6) for t in self.thresholds],
                "far": [round(float(v), 6) for v in self.far], "frr": [round(float(v), 6) for v in self.frr]}

    @classmethod
    def from_dict(cls, d) -> Calibration | None:
        """The table in ``d``, or None when it is missing or malformed (metadata is untrusted)."""
        try:
            t, far, frr = (np.asarray(d[k], dtype=np.float64) for k in ("thresholds", "far", "frr"))
            cal = cls(str(d["source"]), int(d["genuine_pairs"]), int(d["impostor_pairs"]), t, far, frr)
        except (KeyError, TypeError, ValueError):
            return None
        ok = (t.ndim == 1 and len(t) >= 2 and t.shape == far.shape == frr.shape
              and np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)
              and np.all((far >= 0) & (far <= 1)) and np.all((frr >= 0) & (frr <= 1))
              and cal.genuine_pairs > 0 and cal.impostor_pairs > 0)
        return cal if ok else None

    def rates(self, threshold: float) -> tuple[float, float]:
        """(FAR, FRR) at ``threshold``, interpolated; clamped at the table's ends."""
        return (float(np.interp(threshold, self.thresholds, self.far)),
                float(np.interp(threshold, self.thresholds, self.frr)))


def calibration_table(distances, same, source: str, points: int = 24, extra=()) -> Calibration:
    """A compact FAR/FRR-vs-threshold table (about ``3 * points`` rows).

    The thresholds: ``points`` evenly spaced from the smallest distance to just above the
    largest, plus the impostor distances at ``points`` false-accept rates and the genuine
    distances at ``points`` false-reject rates, log-spaced from one pair to a half, so
    the tails where thresholds are set are resolved pair by pair; and the ``extra``
    thresholds (the model's own), whose rates are then exact.
    """
    d, s = _check(distances, same)
    if s.all() or not s.any():
        raise ValueError("calibration needs both genuine and impostor pairs")
    lo, hi = float(d.min()), float(d.max())
    imp, gen = np.sort(d[~s]), np.sort(d[s])
    far_ranks = np.unique(np.geomspace(1, max(len(imp) / 2, 1), points).astype(int))  # accept this many
    frr_ranks = np.unique(np.geomspace(1, max(len(gen) / 2, 1), points).astype(int))  # reject this many
    t = np.unique(np.round(np.r_[np.linspace(lo, hi + max(1e-6, (hi - lo) / points), points),
                                 imp[far_ranks - 1] + 1e-6, gen[len(gen) - frr_ranks] - 1e-6, *extra], 6))
    r = rates_at(d, s, t)
    return Calibration(source, int(s.sum()), int((~s).sum()), t, r["far"], r["frr"])


def _one_in(rate: float) -> str:
    n = 1.0 / rate
    digits = max(0, math.floor(math.log10(n)) - 1)  # two significant figures
    return str(int(round(n, -digits)))


def _percent(rate: float) -> str:
    p = rate * 100
    return f"{p:.0f}" if p >= 9.5 else f"{p:.2g}"


def describe_threshold(cal: Calibration, threshold: float) -> str:
    """One sentence, e.g. "at 0.60: about 1 stranger in 300 accepted, 1 % of genuine
    pairs rejected (LFW View 2)"."""
    far, frr = cal.rates(threshold)
    if far * cal.impostor_pairs < 0.5:
        strangers = f"no stranger among {cal.impostor_pairs} accepted"
    elif far >= 0.1:
        strangers = f"about {_percent(far)} % of strangers accepted"
    else:
        strangers = f"about 1 stranger in {_one_in(far)} accepted"
    if frr * cal.genuine_pairs < 0.5:
        genuine = f"no genuine pair among {cal.genuine_pairs} rejected"
    else:
        genuine = f"{_percent(frr)} % of genuine pairs rejected"
    shown = f"{threshold:.2f}" if round(threshold, 2) == round(threshold, 4) else f"{threshold:.3f}"
    return f"at {shown}: {strangers}, {genuine} ({cal.source})"


def bundled_calibration() -> dict | None:
    """The resource file's content ({"model": {...}, "calibration": {...}}), or None."""
    from siamgui.core.resources import resources_dir

    path = resources_dir() / "models" / BUNDLED_CALIBRATION_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _same_weights(meta: dict, model: dict) -> bool:
    prov = meta.get("provenance") or {}
    return (isinstance(prov, dict) and bool(model.get("provenance_sha256"))
            and prov.get("sha256") == model.get("provenance_sha256")
            and (meta.get("architecture") or {}).get("name") == model.get("architecture"))


def calibration_for(meta: dict) -> Calibration | None:
    """The model's calibration: its own metadata's table, else the bundled model's
    resource table when ``meta`` describes the same weights; None when neither."""
    own = meta.get(CALIBRATION_KEY)
    if own is not None:
        return Calibration.from_dict(own)
    res = bundled_calibration()
    if isinstance(res, dict) and isinstance(res.get("model"), dict) and _same_weights(meta, res["model"]):
        return Calibration.from_dict(res.get(CALIBRATION_KEY) or {})
    return None


def threshold_meaning(meta: dict, threshold: float | None = None) -> str | None:
    """:func:`describe_threshold` for a model's metadata at ``threshold`` (default: the
    model's), or None when the model has no calibration data."""
    cal = calibration_for(meta)
    if cal is None:
        return None
    return describe_threshold(cal, float(meta["threshold"]) if threshold is None else float(threshold))


def save_with_threshold(model: str | os.PathLike, target: str | os.PathLike, threshold: float,
                        calibration: Calibration | None = None) -> dict:
    """"Use this threshold": a copy of ``model`` at ``target`` with ``threshold`` (and the
    calibration table it was chosen on); the original file is never changed."""
    from siamgui.core.modelfile import save_copy

    if not math.isfinite(float(threshold)):
        raise ValueError("the threshold must be a finite number")
    changes: dict = {"threshold": float(threshold)}
    if calibration is not None:
        changes[CALIBRATION_KEY] = calibration.to_dict()
    return save_copy(model, target, **changes)

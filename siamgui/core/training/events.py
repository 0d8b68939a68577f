"""What a training job reports and returns, and how it is steered.

:func:`~siamgui.core.training.train` yields :class:`Log`, :class:`Loading`,
:class:`Step`, :class:`Epoch` and, last, :class:`Finished` (holding a
:class:`TrainResult`); it checks a :class:`TrainControl` between batches.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siamgui.core import evaluation as ev
from siamgui.core.modelfile import save_model
from siamgui.core.models import SiameseNetwork


class TrainControl:
    """Cooperative pause / resume / cancel, checked between batches (thread-safe)."""

    def __init__(self):
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_if_paused(self, timeout: float | None = None) -> None:
        while not self._running.wait(0.1 if timeout is None else timeout):
            if timeout is not None:
                return


def time_left(seconds: float) -> str:
    """An ETA as people say it: "about 2 min left", "about 40 s left" (CLI progress and the Train tab)."""
    s = max(0.0, float(seconds))
    if s < 90:
        return f"about {max(5, int(round(s / 5.0)) * 5)} s left" if s >= 2.5 else "a few seconds left"
    return f"about {int(round(s / 60.0))} min left"


# -- events --------------------------------------------------------------------------
@dataclass
class Log:
    level: str  # "info" | "warning"
    message: str


@dataclass
class Loading:
    """Images being decoded and prepared (once, before the first epoch)."""

    done: int
    total: int


@dataclass
class Step:
    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    global_step: int
    total_steps: int
    loss: float
    running_loss: float
    lr: float
    pairs_per_s: float
    #: Seconds of training left (the plan's remaining steps at the measured pace, capped by the time budget).
    eta_s: float


@dataclass
class Epoch:
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    val_auc: float | None
    val_eer: float | None
    val_accuracy: float | None
    is_best: bool
    elapsed_s: float
    #: Seconds of training left after this epoch (the plan at the measured pace, capped by the budget).
    eta_s: float | None = None


@dataclass
class Finished:
    result: "TrainResult | None"
    cancelled: bool = False
    reason: str = ""


@dataclass
class TrainResult:
    network: SiameseNetwork
    meta: dict[str, Any]
    #: Validation distances and same-class flags at the best epoch (for ROC, histograms).
    val_distances: np.ndarray
    val_same: np.ndarray
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    def set_threshold(self, threshold: float, point: str = "custom") -> None:
        """Make ``threshold`` the model's threshold; metrics are recomputed for it."""
        m = ev.evaluate(self.val_distances, self.val_same, threshold)
        self.meta["threshold"] = float(threshold)
        self.meta["metrics"].update(m.to_dict())
        self.meta["metrics"]["operating_point"] = point

    def choose_threshold(self, point: str = "best-accuracy", target_far: float = 0.01) -> float:
        t = ev.choose_threshold(self.val_distances, self.val_same, point, target_far)
        self.set_threshold(t, point if point != "far" else f"far={target_far:g}")
        return t

    def save(self, path: str | os.PathLike) -> Path:
        return save_model(path, self.network, self.meta)

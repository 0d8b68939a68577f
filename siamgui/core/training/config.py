"""What a training job is asked to do: :class:`TrainConfig`, the preset defaults, and their checks."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from siamgui.core.distances import get_distance
from siamgui.core.errors import SiamguiError
from siamgui.core.training.objective import LOSSES, OBJECTIVES

#: Defaults per preset; the training-recipe work tunes these.
PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    # face: batch-hard triplet beat contrastive on held-out LFW identities (docs/training.md).
    "face": dict(arch="resnet", arch_kwargs={"width": 32, "blocks": [1, 1, 1, 1]}, image_size=64,
                 embedding_dim=128, loss="triplet", margin=1.0, epochs=12, batch_size=64, lr=2e-3, augmentation={}),
    "signature": dict(arch="compact-cnn", arch_kwargs={"width": 32}, image_size=64, embedding_dim=64,
                      margin=1.0, epochs=12, batch_size=32, lr=2e-3, augmentation={}),
    # generic: the compact CNN beat the ResNet on unseen classes of the suite's synthetic sets at equal
    # wall time (shapes AUC 0.9995 vs 0.94; docs/training.md, "Training suite").
    "generic": dict(arch="compact-cnn", arch_kwargs={"width": 32}, image_size=64,
                    embedding_dim=128, margin=1.0, epochs=12, batch_size=32, lr=2e-3,
                    augmentation=dict(brightness=0.0, contrast=0.0)),
}
#: What ``augmentation`` may set (the options of preprocess.Augmenter).
AUGMENTATION_OPTIONS = frozenset({"rotate_deg", "scale", "shift", "brightness", "contrast", "hflip"})
#: Safer defaults when starting from an existing model (fine-tuning): a low learning rate, few
#: epochs, early stop on validation EER, so the starting weights are not trained away (docs/training.md).
FINETUNE_DEFAULTS = dict(epochs=3, lr=1e-5, patience=2)
#: The automatic amount of training, used when no epoch count is given (docs/training.md, "How long
#: training runs"): at least AUTO_MIN_STEPS optimisation steps (longer epochs on small folders), a
#: wall-clock budget, and an early stop when validation stops improving.
AUTO_MIN_STEPS = 1200
AUTO_BUDGET_MIN = 5.0
AUTO_PATIENCE = 4
#: The automatic validation split (``val_split=None``): hold out AUTO_VAL_SPLIT of the classes only when
#: the folder has at least AUTO_HOLDOUT_MIN_CLASSES classes with 2+ images. Below that the held-out classes
#: cost more than they tell: every class is trained on (docs/training.md, "Training suite").
AUTO_VAL_SPLIT = 0.2
AUTO_HOLDOUT_MIN_CLASSES = 20


@dataclass
class TrainConfig:
    data_dir: str
    preset: str = "generic"
    arch: str | None = None
    arch_kwargs: dict[str, Any] | None = None
    image_size: int | None = None
    embedding_dim: int | None = None
    #: None = the preset's default loss ("triplet" for faces, else "contrastive").
    loss: str | None = None
    margin: float | None = None
    distance: str = "euclidean"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    #: Fraction of the classes held out for validation (epoch choice, threshold calibration); None =
    #: automatic: AUTO_VAL_SPLIT when the folder has AUTO_HOLDOUT_MIN_CLASSES classes (2+ images), else none.
    val_split: float | None = None
    seed: int = 0
    device: str = "auto"
    #: Pairs per epoch; None = twice the training images (at least 512, at most 20,000).
    pairs_per_epoch: int | None = None
    val_pairs: int = 2000
    augment: bool = True
    #: Options of the training augmentation (:class:`~siamgui.core.preprocess.Augmenter`: rotate_deg,
    #: scale, shift, brightness, contrast, hflip); None = the preset's (``augmentation`` in PRESET_DEFAULTS).
    augmentation: dict[str, Any] | None = None
    amp: bool = True
    #: None/"scratch", "bundled", or a model file to fine-tune.
    init: str | None = None
    #: Fraction of the encoder's parameter tensors (input side first) kept frozen.
    freeze_fraction: float = 0.0
    #: Stop when validation EER has not improved for this many epochs (None = never).
    patience: int | None = None
    workers: int = 2
    #: Keep prepared chips on disk (:mod:`siamgui.core.face.chips`); None = only for face
    #: preprocessing, where preparing an image (detection, landmarks) is the expensive part.
    chip_cache: bool | None = None
    #: Wall-clock budget of the training loop in seconds (None = none): the cosine learning
    #: rate follows the larger of step and time progress, and training stops (after
    #: validating) when the budget is spent.
    time_budget_s: float | None = None
    #: Share of a P x K batch's classes chosen as look-alikes (nearest running centroids) of the
    #: others: class-level hard mining (triplet loss); None = the preset's (0 = random classes).
    hard_classes: float | None = None
    #: Channels-last memory format for the CPU training step (faster, but opt-in: see fit.py).
    channels_last: bool = False
    #: At least this many optimisation steps (epochs are lengthened to reach it); set by
    #: :meth:`resolved` when the amount of training is automatic (no epoch count given).
    min_steps: int | None = None

    @property
    def automatic_plan(self) -> bool:
        """On a resolved config: True when the amount of training was decided automatically."""
        return self.min_steps is not None

    @property
    def automatic(self) -> bool:
        """True when the amount of training is decided from the data and a time budget (no epochs given)."""
        return self.epochs is None and not self.fine_tuning

    @property
    def fine_tuning(self) -> bool:
        return self.init not in (None, "", "scratch")

    def resolved(self) -> "TrainConfig":
        """A copy with every unset option taken from the preset (or fine-tuning) defaults."""
        if self.preset not in PRESET_DEFAULTS:
            raise SiamguiError(f"Unknown preset {self.preset!r}; choose from {', '.join(PRESET_DEFAULTS)}")
        d = dict(PRESET_DEFAULTS[self.preset])
        loss = self.loss if self.loss is not None else d.get("loss", "contrastive")
        if loss not in LOSSES:
            raise SiamguiError(f"Unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
        if self.fine_tuning:
            d.update(FINETUNE_DEFAULTS)
        if OBJECTIVES[loss].default_margin is not None:
            d["margin"] = OBJECTIVES[loss].default_margin
        c = copy.deepcopy(self)
        c.loss = loss
        if self.automatic:
            c.min_steps = c.min_steps or AUTO_MIN_STEPS
            c.time_budget_s = c.time_budget_s or AUTO_BUDGET_MIN * 60.0
            c.patience = c.patience if c.patience is not None else AUTO_PATIENCE
        if c.arch is not None and c.arch != d["arch"]:
            d["arch_kwargs"] = {}  # the preset's kwargs belong to the preset's architecture
        for key in ("arch", "arch_kwargs", "image_size", "embedding_dim", "margin", "epochs", "batch_size", "lr",
                    "patience", "hard_classes", "augmentation"):
            if getattr(c, key) is None and key in d:
                setattr(c, key, copy.deepcopy(d[key]))
        if c.arch_kwargs is None:
            c.arch_kwargs = {}
        if c.augmentation is None:
            c.augmentation = {}
        c._check()
        return c

    def _check(self) -> None:
        """Refuse options training cannot use, with a message a user can act on."""
        for key, lo in (("epochs", 1), ("batch_size", 2), ("image_size", 8), ("embedding_dim", 2), ("min_steps", 1)):
            if key == "min_steps" and self.min_steps is None:
                continue
            if int(getattr(self, key)) < lo:
                raise SiamguiError(f"{key.replace('_', ' ')} must be at least {lo}.")
        for key, hi in (("image_size", 1024), ("embedding_dim", 8192), ("batch_size", 65536)):  # preprocessing; memory
            if int(getattr(self, key)) > hi:
                raise SiamguiError(f"{key.replace('_', ' ')} must be at most {hi}.")
        if self.val_split is not None and not (0.0 <= self.val_split < 1.0):
            raise SiamguiError("The validation split must be between 0 and 1.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise SiamguiError("The learning rate must be a positive number.")
        if not (self.margin > 0):
            raise SiamguiError("The margin must be positive.")
        if self.time_budget_s is not None and not (self.time_budget_s > 0 and math.isfinite(self.time_budget_s)):
            raise SiamguiError("The time budget must be a positive number of minutes.")
        if self.hard_classes is not None and not (0.0 <= self.hard_classes <= 0.9):
            raise SiamguiError("The share of look-alike classes per batch must be between 0 and 0.9.")
        if not (0.0 <= self.freeze_fraction < 1.0):
            raise SiamguiError("The frozen fraction must be in [0, 1).")
        if self.schedule not in ("cosine", "step"):
            raise SiamguiError(f"Unknown schedule {self.schedule!r}; choose cosine or step.")
        unknown = set(self.augmentation or {}) - AUGMENTATION_OPTIONS
        if unknown:
            raise SiamguiError(f"Unknown augmentation option(s) {', '.join(sorted(unknown))}; choose from "
                               f"{', '.join(sorted(AUGMENTATION_OPTIONS))}.")
        get_distance(self.distance)

"""Training a Siamese model on a class folder: a generator that reports progress.

:func:`train` yields events (:class:`Log`, :class:`Loading`, :class:`Step`,
:class:`Epoch`, :class:`Finished`) and checks a :class:`TrainControl` between batches.

Where things are: ``config`` (options, presets, their checks), ``objective``
(each loss: the batches it wants and its loss), ``sampling`` (seeded batch
samplers), ``data`` (scan, split, prepare images), ``fit`` (the epoch loop),
``loop`` (the job in phases), ``events`` (what it yields and returns).
"""

from siamgui.core.training.config import FINETUNE_DEFAULTS, PRESET_DEFAULTS, TrainConfig
from siamgui.core.training.data import prepare_images
from siamgui.core.training.events import Epoch, Finished, Loading, Log, Step, TrainControl, TrainResult, time_left
from siamgui.core.training.loop import seed_everything, train, train_to_end
from siamgui.core.training.objective import LOSSES

__all__ = [
    "FINETUNE_DEFAULTS", "LOSSES", "PRESET_DEFAULTS", "Epoch", "Finished", "Loading", "Log", "Step", "TrainConfig",
    "TrainControl", "TrainResult", "prepare_images", "seed_everything", "time_left", "train", "train_to_end",
]

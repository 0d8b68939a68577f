"""Training a Siamese model on a class folder: a generator that reports progress.

:func:`train` yields events (:class:`Log`, :class:`Loading`, :class:`Step`,
:class:`Epoch`, :class:`Finished`) and checks a :class:`TrainControl` between batches.
"""

from siamgui.core.training.loop import (  # noqa: F401
    FINETUNE_DEFAULTS,
    LOSSES,
    PRESET_DEFAULTS,
    Epoch,
    Finished,
    Loading,
    Log,
    Step,
    TrainConfig,
    TrainControl,
    TrainResult,
    prepare_images,
    seed_everything,
    train,
)

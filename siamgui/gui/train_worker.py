"""The Train tab's work off the GUI thread: folder scanning and the training run.

Both run in :class:`~siamgui.gui.workers.Worker` threads, call the core engine
and report through the worker's signals only; they never touch a widget.
"""

from __future__ import annotations

import gc
import os
import sys

import numpy as np

#: Thumbnails of sample pairs shown under the dataset summary (same, different).
SAMPLE_PAIRS = 6
THUMB_SIZE = 52


def training_threads() -> int:
    """Intra-op threads for training in the app: all cores but one, so the GUI keeps one."""
    return max(1, (os.cpu_count() or 2) - 1)


def warm_up_imports() -> None:
    """Import what torch loads lazily on the first optimizer, with the cyclic GC paused.

    Building the first ``torch.optim`` optimizer imports ``torch._dynamo`` (thousands
    of modules: sympy, torch.distributed, triton). With the GC on, that import
    triggers full collections that stop every thread, the GUI's included, long
    enough to freeze the window; with the GC paused they do not happen.
    ``gc.freeze()`` then keeps these long-lived objects out of later full
    collections. Runs once per process, in the training worker.
    """
    if "torch._dynamo" in sys.modules:
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # noqa: BLE001 - only a warm-up; the optimizer imports it again if needed
        pass
    finally:
        if was_enabled:
            gc.enable()
        gc.freeze()


def scan_dataset(task, root: str):
    """Runs in a worker: scan a dataset folder and load a few sample pairs as small thumbnails.

    Returns ``(dataset, summary, pairs)``; ``pairs`` is a list of
    ``(thumb_a, thumb_b, same, class_a, class_b)`` with (H, W, 3) uint8 arrays.
    Raises SiamguiError when the folder cannot be read (or the scan was cancelled).
    """
    from siamgui.core.datasets import scan_folder

    ds = scan_folder(root, check=True, cancel=task.cancelled)
    summary = ds.summary()
    return ds, summary, ([] if summary.problems else _sample_pairs(task, ds))


def _sample_pairs(task, ds) -> list:
    from siamgui.core.training.sampling import PairSampler
    from siamgui.core.errors import SiamguiError
    from siamgui.core.images import load_image

    try:
        a, b, dissimilar = PairSampler(ds.labels, 0).sample(SAMPLE_PAIRS)
    except SiamguiError:
        return []
    order = np.argsort(dissimilar, kind="stable")  # same pairs first
    out = []
    for i in order:
        if task.cancelled():
            break
        thumbs = []
        for idx in (a[i], b[i]):
            try:
                im = load_image(ds.samples[idx][0])
                im.thumbnail((THUMB_SIZE, THUMB_SIZE))
                thumbs.append(np.ascontiguousarray(np.asarray(im, dtype=np.uint8)))
            except SiamguiError:
                thumbs.append(None)
        out.append((thumbs[0], thumbs[1], not bool(dissimilar[i]),
                    ds.classes[ds.samples[a[i]][1]], ds.classes[ds.samples[b[i]][1]]))
    return out


class TrainingRun:
    """One run of :func:`siamgui.core.training.train` in a :class:`~siamgui.gui.workers.Worker`.

    The worker yields the engine's events (Log, Loading, Step, Epoch, Finished);
    its ``returned`` follows the Finished event, ``errored(message, details)`` any
    failure (``details`` holds the traceback of an unexpected error, else "").
    Pause / resume / stop go through ``control`` (a TrainControl), which the
    engine checks between batches.
    """

    def __init__(self, config, control, num_threads: int | None = None, parent=None):
        from siamgui.gui.workers import Worker

        self.config = config
        self.control = control
        self.num_threads = num_threads
        #: Counted in the worker thread, read by tests (ints are safe to read across threads).
        self.steps_done = 0
        self.steps_after_cancel = 0
        self.worker = Worker(self._events, parent=parent, name="train", failure="Training failed")

    def isRunning(self) -> bool:  # noqa: N802 - QThread's name: owners treat runs and threads alike
        return self.worker.isRunning()

    def _events(self):
        import torch

        from siamgui.core.errors import SiamguiError
        from siamgui.core.training import Finished, Step, train

        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))  # this thread only (OpenMP is per thread)
        warm_up_imports()
        for ev in train(self.config, self.control):
            if isinstance(ev, Step):
                self.steps_done += 1
                if self.control.cancelled:
                    self.steps_after_cancel += 1
            yield ev
            if isinstance(ev, Finished):
                return
        raise SiamguiError("Training ended without a result.")

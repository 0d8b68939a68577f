"""Worker threads of the Train tab: folder scanning and the training job.

Both are :class:`QThread` subclasses whose ``run`` calls the core engine and
reports through signals only; they never touch a widget. Signals are emitted
from the worker thread and delivered (queued) on the GUI thread.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback

import numpy as np
from PySide6.QtCore import QThread, Signal

#: Thumbnails of sample pairs shown under the dataset summary (same, different).
SAMPLE_PAIRS = 6
THUMB_SIZE = 52


def training_threads() -> int:
    """Intra-op threads for training in the app: all cores but one, so the GUI keeps one."""
    return max(1, (os.cpu_count() or 2) - 1)


def warm_up_imports() -> None:
    """Import what torch loads lazily on the first optimizer, with the cyclic GC paused.

    Building the first ``torch.optim`` optimizer imports ``torch._dynamo`` (about
    2,000 modules: sympy, torch.distributed, triton). With the GC on, that import
    triggers full collections that stop every thread, the GUI's included, for
    0.3-0.6 s each (measured on 2 busy cores); with the GC paused the longest
    stall was under 0.1 s. ``gc.freeze()`` then keeps these long-lived objects out
    of later full collections. Runs once per process, in the worker thread.
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


class ScanThread(QThread):
    """Scan a dataset folder and load a few sample pairs as small thumbnails.

    ``scanned(token, dataset, summary, pairs)``: ``pairs`` is a list of
    ``(thumb_a, thumb_b, same, class_a, class_b)`` with (H, W, 3) uint8 arrays.
    ``failed(token, message)``: the folder cannot be read (or the scan was cancelled).
    ``token`` is the caller's number for this scan, so a stale result can be ignored.
    """

    scanned = Signal(int, object, object, list)
    failed = Signal(int, str)

    def __init__(self, root: str, token: int = 0, parent=None):
        super().__init__(parent)
        self.root = root
        self.token = token

    def run(self):
        try:
            from siamgui.core.datasets import scan_folder
            from siamgui.core.errors import SiamguiError

            try:
                ds = scan_folder(self.root, check=True, cancel=self.isInterruptionRequested)
                summary = ds.summary()
                pairs = [] if summary.problems else self._sample_pairs(ds)
            except SiamguiError as exc:
                self.failed.emit(self.token, str(exc))
                return
            self.scanned.emit(self.token, ds, summary, pairs)
        except Exception as exc:  # noqa: BLE001 - shown to the user; the tab keeps working
            self.failed.emit(self.token, f"Could not scan the folder: {type(exc).__name__}: {exc}")

    def _sample_pairs(self, ds) -> list:
        from siamgui.core.datasets import PairSampler
        from siamgui.core.errors import SiamguiError
        from siamgui.core.images import load_image

        try:
            a, b, dissimilar = PairSampler(ds.labels, 0).sample(SAMPLE_PAIRS)
        except SiamguiError:
            return []
        order = np.argsort(dissimilar, kind="stable")  # same pairs first
        out = []
        for i in order:
            if self.isInterruptionRequested():
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


class TrainThread(QThread):
    """Run :func:`siamgui.core.training.train` and forward its events as signals.

    Exactly one of ``finished_training(Finished)`` or ``failed(message, details)``
    is emitted at the end (``details`` holds a traceback for unexpected errors,
    else ""). Pause / resume / stop go through ``control`` (a TrainControl), which
    the engine checks between batches.
    """

    logged = Signal(str, str)  # level, message
    loading = Signal(int, int)  # done, total
    stepped = Signal(object)  # Step
    epoch_finished = Signal(object)  # Epoch
    finished_training = Signal(object)  # Finished
    failed = Signal(str, str)  # message, details

    def __init__(self, config, control, num_threads: int | None = None, parent=None):
        super().__init__(parent)
        self.config = config
        self.control = control
        self.num_threads = num_threads
        #: Read by tests (ints are safe to read across threads).
        self.steps_done = 0
        self.steps_after_cancel = 0

    def run(self):
        try:
            import torch

            from siamgui.core.errors import SiamguiError
            from siamgui.core.training import Epoch, Finished, Loading, Log, Step, train

            if self.num_threads:
                torch.set_num_threads(int(self.num_threads))  # this thread only (OpenMP is per thread)
            warm_up_imports()
            try:
                for ev in train(self.config, self.control):
                    if isinstance(ev, Step):
                        self.steps_done += 1
                        if self.control.cancelled:
                            self.steps_after_cancel += 1
                        self.stepped.emit(ev)
                    elif isinstance(ev, Loading):
                        self.loading.emit(ev.done, ev.total)
                    elif isinstance(ev, Epoch):
                        self.epoch_finished.emit(ev)
                    elif isinstance(ev, Log):
                        self.logged.emit(ev.level, ev.message)
                    elif isinstance(ev, Finished):
                        self.finished_training.emit(ev)
                        return
                self.failed.emit("Training ended without a result.", "")
            except SiamguiError as exc:  # bad input, out of memory (DeviceError): one readable sentence
                self.failed.emit(str(exc), "")
        except Exception as exc:  # noqa: BLE001 - the tab shows it and keeps working
            self.failed.emit(describe_failure(exc), traceback.format_exc())


def describe_failure(exc: BaseException) -> str:
    """A readable message for an unexpected exception inside training."""
    text = str(exc).strip().split("\n")[0][:300]
    low = text.lower()
    if "out of memory" in low:
        return "The device ran out of memory; try a smaller batch size or image size."
    if "cuda" in low:
        return f"A CUDA error stopped training ({text}); try a smaller batch size or the CPU device."
    return f"Training failed: {type(exc).__name__}: {text}"

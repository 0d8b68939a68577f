"""Application state shared by the tabs: the current model, device and precision.

Tabs receive one :class:`AppState` and listen to its signals; they never load
models themselves. Loading (torch import + file read) runs in a worker thread
so the window stays responsive; ``model_changed`` fires on the GUI thread once
the new :class:`~siamgui.core.verifier.Verifier` is ready.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from siamgui.gui.workers import Worker, WorkerGroup


def _load_verifier(source, device: str, precision: str):
    """Runs in a worker: imports torch and reads the model file."""
    from siamgui.core.verifier import Verifier

    return Verifier(source, device=device, precision=precision)


class AppState(QObject):
    """The current model (a Verifier), device and precision (``auto`` or ``float32``).

    Signals (all emitted on the GUI thread):
    - ``model_loading(str)``: a load started (a label for the status bar)
    - ``model_changed(object)``: the new Verifier is ready
    - ``model_failed(str)``: a load failed; the previous model stays current
    - ``threshold_changed(float)``: the user moved the decision threshold
    """

    model_loading = Signal(str)
    model_changed = Signal(object)
    model_failed = Signal(str)
    threshold_changed = Signal(float)

    def __init__(self, device: str = "auto", parent=None, precision: str = "auto"):
        super().__init__(parent)
        self.verifier = None  # siamgui.core.verifier.Verifier | None
        self.device = device
        self.precision = precision
        self._threads = WorkerGroup(self)

    # -- model ---------------------------------------------------------------------
    def load_model(self, source=None) -> None:
        """Load a model file (None = the bundled model) or a LoadedModel, off the GUI thread."""
        label = "bundled model" if source is None else (Path(source).name if isinstance(source, (str, Path))
                                                          else getattr(source, "name", "model"))
        self.model_loading.emit(label)
        w = Worker(_load_verifier, source, self.device, self.precision, parent=self, name="model-load",
                   failure="Could not load the model")
        w.returned.connect(self._on_loaded)
        w.errored.connect(self._on_failed)
        self._threads.start(w)

    def set_device(self, device: str) -> None:
        """Switch device; reloads the current model on it."""
        self.device = device
        if self.verifier is not None:
            self.load_model(self.verifier.loaded)

    def set_precision(self, precision: str) -> None:
        """Switch the network's arithmetic (``auto``, ``float32``, ``bfloat16``); reloads the current model."""
        self.precision = precision
        if self.verifier is not None:
            self.load_model(self.verifier.loaded)

    def set_threshold(self, value: float) -> None:
        """The user's decision threshold for the current model (emits ``threshold_changed`` when it changes)."""
        if self.verifier is None or float(value) == self.verifier.threshold:
            return
        self.verifier.threshold = float(value)
        self.threshold_changed.emit(float(value))

    def _on_loaded(self, verifier) -> None:
        self.verifier = verifier
        self.model_changed.emit(verifier)

    def _on_failed(self, message: str, _details: str) -> None:
        self.model_failed.emit(message)

    @property
    def busy(self) -> bool:
        return self._threads.busy

    def wait(self, msecs: int = 30000) -> bool:
        """Wait for pending loads (on quit and in tests)."""
        return self._threads.wait(msecs)

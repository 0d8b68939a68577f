"""The Compare tab's "Why?": occlusion maps of the current pair, shown over the two crops."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QLayout, QPushButton, QVBoxLayout

from siamgui.gui.image_view import array_to_qimage
from siamgui.gui.workers import Worker, WorkerGroup

SHOW = 260  # px: each crop's size in the dialog


def _explain_job(task, verifier, input_a, input_b):
    from siamgui.core.evaluation.explain import explain_pair

    return explain_pair(verifier, input_a, input_b, cancel=task.cancelled)


def _swatch(rgb) -> str:
    r, g, b = (int(x) for x in rgb)
    return f'<span style="background-color: rgb({r},{g},{b});">&nbsp;&nbsp;&nbsp;&nbsp;</span>'


class WhyDialog(QDialog):
    """Computes the maps in a worker when shown; ``explained(object)`` with the Explanation,
    ``failed(str)`` with a message. Closing it cancels a run still going."""

    explained = Signal(object)
    failed = Signal(str)

    def __init__(self, verifier, inputs, parent=None):
        from siamgui.core.evaluation.explain import APART, TOGETHER

        super().__init__(parent)
        self.setWindowTitle("Why? — what moved the distance")
        self.verifier, self.inputs = verifier, inputs
        self.invert = verifier.meta.get("preprocess", {}).get("preset") == "signature"
        self.explanation = None
        self._workers = WorkerGroup(self)
        self._worker: Worker | None = None
        self.images = [QLabel(), QLabel()]
        row = QHBoxLayout()
        for name, lab, arr in zip("AB", self.images, inputs):
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lab.setFixedSize(SHOW, SHOW)
            lab.setPixmap(self._pixmap(self._display(arr)))
            col = QVBoxLayout()
            col.addWidget(QLabel(f"Image {name} as the model sees it"), 0, Qt.AlignmentFlag.AlignHCenter)
            col.addWidget(lab)
            row.addLayout(col)
        self.status_label = QLabel("Covering one patch at a time and measuring the distance…")
        key = QLabel(f"{_swatch(TOGETHER)} this region pulls the pair together (covering it raises the distance)<br>"
                     f"{_swatch(APART)} this region pushes the pair apart (covering it lowers the distance)<br>"
                     "Stronger colour, larger effect; both images share one scale.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)  # wrapped text must not slide under the images
        self.setMinimumWidth(2 * SHOW + 60)
        lay.addLayout(row)
        lay.addWidget(key)
        lay.addWidget(self.status_label)
        lay.addWidget(buttons)

    def _display(self, arr) -> np.ndarray:
        from siamgui.core.evaluation.explain import display_input

        return display_input(arr, self.invert)

    @staticmethod
    def _pixmap(rgb: np.ndarray) -> QPixmap:
        return QPixmap.fromImage(array_to_qimage(rgb)).scaled(
            SHOW, SHOW, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)

    def start(self) -> None:
        w = Worker(_explain_job, self.verifier, *self.inputs, parent=self, name="why", pass_task=True,
                   failure="Could not explain the pair")
        w.returned.connect(self._on_explained)
        w.errored.connect(self._on_failed)
        w.finished.connect(lambda: setattr(self, "_worker", None))  # the group deletes it once finished
        self._worker = w
        self._workers.start(w)

    def _on_explained(self, ex) -> None:
        from siamgui.core.evaluation.explain import overlay

        self.explanation = ex
        for lab, arr, heat in zip(self.images, self.inputs, ex.maps):
            lab.setPixmap(self._pixmap(overlay(self._display(arr), heat, ex.scale)))
        self.status_label.setText(f"Distance {ex.distance:.4f}; {ex.grid}×{ex.grid} patches of {ex.patch} px per "
                                  f"image; largest change {ex.scale:.4f} ({ex.seconds:.1f} s).")
        self.adjustSize()
        self.explained.emit(ex)

    def _on_failed(self, message: str, _details: str) -> None:
        self.status_label.setText("Cancelled" if self._worker is not None and self._worker.abort_requested
                                  else message)
        self.failed.emit(message)

    def done(self, result: int) -> None:  # noqa: D401 - QDialog's close path: stop the worker first
        self.stop()
        super().done(result)

    def stop(self, wait_ms: int = 15000) -> bool:
        if self._worker is not None:
            self._worker.abort()
        return self._workers.wait(wait_ms)


class WhyButton(QObject):
    """The Compare tab's "Why?" button: enabled with a comparison shown; opens a :class:`WhyDialog`."""

    def __init__(self, tab):
        super().__init__(tab)
        self.tab = tab
        self.dialog: WhyDialog | None = None
        self.button = QPushButton("Why?")
        self.button.setToolTip("Which parts of the two images made the distance larger or smaller")
        self.button.setEnabled(False)
        self.button.clicked.connect(self.open)
        tab.comparison_finished.connect(lambda _ok: self._update())
        for slot in (tab.slot_a, tab.slot_b):
            slot.image_changed.connect(lambda *_a: self.button.setEnabled(False))

    def _pair(self):
        r, v = self.tab.result, self.tab.verifier
        if r is None or v is None or self.tab.busy or any(x is None for x in r.inputs):
            return None
        return v, r.inputs

    def _update(self) -> None:
        self.button.setEnabled(self._pair() is not None)

    def open(self) -> WhyDialog | None:
        pair = self._pair()
        if pair is None:
            return None
        self.close()
        self.dialog = WhyDialog(pair[0], pair[1], self.tab)
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.dialog.show()
        self.dialog.start()
        return self.dialog

    def close(self) -> None:
        if self.dialog is not None:
            self.dialog.stop()
            self.dialog.close()

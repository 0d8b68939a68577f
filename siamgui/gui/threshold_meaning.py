"""A label that says what the current threshold means (FAR/FRR from the model's calibration table)."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel


class ThresholdMeaningLabel(QLabel):
    """Follows ``state``'s model and threshold; empty (and hidden) when the model has no calibration."""

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self._cal_for: tuple[object, object] = (None, None)  # (model, its Calibration or None)
        self.setWordWrap(True)
        self.setStyleSheet("color: #555;")
        self.setToolTip("What this threshold did on the data the model was calibrated on")
        # deferred: the tabs adjust the new model's threshold in their own model_changed slots first
        state.model_changed.connect(lambda _v: QTimer.singleShot(0, self.refresh))
        state.threshold_changed.connect(lambda _t: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        from siamgui.core.evaluation.calibration import calibration_for, describe_threshold

        v = self.state.verifier
        if v is not None and self._cal_for[0] is not v.loaded:  # the bundled table is a file: read it once per model
            self._cal_for = (v.loaded, calibration_for(v.meta))
        cal = self._cal_for[1] if v is not None else None
        text = describe_threshold(cal, v.threshold) if cal is not None else None
        self.setText(text or "")
        self.setVisible(bool(text))

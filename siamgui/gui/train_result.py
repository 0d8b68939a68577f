"""The Train tab's result view: ROC, distance histograms, operating point.

The view shows a :class:`~siamgui.core.training.TrainResult`; choosing an
operating point calls the result's own ``choose_threshold`` / ``set_threshold``
(core), so the threshold shown is the one a saved file will hold.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from siamgui.core import evaluation as ev
from siamgui.gui.train_plots import make_plot

POINTS = (("best-accuracy", "Best accuracy"), ("eer", "Equal error rate"), ("far", "Target false-accept rate"),
          ("custom", "Custom (drag the line)"))
SAME_COLOR = (44, 160, 44)
DIFF_COLOR = (214, 39, 40)


def rates_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false-accept rate, false-reject rate) when pairs with distance < threshold count as same."""
    accept = np.asarray(distances) < threshold
    same = np.asarray(same, dtype=bool)
    far = float(accept[~same].mean()) if (~same).any() else 0.0
    frr = float((~accept[same]).mean()) if same.any() else 0.0
    return far, frr


class TrainResultView(QWidget):
    save_requested = Signal()
    use_requested = Signal()
    threshold_changed = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.result = None
        self._updating = False
        self._make_plots()
        self._make_controls()
        self._lay_out()
        self.point.currentIndexChanged.connect(self._on_point_changed)
        self.target_far.valueChanged.connect(self._on_target_far_changed)
        self.save_button.clicked.connect(self.save_requested)
        self.use_button.clicked.connect(self.use_requested)
        self._update_enabled()

    def _make_plots(self) -> None:
        """The ROC with the operating point, and the distance histograms with the draggable threshold."""
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)

        self.roc_plot = make_plot("ROC", "false-accept rate", "true-accept rate")
        self.roc_plot.setXRange(0, 1, padding=0.02)
        self.roc_plot.setYRange(0, 1, padding=0.02)
        self.roc_plot.getPlotItem().setAspectLocked(False)
        self.roc_curve = self.roc_plot.plot([], [], pen=pg.mkPen((31, 119, 180), width=2))
        self.roc_plot.plot([0, 1], [0, 1], pen=pg.mkPen((170, 170, 170), width=1, style=Qt.PenStyle.DashLine))
        self.roc_point = pg.ScatterPlotItem(size=11, brush=pg.mkBrush(0, 0, 0), pen=pg.mkPen("w"))
        self.roc_plot.addItem(self.roc_point)

        self.hist_plot = make_plot("Validation distances", "distance", "pairs")
        self.hist_plot.getPlotItem().addLegend(offset=(-10, 10), labelTextColor="#222",
                                               brush=pg.mkBrush(255, 255, 255, 200))
        self.hist_same = pg.PlotDataItem([0, 1], [0], stepMode="center", fillLevel=0,
                                         brush=pg.mkBrush(*SAME_COLOR, 90), pen=pg.mkPen(SAME_COLOR, width=2),
                                         name="same class")
        self.hist_diff = pg.PlotDataItem([0, 1], [0], stepMode="center", fillLevel=0,
                                         brush=pg.mkBrush(*DIFF_COLOR, 90), pen=pg.mkPen(DIFF_COLOR, width=2),
                                         name="different class")
        self.hist_plot.addItem(self.hist_same)
        self.hist_plot.addItem(self.hist_diff)
        self.threshold_line = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen((0, 0, 0), width=2),
                                              hoverPen=pg.mkPen((31, 119, 180), width=3))
        self.threshold_line.setToolTip("The decision threshold: drag it to choose your own")
        self.hist_plot.addItem(self.threshold_line)
        self.threshold_line.sigPositionChangeFinished.connect(self._on_threshold_line_moved)

    def _make_controls(self) -> None:
        self.point = QComboBox()
        for key, label in POINTS:
            self.point.addItem(label, key)
        self.point.setToolTip("The operating point sets the model's decision threshold")
        self.target_far = QDoubleSpinBox()
        self.target_far.setRange(0.01, 50.0)
        self.target_far.setDecimals(2)
        self.target_far.setValue(1.0)
        self.target_far.setSuffix(" %")
        self.target_far.setToolTip("Largest share of different-class pairs that may be accepted")
        self.readout = QLabel()
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setWordWrap(True)
        self.readout.setToolTip("At this threshold, on the validation pairs: FAR = different-class pairs accepted, "
                                "FRR = same-class pairs rejected")
        self.readout.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

        self.save_button = QPushButton("Save model...")
        self.use_button = QPushButton("Use in Compare")
        self.save_status = QLabel()
        self.save_status.setWordWrap(True)
        self.save_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def _lay_out(self) -> None:
        plots = QHBoxLayout()
        plots.addWidget(self.roc_plot, 2)
        plots.addWidget(self.hist_plot, 3)
        point_row = QHBoxLayout()
        point_row.addWidget(QLabel("Operating point"))
        point_row.addWidget(self.point)
        point_row.addWidget(self.target_far)
        point_row.addSpacing(12)
        point_row.addWidget(self.readout, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.save_status, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addLayout(plots, 1)
        lay.addLayout(point_row)
        lay.addLayout(buttons)

    # -- showing a result ---------------------------------------------------------------
    def set_result(self, result) -> None:
        self.result = result
        self.save_status.clear()
        if result is None:
            self.roc_curve.setData([], [])
            self.summary.clear()
            self._update_enabled()
            return
        d, s = result.val_distances, result.val_same
        far, tar, _ = ev.roc_curve(d, s)
        self.roc_curve.setData(far, tar)
        m = result.meta["metrics"]
        self.roc_plot.getPlotItem().setTitle(f"ROC · AUC {m['auc']:.4f}", color="#222",
                                             size="10pt")
        h = ev.histograms(d, s, bins=40)
        self.hist_same.setData(h["edges"], h["same"])
        self.hist_diff.setData(h["edges"], h["different"])
        self.hist_plot.enableAutoRange()
        tr = result.meta.get("training", {})
        data = tr.get("data", {})
        stopped = " · stopped early" if result.stopped_early else ""
        self.summary.setText(
            f"<b>{result.meta.get('name', 'model')}</b> · best epoch {tr.get('best_epoch', '?')} of "
            f"{tr.get('epochs_run', '?')}{stopped} · AUC <b>{m['auc']:.4f}</b> · EER <b>{100 * m['eer']:.2f} %</b>"
            f" · best accuracy {100 * m['best_accuracy']:.2f} %<br>Evaluated on {m.get('evaluated_on', '?')}: "
            f"{data.get('val_classes', 0)} classes, {m.get('pairs', len(d))} pairs · "
            f"{tr.get('duration_s', '?')} s on {tr.get('device', '?')}")
        point = str(m.get("operating_point", "best-accuracy"))
        key = "far" if point.startswith("far") else point
        self._updating = True
        try:
            self.point.setCurrentIndex(max(0, self.point.findData(key)))
        finally:
            self._updating = False
        self._show_threshold()
        self._update_enabled()

    def choose(self, point: str, target_far: float | None = None) -> float:
        """Apply an operating point ("best-accuracy", "eer", "far") to the result; returns the threshold."""
        if target_far is not None:
            self.target_far.setValue(100.0 * target_far)
        self.point.setCurrentIndex(self.point.findData(point))  # -> _on_point_changed
        return self.result.threshold

    def _on_point_changed(self, _index: int) -> None:
        self._update_enabled()
        if self._updating or self.result is None:
            return
        key = self.point.currentData()
        if key == "custom":
            return  # the threshold line sets it
        self.result.choose_threshold(key, self.target_far.value() / 100.0)
        self._show_threshold()
        self.threshold_changed.emit(self.result.threshold)

    def _on_target_far_changed(self, _value: float) -> None:
        if self.point.currentData() == "far":
            self._on_point_changed(self.point.currentIndex())

    def _on_threshold_line_moved(self, line) -> None:
        if self._updating or self.result is None:
            return
        self.result.set_threshold(float(line.value()), "custom")
        self._updating = True
        try:
            self.point.setCurrentIndex(self.point.findData("custom"))
        finally:
            self._updating = False
        self._show_threshold()
        self._update_enabled()
        self.threshold_changed.emit(self.result.threshold)

    def _show_threshold(self) -> None:
        r = self.result
        t = r.threshold
        far, frr = rates_at(r.val_distances, r.val_same, t)
        self._updating = True
        try:
            self.threshold_line.setValue(t)
        finally:
            self._updating = False
        self.roc_point.setData([far], [1.0 - frr])
        self.hist_plot.getPlotItem().setTitle(f"Validation distances · threshold {t:.4f}", color="#222", size="10pt")
        acc = r.meta["metrics"]["accuracy"]
        nb = "&nbsp;"  # keep each figure on one line when the text wraps
        self.readout.setText(f"threshold{nb}<b>{t:.4f}</b> · accuracy{nb}{100 * acc:.2f}{nb}% · "
                             f"FAR{nb}{100 * far:.2f}{nb}% · FRR{nb}{100 * frr:.2f}{nb}%")

    def _update_enabled(self) -> None:
        has = self.result is not None
        for w in (self.point, self.save_button, self.use_button):
            w.setEnabled(has)
        self.threshold_line.setMovable(has)
        self.target_far.setEnabled(has and self.point.currentData() == "far")

    def set_save_status(self, text: str) -> None:
        self.save_status.setText(text)

"""Live training plots (pyqtgraph).

Steps and epochs arrive as core events and are only buffered; the owner calls
:meth:`LivePlots.flush` from a QTimer (at most ``MAX_HZ`` times a second), which
draws all new points in one go, so a fast training loop cannot flood the GUI
thread with redraws.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QWidget

MAX_HZ = 10

COLORS = {
    "raw": QColor(31, 119, 180, 110),
    "smooth": QColor(31, 119, 180),
    "train": QColor(127, 127, 127),
    "val": QColor(214, 39, 40),
    "auc": QColor(44, 160, 44),
    "eer": QColor(255, 127, 14),
    "best": QColor(120, 120, 120),
}


def make_plot(title: str, x_label: str, y_label: str = "") -> pg.PlotWidget:
    """A white pyqtgraph plot with dark axes and a grid (shared look of the Train tab)."""
    w = pg.PlotWidget(background="w")
    w.setMinimumHeight(140)
    item = w.getPlotItem()
    item.setTitle(title, color="#222", size="10pt")
    item.showGrid(x=True, y=True, alpha=0.2)
    for name in ("left", "bottom"):
        ax = item.getAxis(name)
        ax.setPen(pg.mkPen("#444"))
        ax.setTextPen(pg.mkPen("#222"))
        ax.enableAutoSIPrefix(False)
    item.setLabel("bottom", x_label, color="#222")
    if y_label:
        item.setLabel("left", y_label, color="#222")
    item.setMenuEnabled(False)
    return w


class LivePlots(QWidget):
    """Training loss per step (raw + smoothed), losses per epoch, validation AUC/EER per epoch."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.loss_plot = make_plot("Training loss per step", "step", "loss")
        self.epoch_loss_plot = make_plot("Loss per epoch", "epoch", "loss")
        self.metric_plot = make_plot("Validation AUC / EER per epoch", "epoch")
        for p in (self.loss_plot, self.epoch_loss_plot, self.metric_plot):
            p.getPlotItem().addLegend(offset=(-10, 10), labelTextColor="#222", brush=pg.mkBrush(255, 255, 255, 200))
        self.loss_plot.getPlotItem().setClipToView(True)
        self.loss_plot.getPlotItem().setDownsampling(auto=True, mode="peak")
        self.metric_plot.setYRange(0.0, 1.0, padding=0.02)

        self.raw_curve = self.loss_plot.plot([], [], pen=pg.mkPen(COLORS["raw"], width=1), name="raw")
        self.smooth_curve = self.loss_plot.plot([], [], pen=pg.mkPen(COLORS["smooth"], width=2), name="smoothed")
        sym = dict(symbol="o", symbolSize=6)
        self.train_epoch_curve = self.epoch_loss_plot.plot(
            [], [], pen=pg.mkPen(COLORS["train"], width=2), symbolBrush=COLORS["train"], name="train", **sym)
        self.val_loss_curve = self.epoch_loss_plot.plot(
            [], [], pen=pg.mkPen(COLORS["val"], width=2), symbolBrush=COLORS["val"], name="validation", **sym)
        self.auc_curve = self.metric_plot.plot([], [], pen=pg.mkPen(COLORS["auc"], width=2),
                                               symbolBrush=COLORS["auc"], name="AUC", **sym)
        self.eer_curve = self.metric_plot.plot([], [], pen=pg.mkPen(COLORS["eer"], width=2),
                                               symbolBrush=COLORS["eer"], name="EER", **sym)
        best_pen = pg.mkPen(COLORS["best"], width=1, style=Qt.PenStyle.DashLine)
        self.best_lines = [pg.InfiniteLine(angle=90, pen=best_pen) for _ in range(2)]
        for plot, line in zip((self.epoch_loss_plot, self.metric_plot), self.best_lines):
            line.setVisible(False)
            plot.addItem(line)

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.loss_plot, 0, 0, 1, 2)
        grid.addWidget(self.epoch_loss_plot, 1, 0)
        grid.addWidget(self.metric_plot, 1, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)

        self._pending_steps: list = []
        self._pending_epochs: list = []
        self.steps_x: list[int] = []
        self.steps_raw: list[float] = []
        self.steps_smooth: list[float] = []
        self.epochs: list = []
        #: Number of redraws (tests check the rate limit).
        self.flushes = 0

    # -- feeding -----------------------------------------------------------------------
    def clear(self) -> None:
        self._pending_steps.clear()
        self._pending_epochs.clear()
        self.steps_x, self.steps_raw, self.steps_smooth, self.epochs = [], [], [], []
        for c in (self.raw_curve, self.smooth_curve, self.train_epoch_curve, self.val_loss_curve, self.auc_curve,
                  self.eer_curve):
            c.setData([], [])
        for line in self.best_lines:
            line.setVisible(False)
        for p in (self.epoch_loss_plot, self.metric_plot):
            p.getAxis("bottom").setTickSpacing()
        self.metric_plot.setYRange(0.0, 1.0, padding=0.02)

    def add_step(self, step) -> None:
        self._pending_steps.append(step)

    def add_epoch(self, epoch) -> None:
        self._pending_epochs.append(epoch)

    def flush(self) -> None:
        """Draw the buffered points (the owner's timer calls this at most MAX_HZ times a second)."""
        if not self._pending_steps and not self._pending_epochs:
            return
        self.flushes += 1
        if self._pending_steps:
            for s in self._pending_steps:
                self.steps_x.append(s.global_step)
                self.steps_raw.append(s.loss)
                self.steps_smooth.append(s.running_loss)
            self._pending_steps.clear()
            self.raw_curve.setData(self.steps_x, self.steps_raw)
            self.smooth_curve.setData(self.steps_x, self.steps_smooth)
        if self._pending_epochs:
            self.epochs.extend(self._pending_epochs)
            self._pending_epochs.clear()
            xs = [e.epoch for e in self.epochs]
            self.train_epoch_curve.setData(xs, [e.train_loss for e in self.epochs])
            with_val = [e for e in self.epochs if e.val_auc is not None]
            vx = [e.epoch for e in with_val]
            self.val_loss_curve.setData(vx, [e.val_loss for e in with_val])
            self.auc_curve.setData(vx, [e.val_auc for e in with_val])
            self.eer_curve.setData(vx, [e.val_eer for e in with_val])
            best = [e.epoch for e in self.epochs if e.is_best]
            for line in self.best_lines:
                if best:
                    line.setPos(best[-1])
                    line.setVisible(True)
            spacing = max(1, -(-max(xs) // 8))  # whole epochs, at most about 8 ticks
            for p in (self.epoch_loss_plot, self.metric_plot):
                p.setXRange(0.5, max(xs) + 0.5, padding=0)
                p.getAxis("bottom").setTickSpacing(spacing, spacing)

"""Where a distance falls relative to the threshold: a small painted scale."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPalette, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from siamgui.gui.image_view import BLUE, VERMILLION


class DistanceBar(QWidget):
    """A horizontal scale from 0: the "same" zone up to the threshold, "different" beyond, a marker at the distance."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.distance: float | None = None
        self.threshold: float | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Left of the threshold line: same. Right of it: different.")

    def set_values(self, distance: float | None, threshold: float | None) -> None:
        self.distance, self.threshold = distance, threshold
        self.update()

    def scale_max(self) -> float:
        t = self.threshold if self.threshold and self.threshold > 0 else 1.0
        d = self.distance if self.distance is not None and math.isfinite(self.distance) else 0.0
        return max(2.0 * t, d * 1.1, 1e-6)

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        return QSize(240, fm.height() * 2 + 26)

    def minimumSizeHint(self) -> QSize:
        return QSize(120, self.sizeHint().height())

    def paintEvent(self, event):  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        fm = self.fontMetrics()
        text_h = fm.height()
        bar = QRectF(8, text_h + 6, self.width() - 16, 14)
        if self.threshold is None:
            p.setPen(QPen(pal.color(QPalette.ColorRole.Mid), 1))
            p.drawRect(bar)
            p.end()
            return
        top = self.scale_max()
        tx = bar.left() + bar.width() * min(self.threshold / top, 1.0)
        same_c, diff_c = QColor(BLUE), QColor(VERMILLION)
        same_c.setAlpha(90)
        diff_c.setAlpha(90)
        p.fillRect(QRectF(bar.left(), bar.top(), tx - bar.left(), bar.height()), same_c)
        p.fillRect(QRectF(tx, bar.top(), bar.right() - tx, bar.height()), diff_c)
        p.setPen(QPen(pal.color(QPalette.ColorRole.Text), 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(bar)
        # zone names, so the colours are not the only cue
        below = QRectF(bar.left(), bar.bottom() + 2, bar.width(), text_h + 2)
        p.drawText(QRectF(bar.left() + 2, below.top(), tx - bar.left() - 4, below.height()),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, "same")
        p.drawText(QRectF(tx + 4, below.top(), bar.right() - tx - 6, below.height()),
                   Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop, "different")
        # threshold line
        p.setPen(QPen(pal.color(QPalette.ColorRole.Text), 2, Qt.PenStyle.DashLine))
        p.drawLine(QPointF(tx, bar.top() - 3), QPointF(tx, bar.bottom() + 3))
        if self.distance is not None and math.isfinite(self.distance):
            dx = bar.left() + bar.width() * min(self.distance / top, 1.0)
            p.setPen(QPen(pal.color(QPalette.ColorRole.Text), 2))
            p.drawLine(QPointF(dx, bar.top()), QPointF(dx, bar.bottom()))
            p.setBrush(pal.color(QPalette.ColorRole.Text))
            p.drawPolygon(QPolygonF([QPointF(dx - 6, bar.top() - 8), QPointF(dx + 6, bar.top() - 8),
                                     QPointF(dx, bar.top() - 1)]))
            label = f"{self.distance:.3f}"
            w = fm.horizontalAdvance(label) + 4
            x = min(max(dx - w / 2, 0), self.width() - w)
            p.drawText(QRectF(x, 0, w, text_h), Qt.AlignmentFlag.AlignCenter, label)
        p.end()

"""Showing images: numpy/PIL/QImage conversions and a scaled, annotated view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
SKY_BLUE = "#56B4E9"
ORANGE = "#E69F00"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
GREEN = "#009E73"


def array_to_qimage(arr: np.ndarray, *, bgr: bool = False) -> QImage:
    """(H, W), (H, W, 1) or (H, W, 3) uint8 -> a QImage that owns its pixels."""
    a = np.ascontiguousarray(arr)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = np.ascontiguousarray(a[:, :, 0])
    h, w = a.shape[:2]
    if a.ndim == 2:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8)
    elif a.shape[2] == 3:
        fmt = QImage.Format.Format_BGR888 if bgr else QImage.Format.Format_RGB888
        img = QImage(a.data, w, h, a.strides[0], fmt)
    else:
        raise ValueError(f"cannot show an array of shape {a.shape}")
    return img.copy()  # detach from the numpy buffer


def pil_to_qimage(image) -> QImage:
    return array_to_qimage(np.asarray(image.convert("RGB")))


def qimage_to_array(img: QImage) -> np.ndarray:
    """A QImage -> (H, W, 3) RGB uint8 array (a copy)."""
    rgb = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = rgb.width(), rgb.height(), rgb.bytesPerLine()
    buf = np.frombuffer(rgb.constBits(), dtype=np.uint8, count=bpl * h)
    return buf.reshape(h, bpl)[:, : w * 3].reshape(h, w, 3).copy()


@dataclass
class Overlay:
    """A box drawn over the image, in image pixel coordinates."""

    box: tuple[float, float, float, float]  # x, y, w, h
    color: str = SKY_BLUE
    label: str = ""
    width: float = 3.0
    dashed: bool = False


class ImageView(QWidget):
    """Paints an image scaled to fit (aspect kept), with box overlays and a placeholder text."""

    def __init__(self, parent=None, placeholder: str = "", min_side: int = 120):
        super().__init__(parent)
        self._image: QImage | None = None
        self._overlays: list[Overlay] = []
        self._points: list[tuple[float, float]] = []
        self._placeholder = placeholder
        self._highlight = False
        self._min_side = min_side
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(min_side, min_side)

    # -- content -------------------------------------------------------------------
    def set_image(self, image: QImage | None) -> None:
        self._image = image
        self.update()

    def image(self) -> QImage | None:
        return self._image

    def set_overlays(self, overlays: list[Overlay]) -> None:
        self._overlays = list(overlays)
        self.update()

    def overlays(self) -> list[Overlay]:
        return list(self._overlays)

    def set_points(self, points) -> None:
        """Marks (e.g. face landmarks) in image pixel coordinates."""
        self._points = [(float(x), float(y)) for x, y in (points or [])]
        self.update()

    def points(self) -> list[tuple[float, float]]:
        return list(self._points)

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def placeholder(self) -> str:
        return self._placeholder

    def set_highlight(self, on: bool) -> None:
        self._highlight = on
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(320, 280)

    def image_rect(self) -> QRectF:
        """Where the image is drawn, in widget coordinates."""
        if self._image is None or self._image.isNull():
            return QRectF()
        area = QRectF(self.rect()).adjusted(4, 4, -4, -4)
        iw, ih = self._image.width(), self._image.height()
        scale = min(area.width() / iw, area.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)

    # -- painting ------------------------------------------------------------------
    def paintEvent(self, event):  # noqa: N802 - Qt name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        if self._image is not None and not self._image.isNull():
            target = self.image_rect()
            p.drawImage(target, self._image)
            sx = target.width() / self._image.width()
            sy = target.height() / self._image.height()
            font = QFont(self.font())
            font.setBold(True)
            p.setFont(font)
            for ov in self._overlays:
                x, y, w, h = ov.box
                r = QRectF(target.x() + x * sx, target.y() + y * sy, w * sx, h * sy)
                pen = QPen(QColor(ov.color), ov.width)
                if ov.dashed:
                    pen.setStyle(Qt.PenStyle.DashLine)
                p.setPen(pen)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRect(r)
                if ov.label:
                    fm = p.fontMetrics()
                    tw, th = fm.horizontalAdvance(ov.label) + 8, fm.height() + 2
                    ty = r.top() - th if r.top() - th >= target.top() else r.top()
                    # a label near the right edge is moved left to stay readable
                    box = QRectF(min(r.left(), max(target.left(), target.right() - tw)), ty, tw, th)
                    p.fillRect(box, QColor(ov.color))
                    p.setPen(QColor("black"))
                    p.drawText(box.adjusted(4, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, ov.label)
            if self._points:
                p.setPen(QPen(QColor("black"), 1))
                p.setBrush(QColor(GREEN))
                for x, y in self._points:
                    p.drawEllipse(QRectF(target.x() + x * sx - 3, target.y() + y * sy - 3, 6, 6))
        elif self._placeholder:
            p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            p.drawText(QRectF(self.rect()).adjusted(12, 12, -12, -12),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
        pen = QPen(pal.color(QPalette.ColorRole.Highlight) if self._highlight else pal.color(QPalette.ColorRole.Mid),
                   2 if self._highlight else 1)
        if not self._highlight:
            pen.setStyle(Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(QRectF(self.rect()).adjusted(1, 1, -1, -1))
        p.end()


__all__ = ["ImageView", "Overlay", "array_to_qimage", "pil_to_qimage", "qimage_to_array",
           "SKY_BLUE", "ORANGE", "BLUE", "VERMILLION", "GREEN"]

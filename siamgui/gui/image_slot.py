"""One image slot of the Compare tab: open, drop, paste, capture, clear."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMimeData, Qt, QUrl, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout,
                               QWidget)

from siamgui.core.errors import ImageError
from siamgui.core.face.live import quality_text
from siamgui.core.images import IMAGE_EXTENSIONS, load_image
from siamgui.gui.image_view import (ORANGE, SKY_BLUE, ImageView, Overlay, array_to_qimage, pil_to_qimage,
                                    qimage_to_array)
from siamgui.gui.settings import app_settings

IMAGE_FILTER = ("Images (" + " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS)) + ");;All files (*)")


def compact_button(text: str, tooltip: str = "") -> QPushButton:
    """A push button that may shrink to its text (styles otherwise keep buttons at least 80 px wide)."""
    b = QPushButton(text)
    b.setToolTip(tooltip)
    b.setMinimumWidth(b.fontMetrics().horizontalAdvance(text) + 20)
    b.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
    return b


class ImageSlot(QGroupBox):
    """Holds one image (an upright RGB PIL image) and shows it with face boxes and the model's input.

    Signals: ``image_changed()`` after an image was set or cleared;
    ``capture_requested()`` when the user pressed Capture; ``message(str)`` for
    the status bar (e.g. why a file could not be opened).
    """

    image_changed = Signal()
    capture_requested = Signal()
    message = Signal(str)

    def __init__(self, name: str, parent=None):
        super().__init__(f"Image {name}", parent)
        self.name = name
        self.image = None  # PIL.Image (RGB) | None
        self.label = ""
        self.path: str | None = None
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setObjectName(f"slot_{name}")

        self.view = ImageView(self, placeholder="Drop an image here, paste it (Ctrl+V) or use Open…")
        self.info_label = QLabel(" ")
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.face_label = QLabel("")
        self.face_label.setWordWrap(True)
        self.face_label.setVisible(False)
        self.input_view = ImageView(self, min_side=64)
        self.input_view.setFixedSize(88, 88)
        self.input_caption = QLabel("")
        self.input_caption.setWordWrap(True)
        self.input_row = QWidget()
        row = QHBoxLayout(self.input_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.input_view)
        row.addWidget(self.input_caption, 1)
        self.input_row.setVisible(False)

        self.open_button = compact_button("Open…", "Open an image file")
        self.paste_button = compact_button("Paste", "Paste an image or a file from the clipboard (Ctrl+V)")
        self.capture_button = compact_button("Capture", "Take the current camera frame (starts the camera if needed)")
        self.clear_button = compact_button("Clear", "Remove the image")
        self.clear_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_dialog)
        self.paste_button.clicked.connect(self.paste)
        self.capture_button.clicked.connect(self.capture_requested)
        self.clear_button.clicked.connect(self.clear)
        buttons = QHBoxLayout()
        for b in (self.open_button, self.paste_button, self.capture_button, self.clear_button):
            buttons.addWidget(b)

        lay = QVBoxLayout(self)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.info_label)
        lay.addWidget(self.face_label)
        lay.addWidget(self.input_row)
        lay.addLayout(buttons)

        paste = QShortcut(QKeySequence(QKeySequence.StandardKey.Paste), self)
        paste.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        paste.activated.connect(self.paste)

    # -- setting the image -----------------------------------------------------------
    def set_image(self, image, label: str, path: str | None = None) -> None:
        """Show an already decoded RGB PIL image."""
        self.image, self.label, self.path = image, label, path
        self.view.set_image(pil_to_qimage(image))
        w, h = image.size
        self.info_label.setText(f"{label} · {w}×{h}")
        self.info_label.setToolTip(path or label)
        self.clear_button.setEnabled(True)
        self.clear_analysis()
        self.image_changed.emit()

    def set_image_path(self, path: str | os.PathLike) -> bool:
        """Load a file; on failure show why and keep the previous image."""
        path = os.fspath(path)
        try:
            image = load_image(path)
        except ImageError as exc:
            self.show_error(str(exc))
            return False
        self.set_image(image, Path(path).name, path)
        return True

    def set_image_array(self, arr: np.ndarray, label: str, *, bgr: bool = False) -> bool:
        try:
            image = load_image(arr, bgr=bgr)
        except ImageError as exc:
            self.show_error(str(exc))
            return False
        self.set_image(image, label)
        return True

    def clear(self) -> None:
        had = self.image is not None
        self.image, self.label, self.path = None, "", None
        self.view.set_image(None)
        self.info_label.setText(" ")
        self.info_label.setToolTip("")
        self.clear_button.setEnabled(False)
        self.clear_analysis()
        if had:
            self.image_changed.emit()

    def show_error(self, text: str) -> None:
        self.info_label.setText(f"⚠ {text}")
        self.info_label.setToolTip(text)
        self.message.emit(f"Image {self.name}: {text}")

    # -- what the comparison found -------------------------------------------------------
    def clear_analysis(self) -> None:
        self.view.set_overlays([])
        self.view.set_points([])
        self.face_label.setVisible(False)
        self.input_row.setVisible(False)

    def set_analysis(self, face_info, model_input: np.ndarray | None, face_mode: bool, quality=None) -> None:
        """Draw detected faces (the used one solid, others dashed), say the face's ``quality``
        (a FaceQuality, when judged) and show the model's input."""
        overlays = []
        if face_info is not None:
            # every face of a best-face comparison is numbered (as in the verdict's "face 2 of B")
            issues = getattr(face_info, "issues", None)
            for i, box in enumerate(face_info.boxes):
                used = face_info.used_box is not None and tuple(box) == tuple(face_info.used_box)
                if issues is not None and face_info.count > 1:
                    label = f"{i + 1}" + (" best match" if used else " not judged" if issues[i] else "")
                else:
                    label = "used" if used and face_info.count > 1 else ""
                overlays.append(Overlay(tuple(box), SKY_BLUE if used else ORANGE, label, 3.0 if used else 2.0,
                                        dashed=not used))
        self.view.set_overlays(overlays)
        self.view.set_points(face_info.landmarks if face_info is not None and face_info.mode == "face" else [])
        if face_mode and face_info is not None:
            warn = face_info.count != 1 or face_info.mode != "face" or (quality is not None and not quality.good)
            text = face_info.message()
            if quality is not None:
                text += "\n" + quality_text(quality)
            self.face_label.setText(("⚠ " if warn else "✓ ") + text)
            self.face_label.setStyleSheet(f"color: {ORANGE};" if warn else "")
            self.face_label.setVisible(True)
        else:
            self.face_label.setVisible(False)
        if model_input is not None:
            self.input_view.set_image(array_to_qimage(model_input))
            h, w = model_input.shape[:2]
            self.input_caption.setText(f"What the model sees ({w}×{h})")
            self.input_row.setVisible(True)
        else:
            self.input_row.setVisible(False)

    # -- open, drop, paste ---------------------------------------------------------------
    def open_dialog(self) -> None:
        settings = app_settings()
        start = str(settings.value("paths/last_image_dir", "") or "")
        path, _ = QFileDialog.getOpenFileName(self, f"Open image {self.name}", start, IMAGE_FILTER)
        if path:
            settings.setValue("paths/last_image_dir", str(Path(path).parent))
            self.set_image_path(path)

    def handle_mime(self, mime: QMimeData) -> bool:
        """Take an image from dropped or pasted data: a file URL, image data or a path as text."""
        if mime is None:
            return False
        if mime.hasUrls():
            for url in mime.urls():
                if url.isLocalFile():
                    return self.set_image_path(url.toLocalFile())
        if mime.hasImage():
            img = mime.imageData()
            if img is not None and not img.isNull():
                return self.set_image_array(qimage_to_array(img), "Pasted image")
        if mime.hasText():
            text = mime.text().strip()
            if text.startswith("file://"):
                text = QUrl(text).toLocalFile()
            if text and "\n" not in text and Path(text).is_file():
                return self.set_image_path(text)
        self.show_error("The clipboard or drop holds no image or image file.")
        return False

    def paste(self) -> bool:
        return self.handle_mime(QGuiApplication.clipboard().mimeData())

    @staticmethod
    def _acceptable(mime: QMimeData) -> bool:
        return bool(mime and (mime.hasImage() or any(u.isLocalFile() for u in mime.urls())))

    def dragEnterEvent(self, event):  # noqa: N802
        if self._acceptable(event.mimeData()):
            event.acceptProposedAction()
            self.view.set_highlight(True)
        else:
            event.ignore()

    def dragLeaveEvent(self, event):  # noqa: N802
        self.view.set_highlight(self.hasFocus())

    def dropEvent(self, event):  # noqa: N802
        self.view.set_highlight(self.hasFocus())
        if self.handle_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def mousePressEvent(self, event):  # noqa: N802 - clicking the slot focuses it (for Ctrl+V)
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        super().mousePressEvent(event)

    def focusInEvent(self, event):  # noqa: N802
        self.view.set_highlight(True)
        super().focusInEvent(event)

    def focusOutEvent(self, event):  # noqa: N802
        self.view.set_highlight(False)
        super().focusOutEvent(event)

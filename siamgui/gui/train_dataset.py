"""The Train tab's dataset panel: the chosen folder, its summary, unreadable files and sample pairs."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QGridLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget, QPushButton, QVBoxLayout,
                               QWidget)

from siamgui.gui.train_worker import THUMB_SIZE

PAIRS_PER_ROW = 3


def _pixmap(arr) -> QPixmap | None:
    if arr is None:
        return None
    h, w = arr.shape[:2]
    image = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


class DatasetPanel(QGroupBox):
    """Shows a folder's DatasetSummary (from :func:`~siamgui.gui.train_worker.scan_dataset`); the tab scans."""

    def __init__(self, parent=None):
        super().__init__("Dataset", parent)
        self.choose_button = QPushButton("Choose folder...")
        self.choose_button.setToolTip("A folder with one sub-folder of images per class (identity)")
        self.folder_label = QLabel("No folder chosen")
        self.folder_label.setWordWrap(True)
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary_label = QLabel("Choose a folder with one sub-folder of images per class.")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet("color: #b00020;")
        self.problems_label.setVisible(False)
        self.skipped_list = QListWidget()
        self.skipped_list.setMaximumHeight(70)
        self.skipped_list.setVisible(False)
        self.skipped_list.setToolTip("Files that could not be read; they are skipped")
        self.thumbs = QWidget()
        self.thumb_grid = QGridLayout(self.thumbs)
        self.thumb_grid.setContentsMargins(0, 4, 0, 0)
        self.thumb_grid.setHorizontalSpacing(10)
        self.thumb_grid.setVerticalSpacing(4)

        ds = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.choose_button)
        row.addWidget(self.folder_label, 1)
        ds.addLayout(row)
        ds.addWidget(self.summary_label)
        ds.addWidget(self.problems_label)
        ds.addWidget(self.skipped_list)
        ds.addWidget(self.thumbs)

    def show_scanning(self, path: str) -> None:
        self.folder_label.setText(str(path))
        self.folder_label.setToolTip(str(path))
        self.summary_label.setText("Scanning...")
        self.problems_label.setVisible(False)
        self.skipped_list.setVisible(False)
        self.set_thumbnails([])

    def show_failure(self, message: str) -> None:
        self.summary_label.setText("")
        self.problems_label.setText(message)
        self.problems_label.setVisible(True)

    def show_summary(self, s) -> None:
        counts = sorted(s.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{html.escape(name)} ({n})" for name, n in counts[:6])
        more = f", ... {len(counts) - 6} more" if len(counts) > 6 else ""
        singles = len(s.single_image_classes)
        text = (f"<b>{s.classes}</b> classes, <b>{s.images}</b> images; {s.classes_with_pairs} with 2+ images<br>"
                f"Per class: min {s.per_class_min}, median {s.per_class_median:g}, max {s.per_class_max}<br>")
        if singles:
            text += f"<b>{singles}</b> class(es) with a single image (negatives only)<br>"
        if s.forgery_images:
            text += (f"<b>{s.classes_with_forgeries}</b> class(es) with skilled forgeries ({s.forgery_images} images; "
                     "negatives of their class only)<br>")
        for note in s.notes:
            text += f"<i>{html.escape(note)}</i><br>"
        text += f"Unreadable files skipped: {len(s.skipped)}<br><small>{shown}{more}</small>"
        self.summary_label.setText(text)
        self.summary_label.setToolTip("\n".join(f"{name}: {n}" for name, n in sorted(s.counts.items())))
        self.problems_label.setText("\n".join(s.problems))
        self.problems_label.setVisible(bool(s.problems))
        self.skipped_list.clear()
        for path, reason in s.skipped[:500]:
            self.skipped_list.addItem(f"{Path(path).name}: {reason}")
            self.skipped_list.item(self.skipped_list.count() - 1).setToolTip(path)
        self.skipped_list.setVisible(bool(s.skipped))

    def set_thumbnails(self, pairs: list) -> None:
        """Show sample pairs ``(thumb_a, thumb_b, same, class_a, class_b)``, a few per row."""
        while self.thumb_grid.count():
            item = self.thumb_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for i, pair in enumerate(pairs):
            self.thumb_grid.addWidget(self._pair_cell(*pair), i // PAIRS_PER_ROW, i % PAIRS_PER_ROW)
        self.thumbs.setVisible(bool(pairs))

    @staticmethod
    def _pair_cell(a, b, same: bool, ca: str, cb: str) -> QWidget:
        cell = QWidget()
        cl = QVBoxLayout(cell)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(1)
        pics = QHBoxLayout()
        pics.setSpacing(2)
        for arr, name in ((a, ca), (b, cb)):
            lab = QLabel()
            lab.setFixedSize(THUMB_SIZE, THUMB_SIZE)
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lab.setStyleSheet("background: #eee;")
            pm = _pixmap(arr)
            if pm is not None:
                lab.setPixmap(pm)
            lab.setToolTip(name)
            pics.addWidget(lab)
        cl.addLayout(pics)
        cap = QLabel("same" if same else "different")
        cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
        cap.setStyleSheet(f"color: {'#2c7d2c' if same else '#b00020'}; font-size: 11px;")
        cap.setToolTip(f"{ca} / {cb}")
        cl.addWidget(cap)
        return cell

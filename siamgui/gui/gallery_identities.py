"""The Gallery tab's identities panel (identities, their example images, the edit buttons) and the bar
above it (the gallery file, the running job's progress with Cancel)."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QCheckBox, QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QProgressBar,
                               QPushButton, QVBoxLayout, QWidget)

#: Side of an example thumbnail, in pixels.
THUMB = 64
#: Jobs that check for cancel (the bar shows Cancel while they run).
CANCELLABLE = ("sync", "import", "evaluate", "enroll")


class GalleryBar(QWidget):
    """The gallery file with its Open button, and the running job (label, progress, Cancel);
    the People tab's folder bar too (``title``, ``button``, ``cancellable`` jobs)."""

    def __init__(self, parent=None, title: str = "Gallery:", button: str = "Open gallery…",
                 cancellable: tuple[str, ...] = CANCELLABLE):
        super().__init__(parent)
        self.cancellable = cancellable
        self.path_label = QLabel("")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton(button)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        top = QHBoxLayout(self)
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel(title))
        top.addWidget(self.path_label, 1)
        top.addWidget(self.progress)
        top.addWidget(self.cancel_button)
        top.addWidget(self.open_button)

    def show_job(self, kind: str, label: str) -> None:
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.progress.setFormat(label)
        self.cancel_button.setVisible(kind in self.cancellable)

    def show_progress(self, _kind: str, done: int, total: int) -> None:
        if total <= 0:
            return
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat("%v / %m")

    def show_idle(self) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)


class IdentitiesPanel(QGroupBox):
    """Shows identities and examples; the tab reads the gallery and handles the buttons."""

    def __init__(self, parent=None):
        super().__init__("Identities", parent)
        self.ident_list = QListWidget()
        self.ident_list.setIconSize(QSize(THUMB // 2, THUMB // 2))
        self.add_button = QPushButton("New identity…")
        self.add_button.setToolTip("Enrol a person/class from one or more image files")
        self.more_button = QPushButton("Add images…")
        self.more_button.setToolTip("Add example images to the selected identity")
        self.import_button = QPushButton("Import folder…")
        self.import_button.setToolTip("One identity per sub-folder")
        self.rename_button = QPushButton("Rename…")
        self.remove_button = QPushButton("Remove")
        self.examples_list = QListWidget()
        self.examples_list.setViewMode(QListWidget.ViewMode.IconMode)
        self.examples_list.setIconSize(QSize(THUMB, THUMB))
        self.examples_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.examples_list.setMaximumHeight(THUMB * 2 + 30)
        self.remove_example_button = QPushButton("Remove example")
        self.allow_poor_check = QCheckBox("Allow poor-quality faces")
        self.allow_poor_check.setToolTip("Face models: also enrol blurred, tiny, sideways or badly exposed faces, "
                                         "and photos without a face (refused by default; they give unreliable "
                                         "matches)")

        ll = QVBoxLayout(self)
        ll.addWidget(self.ident_list, 1)
        row1 = QHBoxLayout()
        for b in (self.add_button, self.more_button, self.import_button):
            row1.addWidget(b)
        row2 = QHBoxLayout()
        for b in (self.rename_button, self.remove_button):
            row2.addWidget(b)
        row2.addStretch(1)
        ll.addLayout(row1)
        ll.addLayout(row2)
        ll.addWidget(self.allow_poor_check)
        ll.addWidget(QLabel("Examples"))
        ll.addWidget(self.examples_list)
        ll.addWidget(self.remove_example_button, 0, Qt.AlignmentFlag.AlignLeft)

    def show_identities(self, idents) -> None:
        """Fill the list from IdentityInfo rows, keeping the selected name (signals blocked)."""
        current = self.selected_name()
        self.ident_list.blockSignals(True)
        self.ident_list.clear()
        for info in idents:
            text = f"{info.name}  ({info.examples})"
            if info.embedded is not None and info.embedded < info.examples:
                text += f"  · {info.examples - info.embedded} not embedded"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, info.name)
            if info.notes:
                item.setToolTip(info.notes)
            self.ident_list.addItem(item)
            if current is not None and info.name.lower() == current.lower():
                self.ident_list.setCurrentItem(item)
        self.ident_list.blockSignals(False)

    def show_examples(self, examples, icon: Callable[[int], QIcon]) -> None:
        self.examples_list.clear()
        for ex in examples:
            item = QListWidgetItem(icon(ex.id), "")
            item.setData(Qt.ItemDataRole.UserRole, ex.id)
            item.setToolTip(f"{ex.source or 'capture'} · {ex.width}×{ex.height} · {ex.stored}")
            self.examples_list.addItem(item)

    def identity_names(self) -> list[str]:
        return [self.ident_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.ident_list.count())]

    def selected_name(self) -> str | None:
        item = self.ident_list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def selected_example(self) -> int | None:
        item = self.examples_list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def select(self, name: str) -> None:
        for i in range(self.ident_list.count()):
            if self.ident_list.item(i).data(Qt.ItemDataRole.UserRole).lower() == name.lower():
                self.ident_list.setCurrentRow(i)
                return

    def update_buttons(self, has_gallery: bool, ready: bool) -> None:
        """``ready``: a gallery is open and a model loaded (what enrolling needs)."""
        sel = self.selected_name() is not None
        self.add_button.setEnabled(ready)
        self.import_button.setEnabled(ready)
        self.more_button.setEnabled(ready and sel)
        self.rename_button.setEnabled(has_gallery and sel)
        self.remove_button.setEnabled(has_gallery and sel)
        self.remove_example_button.setEnabled(has_gallery and self.examples_list.count() > 0)

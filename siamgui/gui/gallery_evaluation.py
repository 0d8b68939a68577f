"""The Gallery tab's one-shot evaluation panel: N-way K-shot identification accuracy on a class folder."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QWidget


class EvaluationPanel(QWidget):
    """The folder and episode settings; the tab runs the evaluation as a job."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.eval_folder = QLineEdit()
        self.eval_folder.setPlaceholderText("A folder with one sub-folder per class")
        self.eval_browse = QPushButton("Browse…")
        self.way_spin = self._spin(2, 100, 5)
        self.shots_spin = self._spin(1, 50, 1)
        self.episodes_spin = self._spin(1, 100000, 1000)
        self.eval_button = QPushButton("Run")
        self.eval_result = QLabel("")
        self.eval_result.setWordWrap(True)
        self.eval_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout(self)
        frow = QHBoxLayout()
        frow.addWidget(self.eval_folder, 1)
        frow.addWidget(self.eval_browse)
        form.addRow("Folder", frow)
        form.addRow("Classes per episode (N-way)", self.way_spin)
        form.addRow("Examples per class (K-shot)", self.shots_spin)
        form.addRow("Episodes", self.episodes_spin)
        form.addRow("", self.eval_button)
        form.addRow(self.eval_result)

    @staticmethod
    def _spin(lo: int, hi: int, value: int) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(lo, hi)
        spin.setValue(value)
        return spin

    def settings(self) -> tuple[str, int, int, int]:
        """(folder, way, shots, episodes) as entered."""
        return (self.eval_folder.text().strip(), self.way_spin.value(), self.shots_spin.value(),
                self.episodes_spin.value())

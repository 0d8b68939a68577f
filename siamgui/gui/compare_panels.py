"""The Compare tab's panels: the verdict with its threshold controls, and the camera."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFrame, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QSizePolicy, QSlider, QVBoxLayout, QWidget)

from siamgui.gui.camera_view import CameraView
from siamgui.gui.distance_bar import DistanceBar
from siamgui.gui.image_slot import compact_button

SLIDER_STEPS = 1000


class ResultPanel(QWidget):
    """Verdict, distance visual, threshold control and notes."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.verdict_label = QLabel("")
        self.verdict_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setMinimumHeight(self.fontMetrics().height() * 3)
        font = self.verdict_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.verdict_label.setFont(font)
        self.verdict_label.setFrameShape(QFrame.Shape.StyledPanel)
        self.detail_label = QLabel("")
        self.detail_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail_label.setWordWrap(True)
        self.detail_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bar = DistanceBar(self)

        thr = self._threshold_box()

        self.face_combo = QComboBox()
        self.face_combo.addItem("Use the main face", "largest")
        self.face_combo.setItemData(0, "The largest face; of faces of similar size, the one nearest the centre",
                                   Qt.ToolTipRole)
        self.face_combo.addItem("Use the best-matching face", "best")
        self.face_combo.setItemData(1, "Every face of A against every face of B; the closest pair decides",
                                    Qt.ToolTipRole)
        self.face_combo.addItem("Compare the whole image", "whole")
        self.face_label = QLabel("Faces:")
        self.face_label.setBuddy(self.face_combo)
        face_row = QHBoxLayout()
        face_row.addWidget(self.face_label)
        face_row.addWidget(self.face_combo, 1)

        self.notes_label = QLabel("")
        self.notes_label.setWordWrap(True)
        self.notes_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_model_button = QPushButton("Open model file…")
        self.open_model_button.setVisible(False)
        self.whole_button = QPushButton("Compare whole images")
        self.whole_button.setToolTip("No face was found: compare the whole images instead (no face detection)")
        self.whole_button.setVisible(False)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addStretch(1)
        lay.addWidget(self.verdict_label)
        lay.addWidget(self.detail_label)
        lay.addWidget(self.bar)
        lay.addWidget(self.whole_button)
        lay.addSpacing(8)
        lay.addWidget(thr)
        lay.addLayout(face_row)
        lay.addWidget(self.notes_label)
        lay.addWidget(self.open_model_button)
        lay.addStretch(2)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(230)
        self.setMaximumWidth(360)


    def _threshold_box(self) -> QGroupBox:
        """Slider and spin box for the decision threshold, and the reset button."""
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setToolTip("Decision threshold: distances below it count as the same")
        self.spin = QDoubleSpinBox()
        self.spin.setDecimals(4)
        self.spin.setRange(0.0, 1e6)
        self.spin.setKeyboardTracking(False)
        self.spin.setToolTip("Decision threshold")
        self.reset_button = QPushButton("Reset to model's threshold")
        thr = QGroupBox("Decision threshold")
        tl = QVBoxLayout(thr)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        tl.addLayout(row)
        tl.addWidget(self.reset_button)
        self.threshold_layout = tl  # the tab adds the threshold's meaning below
        return thr



class CameraPanel(QGroupBox):
    """The camera preview with its source chooser, start/stop and capture buttons (shown on demand)."""

    def __init__(self, parent=None):
        super().__init__("Camera", parent)
        self.camera_view = CameraView(self)
        self.source_combo = QComboBox()
        self.source_combo.setEditable(True)
        self.source_combo.setToolTip("Camera number, video file or stream URL")
        self.source_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.source_combo.setMinimumContentsLength(8)
        self.refresh_button = compact_button("Find", "Look for connected cameras")
        self.file_button = compact_button("File…", "Use a video file as the camera")
        self.start_button = compact_button("Start", "Start or stop the preview")
        self.start_button.setMinimumWidth(self.start_button.fontMetrics().horizontalAdvance("Stop Start") + 10)
        self.capture_a_button = compact_button("→ A", "Capture the current frame into image A")
        self.capture_b_button = compact_button("→ B", "Capture the current frame into image B")
        self.live_button = compact_button("Verify live against A",
                                          "Compare every new camera frame's main face with image A (smoothed "
                                          "over the last half second)")
        self.live_button.setCheckable(True)
        self.live_label = QLabel("")
        self.live_label.setWordWrap(True)
        self.live_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.live_label.setVisible(False)
        cl = QVBoxLayout(self)
        src_row = QHBoxLayout()
        src_row.addWidget(self.source_combo, 1)
        src_row.addWidget(self.refresh_button)
        src_row.addWidget(self.file_button)
        cl.addLayout(src_row)
        cl.addWidget(self.camera_view, 1)
        cap_row = QHBoxLayout()
        cap_row.addWidget(self.start_button)
        cap_row.addStretch(1)
        cap_row.addWidget(QLabel("Capture:"))
        cap_row.addWidget(self.capture_a_button)
        cap_row.addWidget(self.capture_b_button)
        cl.addLayout(cap_row)
        cl.addWidget(self.live_button)
        cl.addWidget(self.live_label)
        self.setVisible(False)

    def show_cameras(self, indices) -> None:
        """Offer the cameras found (keeping what the user typed)."""
        text = self.source_combo.currentText()
        self.source_combo.clear()
        for i in indices:
            self.source_combo.addItem(f"Camera {i}", i)
        if text:
            self.source_combo.setEditText(text)
        if not indices:
            self.camera_view.status_label.setText("No camera found. Type a video file or a stream URL, or use File…")

    def chosen_source(self):
        """The chooser's source: a listed camera's number, else the typed text (default camera 0)."""
        text = self.source_combo.currentText().strip()
        i = self.source_combo.findText(text)
        data = self.source_combo.itemData(i) if i >= 0 else None
        return data if data is not None else (text or 0)

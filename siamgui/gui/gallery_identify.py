"""The Gallery tab's identify panels: the ranking settings, a probe image and the live camera.

The probe and live panels each own a :class:`~siamgui.gui.workers.LatestOnlyRunner`
(live frames get their own, so a new frame replaces one still waiting) and ask
the tab for what to identify against through a ``context`` callable returning
``(gallery, verifier, rank, k)``, or None when there is no gallery or model.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout, QHeaderView,
                               QLabel, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from siamgui.gui.camera_view import CameraView
from siamgui.gui.gallery_identities import THUMB
from siamgui.gui.gallery_jobs import face_overlays, faces_summary, identify
from siamgui.gui.image_view import GREEN, ORANGE, VERMILLION, ImageView, Overlay, array_to_qimage
from siamgui.gui.workers import LatestOnlyRunner

VIDEO_FILTER = "Videos (*.avi *.mp4 *.mkv *.mov *.webm);;All files (*)"
#: Longest side of a probe image as shown.
PROBE_SIDE = 800
#: Box colours by what a face was found to be (gallery_jobs.face_overlays).
KIND_COLOURS = {"known": GREEN, "unknown": VERMILLION, "unjudged": ORANGE}


def overlays_for(result, scale: float = 1.0, whole=None, distances: bool = False) -> list[Overlay]:
    """One labelled box per face of a FacesIdentification (dashed when the face was not judged)."""
    return [Overlay(box, KIND_COLOURS[kind], text, 3.0, dashed=kind == "unjudged")
            for box, kind, text in face_overlays(result, scale, whole, distances)]


class RankBar(QWidget):
    """How the gallery is ranked (nearest example or mean of k) and the open-set threshold."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rank_combo = QComboBox()
        self.rank_combo.addItem("Nearest example", "min")
        self.rank_combo.addItem("Mean of k nearest", "mean")
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 50)
        self.k_spin.setValue(3)
        self.k_spin.setEnabled(False)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setDecimals(4)
        self.threshold_spin.setRange(0.0, 1e6)
        self.threshold_spin.setSingleStep(0.01)
        self.threshold_spin.setToolTip("Unknown when the best distance is at or above this (shared with Compare)")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Rank by"))
        row.addWidget(self.rank_combo)
        row.addWidget(QLabel("k"))
        row.addWidget(self.k_spin)
        row.addStretch(1)
        row.addWidget(QLabel("Threshold"))
        row.addWidget(self.threshold_spin)


class ProbePanel(QWidget):
    """A probe image with every face labelled, the verdict (a name or Unknown) and the top
    candidates of the face chosen (the largest judged one first; a chooser when there are several).

    Signals: ``identified(object)`` with the Identification of the face shown (None when no
    face could be judged), ``faces_identified(object)`` with the whole FacesIdentification,
    ``failed(str)`` when a probe cannot be read or identified (the tab shows why).
    """

    identified = Signal(object)
    faces_identified = Signal(object)
    failed = Signal(str)

    def __init__(self, context: Callable[[], tuple | None], icon: Callable[[int], QIcon], parent=None):
        super().__init__(parent)
        self._context, self._icon = context, icon
        self.result = None  # the Identification shown
        self.faces = None  # the FacesIdentification shown
        self._probe: str | None = None
        self._scale = 1.0  # shown probe pixels per image pixel
        self._req = 0
        self._face_mode = False
        self.identifier = LatestOnlyRunner(identify, self, name="gallery-identify")
        self.identifier.succeeded.connect(self._on_identified)
        self.identifier.failed.connect(self._on_identify_failed)
        self.probe_button = QPushButton("Open probe image…")
        self.probe_view = ImageView(self, placeholder="Open an image to identify", min_side=140)
        self.verdict_label = QLabel("")
        f = self.verdict_label.font()
        f.setPointSizeF(f.pointSizeF() * 1.6)
        f.setBold(True)
        self.verdict_label.setFont(f)
        self.detail_label = QLabel("")
        self.detail_label.setWordWrap(True)
        self.face_combo = QComboBox()
        self.face_combo.setToolTip("The face whose candidates are listed")
        self.face_combo.setVisible(False)
        self.face_combo.currentIndexChanged.connect(self._on_face_chosen)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Identity", "Distance"])
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 6)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        pl = QHBoxLayout(self)
        pcol = QVBoxLayout()
        pcol.addWidget(self.probe_button)
        pcol.addWidget(self.probe_view, 1)
        rcol = QVBoxLayout()
        rcol.addWidget(self.verdict_label)
        rcol.addWidget(self.detail_label)
        rcol.addWidget(self.face_combo)
        rcol.addWidget(self.table, 1)
        pl.addLayout(pcol, 1)
        pl.addLayout(rcol, 1)

    def identify_file(self, path) -> None:
        """Show ``path`` and rank the gallery for it (in the identify worker)."""
        import numpy as np

        from siamgui.core.errors import SiamguiError
        from siamgui.core.images import load_image

        self._probe = str(path)
        try:
            img = load_image(self._probe)
        except SiamguiError as exc:
            self._probe = None
            self.probe_view.set_image(None)
            self.clear_result()
            self.failed.emit(str(exc))
            return
        width = img.size[0]
        img.thumbnail((PROBE_SIDE, PROBE_SIDE))
        self._scale = img.size[0] / width
        self.probe_view.set_image(array_to_qimage(np.asarray(img)))
        self.probe_view.set_overlays([])
        self.reidentify()

    def reidentify(self) -> None:
        """Rank the gallery for the probe again (gallery, model or ranking changed)."""
        context = self._context() if self._probe is not None else None
        if context is None:
            return
        gallery, verifier, rank, k = context
        self._req += 1
        self._face_mode = bool(verifier.face_mode)
        self.verdict_label.setText("…")
        self.identifier.submit(self._req, gallery, verifier, self._probe, rank, k, False, False)

    def forget_pending(self) -> None:
        """Results of requests made so far are stale (another gallery was opened)."""
        self.identifier.cancel_pending()
        self._req += 1
        self.result = None
        self.faces = None
        self.clear_result()

    def apply_threshold(self, threshold: float) -> None:
        """The threshold moved: every face's verdict changes, the rankings do not."""
        if self.faces is None:
            return
        self.faces.apply_threshold(threshold)
        self.show_faces(self.faces, self.face_combo.currentIndex())

    def _on_identified(self, req: int, payload) -> None:
        result, _live = payload
        if req != self._req:
            return  # a newer request is on its way
        self.faces = result
        self.show_faces(result)
        self.faces_identified.emit(result)
        self.identified.emit(self.result)

    def _on_identify_failed(self, req: int, message: str) -> None:
        if req != self._req:
            return
        self.result = None
        self.faces = None
        self.clear_result()
        self.verdict_label.setText("—")
        self.failed.emit(message)

    def clear_result(self) -> None:
        self.verdict_label.setText("")
        self.detail_label.setText("")
        self.table.setRowCount(0)
        self.face_combo.setVisible(False)
        self.probe_view.set_overlays([])

    def show_faces(self, faces, chosen: int | None = None) -> None:
        """A FacesIdentification: every face labelled on the probe, and the face ``chosen`` (default:
        the largest judged one) in the verdict and the table."""
        self.probe_view.set_overlays(overlays_for(faces, self._scale) if self._face_mode else [])
        if chosen is None or not 0 <= chosen < len(faces.faces):
            chosen = next((n for n, f in enumerate(faces.faces) if f.result is not None), 0)
        self.face_combo.blockSignals(True)
        self.face_combo.clear()
        for n, f in enumerate(faces.faces, 1):
            self.face_combo.addItem(f"Face {n}: {f.label}")
        self.face_combo.setCurrentIndex(chosen)
        self.face_combo.blockSignals(False)
        self.face_combo.setVisible(len(faces.faces) > 1)
        self._show_face(chosen)

    def _on_face_chosen(self, index: int) -> None:
        if self.faces is not None and 0 <= index < len(self.faces.faces):
            self._show_face(index)

    def _show_face(self, index: int) -> None:
        faces = self.faces
        face = faces.faces[index]
        self.result = face.result
        notes = list(faces.notes)
        summary = faces_summary(faces)
        if face.result is None:
            self.verdict_label.setText("Not judged")
            self.verdict_label.setStyleSheet(f"color: {ORANGE}")
            self.detail_label.setText("\n".join([f"This face is {face.issue}.", summary, *notes]).strip())
            self.table.setRowCount(0)
            return
        self.show_result(face.result, [summary, *notes] if summary or notes else [])

    def show_result(self, r, extra: list[str] | None = None) -> None:
        """An Identification: verdict, distance against the threshold, notes, candidates with thumbnails."""
        if r.no_face:
            self.verdict_label.setText("No face found")
            self.verdict_label.setStyleSheet(f"color: {ORANGE}")
            rel = "vs"
        elif r.best is None:
            self.verdict_label.setText("Unknown")
            self.verdict_label.setStyleSheet(f"color: {VERMILLION}")
            rel = "≥"
        else:
            self.verdict_label.setText(r.best)
            self.verdict_label.setStyleSheet(f"color: {GREEN}")
            rel = "<"
        notes = [n for n in (extra or []) if n]
        unembedded = self.faces.unembedded if self.faces is not None else r.unembedded
        if unembedded:
            notes.append(f"{unembedded} example(s) are still being embedded for this model.")
        rule = "nearest example" if r.rank == "min" else f"mean of {r.k} nearest"
        self.detail_label.setText(f"distance {r.distance:.4f} {rel} threshold {r.threshold:.4f} ({rule})"
                                  + ("\n" + "\n".join(notes) if notes else ""))
        self.table.setRowCount(len(r.candidates))
        for row, c in enumerate(r.candidates):
            self.table.setItem(row, 0, QTableWidgetItem(self._icon(c.example_id), c.name))
            self.table.setItem(row, 1, QTableWidgetItem(f"{c.distance:.4f}"))

    def candidate_rows(self) -> list[tuple[str, str]]:
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text()) for r in range(self.table.rowCount())]


class LivePanel(QWidget):
    """The live camera with its source chooser; every face of each shown frame is identified and labelled.

    Signals: ``identified(object)`` with the Identification of each shown frame's largest judged
    face (None when none could be judged), ``faces_identified(object)`` with its FacesIdentification.
    """

    identified = Signal(object)
    faces_identified = Signal(object)

    def __init__(self, context: Callable[[], tuple | None], parent=None):
        super().__init__(parent)
        self._context = context
        self._req = 0
        self._shown = 0
        self.identifier = LatestOnlyRunner(identify, self, name="gallery-live")
        self.identifier.succeeded.connect(self._on_result)
        self.identifier.failed.connect(self._on_failed)
        self.camera_view = CameraView(self)
        self.source_combo = QComboBox()
        self.source_combo.setEditable(True)
        self.source_combo.setEditText("0")
        self.source_combo.setToolTip("Camera number, video file or stream URL")
        self.video_button = QPushButton("File…")
        self.live_button = QPushButton("Start")
        self.capture_button = QPushButton("Enrol capture…")
        self.capture_button.setToolTip("Add the current camera frame to an identity (face models crop the face)")
        self.live_label = QLabel("")
        lv = QVBoxLayout(self)
        src = QHBoxLayout()
        src.addWidget(QLabel("Source"))
        src.addWidget(self.source_combo, 1)
        src.addWidget(self.video_button)
        src.addWidget(self.live_button)
        src.addWidget(self.capture_button)
        lv.addLayout(src)
        lv.addWidget(self.camera_view, 1)
        lv.addWidget(self.live_label)
        self.live_button.clicked.connect(self._on_live_clicked)
        self.video_button.clicked.connect(self._on_video_clicked)
        self.camera_view.frame_ready.connect(self._on_frame)
        self.camera_view.started.connect(lambda _d: self.live_button.setText("Stop"))
        self.camera_view.stopped.connect(self._on_camera_stopped)

    def start(self, source=None) -> None:
        """Start the camera on ``source`` (or the chooser's text, default camera 0)."""
        if source is not None:
            self.source_combo.setEditText(str(source))
        self.camera_view.start(self.source_combo.currentText().strip() or "0")
        self.live_button.setText("Stop")

    def stop(self) -> None:
        self.camera_view.stop()
        self.camera_view.set_overlays([])
        self.live_button.setText("Start")

    def forget_pending(self) -> None:
        self.identifier.cancel_pending()

    def _on_live_clicked(self) -> None:
        if self.camera_view.running:
            self.stop()
        else:
            self.start()

    def _on_video_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Use a video file as the camera", "", VIDEO_FILTER)
        if path:
            self.start(path)

    def _on_camera_stopped(self, message: str) -> None:
        if not self.camera_view.running:
            self.live_button.setText("Start")
        if message:
            self.live_label.setText(message)

    def _on_frame(self, frame) -> None:
        """Each shown frame goes to the live worker; it replaces a frame still waiting there."""
        context = self._context()
        if context is None:
            return
        gallery, verifier, rank, k = context
        self._req += 1
        self.identifier.submit(self._req, gallery, verifier, frame, rank, k, True, True)

    def _on_failed(self, req: int, message: str) -> None:
        if req > self._shown:
            self._shown = req
            self.camera_view.set_overlays([])
            self.live_label.setText(message)

    def _on_result(self, req: int, payload) -> None:
        result, _live = payload
        if req <= self._shown or not self.camera_view.running:
            return  # older than what is shown, or the camera stopped meanwhile
        self._shown = req
        self.show_live_result(result)
        self.faces_identified.emit(result)
        self.identified.emit(result.primary)

    def show_live_result(self, result) -> None:
        """Label every face (or the whole frame, without a face) with its identity and distance,
        "Unknown", or why it was not judged."""
        frame = self.camera_view.current_frame()
        whole = None if frame is None else (2, 2, frame.shape[1] - 4, frame.shape[0] - 4)
        overlays = overlays_for(result, whole=whole, distances=True)
        self.camera_view.set_overlays(overlays)
        self.live_label.setText("Live: " + (", ".join(o.label for o in overlays) or "no face"))

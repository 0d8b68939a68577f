"""The Compare tab: two image slots, the verdict, the threshold, face mode and the camera."""

from __future__ import annotations

import datetime as _dt
import math

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from siamgui.core.face.live import quality_text
from siamgui.gui.compare_panels import SLIDER_STEPS, CameraPanel, ResultPanel
from siamgui.gui.image_slot import ImageSlot
from siamgui.gui.image_view import BLUE, ORANGE, VERMILLION
from siamgui.gui.threshold_meaning import ThresholdMeaningLabel
from siamgui.gui.why_view import WhyButton
from siamgui.gui.workers import LatestOnlyRunner, Worker, WorkerGroup

NO_MODEL_TEXT = "No model loaded — open a model file (Model ▸ Open model file…)"
VIDEO_FILTER = "Videos (*.avi *.mp4 *.mkv *.mov *.webm *.mjpg *.mjpeg);;All files (*)"


class SlotAnalysis:
    """The result of analysing the only image present (slot ``name``), with its face quality."""

    def __init__(self, name: str, analysis, quality=None):
        self.name, self.analysis, self.quality = name, analysis, quality


def _quality(verifier, image, face):
    """The face's quality (None: not a face model, or nothing to judge)."""
    if not verifier.face_mode or face is None:
        return None
    from siamgui.core.face.quality import assess_source

    return assess_source(image, face)


def _live_job(live, frame, threshold: float):
    """Runs in the live worker: one camera frame against image A (:class:`~siamgui.core.face.live.LiveVerifier`)."""
    return live.verify(frame, threshold=threshold)


def _compare_job(verifier, image_a, image_b, face_policy: str, threshold: float):
    """Runs in the worker thread: the comparison, or with one image missing the other's
    analysis (faces found, the model's input; its embedding is kept for the comparison);
    each face's quality is judged here too."""
    if image_a is None or image_b is None:
        name, image = ("B", image_b) if image_a is None else ("A", image_a)
        analysis = verifier.analyse(image, face_policy=face_policy)
        return SlotAnalysis(name, analysis, _quality(verifier, image, analysis.face))
    result = verifier.compare(image_a, image_b, threshold=threshold, face_policy=face_policy)
    result.quality = (_quality(verifier, image_a, result.faces[0]), _quality(verifier, image_b, result.faces[1]))
    return result


class CompareTab(QWidget):
    """Compares the images in slots A and B with the current model, off the GUI thread.

    Signals: ``comparison_finished(bool)`` whenever a comparison that is still
    current has finished (True with a verdict shown, False when it failed);
    ``analysis_finished(str)`` when the only image present (slot "A" or "B") has
    been analysed (faces drawn, the model's input shown);
    ``open_model_requested()``; ``message(str)`` for the status bar.
    """

    comparison_finished = Signal(bool)
    live_verdict = Signal(object)  # a LiveVerdict shown by "Verify live against A"
    analysis_finished = Signal(str)  # "A" or "B": the only image present has been analysed
    open_model_requested = Signal()
    message = Signal(str)

    def __init__(self, state, parent=None, camera_source=None):
        super().__init__(parent)
        self.state = state
        self.verifier = None
        self.result = None  # the Comparison for the current images, model and face policy
        self._req = 0
        self._pending_req = -1
        self._analysis_req = -1
        self._loading = False
        self._model_error = ""
        self._updating_threshold = False
        self._pending_capture: ImageSlot | None = None
        self._list_workers = WorkerGroup(self)
        self._cameras_listed = False

        self.worker = LatestOnlyRunner(_compare_job, self, name="compare")
        self.worker.succeeded.connect(self._on_compare_succeeded)
        self.worker.failed.connect(self._on_compare_failed)
        self.live = None  # the LiveVerifier while "Verify live against A" is on
        self._live_req = 0
        self.live_worker = LatestOnlyRunner(_live_job, self, name="live-verify")  # drops frames when behind
        self.live_worker.succeeded.connect(self._on_live_verdict)
        self.live_worker.failed.connect(self._on_live_failed)

        self.slot_a = ImageSlot("A", self)
        self.slot_b = ImageSlot("B", self)
        self.panel = ResultPanel(self)
        self.verdict_label = self.panel.verdict_label
        self.threshold_slider, self.threshold_spin = self.panel.slider, self.panel.spin
        self.face_combo = self.panel.face_combo
        self.camera_box = CameraPanel(self)
        self.camera_view, self.source_combo = self.camera_box.camera_view, self.camera_box.source_combo
        self.start_button, self.refresh_button = self.camera_box.start_button, self.camera_box.refresh_button
        self.capture_a_button, self.capture_b_button = (self.camera_box.capture_a_button,
                                                        self.camera_box.capture_b_button)
        self.live_button, self.live_label = self.camera_box.live_button, self.camera_box.live_label
        self.camera_toggle = QPushButton("Show camera")
        self.camera_toggle.setToolTip("A live camera preview to capture images from")
        self.camera_toggle.setCheckable(True)
        self.swap_button = QPushButton("Swap A ⇄ B")
        self.swap_button.setToolTip("Exchange the two images")
        self.why = WhyButton(self)
        self.why_button = self.why.button
        self.threshold_meaning = ThresholdMeaningLabel(state)
        self.panel.threshold_layout.addWidget(self.threshold_meaning)
        self._lay_out()
        self._connect(state)

        if camera_source is not None:
            self.source_combo.setEditText(str(camera_source))
        self._set_threshold_enabled(False)
        self.face_combo.setEnabled(False)
        self.panel.face_label.setEnabled(False)
        if state.verifier is not None:
            self.set_verifier(state.verifier)
        else:
            self._show_idle()

    def _lay_out(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.swap_button)
        top.addWidget(self.why_button)
        top.addStretch(1)
        top.addWidget(self.camera_toggle)
        body = QHBoxLayout()
        body.addWidget(self.slot_a, 3)
        body.addWidget(self.panel, 2)
        body.addWidget(self.slot_b, 3)
        body.addWidget(self.camera_box, 3)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(body, 1)

    def _connect(self, state) -> None:
        for slot in (self.slot_a, self.slot_b):
            slot.image_changed.connect(self.request_comparison)
            slot.capture_requested.connect(lambda s=slot: self.capture_to(s))
            slot.message.connect(self.message)
        self.threshold_slider.valueChanged.connect(self._on_slider_changed)
        self.threshold_spin.valueChanged.connect(self._on_spin_changed)
        self.panel.reset_button.clicked.connect(self.reset_threshold)
        self.face_combo.currentIndexChanged.connect(lambda _i: self.request_comparison())
        self.panel.open_model_button.clicked.connect(self.open_model_requested)
        self.panel.whole_button.clicked.connect(lambda: self.set_face_policy("whole"))
        self.swap_button.clicked.connect(self.swap)
        self.camera_toggle.toggled.connect(self.show_camera_panel)
        self.start_button.clicked.connect(self._on_start_clicked)
        self.refresh_button.clicked.connect(self.refresh_cameras)
        self.camera_box.file_button.clicked.connect(self._choose_video)
        self.capture_a_button.clicked.connect(lambda: self.capture_to(self.slot_a))
        self.capture_b_button.clicked.connect(lambda: self.capture_to(self.slot_b))
        self.live_button.toggled.connect(self._on_live_toggled)
        self.slot_a.image_changed.connect(self._restart_live)
        self.camera_view.frame_ready.connect(self._on_camera_frame)
        self.camera_view.started.connect(self._on_camera_started)
        self.camera_view.stopped.connect(self._on_camera_stopped)
        state.model_loading.connect(self._on_model_loading)
        state.model_changed.connect(self.set_verifier)
        state.model_failed.connect(self._on_model_failed)
        state.threshold_changed.connect(self._on_state_threshold)

    # -- model ---------------------------------------------------------------------------
    def set_verifier(self, verifier) -> None:
        if self.verifier is not None and verifier.loaded is self.verifier.loaded:
            verifier.threshold = self.threshold  # the same model on another device: keep the user's threshold
        self.verifier = verifier
        self._loading = False
        self._model_error = ""
        self.panel.open_model_button.setVisible(False)
        self._configure_threshold(verifier)
        face = bool(verifier.face_mode)
        self.face_combo.setEnabled(face)
        self.panel.face_label.setEnabled(face)
        self.face_combo.setToolTip("What to compare when a photo has no face or several faces" if face
                                   else "Face detection is used only by face models")
        self.camera_view.set_detect_faces(face)
        self._restart_live()
        self.request_comparison()

    def set_no_model(self, reason: str = "") -> None:
        """No model is loaded and none is loading (e.g. no bundled model yet)."""
        self._loading = False
        self._model_error = reason
        self._show_idle()

    def _on_model_loading(self, label: str) -> None:
        self._loading = True
        if self.verifier is None:
            self._show_idle()

    def _on_model_failed(self, message: str) -> None:
        self._loading = False
        self._model_error = message
        if self.verifier is None:
            self._show_idle()
        else:
            self._set_notes(f"The new model could not be loaded: {message} The previous model is still in use.",
                            warn=True)

    # -- threshold -----------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        return float(self.threshold_spin.value())

    def _configure_threshold(self, verifier) -> None:
        t = float(verifier.threshold)
        top = 2.0 * float(verifier.model_threshold) if verifier.model_threshold > 0 else 1.0
        self._slider_max = max(top, t * 1.05, 1e-3)
        self._updating_threshold = True
        try:
            self.threshold_spin.setSingleStep(self._slider_max / 200.0)
            self.threshold_spin.setValue(t)
            self.threshold_slider.setValue(self._to_slider(t))
        finally:
            self._updating_threshold = False
        self._set_threshold_enabled(True)
        self._update_reset_button()

    def _to_slider(self, t: float) -> int:
        return int(round(min(max(t / self._slider_max, 0.0), 1.0) * SLIDER_STEPS))

    def _set_threshold_enabled(self, on: bool) -> None:
        for w in (self.threshold_slider, self.threshold_spin, self.panel.reset_button):
            w.setEnabled(on)

    def set_threshold(self, value: float) -> None:
        """Set the decision threshold (as the user would)."""
        self.threshold_spin.setValue(float(value))

    def reset_threshold(self) -> None:
        if self.verifier is not None:
            self.set_threshold(self.verifier.model_threshold)

    def _on_slider_changed(self, pos: int) -> None:
        if self._updating_threshold:
            return
        self._updating_threshold = True
        try:
            self.threshold_spin.setValue(pos / SLIDER_STEPS * self._slider_max)
        finally:
            self._updating_threshold = False
        self._threshold_changed()

    def _on_spin_changed(self, value: float) -> None:
        if self._updating_threshold:
            return
        self._updating_threshold = True
        try:
            self.threshold_slider.setValue(self._to_slider(value))
        finally:
            self._updating_threshold = False
        self._threshold_changed()

    def _on_state_threshold(self, value: float) -> None:
        if self.verifier is not None and not math.isclose(value, self.threshold, rel_tol=0, abs_tol=1e-9):
            self.set_threshold(value)

    def _threshold_changed(self) -> None:
        t = self.threshold
        self._update_reset_button()
        if self.verifier is not None and hasattr(self.state, "set_threshold"):
            self.state.set_threshold(t)
        if self.result is not None:
            # the distance does not depend on the threshold: re-evaluate without a forward pass
            self.result.apply_threshold(t)
            self._show_result(self.result)

    def _update_reset_button(self) -> None:
        if self.verifier is not None:
            mt = self.verifier.model_threshold
            self.panel.reset_button.setEnabled(not math.isclose(self.threshold, mt, rel_tol=0, abs_tol=5e-5))
            self.panel.reset_button.setToolTip(f"The model file's threshold: {mt:.4f}")

    # -- comparing -------------------------------------------------------------------------
    @property
    def face_policy(self) -> str:
        return str(self.face_combo.currentData())

    def set_face_policy(self, policy: str) -> None:
        i = self.face_combo.findData(policy)
        if i < 0:
            raise ValueError(f"unknown face policy {policy!r}")
        self.face_combo.setCurrentIndex(i)

    def load_images(self, paths) -> bool:
        ok = True
        for slot, path in zip((self.slot_a, self.slot_b), paths):
            ok = slot.set_image_path(path) and ok
        return ok

    def swap(self) -> None:
        a = (self.slot_a.image, self.slot_a.label, self.slot_a.path)
        b = (self.slot_b.image, self.slot_b.label, self.slot_b.path)
        for slot, (img, label, path) in ((self.slot_a, b), (self.slot_b, a)):
            slot.blockSignals(True)
            try:
                if img is None:
                    slot.clear()
                else:
                    slot.set_image(img, label, path)
            finally:
                slot.blockSignals(False)
        self.request_comparison()

    def request_comparison(self) -> None:
        """Start a comparison of the current images; supersedes any running one."""
        self._req += 1
        self.result = None
        for slot in (self.slot_a, self.slot_b):
            slot.clear_analysis()
        present = [slot for slot in (self.slot_a, self.slot_b) if slot.image is not None]
        if self.verifier is None or not present:
            self.worker.cancel_pending()
            self._show_idle()
            return
        if len(present) == 1:  # show what the model makes of it now; the comparison reuses it
            self._show_idle()
            self._analysis_req = self._req
            self.worker.submit(self._req, self.verifier, self.slot_a.image, self.slot_b.image, self.face_policy,
                               self.threshold)
            return
        self._show_pending()
        self._pending_req = self._req
        self.worker.submit(self._req, self.verifier, self.slot_a.image, self.slot_b.image, self.face_policy,
                           self.threshold)

    @property
    def busy(self) -> bool:
        """A comparison is queued or running whose result will be shown."""
        return self._pending_req == self._req

    def _on_compare_succeeded(self, req: int, result) -> None:
        if req != self._req:
            return  # superseded: never show a stale result
        if isinstance(result, SlotAnalysis):
            slot = self.slot_a if result.name == "A" else self.slot_b
            a = result.analysis
            slot.set_analysis(a.face, a.input, bool(self.verifier and self.verifier.face_mode), result.quality)
            self.analysis_finished.emit(result.name)
            return
        self._pending_req = -1
        result.apply_threshold(self.threshold)
        self.result = result
        face_mode = bool(self.verifier and self.verifier.face_mode)
        for slot, info, arr, q in zip((self.slot_a, self.slot_b), result.faces, result.inputs, result.quality):
            slot.set_analysis(info, arr, face_mode, q)
        self._show_result(result)
        self.comparison_finished.emit(True)

    def _on_compare_failed(self, req: int, message: str) -> None:
        if req != self._req:
            return
        if req == self._analysis_req:  # one image only: say so, no verdict to withdraw
            self._set_notes(message, warn=True)
            self.message.emit(f"Image could not be analysed: {message}")
            return
        self._pending_req = -1
        self._set_verdict("Comparison failed", None)
        self.panel.detail_label.setText("")
        self.panel.bar.set_values(None, self.threshold)
        self._set_notes(message, warn=True)
        self.message.emit(f"Comparison failed: {message}")
        self.comparison_finished.emit(False)

    # -- display ---------------------------------------------------------------------------
    def verdict_text(self) -> str:
        return self.verdict_label.text()

    def _set_verdict(self, text: str, colour: str | None) -> None:
        self.panel.whole_button.setVisible(False)  # offered only by a result without a face
        self.verdict_label.setText(text)
        if colour:
            self.verdict_label.setStyleSheet(f"background: {colour}; color: white; border-radius: 6px; padding: 6px;")
        else:
            self.verdict_label.setStyleSheet("padding: 6px;")

    def _set_notes(self, text: str, warn: bool = False) -> None:
        self.panel.notes_label.setText(text)
        self.panel.notes_label.setStyleSheet(f"color: {ORANGE}; font-weight: bold;" if warn and text else "")

    def _show_idle(self) -> None:
        self.panel.bar.set_values(None, self.threshold if self.verifier else None)
        self.panel.detail_label.setText("")
        if self.verifier is None:
            if self._loading:
                self._set_verdict("Loading model…", None)
                self._set_notes("")
                self.panel.open_model_button.setVisible(False)
            else:
                self._set_verdict("No model loaded", None)
                self._set_notes(self._model_error or NO_MODEL_TEXT, warn=bool(self._model_error))
                self.panel.open_model_button.setVisible(True)
            return
        missing = [s.name for s in (self.slot_a, self.slot_b) if s.image is None]
        self._set_verdict("Add " + " and ".join(f"image {n}" for n in missing), None)
        self._set_notes("")

    def _show_pending(self) -> None:
        self._set_verdict("Comparing…", None)
        self.panel.detail_label.setText("")
        self.panel.bar.set_values(None, self.threshold)
        self._set_notes("")

    def _show_result(self, result) -> None:
        if not result.has_verdict:
            self._show_no_face(result)
            return
        if result.same:
            self._set_verdict("✓ SAME", BLUE)
            relation = "<"
        else:
            self._set_verdict("✗ DIFFERENT", VERMILLION)
            relation = "≥"
        detail = f"distance {result.distance:.4f} {relation} threshold {result.threshold:.4f}"
        if result.faces_used is not None and any(len(b) > 1 for b in result.face_boxes):
            i, j = result.faces_used
            detail += (f"\nclosest pair: face {i + 1} of {len(result.face_boxes[0])} in A, "
                       f"face {j + 1} of {len(result.face_boxes[1])} in B")
        self.panel.detail_label.setText(detail)
        self.panel.bar.set_values(result.distance, result.threshold)
        self._set_notes("\n".join(result.notes), warn=bool(result.notes))

    def _show_no_face(self, result) -> None:
        """No SAME/DIFFERENT: which image has no face, the distance for information, and the way out."""
        which = " and ".join(f"image {x}" for x in result.missing_faces)
        self._set_verdict(f"No face in {which}", None)
        self.panel.detail_label.setText(f"distance {result.distance:.4f} (for information only: no verdict "
                                        "without a face)")
        self.panel.bar.set_values(None, result.threshold)
        self.panel.whole_button.setVisible(True)
        self._set_notes("\n".join([result.no_face_message(), *result.notes]), warn=True)

    # -- camera ------------------------------------------------------------------------------
    def show_camera_panel(self, on: bool = True) -> None:
        if self.camera_toggle.isChecked() != on:
            self.camera_toggle.setChecked(on)  # re-enters through the toggled signal
            return
        self.camera_box.setVisible(on)
        self.camera_toggle.setText("Hide camera" if on else "Show camera")
        if on and not self._cameras_listed and not self.source_combo.currentText():
            self.refresh_cameras()

    def start_camera(self, source=None) -> None:
        """Show the panel and start the preview (``source`` or the chooser's text, default camera 0)."""
        if source is not None:
            self.source_combo.setEditText(str(source))
        self.show_camera_panel(True)
        self.camera_view.start(self.camera_box.chosen_source())
        self.start_button.setText("Stop")

    def stop_camera(self) -> None:
        self.camera_view.stop()
        self.start_button.setText("Start")

    def _on_start_clicked(self) -> None:
        if self.camera_view.running:
            self.stop_camera()
        else:
            self.start_camera()

    def capture_to(self, slot: ImageSlot) -> None:
        """Capture into ``slot`` the best frame of the last second (by face quality), else the current one."""
        frame, quality = self.camera_view.best_recent_frame()
        if frame is not None and self.camera_view.running:
            slot.set_image_array(frame, f"Camera {_dt.datetime.now():%H:%M:%S}", bgr=True)
            if quality is not None:
                self.message.emit(f"Image {slot.name}: the best frame of the last second "
                                  f"({quality_text(quality).lower()}).")
            return
        self._pending_capture = slot  # filled by the first frame
        if not self.camera_view.running:
            self.start_camera()
        self.message.emit(f"Starting the camera for image {slot.name}…")

    def _on_camera_frame(self, frame) -> None:
        if self.live is not None:
            self.live_worker.submit(self._live_req, self.live, frame, self.threshold)
        if self._pending_capture is not None:
            slot, self._pending_capture = self._pending_capture, None
            slot.set_image_array(frame, f"Camera {_dt.datetime.now():%H:%M:%S}", bgr=True)

    def _on_camera_started(self, description: str) -> None:
        self.start_button.setText("Stop")
        self.message.emit(f"Camera: {description}")

    def _on_camera_stopped(self, message: str) -> None:
        if self.camera_view.running:
            return
        self.start_button.setText("Start")
        if message:
            self.message.emit(message)
            if self._pending_capture is not None:
                self._pending_capture.show_error(message)
                self._pending_capture = None

    def refresh_cameras(self) -> None:
        from siamgui.capture.camera import list_cameras

        self._cameras_listed = True
        self.refresh_button.setEnabled(False)
        w = Worker(list_cameras, 5, parent=self, name="list-cameras")
        w.returned.connect(self.camera_box.show_cameras)
        w.errored.connect(lambda msg, _details: self.message.emit(f"Looking for cameras failed: {msg}"))
        w.finished.connect(lambda: self.refresh_button.setEnabled(True))
        self._list_workers.start(w)

    def _choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Use a video file as the camera", "", VIDEO_FILTER)
        if path:
            self.start_camera(path)

    # -- live verification ----------------------------------------------------------------------
    def start_live(self) -> bool:
        """Verify each new camera frame against image A (starting the camera if needed)."""
        if self.live_button.isChecked() and self.live is not None:
            return True
        self.live_button.setChecked(True)  # re-enters through the toggled signal
        return self.live is not None

    def stop_live(self) -> None:
        self.live_button.setChecked(False)

    def _on_live_toggled(self, on: bool) -> None:
        if not on:
            self.live = None
            self._live_req += 1
            self.live_worker.cancel_pending()
            self.live_label.setVisible(False)
            self.camera_view.set_judge_faces(True)
            return
        if self.verifier is None or self.slot_a.image is None:
            self.message.emit("Verify live: load a model and put the reference image in A first.")
            self.live_button.setChecked(False)
            return
        self._restart_live()
        self.camera_view.set_judge_faces(False)  # the live worker judges each face itself: not twice
        self.live_label.setText("Waiting for the camera…")
        self.live_label.setStyleSheet("")
        self.live_label.setVisible(True)
        if not self.camera_view.running:
            self.start_camera()

    def _restart_live(self) -> None:
        """A new reference (image A or the model changed): a new LiveVerifier, older verdicts dropped."""
        if not self.live_button.isChecked():
            return
        if self.verifier is None or self.slot_a.image is None:
            self.stop_live()
            return
        from siamgui.core.face.live import LiveVerifier

        self._live_req += 1
        self.live_worker.cancel_pending()
        self.live = LiveVerifier(self.verifier, self.slot_a.image)

    def _on_live_verdict(self, req: int, verdict) -> None:
        if req != self._live_req or self.live is None:
            return
        text = verdict.text()
        if verdict.judgement.box is not None:
            text += "\n" + verdict.judgement.text()
        self.live_label.setText(text)
        colour = None if verdict.smoothed is None else (BLUE if verdict.smoothed else VERMILLION)
        self.live_label.setStyleSheet(f"background: {colour}; color: white; border-radius: 4px; padding: 4px;"
                                      if colour else "padding: 4px;")
        self.live_verdict.emit(verdict)

    def _on_live_failed(self, req: int, message: str) -> None:
        if req == self._live_req:
            self.live_label.setText(f"Live verification failed: {message}")
            self.message.emit(f"Live verification failed: {message}")

    # -- closing ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the comparison and live workers and the camera, and wait for their threads."""
        self.live = None
        self.live_worker.stop()
        self.worker.stop()
        self.why.close()
        self.camera_view.shutdown()
        self._list_workers.wait(5000)

"""The Gallery tab: enrol identities, identify a probe or the live camera, one-shot evaluation.

The store and the ranking live in :mod:`siamgui.core.gallery`; this tab is the
controller of four panels (identities, probe image, live camera, evaluation)
and only shows. Its workers (:mod:`siamgui.gui.workers`) do all the work:

- a :class:`~siamgui.gui.workers.JobRunner` runs enrolment, folder import,
  re-embedding after a model change, rename/remove and N-way K-shot evaluation,
  one at a time, with progress and a Cancel button (cooperative: checked
  between images/batches);
- two :class:`~siamgui.gui.workers.LatestOnlyRunner` answer probe and
  live-camera requests; a new request replaces one still waiting, and stale
  results are dropped, so live labelling keeps up with the camera.

Dialogs go through small ``_ask_*`` methods (tests replace them); errors are
shown in the tab's message line, never in a modal box, and the tab keeps working.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (QFileDialog, QInputDialog, QLabel, QLineEdit, QMessageBox, QSplitter, QTabWidget,
                               QVBoxLayout, QWidget)

from siamgui.gui import gallery_jobs as jobs
from siamgui.gui.gallery_evaluation import EvaluationPanel
from siamgui.gui.gallery_identify import LivePanel, ProbePanel, RankBar
from siamgui.gui.gallery_identities import GalleryBar, IdentitiesPanel
from siamgui.gui.image_view import VERMILLION
from siamgui.gui.threshold_meaning import ThresholdMeaningLabel
from siamgui.gui.workers import JobRunner, error_text

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.pgm *.ppm *.tif *.tiff *.webp *.gif);;All files (*)"
GALLERY_FILTER = "Galleries (*.sqlite *.db);;All files (*)"


class GalleryTab(QWidget):
    """Enrol, identify (file or live camera) and evaluate one-shot identification.

    Signals: ``message(str)`` (status line), ``job_finished(str kind, bool ok)``,
    ``identification_shown(object)`` (the Identification now shown for a probe
    file: its largest judged face's, None when no face could be judged),
    ``faces_shown(object)`` (the probe's FacesIdentification: every face),
    ``live_identified(object)`` and ``live_faces(object)`` (the same for each live frame).
    """

    message = Signal(str)
    job_finished = Signal(str, bool)
    identification_shown = Signal(object)
    faces_shown = Signal(object)
    live_identified = Signal(object)
    live_faces = Signal(object)
    gallery_changed = Signal()

    def __init__(self, state, parent=None, gallery_path=None):
        super().__init__(parent)
        self.state = state
        self.verifier = None
        self.gallery = None
        self.evaluation = None  # the last OneShotResult
        self._shut_down = False

        self.jobs = JobRunner(self, name="gallery-jobs")
        self._build()
        self.identifier, self.live_identifier = self.probe_panel.identifier, self.live_panel.identifier
        self.setAcceptDrops(True)
        state.model_changed.connect(self.set_verifier)
        state.threshold_changed.connect(self._on_state_threshold)
        self.open_gallery(gallery_path)
        if state.verifier is not None:
            self.set_verifier(state.verifier)
        self._update_buttons()

    # -- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        self.identities = IdentitiesPanel()
        self.rank_bar = RankBar()
        self.probe_panel = ProbePanel(self._probe_context, self._thumb_icon)
        self.live_panel = LivePanel(self._live_context)
        self.eval_panel = EvaluationPanel()
        self.pages = QTabWidget()
        self.pages.addTab(self.probe_panel, "Identify image")
        self.pages.addTab(self.live_panel, "Live camera")
        self.pages.addTab(self.eval_panel, "One-shot evaluation")
        self.bar = GalleryBar()
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self._lay_out()
        ids, probe, live = self.identities, self.probe_panel, self.live_panel
        # the panels' widgets that tests and callers reach through the tab
        self.add_button, self.import_button, self.rename_button = ids.add_button, ids.import_button, ids.rename_button
        self.remove_button, self.remove_example_button = ids.remove_button, ids.remove_example_button
        self.examples_list, self.rank_combo, self.threshold_spin = (ids.examples_list, self.rank_bar.rank_combo,
                                                                    self.rank_bar.threshold_spin)
        self.probe_button, self.verdict_label, self.detail_label = (probe.probe_button, probe.verdict_label,
                                                                    probe.detail_label)
        self.camera_view, self.live_label, self.capture_button = live.camera_view, live.live_label, live.capture_button
        self.eval_result = self.eval_panel.eval_result
        self._connect()

    def _lay_out(self) -> None:
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.rank_bar)
        self.threshold_meaning = ThresholdMeaningLabel(self.state)
        rl.addWidget(self.threshold_meaning)
        rl.addWidget(self.pages, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.identities)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.addWidget(self.bar)
        lay.addWidget(split, 1)
        lay.addWidget(self.status_label)

    def _connect(self) -> None:
        ids, ev = self.identities, self.eval_panel
        self.bar.open_button.clicked.connect(lambda: self.open_gallery(self._ask_gallery_file()))
        self.bar.cancel_button.clicked.connect(self.jobs.cancel_current)
        self.jobs.started_job.connect(self._on_job_started)
        self.jobs.progress.connect(self.bar.show_progress)
        self.jobs.done.connect(self._on_job_done)
        self.jobs.failed.connect(self._on_job_failed)
        ids.ident_list.currentItemChanged.connect(lambda *_: self._show_examples())
        ids.add_button.clicked.connect(self._on_add_clicked)
        ids.more_button.clicked.connect(self._on_more_clicked)
        ids.import_button.clicked.connect(self._on_import_clicked)
        ids.rename_button.clicked.connect(self._on_rename_clicked)
        ids.remove_button.clicked.connect(self._on_remove_clicked)
        ids.remove_example_button.clicked.connect(self._on_remove_example_clicked)
        self.rank_bar.rank_combo.currentIndexChanged.connect(self._on_rank_changed)
        self.rank_bar.k_spin.valueChanged.connect(lambda _v: self.probe_panel.reidentify())
        self.rank_bar.threshold_spin.valueChanged.connect(self._on_threshold_spin)
        self.probe_panel.probe_button.clicked.connect(self._on_probe_clicked)
        self.probe_panel.identified.connect(self.identification_shown)
        self.probe_panel.faces_identified.connect(self.faces_shown)
        self.probe_panel.failed.connect(self.show_error)
        self.live_panel.capture_button.clicked.connect(self._on_capture_clicked)
        self.live_panel.identified.connect(self.live_identified)
        self.live_panel.faces_identified.connect(self.live_faces)
        ev.eval_browse.clicked.connect(self._on_eval_browse)
        ev.eval_button.clicked.connect(lambda: self.run_evaluation(*ev.settings()))

    # -- dialogs (replaced in tests) ------------------------------------------------------
    def _ask_files(self, title: str) -> list[str]:
        files, _ = QFileDialog.getOpenFileNames(self, title, "", IMAGE_FILTER)
        return files

    def _ask_folder(self, title: str) -> str:
        return QFileDialog.getExistingDirectory(self, title)

    def _ask_gallery_file(self) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Open or create a gallery", str(self._gallery_path()),
                                              GALLERY_FILTER, options=QFileDialog.Option.DontConfirmOverwrite)
        return path

    def _ask_text(self, title: str, label: str, text: str = "") -> str | None:
        value, ok = QInputDialog.getText(self, title, label, QLineEdit.EchoMode.Normal, text)
        return value if ok else None

    def _confirm(self, text: str) -> bool:
        return QMessageBox.question(self, "Gallery", text) == QMessageBox.StandardButton.Yes

    # -- messages -----------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        self.status_label.setStyleSheet(f"color: {VERMILLION}")
        self.status_label.setText(text)
        self.message.emit(text)

    def show_info(self, text: str) -> None:
        self.status_label.setStyleSheet("")
        self.status_label.setText(text)
        self.message.emit(text)

    # -- gallery file -------------------------------------------------------------------------
    def _gallery_path(self) -> Path:
        if self.gallery is not None:
            return self.gallery.path
        from siamgui.core.gallery import default_gallery_path

        return default_gallery_path()

    def open_gallery(self, path=None) -> bool:
        """Open (or create) a gallery file; None opens the default one. False (and a message) on failure."""
        if path == "":
            return False
        from siamgui.core.gallery import Gallery
        from siamgui.core.errors import SiamguiError

        if self.jobs.pending_kinds():
            self.show_error("Wait for the current task to finish before opening another gallery.")
            return False
        try:
            new = Gallery(path)
        except SiamguiError as exc:
            self.show_error(str(exc))
            return False
        self.probe_panel.forget_pending()  # results for the old gallery are stale
        self.live_panel.forget_pending()
        if self.gallery is not None:
            self.gallery.close()
        self.gallery = new
        self.bar.path_label.setText(str(new.path))
        self.refresh()
        self._start_sync()
        return True

    # -- model ------------------------------------------------------------------------------
    def set_verifier(self, verifier) -> None:
        self.verifier = verifier
        self._sync_threshold_spin()
        self.jobs.drop_pending("sync")
        if self.jobs.current == "sync":
            self.jobs.cancel_current()  # it embeds for the previous model
        self._start_sync()
        self.refresh()

    def _start_sync(self) -> None:
        """Embed the stored examples for the current model (in the background)."""
        if self.verifier is None or self.gallery is None:
            return
        self.jobs.submit("sync", "Embedding the gallery for this model", jobs.sync, self.gallery, self.verifier)

    def _sync_threshold_spin(self) -> None:
        if self.verifier is None:
            return
        self.threshold_spin.blockSignals(True)
        self.threshold_spin.setValue(float(self.verifier.threshold))
        self.threshold_spin.blockSignals(False)

    def _on_state_threshold(self, _value: float) -> None:
        self._sync_threshold_spin()
        self.probe_panel.apply_threshold(self.threshold)

    def _on_threshold_spin(self, value: float) -> None:
        if self.verifier is None:
            return
        if hasattr(self.state, "set_threshold"):
            self.state.set_threshold(float(value))  # emits threshold_changed -> _on_state_threshold
        else:
            self.verifier.threshold = float(value)
        self.probe_panel.apply_threshold(self.threshold)

    @property
    def threshold(self) -> float:
        return float(self.verifier.threshold) if self.verifier is not None else float("inf")

    # -- identities list -------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the identities list from the gallery."""
        idents = []
        if self.gallery is not None:
            from siamgui.core.gallery import cached_fingerprint

            # only when already known: hashing a large model's weights is work for a worker
            fp = cached_fingerprint(self.verifier) if self.verifier is not None else None
            try:
                idents = self.gallery.identities(fp)
            except Exception as exc:  # noqa: BLE001 - a damaged file: say so, keep working
                self.show_error(error_text(exc))
        self.identities.show_identities(idents)
        self._show_examples()
        self.gallery_changed.emit()

    def identity_names(self) -> list[str]:
        return self.identities.identity_names()

    def selected_name(self) -> str | None:
        return self.identities.selected_name()

    def select(self, name: str) -> None:
        self.identities.select(name)

    def _show_examples(self) -> None:
        name = self.selected_name()
        examples = []
        if name is not None and self.gallery is not None:
            try:
                examples = self.gallery.examples(name)
            except Exception as exc:  # noqa: BLE001
                self.show_error(error_text(exc))
        self.identities.show_examples(examples, self._thumb_icon)
        self._update_buttons()

    def _thumb_icon(self, example_id: int) -> QIcon:
        pix = QPixmap()
        try:
            pix.loadFromData(self.gallery.thumbnail(example_id))
        except Exception:  # noqa: BLE001 - a missing thumbnail is not worth an error
            pass
        return QIcon(pix)

    def _update_buttons(self) -> None:
        ready = self.gallery is not None and self.verifier is not None
        self.identities.update_buttons(self.gallery is not None, ready)
        self.probe_panel.probe_button.setEnabled(ready)
        self.live_panel.capture_button.setEnabled(ready)
        self.eval_panel.eval_button.setEnabled(self.verifier is not None)

    # -- enrolment ------------------------------------------------------------------------------
    def enroll(self, name: str, images: list, *, bgr: bool = False) -> None:
        """Add ``images`` (paths or arrays) to identity ``name`` (created if new), in the background."""
        if not self._ready():
            return
        self.jobs.submit("enroll", f"Enrolling {name}", jobs.enroll, self.gallery, self.verifier, name,
                         list(images), bgr, self.identities.allow_poor_check.isChecked())

    def import_folder(self, folder: str) -> None:
        if not self._ready():
            return
        self.jobs.submit("import", f"Importing {Path(folder).name}", jobs.import_folder, self.gallery, self.verifier,
                         str(folder), self.identities.allow_poor_check.isChecked())

    def rename_identity(self, old: str, new: str) -> None:
        if self.gallery is not None:
            self.jobs.submit("rename", f"Renaming {old}", jobs.call, self.gallery.rename, old, new)

    def remove_identity(self, name: str) -> None:
        if self.gallery is not None:
            self.jobs.submit("remove", f"Removing {name}", jobs.call, self.gallery.remove, name)

    def remove_example(self, example_id: int) -> None:
        if self.gallery is not None:
            self.jobs.submit("remove", "Removing an example", jobs.call, self.gallery.remove_example, example_id)

    def _ready(self) -> bool:
        if self.gallery is None:
            self.show_error("No gallery is open.")
            return False
        if self.verifier is None:
            self.show_error("No model is loaded yet.")
            return False
        return True

    def _on_add_clicked(self) -> None:
        files = self._ask_files("Images of the new identity")
        if not files:
            return
        name = self._ask_text("New identity", "Name:", Path(files[0]).parent.name)
        if name:
            self.enroll(name, files)

    def _on_more_clicked(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        files = self._ask_files(f"More images of {name}")
        if files:
            self.enroll(name, files)

    def _on_import_clicked(self) -> None:
        folder = self._ask_folder("Folder with one sub-folder per identity")
        if folder:
            self.import_folder(folder)

    def _on_rename_clicked(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        new = self._ask_text("Rename identity", "New name:", name)
        if new and new != name:
            self.rename_identity(name, new)

    def _on_remove_clicked(self) -> None:
        name = self.selected_name()
        if name is not None and self._confirm(f"Remove {name} and all its examples from the gallery?"):
            self.remove_identity(name)

    def _on_remove_example_clicked(self) -> None:
        example_id = self.identities.selected_example()
        if example_id is not None and self._confirm("Remove this example image from the gallery?"):
            self.remove_example(example_id)

    def _on_capture_clicked(self) -> None:
        frame, _quality = self.camera_view.best_recent_frame()  # the best of the last second when faces are judged
        if frame is None:
            self.show_error("Start the camera first; the current frame is what gets enrolled.")
            return
        name = self._ask_text("Enrol capture", "Name (new or existing):", self.selected_name() or "")
        if name:
            self.enroll(name, [frame], bgr=True)

    # -- job progress --------------------------------------------------------------------------
    def _on_job_started(self, kind: str, label: str) -> None:
        self.bar.show_job(kind, label)
        self.status_label.setStyleSheet("")
        self.status_label.setText(label + "…")

    def _job_idle(self) -> None:
        if not self.jobs.pending_kinds():
            self.bar.show_idle()

    def _on_job_done(self, kind: str, result) -> None:
        self._job_idle()
        text = jobs.job_message(kind, result)
        if kind == "evaluate":
            self.evaluation = result
            self.eval_result.setText(jobs.evaluation_text(result))
        if text:
            self.show_info(text)
        if kind != "evaluate":
            self.refresh()
            if kind == "enroll":
                self.select(result.name)
            self._reidentify()
        self.job_finished.emit(kind, True)

    def _on_job_failed(self, kind: str, message: str) -> None:
        self._job_idle()
        if kind == "evaluate":
            self.eval_result.setText(message)
        self.show_error(message)
        if kind != "evaluate":
            self.refresh()
        self.job_finished.emit(kind, False)

    # -- identify -------------------------------------------------------------------------------------
    @property
    def rank(self) -> str:
        return self.rank_bar.rank_combo.currentData()

    @property
    def result(self):
        """The Identification shown for the probe file (None when none is)."""
        return self.probe_panel.result

    def _probe_context(self) -> tuple | None:
        """What a probe is identified against; None (and a message) without a gallery or a model."""
        if not self._ready():
            return None
        return self.gallery, self.verifier, self.rank, self.rank_bar.k_spin.value()

    def _live_context(self) -> tuple | None:
        if self.verifier is None or self.gallery is None:
            return None  # frames keep coming: no message for each
        return self.gallery, self.verifier, self.rank, self.rank_bar.k_spin.value()

    def _on_rank_changed(self, _i: int) -> None:
        self.rank_bar.k_spin.setEnabled(self.rank == "mean")
        self._reidentify()

    def _reidentify(self) -> None:
        self.probe_panel.reidentify()

    def _on_probe_clicked(self) -> None:
        files = self._ask_files("Image to identify")
        if files:
            self.identify_file(files[0])

    def identify_file(self, path) -> None:
        """Show ``path`` and rank the gallery for it (in the identify worker)."""
        self.probe_panel.identify_file(path)

    def candidate_rows(self) -> list[tuple[str, str]]:
        return self.probe_panel.candidate_rows()

    def dragEnterEvent(self, event):  # noqa: N802 - an image file dropped anywhere on the tab is a probe
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.pages.setCurrentWidget(self.probe_panel)
            self.identify_file(paths[0])

    def start_live(self, source=None) -> None:
        """Show the live page and start the camera on ``source`` (or the chooser's text)."""
        self.pages.setCurrentWidget(self.live_panel)
        self.live_panel.start(source)

    def stop_live(self) -> None:
        self.live_panel.stop()

    # -- one-shot evaluation -----------------------------------------------------------------------
    def _on_eval_browse(self) -> None:
        folder = self._ask_folder("Folder with one sub-folder per class")
        if folder:
            self.eval_panel.eval_folder.setText(folder)

    def run_evaluation(self, folder: str, way: int, shots: int, episodes: int) -> None:
        if self.verifier is None:
            self.show_error("No model is loaded yet.")
            return
        if not folder:
            self.show_error("Choose a folder with one sub-folder per class.")
            return
        self.eval_panel.eval_folder.setText(str(folder))
        self.eval_result.setText("Running…")
        self.jobs.submit("evaluate", f"{way}-way {shots}-shot evaluation", jobs.evaluate, self.verifier, str(folder),
                         int(way), int(shots), int(episodes), self.rank)

    # -- closing ---------------------------------------------------------------------------------------
    def busy(self) -> bool:
        return bool(self.jobs.pending_kinds()) or self.identifier.busy or self.live_identifier.busy

    def shutdown(self) -> None:
        """Stop the camera and the workers, wait for them, close the gallery (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.live_panel.camera_view.shutdown()
        self.identifier.stop()
        self.live_identifier.stop()
        self.jobs.stop()
        if self.gallery is not None:
            self.gallery.close()

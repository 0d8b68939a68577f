"""The Gallery tab: enrol identities, identify a probe or the live camera, one-shot evaluation.

The store and the ranking live in :mod:`siamgui.core.gallery`; this module only
shows them. Two worker threads do all the work:

- a *job* thread runs enrolment, folder import, re-embedding after a model
  change, rename/remove and N-way K-shot evaluation, one at a time, with
  progress and a Cancel button (cooperative: checked between images/batches);
- an *identify* thread (:class:`~siamgui.gui.workers.LatestOnlyWorker`) answers
  probe and live-camera requests; a new request replaces one still waiting, and
  stale results are dropped, so live labelling keeps up with the camera.

Dialogs go through small ``_ask_*`` methods (tests replace them); errors are
shown in the tab's message line, never in a modal box, and the tab keeps working.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QSize, Qt, QThread, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QInputDialog, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QMessageBox, QProgressBar, QPushButton, QSpinBox, QSplitter,
                               QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from siamgui.gui.camera_view import CameraView
from siamgui.gui.image_view import GREEN, VERMILLION, ImageView, Overlay, array_to_qimage
from siamgui.gui.workers import LatestOnlyWorker, error_text

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.pgm *.ppm *.tif *.tiff *.webp *.gif);;All files (*)"
GALLERY_FILTER = "Galleries (*.sqlite *.db);;All files (*)"
VIDEO_FILTER = "Videos (*.avi *.mp4 *.mkv *.mov *.webm);;All files (*)"
TOP = 5
THUMB = 64


# -- the job thread ---------------------------------------------------------------------------
class JobContext:
    """Handed to a job function: report progress, check for cancel."""

    def __init__(self, runner: "JobRunner", kind: str):
        self._runner, self.kind = runner, kind
        self._last = None

    def progress(self, done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if pct != self._last:  # only when the shown value changes
            self._last = pct
            self._runner.progress.emit(self.kind, int(done), int(total))

    def cancelled(self) -> bool:
        return self._runner._cancel.is_set()


class JobRunner(QThread):
    """Runs ``fn(ctx, *args)`` jobs one after another; signals only."""

    started_job = Signal(str, str)  # kind, label
    progress = Signal(str, int, int)  # kind, done, total
    done = Signal(str, object)  # kind, result
    failed = Signal(str, str)  # kind, message

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("gallery-jobs")
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._cancel = threading.Event()
        self._stopping = False
        self.current: str | None = None

    def submit(self, kind: str, label: str, fn: Callable[..., Any], *args) -> None:
        with self._cond:
            if self._stopping:
                return
            self._queue.append((kind, label, fn, args))
            self._cond.notify()
        if not self.isRunning():
            self.start()

    def pending_kinds(self) -> list[str]:
        with self._cond:
            return [j[0] for j in self._queue] + ([self.current] if self.current else [])

    def drop_pending(self, kind: str) -> None:
        with self._cond:
            self._queue = deque(j for j in self._queue if j[0] != kind)

    def cancel_current(self) -> None:
        self._cancel.set()

    def stop(self, wait_ms: int = 15000) -> bool:
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cancel.set()
            self._cond.notify()
        return self.wait(wait_ms)

    def run(self):
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                kind, label, fn, args = self._queue.popleft()
                self._cancel.clear()
                self.current = kind
            self.started_job.emit(kind, label)
            try:
                result = fn(JobContext(self, kind), *args)
            except Exception as exc:  # noqa: BLE001 - reported to the tab
                self.failed.emit(kind, error_text(exc))
            else:
                self.done.emit(kind, result)
            finally:
                with self._cond:
                    self.current = None


# -- job functions (run in the job thread; no widgets here) -------------------------------------
def _job_enroll(ctx, gallery, verifier, name, images, bgr):
    return gallery.enroll(verifier, name, images, bgr=bgr, skip_bad=len(images) > 1,
                          progress=ctx.progress, cancel=ctx.cancelled)


def _job_import(ctx, gallery, verifier, folder):
    return gallery.import_folder(verifier, folder, progress=ctx.progress, cancel=ctx.cancelled)


def _job_sync(ctx, gallery, verifier):
    return gallery.sync(verifier, progress=ctx.progress, cancel=ctx.cancelled)


def _job_call(ctx, fn, *args):
    return fn(*args)


def _job_evaluate(ctx, verifier, folder, way, shots, episodes, rank):
    from siamgui.core.gallery.oneshot import run_one_shot

    return run_one_shot(verifier, folder, way, shots, episodes, seed=0, rank=rank, progress=ctx.progress,
                        cancel=ctx.cancelled)


def _identify_job(gallery, verifier, image, rank, k, bgr, live):
    """Identify one probe (identify thread). Returns (Identification, probe size or None)."""
    result = gallery.identify(verifier, image, top=TOP, rank=rank, k=k, bgr=bgr)
    return result, live


# -- the tab -------------------------------------------------------------------------------------
class GalleryTab(QWidget):
    """Enrol, identify (file or live camera) and evaluate one-shot identification.

    Signals: ``message(str)`` (status line), ``job_finished(str kind, bool ok)``,
    ``identification_shown(object)`` (the Identification now shown for a probe
    file), ``live_identified(object)`` (each live-frame result).
    """

    message = Signal(str)
    job_finished = Signal(str, bool)
    identification_shown = Signal(object)
    live_identified = Signal(object)
    gallery_changed = Signal()

    def __init__(self, state, parent=None, gallery_path=None):
        super().__init__(parent)
        self.state = state
        self.verifier = None
        self.gallery = None
        self.result = None  # Identification shown for the probe file
        self._probe = None  # path of the probe file
        self.evaluation = None  # the last OneShotResult
        self._req = 0
        self._live_req = 0
        self._live_shown = 0
        self._shut_down = False

        self.jobs = JobRunner(self)
        self.jobs.started_job.connect(self._on_job_started)
        self.jobs.progress.connect(self._on_job_progress)
        self.jobs.done.connect(self._on_job_done)
        self.jobs.failed.connect(self._on_job_failed)
        self.identifier = LatestOnlyWorker(_identify_job, self, name="gallery-identify")
        self.identifier.succeeded.connect(self._on_identified)
        self.identifier.failed.connect(self._on_identify_failed)
        # live frames have their own thread: a new frame replaces one still waiting
        self.live_identifier = LatestOnlyWorker(_identify_job, self, name="gallery-live")
        self.live_identifier.succeeded.connect(self._on_live_result)
        self.live_identifier.failed.connect(self._on_live_failed)

        self._build()
        self.setAcceptDrops(True)
        state.model_changed.connect(self.set_verifier)
        state.threshold_changed.connect(self._on_state_threshold)
        self.open_gallery(gallery_path)
        if state.verifier is not None:
            self.set_verifier(state.verifier)
        self._update_buttons()

    # -- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        # top: gallery file, progress
        self.path_label = QLabel("")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open gallery…")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Gallery:"))
        top.addWidget(self.path_label, 1)
        top.addWidget(self.progress)
        top.addWidget(self.cancel_button)
        top.addWidget(self.open_button)

        # left: identities and their examples
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
        left = QGroupBox("Identities")
        ll = QVBoxLayout(left)
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
        ll.addWidget(QLabel("Examples"))
        ll.addWidget(self.examples_list)
        ll.addWidget(self.remove_example_button, 0, Qt.AlignmentFlag.AlignLeft)

        # right: settings shared by probe and live, then three pages
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
        rank_row = QHBoxLayout()
        rank_row.addWidget(QLabel("Rank by"))
        rank_row.addWidget(self.rank_combo)
        rank_row.addWidget(QLabel("k"))
        rank_row.addWidget(self.k_spin)
        rank_row.addStretch(1)
        rank_row.addWidget(QLabel("Threshold"))
        rank_row.addWidget(self.threshold_spin)

        # page: probe image
        self.probe_button = QPushButton("Open probe image…")
        self.probe_view = ImageView(self, placeholder="Open an image to identify", min_side=140)
        self.verdict_label = QLabel("")
        f = self.verdict_label.font()
        f.setPointSizeF(f.pointSizeF() * 1.6)
        f.setBold(True)
        self.verdict_label.setFont(f)
        self.detail_label = QLabel("")
        self.detail_label.setWordWrap(True)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Identity", "Distance"])
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 6)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        probe_page = QWidget()
        pl = QHBoxLayout(probe_page)
        pcol = QVBoxLayout()
        pcol.addWidget(self.probe_button)
        pcol.addWidget(self.probe_view, 1)
        rcol = QVBoxLayout()
        rcol.addWidget(self.verdict_label)
        rcol.addWidget(self.detail_label)
        rcol.addWidget(self.table, 1)
        pl.addLayout(pcol, 1)
        pl.addLayout(rcol, 1)

        # page: live camera
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
        live_page = QWidget()
        lv = QVBoxLayout(live_page)
        src = QHBoxLayout()
        src.addWidget(QLabel("Source"))
        src.addWidget(self.source_combo, 1)
        src.addWidget(self.video_button)
        src.addWidget(self.live_button)
        src.addWidget(self.capture_button)
        lv.addLayout(src)
        lv.addWidget(self.camera_view, 1)
        lv.addWidget(self.live_label)

        # page: one-shot evaluation
        self.eval_folder = QLineEdit()
        self.eval_folder.setPlaceholderText("A folder with one sub-folder per class")
        self.eval_browse = QPushButton("Browse…")
        self.way_spin = QSpinBox()
        self.way_spin.setRange(2, 100)
        self.way_spin.setValue(5)
        self.shots_spin = QSpinBox()
        self.shots_spin.setRange(1, 50)
        self.shots_spin.setValue(1)
        self.episodes_spin = QSpinBox()
        self.episodes_spin.setRange(1, 100000)
        self.episodes_spin.setValue(1000)
        self.eval_button = QPushButton("Run")
        self.eval_result = QLabel("")
        self.eval_result.setWordWrap(True)
        self.eval_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        eval_page = QWidget()
        form = QFormLayout(eval_page)
        frow = QHBoxLayout()
        frow.addWidget(self.eval_folder, 1)
        frow.addWidget(self.eval_browse)
        form.addRow("Folder", frow)
        form.addRow("Classes per episode (N-way)", self.way_spin)
        form.addRow("Examples per class (K-shot)", self.shots_spin)
        form.addRow("Episodes", self.episodes_spin)
        form.addRow("", self.eval_button)
        form.addRow(self.eval_result)

        self.pages = QTabWidget()
        self.pages.addTab(probe_page, "Identify image")
        self.pages.addTab(live_page, "Live camera")
        self.pages.addTab(eval_page, "One-shot evaluation")
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(rank_row)
        rl.addWidget(self.pages, 1)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        lay.addWidget(self.status_label)

        # wiring
        self.open_button.clicked.connect(lambda: self.open_gallery(self._ask_gallery_file()))
        self.cancel_button.clicked.connect(self.jobs.cancel_current)
        self.ident_list.currentItemChanged.connect(lambda *_: self._show_examples())
        self.add_button.clicked.connect(self._on_add_clicked)
        self.more_button.clicked.connect(self._on_more_clicked)
        self.import_button.clicked.connect(self._on_import_clicked)
        self.rename_button.clicked.connect(self._on_rename_clicked)
        self.remove_button.clicked.connect(self._on_remove_clicked)
        self.remove_example_button.clicked.connect(self._on_remove_example_clicked)
        self.rank_combo.currentIndexChanged.connect(self._on_rank_changed)
        self.k_spin.valueChanged.connect(lambda _v: self._reidentify())
        self.threshold_spin.valueChanged.connect(self._on_threshold_spin)
        self.probe_button.clicked.connect(self._on_probe_clicked)
        self.video_button.clicked.connect(self._on_video_clicked)
        self.live_button.clicked.connect(self._on_live_clicked)
        self.capture_button.clicked.connect(self._on_capture_clicked)
        self.camera_view.frame_ready.connect(self._on_camera_frame)
        self.camera_view.started.connect(lambda d: self.live_button.setText("Stop"))
        self.camera_view.stopped.connect(self._on_camera_stopped)
        self.eval_browse.clicked.connect(self._on_eval_browse)
        self.eval_button.clicked.connect(self._on_eval_clicked)

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

    def _ask_video(self) -> str:
        path, _ = QFileDialog.getOpenFileName(self, "Use a video file as the camera", "", VIDEO_FILTER)
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
        if self.gallery is not None:
            self.identifier.cancel_pending()
            self.live_identifier.cancel_pending()
            self._req += 1  # results for the old gallery are stale
            self.gallery.close()
        self.gallery = new
        self.path_label.setText(str(new.path))
        self.result = None
        self._clear_result()
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
        self.jobs.submit("sync", "Embedding the gallery for this model", _job_sync, self.gallery, self.verifier)

    def _sync_threshold_spin(self) -> None:
        if self.verifier is None:
            return
        self.threshold_spin.blockSignals(True)
        self.threshold_spin.setValue(float(self.verifier.threshold))
        self.threshold_spin.blockSignals(False)

    def _on_state_threshold(self, _value: float) -> None:
        self._sync_threshold_spin()
        self._apply_threshold()

    def _on_threshold_spin(self, value: float) -> None:
        if self.verifier is None:
            return
        if hasattr(self.state, "set_threshold"):
            self.state.set_threshold(float(value))  # emits threshold_changed -> _on_state_threshold
        else:
            self.verifier.threshold = float(value)
        self._apply_threshold()

    @property
    def threshold(self) -> float:
        return float(self.verifier.threshold) if self.verifier is not None else float("inf")

    # -- identities list -------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the identities list from the gallery."""
        current = self.selected_name()
        self.ident_list.blockSignals(True)
        self.ident_list.clear()
        if self.gallery is not None:
            from siamgui.core.gallery import cached_fingerprint

            # only when already known: hashing a large model's weights is work for a worker
            fp = cached_fingerprint(self.verifier) if self.verifier is not None else None
            try:
                idents = self.gallery.identities(fp)
            except Exception as exc:  # noqa: BLE001 - a damaged file: say so, keep working
                self.show_error(error_text(exc))
                idents = []
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
        self._show_examples()
        self._update_buttons()
        self.gallery_changed.emit()

    def identity_names(self) -> list[str]:
        return [self.ident_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.ident_list.count())]

    def selected_name(self) -> str | None:
        item = self.ident_list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def select(self, name: str) -> None:
        for i in range(self.ident_list.count()):
            if self.ident_list.item(i).data(Qt.ItemDataRole.UserRole).lower() == name.lower():
                self.ident_list.setCurrentRow(i)
                return

    def _show_examples(self) -> None:
        self.examples_list.clear()
        name = self.selected_name()
        if name is None or self.gallery is None:
            self._update_buttons()
            return
        try:
            for ex in self.gallery.examples(name):
                item = QListWidgetItem(self._thumb_icon(ex.id), "")
                item.setData(Qt.ItemDataRole.UserRole, ex.id)
                item.setToolTip(f"{ex.source or 'capture'} · {ex.width}×{ex.height} · {ex.stored}")
                self.examples_list.addItem(item)
        except Exception as exc:  # noqa: BLE001
            self.show_error(error_text(exc))
        self._update_buttons()

    def _thumb_icon(self, example_id: int) -> QIcon:
        pix = QPixmap()
        try:
            pix.loadFromData(self.gallery.thumbnail(example_id))
        except Exception:  # noqa: BLE001 - a missing thumbnail is not worth an error
            pass
        return QIcon(pix)

    def _update_buttons(self) -> None:
        has_g = self.gallery is not None
        ready = has_g and self.verifier is not None
        sel = self.selected_name() is not None
        for b in (self.add_button, self.import_button, self.probe_button):
            b.setEnabled(ready)
        self.more_button.setEnabled(ready and sel)
        self.rename_button.setEnabled(has_g and sel)
        self.remove_button.setEnabled(has_g and sel)
        self.remove_example_button.setEnabled(has_g and self.examples_list.count() > 0)
        self.capture_button.setEnabled(ready)
        self.eval_button.setEnabled(self.verifier is not None)

    # -- enrolment ------------------------------------------------------------------------------
    def enroll(self, name: str, images: list, *, bgr: bool = False) -> None:
        """Add ``images`` (paths or arrays) to identity ``name`` (created if new), in the background."""
        if not self._ready():
            return
        self.jobs.submit("enroll", f"Enrolling {name}", _job_enroll, self.gallery, self.verifier, name,
                         list(images), bgr)

    def import_folder(self, folder: str) -> None:
        if not self._ready():
            return
        self.jobs.submit("import", f"Importing {Path(folder).name}", _job_import, self.gallery, self.verifier,
                         str(folder))

    def rename_identity(self, old: str, new: str) -> None:
        if self.gallery is not None:
            self.jobs.submit("rename", f"Renaming {old}", _job_call, self.gallery.rename, old, new)

    def remove_identity(self, name: str) -> None:
        if self.gallery is not None:
            self.jobs.submit("remove", f"Removing {name}", _job_call, self.gallery.remove, name)

    def remove_example(self, example_id: int) -> None:
        if self.gallery is not None:
            self.jobs.submit("remove", "Removing an example", _job_call, self.gallery.remove_example, example_id)

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
        item = self.examples_list.currentItem()
        if item is None:
            return
        if self._confirm("Remove this example image from the gallery?"):
            self.remove_example(int(item.data(Qt.ItemDataRole.UserRole)))

    def _on_capture_clicked(self) -> None:
        frame = self.camera_view.current_frame()
        if frame is None:
            self.show_error("Start the camera first; the current frame is what gets enrolled.")
            return
        name = self._ask_text("Enrol capture", "Name (new or existing):", self.selected_name() or "")
        if name:
            self.enroll(name, [frame], bgr=True)

    # -- job progress --------------------------------------------------------------------------
    def _on_job_started(self, kind: str, label: str) -> None:
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.progress.setFormat(label)
        self.cancel_button.setVisible(kind in ("sync", "import", "evaluate", "enroll"))
        self.status_label.setStyleSheet("")
        self.status_label.setText(label + "…")

    def _on_job_progress(self, kind: str, done: int, total: int) -> None:
        if total <= 0:
            return
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat("%v / %m")

    def _job_idle(self) -> None:
        if not self.jobs.pending_kinds():
            self.progress.setVisible(False)
            self.cancel_button.setVisible(False)

    def _on_job_done(self, kind: str, result) -> None:
        self._job_idle()
        if kind == "sync":
            if result.embedded or result.failed:
                msg = f"Embedded {result.embedded} example(s) for this model"
                if result.failed:
                    msg += f"; {len(result.failed)} stored image(s) could not be read"
                self.show_info(msg + ("; cancelled" if result.cancelled else "") + ".")
            elif result.cancelled:
                self.show_info("Embedding cancelled; identification uses the examples embedded so far.")
            self.refresh()
            self._reidentify()
        elif kind == "enroll":
            msg = f"Added {result.added} example(s) to {result.name}."
            skipped = [f"{label}: {why}" for label, why in result.skipped]
            if skipped:
                msg += " Skipped " + "; ".join(skipped[:3]) + (" …" if len(skipped) > 3 else "")
            self.show_info(msg)
            self.refresh()
            self.select(result.name)
            self._reidentify()
        elif kind == "import":
            msg = (f"Imported {result.identities} identities, {result.added} example(s)"
                   f"{', ' + str(len(result.skipped)) + ' skipped' if result.skipped else ''}"
                   f"{' (cancelled)' if result.cancelled else ''}.")
            self.show_info(msg)
            self.refresh()
            self._reidentify()
        elif kind in ("rename", "remove"):
            self.show_info("Gallery updated.")
            self.refresh()
            self._reidentify()
        elif kind == "evaluate":
            self.evaluation = result
            self.eval_result.setText(
                f"{result.way}-way {result.shots}-shot over {result.episodes} episodes "
                f"({result.classes} classes): accuracy {result.accuracy:.1%} ± {result.ci95:.1%} "
                f"(95 % CI); chance {result.chance:.1%}.")
            self.show_info("One-shot evaluation finished.")
        self.job_finished.emit(kind, True)

    def _on_job_failed(self, kind: str, message: str) -> None:
        self._job_idle()
        if kind == "evaluate":
            self.eval_result.setText(message)
        self.show_error(message)
        if kind != "evaluate":
            self.refresh()
        self.job_finished.emit(kind, False)

    # -- identify a probe file ---------------------------------------------------------------------
    @property
    def rank(self) -> str:
        return self.rank_combo.currentData()

    def _on_rank_changed(self, _i: int) -> None:
        self.k_spin.setEnabled(self.rank == "mean")
        self._reidentify()

    def _on_probe_clicked(self) -> None:
        files = self._ask_files("Image to identify")
        if files:
            self.identify_file(files[0])

    def identify_file(self, path) -> None:
        """Show ``path`` and rank the gallery for it (in the identify thread)."""
        self._probe = str(path)
        from siamgui.core.errors import SiamguiError
        from siamgui.core.images import load_image

        try:
            img = load_image(self._probe)
        except SiamguiError as exc:
            self._probe = None
            self.probe_view.set_image(None)
            self._clear_result()
            self.show_error(str(exc))
            return
        import numpy as np

        img.thumbnail((800, 800))
        self.probe_view.set_image(array_to_qimage(np.asarray(img)))
        self.probe_view.set_overlays([])
        self._reidentify()

    def _reidentify(self) -> None:
        if self._probe is None or not self._ready():
            return
        self._req += 1
        self.verdict_label.setText("…")
        self.identifier.submit(self._req, self.gallery, self.verifier, self._probe, self.rank, self.k_spin.value(),
                               False, False)

    def _on_identified(self, req: int, payload) -> None:
        result, _live = payload
        if req != self._req:
            return  # a newer request is on its way
        self.result = result
        self._show_result()
        self.identification_shown.emit(result)

    def _on_identify_failed(self, req: int, message: str) -> None:
        if req != self._req:
            return
        self.result = None
        self._clear_result()
        self.verdict_label.setText("—")
        self.show_error(message)

    def _apply_threshold(self) -> None:
        """The threshold moved: the verdict changes, the ranking does not."""
        if self.result is None:
            return
        t = self.threshold
        self.result.threshold = t
        self.result.best = self.result.candidates[0].name if self.result.distance < t else None
        self._show_result()

    def _clear_result(self) -> None:
        self.verdict_label.setText("")
        self.detail_label.setText("")
        self.table.setRowCount(0)

    def _show_result(self) -> None:
        r = self.result
        if r is None:
            self._clear_result()
            return
        if r.best is None:
            self.verdict_label.setText("Unknown")
            self.verdict_label.setStyleSheet(f"color: {VERMILLION}")
            rel = "≥"
        else:
            self.verdict_label.setText(r.best)
            self.verdict_label.setStyleSheet(f"color: {GREEN}")
            rel = "<"
        notes = []
        if r.face is not None and self.verifier is not None and self.verifier.face_mode:
            if r.face.count != 1 or r.face.mode != "face":
                notes.append(r.face.message())
            if r.face.used_box is not None:
                self.probe_view.set_overlays([Overlay(tuple(r.face.used_box), GREEN if r.best else VERMILLION,
                                                      r.best or "Unknown")])
        if r.unembedded:
            notes.append(f"{r.unembedded} example(s) are still being embedded for this model.")
        rule = "nearest example" if r.rank == "min" else f"mean of {r.k} nearest"
        self.detail_label.setText(f"distance {r.distance:.4f} {rel} threshold {r.threshold:.4f} ({rule})"
                                  + ("\n" + " ".join(notes) if notes else ""))
        self.table.setRowCount(len(r.candidates))
        for row, c in enumerate(r.candidates):
            item = QTableWidgetItem(self._thumb_icon(c.example_id), c.name)
            self.table.setItem(row, 0, item)
            self.table.setItem(row, 1, QTableWidgetItem(f"{c.distance:.4f}"))

    def candidate_rows(self) -> list[tuple[str, str]]:
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text()) for r in range(self.table.rowCount())]

    def dragEnterEvent(self, event):  # noqa: N802 - an image file dropped anywhere on the tab is a probe
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.pages.setCurrentIndex(0)
            self.identify_file(paths[0])

    # -- live camera --------------------------------------------------------------------------------
    def start_live(self, source=None) -> None:
        if source is not None:
            self.source_combo.setEditText(str(source))
        text = self.source_combo.currentText().strip() or "0"
        self.pages.setCurrentIndex(1)
        self.camera_view.start(text)
        self.live_button.setText("Stop")

    def stop_live(self) -> None:
        self.camera_view.stop()
        self.camera_view.set_overlays([])
        self.live_button.setText("Start")

    def _on_live_clicked(self) -> None:
        if self.camera_view.running:
            self.stop_live()
        else:
            self.start_live()

    def _on_video_clicked(self) -> None:
        path = self._ask_video()
        if path:
            self.start_live(path)

    def _on_camera_stopped(self, message: str) -> None:
        if not self.camera_view.running:
            self.live_button.setText("Start")
        if message:
            self.live_label.setText(message)

    def _on_camera_frame(self, frame) -> None:
        """Each shown frame is sent to the live thread; it replaces a frame still waiting there."""
        if self.verifier is None or self.gallery is None:
            return
        self._live_req += 1
        self.live_identifier.submit(self._live_req, self.gallery, self.verifier, frame, self.rank,
                                    self.k_spin.value(), True, True)

    def _on_live_failed(self, req: int, message: str) -> None:
        if req > self._live_shown:
            self._live_shown = req
            self.camera_view.set_overlays([])
            self.live_label.setText(message)

    def _on_live_result(self, req: int, payload) -> None:
        result, _live = payload
        if req <= self._live_shown or not self.camera_view.running:
            return  # older than what is shown, or the camera stopped meanwhile
        self._live_shown = req
        label = result.best or "Unknown"
        colour = GREEN if result.best else VERMILLION
        face = result.face
        frame = self.camera_view.current_frame()
        if face is not None and face.used_box is not None:
            box = tuple(face.used_box)
        elif frame is not None:
            h, w = frame.shape[:2]
            box = (2, 2, w - 4, h - 4)
        else:
            box = None
        text = f"{label} ({result.distance:.3f})"
        self.camera_view.set_overlays([Overlay(box, colour, text)] if box else [])
        self.live_label.setText(f"Live: {text}")
        self.live_identified.emit(result)

    # -- one-shot evaluation -----------------------------------------------------------------------
    def _on_eval_browse(self) -> None:
        folder = self._ask_folder("Folder with one sub-folder per class")
        if folder:
            self.eval_folder.setText(folder)

    def _on_eval_clicked(self) -> None:
        self.run_evaluation(self.eval_folder.text().strip(), self.way_spin.value(), self.shots_spin.value(),
                            self.episodes_spin.value())

    def run_evaluation(self, folder: str, way: int, shots: int, episodes: int) -> None:
        if self.verifier is None:
            self.show_error("No model is loaded yet.")
            return
        if not folder:
            self.show_error("Choose a folder with one sub-folder per class.")
            return
        self.eval_folder.setText(str(folder))
        self.eval_result.setText("Running…")
        self.jobs.submit("evaluate", f"{way}-way {shots}-shot evaluation", _job_evaluate, self.verifier, str(folder),
                         int(way), int(shots), int(episodes), self.rank)

    # -- closing ---------------------------------------------------------------------------------------
    def busy(self) -> bool:
        return bool(self.jobs.pending_kinds()) or self.identifier.busy or self.live_identifier.busy

    def shutdown(self) -> None:
        """Stop the camera and both worker threads, wait for them, close the gallery (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.camera_view.shutdown()
        self.identifier.stop()
        self.live_identifier.stop()
        self.jobs.stop()
        if self.gallery is not None:
            self.gallery.close()

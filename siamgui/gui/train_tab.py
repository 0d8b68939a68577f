"""The Train tab: choose a class folder, train in a worker thread, calibrate, save.

The tab shows and forwards; the engine (``siamgui.core.training``) does the
work in a :class:`~siamgui.gui.train_worker.TrainThread`. Step events are only
buffered when they arrive; a 10 Hz QTimer redraws the plots and the progress
line, so a fast training loop cannot flood the GUI thread.

Dialogs go through four small methods that tests (and the scripted mode)
replace: :meth:`TrainTab.ask_question`, :meth:`TrainTab.show_message`,
:meth:`TrainTab.ask_folder` and :meth:`TrainTab.ask_save_path`.
"""

from __future__ import annotations

import copy
import dataclasses
import html
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QFileDialog, QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget,
                               QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QScrollArea, QSizePolicy,
                               QSplitter, QTabWidget, QVBoxLayout, QWidget)

from siamgui.core.errors import SiamguiError
from siamgui.core.training import TrainControl
from siamgui.gui.train_plots import MAX_HZ, LivePlots
from siamgui.gui.train_result import TrainResultView
from siamgui.gui.train_settings import TrainSettingsForm, open_settings
from siamgui.gui.train_worker import ScanThread, TrainThread, training_threads

LEFT_WIDTH = 410
LEFT_MIN_WIDTH = 370


def format_duration(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _pixmap(arr) -> QPixmap | None:
    if arr is None:
        return None
    h, w = arr.shape[:2]
    image = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


class TrainTab(QWidget):
    """Dataset, settings, live training and the calibrated result.

    Signals: ``dataset_scanned(object)`` (the DatasetSummary, or None when the
    folder could not be read), ``training_started()``, ``training_ended(bool)``
    (True when a model came out), ``compare_requested()`` (after "Use in Compare" handed the model
    to the app state) and ``scripted_finished(bool)`` (see :meth:`start_scripted`).
    """

    dataset_scanned = Signal(object)
    training_started = Signal()
    training_ended = Signal(bool)
    compare_requested = Signal()
    scripted_finished = Signal(bool)

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        #: Extra TrainConfig fields applied on top of the form (tests use tiny networks this way).
        self.extra_config: dict = {}
        #: Intra-op threads for training (None = torch's default); see train_worker.training_threads.
        self.num_threads: int | None = training_threads()

        self._data_dir: str | None = None
        self._summary = None
        self._scan_token = 0
        self._scan_thread: ScanThread | None = None
        self._train_thread: TrainThread | None = None
        self._threads: list = []
        self._control: TrainControl | None = None
        self._result = None
        self._saved_path: Path | None = None
        self._saved_meta: dict | None = None
        self._scripted = False
        self._was_scripted = False
        self._scripted_epochs: int | None = None
        self._run_ok = False
        self._last_step = None
        self._loading: tuple[int, int] | None = None
        self._rate: float | None = None
        self._stopping = False
        self._started_at = 0.0

        self._build()
        settings = open_settings()
        self.settings_form.restore(settings)
        self._last_dir = str(settings.value("train/last_folder") or "")
        self._last_save_dir = str(settings.value("train/last_save_folder") or "")

        self._ui_timer = QTimer(self)
        self._ui_timer.setInterval(int(1000 / MAX_HZ))
        self._ui_timer.timeout.connect(self._on_ui_timer_timeout)
        self._update_buttons()

    # -- layout -----------------------------------------------------------------------------
    def _build(self) -> None:
        # dataset
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
        self._thumb_grid = QGridLayout(self.thumbs)
        self._thumb_grid.setContentsMargins(0, 4, 0, 0)
        self._thumb_grid.setHorizontalSpacing(10)
        self._thumb_grid.setVerticalSpacing(4)

        ds_box = QGroupBox("Dataset")
        ds = QVBoxLayout(ds_box)
        row = QHBoxLayout()
        row.addWidget(self.choose_button)
        row.addWidget(self.folder_label, 1)
        ds.addLayout(row)
        ds.addWidget(self.summary_label)
        ds.addWidget(self.problems_label)
        ds.addWidget(self.skipped_list)
        ds.addWidget(self.thumbs)

        self.settings_form = TrainSettingsForm()
        set_box = QGroupBox("Settings")
        QVBoxLayout(set_box).addWidget(self.settings_form)

        left_inner = QWidget()
        li = QVBoxLayout(left_inner)
        li.setContentsMargins(0, 0, 4, 0)
        li.addWidget(ds_box)
        li.addWidget(set_box)
        li.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left_inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current batch; the best finished epoch is kept")
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.stop_button):
            buttons.addWidget(b)

        left = QWidget()
        left.setMinimumWidth(LEFT_MIN_WIDTH)
        left.setMaximumWidth(LEFT_WIDTH)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(scroll, 1)
        ll.addLayout(buttons)

        # progress, plots, result, log
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.progress.setTextVisible(True)
        self.status_label = QLabel("Idle")
        self.status_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.plots = LivePlots()
        self.result_view = TrainResultView()
        self.views = QTabWidget()
        self.views.addTab(self.plots, "Training")
        self.views.addTab(self.result_view, "Result")
        self.views.setTabEnabled(1, False)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setPlaceholderText("Log")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.views)
        split.addWidget(self.log_view)
        split.setStretchFactor(0, 5)
        split.setStretchFactor(1, 1)
        split.setSizes([560, 110])
        split.setChildrenCollapsible(False)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(self.progress, 2)
        top.addWidget(self.status_label, 3)
        rl.addLayout(top)
        rl.addWidget(split, 1)

        lay = QHBoxLayout(self)
        lay.addWidget(left)
        lay.addWidget(right, 1)

        self.choose_button.clicked.connect(self._on_choose_button_clicked)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self._on_pause_button_clicked)
        self.stop_button.clicked.connect(self.stop)
        self.result_view.save_requested.connect(self._on_result_save_requested)
        self.result_view.use_requested.connect(self.use_in_compare)
        self.result_view.threshold_changed.connect(self._on_result_threshold_changed)

    # -- dialogs (replaced in tests and in scripted runs) -----------------------------------------
    def ask_question(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def show_message(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)

    def ask_folder(self, start: str) -> str:
        return QFileDialog.getExistingDirectory(self, "Dataset folder (one sub-folder per class)", start)

    def ask_save_path(self, suggested: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Save model", suggested, "Model files (*.safetensors)")
        return path

    def _error(self, title: str, text: str) -> None:
        self.log("error", text)
        if not self._scripted:
            self.show_message(title, text)

    # -- log ---------------------------------------------------------------------------------------
    def log(self, level: str, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        color = {"warning": "#9a6700", "error": "#b00020"}.get(level)
        text = html.escape(f"{stamp}  {level + ': ' if level != 'info' else ''}{message}")
        self.log_view.appendHtml(f'<span style="color:{color}">{text}</span>' if color else text)

    # -- dataset -----------------------------------------------------------------------------------
    def _on_choose_button_clicked(self) -> None:
        path = self.ask_folder(self._last_dir or str(Path.home()))
        if path:
            self.choose_folder(path)

    def choose_folder(self, path: str) -> None:
        """Use ``path`` as the dataset; its summary is computed off the GUI thread."""
        if self.is_training:
            return
        self._data_dir = str(path)
        self._last_dir = str(Path(path).parent)
        self._summary = None
        self.folder_label.setText(str(path))
        self.folder_label.setToolTip(str(path))
        self.summary_label.setText("Scanning...")
        self.problems_label.setVisible(False)
        self.skipped_list.setVisible(False)
        self._set_thumbnails([])
        if self._scan_thread is not None:
            self._scan_thread.requestInterruption()
        self._scan_token += 1
        thread = ScanThread(self._data_dir, self._scan_token, self)
        thread.scanned.connect(self._on_scan_scanned)
        thread.failed.connect(self._on_scan_failed)
        self._track(thread)
        self._scan_thread = thread
        thread.start()
        self._update_buttons()

    @property
    def scanning(self) -> bool:
        return self._scan_thread is not None

    @property
    def summary(self):
        """The DatasetSummary of the chosen folder (None before its scan finished)."""
        return self._summary

    def _on_scan_scanned(self, token: int, dataset, summary, pairs: list) -> None:
        if token != self._scan_token:
            return
        self._scan_thread = None
        self._summary = summary
        self._show_summary(summary)
        self._set_thumbnails(pairs)
        self._update_buttons()
        self.dataset_scanned.emit(summary)
        if self._scripted and not self.is_training:
            if summary.problems:
                self._finish_scripted(False)
            else:
                if self._scripted_epochs:
                    self.settings_form.epochs.setValue(int(self._scripted_epochs))
                self.start()

    def _on_scan_failed(self, token: int, message: str) -> None:
        if token != self._scan_token:
            return
        self._scan_thread = None
        self._summary = None
        self.summary_label.setText("")
        self.problems_label.setText(message)
        self.problems_label.setVisible(True)
        self.log("error", message)
        self._update_buttons()
        self.dataset_scanned.emit(None)
        if self._scripted:
            self._finish_scripted(False)

    def _show_summary(self, s) -> None:
        counts = sorted(s.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{html.escape(name)} ({n})" for name, n in counts[:6])
        more = f", ... {len(counts) - 6} more" if len(counts) > 6 else ""
        singles = len(s.single_image_classes)
        text = (f"<b>{s.classes}</b> classes, <b>{s.images}</b> images; {s.classes_with_pairs} with 2+ images<br>"
                f"Per class: min {s.per_class_min}, median {s.per_class_median:g}, max {s.per_class_max}<br>")
        if singles:
            text += f"<b>{singles}</b> class(es) with a single image (negatives only)<br>"
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
        if s.skipped:
            self.log("warning", f"{len(s.skipped)} file(s) in {Path(s.root).name} could not be read and will be "
                                "skipped.")
        if singles:
            self.log("info", f"{singles} class(es) have a single image; they are used as negatives only.")

    def _set_thumbnails(self, pairs: list) -> None:
        while self._thumb_grid.count():
            item = self._thumb_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        per_row = 3
        for i, (a, b, same, ca, cb) in enumerate(pairs):
            cell = QWidget()
            cl = QVBoxLayout(cell)
            cl.setContentsMargins(0, 0, 0, 0)
            cl.setSpacing(1)
            pics = QHBoxLayout()
            pics.setSpacing(2)
            for arr, name in ((a, ca), (b, cb)):
                lab = QLabel()
                lab.setFixedSize(52, 52)
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
            self._thumb_grid.addWidget(cell, i // per_row, i % per_row)
        self.thumbs.setVisible(bool(pairs))

    # -- training ------------------------------------------------------------------------------------
    @property
    def is_training(self) -> bool:
        return self._train_thread is not None

    @property
    def train_thread(self) -> TrainThread | None:
        return self._train_thread

    @property
    def result(self):
        """The last TrainResult (None before a run produced one)."""
        return self._result

    def start(self) -> bool:
        """Start training on the chosen folder with the form's settings; False if it cannot start."""
        if self.is_training or self._data_dir is None or self._summary is None or self._summary.problems:
            return False
        cfg = self.settings_form.config(self._data_dir)
        if self.extra_config:
            cfg = dataclasses.replace(cfg, **copy.deepcopy(self.extra_config))
        try:
            cfg.resolved()
        except SiamguiError as exc:
            self._error("Cannot start training", str(exc))
            if self._scripted:
                self._finish_scripted(False)
            return False
        if not self._scripted:
            self._save_settings()
        self._control = TrainControl()
        thread = TrainThread(cfg, self._control, self.num_threads, self)
        thread.logged.connect(self._on_train_logged)
        thread.loading.connect(self._on_train_loading)
        thread.stepped.connect(self._on_train_stepped)
        thread.epoch_finished.connect(self._on_train_epoch_finished)
        thread.finished_training.connect(self._on_train_finished_training)
        thread.failed.connect(self._on_train_failed)
        thread.finished.connect(self._on_train_thread_finished)
        self._track(thread)
        self._train_thread = thread
        self._run_ok = False
        self._stopping = False
        self._last_step = None
        self._loading = None
        self._rate = None
        self._started_at = time.perf_counter()
        self._result = None
        self._saved_path = self._saved_meta = None
        self.result_view.set_result(None)
        self.views.setTabEnabled(1, False)
        self.views.setCurrentWidget(self.plots)
        self.plots.clear()
        self.progress.setRange(0, 0)  # busy until the first event
        self.progress.setFormat("")
        self.status_label.setText("Starting...")
        self.log("info", f"Training on {Path(self._data_dir).name}: preset {cfg.preset}, "
                         f"{cfg.arch if cfg.init in (None, '') else 'fine-tuning ' + str(cfg.init)}, "
                         f"{cfg.loss} loss, {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr:g}, "
                         f"device {cfg.device}.")
        thread.start()
        self._ui_timer.start()
        self._update_buttons()
        self.training_started.emit()
        return True

    def _on_pause_button_clicked(self) -> None:
        if self._control is None or not self.is_training:
            return
        if self._control.paused:
            self.resume()
        else:
            self.pause()

    def pause(self) -> None:
        if self._control is not None and self.is_training and not self._stopping:
            self._control.pause()
            self.status_label.setText("Paused (after the current batch)")
            self.log("info", "Paused.")
            self._update_buttons()

    def resume(self) -> None:
        if self._control is not None and self.is_training:
            self._control.resume()
            self.log("info", "Resumed.")
            self._update_buttons()

    def stop(self) -> None:
        """Stop after the current batch (the best finished epoch is kept)."""
        if self._control is None or not self.is_training or self._stopping:
            return
        self._stopping = True
        self._control.cancel()
        self.status_label.setText("Stopping after the current batch...")
        self.log("info", "Stop requested.")
        self._update_buttons()

    def _on_train_logged(self, level: str, message: str) -> None:
        self.log(level, message)

    def _on_train_loading(self, done: int, total: int) -> None:
        self._loading = (done, total)

    def _on_train_stepped(self, step) -> None:
        self._last_step = step
        self._rate = step.pairs_per_s if self._rate is None else 0.9 * self._rate + 0.1 * step.pairs_per_s
        self.plots.add_step(step)

    def _on_train_epoch_finished(self, ep) -> None:
        self.plots.add_epoch(ep)
        val = (f"val loss {ep.val_loss:.4f}, AUC {ep.val_auc:.4f}, EER {100 * ep.val_eer:.2f} %"
               if ep.val_auc is not None else "no validation")
        self.log("info", f"Epoch {ep.epoch}/{ep.epochs}: train loss {ep.train_loss:.4f}, {val}"
                         f"{' (best so far)' if ep.is_best else ''}.")

    def _on_ui_timer_timeout(self) -> None:
        self.plots.flush()
        self._refresh_progress()

    def _refresh_progress(self) -> None:
        s = self._last_step
        if s is not None:
            if self.progress.maximum() != s.total_steps:
                self.progress.setRange(0, s.total_steps)
            self.progress.setValue(s.global_step)
            self.progress.setFormat(f"epoch {s.epoch}/{s.epochs} · step {s.step}/{s.steps_per_epoch}")
            if self._control is not None and self._control.paused and not self._stopping:
                return
            if not self._stopping:
                self.status_label.setText(f"loss {s.running_loss:.4f} · {self._rate or 0:,.0f} pairs/s · "
                                          f"ETA {format_duration(s.eta_s)}")
        elif self._loading is not None:
            done, total = self._loading
            self.progress.setRange(0, max(1, total))
            self.progress.setValue(done)
            self.progress.setFormat("preparing images %v/%m")
            if not self._stopping:
                self.status_label.setText("Decoding and preparing the images once...")

    def _on_train_finished_training(self, fin) -> None:
        self._ui_timer.stop()
        self.plots.flush()
        self._refresh_progress()
        elapsed = format_duration(time.perf_counter() - self._started_at)
        if fin.result is not None:
            self._result = fin.result
            self.result_view.set_result(fin.result)
            self.views.setTabEnabled(1, True)
            self.views.setCurrentWidget(self.result_view)
            m = fin.result.meta["metrics"]
            tr = fin.result.meta["training"]
            if fin.reason:
                self.log("info", fin.reason)
            self.log("info", f"Finished in {elapsed}: best epoch {tr['best_epoch']} of {tr['epochs_run']}, "
                             f"AUC {m['auc']:.4f}, EER {100 * m['eer']:.2f} %, threshold {fin.result.threshold:.4f}. "
                             "Choose the operating point, then save the model.")
            self.status_label.setText(f"Finished in {elapsed}" + (" (stopped)" if fin.result.stopped_early else ""))
            self._run_ok = True
        else:
            reason = fin.reason or "Stopped; nothing to keep."
            self.log("info", reason)
            self.status_label.setText(reason)
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("")
            self._run_ok = False

    def _on_train_failed(self, message: str, details: str) -> None:
        self._ui_timer.stop()
        self.plots.flush()
        self._run_ok = False
        if details:
            self.log("error", details.rstrip())
        self.status_label.setText("Training failed")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self._error("Training failed", message)

    def _on_train_thread_finished(self) -> None:
        self._train_thread = None
        self._control = None
        self._stopping = False
        self._ui_timer.stop()
        self._update_buttons()
        self.training_ended.emit(self._run_ok)
        if self._scripted:
            self._finish_scripted(self._run_ok)

    # -- result --------------------------------------------------------------------------------------
    def _on_result_threshold_changed(self, threshold: float) -> None:
        point = self._result.meta["metrics"].get("operating_point", "")
        self.log("info", f"Threshold set to {threshold:.4f} ({point}).")

    def _suggested_save_path(self) -> str:
        folder = self._last_save_dir or (str(Path(self._data_dir).parent) if self._data_dir else str(Path.home()))
        preset = self._result.meta.get("preprocess", {}).get("preset", "model") if self._result else "model"
        stem = Path(self._data_dir).name if self._data_dir else "model"
        return str(Path(folder) / f"{stem}-{preset}.safetensors")

    def _on_result_save_requested(self) -> None:
        if self._result is None:
            return
        path = self.ask_save_path(self._suggested_save_path())
        if path:
            self.save_model_to(path)

    def save_model_to(self, path) -> bool:
        """Save the result (atomically, via the engine); errors are shown and the model stays in memory."""
        if self._result is None:
            return False
        path = Path(path)
        if path.suffix.lower() != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        try:
            self._result.save(path)
        except SiamguiError as exc:
            self.result_view.set_save_status(f"Not saved: {exc}")
            self._error("Could not save the model", str(exc))
            return False
        except OSError as exc:
            text = f"Could not save the model to {path}: {exc.strerror or exc}. The trained model is still in memory."
            self.result_view.set_save_status(f"Not saved: {text}")
            self._error("Could not save the model", text)
            return False
        self._saved_path = path
        self._saved_meta = copy.deepcopy(self._result.meta)
        self._last_save_dir = str(path.parent)
        open_settings().setValue("train/last_save_folder", self._last_save_dir)
        self.result_view.set_save_status(f"Saved to {path} (threshold {self._result.threshold:.4f})")
        self.log("info", f"Saved the model to {path} (threshold {self._result.threshold:.4f}).")
        return True

    def use_in_compare(self) -> None:
        """Make the result the app's current model (the saved file if it matches, else a copy in memory)."""
        if self._result is None:
            return
        if self._saved_path is not None and self._saved_meta == self._result.meta:
            source = str(self._saved_path)
        else:
            from siamgui.core.modelfile import LoadedModel

            source = LoadedModel(copy.deepcopy(self._result.network), copy.deepcopy(self._result.meta), None)
        self.state.load_model(source)
        self.log("info", f"Handed the model (threshold {self._result.threshold:.4f}) to Compare.")
        self.compare_requested.emit()

    # -- buttons ---------------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        running = self.is_training
        can_start = (not running and self._summary is not None and not self._summary.problems
                     and self._scan_thread is None)
        self.start_button.setEnabled(can_start)
        self.pause_button.setEnabled(running and not self._stopping)
        self.pause_button.setText("Resume" if (self._control is not None and self._control.paused) else "Pause")
        self.stop_button.setEnabled(running and not self._stopping)
        self.choose_button.setEnabled(not running)
        self.settings_form.setEnabled(not running)
        if not can_start and not running:
            if self._data_dir is None:
                why = "Choose a dataset folder first"
            elif self._scan_thread is not None:
                why = "Scanning the folder..."
            else:
                why = "The dataset cannot be used for training (see above)"
            self.start_button.setToolTip(why)
        else:
            self.start_button.setToolTip("")

    # -- threads and lifecycle -----------------------------------------------------------------------
    def _track(self, thread) -> None:
        self._threads.append(thread)
        thread.finished.connect(self._on_any_thread_finished)

    def _on_any_thread_finished(self) -> None:
        for t in [t for t in self._threads if t.isFinished()]:
            self._threads.remove(t)
            t.deleteLater()

    @property
    def busy(self) -> bool:
        """True while any thread of this tab runs."""
        return any(t.isRunning() for t in self._threads)

    def confirm_close(self) -> bool:
        """Ask whether to stop a running training; False cancels the close."""
        if not self.is_training:
            return True
        if not self.ask_question("Training is running", "Training is still running. Stop it and close?"):
            return False
        self.stop()
        return True

    def shutdown(self) -> None:
        """Stop training and scanning and wait for every thread of this tab."""
        scripted_run = self._scripted or self._was_scripted
        self._scripted = False
        if self._control is not None:
            self._control.cancel()
        if self._scan_thread is not None:
            self._scan_thread.requestInterruption()
        self._ui_timer.stop()
        for t in list(self._threads):
            t.wait()
        if not scripted_run:  # an unattended run's defaults are not the user's choices
            self._save_settings()

    def _save_settings(self) -> None:
        settings = open_settings()
        self.settings_form.save(settings)
        if self._last_dir:
            settings.setValue("train/last_folder", self._last_dir)
        settings.sync()

    # -- scripted ---------------------------------------------------------------------------------------
    def start_scripted(self, data_dir: str, epochs: int | None = None) -> None:
        """Scan ``data_dir``, train with the preset defaults (``epochs`` overridden), show the result.

        Emits ``scripted_finished(True)`` once the result view is shown and the worker
        has ended, or ``scripted_finished(False)`` on any failure; no dialogs are shown.
        """
        self._scripted = self._was_scripted = True
        self._scripted_epochs = epochs
        form = self.settings_form
        form.loss.setCurrentIndex(0)
        form.init.setCurrentIndex(0)
        form.device.setCurrentIndex(0)
        form.apply_defaults()
        if epochs:
            form.epochs.setValue(int(epochs))
        self.choose_folder(str(data_dir))

    def _finish_scripted(self, ok: bool) -> None:
        if self._scripted:
            self._scripted = False
            self.scripted_finished.emit(bool(ok))

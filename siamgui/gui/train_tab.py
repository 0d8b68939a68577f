"""The Train tab: choose a class folder, train in a worker thread, calibrate, save.

The tab is the controller of three panels (dataset, settings, run); the
engine (``siamgui.core.training``) does the work in a
:class:`~siamgui.gui.train_worker.TrainingRun`. Step events are only buffered
when they arrive; a 10 Hz QTimer redraws the plots and the progress line, so a
fast training loop cannot flood the GUI thread.

Dialogs go through four small methods that tests (and the scripted mode)
replace: :meth:`TrainTab.ask_question`, :meth:`TrainTab.show_message`,
:meth:`TrainTab.ask_folder` and :meth:`TrainTab.ask_save_path`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QFileDialog, QFrame, QGroupBox, QHBoxLayout, QMessageBox, QPushButton, QScrollArea,
                               QVBoxLayout, QWidget)

from siamgui.core.errors import SiamguiError
from siamgui.core.training import Epoch, Finished, Loading, Log, Step, TrainControl
from siamgui.gui.train_dataset import DatasetPanel
from siamgui.gui.settings import save_settings
from siamgui.gui.train_plots import MAX_HZ
from siamgui.gui.train_run import RunPanel
from siamgui.gui.train_settings import TrainSettingsForm, open_settings
from siamgui.gui.train_worker import TrainingRun, scan_dataset, training_threads
from siamgui.gui.workers import Worker, WorkerGroup

LEFT_WIDTH = 410
LEFT_MIN_WIDTH = 370


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
        self._scan_worker: Worker | None = None
        self._run: TrainingRun | None = None
        self._workers = WorkerGroup(self)
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
        self.dataset = DatasetPanel()
        self.settings_form = TrainSettingsForm()
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current batch; the best finished epoch is kept")
        self.run_panel = RunPanel()
        lay = QHBoxLayout(self)
        lay.addWidget(self._left_column())
        lay.addWidget(self.run_panel, 1)
        # the names the tests and scripts use
        d, r = self.dataset, self.run_panel
        self.choose_button, self.folder_label, self.summary_label = d.choose_button, d.folder_label, d.summary_label
        self.problems_label, self.skipped_list, self._thumb_grid = d.problems_label, d.skipped_list, d.thumb_grid
        self.progress, self.status_label, self.plots = r.progress, r.status_label, r.plots
        self.result_view, self.views, self.log_view = r.result_view, r.views, r.log_view

        self.choose_button.clicked.connect(self._on_choose_button_clicked)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self._on_pause_button_clicked)
        self.stop_button.clicked.connect(self.stop)
        self.result_view.save_requested.connect(self._on_result_save_requested)
        self.result_view.use_requested.connect(self.use_in_compare)
        self.result_view.threshold_changed.connect(self._on_result_threshold_changed)

    def _left_column(self) -> QWidget:
        """Dataset and settings (scrolling), with the run buttons under them."""
        set_box = QGroupBox("Settings")
        QVBoxLayout(set_box).addWidget(self.settings_form)
        left_inner = QWidget()
        li = QVBoxLayout(left_inner)
        li.setContentsMargins(0, 0, 4, 0)
        li.addWidget(self.dataset)
        li.addWidget(set_box)
        li.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left_inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
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
        return left

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
        self.run_panel.log(level, message)

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
        self.dataset.show_scanning(str(path))
        if self._scan_worker is not None:
            self._scan_worker.abort()
        w = Worker(scan_dataset, self._data_dir, parent=self, name="scan", failure="Could not scan the folder",
                   pass_task=True)
        w.returned.connect(partial(self._on_scanned, w))
        w.errored.connect(partial(self._on_scan_failed, w))
        self._scan_worker = w
        self._workers.start(w)
        self._update_buttons()

    @property
    def scanning(self) -> bool:
        return self._scan_worker is not None

    @property
    def summary(self):
        """The DatasetSummary of the chosen folder (None before its scan finished)."""
        return self._summary

    def _on_scanned(self, worker: Worker, scanned) -> None:
        if worker is not self._scan_worker:
            return  # a newer folder was chosen meanwhile
        self._scan_worker = None
        _dataset, summary, pairs = scanned
        self._summary = summary
        self.dataset.show_summary(summary)
        self._log_summary(summary)
        self.dataset.set_thumbnails(pairs)
        self._update_buttons()
        self.dataset_scanned.emit(summary)
        if self._scripted and not self.is_training:
            if summary.problems:
                self._finish_scripted(False)
            else:
                if self._scripted_epochs:
                    self.settings_form.epochs.setValue(int(self._scripted_epochs))
                self.start()

    def _on_scan_failed(self, worker: Worker, message: str, _details: str) -> None:
        if worker is not self._scan_worker:
            return
        self._scan_worker = None
        self._summary = None
        self.dataset.show_failure(message)
        self.log("error", message)
        self._update_buttons()
        self.dataset_scanned.emit(None)
        if self._scripted:
            self._finish_scripted(False)

    def _log_summary(self, s) -> None:
        if s.skipped:
            self.log("warning", f"{len(s.skipped)} file(s) in {Path(s.root).name} could not be read and will be "
                                "skipped.")
        singles = len(s.single_image_classes)
        if singles:
            self.log("info", f"{singles} class(es) have a single image; they are used as negatives only.")
        if s.forgery_images:
            self.log("info", f"{s.headline()}: the forgeries are used as negatives of their class only.")
        for note in s.notes:
            self.log("warning", note)

    # -- training ------------------------------------------------------------------------------------
    @property
    def is_training(self) -> bool:
        return self._run is not None

    @property
    def train_thread(self) -> TrainingRun | None:
        """The running TrainingRun (None when idle)."""
        return self._run

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
        self._run = TrainingRun(cfg, self._control, self.num_threads, self)
        w = self._run.worker
        w.yielded.connect(self._on_train_event)
        w.errored.connect(self._on_train_failed)
        w.finished.connect(self._on_train_thread_finished)
        self._run_ok = self._stopping = False
        self._last_step = self._loading = self._rate = None
        self._started_at = time.perf_counter()
        self._result = None
        self._saved_path = self._saved_meta = None
        self.run_panel.show_starting()
        self.log("info", f"Training on {Path(self._data_dir).name}: preset {cfg.preset}, "
                         f"{cfg.arch if cfg.init in (None, '') else 'fine-tuning ' + str(cfg.init)}, "
                         f"{cfg.loss} loss, {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr:g}, "
                         f"device {cfg.device}.")
        self._workers.start(w)
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

    def _on_train_event(self, ev) -> None:
        """One engine event (GUI thread): buffered or logged; the timer redraws."""
        if isinstance(ev, Step):
            self._last_step = ev
            self._rate = ev.pairs_per_s if self._rate is None else 0.9 * self._rate + 0.1 * ev.pairs_per_s
            self.plots.add_step(ev)
        elif isinstance(ev, Loading):
            self._loading = (ev.done, ev.total)
        elif isinstance(ev, Epoch):
            self.run_panel.add_epoch(ev)
        elif isinstance(ev, Log):
            self.log(ev.level, ev.message)
        elif isinstance(ev, Finished):
            self._on_train_finished_training(ev)

    def _on_ui_timer_timeout(self) -> None:
        self.plots.flush()
        self._refresh_progress()

    def _refresh_progress(self) -> None:
        paused = self._control is not None and self._control.paused
        self.run_panel.show_progress(self._last_step, self._loading, self._rate, paused=paused,
                                     stopping=self._stopping)

    def _on_train_finished_training(self, fin) -> None:
        self._ui_timer.stop()
        self.plots.flush()
        self._refresh_progress()
        self._result = fin.result
        self._run_ok = self.run_panel.show_finished(fin, time.perf_counter() - self._started_at)

    def _on_train_failed(self, message: str, details: str) -> None:
        self._ui_timer.stop()
        self.plots.flush()
        self._run_ok = False
        self.run_panel.show_failed(details)
        self._error("Training failed", message)

    def _on_train_thread_finished(self) -> None:
        self._run = None
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
        except (SiamguiError, OSError) as exc:
            text = (str(exc) if isinstance(exc, SiamguiError) else f"Could not save the model to {path}: "
                    f"{exc.strerror or exc}. The trained model is still in memory.")
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
                     and self._scan_worker is None)
        self.start_button.setEnabled(can_start)
        self.pause_button.setEnabled(running and not self._stopping)
        self.pause_button.setText("Resume" if (self._control is not None and self._control.paused) else "Pause")
        self.stop_button.setEnabled(running and not self._stopping)
        self.choose_button.setEnabled(not running)
        self.settings_form.setEnabled(not running)
        if not can_start and not running:
            if self._data_dir is None:
                why = "Choose a dataset folder first"
            elif self._scan_worker is not None:
                why = "Scanning the folder..."
            else:
                why = "The dataset cannot be used for training (see above)"
            self.start_button.setToolTip(why)
        else:
            self.start_button.setToolTip("")

    # -- lifecycle ---------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while any worker of this tab runs."""
        return self._workers.busy

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
        if self._scan_worker is not None:
            self._scan_worker.abort()
        self._ui_timer.stop()
        self._workers.wait(None)
        if not scripted_run:  # an unattended run's defaults are not the user's choices
            self._save_settings()

    def _save_settings(self) -> None:
        settings = open_settings()
        self.settings_form.save(settings)
        if self._last_dir:
            settings.setValue("train/last_folder", self._last_dir)
        save_settings(settings)

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

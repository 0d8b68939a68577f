"""The Evaluate tab: run the current model on labelled pairs and show what it gets wrong and why.

The run is :func:`siamgui.core.evaluation.run.run_evaluation` in a :class:`Worker`;
progress comes back through a signal, Cancel asks the worker to stop at the next
batch. The results (curves, tables, worst pairs) are in :mod:`.evaluate_results`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from siamgui.gui.evaluate_results import ResultsView
from siamgui.gui.workers import Worker, WorkerGroup

SOURCES = (("folder", "Class folder (random balanced pairs)"), ("csv", "Pairs CSV (a,b,same)"),
           ("lfw", "LFW pairs file"))
MODEL_FILTER = "Model files (*.safetensors)"
REPORT_FILTER = "HTML report (*.html)"


def _evaluate_job(task, emit, verifier, kind: str, path: str, root: str, num_pairs: int, seed: int):
    """Runs in a worker: build the pairs, then evaluate (with the worst pairs explained)."""
    from siamgui.core.evaluation.run import pairs_from_csv, pairs_from_folder, pairs_from_lfw, run_evaluation

    if kind == "folder":
        pairset = pairs_from_folder(path, num_pairs, seed, cancel=task.cancelled)
    elif kind == "csv":
        pairset = pairs_from_csv(path)
    else:
        pairset = pairs_from_lfw(path, root)
    return run_evaluation(verifier, pairset, progress=emit, cancel=task.cancelled)


def _save_threshold_job(model: str, target: str, threshold: float, calibration):
    from siamgui.core.evaluation.calibration import save_with_threshold

    save_with_threshold(model, target, threshold, calibration)
    return target


def _report_job(result, path: str):
    from siamgui.core.evaluation.report import write_report

    return str(write_report(result, path))


class EvaluateTab(QWidget):
    """Signals: ``progressed(object)`` (a core Progress, from the worker), ``finished_run(str)``
    ("done", "cancelled" or "failed"), ``saved(str)`` (a model copy or report written),
    ``compare_requested(str, str)`` (open a pair in the Compare tab), ``message(str)``."""

    progressed = Signal(object)
    finished_run = Signal(str)
    saved = Signal(str)
    compare_requested = Signal(str, str)
    message = Signal(str)

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.result = None
        self._result_model: str | None = None
        self._worker: Worker | None = None
        self._workers = WorkerGroup(self)
        self._build()
        self.progressed.connect(self._on_progress)
        state.model_changed.connect(lambda _v: self._update_buttons())
        self._update_buttons()

    # -- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        self.source_combo = QComboBox()
        for key, label in SOURCES:
            self.source_combo.addItem(label, key)
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("a folder with one sub-folder per class")
        self.browse_button = QPushButton("Browse…")
        self.root_edit = QLineEdit()
        self.root_edit.setPlaceholderText("the LFW image folder")
        self.root_button = QPushButton("Browse…")
        self.pairs_spin = QSpinBox()
        self.pairs_spin.setRange(10, 1_000_000)
        self.pairs_spin.setValue(2000)
        self.pairs_spin.setSingleStep(500)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.run_button = QPushButton("Evaluate")
        self.cancel_button = QPushButton("Cancel")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.eta_label = QLabel("")
        self.status_label = QLabel("Choose data with labelled pairs, then Evaluate.")
        self.status_label.setWordWrap(True)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.report_button = QPushButton("Save report…")
        self.results = ResultsView()

        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        root_row = QHBoxLayout()
        root_row.addWidget(self.root_edit, 1)
        root_row.addWidget(self.root_button)
        self._root_widget = QWidget()
        self._root_widget.setLayout(root_row)
        root_row.setContentsMargins(0, 0, 0, 0)
        data = QGroupBox("Data")
        form = QFormLayout(data)
        form.addRow("Pairs from", self.source_combo)
        form.addRow("Path", path_row)
        form.addRow("Images", self._root_widget)
        form.addRow("Pairs", self.pairs_spin)
        form.addRow("Seed", self.seed_spin)
        self._form = form
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)

        left = QVBoxLayout()
        left.addWidget(data)
        left.addLayout(buttons)
        left.addWidget(self.progress_bar)
        left.addWidget(self.eta_label)
        left.addWidget(self.status_label)
        left.addSpacing(8)
        left.addWidget(self.summary_label)
        left.addWidget(self.report_button)
        left.addStretch(1)
        side = QWidget()
        side.setLayout(left)
        side.setMaximumWidth(380)
        lay = QHBoxLayout(self)
        lay.addWidget(side)
        lay.addWidget(self.results, 1)

        self.source_combo.currentIndexChanged.connect(self._on_source_changed)
        self.browse_button.clicked.connect(self._on_browse)
        self.root_button.clicked.connect(self._on_browse_root)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.report_button.clicked.connect(self.save_report)
        self.results.tables.use_threshold.connect(self.use_threshold)
        self.results.worst.open_pair.connect(self.compare_requested)
        self._on_source_changed()

    def _on_source_changed(self) -> None:
        kind = self.source
        self.path_edit.setPlaceholderText({"folder": "a folder with one sub-folder per class",
                                           "csv": "a CSV file with the header a,b,same",
                                           "lfw": "pairs.txt or pairsDevTest.txt"}[kind])
        for w, on in ((self._root_widget, kind == "lfw"), (self.pairs_spin, kind == "folder"),
                      (self.seed_spin, kind == "folder")):
            w.setVisible(on)
            self._form.labelForField(w).setVisible(on)

    def _update_buttons(self) -> None:
        running = self._worker is not None
        self.run_button.setEnabled(not running and self.state.verifier is not None)
        self.cancel_button.setEnabled(running)
        self.report_button.setEnabled(not running and self.result is not None)
        for w in (self.source_combo, self.path_edit, self.browse_button, self.root_edit, self.root_button,
                  self.pairs_spin, self.seed_spin):
            w.setEnabled(not running)

    # -- dialogs (replaced in tests) ------------------------------------------------------
    def _ask_source(self, kind: str) -> str:
        if kind == "folder":
            return QFileDialog.getExistingDirectory(self, "Class folder")
        filt = "CSV files (*.csv);;All files (*)" if kind == "csv" else "Text files (*.txt);;All files (*)"
        path, _ = QFileDialog.getOpenFileName(self, "Pairs file", "", filt)
        return path

    def _ask_root(self) -> str:
        return QFileDialog.getExistingDirectory(self, "Image folder")

    def _ask_model_copy(self, suggestion: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Save a copy of the model with this threshold", suggestion,
                                              MODEL_FILTER)
        return path

    def _ask_report_path(self, suggestion: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Save the evaluation report", suggestion, REPORT_FILTER)
        return path

    def _on_browse(self) -> None:
        path = self._ask_source(self.source)
        if path:
            self.path_edit.setText(path)

    def _on_browse_root(self) -> None:
        path = self._ask_root()
        if path:
            self.root_edit.setText(path)

    # -- running ----------------------------------------------------------------------------
    @property
    def source(self) -> str:
        return self.source_combo.currentData()

    def set_source(self, kind: str, path: str, root: str = "", num_pairs: int | None = None) -> None:
        """Choose the data (as the user would)."""
        self.source_combo.setCurrentIndex([k for k, _ in SOURCES].index(kind))
        self.path_edit.setText(str(path))
        self.root_edit.setText(str(root))
        if num_pairs is not None:
            self.pairs_spin.setValue(num_pairs)

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self) -> None:
        verifier = self.state.verifier
        path, root = self.path_edit.text().strip(), self.root_edit.text().strip()
        if verifier is None:
            return self._status("Load a model first.")
        if not path:
            return self._status("Choose the data first.")
        if self.source == "lfw" and not root:
            return self._status("An LFW pairs file needs its image folder.")
        if self.running:
            return
        self._result_model = str(verifier.path) if verifier.path else None
        self._invert = verifier.meta.get("preprocess", {}).get("preset") == "signature"
        w = Worker(_evaluate_job, self.progressed.emit, verifier, self.source, path, root,
                   self.pairs_spin.value(), self.seed_spin.value(), parent=self, name="evaluate",
                   failure="The evaluation failed", pass_task=True)
        w.returned.connect(self._on_done)
        w.errored.connect(self._on_failed)
        w.finished.connect(self._on_worker_finished)
        self._worker = w
        self.progress_bar.setValue(0)
        self.eta_label.setText("Reading the data…")
        self._status("Evaluating…")
        self._update_buttons()
        self._workers.start(w)

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.abort()
            self.eta_label.setText("Cancelling…")

    def _on_progress(self, p) -> None:
        if self._worker is None:
            return
        self.progress_bar.setValue(int(1000 * p.done / p.total) if p.total else 0)
        text = p.text()
        if p.partial_auc is not None and p.stage == "embedding":
            text += f"; AUC so far {p.partial_auc:.4f} ({p.pairs_scored} pairs)"
        self.eta_label.setText(text)

    def _on_done(self, result) -> None:
        self.result = result
        m = result.metrics
        self.progress_bar.setValue(1000)
        self.eta_label.setText(f"{result.timing.get('seconds', 0):.1f} s, "
                               f"{result.timing.get('ms_per_image', 0):.1f} ms per image")
        lines = [f"<b>{result.data['label']}</b>: {m.pairs} pairs ({result.data['genuine_pairs']} genuine, "
                 f"{result.data['impostor_pairs']} impostor)",
                 f"AUC <b>{m.auc:.4f}</b> &nbsp; EER <b>{m.eer * 100:.2f} %</b>",
                 f"accuracy <b>{m.accuracy * 100:.2f} %</b> at the model's threshold {m.threshold:.4f}",
                 f"best accuracy {m.best_accuracy * 100:.2f} % at {m.best_threshold:.4f}"]
        if result.tenfold is not None:
            lines.append(f"10-fold accuracy {result.tenfold[0] * 100:.2f} % ± {result.tenfold[1] * 100:.2f}")
        self.summary_label.setText("<br>".join(lines))
        self.results.show_result(result, self._invert)
        self._status("Done. Select a threshold row to save a model copy with it, or double-click a worst pair.")
        self._finish_state = "done"

    def _on_failed(self, message: str, _details: str) -> None:
        if self._worker is not None and self._worker.abort_requested:
            self._status("Cancelled")
            self._finish_state = "cancelled"
        else:
            self._status(message)
            self._finish_state = "failed"
        self.eta_label.setText("")
        self.progress_bar.setValue(0)

    def _on_worker_finished(self) -> None:
        self._worker = None
        self._update_buttons()
        self.finished_run.emit(getattr(self, "_finish_state", "failed"))

    def _status(self, text: str) -> None:
        self.status_label.setText(text)
        self.message.emit(text)

    # -- actions on a result ----------------------------------------------------------------
    def use_threshold(self, row: dict) -> None:
        """Save a copy of the evaluated model with ``row["threshold"]`` (never over the original)."""
        if self.result is None or not self._result_model:
            return self._status("This model has no file to copy; save it first.")
        original = Path(self._result_model)
        suggestion = str(original.with_name(f"{original.stem}-t{row['threshold']:.4f}{original.suffix}"))
        target = self._ask_model_copy(suggestion)
        if not target:
            return
        if Path(target).suffix.lower() != ".safetensors":
            target += ".safetensors"
        if Path(target).resolve() == original.resolve():
            return self._status("Choose a new file name: the original model file is never changed.")
        self._run_side_job(_save_threshold_job, self._result_model, target, float(row["threshold"]),
                           self.result.calibration, done=f"Saved a copy with threshold {row['threshold']:.4f}: {{}}")

    def save_report(self) -> None:
        if self.result is None:
            return
        target = self._ask_report_path("evaluation-report.html")
        if not target:
            return
        if Path(target).suffix.lower() not in (".html", ".htm"):
            target += ".html"
        self._run_side_job(_report_job, self.result, target, done="Report saved: {}")

    def _run_side_job(self, fn, *args, done: str) -> None:
        w = Worker(fn, *args, parent=self, name="evaluate-save", failure="Could not save")
        w.returned.connect(lambda path: (self._status(done.format(path)), self.saved.emit(str(path))))
        w.errored.connect(lambda message, _d: self._status(message))
        self._workers.start(w)

    # -- closing --------------------------------------------------------------------------------
    def shutdown(self, wait_ms: int = 15000) -> bool:
        self.cancel()
        return self._workers.wait(wait_ms)

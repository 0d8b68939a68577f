"""The Train tab's run panel: progress line, live plots, the result view and the log."""

from __future__ import annotations

import html
import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QSizePolicy, QSplitter, QTabWidget,
                               QVBoxLayout, QWidget)

from siamgui.core.training import time_left
from siamgui.gui.train_plots import LivePlots
from siamgui.gui.train_result import TrainResultView


def format_duration(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class RunPanel(QWidget):
    """What a training run shows; the tab feeds it (plots are redrawn by the tab's rate-limited timer)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.reset_progress()
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

        rl = QVBoxLayout(self)
        rl.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(self.progress, 2)
        top.addWidget(self.status_label, 3)
        rl.addLayout(top)
        rl.addWidget(split, 1)

    def log(self, level: str, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        color = {"warning": "#9a6700", "error": "#b00020"}.get(level)
        text = html.escape(f"{stamp}  {level + ': ' if level != 'info' else ''}{message}")
        self.log_view.appendHtml(f'<span style="color:{color}">{text}</span>' if color else text)

    def reset_progress(self) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")

    def show_starting(self) -> None:
        """A run is starting: no result, empty plots, a busy bar until the first event."""
        self.result_view.set_result(None)
        self.views.setTabEnabled(1, False)
        self.views.setCurrentWidget(self.plots)
        self.plots.clear()
        self.progress.setRange(0, 0)
        self.progress.setFormat("")
        self.status_label.setText("Starting...")

    def show_result(self, result) -> None:
        self.result_view.set_result(result)
        self.views.setTabEnabled(1, True)
        self.views.setCurrentWidget(self.result_view)

    def show_progress(self, step, loading, rate, *, paused: bool, stopping: bool) -> None:
        """The progress bar and status line for the last Step (or the image-loading phase before it)."""
        if step is not None:
            if self.progress.maximum() != step.total_steps:
                self.progress.setRange(0, step.total_steps)
            self.progress.setValue(step.global_step)
            self.progress.setFormat(f"epoch {step.epoch}/{step.epochs} · step {step.step}/{step.steps_per_epoch}")
            if not paused and not stopping:
                self.status_label.setText(f"loss {step.running_loss:.4f} · {rate or 0:,.0f} pairs/s · "
                                          f"{time_left(step.eta_s)}")
        elif loading is not None:
            done, total = loading
            self.progress.setRange(0, max(1, total))
            self.progress.setValue(done)
            self.progress.setFormat("preparing images %v/%m")
            if not stopping:
                self.status_label.setText("Decoding and preparing the images once...")

    def add_epoch(self, ep) -> None:
        self.plots.add_epoch(ep)
        val = (f"val loss {ep.val_loss:.4f}, AUC {ep.val_auc:.4f}, EER {100 * ep.val_eer:.2f} %"
               if ep.val_auc is not None else "no validation")
        self.log("info", f"Epoch {ep.epoch}/{ep.epochs}: train loss {ep.train_loss:.4f}, {val}"
                         f"{' (best so far)' if ep.is_best else ''}.")

    def show_finished(self, fin, seconds: float) -> bool:
        """The engine's Finished event; True when it holds a model."""
        elapsed = format_duration(seconds)
        if fin.result is None:
            reason = fin.reason or "Stopped; nothing to keep."
            self.log("info", reason)
            self.status_label.setText(reason)
            self.reset_progress()
            return False
        self.show_result(fin.result)
        m = fin.result.meta["metrics"]
        tr = fin.result.meta["training"]
        if fin.reason:
            self.log("info", fin.reason)
        self.log("info", f"Finished in {elapsed}: best epoch {tr['best_epoch']} of {tr['epochs_run']}, "
                         f"AUC {m['auc']:.4f}, EER {100 * m['eer']:.2f} %, threshold {fin.result.threshold:.4f}. "
                         "Choose the operating point, then save the model.")
        self.status_label.setText(f"Finished in {elapsed}" + (" (stopped)" if fin.result.stopped_early else ""))
        return True

    def show_failed(self, details: str) -> None:
        """A run failed (the tab shows the message); ``details`` (a traceback) goes to the log."""
        if details:
            self.log("error", details.rstrip())
        self.status_label.setText("Training failed")
        self.reset_progress()

"""Dialogs: model information, non-blocking messages, the crash dialog."""

from __future__ import annotations

import html
import json
import logging
import sys
import threading
import traceback

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMessageBox, QTextBrowser, QVBoxLayout

log = logging.getLogger("siamgui")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def model_info_rows(meta: dict, path=None, device: str = "") -> list[tuple[str, str]]:
    """The facts shown in the Model info dialog, as (label, text) rows."""
    rows: list[tuple[str, str]] = []
    if path is not None:
        rows.append(("File", str(path)))
    rows.append(("Name", meta.get("name") or "-"))
    arch = meta.get("architecture", {})
    kwargs = ", ".join(f"{k}={_fmt(v)}" for k, v in (arch.get("kwargs") or {}).items())
    rows.append(("Architecture", f"{arch.get('name', '?')}" + (f" ({kwargs})" if kwargs else "")))
    p = meta.get("preprocess", {})
    face = p.get("face")
    prep = f"{p.get('preset', '?')}, {p.get('channels', '?')}×{p.get('image_size', '?')}×{p.get('image_size', '?')}"
    if face:
        prep += f"; faces: {face.get('detector', '?')} detector, {face.get('align', 'box')} alignment"
    rows.append(("Preprocessing", prep))
    rows.append(("Distance", str(meta.get("distance", "euclidean"))))
    rows.append(("Threshold", _fmt(float(meta.get("threshold", float("nan"))))))
    if meta.get("loss"):
        rows.append(("Loss", f"{meta['loss']} (margin {_fmt(meta.get('margin'))})"))
    tr = meta.get("training") or {}
    if tr:
        data = tr.get("data", {}) if isinstance(tr.get("data"), dict) else {}
        rows.append(("Training", f"{data.get('classes', '?')} classes, {data.get('images', '?')} images; "
                                 f"{tr.get('epochs_run', '?')} epochs (best {tr.get('best_epoch', '?')}), "
                                 f"{tr.get('duration_s', '?')} s on {tr.get('device', '?')}"))
    metrics = meta.get("metrics") or {}
    simple = [(k, v) for k, v in metrics.items() if not isinstance(v, (dict, list))]
    if simple:
        rows.append(("Metrics", ", ".join(f"{k} {_fmt(v)}" for k, v in simple)))
    for k, v in (meta.get("provenance") or {}).items():
        rows.append((f"Provenance: {k}", _fmt(v)))
    if device:
        rows.append(("Running on", device))
    rows.append(("Created", str(meta.get("created", "-"))))
    return rows


class ModelInfoDialog(QDialog):
    def __init__(self, meta: dict, path=None, device: str = "", parent=None):
        super().__init__(parent)
        self.setWindowTitle("Model info")
        self.rows = model_info_rows(meta, path, device)
        self.browser = QTextBrowser(self)
        body = "".join(f"<tr><th align='left' valign='top' style='padding-right:12px'>{html.escape(k)}</th>"
                       f"<td>{html.escape(v)}</td></tr>" for k, v in self.rows)
        self.browser.setHtml(f"<table cellspacing='4'>{body}</table>")
        self.browser.setOpenLinks(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        lay = QVBoxLayout(self)
        lay.addWidget(self.browser)
        lay.addWidget(buttons)
        self.resize(560, 380)


def show_message(parent, title: str, text: str, icon=QMessageBox.Icon.Warning) -> QMessageBox:
    """A window-modal message box that does not block the caller (tests never hang on it)."""
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.open()
    return box


class ExceptionBridge(QObject):
    """Routes uncaught exceptions from any thread to a dialog on the GUI thread."""

    raised = Signal(str, str)  # summary, traceback text

    def __init__(self, parent_getter, scripted: bool = False, on_scripted_error=None):
        super().__init__()
        self._parent_getter = parent_getter
        self._scripted = scripted
        self._on_scripted_error = on_scripted_error
        self._showing = False
        self.raised.connect(self._show)
        self._old_hook = sys.excepthook
        self._old_thread_hook = threading.excepthook

    def install(self) -> None:
        sys.excepthook = self._hook
        threading.excepthook = lambda args: self._hook(args.exc_type, args.exc_value, args.exc_traceback)

    def uninstall(self) -> None:
        sys.excepthook = self._old_hook
        threading.excepthook = self._old_thread_hook

    def _hook(self, etype, value, tb) -> None:
        if issubclass(etype, KeyboardInterrupt):
            self._old_hook(etype, value, tb)
            return
        text = "".join(traceback.format_exception(etype, value, tb))
        log.error("uncaught exception:\n%s", text)
        print(text, file=sys.stderr)
        self.raised.emit(f"{etype.__name__}: {value}", text)  # queued when raised off the GUI thread

    def _show(self, summary: str, details: str) -> None:
        if self._scripted:
            if self._on_scripted_error is not None:
                self._on_scripted_error(summary)
            return
        if self._showing:
            return
        self._showing = True
        box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error",
                          "Something went wrong inside siamgui. The app keeps running, but the last action may "
                          f"not have finished.\n\n{summary}", QMessageBox.StandardButton.Ok, self._parent_getter())
        box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _r: setattr(self, "_showing", False))
        box.open()

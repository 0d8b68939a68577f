"""Starting the desktop app: ``siamgui`` / ``siamgui gui [A [B]] [--camera S] [--model M] [--screenshot OUT]``.

The window is shown first; torch is imported and the model loaded in a
background thread. With ``--screenshot`` (or ``--train``) the run is scripted:
it waits until the verdict, the first camera frame, the loaded model or the
Train tab's result is on screen, saves a picture of the window and exits
(0 when that worked, 1 when the comparison, camera, model or training failed).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

log = logging.getLogger("siamgui")

#: Longest a scripted run waits for a comparison, camera frame or model (not for training).
SCRIPT_TIMEOUT_S = float(os.environ.get("SIAMGUI_SCRIPT_TIMEOUT", "300"))


def _err(msg: str) -> None:
    print(f"siamgui: error: {msg}", file=sys.stderr)


def _install_inference_guard() -> None:
    """Called on the GUI thread once a model exists (torch is imported by then)."""
    from siamgui.core.verifier import forbid_inference_on_thread

    forbid_inference_on_thread()


def _route_qt_messages() -> None:
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}
    qt_log = logging.getLogger("siamgui.qt")

    def handler(mode, context, message):
        level = levels.get(mode, logging.WARNING)
        if "propagateSizeHints" in message:  # the offscreen platform's harmless note
            level = logging.DEBUG
        qt_log.log(level, message)

    qInstallMessageHandler(handler)


def run_gui(args) -> int:
    images = list(getattr(args, "images", None) or [])
    screenshot = getattr(args, "screenshot", None)
    train_dir = getattr(args, "train", None)
    epochs = getattr(args, "epochs", None)
    camera = getattr(args, "camera", None)
    model = getattr(args, "model", None)
    scripted = bool(screenshot or train_dir)
    if len(images) > 2:
        _err("give at most two images (for slots A and B)")
        return 2
    if screenshot:
        out = Path(screenshot)
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
            _err("--screenshot must end in .png, .jpg or .bmp")
            return 2
        if not out.parent.is_dir():
            _err(f"the folder of --screenshot does not exist: {out.parent}")
            return 2
    if train_dir and not Path(train_dir).is_dir():
        _err(f"--train needs a folder: {train_dir}")
        return 2
    if scripted and images:
        from siamgui.core.errors import ImageError
        from siamgui.core.images import load_image

        for p in images:
            try:
                load_image(p)
            except ImageError as exc:
                _err(str(exc))
                return 2

    logging.basicConfig(level=logging.INFO if os.environ.get("SIAMGUI_DEBUG") else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("siamgui")
    app.setApplicationName("siamgui")
    _route_qt_messages()

    from siamgui.gui.dialogs import ExceptionBridge
    from siamgui.gui.main_window import MainWindow

    # Interactive runs show the window before the torch-heavy tabs exist (built a moment later).
    window = MainWindow(camera_source=camera, defer_tabs=not scripted)
    done = {"code": None}

    def finish(code: int, reason: str = "") -> None:
        if done["code"] is not None:
            return
        done["code"] = code
        if reason:
            if code:
                _err(reason)
            else:
                print(f"siamgui: {reason}", file=sys.stderr)

        def save_and_quit():
            final = code
            if screenshot:
                if window.grab().save(str(screenshot)):
                    print(f"siamgui: saved {screenshot}", file=sys.stderr)
                else:
                    _err(f"could not save the screenshot to {screenshot}")
                    final = final or 1
            window.close_now()
            app.exit(final)

        QTimer.singleShot(300, save_and_quit)  # let the last result paint

    bridge = ExceptionBridge(lambda: window, scripted=scripted,
                             on_scripted_error=lambda summary: finish(1, f"unexpected error: {summary}"))
    bridge.install()
    window.state.model_changed.connect(_install_inference_guard)
    gui_ident = threading.get_ident()

    restored = False if scripted else window.restore_geometry()
    _fit_to_screen(window, app, keep_saved=restored)
    if images:
        window.compare_tab.load_images(images)

    cmp = window.compare_tab
    if scripted:
        app.setQuitOnLastWindowClosed(False)
        if train_dir:
            tab = window.train_tab
            if tab is None:
                _err("this build has no Train tab")
                window.close_now()
                bridge.uninstall()
                return 2
            tab.scripted_finished.connect(lambda ok: finish(0 if ok else 1))
        elif len(images) == 2:
            cmp.comparison_finished.connect(lambda ok: finish(0 if ok else 1,
                                                              "" if ok else "the comparison failed"))
            window.state.model_failed.connect(lambda m: finish(1, f"model not loaded: {m}")
                                              if window.state.verifier is None else None)
        elif camera is not None:
            cmp.camera_view.frame_ready.connect(lambda _f: finish(0))
            cmp.camera_view.stopped.connect(lambda m: finish(1, m) if m else None)
        else:
            window.state.model_changed.connect(lambda _v: finish(0))
            window.state.model_failed.connect(lambda m: finish(1, f"model not loaded: {m}"))
        QTimer.singleShot(int(SCRIPT_TIMEOUT_S * 1000),
                          lambda: None if train_dir else finish(1, "timed out waiting for the window to be ready"))

    window.show()

    def after_show():
        from siamgui.core.resources import has_bundled_model

        window.start_initial_model(model)
        if not model and not has_bundled_model():
            if scripted and not train_dir:
                if len(images) == 2:
                    finish(1, "no model: give --model (this build has no bundled model)")
                elif camera is None:
                    finish(0)
        if camera is not None:
            cmp.start_camera(camera)
        if train_dir:
            window.select_tab(window.train_tab)
            window.train_tab.start_scripted(str(train_dir), epochs)

    QTimer.singleShot(0, after_show)
    try:
        code = app.exec()
    finally:
        window.shutdown()
        bridge.uninstall()
        verifier_mod = sys.modules.get("siamgui.core.verifier")
        if verifier_mod is not None:
            verifier_mod.allow_inference_on_thread(gui_ident)
    return int(done["code"] if done["code"] is not None else code)


def _fit_to_screen(window, app, keep_saved: bool) -> None:
    screen = window.screen() or app.primaryScreen()
    avail = screen.availableGeometry() if screen is not None else None
    if avail is None:
        window.resize(1240, 780)
        return
    w = min(1240, avail.width() - 24)
    h = min(780, avail.height() - 24)
    if keep_saved and 400 < window.width() <= avail.width() and window.height() <= avail.height():
        return
    window.resize(max(w, 320), max(h, 240))

"""Starting the desktop app: ``siamgui`` / ``siamgui gui [A [B]] [--camera S] [--model M] [--screenshot OUT]``.

The window is shown first; torch is imported and the model loaded in a
background thread. With ``--screenshot`` (or ``--train``) the run is scripted
(:mod:`siamgui.gui.scripted`): it saves a picture of the window once it shows
what was asked, and exits.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from siamgui.gui.scripted import ScriptedRun, err, input_problem

log = logging.getLogger("siamgui")


def _install_inference_guard() -> None:
    """Called on the GUI thread once a model exists (torch is imported by then)."""
    from siamgui.core.verifier import forbid_inference_on_thread

    forbid_inference_on_thread()


def _make_app():
    logging.basicConfig(level=logging.INFO if os.environ.get("SIAMGUI_DEBUG") else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("siamgui")
    app.setApplicationName("siamgui")
    _route_qt_messages()
    return app


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
    """The desktop app for the CLI's ``gui`` command; returns the exit code."""
    images = list(getattr(args, "images", None) or [])
    screenshot = getattr(args, "screenshot", None)
    train_dir = getattr(args, "train", None)
    camera = getattr(args, "camera", None)
    model = getattr(args, "model", None)
    scripted = bool(screenshot or train_dir)
    if len(images) > 2:
        err("give at most two images (for slots A and B)")
        return 2
    problem = input_problem(images, screenshot, train_dir) if scripted else None
    if problem:
        err(problem)
        return 2

    app = _make_app()
    from PySide6.QtCore import QTimer

    from siamgui.gui.dialogs import ExceptionBridge
    from siamgui.gui.main_window import MainWindow

    # Interactive runs show the window before the torch-heavy tabs exist (built a moment later).
    window = MainWindow(camera_source=camera, defer_tabs=not scripted)
    script = (ScriptedRun(app, window, screenshot=screenshot, train_dir=train_dir, epochs=getattr(args, "epochs", None),
                          images=images, camera=camera) if scripted else None)
    bridge = ExceptionBridge(lambda: window, scripted=scripted,
                             on_scripted_error=lambda summary: script.finish(1, f"unexpected error: {summary}"))
    bridge.install()
    window.state.model_changed.connect(_install_inference_guard)
    gui_ident = threading.get_ident()

    restored = False if scripted else window.restore_geometry()
    _fit_to_screen(window, app, keep_saved=restored)
    if images:
        window.compare_tab.load_images(images)
    if script is not None and not script.connect():
        window.close_now()
        bridge.uninstall()
        return 2
    window.show()

    def after_show():
        window.start_initial_model(model)
        if camera is not None:
            window.compare_tab.start_camera(camera)
        if script is not None:
            script.begin(model)

    QTimer.singleShot(0, after_show)
    try:
        code = app.exec()
    finally:
        window.shutdown()
        bridge.uninstall()
        verifier_mod = sys.modules.get("siamgui.core.verifier")
        if verifier_mod is not None:
            verifier_mod.allow_inference_on_thread(gui_ident)
    return int(script.code if script is not None and script.code is not None else code)


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

"""Scripted runs of the window: ``siamgui gui --screenshot OUT`` and ``siamgui gui --train DIR``.

A scripted run waits until the verdict, the first camera frame, the loaded model
or the Train tab's result is on screen, saves a picture of the window (with
``--screenshot``) and quits the app: exit code 0 when that worked, 1 when the
comparison, camera, model or training failed. Its input is checked before any
window opens (exit code 2).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Longest a scripted run waits for a comparison, camera frame or model (not for training).
SCRIPT_TIMEOUT_S = float(os.environ.get("SIAMGUI_SCRIPT_TIMEOUT", "300"))


def err(msg: str) -> None:
    print(f"siamgui: error: {msg}", file=sys.stderr)


def input_problem(images: list, screenshot, train_dir) -> str | None:
    """Why a scripted run cannot work with these arguments; None when it can."""
    if screenshot:
        out = Path(screenshot)
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
            return "--screenshot must end in .png, .jpg or .bmp"
        if not out.parent.is_dir():
            return f"the folder of --screenshot does not exist: {out.parent}"
    if train_dir and not Path(train_dir).is_dir():
        return f"--train needs a folder: {train_dir}"
    from siamgui.core.errors import ImageError
    from siamgui.core.images import load_image

    for p in images:
        try:
            load_image(p)
        except ImageError as exc:
            return str(exc)
    return None


class ScriptedRun:
    """Drives one scripted run of ``window`` inside ``app``; ``code`` is its exit code once finished."""

    def __init__(self, app, window, *, screenshot=None, train_dir=None, epochs=None, images=(), camera=None):
        self.app, self.window = app, window
        self.screenshot, self.train_dir, self.epochs = screenshot, train_dir, epochs
        self.images, self.camera = list(images), camera
        self.code: int | None = None

    def finish(self, code: int, reason: str = "") -> None:
        """End the run (the first call wins): say why, save the screenshot, quit with ``code``."""
        from PySide6.QtCore import QTimer

        if self.code is not None:
            return
        self.code = code
        if reason:
            if code:
                err(reason)
            else:
                print(f"siamgui: {reason}", file=sys.stderr)
        QTimer.singleShot(300, self._save_and_quit)  # let the last result paint

    def _save_and_quit(self) -> None:
        final = self.code
        if self.screenshot:
            if self.window.grab().save(str(self.screenshot)):
                print(f"siamgui: saved {self.screenshot}", file=sys.stderr)
            else:
                err(f"could not save the screenshot to {self.screenshot}")
                final = final or 1
                self.code = final
        self.window.close_now()
        self.app.exit(final)

    def connect(self) -> bool:
        """Listen for what ends the run (before the window shows); False when it cannot run at all."""
        from PySide6.QtCore import QTimer

        window, state, cmp = self.window, self.window.state, self.window.compare_tab
        self.app.setQuitOnLastWindowClosed(False)
        if self.train_dir:
            if window.train_tab is None:
                err("this build has no Train tab")
                return False
            window.train_tab.scripted_finished.connect(lambda ok: self.finish(0 if ok else 1))
            return True
        if len(self.images) == 2:
            cmp.comparison_finished.connect(lambda ok: self.finish(0 if ok else 1,
                                                                   "" if ok else "the comparison failed"))
            state.model_failed.connect(lambda m: self.finish(1, f"model not loaded: {m}")
                                       if state.verifier is None else None)
        elif self.camera is not None:
            cmp.camera_view.frame_ready.connect(lambda _f: self.finish(0))
            cmp.camera_view.stopped.connect(lambda m: self.finish(1, m) if m else None)
        else:
            state.model_changed.connect(lambda _v: self.finish(0))
            state.model_failed.connect(lambda m: self.finish(1, f"model not loaded: {m}"))
        QTimer.singleShot(int(SCRIPT_TIMEOUT_S * 1000),
                          lambda: self.finish(1, "timed out waiting for the window to be ready"))
        return True

    def begin(self, model: str | None) -> None:
        """After the window shows and the model load started: end at once without a model, or start training."""
        from siamgui.core.resources import has_bundled_model

        if not model and not has_bundled_model() and not self.train_dir:
            if len(self.images) == 2:
                self.finish(1, "no model: give --model (this build has no bundled model)")
            elif self.camera is None:
                self.finish(0)
        if self.train_dir:
            self.window.select_tab(self.window.train_tab)
            self.window.train_tab.start_scripted(str(self.train_dir), self.epochs)

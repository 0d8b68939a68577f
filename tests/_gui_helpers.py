"""Helpers for the GUI and capture tests: generated videos and faces, thread-leak checks."""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest


def make_video(path: Path, frames: int = 12, size: tuple[int, int] = (64, 48), fps: float = 25.0) -> Path:
    """An MJPG .avi whose frame i is a gradient with a moving bright square (a fake webcam)."""
    import cv2

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(frames):
        img = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 40)], -1).astype(np.uint8)
        x = (i * 3) % (w - 10)
        img[10:20, x:x + 10] = 255
        writer.write(img)
    writer.release()
    return path


def draw_face(size: int = 200, skin=(150, 180, 215), eye: float = 0.07, brow: float = 0.08, nose: float = 0.08,
              mouth: float = 0.10) -> np.ndarray:
    """A blurred cartoon face (BGR) that OpenCV's frontal-face Haar cascade detects; ``skin`` (BGR)
    and the eye width, brow height, nose length and mouth width (fractions of ``size``) vary it."""
    import cv2

    img = np.full((size, size, 3), 235, np.uint8)
    c = size // 2
    cv2.ellipse(img, (c, c + 5), (int(size * 0.32), int(size * 0.42)), 0, 0, 360, tuple(skin), -1)
    for dx in (-1, 1):
        ex, ey = c + dx * int(size * 0.13), c - int(size * 0.08)
        cv2.ellipse(img, (ex, ey), (int(size * eye), int(size * 0.035)), 0, 0, 360, (60, 60, 60), -1)
        cv2.line(img, (ex - int(size * 0.08), ey - int(size * brow)), (ex + int(size * 0.08), ey - int(size * brow)),
                 (50, 50, 50), max(2, size // 40))
    cv2.ellipse(img, (c, c + int(size * 0.07)), (int(size * 0.03), int(size * nose)), 0, 0, 360, (120, 150, 190), -1)
    cv2.ellipse(img, (c, c + int(size * 0.22)), (int(size * mouth), int(size * 0.03)), 0, 0, 360, (70, 70, 140), -1)
    return cv2.GaussianBlur(img, (0, 0), size / 60)


#: Drawn "people" that the bundled face model tells apart (pairwise distances 0.28-0.47, a face
#: against itself re-detected on another canvas under 0.1): keyword arguments of :func:`draw_face`.
FACE_VARIANTS = (
    {},
    {"skin": (90, 120, 160), "eye": 0.05, "mouth": 0.14, "brow": 0.11},
    {"skin": (180, 200, 230), "eye": 0.09, "mouth": 0.06, "nose": 0.11},
    {"skin": (60, 80, 110), "brow": 0.05, "mouth": 0.12},
)


def face_canvas(size: tuple[int, int], faces) -> np.ndarray:
    """A light canvas (w, h) with drawn faces pasted: ``faces`` is ``(variant, x, y, side)`` each (BGR)."""
    w, h = size
    img = np.full((h, w, 3), 235, np.uint8)
    for variant, x, y, side in faces:
        img[y:y + side, x:x + side] = draw_face(side, **FACE_VARIANTS[variant])
    return img


def two_faces() -> np.ndarray:
    """A large face and one of under half its area (so the large one is the main face)."""
    img = np.full((260, 460, 3), 235, np.uint8)
    img[20:220, 10:210] = draw_face(200)
    img[80:200, 280:400] = draw_face(120)
    return img


def no_face(size: int = 200) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return np.stack([xx * 255 // size, yy * 255 // size, (xx + yy) * 255 // (2 * size)], -1).astype(np.uint8)


def shown_compare_tab(qtbot, state, width: int):
    """A CompareTab on ``state``, shown at ``width`` x 600 (the caller shuts it down)."""
    from siamgui.gui.compare_tab import CompareTab

    t = CompareTab(state)
    qtbot.addWidget(t)
    t.resize(width, 600)
    t.show()
    return t


def run_in_thread(fn, *args):
    """Run fn off the (inference-guarded) main thread and return its result."""
    out = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001
            out["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join(60)
    if "error" in out:
        raise out["error"]
    return out["value"]


def loaded_state(qtbot, model, timeout: int = 60000):
    """An AppState on the CPU with ``model`` loaded (the load runs in its worker; waited for)."""
    from siamgui.gui.state import AppState

    s = AppState(device="cpu")
    with qtbot.waitSignal(s.model_changed, timeout=timeout):
        s.load_model(str(model))
    return s


@pytest.fixture
def no_thread_leaks(monkeypatch):
    """Fail the test if it leaves a QThread (any started during the test) or a Python thread running."""
    from PySide6.QtCore import QThread
    from PySide6.QtWidgets import QApplication

    started: list[weakref.ref] = []
    original = QThread.start

    def recording_start(self, *args, **kwargs):
        started.append(weakref.ref(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", recording_start)
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        running = []
        for ref in started:
            t = ref()
            try:
                if t is not None and t.isRunning():
                    running.append(type(t).__name__)
            except RuntimeError:  # the C++ object is gone: it had finished
                pass
        py = [t.name for t in threading.enumerate()
              if t not in before and t.is_alive() and not isinstance(t, threading._DummyThread)]
        if not running and not py:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"threads left running after the test: QThreads {running}, Python threads {py}")
        app = QApplication.instance()
        if app is not None:
            app.processEvents()
        time.sleep(0.02)


@pytest.fixture
def inference_guard():
    """The GUI thread (the test's main thread) must never run a forward pass."""
    from siamgui.core.verifier import allow_inference_on_thread, forbid_inference_on_thread

    forbid_inference_on_thread()
    yield
    allow_inference_on_thread()

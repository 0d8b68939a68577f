"""A live camera preview widget, reusable by any tab.

:class:`CameraView` shows frames read by a worker thread from a
``siamgui.capture`` source (device index, video file or URL) at the source's
frame rate. The reader (:func:`read_frames`, run by a
:class:`~siamgui.gui.workers.Worker`) only yields frames, and drops frames while
the GUI is still busy with the previous one, so a slow GUI never builds up a queue.

API (all on the GUI thread):

- ``start(source)``: ``source`` is an int, a str (index, file, URL) or a
  callable returning a :class:`~siamgui.capture.camera.CameraSource`.
- ``stop()``; ``shutdown()`` also waits for the thread (call it on close).
- ``running`` / ``source``; ``current_frame()`` -> the last BGR frame (copy) or None.
- ``set_detect_faces(bool)``: detect faces (MTCNN) in the worker and draw boxes;
  ``last_boxes`` holds the boxes of the current frame.
- ``set_overlays(list[Overlay])``: extra boxes/labels drawn on every frame
  (e.g. identification results) until replaced.
- Signals: ``started(str description)``, ``frame_ready(np.ndarray BGR)`` per
  shown frame, ``stopped(str message)`` (empty when stopped on request,
  otherwise why: open failure, file ended, camera lost).

The preview pauses while the widget is hidden (tab changed, window minimised)
and resumes when shown again, unless ``pause_when_hidden=False``.
"""

from __future__ import annotations

import functools
import threading
import time
from functools import partial

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from siamgui.gui.image_view import SKY_BLUE, ImageView, Overlay, array_to_qimage
from siamgui.gui.workers import Worker, WorkerGroup


class Feed:
    """Shared by a preview and its reader: draw face boxes or not, and whether the GUI still shows a frame."""

    def __init__(self, detect_faces: bool = False):
        self.detect_faces = detect_faces
        self.showing = threading.Event()


def read_frames(task, source, feed: Feed):
    """Runs in the reader's worker: yields ``("opened", description, fps, is_file)``, then
    ``("frame", bgr, boxes)`` whenever the GUI has shown the previous frame (others are
    dropped, so a slow GUI never builds up a queue); returns why the source ended."""
    from siamgui.capture.camera import open_source

    src = source() if callable(source) else open_source(source)
    try:
        yield ("opened", src.description, float(src.fps), bool(src.is_file))
        period = 1.0 / src.fps if src.is_file and src.fps > 0 else 0.0
        due = time.monotonic()
        while not task.cancelled():
            frame = src.read()
            if frame is None:
                return src.end_message()
            if not feed.showing.is_set():
                boxes = preview_faces(frame) if feed.detect_faces else []
                feed.showing.set()
                yield ("frame", frame, boxes)
            if period:
                due += period
                delay = due - time.monotonic()
                if delay <= 0:
                    due = time.monotonic()
                elif task.sleep(delay):
                    break
        return ""
    finally:
        src.release()


@functools.lru_cache(maxsize=1)
def _bundled_face_config() -> dict:
    from siamgui.core.modelfile import read_metadata
    from siamgui.core.resources import bundled_model_path

    return dict(read_metadata(bundled_model_path())["preprocess"]["face"])


def preview_faces(frame: np.ndarray, face_cfg: dict | None = None) -> list:
    """Face boxes (x, y, w, h) in a BGR frame from the face detector of ``face_cfg`` (a model
    file's ``preprocess.face``; default the bundled face model's), so the box shown is the one
    a capture will use; OpenCV's Haar cascade when that detector cannot run."""
    try:
        import cv2

        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    except Exception:  # noqa: BLE001 - a preview without boxes is still a preview
        return []
    try:
        from siamgui.core.face.alignment import face_boxes

        return face_boxes(rgb, face_cfg if face_cfg is not None else _bundled_face_config())
    except Exception:  # noqa: BLE001 - e.g. the detector file is missing: fall back to Haar
        try:
            from siamgui.core.face.detect import find_faces

            return find_faces(rgb)
        except Exception:  # noqa: BLE001
            return []


class CameraView(QWidget):
    """Live preview of a camera source (see the module docstring for the API)."""

    started = Signal(str)
    frame_ready = Signal(object)
    stopped = Signal(str)

    def __init__(self, parent=None, *, pause_when_hidden: bool = True):
        super().__init__(parent)
        self.pause_when_hidden = pause_when_hidden
        self.view = ImageView(self, placeholder="Camera off", min_side=160)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.status_label)
        self._worker: Worker | None = None
        self._feed = Feed()
        self._readers = WorkerGroup(self)
        self._source = None
        self._paused = False
        self._frame: np.ndarray | None = None
        self._detect_faces = False
        self._overlays: list[Overlay] = []
        self.last_boxes: list = []
        self.description = ""
        self.fps = 0.0

    # -- control -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def source(self):
        return self._source

    def start(self, source) -> None:
        """Start (or restart) the preview on ``source``."""
        self._source = source
        self._paused = False
        self._launch()

    def stop(self) -> None:
        self._source = None
        self._paused = False
        self._halt()
        self.view.set_placeholder("Camera off")
        self.view.set_image(None)
        self._frame = None

    def shutdown(self, wait_ms: int = 5000) -> bool:
        """Stop and wait for the reader thread (the camera is released by then)."""
        self.stop()
        return self._readers.wait(wait_ms)

    def current_frame(self) -> np.ndarray | None:
        return None if self._frame is None else self._frame.copy()

    def set_detect_faces(self, on: bool) -> None:
        self._detect_faces = bool(on)
        self._feed.detect_faces = self._detect_faces
        if not on:
            self.last_boxes = []
            self._redraw_overlays()

    def set_overlays(self, overlays: list[Overlay]) -> None:
        self._overlays = list(overlays)
        self._redraw_overlays()

    # -- internals ---------------------------------------------------------------------
    def _launch(self) -> None:
        self._halt()
        self._frame = None
        self.view.set_image(None)
        self.view.set_placeholder("Opening camera…")
        self.status_label.setText("")
        self._feed = Feed(self._detect_faces)
        w = Worker(read_frames, self._source, self._feed, parent=self, name="camera", pass_task=True)
        w.yielded.connect(partial(self._on_reader_item, w))
        w.returned.connect(partial(self._on_reader_ended, w))
        w.errored.connect(partial(self._on_reader_failed, w))
        self._worker = w
        self._readers.start(w)

    def _halt(self) -> None:
        if self._worker is not None:
            self._worker.abort()
            self._worker = None  # anything still queued from it is now stale

    def _on_reader_item(self, w: Worker, item: tuple) -> None:
        if w is not self._worker:
            return
        if item[0] == "opened":
            _, description, fps, _is_file = item
            self.description, self.fps = description, fps
            self.status_label.setText(f"{description} · {fps:.0f} fps")
            self.started.emit(description)
            return
        _, frame, boxes = item
        self._frame = frame
        self.last_boxes = list(boxes)
        self.view.set_image(array_to_qimage(frame, bgr=True))
        self._redraw_overlays()
        self._feed.showing.clear()  # the reader may send the next frame
        self.frame_ready.emit(frame)

    def _on_reader_failed(self, w: Worker, message: str, _details: str) -> None:
        self._on_reader_ended(w, message)

    def _on_reader_ended(self, w: Worker, message: str) -> None:
        if w is not self._worker:
            return
        self._worker = None
        self._source = None if message else self._source
        if message:
            self.view.set_image(None)
            self._frame = None
            self.view.set_placeholder(message)
            self.status_label.setText(message)
        self.stopped.emit(message)

    def _redraw_overlays(self) -> None:
        faces = [Overlay(tuple(b), SKY_BLUE, "", 3.0) for b in self.last_boxes] if self._detect_faces else []
        self.view.set_overlays(faces + self._overlays)

    # -- pause while hidden ----------------------------------------------------------------
    def hideEvent(self, event):  # noqa: N802
        if self.pause_when_hidden and self._worker is not None:
            self._halt()
            self._paused = True
            self.status_label.setText("Paused while hidden")
        super().hideEvent(event)

    def showEvent(self, event):  # noqa: N802
        super().showEvent(event)
        if self._paused and self._source is not None:
            self._paused = False
            self._launch()

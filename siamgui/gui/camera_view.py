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
- ``set_detect_faces(bool)``: detect faces (the bundled face model's detector) in the worker
  and draw boxes; ``last_boxes`` holds the boxes of the current frame. The main face's
  quality and a liveness hint (at most ~3 per second) are computed there too, shown under the
  preview and kept in ``last_judgement``.
- ``set_judge_faces(bool)``: judge the main face in the reader or not (default on).
- ``best_recent_frame()`` -> (BGR frame, FaceQuality or None): the best shown frame of the
  last second (core ``RecentFrames``), or the current one when none had a face.
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

from siamgui.core.face.live import PreviewJudge
from siamgui.core.face.quality import RecentFrames
from siamgui.gui.image_view import SKY_BLUE, ImageView, Overlay, array_to_qimage
from siamgui.gui.workers import Worker, WorkerGroup


class Feed:
    """Shared by a preview and its reader: draw face boxes or not, judge the main face or not
    (``judge``: a :class:`~siamgui.core.face.live.PreviewJudge`, used only by the reader's thread),
    and whether the GUI still shows a frame."""

    def __init__(self, detect_faces: bool = False, judge=None):
        self.detect_faces = detect_faces
        self.judge = judge
        self.showing = threading.Event()


def read_frames(task, source, feed: Feed):
    """Runs in the reader's worker: yields ``("opened", description, fps, is_file)``, then
    ``("frame", bgr, boxes, judgement)`` whenever the GUI has shown the previous frame (others are
    dropped, so a slow GUI never builds up a queue); ``judgement`` is the main face's quality and
    liveness hint (:class:`~siamgui.core.face.live.FrameJudgement`) when ``feed.judge`` is set,
    else None. Returns why the source ended."""
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
                judgement = judge_main_face(feed.judge, frame, boxes) if feed.detect_faces else None
                feed.showing.set()
                yield ("frame", frame, boxes, judgement)
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
    from siamgui.core.modelfile import bundled_face_config

    return bundled_face_config()


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


def judge_main_face(judge, frame: np.ndarray, boxes: list):
    """The judgement of the main face among ``boxes`` (the one a capture uses); None without a judge."""
    if judge is None:
        return None
    if not boxes:
        return judge.judge(frame, None)
    from siamgui.core.face.detect import main_face

    k = main_face(boxes, range(len(boxes)), (frame.shape[1], frame.shape[0]))
    return judge.judge(frame, boxes[k])


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
        self.judge_label = QLabel("")
        self.judge_label.setWordWrap(True)
        self.judge_label.setToolTip("The main face's quality, and a liveness hint from Silent-Face-Anti-Spoofing's "
                                    "MiniFASNet networks (a hint, not a security check; docs/quality.md)")
        lay.addWidget(self.view, 1)
        lay.addWidget(self.status_label)
        lay.addWidget(self.judge_label)
        self._worker: Worker | None = None
        self._feed = Feed()
        self._readers = WorkerGroup(self)
        self._source = None
        self._paused = False
        self._frame: np.ndarray | None = None
        self._detect_faces = False
        self._judge_faces = True
        self._overlays: list[Overlay] = []
        self.last_boxes: list = []
        self.last_judgement = None  # FrameJudgement of the current frame (face detection on)
        self.recent = RecentFrames(1.0)
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
        self.recent = RecentFrames(1.0)

    def shutdown(self, wait_ms: int = 5000) -> bool:
        """Stop and wait for the reader thread (the camera is released by then)."""
        self.stop()
        return self._readers.wait(wait_ms)

    def current_frame(self) -> np.ndarray | None:
        return None if self._frame is None else self._frame.copy()

    def best_recent_frame(self) -> tuple[np.ndarray | None, object]:
        """(frame, quality): the best shown frame of the last second by face quality (good before
        poor, then sharper), else the current frame with quality None."""
        best = self.recent.best(time.monotonic())
        if best is None:
            return self.current_frame(), None
        frame, quality = best
        return frame.copy(), quality

    def set_detect_faces(self, on: bool) -> None:
        self._detect_faces = bool(on)
        self._feed.detect_faces = self._detect_faces
        if not on:
            self.last_boxes = []
            self.last_judgement = None
            self.judge_label.setText("")
            self._redraw_overlays()

    def set_judge_faces(self, on: bool) -> None:
        """Judge the main face (quality, liveness hint) in the reader, or not (e.g. while another
        worker judges the same frames: live verification)."""
        self._judge_faces = bool(on)
        self._feed.judge = PreviewJudge() if on else None
        if not on:
            self.last_judgement = None
            self.judge_label.setText("")

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
        self.judge_label.setText("")
        self.recent = RecentFrames(1.0)
        self._feed = Feed(self._detect_faces, PreviewJudge() if self._judge_faces else None)
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
        _, frame, boxes, judgement = item
        self._frame = frame
        self.last_boxes = list(boxes)
        self.last_judgement = judgement
        if judgement is not None:
            self.judge_label.setText(judgement.text())
            self.recent.add(time.monotonic(), frame, judgement.quality if judgement.box is not None else None)
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
        j = self.last_judgement
        judged = tuple(j.box) if j is not None and j.box is not None and j.quality is not None else None

        def label(box) -> str:  # the main face's box says its quality
            return j.quality.verdict if judged is not None and tuple(box) == judged else ""

        faces = [Overlay(tuple(b), SKY_BLUE, label(b), 3.0) for b in self.last_boxes] if self._detect_faces else []
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

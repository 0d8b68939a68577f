"""Camera sources: one interface for webcams, video files and stream URLs.

A source is named by a device index (``0``, ``"1"``), a video file path or a
URL (``rtsp://...``, ``http://...``), so tests and demos use a video file
through exactly the code path of a webcam. :func:`open_source` returns a
:class:`CameraSource`; :meth:`CameraSource.read` gives BGR ``uint8`` frames
(OpenCV's order) and ``None`` once the stream has ended or was lost.

No Qt here: the GUI's preview worker (``siamgui.gui.camera_view``) reads a
source in its own thread.
"""

from __future__ import annotations

import abc
import math
import os
import threading
from pathlib import Path

import numpy as np

from siamgui.core.errors import SiamguiError

#: Frame rate assumed when a source does not report a usable one.
DEFAULT_FPS = 30.0
#: Largest device number tried (OpenCV's backends use small numbers).
MAX_CAMERA_INDEX = 9999


class CameraError(SiamguiError):
    """A camera source cannot be opened or used."""


def parse_source(source: str | int) -> int | str:
    """Normalise a source: a device index (int), a URL or an existing file path (str).

    Raises :class:`CameraError` for anything that cannot be one of these.
    """
    if isinstance(source, bool) or not isinstance(source, (int, str, os.PathLike)):
        raise CameraError(f"A camera source is a device number, a video file or a URL, not {source!r}.")
    if isinstance(source, int):
        if source < 0:
            raise CameraError(f"Camera numbers start at 0, got {source}.")
        if source > MAX_CAMERA_INDEX:  # OpenCV raises its own error for numbers beyond a C int
            raise CameraError(f"There is no camera number {source}.")
        return source
    text = os.fspath(source).strip()
    if not text:
        raise CameraError("No camera source was given.")
    if text.isascii() and text.isdigit():  # not "²" or other Unicode digits int() refuses
        return parse_source(int(text))
    if "://" in text:
        return text
    path = Path(text).expanduser()
    if path.is_dir():
        raise CameraError(f"{text} is a folder, not a video file.")
    if not path.is_file():
        raise CameraError(f"{text!r} is not a camera number, an existing video file or a URL.")
    return str(path)


def describe_source(source: int | str) -> str:
    if isinstance(source, int):
        return f"Camera {source}"
    if "://" in source:
        return source
    return Path(source).name


class CameraSource(abc.ABC):
    """A stream of BGR frames. Use from one thread at a time; release when done."""

    #: A readable name ("Camera 0", "clip.avi", the URL).
    description: str = "camera"
    #: True for a video file: it ends, and a reader should pace it at :attr:`fps`.
    is_file: bool = False

    @property
    @abc.abstractmethod
    def fps(self) -> float:
        """Frames per second (the source's own, or :data:`DEFAULT_FPS` when unknown)."""

    @abc.abstractmethod
    def read(self) -> np.ndarray | None:
        """The next frame, (H, W, 3) BGR uint8, or None at the end of the stream or when it was lost."""

    @abc.abstractmethod
    def release(self) -> None:
        """Free the device or file (idempotent)."""

    def end_message(self) -> str:
        """Why :meth:`read` returned None, for the user."""
        if self.is_file:
            return f"The video {self.description} ended."
        return f"{self.description} stopped delivering frames (disconnected or in use by another program)."

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class OpenCVSource(CameraSource):
    """A source read with ``cv2.VideoCapture``."""

    def __init__(self, capture, target: int | str):
        self._cap = capture
        self._lock = threading.Lock()
        self.target = target
        self.description = describe_source(target)
        self.is_file = isinstance(target, str) and "://" not in target
        fps = float(capture.get(_cv2().CAP_PROP_FPS) or 0.0)
        self._fps = fps if math.isfinite(fps) and 0.5 <= fps <= 240.0 else DEFAULT_FPS
        self.frames_read = 0

    @property
    def fps(self) -> float:
        return self._fps

    def read(self) -> np.ndarray | None:
        with self._lock:
            if self._cap is None:
                return None
            try:
                ok, frame = self._cap.read()
            except Exception:  # noqa: BLE001 - a backend error means the stream is gone
                return None
        if not ok or frame is None or frame.size == 0:
            return None
        if frame.ndim == 2:
            frame = _cv2().cvtColor(frame, _cv2().COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = _cv2().cvtColor(frame, _cv2().COLOR_BGRA2BGR)
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        self.frames_read += 1
        return frame

    def release(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None


def _cv2():
    import cv2

    return cv2


def open_source(source: str | int) -> CameraSource:
    """Open a device index, digit string, video file path or URL; raise :class:`CameraError` if it fails."""
    target = parse_source(source)
    cv2 = _cv2()
    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        if isinstance(target, int):
            raise CameraError(f"Camera {target} could not be opened (no camera with that number, "
                              "or another program is using it).")
        if "://" in target:
            raise CameraError(f"Could not connect to the stream {target}.")
        raise CameraError(f"{Path(target).name} could not be opened as a video.")
    return OpenCVSource(cap, target)


def list_cameras(max_index: int = 5) -> list[int]:
    """Device indices 0 .. max_index - 1 that open (slow-ish with real cameras: run it off the GUI thread)."""
    cv2 = _cv2()
    found = []
    for i in range(max(0, int(max_index))):
        cap = cv2.VideoCapture(i)
        try:
            if cap.isOpened():
                found.append(i)
        finally:
            cap.release()
    return found

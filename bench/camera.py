"""Camera preview FPS: capture -> face detection -> display conversion, on a generated video.

Ours: ``siamgui.capture.camera.open_source(video).read()``, ``siamgui.core.face.find_faces``
and a ``QImage`` of the frame (what the preview shows). Baseline, same frames:
``cv2.VideoCapture.read``, the tutorial Haar call on the full grey frame
(``minSize=(30, 30)``) and the same ``QImage`` conversion.
"""

from __future__ import annotations

import importlib.util
import time

from bench.common import summary


def _to_qimage(rgb):
    from PySide6.QtGui import QImage

    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _read_frame(source):
    """A frame as an RGB uint8 array, or None at the end (accepts the usual return shapes)."""
    import numpy as np

    got = source.read()
    if isinstance(got, tuple):
        ok, frame = got[0], got[1]
        if not ok:
            return None
    else:
        frame = got
    if frame is None:
        return None
    frame = getattr(frame, "rgb", frame)  # a Frame object with .rgb, or the array itself
    return np.ascontiguousarray(frame)


def _ours(video: str, n: int) -> float:
    from siamgui.capture.camera import open_source
    from siamgui.core.face import find_faces

    source = open_source(video)
    try:
        frames = 0
        t0 = time.perf_counter()
        while frames < n:
            rgb = _read_frame(source)
            if rgb is None:
                break
            find_faces(rgb)
            _to_qimage(rgb)
            frames += 1
        return frames / (time.perf_counter() - t0)
    finally:
        close = getattr(source, "close", None) or getattr(source, "release", None)
        if close:
            close()


def _baseline(video: str, n: int) -> float:
    import cv2

    from bench.baselines import _face_cascade

    cap = cv2.VideoCapture(video)
    frames = 0
    t0 = time.perf_counter()
    while frames < n:
        ok, bgr = cap.read()
        if not ok:
            break
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        _face_cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        _to_qimage(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        frames += 1
    cap.release()
    return frames / (time.perf_counter() - t0)


def measure_camera(video: str | None, rounds: int = 3, frames: int = 40) -> tuple[dict, list[str]]:
    keys = ("camera_fps", "baseline_camera_fps", "camera_speedup")
    out = {}
    for k in keys:
        out.update(summary(k, []))
    if video is None:
        return out, ["camera not measured: OpenCV could not write the MJPG test video."]
    if importlib.util.find_spec("siamgui.capture") is None or importlib.util.find_spec("siamgui.capture.camera") is None:
        return out, ["camera not measured: siamgui.capture.camera does not exist yet."]
    _ours(video, 3)
    _baseline(video, 3)
    fps, base, ratio = [], [], []
    for _ in range(rounds):
        fps.append(_ours(video, frames))
        base.append(_baseline(video, frames))
        ratio.append(fps[-1] / base[-1])
    out.update(summary("camera_fps", fps, 1))
    out.update(summary("baseline_camera_fps", base, 1))
    out.update(summary("camera_speedup", ratio, 2))
    return out, []

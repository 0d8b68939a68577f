"""Camera preview FPS: capture -> face detection -> display conversion, on a generated video.

Ours (``camera_fps``): what the preview worker does per frame:
``siamgui.capture.camera.open_source(video).read()``, the preview's face boxes
(``camera_view.preview_faces``: the bundled face model's own detector) and
``array_to_qimage``. Baseline, same frames: ``cv2.VideoCapture.read``, the tutorial Haar
call on the full grey frame (``minSize=(30, 30)``) and the same ``QImage`` conversion. The
detectors differ: the ratio says what our preview costs against the usual tutorial preview,
not a same-work speed-up.
"""

from __future__ import annotations

import importlib.util
import time

from bench.common import summary


def _to_qimage(rgb):
    from PySide6.QtGui import QImage

    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _preview_faces():
    """The GUI preview's face-box function."""
    from siamgui.gui import camera_view

    return camera_view.preview_faces


def _ours(video: str, n: int, faces) -> float:
    """The preview's own path: CameraSource.read (BGR), ``faces`` (BGR -> boxes), array_to_qimage."""
    from siamgui.capture.camera import open_source
    from siamgui.gui.image_view import array_to_qimage

    source = open_source(video)
    try:
        frames = 0
        t0 = time.perf_counter()
        while frames < n:
            bgr = source.read()
            if bgr is None:
                break
            faces(bgr)
            array_to_qimage(bgr, bgr=True)
            frames += 1
        return frames / (time.perf_counter() - t0)
    finally:
        source.release()


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
    for mod in ("siamgui.capture.camera", "siamgui.gui.camera_view", "siamgui.gui.image_view"):
        if importlib.util.find_spec(mod) is None:
            return out, [f"camera not measured: {mod} does not exist yet."]
    preview = _preview_faces()
    notes = []
    _ours(video, 3, preview)
    _baseline(video, 3)
    fps, base, ratio = [], [], []
    for _ in range(rounds):
        fps.append(_ours(video, frames, preview))
        base.append(_baseline(video, frames))
        ratio.append(fps[-1] / base[-1])
    out.update(summary("camera_fps", fps, 1))
    out.update(summary("baseline_camera_fps", base, 1))
    out.update(summary("camera_speedup", ratio, 2))
    return out, notes

"""Camera faults at the core level: no camera, nonsense sources, a video that ends, a camera lost mid-stream.

(What the app shows for these is tested with the GUI; here the contract it relies
on: ``open_source`` raises CameraError with one readable sentence, ``read``
returns None when the stream ends or is lost, and nothing else breaks.)
"""

from __future__ import annotations

import numpy as np
import pytest

from siamgui.capture import camera
from siamgui.capture.camera import CameraError, OpenCVSource, open_source
from siamgui.core.errors import SiamguiError

pytestmark = pytest.mark.timeout(60)


def _write_video(path, frames=5, size=(32, 24)):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 30 + 40 * i, np.uint8))
    writer.release()
    return path


class _FakeCapture:
    """A cv2.VideoCapture stand-in: delivers ``frames`` then fails the way a lost camera does."""

    def __init__(self, frames, failure="false"):
        self.frames = list(frames)
        self.failure = failure
        self.released = 0

    def isOpened(self):
        return True

    def get(self, prop):
        return float("nan")  # a backend that reports no usable frame rate

    def read(self):
        if self.frames:
            return True, self.frames.pop(0)
        if self.failure == "raise":
            raise RuntimeError("VIDIOC_DQBUF: No such device")
        if self.failure == "empty":
            return True, np.zeros((0, 0, 3), np.uint8)
        return False, None

    def release(self):
        self.released += 1


def _closed_capture(*_a, **_k):
    class Closed(_FakeCapture):
        def isOpened(self):
            return False

    return Closed([])


def test_no_camera(monkeypatch):
    """A machine without cameras: VideoCapture(0) does not open."""
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", _closed_capture)
    with pytest.raises(CameraError) as info:
        open_source(0)
    assert "Camera 0 could not be opened" in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, SiamguiError)  # the app's one error type: shown as a message
    assert camera.list_cameras(3) == []


def test_absent_device_number_on_this_machine():
    """The real backend with a device number no machine here has."""
    with pytest.raises(CameraError, match="could not be opened"):
        open_source(63)


@pytest.mark.parametrize("source", ["banana", "", "   ", "-1", -1, True, None, 3.5, "99999999999999999999", 2**40,
                                    "²", "no/such/clip.avi", "FOLDER", "TEXT", "rtsp://127.0.0.1:1/none"],
                         ids=["word", "empty", "blank", "negative-text", "negative", "bool", "none", "float",
                              "huge-number-text", "huge-number", "superscript-digit", "missing-file", "folder",
                              "text-file-as-video", "unreachable-url"])
def test_nonsense_source(source, tmp_path):
    if source == "FOLDER":
        source = str(tmp_path)
    elif source == "TEXT":
        source = tmp_path / "notes.avi"
        source.write_text("this is not a video")
        source = str(source)
    with pytest.raises(CameraError) as info:
        open_source(source)
    msg = str(info.value)
    assert msg and "\n" not in msg and len(msg) < 300, msg


def test_video_file_ends(tmp_path):
    src = open_source(str(_write_video(tmp_path / "clip.avi", frames=5)))
    with src:
        assert src.is_file and src.fps == pytest.approx(10.0)
        frames = []
        while (frame := src.read()) is not None:
            frames.append(frame)
        assert len(frames) == 5 and all(f.shape == (24, 32, 3) and f.dtype == np.uint8 for f in frames)
        assert src.read() is None and src.read() is None  # stays ended, no exception
        assert "ended" in src.end_message()
    assert src.read() is None  # after release too
    src.release()  # idempotent


@pytest.mark.parametrize("failure", ["false", "raise", "empty"])
def test_camera_lost_mid_stream(failure):
    frames = [np.full((24, 32, 3), 100, np.uint8)] * 3
    cap = _FakeCapture(frames, failure)
    src = OpenCVSource(cap, 0)
    assert src.fps == camera.DEFAULT_FPS  # an unusable reported rate falls back
    got = [src.read() for _ in range(5)]
    assert [g is not None for g in got] == [True, True, True, False, False]
    assert "stopped delivering frames" in src.end_message()
    src.release()
    src.release()
    assert cap.released == 1


def test_odd_frames_become_bgr_uint8():
    grey = np.full((8, 8), 50, np.uint8)
    bgra = np.zeros((8, 8, 4), np.uint8)
    deep = np.full((8, 8, 3), 300, np.uint16)
    src = OpenCVSource(_FakeCapture([grey, bgra, deep]), 1)
    for _ in range(3):
        frame = src.read()
        assert frame.shape == (8, 8, 3) and frame.dtype == np.uint8


def test_frames_are_compared_and_a_failed_source_leaves_others_working(tmp_path, tiny_model):
    """After a bad source, a good one opens and its frames go through the verifier (BGR)."""
    from siamgui.core.verifier import Verifier

    with pytest.raises(CameraError):
        open_source("banana")
    with open_source(str(_write_video(tmp_path / "clip.avi", frames=2))) as src:
        a, b = src.read(), src.read()
    v = Verifier(str(tiny_model), device="cpu")
    assert v.compare(a, a, bgr=True).distance == pytest.approx(0.0, abs=1e-6)
    assert v.compare(a, b, bgr=True).distance >= 0.0

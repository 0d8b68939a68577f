"""siamgui.capture: camera sources from device numbers, video files and URLs (no Qt)."""

import glob
import subprocess
import sys

import numpy as np
import pytest
from _gui_helpers import make_video

from siamgui.capture import CameraError, list_cameras, open_source, parse_source
from siamgui.core.errors import SiamguiError


def test_parse_source_kinds(tmp_path):
    video = make_video(tmp_path / "clip.avi", frames=2)
    assert parse_source(0) == 0
    assert parse_source(" 3 ") == 3
    assert parse_source("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
    assert parse_source(str(video)) == str(video)
    assert parse_source(video) == str(video)


@pytest.mark.parametrize("bad, words", [(-1, "start at 0"), ("", "No camera source"), (True, "device number"),
                                        ("no-such-thing", "not a camera number"), (3.5, "device number")])
def test_parse_source_rejects(bad, words):
    with pytest.raises(CameraError, match=words):
        parse_source(bad)


def test_folder_is_not_a_video(tmp_path):
    with pytest.raises(CameraError, match="folder"):
        open_source(str(tmp_path))


def test_video_file_reads_every_frame_then_ends(tmp_path):
    video = make_video(tmp_path / "clip.avi", frames=7, size=(64, 48), fps=20)
    src = open_source(str(video))
    try:
        assert src.is_file and src.description == "clip.avi"
        assert src.fps == pytest.approx(20.0)
        frames = []
        while (f := src.read()) is not None:
            frames.append(f)
        assert len(frames) == 7
        assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
        # the bright square moves: frames differ, and it is where it was drawn (BGR, white)
        assert frames[0][15, 5].min() > 200 and not np.array_equal(frames[0], frames[3])
        assert src.read() is None  # stays ended
        assert "ended" in src.end_message()
    finally:
        src.release()
    src.release()  # idempotent
    assert src.read() is None


def test_context_manager_releases(tmp_path):
    video = make_video(tmp_path / "clip.avi", frames=3)
    with open_source(video) as src:
        assert src.read() is not None
    assert src.read() is None


def test_not_a_video_file(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(CameraError, match="could not be opened as a video") as info:
        open_source(str(junk))
    assert isinstance(info.value, SiamguiError)


@pytest.mark.skipif(bool(glob.glob("/dev/video*")), reason="a camera device exists on this machine")
def test_missing_camera_index_and_listing():
    with pytest.raises(CameraError, match="Camera 7 could not be opened"):
        open_source("7")
    assert list_cameras(3) == []


def test_list_cameras_returns_indices_in_range():
    found = list_cameras(2)
    assert isinstance(found, list) and all(isinstance(i, int) and 0 <= i < 2 for i in found)


def test_capture_package_does_not_import_qt():
    code = "import sys, siamgui.capture; assert not any(m.startswith('PySide6') for m in sys.modules), 'Qt'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

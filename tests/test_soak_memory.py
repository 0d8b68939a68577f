"""Memory stays flat: the app doing the same thing again and again (comparisons with both slots
replaced, identifications, training runs started and stopped, camera preview with detection)
leaves no workers, threads, widgets, pixmaps or Python objects behind. Short runs of
``bench/soak.py``'s memory scenarios; ``make soak`` runs the issue's sizes and reports RSS over
time (bench/README.md, "Soak").
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import soak  # noqa: E402

pytestmark = pytest.mark.gui

#: Objects that may come and go between two counts (caches filling, a result being replaced).
OBJECT_SLACK = 300


def _flat(r: dict) -> None:
    leaked = r["leaked"]
    for kind in ("widgets", "threads", "qthreads_running", "Worker", "QPixmap", "QImage", "Comparison",
                 "Identification", "qt_children"):
        assert leaked[kind] <= 0, (kind, r["before"], r["after"], [t.name for t in threading.enumerate()])
    assert leaked["python_objects"] < OBJECT_SLACK, (r["before"], r["after"])
    assert r["rss_end_mb"] - r["rss_start_mb"] < 150  # a gross leak only: RSS is noisy on a shared machine


def test_comparisons_with_both_slots_replaced(qapp, tiny_model, shapes_dir):
    images = sorted(shapes_dir.rglob("*.png"))[:40]
    r = soak.soak_compare(80, tiny_model, images)
    assert r["succeeded"] == 80
    _flat(r)


def test_gallery_identifications(qapp, tiny_model, shapes_dir):
    r = soak.soak_identify(60, tiny_model, sorted(shapes_dir.rglob("*.png"))[:60])
    assert r["operations"] == 60 and r["identified"] > 0
    _flat(r)


def test_training_started_and_stopped(qapp):
    r = soak.soak_training(3, steps=2)
    assert r["operations"] == 3
    _flat(r)


def test_camera_preview_with_detection_on_a_looped_video(qapp, tmp_path):
    from siamgui.core.resources import has_bundled_model

    if not has_bundled_model():
        pytest.skip("face detection in the preview comes with the bundled face model")
    video = soak.face_video(tmp_path / "faces.avi", frames=8, size=(320, 240), fps=25.0)
    r = soak.soak_camera(6.0, None, video)
    assert r["detection"] and r["operations"] > 8 and r["video_loops"] >= 1
    _flat(r)

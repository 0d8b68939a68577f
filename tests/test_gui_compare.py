"""The Compare tab, camera preview, main window and scripted `siamgui gui` (pytest-qt, offscreen)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
from _gui_helpers import (draw_face, face_canvas, inference_guard, loaded_state, make_video,  # noqa: F401
                          no_face, no_thread_leaks, run_in_thread, shown_compare_tab, two_faces)

pytest.importorskip("pytestqt")
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from siamgui.core.modelfile import make_meta, save_model  # noqa: E402
from siamgui.core.models import SiameseNetwork, build_encoder  # noqa: E402
from siamgui.core.preprocess import preset_spec  # noqa: E402
from siamgui.core.verifier import Verifier  # noqa: E402
from siamgui.gui import compare_tab as compare_mod  # noqa: E402
from siamgui.gui.compare_tab import CompareTab  # noqa: E402
from siamgui.gui.state import AppState  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("no_thread_leaks", "inference_guard")]

WAIT = 20000


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def face_model(tmp_path_factory):
    """An untrained face-preset model (32 px): enough to exercise detection and cropping."""
    import torch

    torch.manual_seed(0)
    arch = {"name": "compact-cnn", "kwargs": {"in_channels": 3, "embedding_dim": 8, "width": 8}}
    net = SiameseNetwork(build_encoder(arch["name"], **arch["kwargs"]))
    meta = make_meta(architecture=arch, preprocess=preset_spec("face", 32), threshold=1.0, name="test-face")
    path = tmp_path_factory.mktemp("face") / "face32.safetensors"
    save_model(path, net, meta)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory, shapes_dir):
    d = tmp_path_factory.mktemp("imgs")
    classes = sorted(p for p in shapes_dir.iterdir() if p.is_dir())
    first, second, third = (sorted(c.iterdir()) for c in classes[:3])
    out = {"a": first[0], "a2": first[1], "b": second[0], "c": third[0]}
    for name, arr in (("face", draw_face(200)), ("two", two_faces()), ("noface", no_face(200)[:, :, ::-1])):
        cv2.imwrite(str(d / f"{name}.png"), arr)
        out[name] = d / f"{name}.png"
    return out


@pytest.fixture
def tab(qtbot, state):
    t = shown_compare_tab(qtbot, state, 1100)
    yield t
    t.shutdown()


def expected(model, a, b, **kw):
    """The engine's own answer, computed off the guarded main thread."""
    return run_in_thread(lambda: Verifier(str(model), device="cpu").compare(str(a), str(b), **kw))


def load_pair(qtbot, tab, a, b):
    with qtbot.waitSignal(tab.comparison_finished, timeout=WAIT) as sig:
        assert tab.slot_a.set_image_path(a) and tab.slot_b.set_image_path(b)
    return sig.args[0]


# -- comparing -------------------------------------------------------------------------------
def test_two_images_give_the_engines_verdict(qtbot, tab, tiny_model, images):
    assert tab.verdict_text() == "Add image A and image B"
    assert load_pair(qtbot, tab, images["a"], images["b"]) is True
    ref = expected(tiny_model, images["a"], images["b"])
    r = tab.result
    assert r.distance == pytest.approx(ref.distance, abs=1e-5)
    assert r.same == ref.same == (ref.distance < ref.threshold)
    assert tab.verdict_text() == ("✓ SAME" if ref.same else "✗ DIFFERENT")
    assert f"{ref.distance:.4f}" in tab.panel.detail_label.text()
    assert tab.panel.bar.distance == pytest.approx(ref.distance)
    # the model's own input is shown (generic preset, 32 px)
    assert tab.slot_a.input_row.isVisibleTo(tab) and tab.slot_a.input_view.image().width() == 32
    assert images["a"].name in tab.slot_a.info_label.text() and "64×64" in tab.slot_a.info_label.text()


def test_one_image_is_analysed_at_once_and_reused_by_the_comparison(qtbot, tab, state, images, monkeypatch):
    verifier = state.verifier
    prepared = []
    real = verifier.prepare
    monkeypatch.setattr(verifier, "prepare", lambda image, **kw: prepared.append(image) or real(image, **kw))
    with qtbot.waitSignal(tab.analysis_finished, timeout=WAIT) as sig:
        assert tab.slot_a.set_image_path(images["a"])
    assert sig.args == ["A"] and tab.verdict_text() == "Add image B" and tab.result is None
    # what the model sees is shown before there is anything to compare with
    assert tab.slot_a.input_row.isVisibleTo(tab) and tab.slot_a.input_view.image().width() == 32
    assert len(prepared) == 1
    with qtbot.waitSignal(tab.comparison_finished, timeout=WAIT):
        assert tab.slot_b.set_image_path(images["b"])
    assert len(prepared) == 2 and prepared[1] is tab.slot_b.image  # image A came from the cache
    ref = expected(tab.verifier.path, images["a"], images["b"])
    assert tab.result.distance == pytest.approx(ref.distance, abs=1e-5)
    # clearing A analyses B alone (cached: nothing prepared), and shows the request for A
    with qtbot.waitSignal(tab.analysis_finished, timeout=WAIT) as sig:
        tab.slot_a.clear()
    assert sig.args == ["B"] and tab.verdict_text() == "Add image A" and len(prepared) == 2
    assert tab.slot_b.input_row.isVisibleTo(tab)


def test_forward_pass_on_gui_thread_is_refused(tab, state, images):
    with pytest.raises(AssertionError, match="GUI thread"):
        state.verifier.compare(str(images["a"]), str(images["b"]))


def test_newer_request_supersedes_running_one(qtbot, state, tiny_model, images, monkeypatch):
    calls = []
    gate = threading.Event()
    real = compare_mod._compare_job

    def slow_job(verifier, a, b, policy, threshold):
        if a is None or b is None:
            return real(verifier, a, b, policy, threshold)  # one image only: its analysis, not counted
        calls.append(b.size)
        if len(calls) == 1:
            gate.wait(10)  # the first request is still running when the others arrive
        return real(verifier, a, b, policy, threshold)

    monkeypatch.setattr(compare_mod, "_compare_job", slow_job)
    t = CompareTab(state)
    qtbot.addWidget(t)
    shown = []
    t.comparison_finished.connect(lambda ok: shown.append(t.result.distance))
    t.slot_a.set_image_path(images["a"])
    t.slot_b.set_image_path(images["b"])  # request 1 starts (slow)
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=WAIT)
    t.slot_b.set_image_path(images["c"])  # request 2 waits...
    t.slot_b.set_image_path(images["a2"])  # ...and is replaced by request 3
    gate.set()
    qtbot.waitUntil(lambda: len(shown) == 1 and not t.busy, timeout=WAIT)
    qtbot.wait(600)
    assert len(calls) == 2, "the replaced request must not run"
    ref = expected(tiny_model, images["a"], images["a2"])
    assert shown == [pytest.approx(ref.distance, abs=1e-5)], "only the newest result may be shown"
    t.shutdown()


def test_threshold_change_reevaluates_without_rerunning(qtbot, tab, state, images):
    load_pair(qtbot, tab, images["a"], images["b"])
    d = tab.result.distance
    model_t = state.verifier.model_threshold
    assert tab.threshold == pytest.approx(model_t, abs=1e-4)
    assert not tab.panel.reset_button.isEnabled()
    req = tab._req
    with qtbot.waitSignal(state.threshold_changed, timeout=1000):
        tab.set_threshold(d * 1.5 + 1e-3)
    assert tab.verdict_text() == "✓ SAME" and tab.result.same
    assert state.verifier.threshold == pytest.approx(d * 1.5 + 1e-3, abs=1e-4)
    tab.set_threshold(d * 0.5)
    assert tab.verdict_text() == "✗ DIFFERENT"
    assert "≥ threshold" in tab.panel.detail_label.text()
    assert tab.panel.bar.threshold == pytest.approx(d * 0.5, abs=1e-4)
    assert tab._req == req, "a threshold change needs no new forward pass"
    # slider and spin box move together
    tab.threshold_slider.setValue(tab.threshold_slider.maximum())
    assert tab.threshold == pytest.approx(tab._slider_max, rel=1e-3)
    assert tab.panel.reset_button.isEnabled()
    tab.panel.reset_button.click()
    assert tab.threshold == pytest.approx(model_t, abs=1e-4)
    assert tab.verdict_text() == ("✓ SAME" if d < model_t else "✗ DIFFERENT")


def test_drag_and_drop_a_file(qtbot, tab, images):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(images["b"]))])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    tab.slot_b.dragEnterEvent(enter)  # Qt delivers drops only during a real drag: call the handlers
    assert enter.isAccepted()
    with qtbot.waitSignal(tab.slot_b.image_changed, timeout=1000):
        ev = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                        Qt.KeyboardModifier.NoModifier)
        tab.slot_b.dropEvent(ev)
    assert ev.isAccepted()
    assert tab.slot_b.path == str(images["b"]) and tab.slot_b.image.size == (64, 64)
    # something that is not an image: refused with a message, the image stays
    junk = QMimeData()
    junk.setText("hello")
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, junk, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    tab.slot_b.dragEnterEvent(enter)
    assert not enter.isAccepted()
    assert tab.slot_b.handle_mime(junk) is False
    assert tab.slot_b.path == str(images["b"]) and "no image" in tab.slot_b.info_label.text()


def test_paste_image_data_and_file_path(qtbot, tab, images):
    img = QImage(40, 30, QImage.Format.Format_RGB888)
    img.fill(Qt.GlobalColor.red)
    # setImage/setText, not setMimeData: a Python-made QMimeData handed to the
    # clipboard was freed twice at interpreter exit (segfault) with PySide6 6.11
    QApplication.clipboard().setImage(img)
    tab.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is tab, timeout=5000)
    tab.slot_a.setFocus()
    with qtbot.waitSignal(tab.slot_a.image_changed, timeout=1000):
        qtbot.keyClick(tab.slot_a, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)  # Ctrl+V in the slot
    assert tab.slot_a.label == "Pasted image" and tab.slot_a.image.size == (40, 30)
    assert tab.slot_a.image.getpixel((5, 5)) == (255, 0, 0)
    QApplication.clipboard().setText(str(images["c"]))
    with qtbot.waitSignal(tab.slot_b.image_changed, timeout=1000):
        tab.slot_b.paste_button.click()
    assert tab.slot_b.path == str(images["c"])


def test_bad_file_keeps_working(qtbot, tab, images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    messages = []
    tab.message.connect(messages.append)
    assert tab.slot_a.set_image_path(bad) is False
    assert tab.slot_a.image is None and "broken.png" in tab.slot_a.info_label.text()
    assert messages and "Image A" in messages[0]
    assert load_pair(qtbot, tab, images["a"], images["b"]) is True
    tab.slot_b.clear()
    assert tab.verdict_text() == "Add image B" and tab.result is None


# -- face mode -----------------------------------------------------------------------------------
def test_face_mode_with_and_without_a_face(qtbot, tiny_model, face_model, images):
    state = loaded_state(qtbot, face_model)
    t = CompareTab(state)
    qtbot.addWidget(t)
    assert t.face_combo.isEnabled() and t.face_policy == "largest"
    assert load_pair(qtbot, t, images["face"], images["noface"]) is True
    ov = t.slot_a.view.overlays()
    assert len(ov) == 1 and not ov[0].dashed, "the used face box is drawn"
    x, y, w, h = ov[0].box
    assert 20 < w < 200 and abs(x + w / 2 - 100) < 20
    assert "One face found" in t.slot_a.face_label.text()
    # no face: said in the slot and in the verdict notes (the preset then aligns from the centre)
    assert "No face" in t.slot_b.face_label.text()
    assert "Image B: No face" in t.panel.notes_label.text()
    assert t.slot_a.input_view.image().width() == 32  # the aligned crop the model sees
    # several faces: the main one (here the largest) is used, the other one is drawn dashed
    with qtbot.waitSignal(t.comparison_finished, timeout=WAIT):
        t.slot_b.set_image_path(images["two"])
    ovb = t.slot_b.view.overlays()
    assert len(ovb) == 2 and [o.dashed for o in ovb] == [False, True]
    assert "2 faces found; the main one" in t.slot_b.face_label.text()
    # the user chooses the whole image instead
    with qtbot.waitSignal(t.comparison_finished, timeout=WAIT):
        t.set_face_policy("whole")
    assert all(o.dashed for o in t.slot_a.view.overlays())
    assert "whole image" in t.slot_a.face_label.text()
    ref = expected(face_model, images["face"], images["two"], face_policy="whole")
    assert t.result.distance == pytest.approx(ref.distance, abs=1e-5)
    t.shutdown()
    state.wait()


def test_no_verdict_without_a_face_and_the_whole_image_button(qtbot, face_model, images):
    state = loaded_state(qtbot, face_model)
    t = shown_compare_tab(qtbot, state, 1100)
    assert not t.panel.whole_button.isVisible()
    assert load_pair(qtbot, t, images["face"], images["noface"]) is True
    assert t.result.same is None and t.result.missing_faces == ("B",)
    assert t.verdict_text() == "No face in image B" and "SAME" not in t.verdict_text()
    assert "no verdict" in t.panel.detail_label.text() and f"{t.result.distance:.4f}" in t.panel.detail_label.text()
    assert t.panel.whole_button.isVisible()
    t.set_threshold(1e5)  # moving the threshold does not make a verdict
    assert t.verdict_text() == "No face in image B" and t.result.same is None
    with qtbot.waitSignal(t.comparison_finished, timeout=WAIT):
        qtbot.mouseClick(t.panel.whole_button, Qt.MouseButton.LeftButton)
    assert t.face_policy == "whole" and t.result.same is True and t.verdict_text() == "✓ SAME"
    assert not t.panel.whole_button.isVisible()
    t.shutdown()
    state.wait()


def test_each_slot_shows_its_face_quality(qtbot, face_model, images, tmp_path):
    sharp = tmp_path / "sharp.png"
    grain = np.random.default_rng(0).normal(0, 6, (200, 200, 3))
    cv2.imwrite(str(sharp), np.clip(draw_face(200) + grain, 0, 255).astype(np.uint8))
    state = loaded_state(qtbot, face_model)
    t = shown_compare_tab(qtbot, state, 1100)
    with qtbot.waitSignal(t.analysis_finished, timeout=WAIT):
        t.slot_a.set_image_path(images["face"])  # one image: analysed at once, quality included
    assert "Quality: poor (blurred" in t.slot_a.face_label.text() and t.slot_a.face_label.text().startswith("⚠")
    with qtbot.waitSignal(t.comparison_finished, timeout=WAIT):
        t.slot_b.set_image_path(sharp)
    assert "Quality: good" in t.slot_b.face_label.text() and t.slot_b.face_label.text().startswith("✓")
    assert t.result.quality[0] is not None and not t.result.quality[0].good and t.result.quality[1].good
    t.shutdown()
    state.wait()


def test_best_face_mode_names_the_matching_face(qtbot, images, tmp_path):
    """The bundled face model: the best-matching face of a group decides, and it is drawn and named."""
    from siamgui.core.resources import bundled_model_path

    person = tmp_path / "person.png"
    group = tmp_path / "group.png"
    cv2.imwrite(str(person), face_canvas((260, 260), [(1, 40, 40, 180)]))
    cv2.imwrite(str(group), face_canvas((600, 280), [(0, 20, 30, 220), (1, 280, 60, 150), (2, 460, 90, 120)]))
    state = loaded_state(qtbot, bundled_model_path())
    t = CompareTab(state)
    qtbot.addWidget(t)
    assert load_pair(qtbot, t, person, group) is True
    main_distance = t.result.distance
    assert t.result.faces_used is None
    with qtbot.waitSignal(t.comparison_finished, timeout=WAIT):
        t.set_face_policy("best")
    r = t.result
    assert r.faces_used[0] == 0 and r.distance < main_distance
    j = r.faces_used[1]
    ov = t.slot_b.view.overlays()
    assert len(ov) == 3 and [o.dashed for o in ov] == [k != j for k in range(3)]
    assert ov[j].label == f"{j + 1} best match" and ov[j].box == tuple(r.face_boxes[1][j])
    assert f"face {j + 1} of 3 in B" in t.panel.detail_label.text()
    assert "best-matching one was used" in t.slot_b.face_label.text()
    ref = expected(bundled_model_path(), person, group, face_policy="best")
    assert r.distance == pytest.approx(ref.distance, abs=1e-5) and ref.faces_used == r.faces_used
    t.shutdown()
    state.wait()


# -- model switching and missing models ----------------------------------------------------------------
def test_model_switch_reruns_and_failure_keeps_the_old_model(qtbot, tab, state, face_model, images, tmp_path):
    load_pair(qtbot, tab, images["face"], images["noface"])
    assert not tab.face_combo.isEnabled() and tab.slot_a.input_view.image().width() == 32
    with qtbot.waitSignal(tab.comparison_finished, timeout=WAIT):
        state.load_model(str(face_model))
    assert tab.verifier.face_mode and tab.face_combo.isEnabled()
    assert tab.threshold == pytest.approx(1.0)
    assert "One face found" in tab.slot_a.face_label.text()
    with qtbot.waitSignal(state.model_failed, timeout=WAIT):
        state.load_model(str(tmp_path / "missing.safetensors"))
    assert tab.verifier is state.verifier and tab.verifier.face_mode
    assert "missing.safetensors" in tab.panel.notes_label.text()


def test_no_model_state(qtbot):
    s = AppState()
    t = CompareTab(s)
    qtbot.addWidget(t)
    t.show()
    t.set_no_model()
    assert t.verdict_text() == "No model loaded"
    assert "open a model file" in t.panel.notes_label.text()
    assert t.panel.open_model_button.isVisibleTo(t)
    assert not t.threshold_slider.isEnabled() and not t.face_combo.isEnabled()
    with qtbot.waitSignal(t.open_model_requested, timeout=1000):
        t.panel.open_model_button.click()
    t.shutdown()


# -- camera -------------------------------------------------------------------------------------------
class FakeSource:
    """An endless paced source (or one that disappears after ``lose_after`` frames)."""

    is_file = True
    description = "fake camera"

    def __init__(self, lose_after=None):
        self.n, self.lose_after, self.released = 0, lose_after, False

    @property
    def fps(self):
        return 50.0

    def read(self):
        if self.lose_after is not None and self.n >= self.lose_after:
            return None
        self.n += 1
        f = np.zeros((30, 40, 3), np.uint8)
        f[:, :, 2] = 200
        return f

    def release(self):
        self.released = True

    def end_message(self):
        return "fake camera stopped delivering frames"


def test_camera_preview_from_video_file_and_capture(qtbot, tab, tmp_path):
    video = make_video(tmp_path / "cam.avi", frames=50, size=(64, 48), fps=30)
    stops = []
    tab.camera_view.stopped.connect(stops.append)
    tab.source_combo.setEditText(str(video))
    with qtbot.waitSignal(tab.camera_view.frame_ready, timeout=WAIT) as sig:
        tab.start_camera()
    assert sig.args[0].shape == (48, 64, 3)
    assert tab.camera_box.isVisible() and tab.start_button.text() == "Stop"
    with qtbot.waitSignal(tab.slot_a.image_changed, timeout=1000):
        tab.capture_a_button.click()
    assert tab.slot_a.image.size == (64, 48) and tab.slot_a.label.startswith("Camera ")
    # the file ends: a clear message in the preview, the app keeps working
    qtbot.waitUntil(lambda: len(stops) == 1, timeout=WAIT)
    assert "ended" in stops[0] and "ended" in tab.camera_view.view.placeholder()
    assert not tab.camera_view.running and tab.start_button.text() == "Start"
    # Capture with the camera stopped starts it and fills the slot from the first frame
    with qtbot.waitSignal(tab.slot_b.image_changed, timeout=WAIT):
        tab.slot_b.capture_button.click()
    assert tab.slot_b.image.size == (64, 48)
    tab.stop_camera()


def test_camera_failures_are_shown(qtbot, tab):
    tab.show_camera_panel(True)
    with qtbot.waitSignal(tab.camera_view.stopped, timeout=WAIT) as sig:
        tab.start_camera("no-such-camera-source")
    assert "not a camera number" in sig.args[0]
    assert "not a camera number" in tab.camera_view.view.placeholder()
    # a pending capture is answered with the reason
    with qtbot.waitSignal(tab.camera_view.stopped, timeout=WAIT):
        tab.capture_to(tab.slot_a)
    assert tab.slot_a.image is None and "not a camera number" in tab.slot_a.info_label.text()
    # a camera that disappears mid-stream
    src = FakeSource(lose_after=3)
    with qtbot.waitSignal(tab.camera_view.stopped, timeout=WAIT) as sig:
        tab.camera_view.start(lambda: src)
    assert sig.args[0] == "fake camera stopped delivering frames" and src.released


def test_preview_pauses_when_hidden_and_stops_on_close(qtbot, state):
    from siamgui.gui.main_window import MainWindow

    w = MainWindow(state, tab_classes=[("Train", _fake_tab_class(confirm=True))])
    qtbot.addWidget(w)
    w.show()
    view = w.compare_tab.camera_view
    sources = []

    def factory():
        sources.append(FakeSource())
        return sources[-1]

    w.compare_tab.show_camera_panel(True)
    with qtbot.waitSignal(view.frame_ready, timeout=WAIT):
        view.start(factory)
    w.tabs.setCurrentIndex(1)  # another tab: the preview pauses and releases the camera
    qtbot.waitUntil(lambda: sources[0].released, timeout=WAIT)
    assert not view.running and view.source is factory
    with qtbot.waitSignal(view.frame_ready, timeout=WAIT):
        w.tabs.setCurrentIndex(0)  # back: it resumes on a freshly opened source
    assert view.running and len(sources) == 2
    w.compare_tab.camera_toggle.setChecked(False)  # the panel hidden: paused again
    qtbot.waitUntil(lambda: sources[1].released, timeout=WAIT)
    with qtbot.waitSignal(view.frame_ready, timeout=WAIT):
        w.compare_tab.camera_toggle.setChecked(True)
    w.close()  # stops the camera; no_thread_leaks checks that nothing is left
    assert sources[2].released and not view.running


def test_face_boxes_in_preview(qtbot, tab, qapp):
    face = draw_face(160)

    class FaceSource(FakeSource):
        def read(self):
            return face.copy()

    tab.camera_view.set_detect_faces(True)
    tab.show_camera_panel(True)
    with qtbot.waitSignal(tab.camera_view.frame_ready, timeout=WAIT):
        tab.camera_view.start(lambda: FaceSource())
    qtbot.waitUntil(lambda: len(tab.camera_view.last_boxes) == 1, timeout=WAIT)
    assert len(tab.camera_view.view.overlays()) == 1
    tab.stop_camera()


def grainy_face_video(path, frames: int, blurred_every: int = 0, variant: int = 0, fps: float = 25.0):
    """An MJPG video of a drawn face with a camera's grain (sharp enough to be judged good); every
    ``blurred_every``-th frame heavily blurred (poor)."""
    canvas = face_canvas((240, 240), [(variant, 30, 30, 180)])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (240, 240))
    rng = np.random.default_rng(0)
    for i in range(frames):
        img = np.clip(canvas + rng.normal(0, 8, canvas.shape), 0, 255).astype(np.uint8)
        if blurred_every and i % blurred_every == 0:
            img = cv2.GaussianBlur(canvas, (0, 0), 5)
        writer.write(img)
    writer.release()
    return path


def test_preview_judges_the_face_and_capture_takes_the_best_recent_frame(qtbot, tab, tmp_path):
    """The preview's worker judges the main face (quality, rate-limited liveness hint); Capture takes
    the best frame of the last second and says its quality."""
    video = grainy_face_video(tmp_path / "face.avi", 125, blurred_every=2)
    view = tab.camera_view
    view.set_detect_faces(True)
    tab.source_combo.setEditText(str(video))
    tab.start_camera()
    qtbot.waitUntil(lambda: view.last_judgement is not None and view.last_judgement.liveness is not None,
                    timeout=WAIT)
    text = view.judge_label.text()
    assert "Quality: " in text and "Liveness hint (MiniFASNet, Silent-Face): " in text
    j = view.last_judgement
    assert j.box is not None and j.quality is not None and 0.0 <= j.liveness.score_real <= 1.0
    assert [o.label for o in view.view.overlays()] in (["good"], ["poor"]), "the main face's box says its quality"
    judge = view._feed.judge
    start, runs0 = __import__("time").monotonic(), judge.liveness_runs
    qtbot.wait(1200)
    assert view.running, "the video is still playing"
    elapsed = __import__("time").monotonic() - start
    assert judge.liveness_runs - runs0 <= elapsed * 3 + 1.5, "liveness at most ~3 per second"
    assert any(q is not None and not q.good for _, _, q in view.recent.entries), "poor frames were seen"
    messages = []
    tab.message.connect(messages.append)
    with qtbot.waitSignal(tab.slot_a.image_changed, timeout=WAIT):
        tab.capture_a_button.click()
    assert any("best frame of the last second (quality: good)" in m for m in messages), messages
    tab.stop_camera()


def test_verify_live_against_a(qtbot, tmp_path):
    """Live verification: verdicts arrive from the worker (the GUI thread never runs the model),
    the same drawn person gives SAME, smoothed; the GUI keeps handling events meanwhile."""
    from siamgui.core.resources import bundled_model_path

    ref = tmp_path / "a.png"
    cv2.imwrite(str(ref), np.clip(face_canvas((240, 240), [(0, 30, 30, 180)])
                                  + np.random.default_rng(1).normal(0, 8, (240, 240, 3)), 0, 255).astype(np.uint8))
    video = grainy_face_video(tmp_path / "same.avi", 150)
    state = loaded_state(qtbot, bundled_model_path())
    t = shown_compare_tab(qtbot, state, 1300)
    assert not t.start_live(), "no image A yet: refused"
    with qtbot.waitSignal(t.analysis_finished, timeout=WAIT):
        t.slot_a.set_image_path(ref)
    verdicts, frames = [], []
    t.live_verdict.connect(verdicts.append)
    t.camera_view.frame_ready.connect(frames.append)
    t.source_combo.setEditText(str(video))
    assert t.start_live() and t.camera_view.running
    qtbot.waitUntil(lambda: len(verdicts) >= 8, timeout=WAIT)
    v = verdicts[-1]
    assert v.smoothed is True and v.same is True and v.votes >= 1 and v.distance < v.threshold
    assert v.judgement.quality is not None and "SAME" in t.live_label.text()
    assert "Liveness hint" in t.live_label.text()
    assert len(frames) >= len(verdicts), "frames kept arriving on the GUI thread"
    t.stop_live()
    assert t.live is None and not t.live_label.isVisible()
    t.shutdown()
    state.wait()


# -- main window ---------------------------------------------------------------------------------------
def _fake_tab_class(confirm: bool):
    from PySide6.QtCore import Signal
    from PySide6.QtWidgets import QWidget

    class Tab(QWidget):
        scripted_finished = Signal(bool)

        def __init__(self, state, parent=None):
            super().__init__(parent)
            self.state, self.asked, self.stopped, self.started = state, 0, 0, None
            self.ok = confirm

        def confirm_close(self):
            self.asked += 1
            return self.ok

        def shutdown(self):
            self.stopped += 1

        def start_scripted(self, data_dir, epochs):
            from PySide6.QtCore import QTimer

            self.started = (data_dir, epochs)
            QTimer.singleShot(50, lambda: self.scripted_finished.emit(self.ok))

    return Tab


def test_main_window_menus_status_and_close(qtbot, state, tiny_model):
    from siamgui.core.device import available_devices
    from siamgui.gui import settings as gsettings
    from siamgui.gui.main_window import MainWindow

    Tab = _fake_tab_class(confirm=False)
    w = MainWindow(state, tab_classes=[("Train", Tab)])
    qtbot.addWidget(w)
    w.show()
    assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == ["Compare", "Train"]
    assert w.train_tab is not None and w.gallery_tab is None
    # device menu: unavailable devices are disabled with a reason
    qtbot.waitUntil(lambda: w.devices_available is not None, timeout=WAIT)
    avail = available_devices()
    for name in ("cuda", "mps"):
        act = w.device_actions[name]
        assert act.isEnabled() == avail[name]
        if not avail[name]:
            assert "not available" in act.text() and act.toolTip()
    # a user-chosen model: status bar, recent list, model info
    with qtbot.waitSignal(state.model_changed, timeout=WAIT):
        w.load_model(str(tiny_model))
    assert "tiny.safetensors" in w.model_label.text() and "CPU" in w.device_label.text()
    assert str(tiny_model.resolve()) in gsettings.recent_models()
    w._fill_recent_menu()
    assert any(a.data() == str(tiny_model.resolve()) for a in w.recent_menu.actions())
    dlg = w.show_model_info()
    rows = dict(dlg.rows)
    assert rows["Architecture"].startswith("compact-cnn") and float(rows["Threshold"]) == pytest.approx(
        state.verifier.model_threshold, abs=1e-4)
    assert "generic" in rows["Preprocessing"]
    dlg.close()
    # switching device reloads the model and keeps the user's threshold
    w.compare_tab.set_threshold(0.0123)
    with qtbot.waitSignal(state.model_changed, timeout=WAIT):
        w.device_actions["auto"].trigger()
    assert state.device == "auto" and gsettings.app_settings().value("device") == "auto"
    assert w.compare_tab.threshold == pytest.approx(0.0123) and state.verifier.threshold == pytest.approx(0.0123)
    # exact float32 arithmetic: reloads the model, is remembered, and the status bar says it
    with qtbot.waitSignal(state.model_changed, timeout=WAIT):
        w.exact_action.trigger()
    assert state.precision == "float32" and state.verifier.precision_choice.name == "float32"
    assert gsettings.as_bool(gsettings.app_settings().value("exact_float32"))
    assert "float32" in w.device_label.text()
    assert w.compare_tab.threshold == pytest.approx(0.0123)
    with qtbot.waitSignal(state.model_changed, timeout=WAIT):
        w.set_exact_float32(False)
    assert state.precision == "auto" and not w.exact_action.isChecked()
    assert not gsettings.as_bool(gsettings.app_settings().value("exact_float32"))
    # a bad model file chosen by the user: a message, the old model stays
    with qtbot.waitSignal(state.model_failed, timeout=WAIT):
        w.load_model(str(tiny_model.parent / "nope.safetensors"))
    boxes = [b for b in w.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and "nope.safetensors" in boxes[0].text()
    boxes[0].close()
    assert "tiny.safetensors" in w.model_label.text()
    # the Train tab refuses to close (training running): the window stays open
    w.close()
    assert w.isVisible() and w.train_tab.asked == 1 and w.train_tab.stopped == 0
    w.train_tab.ok = True
    w.close()
    assert not w.isVisible() and w.train_tab.stopped == 1


def test_real_tabs_close_without_leaving_threads(qtbot, state, images):
    from siamgui.gui.main_window import MainWindow, default_tab_classes

    classes = default_tab_classes()
    if not classes:
        pytest.skip("no Train or Gallery tab in this checkout")
    w = MainWindow(state)
    qtbot.addWidget(w)
    w.show()
    assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == ["Compare"] + [t for t, _ in classes]
    load_pair(qtbot, w.compare_tab, images["a"], images["b"])
    for i in range(w.tabs.count()):
        w.tabs.setCurrentIndex(i)
        qtbot.wait(50)
    w.tabs.setCurrentIndex(0)
    w.close()  # asks the tabs (nothing running: no question), then stops every thread
    assert not w.isVisible()


def test_excepthook_shows_a_dialog(qtbot, state):
    from siamgui.gui.dialogs import ExceptionBridge
    from siamgui.gui.main_window import MainWindow

    w = MainWindow(state, tab_classes=[])
    qtbot.addWidget(w)
    w.show()
    bridge = ExceptionBridge(lambda: w)
    bridge.install()
    try:
        def boom():
            raise ValueError("boom in a thread")

        t = threading.Thread(target=boom)
        t.start()
        t.join()
        qtbot.waitUntil(lambda: any(b.isVisible() for b in w.findChildren(QMessageBox)), timeout=WAIT)
        box = next(b for b in w.findChildren(QMessageBox) if b.isVisible())
        assert "boom in a thread" in box.text() and "ValueError" in box.detailedText()
        box.close()
    finally:
        bridge.uninstall()
    assert w.isVisible()
    w.close()


# -- scripted runs -------------------------------------------------------------------------------------
def _args(**kw):
    base = dict(images=[], camera=None, model=None, train=None, epochs=None, screenshot=None)
    base.update(kw)
    return argparse.Namespace(**base)


def test_run_gui_screenshot_of_a_comparison(qtbot, tiny_model, images, tmp_path, monkeypatch):
    from siamgui.gui import main_window
    from siamgui.gui.app import run_gui

    monkeypatch.setattr(main_window, "default_tab_classes", lambda: [])
    out = tmp_path / "shot.png"
    code = run_gui(_args(images=[str(images["a"]), str(images["b"])], model=str(tiny_model), screenshot=str(out)))
    assert code == 0
    shot = QImage(str(out))
    assert shot.width() > 600 and shot.height() > 400
    # bad input is refused before any window opens
    assert run_gui(_args(images=[str(tmp_path / "none.png"), str(images["b"])], screenshot=str(out))) == 2
    assert run_gui(_args(images=["a", "b", "c"])) == 2


@pytest.mark.parametrize("ok", [True, False])
def test_run_gui_scripted_training(qtbot, tmp_path, monkeypatch, shapes_dir, ok):
    from siamgui.gui import main_window
    from siamgui.gui.app import run_gui

    Tab = _fake_tab_class(confirm=ok)
    made = []
    monkeypatch.setattr(main_window, "default_tab_classes",
                        lambda: [("Train", type("T", (Tab,), {"__init__": lambda self, s, p=None: (
                            Tab.__init__(self, s, p), made.append(self))[0]}))])
    monkeypatch.setenv("SIAMGUI_RESOURCES", str(tmp_path))  # no bundled model
    out = tmp_path / "train.png"
    code = run_gui(_args(train=str(shapes_dir), epochs=2, screenshot=str(out)))
    assert code == (0 if ok else 1)
    assert made[0].started == (str(shapes_dir), 2) and out.is_file()


def test_run_gui_without_any_model(qtbot, tmp_path, monkeypatch):
    from siamgui.gui import main_window
    from siamgui.gui.app import run_gui

    monkeypatch.setattr(main_window, "default_tab_classes", lambda: [])
    monkeypatch.setenv("SIAMGUI_RESOURCES", str(tmp_path))
    out = tmp_path / "nomodel.png"
    assert run_gui(_args(screenshot=str(out))) == 0 and out.is_file()


def test_gui_modules_do_not_import_torch():
    code = ("import sys, siamgui.gui.app, siamgui.gui.main_window, siamgui.gui.compare_tab; "
            "assert 'torch' not in sys.modules, 'torch imported before the window is shown'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_use_in_compare_switches_to_the_compare_tab(qtbot, state):
    from PySide6.QtCore import Signal

    from siamgui.gui.main_window import MainWindow

    class Tab(_fake_tab_class(confirm=True)):
        compare_requested = Signal()

    w = MainWindow(state, tab_classes=[("Train", Tab)])
    qtbot.addWidget(w)
    w.show()
    w.tabs.setCurrentWidget(w.train_tab)
    w.train_tab.compare_requested.emit()
    assert w.tabs.currentWidget() is w.compare_tab

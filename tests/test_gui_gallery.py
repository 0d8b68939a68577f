"""The Gallery tab (pytest-qt, offscreen): enrol, identify, Unknown, edit, re-embed, evaluate, live camera."""

from __future__ import annotations

import shutil

import pytest
from _gui_helpers import face_canvas, inference_guard, make_video, no_thread_leaks  # noqa: F401

pytest.importorskip("pytestqt")

from siamgui.gui.gallery_tab import GalleryTab  # noqa: E402
from siamgui.gui.state import AppState  # noqa: E402

pytestmark = [pytest.mark.gui]

WAIT = 20000




def files(shapes_dir, cls, n=None):
    out = sorted((shapes_dir / cls).iterdir())
    return out if n is None else out[:n]


@pytest.fixture
def tab(qtbot, state, no_thread_leaks, inference_guard):  # noqa: F811
    t = GalleryTab(state)
    qtbot.addWidget(t)
    t.resize(1100, 700)
    t.show()
    qtbot.waitUntil(lambda: not t.busy(), timeout=WAIT)
    yield t
    t.shutdown()
    assert not t.jobs.isRunning() and not t.identifier.isRunning() and not t.live_identifier.isRunning()


def run_job(qtbot, tab, kind, action):
    with qtbot.waitSignal(tab.job_finished, timeout=WAIT, check_params_cb=lambda k, ok: k == kind) as blocker:
        action()
    qtbot.waitUntil(lambda: not tab.jobs.pending_kinds(), timeout=WAIT)
    return blocker.args[1]


def identify(qtbot, tab, action):
    with qtbot.waitSignal(tab.identification_shown, timeout=WAIT) as blocker:
        action()
    return blocker.args[0]


def test_enrol_identify_unknown_and_edit(qtbot, tab, state, shapes_dir, tmp_path, monkeypatch):
    from siamgui.core.gallery import default_gallery_path

    assert tab.gallery.path == default_gallery_path()  # the data folder (isolated by conftest)
    cls = sorted(p.name for p in shapes_dir.iterdir())
    # enrol from files through the button (dialogs replaced)
    monkeypatch.setattr(tab, "_ask_files", lambda title: [str(p) for p in files(shapes_dir, cls[0], 3)])
    monkeypatch.setattr(tab, "_ask_text", lambda title, label, text="": "circle-ish")
    assert run_job(qtbot, tab, "enroll", tab.add_button.click)
    assert tab.identity_names() == ["circle-ish"] and tab.examples_list.count() == 3
    assert run_job(qtbot, tab, "enroll", lambda: tab.enroll("second", files(shapes_dir, cls[1], 2)))
    assert tab.identity_names() == ["circle-ish", "second"]
    # a bad image: a message, nothing added, the tab keeps working
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert not run_job(qtbot, tab, "enroll", lambda: tab.enroll("third", [bad]))
    assert "bad.png" in tab.status_label.text() and tab.identity_names() == ["circle-ish", "second"]

    # identify an enrolled image: top candidates with distances
    probe = files(shapes_dir, cls[1])[1]
    monkeypatch.setattr(tab, "_ask_files", lambda title: [str(probe)])
    r = identify(qtbot, tab, tab.probe_button.click)
    assert r.best == "second" and tab.verdict_label.text() == "second"
    rows = tab.candidate_rows()
    assert [n for n, _ in rows] == ["second", "circle-ish"]
    assert float(rows[0][1]) < 1e-3 < float(rows[1][1])
    # open set: a threshold at or below the best distance makes it Unknown, at once
    tab.threshold_spin.setValue(0.0)
    assert tab.verdict_label.text() == "Unknown" and state.verifier.threshold == 0.0
    tab.threshold_spin.setValue(float(rows[1][1]) + 1)
    assert tab.verdict_label.text() == "second"
    # the other ranking rule re-runs identification
    r = identify(qtbot, tab, lambda: tab.rank_combo.setCurrentIndex(1))
    assert r.rank == "mean" and "mean of 3 nearest" in tab.detail_label.text()
    # a stranger dropped on the tab, with a small threshold: Unknown
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    tab.threshold_spin.setValue(1e-4)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(files(shapes_dir, cls[-1])[0]))])
    drop = QDropEvent(QPointF(30, 30), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    r = identify(qtbot, tab, lambda: tab.event(drop))  # QApplication.sendEvent drops drag events without a drag
    assert drop.isAccepted()
    assert r.best is None and tab.verdict_label.text() == "Unknown" and len(tab.candidate_rows()) == 2
    # an unreadable probe: a message, no crash
    tab.identify_file(bad)
    assert "bad.png" in tab.status_label.text() and tab.candidate_rows() == []

    # rename and remove through the buttons
    tab.select("circle-ish")
    monkeypatch.setattr(tab, "_ask_text", lambda title, label, text="": "Circle")
    assert run_job(qtbot, tab, "rename", tab.rename_button.click)
    assert tab.identity_names() == ["Circle", "second"]
    tab.select("second")
    monkeypatch.setattr(tab, "_confirm", lambda text: True)
    assert run_job(qtbot, tab, "remove", tab.remove_button.click)
    assert tab.identity_names() == ["Circle"]
    tab.select("Circle")
    tab.examples_list.setCurrentRow(0)
    assert run_job(qtbot, tab, "remove", tab.remove_example_button.click)
    assert tab.gallery.identity("Circle").examples == 2


def test_model_change_evaluation_and_live_camera(qtbot, tab, state, shapes_dir, other_model, tmp_path,
                                                 monkeypatch):
    cls = sorted(p.name for p in shapes_dir.iterdir())
    root = tmp_path / "people"
    for c in cls[:3]:
        shutil.copytree(shapes_dir / c, root / c)
    monkeypatch.setattr(tab, "_ask_folder", lambda title: str(root))
    assert run_job(qtbot, tab, "import", tab.import_button.click)
    assert tab.identity_names() == cls[:3]
    # another model: the stored examples are embedded again in the background
    with qtbot.waitSignal(tab.job_finished, timeout=WAIT, check_params_cb=lambda k, ok: k == "sync" and ok):
        state.load_model(str(other_model))
    assert "Embedded 30" in tab.status_label.text()
    from siamgui.core.gallery import model_fingerprint

    assert tab.gallery.unembedded_count(model_fingerprint(state.verifier)) == 0
    r = identify(qtbot, tab, lambda: tab.identify_file(files(shapes_dir, cls[2])[4]))
    assert r.best == cls[2] and r.distance < 1e-3

    # one-shot evaluation on a folder
    assert run_job(qtbot, tab, "evaluate", lambda: tab.run_evaluation(str(shapes_dir), 4, 1, 40))
    assert tab.evaluation.episodes == 40 and tab.evaluation.way == 4
    assert "4-way 1-shot" in tab.eval_result.text() and "accuracy" in tab.eval_result.text()

    # live: a video file as the camera; frames are labelled by the live thread
    video = make_video(tmp_path / "cam.avi", frames=75, size=(96, 72))
    with qtbot.waitSignal(tab.live_identified, timeout=WAIT) as blocker:
        tab.start_live(str(video))
    live = blocker.args[0]
    qtbot.waitUntil(lambda: bool(tab.camera_view._overlays), timeout=WAIT)
    label = tab.camera_view._overlays[0].label
    assert label.startswith(live.best or "Unknown") or label.split(" (")[0] in cls[:3] + ["Unknown"]
    assert tab.live_label.text().startswith("Live: ")
    # enrol the current frame as a new identity
    monkeypatch.setattr(tab, "_ask_text", lambda title, label, text="": "from camera")
    assert run_job(qtbot, tab, "enroll", tab.capture_button.click)
    assert "from camera" in tab.identity_names()
    assert tab.gallery.examples("from camera")[0].stored == "capture"
    tab.stop_live()
    assert not tab.camera_view.running


def test_every_face_of_a_probe_and_of_the_live_camera_is_labelled(qtbot, no_thread_leaks, inference_guard,  # noqa: F811
                                                                   tmp_path):
    """The bundled face model: one label per face (a name, Unknown, or not judged), in a photo and live."""
    import cv2

    from siamgui.core.resources import bundled_model_path

    s = AppState(device="cpu")
    with qtbot.waitSignal(s.model_changed, timeout=WAIT):
        s.load_model(str(bundled_model_path()))
    t = GalleryTab(s, gallery_path=tmp_path / "people.sqlite")
    qtbot.addWidget(t)
    t.resize(1100, 700)
    t.show()
    qtbot.waitUntil(lambda: not t.busy(), timeout=WAIT)
    for k, name in enumerate(("ann", "bob", "cid")):
        cv2.imwrite(str(tmp_path / f"{name}.png"), face_canvas((240, 240), [(k, 30, 30, 180)]))
    # drawn faces are soft: refused as poor, with the reason, until the user allows poor faces
    assert not run_job(qtbot, t, "enroll", lambda: t.enroll("ann", [tmp_path / "ann.png"]))
    assert "poor" in t.status_label.text() and "blurred" in t.status_label.text()
    assert "ann" not in t.identity_names()
    t.identities.allow_poor_check.setChecked(True)
    for name in ("ann", "bob", "cid"):
        assert run_job(qtbot, t, "enroll", lambda name=name: t.enroll(name, [tmp_path / f"{name}.png"]))
    t.threshold_spin.setValue(0.2)
    # ann, cid, a stranger, a face too small to judge
    probe = face_canvas((700, 280), [(0, 10, 20, 230), (2, 260, 60, 170), (3, 450, 80, 150), (1, 620, 120, 50)])
    cv2.imwrite(str(tmp_path / "group.png"), probe)
    with qtbot.waitSignal(t.faces_shown, timeout=WAIT) as blocker:
        t.identify_file(tmp_path / "group.png")
    faces = blocker.args[0]
    labels = [o.label for o in t.probe_panel.probe_view.overlays()]
    assert labels[:3] == ["ann", "cid", "Unknown"] and labels[3].startswith("too small")
    assert t.verdict_label.text() == "ann" and t.result is faces.faces[0].result
    assert "4 faces: ann, cid, Unknown, not judged" in t.detail_label.text()
    panel = t.probe_panel
    assert panel.face_combo.isVisibleTo(t) and panel.face_combo.count() == 4
    panel.face_combo.setCurrentIndex(1)
    assert t.verdict_label.text() == "cid" and t.candidate_rows()[0][0] == "cid"
    panel.face_combo.setCurrentIndex(3)
    assert t.verdict_label.text() == "Not judged" and t.candidate_rows() == []
    # the threshold moves every label at once
    t.threshold_spin.setValue(5.0)
    labels = [o.label for o in panel.probe_view.overlays()]
    assert labels[2] != "Unknown" and panel.face_combo.currentIndex() == 3

    # live: a video of the group as the camera; every face gets its box and label
    video = tmp_path / "group.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (700, 280))
    for _ in range(30):
        writer.write(probe)
    writer.release()
    t.threshold_spin.setValue(0.2)
    with qtbot.waitSignal(t.live_faces, timeout=WAIT) as blocker:
        t.start_live(str(video))
    live = blocker.args[0]
    qtbot.waitUntil(lambda: len(t.camera_view._overlays) == 4, timeout=WAIT)
    names = [o.label.split(" (")[0] for o in t.camera_view._overlays]
    assert names[:3] == ["ann", "cid", "Unknown"] and names[3].startswith("too small") and len(live.faces) == 4
    assert t.live_label.text().startswith("Live: ann (")
    t.stop_live()
    t.shutdown()
    s.wait()

"""Bad images dropped into the Compare tab's slots: a message in the slot, the previous image kept, the app working.

Every invalid case of tests/test_bad_images.py is dropped (as a file URL, the way
a file manager drops it); so are the odd-but-valid ones, which must show.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")
from _gui_helpers import inference_guard, no_thread_leaks, shown_compare_tab  # noqa: E402,F401
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402

from test_bad_images import INVALID, VALID, _make  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("no_thread_leaks", "inference_guard")]
WAIT = 20000


@pytest.fixture
def tab(qtbot, tiny_model):
    from siamgui.gui.state import AppState

    state = AppState(device="cpu")
    with qtbot.waitSignal(state.model_changed, timeout=WAIT):
        state.load_model(str(tiny_model))
    t = shown_compare_tab(qtbot, state, 1000)
    yield t
    t.shutdown()
    state.wait()


def _drop(slot, url: QUrl) -> bool:
    mime = QMimeData()
    mime.setUrls([url])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    slot.dragEnterEvent(enter)  # Qt delivers drops only during a real drag: call the handlers
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    slot.dropEvent(drop)
    return drop.isAccepted()


def _good_pair(tmp_path):
    from PIL import Image

    a, b = tmp_path / "good_a.png", tmp_path / "good_b.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(a)
    Image.new("RGB", (32, 32), (40, 40, 200)).save(b)
    return a, b


def test_bad_images_dropped_into_a_slot(qtbot, tab, tmp_path):
    good_a, good_b = _good_pair(tmp_path)
    with qtbot.waitSignal(tab.comparison_finished, timeout=WAIT):
        assert _drop(tab.slot_a, QUrl.fromLocalFile(str(good_a)))
        assert _drop(tab.slot_b, QUrl.fromLocalFile(str(good_b)))
    first = tab.result.distance
    messages = []
    tab.message.connect(messages.append)
    for case, (name, builder, expect) in INVALID.items():
        if case == "empty-path":
            continue  # a drop always names a file
        folder = tmp_path / case
        folder.mkdir()
        if case == "directory":
            path = folder / name
            path.mkdir()
        elif case == "file-over-256-mb":
            import os

            path = _make(folder, name, lambda: b"\x89PNG\r\n\x1a\n")
            os.truncate(path, 300 * 1024 * 1024)
        else:
            path = _make(folder, name, builder)
        n = len(messages)
        assert not _drop(tab.slot_a, QUrl.fromLocalFile(str(path))), case
        text = tab.slot_a.info_label.text()
        assert text.startswith("⚠") and expect in text.lower(), (case, text)
        assert len(messages) == n + 1 and messages[-1].startswith("Image A: "), case
        assert tab.slot_a.path == str(good_a), case  # the previous image stays
    # a remote URL is not taken at all
    assert not _drop(tab.slot_b, QUrl("https://example.com/face.jpg"))
    assert tab.slot_b.path == str(good_b)
    # and the tab still works: swapping re-runs the comparison
    with qtbot.waitSignal(tab.comparison_finished, timeout=WAIT) as sig:
        tab.swap()
    assert sig.args[0] is True and tab.result.distance == pytest.approx(first, abs=1e-5)


def test_odd_but_valid_images_dropped_into_a_slot(qtbot, tab, tmp_path):
    good_a, _ = _good_pair(tmp_path)
    assert _drop(tab.slot_a, QUrl.fromLocalFile(str(good_a)))
    for case, (name, builder, check) in VALID.items():
        folder = tmp_path / case
        folder.mkdir()
        path = _make(folder, name, builder)
        with qtbot.waitSignal(tab.comparison_finished, timeout=WAIT) as sig:
            assert _drop(tab.slot_b, QUrl.fromLocalFile(str(path))), case
        assert sig.args[0] is True, case
        assert tab.slot_b.path == str(path) and not tab.slot_b.info_label.text().startswith("⚠"), case
        check(tab.slot_b.image)  # upright, composited, first frame...

"""The People tab (pytest-qt, offscreen): sort a folder, merge / split / move / name / enrol, and the
edits are still there in a new window."""

from __future__ import annotations

import shutil

import pytest
from _gui_helpers import inference_guard, loaded_state, no_thread_leaks  # noqa: F401

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402

from siamgui.gui.main_window import MainWindow  # noqa: E402
from siamgui.gui.people_tab import UNSORTED, PeopleTab  # noqa: E402

pytestmark = [pytest.mark.gui]
WAIT = 20000


@pytest.fixture
def state(qtbot, tiny_model):
    s = loaded_state(qtbot, tiny_model)
    s.verifier.threshold = 1e-3  # only identical photos are one person: a known answer
    yield s
    s.wait()


def _window(qtbot, state):
    w = MainWindow(state, tab_classes=[("People", PeopleTab)])
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    w.tabs.setCurrentWidget(w.people_tab)
    return w, w.people_tab


def run_job(qtbot, tab, kind, action):
    with qtbot.waitSignal(tab.job_finished, timeout=WAIT, check_params_cb=lambda k, ok: k == kind) as blocker:
        action()
    qtbot.waitUntil(lambda: not tab.jobs.pending_kinds(), timeout=WAIT)
    return blocker.args[1]


def people(tab) -> list[tuple[str, int]]:
    """(label, face count) per row of the people list, as the database says after the tab refreshed."""
    rows = []
    for i in range(tab.people_list.count()):
        item = tab.people_list.item(i)
        label = item.data(Qt.ItemDataRole.UserRole + 1)
        rows.append((label, int(item.text().splitlines()[1].split()[0])))
    return rows


def select_people(tab, labels) -> None:
    tab.people_list.clearSelection()
    for i in range(tab.people_list.count()):
        item = tab.people_list.item(i)
        if item.data(Qt.ItemDataRole.UserRole + 1) in labels:
            item.setSelected(True)


def _folder(tmp_path, shapes_dir):
    """Two photos each present twice (same bytes), one photo once: two people and one unsorted."""
    folder = tmp_path / "album"
    folder.mkdir()
    srcs = sorted(shapes_dir.glob("*/*.png"))
    for i, src in enumerate(srcs[0:30:10][:3]):
        for c in range(1 if i == 2 else 2):
            shutil.copy(src, folder / f"p{i}_{c}.png")
    return folder


def test_sort_edit_enrol_and_the_edits_persist_in_a_new_window(qtbot, state, tmp_path, shapes_dir, monkeypatch,
                                                                no_thread_leaks, inference_guard):  # noqa: F811
    folder = _folder(tmp_path, shapes_dir)
    w, tab = _window(qtbot, state)
    monkeypatch.setattr(tab, "_ask_folder", lambda: str(folder))
    assert run_job(qtbot, tab, "sort", tab.bar.open_button.click)
    assert people(tab) == [("Person 1", 2), ("Person 2", 2), ("Unsorted", 1)]
    assert "5 face(s) in 5 readable photo(s)" in tab.status_label.text()
    qtbot.waitUntil(lambda: len(tab._icons) >= 2, timeout=WAIT)  # thumbnails cut in a worker

    # "not this person": one face of person 1 goes to unsorted
    select_people(tab, ["Person 1"])
    assert tab.faces_list.count() == 2
    tab.faces_list.item(0).setSelected(True)
    assert run_job(qtbot, tab, "move", tab.not_button.click)
    assert people(tab) == [("Person 1", 2), ("Person 2", 1), ("Unsorted", 2)]

    # name, then merge the two people: the name is kept
    select_people(tab, ["Person 1"])
    monkeypatch.setattr(tab, "_ask_text", lambda title, label, text="": "Alice")
    assert run_job(qtbot, tab, "name", tab.name_button.click)
    select_people(tab, ["Alice", "Person 2"])
    assert tab.merge_button.isEnabled()
    assert run_job(qtbot, tab, "merge", tab.merge_button.click)
    assert people(tab) == [("Alice", 3), ("Unsorted", 2)]

    # move an unsorted face to Alice, then split one face off her
    select_people(tab, ["Unsorted"])
    tab.faces_list.item(0).setSelected(True)
    monkeypatch.setattr(tab, "_ask_person", lambda labels: labels.index("Alice"))
    assert run_job(qtbot, tab, "move", tab.move_button.click)
    assert people(tab) == [("Alice", 4), ("Unsorted", 1)]
    select_people(tab, ["Alice"])
    tab.faces_list.item(3).setSelected(True)
    assert run_job(qtbot, tab, "split", tab.split_button.click)
    assert people(tab) == [("Alice", 3), ("Person 2", 1), ("Unsorted", 1)]

    # sorting the folder again asks first: "no" keeps the edits
    asked = []
    monkeypatch.setattr(tab, "_confirm", lambda text: asked.append(text) or False)
    tab.bar.open_button.click()
    assert len(asked) == 1 and "edits are replaced" in asked[0] and not tab.jobs.pending_kinds()

    # enrol Alice into the (default) gallery
    select_people(tab, ["Alice"])
    assert run_job(qtbot, tab, "enrol", tab.enrol_button.click)
    assert "Enrolled" in tab.status_label.text()
    w.close()
    assert not tab.jobs.isRunning() and not tab.thumbs.isRunning()

    from siamgui.core.gallery import Gallery

    with Gallery(create=False) as g:
        assert [i.name for i in g.identities()] == ["Alice"]
    w2, tab2 = _window(qtbot, state)  # a new window reads the people file
    assert people(tab2) == [("Alice", 3), ("Person 2", 1), ("Unsorted", 1)]
    assert tab2.bar.path_label.text() == str(folder)
    w2.close()


def test_sorting_needs_a_model_and_a_folder_with_images(qtbot, state, tmp_path, no_thread_leaks):  # noqa: F811
    w, tab = _window(qtbot, state)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not run_job(qtbot, tab, "sort", lambda: tab.sort_folder(str(empty)))
    assert "holds no images" in tab.status_label.text() and tab.people_list.count() == 0
    state.verifier = None
    tab.sort_folder(str(empty))
    assert "Load a model first" in tab.status_label.text()
    assert tab.people_list.count() == 0 and not tab.merge_button.isEnabled()
    assert UNSORTED == -1
    w.close()


def test_sorting_can_be_cancelled_and_keeps_the_last_sorting(qtbot, state, tmp_path, shapes_dir, monkeypatch,
                                                             no_thread_leaks):  # noqa: F811
    import time

    from siamgui.core.people import cluster

    w, tab = _window(qtbot, state)
    assert run_job(qtbot, tab, "sort", lambda: tab.sort_folder(str(_folder(tmp_path, shapes_dir))))
    before = people(tab)
    many = tmp_path / "many"
    many.mkdir()
    for i, src in enumerate(sorted(shapes_dir.glob("*/*.png"))[:60]):
        shutil.copy(src, many / f"{i:02d}.png")
    real_read = cluster._read
    monkeypatch.setattr(cluster, "_read", lambda path: time.sleep(0.05) or real_read(path))  # ~3 s in all
    with qtbot.waitSignal(tab.job_finished, timeout=WAIT) as blocker:
        tab.sort_folder(str(many))
        qtbot.waitUntil(lambda: tab.bar.cancel_button.isVisibleTo(tab), timeout=WAIT)
        tab.bar.cancel_button.click()
    assert blocker.args == ["sort", False] and "cancelled" in tab.status_label.text()
    assert people(tab) == before and tab.bar.path_label.text() == str(tmp_path / "album")
    w.close()

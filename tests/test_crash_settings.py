"""Settings and recent files: a damaged settings file resets to defaults with a note, odd values
never break start-up, and a settings write that fails says so while the app keeps working.
(A settings write killed at random points: ``test_crash_kill.py``.)
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("pytestqt")

from siamgui.gui import settings as gsettings  # noqa: E402

pytestmark = pytest.mark.gui

DAMAGED = {
    # a power cut after the file was created but before its data reached the disk
    "zero-filled": b"\0" * 512,
    "random-bytes": bytes(range(256)) * 3,
    "utf16": "[General]\ndevice=cpu\n".encode("utf-16"),
    "cut-mid-line": b"[General]\ndevice=cpu\n[models]\nrecent=/m/a.safetensors, /m/b.saf\0\0\0\0",
}


def _window(qtbot, tab_classes=()):
    from siamgui.gui.main_window import MainWindow

    w = MainWindow(tab_classes=list(tab_classes))
    qtbot.addWidget(w)
    return w


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_settings_file_resets_with_a_note(qtbot, case):
    path = gsettings.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(DAMAGED[case])
    w = _window(qtbot)
    assert w.settings_label.isVisibleTo(w) and "reset" in w.settings_label.text()
    assert "damaged" in w.settings_label.toolTip() and str(path) in w.settings_label.toolTip()
    kept = path.with_name("siamgui.ini.damaged")
    assert kept.read_bytes() == DAMAGED[case]  # kept for the curious, out of the way
    assert w.state.device == "auto" and gsettings.recent_models() == []
    # the app goes on with fresh settings, which are saved normally
    w.set_device("cpu")
    gsettings.add_recent_model("/models/new.safetensors")
    assert gsettings.recent_models() == ["/models/new.safetensors"]
    assert b"cpu" in path.read_bytes()
    w.close_now()


def test_readable_settings_are_not_reset(qtbot):
    gsettings.add_recent_model("/models/a.safetensors")
    w = _window(qtbot)
    assert not w.settings_label.isVisibleTo(w)
    assert gsettings.recent_models() == ["/models/a.safetensors"]
    assert not gsettings.settings_path().with_name("siamgui.ini.damaged").exists()
    w.close_now()


ODD = r"""[General]
device=warp-drive
exact_float32=@Invalid()

[window]
version=not-a-number
geometry=just some text

[models]
recent=42

[paths]
last_model_dir=@Invalid()
last_image_dir=1, 2, 3

[train]
version=1
preset=no-such-preset
arch=@Invalid()
loss=3
device=quantum
init=
init_file=1, 2
image_size=huge
embedding_dim=-5
margin=nan
epochs=1e400
batch_size=@Invalid()
lr=
val_split=2
pairs_per_epoch=x
seed=0x10
last_folder=1, 2
last_save_folder=@Invalid()
"""


def test_odd_values_in_settings_never_break_start_up(qtbot):
    """A hand-edited file Qt can parse, with values of the wrong kind everywhere: defaults are used."""
    from siamgui.gui.main_window import default_tab_classes

    path = gsettings.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ODD)
    w = _window(qtbot, default_tab_classes())
    assert w.state.device == "auto" and w.state.precision == "auto"
    assert w.restore_geometry() is False
    w._fill_recent_menu()
    assert [a.text() for a in w.recent_menu.actions()] == ["No recent models"]  # "42" names no file
    w.train_tab.settings_form.config(str(path.parent))  # the form holds usable values
    w.shutdown()


def test_settings_that_cannot_be_saved_give_a_message_and_keep_the_old_file(qtbot, monkeypatch):
    """A read-only config folder (simulated: root ignores permission bits; QSettings reports
    AccessError, as it does on a read-only or full file system, see test_crash_disk.py)."""
    gsettings.add_recent_model("/models/a.safetensors")
    path = gsettings.settings_path()
    before = path.read_bytes()
    w = _window(qtbot)
    from PySide6.QtCore import QSettings

    monkeypatch.setattr(QSettings, "status", lambda self: QSettings.Status.AccessError)
    with qtbot.waitSignal(gsettings.notifier().problem, timeout=5000) as blocker:
        gsettings.add_recent_model("/models/b.safetensors")
    assert "Could not save the settings" in blocker.args[0]
    assert "not saved" in w.settings_label.text() and w.settings_label.isVisibleTo(w)
    monkeypatch.undo()
    assert os.path.getsize(path) > 0 and b"a.safetensors" in before
    w.close_now()


def test_temp_file_of_a_killed_save_is_removed_at_start(qtbot):
    """A save killed before Qt renamed its temporary file leaves ``siamgui.ini.XXXXXX``; the next start
    removes it and keeps the settings and anything else in the folder."""
    path = gsettings.settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[General]\ndevice=cpu\n")
    stale = path.with_name("siamgui.ini.LzAaTO")
    stale.write_text("[General]\ndevice=cu")
    other = path.with_name("notes.txt")
    other.write_text("mine")
    w = _window(qtbot)
    assert not stale.exists()
    assert other.read_text() == "mine" and w.state.device == "cpu"
    w.close_now()

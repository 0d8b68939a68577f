"""A full disk and a read-only data folder while the app is open: enrolment, model saving and
settings give a message, the app keeps working, and nothing already stored is lost.

Real file systems where the test may mount a tmpfs (root on Linux): a small one that fills up,
and one remounted read-only (root ignores permission bits, so chmod would not do). Elsewhere those tests skip; the simulated ones below run everywhere, with
SQLite's own limits (``max_page_count``: "database or disk is full"; ``query_only``: "attempt
to write a readonly database").
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from _faults_helpers import assert_one_line_error, remount, run_main, tmpfs

from siamgui.core.gallery import Gallery, GalleryError

SIMULATED = {"disk-full": ("max_page_count", "disk is full"), "read-only": ("query_only", "read-only")}


@pytest.fixture(scope="module")
def verifier(tiny_model):
    from siamgui.core.verifier import Verifier

    return Verifier(tiny_model, device="cpu")


def _images(shapes_dir, k: int, n: int = 3) -> list:
    classes = sorted(p for p in shapes_dir.iterdir() if p.is_dir())
    return sorted(classes[k % len(classes)].iterdir())[:n]


def _fill(folder) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)


def _still_works(g: Gallery, verifier, shapes_dir, names: list[str]) -> None:
    """Nothing stored is lost, and identification goes on."""
    assert g.names() == names and g.integrity_ok()
    r = g.identify(verifier, _images(shapes_dir, 0)[0])
    assert r.best == names[0]


def _simulate(g: Gallery, case: str) -> None:
    pragma, _ = SIMULATED[case]
    con = g._con
    if pragma == "max_page_count":
        con.execute(f"PRAGMA max_page_count = {con.execute('PRAGMA page_count').fetchone()[0]}")
    else:
        con.execute("PRAGMA query_only = ON")


def _undo(g: Gallery, case: str) -> None:
    g._con.execute("PRAGMA max_page_count = 1073741823" if case == "disk-full" else "PRAGMA query_only = OFF")


@pytest.mark.parametrize("case", list(SIMULATED))
def test_gallery_write_failing_simulated(case, tmp_path, verifier, shapes_dir):
    with Gallery(tmp_path / "g.sqlite") as g:
        g.enroll(verifier, "first", _images(shapes_dir, 0))
        _simulate(g, case)
        with pytest.raises(GalleryError, match=SIMULATED[case][1]) as err:
            g.enroll(verifier, "second", _images(shapes_dir, 1))
        assert "Traceback" not in str(err.value) and "g.sqlite" in str(err.value)
        _still_works(g, verifier, shapes_dir, ["first"])
        _undo(g, case)
        g.enroll(verifier, "second", _images(shapes_dir, 1))
        assert g.names() == ["first", "second"]


def test_gallery_on_a_disk_that_fills_up(tmp_path, verifier, shapes_dir):
    with tmpfs(tmp_path / "data", "size=1m") as data:
        with Gallery(data / "g.sqlite") as g:
            g.enroll(verifier, "first", _images(shapes_dir, 0))
            _fill(data)
            with pytest.raises(GalleryError, match="disk is full"):
                for k in range(1, 40):
                    g.enroll(verifier, f"person {k}", _images(shapes_dir, k))
            names = g.names()
            assert names[0] == "first"
            _still_works(g, verifier, shapes_dir, names)
            (data / "filler").unlink()
            g.enroll(verifier, "after freeing space", _images(shapes_dir, 5))
        with Gallery(data / "g.sqlite", create=False) as g:  # the next start
            assert g.names() == sorted(names + ["after freeing space"], key=str.casefold) and g.integrity_ok()


def test_gallery_in_a_read_only_folder(tmp_path, verifier, shapes_dir):
    """A data folder on a read-only file system (Linux refuses to remount one read-only while a
    file on it is open for writing, so the gallery is opened after the remount; the simulated
    test above covers a gallery that turns read-only while open)."""
    with tmpfs(tmp_path / "data", "size=4m") as data:
        with Gallery(data / "g.sqlite") as g:
            g.enroll(verifier, "first", _images(shapes_dir, 0))
        remount(data, "ro")
        try:
            with Gallery(data / "g.sqlite") as g:
                with pytest.raises(GalleryError, match="read-only"):
                    g.enroll(verifier, "second", _images(shapes_dir, 1))
                _still_works(g, verifier, shapes_dir, ["first"])
        finally:
            remount(data, "rw")
        with Gallery(data / "g.sqlite") as g:
            g.enroll(verifier, "second", _images(shapes_dir, 1))
            assert g.names() == ["first", "second"] and g.integrity_ok()


def test_cli_gallery_add_on_a_full_or_read_only_disk(tmp_path, tiny_model, shapes_dir, capsys):
    """``siamgui gallery add``: exit 2 with one line saying why; the gallery keeps what it had."""
    with tmpfs(tmp_path / "data", "size=1m") as data:
        gallery = data / "g.sqlite"
        common = ["--gallery", gallery, "--model", tiny_model, "--device", "cpu"]
        code, _, err = run_main(capsys, "gallery", "add", "first", *_images(shapes_dir, 0), *common)
        assert code == 0, err
        _fill(data)
        code, _, err = run_main(capsys, "gallery", "add", "second", *_images(shapes_dir, 1), *common)
        assert_one_line_error(code, err, "could not be saved (the disk is full)")
        (data / "filler").unlink()
        remount(data, "ro")
        try:
            code, _, err = run_main(capsys, "gallery", "add", "second", *_images(shapes_dir, 1), *common)
            assert_one_line_error(code, err, "read-only")
            code, out, err = run_main(capsys, "gallery", "list", *common)
            assert code == 0 and "first" in out and "second" not in out
        finally:
            remount(data, "rw")


def test_settings_on_a_read_only_or_full_disk(tmp_path, monkeypatch):
    from siamgui.gui import settings as gsettings

    with tmpfs(tmp_path / "config", "size=64k") as config:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
        gsettings.add_recent_model("/models/a.safetensors")
        path = gsettings.settings_path()
        before = path.read_bytes()
        remount(config, "ro")
        try:
            s = gsettings.app_settings()
            s.setValue("device", "cpu")
            assert "Could not save the settings" in gsettings.save_settings(s)
        finally:
            remount(config, "rw")
        assert path.read_bytes() == before
        _fill(config)
        s = gsettings.app_settings()
        s.setValue("models/recent", [f"/models/{'x' * 200}-{i}.safetensors" for i in range(8)])
        assert "read-only folder or full disk" in gsettings.save_settings(s)
        assert path.read_bytes() == before


# -- the app -------------------------------------------------------------------------------
@pytest.mark.gui
def test_gallery_tab_keeps_working_when_enrolment_cannot_be_written(qtbot, tiny_model, shapes_dir):
    pytest.importorskip("pytestqt")
    from siamgui.gui.gallery_tab import GalleryTab
    from siamgui.gui.state import AppState

    state = AppState(device="cpu")
    with qtbot.waitSignal(state.model_changed, timeout=30000):
        state.load_model(str(tiny_model))
    tab = GalleryTab(state)
    qtbot.addWidget(tab)
    tab.show()
    qtbot.waitUntil(lambda: not tab.busy(), timeout=30000)
    try:
        def enrol(name, k):
            with qtbot.waitSignal(tab.job_finished, timeout=30000,
                                  check_params_cb=lambda kind, ok: kind == "enroll") as blocker:
                tab.enroll(name, [str(p) for p in _images(shapes_dir, k)])
            qtbot.waitUntil(lambda: not tab.busy(), timeout=30000)
            return blocker.args[1]

        assert enrol("first", 0)
        for case in SIMULATED:
            _simulate(tab.gallery, case)
            assert not enrol("second", 1)
            assert SIMULATED[case][1] in tab.status_label.text()
            assert tab.identity_names() == ["first"]
            with qtbot.waitSignal(tab.identification_shown, timeout=30000) as shown:
                tab.identify_file(str(_images(shapes_dir, 0)[1]))
            assert shown.args[0].best == "first"
            _undo(tab.gallery, case)
        assert enrol("second", 1) and tab.identity_names() == ["first", "second"]
    finally:
        tab.shutdown()
        state.wait()


@pytest.mark.gui
def test_train_tab_saving_to_a_full_or_read_only_disk(qtbot, tmp_path, shapes_dir):
    """The trained model stays in memory with a message; a model saved before is intact."""
    pytest.importorskip("pytestqt")
    from siamgui.core.modelfile import load_model
    from siamgui.core.training import Finished, TrainConfig, train
    from siamgui.gui.state import AppState
    from siamgui.gui.train_tab import TrainTab

    cfg = TrainConfig(str(shapes_dir), preset="generic", arch="compact-cnn", arch_kwargs={"width": 8},
                      image_size=32, embedding_dim=16, epochs=1, pairs_per_epoch=32, batch_size=16, val_split=0.3,
                      seed=0, device="cpu", val_pairs=50)
    result = next(ev.result for ev in train(cfg) if isinstance(ev, Finished))
    state = AppState(device="cpu")
    tab = TrainTab(state)
    qtbot.addWidget(tab)
    messages = []
    tab.show_message = lambda title, text: messages.append(text)
    tab._result = result
    with tmpfs(tmp_path / "models", "size=1m") as models:
        assert tab.save_model_to(models / "kept.safetensors")
        kept = (models / "kept.safetensors").read_bytes()
        _fill(models)
        assert not tab.save_model_to(models / "kept.safetensors")
        assert "No space left on device" in messages[-1] and "still in memory" in messages[-1]
        (models / "filler").unlink()
        remount(models, "ro")
        try:
            assert not tab.save_model_to(models / "new.safetensors")
            assert "Read-only file system" in messages[-1]
        finally:
            remount(models, "rw")
        assert (models / "kept.safetensors").read_bytes() == kept
        assert sorted(os.listdir(models)) == ["kept.safetensors"]
    assert tab.save_model_to(tmp_path / "elsewhere.safetensors")  # the model was still there
    assert np.isfinite(load_model(tmp_path / "elsewhere.safetensors").threshold)
    tab.shutdown()
    state.wait()

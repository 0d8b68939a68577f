"""The Train tab, offscreen, on small generated datasets with tiny networks."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QTimer  # noqa: E402

from siamgui.core.synthetic import make_shapes_dataset  # noqa: E402

pytestmark = pytest.mark.gui

#: Fields the form has no widget for, applied on top of it (tiny and fast).
TINY_EXTRA = {"arch_kwargs": {"width": 8}, "val_pairs": 200}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """8 classes x 8 images of 40 px."""
    return make_shapes_dataset(tmp_path_factory.mktemp("train-shapes"), n_classes=8, per_class=8, size=40, seed=3)


@pytest.fixture
def state(qtbot):
    from siamgui.gui.state import AppState

    s = AppState(device="cpu")
    yield s
    assert s.wait(30000)


@pytest.fixture
def make_tab(qtbot, state):
    from siamgui.gui.train_tab import TrainTab

    tabs = []

    def make():
        tab = TrainTab(state)
        tab.extra_config = dict(TINY_EXTRA)
        tab.messages = []
        tab.show_message = lambda title, text: tab.messages.append(text)
        tab.ask_question = lambda title, text: True
        qtbot.addWidget(tab)
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        tab.shutdown()
        assert not tab.busy, "a thread of the Train tab is still running"
    alive = [t.name for t in threading.enumerate() if t.name.startswith("siamgui-prepare")]
    assert not alive, f"threads left running: {alive}"


@pytest.fixture
def tab(make_tab):
    return make_tab()


def scan(qtbot, tab, folder):
    with qtbot.waitSignal(tab.dataset_scanned, timeout=20000) as blocker:
        tab.choose_folder(str(folder))
    return blocker.args[0]


def configure(tab, *, epochs: int, pairs: int, batch: int = 16):
    f = tab.settings_form
    f.arch.setCurrentIndex(f.arch.findData("compact-cnn"))
    f.image_size.setValue(32)
    f.embedding_dim.setValue(16)
    f.epochs.setValue(epochs)
    f.batch_size.setValue(batch)
    f.pairs_per_epoch.setValue(pairs)
    f.val_split.setValue(0.3)
    f.seed.setValue(0)
    f.device.setCurrentIndex(f.device.findData("cpu"))


def run_to_end(qtbot, tab, timeout=60000) -> bool:
    with qtbot.waitSignal(tab.training_ended, timeout=timeout) as blocker:
        assert tab.start()
    return blocker.args[0]


# -- dataset ----------------------------------------------------------------------------------
def test_summary_figures_thumbnails_and_problems(qtbot, tab, shapes, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(shapes, root)
    lonely = root / "zz_lonely"
    lonely.mkdir()
    shutil.copy(next((root / "circle").iterdir()), lonely / "only.png")
    (root / "square" / "broken.png").write_bytes(b"not an image at all")
    assert not tab.start_button.isEnabled()

    s = scan(qtbot, tab, root)
    assert (s.classes, s.images, s.classes_with_pairs) == (9, 65, 8)
    assert s.single_image_classes == ["zz_lonely"]
    assert [p.endswith("broken.png") for p, _ in s.skipped] == [True]
    text = tab.summary_label.text()
    assert "<b>9</b> classes, <b>65</b> images; 8 with 2+ images" in text
    assert "<b>1</b> class(es) with a single image" in text and "skipped: 1" in text
    assert tab.skipped_list.count() == 1 and tab.skipped_list.item(0).text().startswith("broken.png")
    assert not tab.problems_label.isVisibleTo(tab)
    assert tab._thumb_grid.count() == 6  # six sample pairs
    captions = [tab._thumb_grid.itemAt(i).widget().findChildren(type(tab.summary_label))[-1].text()
                for i in range(6)]
    assert captions.count("same") == 3 and captions.count("different") == 3
    assert tab.start_button.isEnabled()

    one = tmp_path / "one"
    shutil.copytree(shapes / "circle", one / "circle")
    s = scan(qtbot, tab, one)
    assert s.problems and "two classes" in tab.problems_label.text()
    assert tab.problems_label.isVisibleTo(tab) and not tab.start_button.isEnabled()
    assert tab._thumb_grid.count() == 0
    assert not tab.start()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert scan(qtbot, tab, empty).problems and not tab.start_button.isEnabled()
    assert scan(qtbot, tab, tmp_path / "missing") is None
    assert "No such folder" in tab.problems_label.text() and not tab.start_button.isEnabled()


def test_settings_defaults_and_persistence(make_tab):
    from siamgui.core.training import PRESET_DEFAULTS

    tab = make_tab()
    f = tab.settings_form
    assert f.preset.currentText() == "generic"
    f.preset.setCurrentText("signature")
    sig = PRESET_DEFAULTS["signature"]
    assert (f.arch.currentData(), f.batch_size.value(), f.embedding_dim.value()) == (
        sig["arch"], sig["batch_size"], sig["embedding_dim"])
    f.loss.setCurrentText("triplet")
    assert f.margin.value() == pytest.approx(0.2)
    f.epochs.setValue(7)
    f.lr.setValue(0.0005)
    f.pairs_per_epoch.setValue(300)
    tab.shutdown()  # saves the settings

    g = make_tab().settings_form
    assert (g.preset.currentText(), g.loss.currentText(), g.epochs.value(), g.pairs_per_epoch.value()) == (
        "signature", "triplet", 7, 300)
    assert g.lr.value() == pytest.approx(0.0005)
    cfg = g.config("/data")
    assert (cfg.preset, cfg.loss, cfg.epochs, cfg.lr, cfg.pairs_per_epoch) == ("signature", "triplet", 7, 0.0005, 300)



def test_preset_change_selects_the_presets_loss(make_tab):
    from siamgui.core.training import PRESET_DEFAULTS

    f = make_tab().settings_form
    f.preset.setCurrentText("face")
    face_loss = PRESET_DEFAULTS["face"].get("loss", "contrastive")
    assert f.loss.currentText() == face_loss
    assert f.config("/data").loss == face_loss
    f.preset.setCurrentText("signature")
    assert f.loss.currentText() == PRESET_DEFAULTS["signature"].get("loss", "contrastive")

# -- training ---------------------------------------------------------------------------------
def test_run_plots_result_save_reload_and_compare(qtbot, tab, state, shapes, tmp_path):
    from siamgui.core.modelfile import load_model

    scan(qtbot, tab, shapes)
    configure(tab, epochs=3, pairs=256)  # 16 steps per epoch

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    t0 = time.perf_counter()
    ok = run_to_end(qtbot, tab)
    duration = time.perf_counter() - t0
    timer.stop()
    assert ok, tab.log_view.toPlainText()

    gaps = np.diff(ticks) * 1000.0
    p99, worst = float(np.percentile(gaps, 99)), float(gaps.max())
    print(f"\nGUI thread during training ({duration:.1f} s, {len(ticks)} ticks): 10 ms timer gaps "
          f"median {np.median(gaps):.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms")
    assert worst < 250.0, f"the GUI thread stalled for {worst:.0f} ms during training"

    plots = tab.plots
    assert plots.steps_x == list(range(1, 49))  # one point per step
    assert len(plots.raw_curve.getData()[0]) == 48 and len(plots.smooth_curve.getData()[0]) == 48
    assert [e.epoch for e in plots.epochs] == [1, 2, 3]  # one point per epoch
    assert len(plots.val_loss_curve.getData()[0]) == 3 and len(plots.auc_curve.getData()[1]) == 3
    assert plots.flushes <= duration * 10 + 3  # redraws are rate-limited
    assert tab.progress.value() == tab.progress.maximum() == 48

    result = tab.result
    assert result is not None and tab.views.currentWidget() is tab.result_view
    assert len(tab.result_view.roc_curve.getData()[0]) > 2
    assert tab.result_view.threshold_line.value() == pytest.approx(result.threshold)

    t_far = tab.result_view.choose("far", 0.05)
    assert result.meta["metrics"]["operating_point"] == "far=0.05"
    same = result.val_same
    assert np.mean(result.val_distances[~same] < t_far) <= 0.05
    t_eer = tab.result_view.choose("eer")
    assert t_eer != pytest.approx(t_far) and result.threshold == pytest.approx(t_eer)
    assert f"{t_eer:.4f}" in tab.result_view.readout.text()

    # an impossible location: shown, nothing written, the model stays in memory
    assert not tab.save_model_to(tmp_path / "no-such-folder" / "m.safetensors")
    assert tab.messages and "does not exist" in tab.messages[-1] and tab.result is result

    out_dir = tmp_path / "models"
    out_dir.mkdir()
    tab.ask_save_path = lambda suggested: str(out_dir / "shapes")  # no suffix: added
    tab.result_view.save_button.click()
    saved = out_dir / "shapes.safetensors"
    assert sorted(p.name for p in out_dir.iterdir()) == ["shapes.safetensors"]
    loaded = load_model(saved)
    assert loaded.threshold == pytest.approx(t_eer) and loaded.threshold == result.threshold
    assert loaded.meta["metrics"]["operating_point"] == "eer"

    with qtbot.waitSignal(state.model_changed, timeout=20000) as blocker:
        tab.result_view.use_button.click()
    verifier = blocker.args[0]
    assert verifier.path == saved and verifier.model_threshold == pytest.approx(t_eer)

    # a threshold changed after saving: Compare gets the in-memory model with the new threshold
    t_best = tab.result_view.choose("best-accuracy")
    with qtbot.waitSignal(state.model_changed, timeout=20000) as blocker:
        tab.use_in_compare()
    assert blocker.args[0].path is None and blocker.args[0].model_threshold == pytest.approx(t_best)
    assert load_model(saved).threshold == pytest.approx(t_eer)  # the file was not touched


def test_stop_mid_epoch_within_one_batch(qtbot, tab, shapes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scan(qtbot, tab, shapes)
    configure(tab, epochs=50, pairs=640)  # 40 steps per epoch
    before = sorted(p for p in shapes.rglob("*"))

    assert tab.start()
    qtbot.waitUntil(lambda: tab._last_step is not None and tab._last_step.epoch == 2
                    and tab._last_step.step >= 5, timeout=60000)
    thread = tab.train_thread
    t0 = time.perf_counter()
    with qtbot.waitSignal(tab.training_ended, timeout=20000) as blocker:
        tab.stop_button.click()
        assert not tab.stop_button.isEnabled()
    assert time.perf_counter() - t0 < 10.0
    assert thread.steps_after_cancel <= 1  # the batch in flight, no more
    last = tab._last_step
    assert last.epoch >= 2 and last.step < last.steps_per_epoch  # stopped mid-epoch (normally epoch 2)
    assert blocker.args[0] is True  # a finished epoch: its model is kept (in memory)
    assert [e.epoch for e in tab.plots.epochs] == list(range(1, last.epoch))  # no validation after the stop
    assert tab.result.stopped_early and tab.result.meta["training"]["epochs_run"] == last.epoch - 1
    assert tab.views.currentWidget() is tab.result_view
    assert list(tmp_path.iterdir()) == [] and sorted(shapes.rglob("*")) == before  # no model file anywhere
    assert tab.start_button.isEnabled() and tab.choose_button.isEnabled()

    # a stop in the first epoch keeps nothing and leaves the tab ready
    assert tab.start()
    qtbot.waitUntil(lambda: tab._last_step is not None and tab._last_step.global_step >= 3, timeout=60000)
    with qtbot.waitSignal(tab.training_ended, timeout=20000) as blocker:
        tab.stop()
    assert blocker.args[0] is False and tab.result is None
    assert not tab.views.isTabEnabled(1)
    assert "nothing to keep" in tab.log_view.toPlainText()
    assert tab.start_button.isEnabled() and not tab.messages


def test_pause_and_resume(qtbot, tab, shapes):
    scan(qtbot, tab, shapes)
    configure(tab, epochs=2, pairs=480)  # 30 steps per epoch
    with qtbot.waitSignal(tab.training_ended, timeout=60000) as blocker:
        assert tab.start()
        qtbot.waitUntil(lambda: tab.train_thread.steps_done >= 3, timeout=60000)
        thread = tab.train_thread
        tab.pause_button.click()
        assert tab.pause_button.text() == "Resume"
        qtbot.wait(300)  # the batch in flight finishes
        n_paused = thread.steps_done
        qtbot.wait(500)
        assert thread.steps_done == n_paused and thread.isRunning()
        assert n_paused < 60
        tab.pause_button.click()
        assert tab.pause_button.text() == "Pause"
        qtbot.waitUntil(lambda: thread.steps_done > n_paused, timeout=20000)
    assert blocker.args[0] is True
    assert tab.plots.steps_x == list(range(1, 61))


def test_failures_end_in_a_message_and_a_usable_tab(qtbot, tab, shapes, tmp_path, monkeypatch):
    scan(qtbot, tab, shapes)
    configure(tab, epochs=1, pairs=64)
    f = tab.settings_form
    f.init.setCurrentIndex(f.init.findData("file"))
    f.init_file.setText(str(tmp_path / "missing.safetensors"))
    assert run_to_end(qtbot, tab) is False
    assert "No such model file" in tab.messages[-1]
    assert tab.start_button.isEnabled() and tab.result is None

    f.init.setCurrentIndex(f.init.findData("scratch"))
    import siamgui.core.training as training

    real_train = training.train

    def exploding(config, control=None):
        yield training.Log("info", "starting")
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(training, "train", exploding)
    assert run_to_end(qtbot, tab) is False
    assert "smaller batch size" in tab.messages[-1]
    assert "RuntimeError" in tab.log_view.toPlainText()  # the traceback is in the log

    def broken(config, control=None):
        raise ZeroDivisionError("boom")
        yield

    monkeypatch.setattr(training, "train", broken)
    assert run_to_end(qtbot, tab) is False
    assert tab.messages[-1] == "Training failed: ZeroDivisionError: boom"
    monkeypatch.setattr(training, "train", real_train)  # (not undo(): that would also drop the isolated folders)
    assert run_to_end(qtbot, tab) is True  # still usable


def test_close_asks_and_shutdown_joins(qtbot, tab, shapes):
    assert tab.confirm_close() is True  # nothing running: no question
    scan(qtbot, tab, shapes)
    configure(tab, epochs=50, pairs=640)
    assert tab.start()
    qtbot.waitUntil(lambda: tab._last_step is not None, timeout=60000)
    asked = []
    tab.ask_question = lambda title, text: asked.append(text) or False
    assert tab.confirm_close() is False and tab.is_training
    tab.ask_question = lambda title, text: True
    assert tab.confirm_close() is True
    t0 = time.perf_counter()
    tab.shutdown()
    assert not tab.busy and time.perf_counter() - t0 < 10.0
    assert asked


def test_scripted_run(qtbot, tab, shapes, tmp_path):
    tab.extra_config = dict(TINY_EXTRA, arch="compact-cnn", image_size=32, embedding_dim=16, pairs_per_epoch=64,
                            batch_size=16, device="cpu")
    with qtbot.waitSignal(tab.scripted_finished, timeout=60000) as blocker:
        tab.start_scripted(str(shapes), 2)
    assert blocker.args == [True]
    assert tab.views.currentWidget() is tab.result_view and tab.result is not None
    assert tab.result.meta["training"]["epochs_run"] == 2 and not tab.busy
    assert tab.settings_form.epochs.value() == 2

    empty = tmp_path / "empty"
    empty.mkdir()
    with qtbot.waitSignal(tab.scripted_finished, timeout=20000) as blocker:
        tab.start_scripted(str(empty), 1)
    assert blocker.args == [False] and not tab.messages  # no dialog in scripted mode
    tab.shutdown()
    from siamgui.gui.train_settings import open_settings

    assert open_settings().value("train/epochs") is None  # a scripted run leaves the user's settings alone


def test_amount_of_training_and_eta_text(make_tab):
    from siamgui.core.training import Step

    tab = make_tab()
    f = tab.settings_form
    assert f.epochs.text() == "auto" and f.max_minutes.text() == "default"
    cfg = f.config("/data")
    assert cfg.epochs is None and cfg.time_budget_s is None and cfg.resolved().automatic_plan
    f.epochs.setValue(4)
    f.max_minutes.setValue(2.5)
    cfg = f.config("/data")
    assert (cfg.epochs, cfg.time_budget_s) == (4, 150.0)
    step = Step(1, 4, 3, 10, 3, 40, 0.5, 0.5, 1e-3, 100.0, 130.0)
    tab.run_panel.show_progress(step, None, 100.0, paused=False, stopping=False)
    assert "about 2 min left" in tab.run_panel.status_label.text()


def test_summary_shows_forgeries_and_orphans(qtbot, tab, shapes, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(shapes, root)
    shutil.copytree(shapes / "square", root / "circle_forg")  # forgeries of circle, not a class
    shutil.copytree(shapes / "square", root / "ghost_forg")  # no ghost: ignored, with a note
    s = scan(qtbot, tab, root)
    assert (s.classes, s.classes_with_forgeries) == (8, 1) and s.forgery_images > 0
    text = tab.summary_label.text()
    assert f"<b>1</b> class(es) with skilled forgeries ({s.forgery_images} images" in text
    assert "ghost_forg" in text and "ignored" in text

"""The Evaluate tab and the Compare tab's "Why?" view (pytest-qt, offscreen)."""

from __future__ import annotations

import pytest
from _gui_helpers import inference_guard, no_thread_leaks  # noqa: F401

pytest.importorskip("pytestqt")

from siamgui.gui.evaluate_tab import EvaluateTab  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("no_thread_leaks", "inference_guard")]

WAIT = 60000


@pytest.fixture
def etab(qtbot, state):
    t = EvaluateTab(state)
    qtbot.addWidget(t)
    t.resize(1100, 700)
    t.show()
    yield t
    t.shutdown()


def _run(qtbot, tab, shapes_dir, num_pairs=40):
    tab.set_source("folder", str(shapes_dir), num_pairs=num_pairs)
    with qtbot.waitSignal(tab.finished_run, timeout=WAIT) as blocker:
        tab.run_button.click()
    return blocker.args[0]


def test_evaluate_tab_runs_and_shows_results(qtbot, etab, shapes_dir):
    assert _run(qtbot, etab, shapes_dir) == "done", etab.status_label.text()
    r = etab.result
    assert r.metrics.pairs == 40
    assert "AUC" in etab.summary_label.text()
    assert etab.results.tables.tar_table.rowCount() == len(r.tar_at_far)
    assert etab.results.tables.threshold_table.rowCount() == len(r.threshold_table)
    assert etab.results.worst.list.count() == len(r.worst_accepts) + len(r.worst_rejects) > 0
    assert etab.results.curves.roc.getPlotItem().listDataItems()
    assert etab.progress_bar.value() == 1000 and etab.report_button.isEnabled()
    # double-click a worst pair: it asks for Compare
    item = etab.results.worst.list.item(0)
    with qtbot.waitSignal(etab.compare_requested, timeout=2000) as blocker:
        etab.results.worst.list.itemDoubleClicked.emit(item)
    assert tuple(blocker.args) == item.data(0x0100)


def test_use_this_threshold_writes_a_copy_and_refuses_the_original(qtbot, etab, shapes_dir, tmp_path,
                                                                  tiny_model):
    from siamgui.core.modelfile import read_metadata, sha256_file

    assert _run(qtbot, etab, shapes_dir) == "done"
    before = sha256_file(tiny_model)
    rows = etab.result.threshold_table
    etab.results.tables.select_row(0)
    assert etab.results.tables.use_button.isEnabled()
    etab._ask_model_copy = lambda suggestion: str(tiny_model)
    etab.results.tables.use_button.click()
    assert "original" in etab.status_label.text()
    assert sha256_file(tiny_model) == before
    target = tmp_path / "copy.safetensors"
    etab._ask_model_copy = lambda suggestion: str(target)
    with qtbot.waitSignal(etab.saved, timeout=WAIT):
        etab.results.tables.use_button.click()
    meta = read_metadata(target)
    assert meta["threshold"] == pytest.approx(rows[0]["threshold"])
    assert meta.get("calibration") and sha256_file(tiny_model) == before
    report = tmp_path / "r.html"
    etab._ask_report_path = lambda suggestion: str(report)
    with qtbot.waitSignal(etab.saved, timeout=WAIT):
        etab.report_button.click()
    assert "<svg" in report.read_text(encoding="utf-8")


def test_evaluate_cancel(qtbot, etab, shapes_dir):
    etab.set_source("folder", str(shapes_dir), num_pairs=4000)
    with qtbot.waitSignal(etab.finished_run, timeout=WAIT) as blocker:
        etab.run_button.click()
        etab.cancel_button.click()
    assert blocker.args[0] == "cancelled"
    assert etab.status_label.text() == "Cancelled" and etab.result is None
    assert etab.run_button.isEnabled() and not etab.cancel_button.isEnabled()


def test_evaluate_bad_input_is_a_message(qtbot, etab, tmp_path):
    etab.set_source("csv", str(tmp_path / "missing.csv"))
    with qtbot.waitSignal(etab.finished_run, timeout=WAIT) as blocker:
        etab.run_button.click()
    assert blocker.args[0] == "failed"
    assert "missing.csv" in etab.status_label.text() and "Traceback" not in etab.status_label.text()
    etab.set_source("lfw", str(tmp_path / "pairs.txt"))
    etab.run_button.click()
    assert "image folder" in etab.status_label.text() and not etab.running


def test_why_button_shows_maps_and_threshold_meaning(qtbot, state, shapes_dir):
    from _gui_helpers import shown_compare_tab

    tab = shown_compare_tab(qtbot, state, 1100)
    assert "genuine pairs" in tab.threshold_meaning.text()  # the tiny model carries its calibration
    before = tab.threshold_meaning.text()
    tab.set_threshold(state.verifier.threshold * 1.5)
    assert tab.threshold_meaning.text() != before
    assert not tab.why_button.isEnabled()
    cls = sorted(p for p in shapes_dir.iterdir() if p.is_dir())
    with qtbot.waitSignal(tab.comparison_finished, timeout=WAIT):
        tab.load_images([sorted(cls[0].iterdir())[0], sorted(cls[1].iterdir())[0]])
    assert tab.why_button.isEnabled()
    tab.why_button.click()
    dialog = tab.why.dialog
    with qtbot.waitSignal(dialog.explained, timeout=WAIT) as blocker:
        pass
    ex = blocker.args[0]
    assert ex.maps[0].shape == tab.result.inputs[0].shape[:2] and ex.scale > 0
    assert "Distance" in dialog.status_label.text()
    dialog.close()
    tab.shutdown()

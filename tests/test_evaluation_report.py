"""The evaluation engine: TAR at FAR, threshold tables, calibration sentences, the run
(progress, cancel, bad input) and the self-contained, atomically written HTML report."""

import json
import os

import numpy as np
import pytest

from siamgui.core import evaluation as ev
from siamgui.core.errors import DatasetError, ModelFileError, SiamguiError
from siamgui.core.evaluation import calibration as cal
from siamgui.core.evaluation import report
from siamgui.core.evaluation.run import (
    EvaluationCancelled,
    PairSet,
    pairs_from_csv,
    pairs_from_folder,
    run_evaluation,
)

# The CLI's --json keys before tar_at_far was added (they must stay).
CLI_KEYS = {"pairs", "auc", "eer", "threshold", "accuracy", "best_threshold", "best_accuracy", "precision"}


def hand_made(n_genuine=10, n_impostor=100):
    """Impostors at 0.01, 0.02, ... ; genuine pairs at 0.005, 0.015, ... (interleaved)."""
    imp = 0.01 * np.arange(1, n_impostor + 1)
    gen = 0.01 * np.arange(n_genuine) + 0.005
    return np.r_[gen, imp], np.r_[np.ones(n_genuine, bool), np.zeros(n_impostor, bool)]


# -- TAR at FAR ---------------------------------------------------------------------------
def test_tar_at_far_on_a_hand_made_set():
    d, s = hand_made()
    r = {x.far: x for x in ev.tar_at_far(d, s)}
    # FAR 0.1 of 100 impostors: 10 accepted (0.01 .. 0.10), threshold 0.11; genuine 0.005 .. 0.095 all below
    assert r[0.1].supported and r[0.1].false_accepts == 10 and r[0.1].threshold == pytest.approx(0.11)
    assert r[0.1].tar == 1.0
    # FAR 0.01: one impostor (0.01) accepted, threshold 0.02: genuine 0.005 and 0.015 accepted
    assert r[0.01].false_accepts == 1 and r[0.01].threshold == pytest.approx(0.02)
    assert r[0.01].tar == pytest.approx(0.2) and r[0.01].rough
    # 100 impostor pairs cannot support 10^-3 or 10^-4; the count is still reported
    for far in (1e-3, 1e-4):
        assert not r[far].supported and r[far].tar is None and r[far].impostor_pairs == 100


def test_tar_at_far_never_exceeds_the_level_with_ties():
    d = np.r_[np.full(50, 0.3), np.full(1000, 0.5)]  # all impostors at one distance
    s = np.r_[np.ones(50, bool), np.zeros(1000, bool)]
    for x in ev.tar_at_far(d, s, levels=(0.1, 0.01, 1e-3)):
        assert x.supported and x.false_accepts == 0 and x.tar == 1.0  # accepting any would accept all 1000


def test_supported_level_rule():
    assert ev.far_level_supported(1e-3, 1000) and not ev.far_level_supported(1e-3, 999)
    assert ev.far_level_supported(0.1, 10) and not ev.far_level_supported(0.1, 9)
    d, s = hand_made(n_genuine=20, n_impostor=999)
    r = {x.far: x for x in ev.tar_at_far(d, s)}
    assert r[0.01].supported and not r[1e-3].supported
    assert r[0.01].false_accepts == 9 and r[0.01].rough  # floor(0.01 * 999)
    d, s = hand_made(n_genuine=20, n_impostor=1000)
    r = {x.far: x for x in ev.tar_at_far(d, s)}
    assert r[1e-3].supported and r[1e-3].false_accepts == 1 and r[1e-3].rough
    assert r[1e-3].to_dict()["rough"] is True


def test_threshold_table_rows_match_their_rates():
    d, s = hand_made(50, 500)
    rows = ev.threshold_table(d, s, extra=[(0.25, "model")])
    assert [r["threshold"] for r in rows] == sorted(r["threshold"] for r in rows)
    labels = {r["label"] for r in rows}
    assert "model" in labels and any("EER" in x for x in labels) and any("FAR 0.01" in x for x in labels)
    for r in rows:
        t = r["threshold"]
        assert r["far"] == pytest.approx(np.mean(d[~s] < t)) and r["frr"] == pytest.approx(np.mean(d[s] >= t))
        assert r["accuracy"] == pytest.approx(np.mean((d < t) == s))


def test_det_curve_is_the_roc_as_error_rates():
    d, s = hand_made()
    far, frr, thr = ev.det_curve(d, s)
    far2, tar, thr2 = ev.roc_curve(d, s)
    assert np.array_equal(far, far2) and np.allclose(frr, 1 - tar) and np.array_equal(thr, thr2)


# -- what a threshold means --------------------------------------------------------------------
def test_threshold_sentence():
    c = cal.Calibration("LFW", 1000, 3000, np.array([0.4, 0.6, 0.8]), np.array([0.0, 10 / 3000, 0.2]),
                        np.array([0.2, 0.01, 0.0]))
    assert cal.describe_threshold(c, 0.6) == ("at 0.60: about 1 stranger in 300 accepted, "
                                              "1 % of genuine pairs rejected (LFW)")
    assert cal.describe_threshold(c, 0.3) == ("at 0.30: no stranger among 3000 accepted, "
                                              "20 % of genuine pairs rejected (LFW)")
    assert "no genuine pair among 1000 rejected" in cal.describe_threshold(c, 0.9)
    assert "about 20 % of strangers accepted" in cal.describe_threshold(c, 0.9)
    assert cal.describe_threshold(c, 0.475).startswith("at 0.475: ")  # not rounded to 0.48


def test_calibration_table_round_trip_and_rates():
    d, s = hand_made(200, 2000)
    c = cal.calibration_table(d, s, "hand-made")
    for t, far, frr in zip(c.thresholds, c.far, c.frr):
        assert far == pytest.approx(np.mean(d[~s] < t)) and frr == pytest.approx(np.mean(d[s] >= t))
    back = cal.Calibration.from_dict(json.loads(json.dumps(c.to_dict())))
    assert back is not None and back.source == "hand-made" and back.rates(0.5) == pytest.approx(c.rates(0.5), abs=1e-5)
    with pytest.raises(ValueError):
        cal.calibration_table(d[s], s[s], "genuine only")


@pytest.mark.parametrize("bad", [None, {}, {"source": "x"}, "text",
                                 {"source": "x", "genuine_pairs": 1, "impostor_pairs": 1,
                                  "thresholds": [0.2, 0.1], "far": [0, 1], "frr": [1, 0]},
                                 {"source": "x", "genuine_pairs": 1, "impostor_pairs": 1,
                                  "thresholds": [0.1, 0.2], "far": [0, 2], "frr": [1, 0]}])
def test_malformed_calibration_metadata_is_ignored(bad):
    assert cal.Calibration.from_dict(bad) is None
    assert cal.threshold_meaning({"threshold": 0.5, cal.CALIBRATION_KEY: bad}) is None


def test_bundled_calibration_resource_applies_to_the_same_weights_only(tmp_path, monkeypatch):
    table = cal.Calibration("LFW", 3000, 3000, np.array([0.5, 0.7]), np.array([0.0, 0.01]), np.array([0.1, 0.0]))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / cal.BUNDLED_CALIBRATION_NAME).write_text(json.dumps(
        {"model": {"provenance_sha256": "abc", "architecture": "dlib-resnet29"}, "calibration": table.to_dict()}))
    monkeypatch.setenv("SIAMGUI_RESOURCES", str(tmp_path))
    bundled = {"threshold": 0.6, "provenance": {"sha256": "abc"}, "architecture": {"name": "dlib-resnet29"}}
    assert cal.threshold_meaning(bundled).startswith("at 0.60: about 1 stranger in 200 accepted")
    assert cal.threshold_meaning({**bundled, "provenance": {}}) is None  # e.g. a fine-tuned copy
    own = cal.calibration_table(*hand_made(), "own data")
    assert cal.threshold_meaning({**bundled, cal.CALIBRATION_KEY: own.to_dict()}).endswith("(own data)")


def test_the_real_bundled_calibration_resource_reads():
    from siamgui.core.modelfile import read_metadata
    from siamgui.core.resources import bundled_model_path

    meta = read_metadata(bundled_model_path())
    sentence = cal.threshold_meaning(meta)
    assert sentence is not None and sentence.startswith("at 0.60: ") and sentence.endswith("(LFW)")


def test_use_this_threshold_writes_a_copy(tiny_model, tmp_path):
    from siamgui.core.modelfile import read_metadata

    before = tiny_model.read_bytes()
    table = cal.calibration_table(*hand_made(), "hand-made")
    out = tmp_path / "tuned.safetensors"
    cal.save_with_threshold(tiny_model, out, 0.123, table)
    meta = read_metadata(out)
    assert meta["threshold"] == pytest.approx(0.123) and cal.calibration_for(meta).source == "hand-made"
    assert tiny_model.read_bytes() == before
    with pytest.raises(ModelFileError, match="never overwritten"):
        cal.save_with_threshold(tiny_model, tiny_model, 0.5)
    assert tiny_model.read_bytes() == before


# -- the run -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_verifier(tiny_model):
    from siamgui.core.verifier import Verifier

    return Verifier(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def shapes_result(tiny_verifier, shapes_dir):
    return run_evaluation(tiny_verifier, pairs_from_folder(shapes_dir, 400, 0), worst=3)


def test_run_gives_the_cli_keys_plus_tar_at_far(shapes_result, tiny_verifier, shapes_dir):
    r = shapes_result
    out = r.summary()
    assert set(out) == CLI_KEYS | {"tar_at_far"}
    # the same figures as the metrics functions give on the same distances
    assert out["auc"] == pytest.approx(ev.auc(r.distances, r.same))
    assert out["threshold"] == pytest.approx(tiny_verifier.threshold) and out["pairs"] == 400
    assert [x["far"] for x in out["tar_at_far"]] == list(ev.FAR_LEVELS)
    json.dumps(out)
    assert len(r.worst_accepts) == 3 and len(r.worst_rejects) == 3
    assert [e.distance for e in r.worst_accepts] == sorted(e.distance for e in r.worst_accepts)
    assert [e.distance for e in r.worst_rejects] == sorted((e.distance for e in r.worst_rejects), reverse=True)
    imp = np.sort(r.distances[~r.same])
    assert r.worst_accepts[0].distance == pytest.approx(imp[0])
    for e in r.worst_accepts + r.worst_rejects:
        assert e.error == ((e.distance < r.threshold) != e.same)
        assert e.inputs[0].shape == (32, 32, 3) and e.explanation.maps[0].shape == (32, 32)
    assert "TAR@FAR=0.0001  not supported" in r.summary_text()


def test_run_reports_progress_and_stops_when_cancelled(tiny_verifier, shapes_dir):
    pairset = pairs_from_folder(shapes_dir, 300, 1)
    seen = []
    run_evaluation(tiny_verifier, pairset, progress=seen.append, batch_size=16, worst=1)
    embedding = [p for p in seen if p.stage == "embedding"]
    assert [p.done for p in embedding] == sorted(p.done for p in embedding) and embedding[-1].done == embedding[-1].total
    assert embedding[-1].pairs_scored == 300 and embedding[-1].partial_auc is not None
    assert seen[-1].stage == "done" and "embedding images" in embedding[0].text()
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(EvaluationCancelled):
        run_evaluation(tiny_verifier, pairset, cancel=cancel, batch_size=16)


def test_bad_input_gives_one_clear_message(tiny_verifier, shapes_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="two classes"):
        pairs_from_folder(tmp_path / "empty")
    img = sorted(shapes_dir.rglob("*.png"))[:3]
    one_kind = tmp_path / "same_only.csv"
    one_kind.write_text(f"a,b,same\n{img[0]},{img[1]},1\n{img[1]},{img[2]},1\n")
    with pytest.raises(DatasetError, match="only genuine"):
        run_evaluation(tiny_verifier, pairs_from_csv(one_kind))
    missing = PairSet([(str(img[0]), str(tmp_path / "gone.png"), False), (str(img[0]), str(img[1]), True)],
                      None, "csv", "x.csv")
    with pytest.raises(DatasetError, match="cannot be found"):
        run_evaluation(tiny_verifier, missing)


# -- the report --------------------------------------------------------------------------------
def test_report_is_self_contained(shapes_result, tmp_path):
    path = report.write_report(shapes_result, tmp_path / "r.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for needle in ("<script", "<link", "src='http", 'src="http', "url(http", "@import"):
        assert needle not in page
    assert page.count("<svg") == 3 and "data:image/png;base64," in page and "data:image/jpeg;base64," in page
    assert "not supported: needs at least 10000 impostor pairs" in page
    assert "What the threshold means here:" in page and "Worst impostor pairs" in page
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_report_write_is_atomic(shapes_result, tmp_path, monkeypatch):
    target = tmp_path / "r.html"
    target.write_text("the earlier report")

    def failing_open(path, mode="r", **kw):  # writes half the page, then the disk fills
        fh = open(path, mode, **kw)
        real_write = fh.write

        def write(text):
            real_write(text[:len(text) // 2])
            raise OSError(28, "No space left on device")

        fh.write = write
        return fh

    monkeypatch.setattr(report, "open", failing_open, raising=False)
    with pytest.raises(SiamguiError, match="No space left"):
        report.write_report(shapes_result, target)
    assert target.read_text() == "the earlier report"
    assert os.listdir(tmp_path) == ["r.html"]  # no temporary file left
    monkeypatch.undo()
    with pytest.raises(SiamguiError, match="does not exist"):
        report.write_report(shapes_result, tmp_path / "no" / "r.html")
    assert os.listdir(tmp_path) == ["r.html"]

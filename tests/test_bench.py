"""The benchmark's building blocks: statistics, child processes, and baselines that do the same work.

No timings are asserted here (they would be flaky on shared machines); these
check that the figures the runner computes mean what bench/README.md says.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402


def test_summary_is_median_min_max():
    assert common.summary("x", [3.0, 1.0, 2.0, 10.0]) == {"x": 2.5, "x_min": 1.0, "x_max": 10.0}
    assert common.summary("y", [None, 4.0]) == {"y": 4.0, "y_min": 4.0, "y_max": 4.0}


def test_summary_of_nothing_is_null_not_zero():
    assert common.summary("z", []) == {"z": None, "z_min": None, "z_max": None}


@pytest.mark.parametrize("q", [0, 50, 90, 99, 100])
def test_percentile_matches_numpy(q):
    vals = [5.0, 1.0, 7.5, 2.0, 9.0, 3.3, 4.4]
    assert common.percentile(vals, q) == pytest.approx(float(np.percentile(vals, q)))


def test_run_child_reports_that_childs_own_peak_rss():
    small = common.run_child([sys.executable, "-c", "pass"])
    big = common.run_child([sys.executable, "-c", "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"])
    assert small[0] == 0 and big[0] == 0
    assert big[2] > small[2] + 150  # MB: the 200 MB buffer shows in the big child only


@pytest.mark.parametrize("flip", [False, True])
def test_tutorial_baseline_gives_the_verifiers_distance(tiny_model, shapes_dir, flip):
    from bench.baselines import TutorialVerifier
    from siamgui.core.verifier import Verifier

    v = Verifier(str(tiny_model), device="cpu", precision="float32")  # the tutorial's arithmetic
    v.flip_average = flip  # the same work on both sides, mirror averaging included
    base = TutorialVerifier(v.loaded.network, v.loaded.spec, v.threshold, v.loaded.distance, flip)
    files = sorted(str(p) for p in Path(shapes_dir).rglob("*.png"))
    for a, b in [(files[0], files[1]), (files[0], files[-1])]:
        ours = v.compare(a, b)
        d, same = base.compare(a, b)
        assert d == pytest.approx(ours.distance, rel=1e-3, abs=1e-4)
        assert same == ours.same


def test_naive_training_loop_trains(shapes_dir):
    import torch

    from bench.baselines import NaivePairDataset, naive_train
    from siamgui.core.datasets import scan_folder
    from siamgui.core.models import build_encoder
    from siamgui.core.preprocess import preset_spec

    ds = scan_folder(shapes_dir)
    spec = preset_spec("generic", 32)
    torch.manual_seed(0)
    net = build_encoder("compact-cnn", in_channels=3, embedding_dim=8, width=4)
    before = [p.detach().clone() for p in net.parameters()]
    out = naive_train(net, NaivePairDataset(ds.paths, ds.labels, 24, spec), batch_size=8, steps=2)
    assert out["steps"] == 2 and out["pairs_per_s"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_glyph_generator_is_seeded_and_writes_its_classes(tmp_path):
    from siamgui.core.synthetic import make_glyph_dataset

    a = make_glyph_dataset(tmp_path / "a", n_classes=3, per_class=2, size=24, seed=4, colour=True, clutter=2)
    b = make_glyph_dataset(tmp_path / "b", n_classes=3, per_class=2, size=24, seed=4, colour=True, clutter=2)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 6 and len({f.parent for f in files}) == 3
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    c = make_glyph_dataset(tmp_path / "c", n_classes=3, per_class=2, size=24, seed=5)
    assert (a / files[0]).read_bytes() != (c / files[0]).read_bytes()


def test_train_suite_splits_by_class_and_scores_unseen_pairs(tmp_path):
    from bench import train_suite
    from siamgui.core.synthetic import make_glyph_dataset

    prepare = train_suite._synthetic(lambda d: make_glyph_dataset(d, n_classes=6, per_class=3, size=24, seed=1),
                                     "test set", test_fraction=1 / 3)
    data = prepare(tmp_path)
    train_classes = {p.name for p in data.train_dir.iterdir()}
    pairs = data.tests["unseen"]
    seen_in_pairs = {Path(p).parent.name for a, b, _ in pairs for p in (a, b)}
    assert len(train_classes) == 4 and len(seen_in_pairs) == 2 and not train_classes & seen_in_pairs
    assert {same for _, _, same in pairs} == {True, False}


def test_train_suite_table_says_who_wins():
    from bench.train_suite import outcome, table

    ours, plain = {"auc": 0.9, "eer": 0.2, "accuracy": 0.8}, {"auc": 0.95, "eer": 0.1, "accuracy": 0.9}
    row = {"dataset": "x", "budget_s": 60.0, "outcome": outcome(ours, plain), "siamgui": ours, "baseline": plain}
    skipped = {"dataset": "lfw-scratch", "error": "no pairsDevTest.txt", "siamgui": {}, "baseline": {}}
    lines = table([row, skipped]).splitlines()
    assert lines[2].split()[-1] == "loses" and "0.9500" in lines[2]
    assert "skipped: no pairsDevTest.txt" in lines[3]
    assert outcome(plain, ours) == "beats"
    perfect = {"auc": 1.0, "eer": 0.0}
    assert outcome(perfect, {"auc": 0.99999, "eer": 0.0001}) == "ties"  # a difference the table cannot show
    assert outcome({"auc": 0.96, "eer": 0.12}, {"auc": 0.95, "eer": 0.11}) == "mixed"  # higher AUC, worse EER
    assert outcome({"auc": 0.95, "eer": 0.10}, {"auc": 0.95, "eer": 0.11}) == "beats"  # equal AUC, better EER

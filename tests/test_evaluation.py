"""Metrics on cases worked out by hand."""

import numpy as np
import pytest

from siamgui.core import evaluation as ev


def test_perfect_separation():
    d = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    same = [1, 1, 1, 0, 0, 0]
    assert ev.auc(d, same) == pytest.approx(1.0)
    rate, t = ev.eer(d, same)
    assert rate == pytest.approx(0.0) and 0.3 <= t <= 0.7
    t_best, acc = ev.best_threshold(d, same)
    assert acc == 1.0 and 0.3 < t_best < 0.7
    assert ev.accuracy_at(d, same, 0.5) == 1.0
    assert ev.accuracy_at(d, same, 0.25) == pytest.approx(5 / 6)


def test_known_auc_with_one_inversion():
    # same: 0.1, 0.4 ; different: 0.3, 0.9 -> of the 4 (same, diff) orderings, 3 are right
    assert ev.auc([0.1, 0.4, 0.3, 0.9], [1, 1, 0, 0]) == pytest.approx(0.75)


def test_auc_equals_rank_statistic_on_random_data():
    rng = np.random.default_rng(0)
    d = np.r_[rng.normal(0.5, 0.2, 300), rng.normal(0.9, 0.2, 300)]
    s = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    wins = (d[s][:, None] < d[~s][None, :]).mean() + 0.5 * (d[s][:, None] == d[~s][None, :]).mean()
    assert ev.auc(d, s) == pytest.approx(wins, abs=1e-9)


def test_eer_symmetric_case():
    # same ~ {1,2,3,4}, different ~ {3.5,5,6,7}: one error on each side at a threshold in (3.5, 4]
    d = [1, 2, 3, 4, 3.5, 5, 6, 7]
    s = [1, 1, 1, 1, 0, 0, 0, 0]
    rate, t = ev.eer(d, s)
    assert rate == pytest.approx(0.25)
    assert ev.accuracy_at(d, s, t) == pytest.approx(0.75)


def test_threshold_at_far():
    d = np.r_[np.linspace(0, 1, 10), np.linspace(0.5, 1.5, 100)]
    s = np.r_[np.ones(10, bool), np.zeros(100, bool)]
    t = ev.threshold_at_far(d, s, 0.05)
    far = np.mean(d[~s] < t)
    assert far <= 0.05 and far >= 0.04
    assert ev.threshold_at_far(d, s, 0.0) == pytest.approx(0.5)  # nothing below the closest different pair


def test_roc_curve_endpoints_and_monotone():
    rng = np.random.default_rng(1)
    d = rng.random(50)
    s = rng.random(50) < 0.5
    far, tar, thr = ev.roc_curve(d, s)
    assert (far[0], tar[0], far[-1], tar[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(far) >= 0) and np.all(np.diff(tar) >= 0) and np.all(np.diff(thr) > 0)
    # each point's rates are those of its threshold
    for f, t_, th in zip(far, tar, thr):
        assert f == pytest.approx(np.mean(d[~s] < th)) and t_ == pytest.approx(np.mean(d[s] < th))


def test_tenfold_and_histograms():
    rng = np.random.default_rng(2)
    d = np.r_[rng.normal(0.4, 0.1, 500), rng.normal(0.8, 0.1, 500)]
    s = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    folds = np.tile(np.arange(10), 100)
    mean, std = ev.tenfold_accuracy(d, s, folds)
    assert 0.95 < mean < 1.0 and std < 0.05
    h = ev.histograms(d, s, bins=10)
    assert sum(h["same"]) == 500 and sum(h["different"]) == 500 and len(h["edges"]) == 11


def test_bad_inputs():
    with pytest.raises(ValueError):
        ev.auc([], [])
    with pytest.raises(ValueError):
        ev.auc([0.1, float("nan")], [1, 0])

"""N-way K-shot evaluation: sampling, a hand-computed case, the model path and the CLI."""

import json
import math

import numpy as np
import pytest

from siamgui.core.errors import DatasetError, SiamguiError
from siamgui.core.gallery.oneshot import (Episode, episode_predictions, evaluate_embeddings, sample_episodes,
                                  summarise)

# 1-D embeddings chosen by hand: class 0 = images 0-2, class 1 = 3-5, class 2 = 6-8
EMB = np.array([0.0, 0.2, 5.0, 1.0, 1.1, 1.3, 9.0, 9.5, 10.0])
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])


def dist_1d(a, b):
    return np.abs(EMB[a] - EMB[b])


def test_hand_computed_episodes():
    eps = [
        # query 0.2 (class 0): class 0 support {0.0, 5.0} -> min 0.2, mean 2.5; class 1 {1.0, 1.1} -> 0.8, 0.85
        Episode(np.array([0, 1]), np.array([[0, 2], [3, 4]]), query=1, answer=0),
        # query 1.3 (class 1): class 1 {1.0, 1.1} -> 0.2, 0.25; class 0 {0.0, 0.2} -> 1.1, 1.2
        Episode(np.array([1, 0]), np.array([[3, 4], [0, 1]]), query=5, answer=0),
        # query 9.0 (class 2) vs class 1 {1.1, 1.3} and class 2 {9.5, 10.0}: both rules say class 2 (position 1)
        Episode(np.array([1, 2]), np.array([[4, 5], [7, 8]]), query=6, answer=1),
        # query 5.0 (class 0): class 2 {9.0, 9.5} -> 4.0, 4.25; class 0 {0.0, 0.2} -> 4.8, 4.9: wrong by both
        Episode(np.array([2, 0]), np.array([[6, 7], [0, 1]]), query=2, answer=1),
    ]
    assert episode_predictions(eps, dist_1d, "min").tolist() == [0, 0, 1, 0]
    assert episode_predictions(eps, dist_1d, "mean").tolist() == [1, 0, 1, 0]
    answers = np.array([e.answer for e in eps])
    r = summarise(episode_predictions(eps, dist_1d, "min") == answers, way=2, shots=2, rank="min")
    assert (r.correct, r.episodes, r.accuracy, r.chance) == (3, 4, 0.75, 0.5)
    assert r.ci95 == pytest.approx(1.96 * math.sqrt(0.75 * 0.25 / 4), rel=1e-3)  # 0.4244
    assert (r.ci_low, r.ci_high) == (pytest.approx(0.3006, abs=1e-4), pytest.approx(0.9544, abs=1e-4))  # Wilson
    r = summarise(episode_predictions(eps, dist_1d, "mean") == answers, way=2, shots=2, rank="mean")
    assert r.accuracy == 0.5
    perfect = summarise(np.ones(10, bool), 5, 1, "min")
    assert perfect.ci95 == 0 and perfect.ci_high == 1.0 and 0.65 < perfect.ci_low < 0.75


def test_sampling_is_seeded_and_follows_the_protocol():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(8), rng.integers(2, 6, 8))
    labels = np.r_[labels, 8]  # a class with one image: only usable for 1-shot support
    a = sample_episodes(labels, way=4, shots=2, episodes=60, seed=5)
    b = sample_episodes(labels, way=4, shots=2, episodes=60, seed=5)
    c = sample_episodes(labels, way=4, shots=2, episodes=60, seed=6)
    key = lambda eps: [(e.classes.tolist(), e.support.tolist(), e.query) for e in eps]  # noqa: E731
    assert key(a) == key(b) and key(a) != key(c)
    for e in a:
        assert len(set(e.classes.tolist())) == 4 and 8 not in e.classes
        for row, cls in zip(e.support, e.classes):
            assert len(set(row.tolist())) == 2 and (labels[row] == cls).all()
        assert labels[e.query] == e.classes[e.answer] and e.query not in e.support.ravel()
    answers = np.array([e.answer for e in a])
    assert len(set(answers.tolist())) > 1  # the query's position is not fixed
    with pytest.raises(DatasetError, match="9-way"):
        sample_episodes(labels, way=9, shots=2, episodes=1)
    with pytest.raises(SiamguiError):
        sample_episodes(labels, way=1, shots=1, episodes=1)


def test_evaluate_embeddings_matches_a_plain_loop():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(6), 5)
    emb = rng.normal(size=(6, 3))[labels] + rng.normal(scale=1.2, size=(30, 3))
    for distance in ("euclidean", "cosine"):
        for rank in ("min", "mean"):
            res = evaluate_embeddings(emb, labels, way=3, shots=2, episodes=200, seed=9, rank=rank,
                                      distance=distance)
            correct = 0
            for e in sample_episodes(labels, 3, 2, 200, 9):
                scores = []
                for row in e.support:
                    ds = []
                    for s in row:
                        x, y = emb[e.query], emb[s]
                        if distance == "euclidean":
                            ds.append(math.sqrt(sum((x - y) ** 2)))
                        else:
                            ds.append(1 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
                    scores.append(min(ds) if rank == "min" else sum(ds) / len(ds))
                correct += int(np.argmin(scores) == e.answer)
            assert res.correct == correct and res.episodes == 200
            assert 1 / 3 < res.accuracy < 1  # separable enough to beat chance, noisy enough to err


def test_run_one_shot_with_a_model_and_the_cli(tiny_model, shapes_dir, capsys):
    from siamgui.cli import main
    from siamgui.core.datasets import scan_folder
    from siamgui.core.gallery.oneshot import run_one_shot
    from siamgui.core.verifier import Verifier

    v = Verifier(tiny_model, device="cpu")
    calls = []
    res = run_one_shot(v, shapes_dir, way=5, shots=1, episodes=80, seed=3,
                       progress=lambda d, t: calls.append((d, t)))
    ds = scan_folder(shapes_dir)
    emb = v.embed(ds.paths).numpy()
    ref = evaluate_embeddings(emb, ds.labels, 5, 1, 80, seed=3)
    assert res.correct == ref.correct and res.episodes == 80 and res.classes == 12
    assert calls[-1][0] == calls[-1][1] <= len(ds)
    code = main(["evaluate", "--model", str(tiny_model), "--one-shot", str(shapes_dir), "--way", "5", "--shots",
                 "1", "--episodes", "80", "--seed", "3", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    got = json.loads(out.out)
    assert got["accuracy"] == res.accuracy and got["way"] == 5 and got["shots"] == 1
    assert {"ci95", "ci_low", "ci_high", "episodes", "chance"} <= set(got)
    code = main(["evaluate", "--model", str(tiny_model), "--one-shot", str(shapes_dir), "--way", "20"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "20-way" in err

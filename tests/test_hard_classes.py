"""Class-level hard mining: P x K batches hold look-alike classes (nearest running centroids)."""

import numpy as np
import pytest
import torch

from siamgui.core.distances import EuclideanDistance
from siamgui.core.training.objective import make_objective
from siamgui.core.training.sampling import ClassCentroids, TripletSampler


def twin_classes(n_twins=12, per_class=4, dim=8, seed=0):
    """Classes 2i and 2i+1 have centroids close together; twins are far from each other."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(2 * n_twins), per_class)
    centres = np.repeat(rng.normal(scale=10.0, size=(n_twins, dim)), 2, axis=0)
    centres += rng.normal(scale=0.1, size=centres.shape)
    emb = centres[labels] + rng.normal(scale=0.01, size=(len(labels), dim))
    return labels, emb.astype(np.float32)


def test_centroids_are_running_means_of_the_batches():
    c = ClassCentroids(3)
    c.update(np.array([0, 0, 2]), np.array([[1.0, 0.0], [3.0, 0.0], [5.0, 5.0]]))
    np.testing.assert_allclose(c.means[0], [2.0, 0.0])
    assert c.seen.tolist() == [True, False, True]
    c.update(np.array([0]), np.array([[4.0, 2.0]]))
    np.testing.assert_allclose(c.means[0], [3.0, 1.0])  # momentum 0.5
    c.update(np.array([7]), np.array([[9.0, 9.0]]))  # a forgery's own label (>= n_classes) is ignored
    assert c.seen.sum() == 2


def test_hard_batches_pair_each_class_with_its_look_alike():
    labels, emb = twin_classes()
    c = ClassCentroids(int(labels.max()) + 1)
    c.NEAREST = 1
    c.update(labels, emb)
    sampler = TripletSampler(labels, seed=3)
    twins_hard, twins_random = 0, 0
    for _ in range(40):
        for frac, counter in ((0.5, "hard"), (0.0, "random")):
            idx = sampler.pk_batch(16, k=4, centroids=c, hard_fraction=frac)
            classes = set(labels[idx].tolist())
            twins = sum(1 for k in classes if k % 2 == 0 and k + 1 in classes)
            if counter == "hard":
                twins_hard += twins
            else:
                twins_random += twins
    # 4 classes per batch, 2 of them look-alikes of the other 2: both twin pairs complete (unless a
    # random pick completed one already); random batches rarely hold a twin pair
    assert twins_hard >= 70, twins_hard
    assert twins_random < twins_hard / 3, (twins_random, twins_hard)


def test_without_seen_classes_the_batch_is_random_and_complete():
    labels, _ = twin_classes()
    sampler = TripletSampler(labels, seed=1)
    idx = sampler.pk_batch(16, k=4, centroids=ClassCentroids(int(labels.max()) + 1), hard_fraction=0.5)
    assert len(idx) == 16 and len(set(labels[idx].tolist())) == 4


def test_triplet_objective_sampler_learns_from_observed_batches():
    labels, emb = twin_classes()
    objective = make_objective("triplet", 0.2, EuclideanDistance())
    sampler = objective.sampler(labels, 8, 0, hard_classes=0.5)
    for _ in range(100):
        (idx,) = sampler.sample()
        sampler.observe(labels[idx], torch.from_numpy(emb[idx]))
    assert sampler.centroids.seen.all()
    with pytest.raises(AttributeError):  # random batches keep no centroids
        objective.sampler(labels, 8, 0).centroids.seen

"""Losses and distances against hand-written per-pair loops."""

import math

import pytest
import torch

from siamgui.core.distances import CosineDistance, EuclideanDistance, get_distance
from siamgui.core.losses import ContrastiveLoss, TripletLoss


def _euclid(u, v):
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(u, v)))


def _cosine(u, v):
    dot = sum(float(x) * float(y) for x, y in zip(u, v))
    nu = math.sqrt(sum(float(x) ** 2 for x in u))
    nv = math.sqrt(sum(float(x) ** 2 for x in v))
    return 1.0 - dot / (nu * nv)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("margin", [0.5, 1.0, 2.0])
def test_contrastive_matches_hand_loop(dtype, tol, margin):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(33, 8, generator=g, dtype=dtype)
    b = torch.randn(33, 8, generator=g, dtype=dtype) * 0.3 + a * 0.5
    y = torch.randint(0, 2, (33,), generator=g)  # 1 = dissimilar
    got = ContrastiveLoss(margin)(a, b, y)
    total = 0.0
    for i in range(33):
        d = _euclid(a[i], b[i])
        if y[i] == 0:
            total += 0.5 * d * d
        else:
            total += 0.5 * max(0.0, margin - d) ** 2
    assert float(got) == pytest.approx(total / 33, rel=tol, abs=tol)


def test_contrastive_label_meaning():
    """Y=1 (dissimilar) pairs closer than the margin cost; Y=0 pairs cost their distance."""
    a = torch.zeros(1, 2)
    b = torch.tensor([[0.3, 0.4]])  # distance 0.5
    loss = ContrastiveLoss(margin=1.0)
    assert float(loss(a, b, torch.tensor([0]))) == pytest.approx(0.5 * 0.25, abs=1e-6)
    assert float(loss(a, b, torch.tensor([1]))) == pytest.approx(0.5 * 0.25, abs=1e-6)
    far = torch.tensor([[3.0, 4.0]])  # distance 5, beyond the margin
    assert float(loss(a, far, torch.tensor([1]))) == pytest.approx(0.0, abs=1e-7)
    assert float(loss(a, far, torch.tensor([0]))) == pytest.approx(12.5, abs=1e-5)


def test_contrastive_with_cosine_matches_loop():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(20, 5, generator=g), torch.randn(20, 5, generator=g)
    y = torch.randint(0, 2, (20,), generator=g)
    got = ContrastiveLoss(0.7, CosineDistance())(a, b, y)
    exp = sum(0.5 * _cosine(a[i], b[i]) ** 2 if y[i] == 0 else 0.5 * max(0, 0.7 - _cosine(a[i], b[i])) ** 2
              for i in range(20)) / 20
    assert float(got) == pytest.approx(exp, rel=1e-5)


@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_triplet_matches_hand_loop(margin):
    g = torch.Generator().manual_seed(1)
    a, p, n = (torch.randn(17, 6, generator=g, dtype=torch.float64) for _ in range(3))
    got = TripletLoss(margin)(a, p, n)
    exp = sum(max(0.0, _euclid(a[i], p[i]) - _euclid(a[i], n[i]) + margin) for i in range(17)) / 17
    assert float(got) == pytest.approx(exp, rel=1e-9)


def test_batch_hard_matches_hand_loop():
    g = torch.Generator().manual_seed(2)
    e = torch.randn(12, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4, 5])
    got = TripletLoss(0.3).batch_hard(e, labels)
    losses = []
    for i in range(12):
        pos = [_euclid(e[i], e[j]) for j in range(12) if j != i and labels[j] == labels[i]]
        neg = [_euclid(e[i], e[j]) for j in range(12) if labels[j] != labels[i]]
        if pos and neg:
            losses.append(max(0.0, max(pos) - min(neg) + 0.3))
    assert float(got) == pytest.approx(sum(losses) / len(losses), rel=1e-6)


def test_batch_hard_without_positives_is_zero_and_differentiable():
    e = torch.randn(4, 3, requires_grad=True)
    loss = TripletLoss().batch_hard(e, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert float(loss) == 0.0 and e.grad is not None


@pytest.mark.parametrize("loss_fn", ["contrastive", "triplet", "batch_hard"])
def test_gradients_flow(loss_fn):
    from siamgui.core.models import SiameseNetwork, build_encoder

    net = SiameseNetwork(build_encoder("compact-cnn", in_channels=1, embedding_dim=8, width=4))
    x = torch.randn(6, 1, 24, 24)
    if loss_fn == "contrastive":
        ea, eb = net(x[:3], x[3:])
        loss = ContrastiveLoss(1.0)(ea, eb, torch.tensor([0, 1, 1]))
    elif loss_fn == "triplet":
        e = net.embed(x)
        loss = TripletLoss(1.0)(e[:2], e[2:4], e[4:])
    else:
        loss = TripletLoss(5.0).batch_hard(net.embed(x), torch.tensor([0, 0, 1, 1, 2, 2]))
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g_ is not None for g_ in grads)
    assert sum(float(g_.abs().sum()) for g_ in grads) > 0


def test_euclidean_gradient_finite_at_zero_distance():
    a = torch.ones(2, 3, requires_grad=True)
    ContrastiveLoss(1.0)(a, a.detach().clone(), torch.tensor([0, 1])).backward()
    assert torch.isfinite(a.grad).all()


def test_distance_matrix_matches_pairwise():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(5, 7, generator=g), torch.randn(4, 7, generator=g)
    for d in (EuclideanDistance(), CosineDistance()):
        m = d.matrix(a, b)
        for i in range(5):
            for j in range(4):
                assert float(m[i, j]) == pytest.approx(float(d.pairwise(a[i:i + 1], b[j:j + 1])[0]), abs=1e-5)
        assert d.higher_is_closer is False


def test_unknown_distance():
    with pytest.raises(ValueError):
        get_distance("manhattan")


# -- objectives: the one interface the training loop sees -----------------------------------
@pytest.mark.parametrize("name", ["contrastive", "triplet"])
def test_every_objective_samples_batches_and_turns_them_into_a_loss(name):
    import numpy as np

    from siamgui.core.training.objective import OBJECTIVES, make_objective

    assert name in OBJECTIVES
    labels = np.repeat(np.arange(6), 5)
    objective = make_objective(name, 0.5, CosineDistance())
    assert objective.distance.name == "cosine"
    parts = objective.sampler(labels, 8, 0).sample()
    again = objective.sampler(labels, 8, 0).sample()
    assert all(np.array_equal(p, q) for p, q in zip(parts, again))
    idx = np.concatenate(parts)
    assert len(idx) == 16  # as many images per step for every loss
    e = torch.randn(len(idx), 4, requires_grad=True)
    loss = objective.loss(e, torch.from_numpy(labels[idx]))
    loss.backward()
    assert loss.ndim == 0 and math.isfinite(float(loss)) and e.grad is not None


def test_contrastive_objective_is_the_contrastive_loss_on_its_pair_halves():
    import numpy as np

    from siamgui.core.training.objective import ContrastiveObjective

    labels = np.repeat(np.arange(5), 4)
    objective = ContrastiveObjective(1.5, EuclideanDistance())
    a, b = objective.sampler(labels, 10, 3).sample()
    e = torch.randn(20, 6, generator=torch.Generator().manual_seed(2))
    lab = torch.from_numpy(labels[np.r_[a, b]])
    want = ContrastiveLoss(1.5)(e[:10], e[10:], torch.from_numpy((labels[a] != labels[b]).astype(np.int64)))
    assert float(objective.loss(e, lab)) == pytest.approx(float(want), abs=1e-7)
    ia, ib = torch.tensor([0, 4, 8]), torch.tensor([1, 12, 9])
    val = objective.validation_loss(e, lab, (ia, ib))
    assert float(val) == pytest.approx(float(ContrastiveLoss(1.5)(e[ia], e[ib], (lab[ia] != lab[ib]).long())))


def test_triplet_objective_is_batch_hard_on_pk_batches():
    import numpy as np

    from siamgui.core.training.objective import TripletObjective

    labels = np.repeat(np.arange(8), 5)
    objective = TripletObjective(0.3, EuclideanDistance())
    (idx,) = objective.sampler(labels, 8, 1).sample()
    assert len(idx) == 16 and all(n >= 2 for n in np.bincount(labels[idx]) if n)
    e = torch.randn(16, 5, generator=torch.Generator().manual_seed(4))
    lab = torch.from_numpy(labels[idx])
    want = float(TripletLoss(0.3).batch_hard(e, lab))
    assert float(objective.loss(e, lab)) == want
    assert float(objective.validation_loss(e, lab, (torch.tensor([0]), torch.tensor([1])))) == want

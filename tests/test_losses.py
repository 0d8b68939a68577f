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

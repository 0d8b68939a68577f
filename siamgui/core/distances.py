"""Distances between embeddings, as small objects (after pytorch-metric-learning).

Every distance here is a *dissimilarity*: larger means farther apart, and two
inputs are "same" when the distance is **below** the threshold. Cosine is
reported as ``1 - cos`` so the rule is the same for both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Distance:
    name = "base"
    #: True when a larger value means *more* similar. All ours are False.
    higher_is_closer = False

    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Row-wise distance between ``a[i]`` and ``b[i]``: shape ``(N,)``."""
        raise NotImplementedError

    def matrix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """All-pairs distance: shape ``(len(a), len(b))``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EuclideanDistance(Distance):
    name = "euclidean"

    def __init__(self, eps: float = 1e-12):
        self.eps = eps

    def pairwise(self, a, b):
        # sqrt with an eps inside keeps the gradient finite at D == 0
        return torch.sqrt(((a - b) ** 2).sum(dim=-1) + self.eps)

    def matrix(self, a, b):
        sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1).unsqueeze(0) - 2.0 * a @ b.T
        return torch.sqrt(sq.clamp_min(0.0) + self.eps)


class CosineDistance(Distance):
    """``1 - cosine similarity``, in [0, 2]."""

    name = "cosine"

    def pairwise(self, a, b):
        return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)

    def matrix(self, a, b):
        return 1.0 - F.normalize(a, dim=1, eps=1e-8) @ F.normalize(b, dim=1, eps=1e-8).T


_DISTANCES = {"euclidean": EuclideanDistance, "cosine": CosineDistance}


def get_distance(name: str) -> Distance:
    try:
        return _DISTANCES[name.lower()]()
    except KeyError:
        raise ValueError(f"Unknown distance {name!r}; choose from {', '.join(_DISTANCES)}") from None


def distance_names() -> list[str]:
    return list(_DISTANCES)

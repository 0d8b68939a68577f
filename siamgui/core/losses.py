"""Metric-learning losses.

Label convention, said once: **Y = 1 means the pair is dissimilar** (different
classes), Y = 0 means similar, exactly as in the contrastive formula

    L = (1 - Y) * 1/2 * D^2 + Y * 1/2 * max(0, m - D)^2

Tensors holding this label are named ``dissimilar``.
"""

from __future__ import annotations

import torch
from torch import nn

from siamgui.core.distances import Distance, EuclideanDistance


class ContrastiveLoss(nn.Module):
    """Contrastive loss (Hadsell, Chopra, LeCun 2006), mean over the pairs."""

    def __init__(self, margin: float = 1.0, distance: Distance | None = None):
        super().__init__()
        self.margin = float(margin)
        self.distance = distance or EuclideanDistance()

    def forward(self, emb_a: torch.Tensor, emb_b: torch.Tensor, dissimilar: torch.Tensor) -> torch.Tensor:
        d = self.distance.pairwise(emb_a, emb_b)
        y = dissimilar.to(d.dtype)
        similar_term = (1.0 - y) * 0.5 * d.pow(2)
        dissimilar_term = y * 0.5 * torch.clamp(self.margin - d, min=0.0).pow(2)
        return (similar_term + dissimilar_term).mean()


class TripletLoss(nn.Module):
    """Triplet loss ``max(0, d(a,p) - d(a,n) + m)``.

    ``forward(anchor, positive, negative)`` averages over the given triplets.
    ``batch_hard(embeddings, labels)`` mines, for each anchor in the batch, its
    farthest positive and nearest negative (Hermans et al. 2017); anchors with
    no positive or no negative in the batch are left out.
    """

    def __init__(self, margin: float = 0.2, distance: Distance | None = None):
        super().__init__()
        self.margin = float(margin)
        self.distance = distance or EuclideanDistance()

    def forward(self, anchor, positive, negative):
        d_ap = self.distance.pairwise(anchor, positive)
        d_an = self.distance.pairwise(anchor, negative)
        return torch.clamp(d_ap - d_an + self.margin, min=0.0).mean()

    def batch_hard(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dist = self.distance.matrix(embeddings, embeddings)
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos_mask = same & ~eye
        neg_mask = ~same
        valid = pos_mask.any(1) & neg_mask.any(1)
        if not bool(valid.any()):
            return embeddings.sum() * 0.0  # keeps the graph; no valid triplet
        hardest_pos = torch.where(pos_mask, dist, torch.full_like(dist, float("-inf"))).max(1).values
        hardest_neg = torch.where(neg_mask, dist, torch.full_like(dist, float("inf"))).min(1).values
        loss = torch.clamp(hardest_pos - hardest_neg + self.margin, min=0.0)
        return loss[valid].mean()

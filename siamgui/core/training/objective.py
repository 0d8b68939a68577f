"""Training objectives: which batches a loss wants, and one batch's loss.

After pytorch-metric-learning, every objective has one call signature,
``loss(embeddings, labels)``: the embeddings of one batch (in the order its
sampler gave the images) and their class labels; the distance is injected.
The loop knows nothing else about the loss, so a new one is a new class here
and an entry in :data:`OBJECTIVES`.
"""

from __future__ import annotations

import numpy as np
import torch

from siamgui.core.distances import Distance
from siamgui.core.losses import ContrastiveLoss, TripletLoss
from siamgui.core.training.sampling import ClassCentroids, PairSampler, TripletSampler


class BatchSampler:
    """Draws training batches: each batch is a tuple of image-index arrays (parts).

    The loop augments each part on its own, concatenates them in order and
    embeds them in one forward pass.
    """

    def sample(self) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def observe(self, labels: np.ndarray, embeddings: torch.Tensor) -> None:
        """The last batch's labels and (detached) embeddings, for samplers that mine from them."""


class Objective:
    name = "base"
    #: The margin this loss wants when none is given; None = the preset's margin.
    default_margin: float | None = None

    def __init__(self, margin: float, distance: Distance):
        self.margin = float(margin)
        self.distance = distance

    def sampler(self, labels: np.ndarray, batch_size: int, seed: int | np.random.Generator,
                forgery_of: np.ndarray | None = None, hard_classes: float = 0.0) -> BatchSampler:
        """A seeded sampler of the batches this loss wants, over the training ``labels``
        (``forgery_of``: the class each skilled forgery forges, -1 for genuine images;
        ``hard_classes``: the share of a batch's classes chosen as look-alikes of the others,
        where the loss's batches have classes to choose)."""
        raise NotImplementedError

    def loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mean loss of one sampled batch (embeddings in the sampler's order)."""
        raise NotImplementedError

    def validation_loss(self, embeddings: torch.Tensor, labels: torch.Tensor,
                        pairs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The loss on the validation set: every validation image, and the fixed validation ``pairs``."""
        return self.loss(embeddings, labels)


class _PairBatches(BatchSampler):
    def __init__(self, labels: np.ndarray, batch_size: int, seed, forgery_of=None):
        self.pairs = PairSampler(labels, seed, forgery_of)
        self.batch_size = int(batch_size)

    def sample(self):
        a, b, _ = self.pairs.sample(self.batch_size)
        return a, b


class ContrastiveObjective(Objective):
    """Contrastive loss on balanced pairs; a batch is ``batch_size`` pairs, first images then second."""

    name = "contrastive"

    def __init__(self, margin: float, distance: Distance):
        super().__init__(margin, distance)
        self._loss = ContrastiveLoss(margin, distance)

    def sampler(self, labels, batch_size, seed, forgery_of=None, hard_classes=0.0):
        return _PairBatches(labels, batch_size, seed, forgery_of)

    def loss(self, embeddings, labels):
        n = len(embeddings) // 2
        return self._pair_loss(embeddings[:n], embeddings[n:], labels[:n], labels[n:])

    def validation_loss(self, embeddings, labels, pairs):
        a, b = pairs
        return self._pair_loss(embeddings[a], embeddings[b], labels[a], labels[b])

    def _pair_loss(self, emb_a, emb_b, labels_a, labels_b):
        return self._loss(emb_a, emb_b, (labels_a != labels_b).long())  # Y = 1: dissimilar


class _PKBatches(BatchSampler):
    def __init__(self, labels: np.ndarray, batch_size: int, seed, forgery_of=None, hard_classes: float = 0.0):
        self.triplets = TripletSampler(labels, seed, forgery_of)
        self.batch_size = int(batch_size)
        self.hard_classes = float(hard_classes)
        self.centroids = ClassCentroids(len(self.triplets.pairs.by_class)) if self.hard_classes > 0 else None

    def sample(self):
        # twice the images of a pair batch: about as many images per step as contrastive
        return (self.triplets.pk_batch(2 * self.batch_size, centroids=self.centroids,
                                       hard_fraction=self.hard_classes),)

    def observe(self, labels, embeddings):
        if self.centroids is not None:
            self.centroids.update(labels, embeddings.detach().float().cpu().numpy())


class TripletObjective(Objective):
    """Batch-hard triplet loss on P x K batches (Hermans et al. 2017)."""

    name = "triplet"
    default_margin = 0.2

    def __init__(self, margin: float, distance: Distance):
        super().__init__(margin, distance)
        self._loss = TripletLoss(margin, distance)

    def sampler(self, labels, batch_size, seed, forgery_of=None, hard_classes=0.0):
        return _PKBatches(labels, batch_size, seed, forgery_of, hard_classes)

    def loss(self, embeddings, labels):
        return self._loss.batch_hard(embeddings, labels)


#: The losses training offers, by the name in :class:`TrainConfig` and the model file.
OBJECTIVES: dict[str, type[Objective]] = {
    ContrastiveObjective.name: ContrastiveObjective,
    TripletObjective.name: TripletObjective,
}
LOSSES = tuple(OBJECTIVES)


def make_objective(name: str, margin: float, distance: Distance) -> Objective:
    return OBJECTIVES[name](margin, distance)

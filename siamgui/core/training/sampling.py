"""Seeded batch sampling from class labels: balanced pairs, triplets, P x K batches.

Driven only by the labels and a seeded ``numpy.random.Generator``: one seed,
one sequence of batches, whatever the thread count.
"""

from __future__ import annotations

import numpy as np

from siamgui.core.errors import DatasetError


class PairSampler:
    """Class-balanced pairs: half same-class, half different-class.

    Same pairs: a class with 2+ images is drawn uniformly, then two distinct
    images of it. Different pairs: two distinct classes are drawn uniformly (any
    class, single-image ones too), then one image of each. Driven only by the
    labels and a seeded ``numpy.random.Generator``.

    Skilled forgeries (``forgery_of[i]`` = the class image ``i`` forges, -1 for a
    genuine image) are never in a same pair and never drawn as a random class:
    half the different pairs become (genuine of C, forgery of C) for a class C
    that has forgeries.
    """

    #: Share of the different pairs that are (genuine, skilled forgery of it) when there are forgeries.
    FORGERY_SHARE = 0.5

    def __init__(self, labels: np.ndarray, seed: int | np.random.Generator = 0, forgery_of: np.ndarray | None = None):
        self.labels = np.asarray(labels)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        n_classes = int(self.labels.max()) + 1 if len(self.labels) else 0
        forgery_of = np.full(len(self.labels), -1) if forgery_of is None else np.asarray(forgery_of)
        forged_labels = set(self.labels[forgery_of >= 0].tolist())
        self.by_class = [np.flatnonzero(self.labels == c) for c in range(n_classes)]
        self.present = np.array([c for c in range(n_classes) if len(self.by_class[c]) > 0 and c not in forged_labels])
        self.multi = np.array([c for c in range(n_classes) if len(self.by_class[c]) >= 2 and c not in forged_labels])
        #: {class: indices of its skilled forgeries}, for classes that have genuine images too.
        self.forgeries = {int(c): np.flatnonzero(forgery_of == c) for c in np.unique(forgery_of[forgery_of >= 0])
                          if c < n_classes and len(self.by_class[int(c)])}
        self.forged = np.array(sorted(self.forgeries), dtype=np.int64)
        if len(self.multi) < 1 or len(self.present) < 2:
            raise DatasetError("Pair sampling needs two classes and at least one class with two images.")

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` pairs as ``(index_a, index_b, dissimilar)``; dissimilar is 1 for different classes."""
        n_same = n // 2
        n_diff = n - n_same
        rng = self.rng
        a = np.empty(n, dtype=np.int64)
        b = np.empty(n, dtype=np.int64)
        for i, c in enumerate(rng.choice(self.multi, size=n_same)):
            members = self.by_class[c]
            j, k = rng.choice(len(members), size=2, replace=False)
            a[i], b[i] = members[j], members[k]
        n_forged = int(round(n_diff * self.FORGERY_SHARE)) if len(self.forged) else 0
        for i in range(n_same, n - n_forged):
            c1, c2 = rng.choice(self.present, size=2, replace=False)
            a[i] = rng.choice(self.by_class[c1])
            b[i] = rng.choice(self.by_class[c2])
        for i in range(n - n_forged, n):
            c = int(rng.choice(self.forged))
            a[i] = rng.choice(self.by_class[c])
            b[i] = rng.choice(self.forgeries[c])
        dissimilar = np.r_[np.zeros(n_same, np.int64), np.ones(n_diff, np.int64)]
        order = rng.permutation(n)
        return a[order], b[order], dissimilar[order]


class TripletSampler:
    """Seeded triplets and P x K batches for batch-hard mining."""

    def __init__(self, labels: np.ndarray, seed: int | np.random.Generator = 0, forgery_of: np.ndarray | None = None):
        self.pairs = PairSampler(labels, seed, forgery_of)
        self.rng = self.pairs.rng

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` triplets ``(anchor, positive, negative)`` as index arrays."""
        p = self.pairs
        anchor = np.empty(n, np.int64)
        pos = np.empty(n, np.int64)
        neg = np.empty(n, np.int64)
        for i, c in enumerate(self.rng.choice(p.multi, size=n)):
            members = p.by_class[c]
            j, k = self.rng.choice(len(members), size=2, replace=False)
            anchor[i], pos[i] = members[j], members[k]
            others = p.present[p.present != c]
            neg[i] = self.rng.choice(p.by_class[self.rng.choice(others)])
        return anchor, pos, neg

    def pk_batch(self, n_images: int, k: int = 4, centroids: "ClassCentroids | None" = None,
                 hard_fraction: float = 0.0) -> np.ndarray:
        """About ``n_images`` indices: P classes (2+ images) x up to K images each, then up to K
        skilled forgeries of each chosen class (labels of their own: negatives, never positives),
        then single-image classes as extra negatives when classes run short.

        With ``centroids`` and ``hard_fraction`` > 0, that share of the P classes are look-alikes:
        each is one of the nearest classes (by running centroid) of a class already chosen, so the
        batch holds the negatives the encoder confuses (class-level hard mining)."""
        p = self.pairs
        n_classes = max(2, min(len(p.multi), n_images // k))
        n_hard = int(round(n_classes * hard_fraction)) if centroids is not None else 0
        chosen = self.rng.choice(p.multi, size=n_classes - n_hard, replace=False)
        if n_hard:
            chosen = centroids.add_neighbours(chosen, p.multi, n_hard, self.rng)
        out = []
        for c in chosen:
            members = p.by_class[c]
            take = min(k, len(members))
            out.append(self.rng.choice(members, size=take, replace=False))
        for c in chosen:
            forg = p.forgeries.get(int(c))
            if forg is not None:
                out.append(self.rng.choice(forg, size=min(k, len(forg)), replace=False))
        idx = np.concatenate(out)
        short = n_images - len(idx)
        if short > 0:
            pool = np.setdiff1d(np.arange(len(p.labels)), idx)
            if len(pool):
                idx = np.r_[idx, self.rng.choice(pool, size=min(short, len(pool)), replace=False)]
        return idx


class ClassCentroids:
    """Running mean embedding of each class, from the training batches' own embeddings (no extra
    forward pass), for class-level hard mining: classes whose centroids are near look alike to
    the encoder now (the same name by another writer, a look-alike face)."""

    #: Weight of a class's previous centroid when a batch brings new embeddings of it.
    MOMENTUM = 0.5
    #: A look-alike is drawn among this many nearest classes (not always the nearest: variety).
    NEAREST = 3

    def __init__(self, n_classes: int):
        self.n_classes = int(n_classes)
        self.means: np.ndarray | None = None
        self.seen = np.zeros(self.n_classes, bool)

    def update(self, labels: np.ndarray, embeddings: np.ndarray) -> None:
        labels = np.asarray(labels)
        emb = np.asarray(embeddings, np.float32)
        if self.means is None:
            self.means = np.zeros((self.n_classes, emb.shape[1]), np.float32)
        for c in np.unique(labels[labels < self.n_classes]):
            m = emb[labels == c].mean(0)
            self.means[c] = self.MOMENTUM * self.means[c] + (1 - self.MOMENTUM) * m if self.seen[c] else m
            self.seen[c] = True

    def add_neighbours(self, chosen: np.ndarray, candidates: np.ndarray, n: int,
                       rng: np.random.Generator) -> np.ndarray:
        """``chosen`` plus ``n`` classes of ``candidates``, each among the nearest seen classes of a
        class already chosen; random ones when too few classes have been seen yet."""
        out = [int(c) for c in chosen]
        pool = np.array([c for c in candidates if self.seen[c]], np.int64)
        anchors = [c for c in out if self.seen[c]]
        rng.shuffle(anchors)  # each look-alike for another of the random classes, in turn
        for i in range(n):
            free = pool[~np.isin(pool, out)]
            if len(free) == 0 or not anchors:
                out.append(int(rng.choice(np.setdiff1d(candidates, out))))
                continue
            a = anchors[i % len(anchors)]
            d = ((self.means[free] - self.means[a]) ** 2).sum(1)
            near = free[np.argsort(d)[:self.NEAREST]]
            out.append(int(rng.choice(near)))
        return np.array(out, np.int64)


def fixed_pairs(labels: np.ndarray, n: int, seed: int, forgery_of: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reproducible set of ``n`` balanced pairs (for validation), with skilled-forgery pairs when there are any."""
    return PairSampler(labels, np.random.default_rng(seed), forgery_of).sample(n)

"""Identification over a snapshot of a gallery's embeddings (numpy, no database).

:class:`GalleryIndex` computes the distance to every example, then per identity
the minimum, or the mean of its ``k`` nearest examples; "Unknown"
(``best is None``) when the best distance is not below the threshold (open set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from siamgui.core.errors import GalleryError

#: Ranking rules: nearest example, or mean of the k nearest examples.
RANKINGS = ("min", "mean")


@dataclass
class Candidate:
    name: str
    distance: float
    identity_id: int
    #: The example nearest to the probe (for its thumbnail).
    example_id: int


@dataclass
class Identification:
    #: Best identity's name, or None for "Unknown" (best distance not below the threshold).
    best: str | None
    #: Best distance (the first candidate's).
    distance: float
    threshold: float
    candidates: list[Candidate]
    rank: str = "min"
    k: int = 1
    #: Face processing of the probe (face models), for display.
    face: Any = None
    #: Examples not yet embedded for this model (left out of the ranking).
    unembedded: int = 0
    #: A face model found no face in the probe: no identity is claimed (``best`` None);
    #: the ranking is for information only.
    no_face: bool = False

    @property
    def known(self) -> bool:
        return self.best is not None

    def to_dict(self) -> dict:
        return {"best": self.best, "distance": self.distance, "threshold": self.threshold,
                "candidates": [{"name": c.name, "distance": c.distance} for c in self.candidates]}


# -- vectorised search --------------------------------------------------------------------
class GalleryIndex:
    """An immutable in-memory snapshot of one model's gallery embeddings.

    ``vectors`` (N, D) are grouped by identity (``owner`` non-decreasing, values
    0..M-1 indexing ``names``). Safe to use from any thread.
    """

    def __init__(self, vectors: np.ndarray, owner: np.ndarray, names: Sequence[str],
                 identity_ids: Sequence[int] = (), example_ids: Sequence[int] = (), distance: str = "euclidean",
                 fingerprint: str = ""):
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        owner = np.asarray(owner, dtype=np.int64)
        if v.ndim != 2 or len(v) != len(owner):
            raise ValueError("vectors must be (N, D) with one owner per row")
        if len(owner) and np.any(np.diff(owner) < 0):
            order = np.argsort(owner, kind="stable")
            v, owner = v[order], owner[order]
            example_ids = np.asarray(example_ids)[order] if len(example_ids) else example_ids
        if distance not in ("euclidean", "cosine"):
            raise ValueError(f"unknown distance {distance!r}")
        self.distance = distance
        self.fingerprint = fingerprint
        self.names = list(names)
        self.identity_ids = np.asarray(identity_ids if len(identity_ids) else np.arange(len(self.names)),
                                       dtype=np.int64)
        self.example_ids = np.asarray(example_ids if len(example_ids) else np.arange(len(v)), dtype=np.int64)
        self.owner = owner
        m = len(self.names)
        self.counts = np.bincount(owner, minlength=m) if len(owner) else np.zeros(m, np.int64)
        self.present = np.flatnonzero(self.counts > 0)  # identities with at least one vector
        self.starts = np.r_[0, np.cumsum(self.counts)[:-1]] if m else np.zeros(0, np.int64)
        if distance == "cosine":
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            v = v / np.maximum(norms, 1e-8)
        self.vectors = v
        self.sq = (v * v).sum(1)
        self._rank_in_group = np.arange(len(v)) - self.starts[owner] if len(v) else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def identities(self) -> int:
        return len(self.present)

    def distances(self, query: np.ndarray) -> np.ndarray:
        """Distance from one query embedding (D,) to every example (N,), float32."""
        return self._distances_to(self._probe(query))

    def _probe(self, query: np.ndarray) -> np.ndarray:
        """The query as float32 (D,), unit length for the cosine distance; GalleryError on a size mismatch."""
        q = np.asarray(query, dtype=np.float32).ravel()
        if q.shape[0] != self.vectors.shape[1]:
            raise GalleryError(f"The probe's embedding has {q.shape[0]} values, the gallery's {self.vectors.shape[1]}.")
        return q / max(float(np.linalg.norm(q)), 1e-8) if self.distance == "cosine" else q

    def _distances_to(self, q: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Distances from a :meth:`_probe` query to the examples ``rows`` (all when None)."""
        v = self.vectors if rows is None else self.vectors[rows]
        # einsum, not ``vectors @ q``: a BLAS matrix-vector product wakes its thread pool on
        # every call, which is slow on a busy machine (bench/README.md, "Gallery search").
        if self.distance == "cosine":
            return 1.0 - np.einsum("ij,j->i", v, q)
        sq, qq = (self.sq if rows is None else self.sq[rows]), float(q @ q)
        d2 = sq + qq - 2.0 * np.einsum("ij,j->i", v, q)
        # The expansion cancels for near-duplicates (1e-6 reads as 1e-4, and differs between runs): those directly.
        near = np.flatnonzero(d2 < 1e-3 * (sq + qq))
        if near.size:
            d2[near] = np.square(v[near] - q).sum(axis=1)
        np.maximum(d2, 0.0, out=d2)
        d2 += 1e-12  # as the model's EuclideanDistance (sqrt(x + eps))
        return np.sqrt(d2, out=d2)

    def scores(self, query: np.ndarray, rank: str = "min", k: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """Per identity (M,): its score (inf when it has no vector); and the distances (N,)."""
        if rank not in RANKINGS:
            raise GalleryError(f"Unknown ranking {rank!r}; choose from {', '.join(RANKINGS)}.")
        m = len(self.names)
        score = np.full(m, np.inf)
        if not len(self.vectors):
            return score, np.zeros(0, np.float32)
        d = self.distances(query)
        p = self.present
        if rank == "min" or k <= 1:
            score[p] = np.minimum.reduceat(d, self.starts[p])
            return score, d
        # mean of the k nearest: one sort by (identity, distance), packed into one float key
        # (identity + distance scaled into [0, 1)), then each group's first k entries
        lo, hi = float(d.min()), float(d.max())
        key = self.owner + (d - lo) / ((hi - lo) * 1.000001 + 1e-30)
        order = np.argsort(key)
        rows = order[self._rank_in_group < k]
        sums = np.bincount(self.owner[rows], weights=d[rows], minlength=m)
        score[p] = sums[p] / np.minimum(self.counts[p], k)
        return score, d

    def search(self, query: np.ndarray, top: int = 5, rank: str = "min", k: int = 3) -> list[Candidate]:
        """The ``top`` nearest identities, nearest first."""
        score, d = self.scores(query, rank, k)
        p = self.present
        if not len(p):
            return []
        s = score[p]
        top = max(1, min(int(top), len(p)))
        part = np.argpartition(s, top - 1)[:top] if top < len(p) else np.arange(len(p))
        part = part[np.lexsort((p[part], s[part]))]  # by score, ties by identity order
        out = []
        for j in part:
            i = int(p[j])
            start = int(self.starts[i])
            nearest = start + int(np.argmin(d[start:start + int(self.counts[i])]))
            out.append(self._candidate(i, score[i], nearest))
        return out

    def _candidate(self, i: int, score: float, nearest: int) -> Candidate:
        """Identity ``i`` with its score and its example at row ``nearest``."""
        return Candidate(self.names[i], float(score), int(self.identity_ids[i]), int(self.example_ids[nearest]))

    def identify(self, query: np.ndarray, threshold: float, top: int = 5, rank: str = "min",
                 k: int = 3) -> Identification:
        cands = self.search(query, top, rank, k)
        if not cands:
            raise GalleryError("The gallery has no enrolled examples for this model.")
        best = cands[0]
        return Identification(best.name if best.distance < threshold else None, best.distance, float(threshold),
                              cands, rank, 1 if rank == "min" else int(k))

"""N-way K-shot evaluation (the standard one-shot protocol), no Qt.

An *episode* draws ``way`` distinct classes, ``shots`` support images of each,
and one query image of one of them (never one of its support images). The
model predicts the class whose support set is nearest to the query: by the
minimum distance (``rank="min"``) or the mean distance (``rank="mean"``) to
its ``shots`` support images, the same rules as the gallery. Accuracy is the
fraction of episodes answered correctly; the 95 % confidence interval is
``accuracy ± 1.96·sqrt(p(1-p)/E)`` (normal approximation, as reported in the
few-shot literature), and Wilson bounds are given too (sensible at 0 % or 100 %).

Sampling is seeded and depends only on the labels: the query class is drawn
uniformly from the classes with ``shots + 1`` or more images, the other
``way - 1`` classes uniformly from the remaining classes with ``shots`` or more.
Ties in distance go to the class listed first in the episode (random order).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from siamgui.core.errors import DatasetError, SiamguiError
from siamgui.core.gallery.index import RANKINGS

Z95 = 1.959963984540054


@dataclass
class Episode:
    #: Class labels of the episode, in episode order (way,).
    classes: np.ndarray
    #: Support image indices (way, shots); row i belongs to classes[i].
    support: np.ndarray
    #: The query image index and its position in ``classes``.
    query: int
    answer: int


@dataclass
class OneShotResult:
    way: int
    shots: int
    episodes: int
    correct: int
    accuracy: float
    #: Half-width of the normal-approximation 95 % interval.
    ci95: float
    ci_low: float
    ci_high: float
    chance: float
    rank: str
    classes: int
    images: int
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check_args(way: int, shots: int, episodes: int) -> None:
    if way < 2:
        raise SiamguiError("N-way evaluation needs at least 2 classes per episode (--way 2 or more).")
    if shots < 1:
        raise SiamguiError("K-shot evaluation needs at least 1 support image per class (--shots 1 or more).")
    if episodes < 1:
        raise SiamguiError("Evaluation needs at least one episode.")


def sample_episodes(labels, way: int, shots: int, episodes: int, seed: int = 0) -> list[Episode]:
    """Seeded episodes over ``labels`` (one class index per image)."""
    _check_args(way, shots, episodes)
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    members = [np.flatnonzero(labels == c) for c in range(n_classes)]
    counts = np.array([len(m) for m in members], dtype=np.int64)
    query_ok = np.flatnonzero(counts >= shots + 1)
    support_ok = np.flatnonzero(counts >= shots)
    if len(query_ok) < 1 or len(support_ok) < way:
        raise DatasetError(f"{way}-way {shots}-shot evaluation needs {way} classes with at least {shots} images, "
                           f"one of them with {shots + 1}; found {len(support_ok)} with {shots}+ and "
                           f"{len(query_ok)} with {shots + 1}+.")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        qc = int(rng.choice(query_ok))
        others = rng.choice(support_ok[support_ok != qc], size=way - 1, replace=False)
        classes = np.r_[qc, others].astype(np.int64)
        order = rng.permutation(way)
        classes = classes[order]
        answer = int(np.flatnonzero(order == 0)[0])
        support = np.empty((way, shots), dtype=np.int64)
        query = -1
        for i, c in enumerate(classes):
            take = shots + 1 if i == answer else shots
            picked = rng.choice(members[c], size=take, replace=False)
            support[i] = picked[:shots]
            if i == answer:
                query = int(picked[shots])
        out.append(Episode(classes, support, query, answer))
    return out


def episode_predictions(episodes: list[Episode], distance: Callable[[np.ndarray, np.ndarray], np.ndarray],
                        rank: str = "min") -> np.ndarray:
    """Predicted class position per episode.

    ``distance(query_rows, support_rows)`` gives one distance per pair of image
    indices (arrays of equal length), e.g. from a precomputed embedding matrix.
    """
    if rank not in RANKINGS:
        raise SiamguiError(f"Unknown ranking {rank!r}; choose from {', '.join(RANKINGS)}.")
    if not episodes:
        return np.zeros(0, np.int64)
    way, shots = episodes[0].support.shape
    q = np.repeat(np.array([e.query for e in episodes], dtype=np.int64), way * shots)
    s = np.concatenate([e.support.ravel() for e in episodes])
    d = np.asarray(distance(q, s), dtype=np.float64).reshape(len(episodes), way, shots)
    score = d.min(axis=2) if rank == "min" else d.mean(axis=2)
    return score.argmin(axis=1)


def summarise(correct: np.ndarray, way: int, shots: int, rank: str, classes: int = 0, images: int = 0,
              seed: int = 0) -> OneShotResult:
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    k = int(correct.sum())
    p = k / n
    half = Z95 * math.sqrt(p * (1 - p) / n)
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    spread = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if k == 0 else max(0.0, centre - spread)
    high = 1.0 if k == n else min(1.0, centre + spread)
    return OneShotResult(way, shots, n, k, p, half, low, high, 1.0 / way, rank, classes, images, seed)


def evaluate_embeddings(embeddings: np.ndarray, labels, way: int, shots: int, episodes: int, seed: int = 0,
                        rank: str = "min", distance: str = "euclidean") -> OneShotResult:
    """N-way K-shot accuracy from precomputed embeddings (N, D) and labels (N,)."""
    emb = np.asarray(embeddings, dtype=np.float64)
    eps = sample_episodes(labels, way, shots, episodes, seed)
    if distance == "cosine":
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)

        def dist(a, b):
            return 1.0 - (emb[a] * emb[b]).sum(1)
    elif distance == "euclidean":
        def dist(a, b):
            return np.sqrt(((emb[a] - emb[b]) ** 2).sum(1) + 1e-12)
    else:
        raise SiamguiError(f"Unknown distance {distance!r}.")
    pred = episode_predictions(eps, dist, rank)
    correct = pred == np.array([e.answer for e in eps])
    labels = np.asarray(labels)
    return summarise(correct, way, shots, rank, len(np.unique(labels)), len(labels), seed)


def run_one_shot(verifier, data_dir: str | os.PathLike, way: int = 5, shots: int = 1, episodes: int = 1000,
                 seed: int = 0, rank: str = "min", *, batch_size: int = 64,
                 progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> OneShotResult:
    """Run the protocol on a class folder with a Verifier; embeds only the images episodes use."""
    from siamgui.core.datasets import scan_folder

    _check_args(way, shots, episodes)
    if rank not in RANKINGS:
        raise SiamguiError(f"Unknown ranking {rank!r}; choose from {', '.join(RANKINGS)}.")
    ds = scan_folder(data_dir, cancel=cancel)
    if not ds.samples:
        raise DatasetError(f"{data_dir} holds no images in class sub-folders.")
    labels = ds.labels
    eps = sample_episodes(labels, way, shots, episodes, seed)
    used = np.unique(np.concatenate([np.r_[e.query, e.support.ravel()] for e in eps]))
    paths = ds.paths
    from siamgui.core.errors import ImageError

    chunks = []
    done = 0
    for start in range(0, len(used), batch_size):
        if cancel is not None and cancel():
            raise SiamguiError("Evaluation cancelled.")
        idx = used[start:start + batch_size]
        arrays = []
        for i in idx:
            try:
                arrays.append(verifier.prepare(paths[i])[0])
            except ImageError as exc:
                raise DatasetError(f"Evaluation stopped: {exc}") from None
        chunks.append(verifier.embed_prepared(arrays).numpy())
        done += len(idx)
        if progress is not None:
            progress(done, len(used))
    matrix = np.concatenate(chunks).astype(np.float64)
    lookup = np.full(len(labels), -1, dtype=np.int64)
    lookup[used] = np.arange(len(used))  # image index -> row of ``matrix``
    dist_name = verifier.distance.name
    if dist_name == "cosine":
        matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-8)

    def dist(a, b):
        ea, eb = matrix[lookup[a]], matrix[lookup[b]]
        if dist_name == "cosine":
            return 1.0 - (ea * eb).sum(1)
        return np.sqrt(((ea - eb) ** 2).sum(1) + 1e-12)

    pred = episode_predictions(eps, dist, rank)
    correct = pred == np.array([e.answer for e in eps])
    return summarise(correct, way, shots, rank, len(ds.classes), len(ds.samples), seed)

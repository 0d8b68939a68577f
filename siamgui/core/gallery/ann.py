"""Large galleries: identity search through faiss (the optional ``faiss`` extra).

:class:`FaissIndex` is a :class:`GalleryIndex` with the same search API, rankings
and distances. A search asks faiss for the probe's nearest examples, then ranks
only the identities that own them, with GalleryIndex's own distance code over
*all* of those identities' examples. With the exact index (``IndexFlat``) the
answer is the full scan's: more neighbours are asked for until they cover the
``top`` identities and, for the mean-of-k rule, until the ``top``-th score is no
farther than the farthest neighbour (an identity not reached has every example
farther, so its mean is too). The approximate index (IVF or HNSW) may miss an
identity that a full scan would rank; ``bench/gallery_ann_bench.py`` measures
how often (recall@1 against the exact index).

:func:`build_index` picks the index by the number of embeddings (thresholds
chosen by that bench, bench/README.md): numpy below :data:`FAISS_MIN`, exact
faiss up to :data:`EXACT_MAX`, approximate beyond; always numpy without faiss.
The gallery's SQLite store stays the source of truth: a snapshot is rebuilt from
it when the data changes (an IVF index reuses its trained centroids, ``training``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from siamgui.core.errors import GalleryError
from siamgui.core.gallery.index import RANKINGS, Candidate, GalleryIndex

#: ``auto`` chooses by size; the others force one kind.
INDEX_KINDS = ("auto", "numpy", "exact", "approximate")
#: Embeddings from which ``auto`` uses faiss rather than the numpy scan.
FAISS_MIN = 20_000
#: Embeddings up to which ``auto`` keeps faiss exact; beyond, the approximate index.
EXACT_MAX = 100_000
#: The approximate index: ``ivf`` (IndexIVFScalarQuantizer, 8-bit codes) or ``hnsw`` (IndexHNSWFlat).
APPROXIMATE = "ivf"
#: IVF: about ``IVF_LISTS_PER_SQRT * sqrt(N)`` lists, trained (k-means, ``IVF_ITERATIONS`` rounds) on
#: ``IVF_TRAIN_PER_LIST`` examples per list, and ``IVF_NPROBE`` lists visited per probe.
IVF_LISTS_PER_SQRT = 2
IVF_TRAIN_PER_LIST = 40
IVF_ITERATIONS = 10
IVF_NPROBE = 16
#: An IVF's centroids are reused while the gallery stays within this factor of the size they were trained for.
IVF_RETRAIN_FACTOR = 2.0
#: HNSW: links per node, build and search breadth.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 64
#: Neighbours asked of faiss first, per identity wanted and per example its score averages (then 4x more
#: while needed); the approximate index is asked for at most MAX_NEIGHBOURS.
NEIGHBOURS_PER_RESULT = 8
MAX_NEIGHBOURS = 4096
#: faiss threads for one probe's search: OpenMP's wake-ups cost more than a second thread
#: gains, and on a busy machine far more (bench/README.md).
SEARCH_THREADS = 1
_INSTALL_HINT = "pip install 'siamgui[faiss]'"
_build_threads: int | None = None  # faiss's own default (one per core), read before we change it


def faiss_module():
    """The faiss module, or None when it is not installed."""
    global _build_threads
    try:
        import faiss
    except ImportError:
        return None
    if _build_threads is None:
        _build_threads = faiss.omp_get_max_threads()
    return faiss


def faiss_available() -> bool:
    return faiss_module() is not None


def choose_kind(n: int, kind: str = "auto") -> str:
    """``numpy``, ``exact`` or ``approximate`` for a gallery of ``n`` embeddings."""
    if kind not in INDEX_KINDS:
        raise GalleryError(f"Unknown index {kind!r}; choose from {', '.join(INDEX_KINDS)}.")
    if kind == "numpy":
        return kind
    if not faiss_available():
        if kind == "auto":
            return "numpy"
        raise GalleryError(f"The {kind} index needs faiss: {_INSTALL_HINT}.")
    if kind != "auto":
        return kind
    if n < FAISS_MIN:
        return "numpy"
    return "exact" if n <= EXACT_MAX else "approximate"


def build_index(vectors: np.ndarray, owner: np.ndarray, names: Sequence[str], identity_ids: Sequence[int] = (),
                example_ids: Sequence[int] = (), distance: str = "euclidean", fingerprint: str = "", *,
                kind: str = "auto", training: Any = None) -> GalleryIndex:
    """The search snapshot for these embeddings: a GalleryIndex, or a FaissIndex (see the module doc)."""
    chosen = choose_kind(len(vectors), kind)
    if chosen == "numpy":
        return GalleryIndex(vectors, owner, names, identity_ids, example_ids, distance, fingerprint)
    return FaissIndex(vectors, owner, names, identity_ids, example_ids, distance, fingerprint,
                      approximate=chosen == "approximate", training=training)


def _storage_view(faiss, flat, n: int, d: int) -> np.ndarray:
    """A flat index's vectors as a read-only numpy view (no second copy of the gallery)."""
    view = faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)
    view.flags.writeable = False
    return view


class FaissIndex(GalleryIndex):
    """A GalleryIndex searched through faiss (``approximate``: IVF or HNSW per ``method``).

    ``training``: an earlier IVF index's :attr:`training`, whose centroids are
    reused when they were trained for a gallery of a similar size. ``threads``:
    faiss threads for building (default: one per core); searches use
    :data:`SEARCH_THREADS` (faiss's thread count is one setting for the process).
    """

    def __init__(self, vectors: np.ndarray, owner: np.ndarray, names: Sequence[str],
                 identity_ids: Sequence[int] = (), example_ids: Sequence[int] = (), distance: str = "euclidean",
                 fingerprint: str = "", *, approximate: bool = False, method: str = APPROXIMATE,
                 training: Any = None, threads: int | None = None):
        super().__init__(vectors, owner, names, identity_ids, example_ids, distance, fingerprint)
        faiss = faiss_module()
        if faiss is None:
            raise GalleryError(f"This index needs faiss: {_INSTALL_HINT}.")
        if method not in ("ivf", "hnsw"):
            raise ValueError(f"unknown approximate method {method!r}")
        n, d = self.vectors.shape
        self.approximate = bool(approximate)
        self.kind = method if approximate else "exact"
        #: IVF only: (empty trained index, gallery size it was trained for), for the next rebuild.
        self.training = None
        self._ip = distance == "cosine"  # inner product on unit vectors: the same order as 1 - cos
        metric = faiss.METRIC_INNER_PRODUCT if self._ip else faiss.METRIC_L2
        #: The faiss index (its search settings, IVF ``nprobe`` or ``hnsw.efSearch``, may be tuned); None when empty.
        self.faiss_index = None
        if n == 0:
            return
        v = np.ascontiguousarray(self.vectors, dtype=np.float32)
        faiss.omp_set_num_threads(int(threads or _build_threads or 1))
        try:
            if not approximate:
                index = faiss.IndexFlat(d, metric)
                index.add(v)
                self.vectors = _storage_view(faiss, index, n, d)
            elif method == "hnsw":
                index = faiss.IndexHNSWFlat(d, HNSW_M, metric)
                index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
                index.hnsw.efSearch = HNSW_EF_SEARCH
                index.add(v)
                self.vectors = _storage_view(faiss, faiss.downcast_index(index.storage), n, d)
            else:
                index = self._ivf(faiss, v, metric, training)
        finally:
            faiss.omp_set_num_threads(SEARCH_THREADS)
        self.faiss_index = index

    def _ivf(self, faiss, v: np.ndarray, metric, training):
        n, d = v.shape
        if training is not None:
            empty, trained_n = training
            if (empty.d == d and empty.metric_type == metric
                    and 1 / IVF_RETRAIN_FACTOR <= n / trained_n <= IVF_RETRAIN_FACTOR):
                index = faiss.clone_index(empty)
                index.add(v)
                index.nprobe = IVF_NPROBE
                self.training = training
                return index
        nlist = int(min(max(IVF_LISTS_PER_SQRT * np.sqrt(n), 1), n // 39 or 1))
        quantizer = faiss.IndexFlat(d, metric)
        # 8-bit codes: the lists only propose neighbours (the ranking uses the float32 vectors),
        # so they need not hold a second float32 copy of the gallery
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, metric)
        index.cp.niter = IVF_ITERATIONS
        sample = min(n, nlist * IVF_TRAIN_PER_LIST)
        rows = np.sort(np.random.default_rng(0).choice(n, sample, replace=False)) if sample < n else slice(None)
        index.train(np.ascontiguousarray(v[rows]))
        self.training = (faiss.clone_index(index), n)
        index.add(v)
        index.nprobe = IVF_NPROBE
        return index

    def _neighbours(self, q: np.ndarray, count: int) -> tuple[np.ndarray, float]:
        """Rows of the ``count`` nearest examples faiss finds, and the farthest one's distance."""
        dist, rows = self.faiss_index.search(q[None, :], int(count))
        keep = rows[0] >= 0
        rows, dist = rows[0][keep], dist[0][keep]
        if not len(rows):
            return rows, -np.inf
        last = float(dist[-1])
        return rows, (1.0 - last) if self._ip else float(np.sqrt(max(last, 0.0) + 1e-12))

    def search(self, query: np.ndarray, top: int = 5, rank: str = "min", k: int = 3) -> list[Candidate]:
        """The ``top`` nearest identities, nearest first (as :meth:`GalleryIndex.search`)."""
        if rank not in RANKINGS:
            raise GalleryError(f"Unknown ranking {rank!r}; choose from {', '.join(RANKINGS)}.")
        if not len(self.present):
            return []
        q = self._probe(query)
        kk = 1 if rank == "min" else max(1, int(k))
        want = max(1, min(int(top), len(self.present)))
        n = len(self.vectors)
        limit = min(n, MAX_NEIGHBOURS) if self.approximate else n
        asked = min(limit, NEIGHBOURS_PER_RESULT * want * kk)
        while True:
            rows, radius = self._neighbours(q, asked)
            ids = np.unique(self.owner[rows])
            scores, d, offsets = self._score(q, ids, kk)
            if len(ids) >= want and (kk == 1 or np.partition(scores, want - 1)[want - 1] <= radius):
                break
            if asked >= limit:
                break
            asked = min(limit, asked * 4)
        out = []
        for j in np.lexsort((ids, scores))[:want]:  # by score, ties by identity order
            i, off = int(ids[j]), int(offsets[j])
            nearest = int(self.starts[i]) + int(np.argmin(d[off:off + int(self.counts[i])]))
            out.append(self._candidate(i, scores[j], nearest))
        return out

    def _score(self, q: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores of identities ``ids`` from all their examples, as GalleryIndex.scores computes them;
        also those examples' distances (grouped by identity) and each group's offset."""
        counts = self.counts[ids]
        offsets = np.r_[0, np.cumsum(counts)[:-1]]
        group = np.repeat(np.arange(len(ids)), counts)
        rows = self.starts[ids][group] + (np.arange(len(group)) - offsets[group])
        d = self._distances_to(q, rows)
        if k <= 1:
            return np.minimum.reduceat(d, offsets).astype(np.float64), d, offsets
        # mean of the k nearest, with GalleryIndex.scores's sort and summation order
        lo, hi = float(d.min()), float(d.max())
        order = np.argsort(group + (d - lo) / ((hi - lo) * 1.000001 + 1e-30))
        sel = order[(np.arange(len(group)) - offsets[group]) < k]
        sums = np.bincount(group[sel], weights=d[sel], minlength=len(ids))
        return sums / np.minimum(counts, k), d, offsets

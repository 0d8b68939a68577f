"""Sort a photo folder by person: every face of every photo, embedded once, clustered (no Qt).

- :func:`list_images` walks the folder (image names only, sorted): only names are held,
  never the images;
- :func:`embed_folder` reads one photo at a time, finds every face with the model's detector
  (:func:`~siamgui.core.face.multi.detect_all`), cuts it with the model's own alignment
  (:func:`~siamgui.core.face.multi.face_crops`) and embeds the faces in batches; what a photo
  gave is kept in the :class:`~siamgui.core.people.cache.FaceCache` by content, so a second
  run over a grown folder embeds only the new photos. A non-face model gives one item per
  photo (the whole image);
- :func:`cluster_labels` groups the embeddings at the model's threshold with scikit-learn:
  agglomerative clustering (average linkage, the model's distance) up to
  :data:`AGGLOMERATIVE_MAX` faces; above that its O(n²) distance matrix would not fit in
  memory, so the faces are clustered in chunks of that size and the chunks' clusters are
  joined by clustering their centroids (docs/people.md);
- :func:`sort_folder` puts it together: clusters of two faces or more are people, faces that
  fit no one (and faces too small to judge) are "unsorted", unreadable files "skipped".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from siamgui.core.errors import ImageError, PeopleError
from siamgui.core.images import MAX_FILE_BYTES, describe, is_image_name, load_image
from siamgui.core.people.cache import CachedFace, CachedPhoto, FaceCache

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]

#: Above this many faces agglomerative clustering (a distance matrix of n² / 2 doubles: 0.4 GB at
#: 10,000, twice that for the chunks' square ones) runs on chunks of this size, then on their groups.
AGGLOMERATIVE_MAX = 10_000
#: Faces embedded in one forward pass.
BATCH_FACES = 32
METHODS = ("auto", "agglomerative", "chunked", "dbscan")


@dataclass
class FaceItem:
    """One face of one photo: ``image`` is the folder as given joined with the path inside it."""

    image: str
    box: tuple[int, int, int, int]
    #: Why the face was not judged (too small, cut by the border); such faces go to "unsorted".
    issue: str | None = None
    #: Position in the folder's order of faces (photo by photo, the detector's order within one).
    seq: int = field(default=0, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {"image": self.image, "box": [int(v) for v in self.box]}


@dataclass
class FolderFaces:
    """Every face of a folder's photos: the judged ones with embeddings (row k of ``vectors``)."""

    faces: list[FaceItem] = field(default_factory=list)
    vectors: np.ndarray | None = None
    unjudged: list[FaceItem] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    photos: int = 0
    #: Photos embedded by this run (the others came from the cache).
    embedded: int = 0
    no_face: int = 0
    cancelled: bool = False


@dataclass
class ClusterResult:
    model: str
    threshold: float
    distance: str
    clusters: list[list[FaceItem]]
    unsorted: list[FaceItem]
    skipped: list[tuple[str, str]]
    method: str = "agglomerative"
    photos: int = 0
    embedded: int = 0
    no_face: int = 0

    @property
    def face_count(self) -> int:
        return sum(len(c) for c in self.clusters) + len(self.unsorted)

    def to_dict(self) -> dict:
        """The ``clusters.json`` schema (docs/people.md)."""
        return {"model": self.model, "threshold": self.threshold,
                "clusters": [{"id": i, "name": None, "faces": [f.to_dict() for f in c]}
                             for i, c in enumerate(self.clusters)],
                "unsorted": [f.to_dict() for f in self.unsorted],
                "skipped": [{"image": image, "reason": reason} for image, reason in self.skipped]}

    def summary(self) -> str:
        parts = [f"{len(self.clusters)} people", f"{len(self.unsorted)} unsorted face(s)"]
        if self.no_face:
            parts.append(f"{self.no_face} photo(s) without a face")
        if self.skipped:
            parts.append(f"{len(self.skipped)} file(s) skipped")
        return (f"{self.face_count} face(s) in {self.photos - len(self.skipped)} readable photo(s): "
                + ", ".join(parts) + f" ({self.embedded} photo(s) embedded now, the rest from the cache).")


def list_images(root: str | os.PathLike, cancel: Cancel | None = None) -> list[str]:
    """The image files under ``root`` (paths relative to it, sorted; hidden folders left out)."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise PeopleError(f"{root} is not a folder.")
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if cancel is not None and cancel():
            break
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        out.extend(name if rel == "." else os.path.join(rel, name)
                   for name in sorted(filenames) if is_image_name(name))
    return out


class _FaceEmbedder:
    """What one photo gives for a model: faces (boxes, issues) and the inputs of the judged ones."""

    def __init__(self, verifier):
        from siamgui.core.preprocess import Preprocessor

        self.verifier = verifier
        spec = verifier.loaded.spec
        self.cfg = spec.face
        if self.cfg is not None and verifier.preprocessor.device is not None:
            self.cfg = dict(self.cfg, device=verifier.preprocessor.device)
        # the model's preprocessing after the face step, for the aligned faces (as Verifier.prepare_faces)
        self.chip = Preprocessor(dataclasses.replace(spec, face=None))

    def photo(self, data: bytes) -> tuple[CachedPhoto, list[np.ndarray]]:
        from siamgui.core.face.multi import detect_all, face_crops

        try:
            pil = load_image(data)
        except ImageError as exc:  # the reason without the "<N bytes>" label: the caller names the file
            label, text = describe(data) + " is ", str(exc)
            raise ImageError(text[len(label):] if text.startswith(label) else text) from None
        if self.cfg is None:  # not a face model: the whole photo is the item
            arr, _ = self.verifier.prepare(pil)
            return CachedPhoto(pil.width, pil.height, 1, [CachedFace((0, 0, pil.width, pil.height), None, None)]), [arr]
        faces, found = detect_all(pil, self.cfg)
        judged = [f for f in faces if f.judged]
        crops = face_crops(pil, self.cfg, judged, self.verifier.loaded.spec.image_size) if judged else []
        return (CachedPhoto(pil.width, pil.height, found, [CachedFace(f.box, f.issue, None) for f in faces]),
                [self.chip.prepare(c)[0] for c in crops])


def _read(path: str) -> bytes:
    """The file's bytes, or ImageError with the reason."""
    try:
        size = os.stat(path).st_size
        if size == 0:
            raise ImageError("empty file (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise ImageError(f"too large ({size / 1e6:.0f} MB)")
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ImageError(f"cannot be read: {exc.strerror or exc}") from None


def embed_folder(verifier, root: str | os.PathLike, *, cache: FaceCache | None = None,
                 batch_faces: int = BATCH_FACES, progress: Progress | None = None,
                 cancel: Cancel | None = None) -> FolderFaces:
    """Every face of every photo under ``root``, embedded once (from ``cache`` where it has them).

    One photo is decoded at a time; at most ``batch_faces`` faces' inputs wait for their
    forward pass. Each batch's photos are written to the cache in one transaction.
    Cancelling (checked between photos) returns what was done, ``cancelled`` set.
    """
    from siamgui.core.gallery.store import model_fingerprint

    given = os.fspath(root)
    names = list_images(given, cancel)
    fp = model_fingerprint(verifier)
    embedder = _FaceEmbedder(verifier)
    out = FolderFaces(photos=len(names))
    vectors: list[np.ndarray] = []
    # photos in folder order, waiting for the batch's forward pass: (image, sha256 or None when cached,
    # photo, inputs of its judged faces)
    waiting: list[tuple[str, str | None, CachedPhoto, list[np.ndarray]]] = []

    def flush() -> None:
        arrays = [a for *_, arrs in waiting for a in arrs]
        emb = verifier.embed_prepared(arrays).numpy().astype(np.float32) if arrays else None
        start = 0
        for _, _, photo, arrs in waiting:
            for f, v in zip([f for f in photo.faces if f.issue is None], range(len(arrs))):
                f.vector = emb[start + v]
            start += len(arrs)
        new = [(sha, photo) for _, sha, photo, _ in waiting if sha is not None]
        if cache is not None:
            cache.put_many(fp, new)
        out.embedded += len(new)
        for image, _, photo, _ in waiting:
            if not photo.faces:
                out.no_face += 1
            for f in photo.faces:
                item = FaceItem(image, tuple(int(v) for v in f.box), f.issue, len(out.faces) + len(out.unjudged))
                if f.vector is None:
                    out.unjudged.append(item)
                else:
                    out.faces.append(item)
                    vectors.append(f.vector)
        waiting.clear()

    for n, rel in enumerate(names):
        if cancel is not None and cancel():
            out.cancelled = True
            break
        image = os.path.join(given, rel)
        try:
            data = _read(image)
            sha = hashlib.sha256(data).hexdigest()
            cached = cache.get(sha, fp) if cache is not None else None
            if cached is None:
                photo, arrays = embedder.photo(data)
                waiting.append((image, sha, photo, arrays))
            else:
                waiting.append((image, None, cached, []))
        except ImageError as exc:
            out.skipped.append((image, str(exc)))
        data = None  # one photo's bytes at a time
        if sum(len(w[3]) for w in waiting) >= batch_faces or len(waiting) >= 4 * batch_faces:
            flush()
        if progress is not None:
            progress(n + 1, len(names))
    flush()
    out.vectors = np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
    return out


def cluster_labels(vectors: np.ndarray, threshold: float, distance: str, *, method: str = "auto",
                   linkage: str = "average", chunk: int | None = None) -> tuple[np.ndarray, str]:
    """A cluster label per row of ``vectors`` (-1: fits no one) and the method used.

    ``agglomerative`` (``linkage``, ``distance_threshold`` = ``threshold``, the model's
    ``distance``): two groups merge while their linkage distance is below the threshold, so
    with average linkage every person's faces are on average closer than the threshold.
    ``chunked`` (``auto`` above ``chunk`` faces, default :data:`AGGLOMERATIVE_MAX`): the same
    on consecutive chunks of ``chunk`` faces (folder order), then on the chunks' cluster
    centroids, level after level, so memory stays O(chunk²). ``dbscan``: faces within the
    threshold of each other are chained (measured to chain different people together at the
    model's threshold: bench/README.md); kept for comparison.
    """
    if method not in METHODS:
        raise PeopleError(f"Unknown clustering method {method!r}; choose from {', '.join(METHODS)}.")
    if distance not in ("euclidean", "cosine"):
        raise PeopleError(f"Cannot cluster with the distance {distance!r}.")
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    chunk = int(chunk or AGGLOMERATIVE_MAX)
    if method == "auto":
        method = "agglomerative" if n <= chunk else "chunked"
    if n < 2:
        return np.full(n, -1, dtype=np.int64), method
    if method == "dbscan":
        from sklearn.cluster import DBSCAN

        eps = float(threshold)
        if distance == "cosine":  # on unit vectors euclidean² = 2 · cosine distance: a tree search works
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            eps = float(np.sqrt(2.0 * max(eps, 0.0)))
        labels = DBSCAN(eps=eps, min_samples=2, metric="euclidean").fit_predict(x)
        return labels.astype(np.int64), method
    if method == "agglomerative":
        return _singletons_out(_agglomerative(x, threshold, distance, linkage)), method
    return _singletons_out(_chunked(x, threshold, distance, linkage, max(chunk, 2))), method


def _agglomerative(x: np.ndarray, threshold: float, metric: str, linkage: str) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    if len(x) < 2:
        return np.zeros(len(x), dtype=np.int64)
    return AgglomerativeClustering(n_clusters=None, distance_threshold=float(threshold), metric=metric,
                                   linkage=linkage).fit_predict(x).astype(np.int64)


#: The chunked method's levels at most (each one clusters the previous level's groups).
MAX_LEVELS = 12


def _group_distances(mu: np.ndarray, var: np.ndarray, distance: str) -> np.ndarray:
    """Between groups of faces (centroid ``mu``, mean squared distance to it ``var``): the mean
    pairwise distance of their faces, from mean ||a - b||² = ||mu_a - mu_b||² + var_a + var_b.
    Exact for the cosine distance (on unit vectors it is ||a - b||² / 2); for the euclidean
    distance its root (the RMS, never below the mean: merges err on the side of keeping apart)."""
    sq = (mu * mu).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * mu @ mu.T, 0.0) + var[:, None] + var[None, :]
    d = d2 / 2.0 if distance == "cosine" else np.sqrt(d2)
    np.fill_diagonal(d, 0.0)
    return d


def _chunked(x: np.ndarray, threshold: float, distance: str, linkage: str, chunk: int) -> np.ndarray:
    """Agglomerative per chunk of ``chunk`` faces (folder order), then on the chunks' groups, level
    after level, each group standing for its faces by its centroid and spread (:func:`_group_distances`)."""
    mu = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) if distance == "cosine" else x.copy()
    var = np.zeros(len(x))
    size = np.ones(len(x))
    labels = np.arange(len(x))  # face -> group of the current level
    for level in range(MAX_LEVELS):
        last = len(mu) <= chunk
        new = np.empty(len(mu), dtype=np.int64)
        nxt = 0
        for start in range(0, len(mu), chunk):
            sl = slice(start, start + chunk)
            part = (_agglomerative(_group_distances(mu[sl], var[sl], distance), threshold, "precomputed", linkage)
                    if len(mu[sl]) > 1 else np.zeros(1, dtype=np.int64))
            new[sl] = part + nxt
            nxt += int(part.max()) + 1
        labels = new[labels]
        if last or nxt == len(mu):  # one chunk done, or nothing merged (another level would not either)
            break
        # each new group: weighted centroid and pooled spread of its members
        n = np.bincount(new, weights=size, minlength=nxt)
        new_mu = np.zeros((nxt, mu.shape[1]))
        np.add.at(new_mu, new, mu * size[:, None])
        new_mu /= n[:, None]
        spread = size * (var + ((mu - new_mu[new]) ** 2).sum(1))
        var = np.bincount(new, weights=spread, minlength=nxt) / n
        mu, size = new_mu, n
    return labels


def _singletons_out(labels: np.ndarray) -> np.ndarray:
    """Clusters of one face become -1 (they fit no one)."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    ids, counts = np.unique(labels, return_counts=True)
    lonely = ids[counts < 2]
    labels[np.isin(labels, lonely)] = -1
    return labels


def group(items: list, labels: np.ndarray) -> tuple[list[list], list]:
    """``items`` grouped by label: clusters largest first (ties: first appearance), and the -1s."""
    by: dict[int, list] = {}
    unsorted = []
    for item, label in zip(items, labels):
        if label < 0:
            unsorted.append(item)
        else:
            by.setdefault(int(label), []).append(item)
    clusters = sorted(by.values(), key=len, reverse=True)  # stable: ties keep first appearance
    return clusters, unsorted


def sort_folder(verifier, root: str | os.PathLike, *, cache: FaceCache | None = None, method: str = "auto",
                threshold: float | None = None, chunk: int | None = None, linkage: str = "average",
                progress: Progress | None = None, cancel: Cancel | None = None) -> ClusterResult:
    """Sort the photos under ``root`` by person (see the module's notes).

    Raises PeopleError when the folder holds no images, none could be read, or no face
    was found (a face model), and when cancelled.
    """
    faces = embed_folder(verifier, root, cache=cache, progress=progress, cancel=cancel)
    if faces.cancelled:
        raise PeopleError("Sorting was cancelled; the photos embedded so far are cached for the next run.")
    if not faces.photos:
        raise PeopleError(f"{os.fspath(root)} holds no images.")
    if len(faces.skipped) == faces.photos:
        raise PeopleError(f"None of the {faces.photos} image(s) in {os.fspath(root)} could be read "
                          f"({faces.skipped[0][1]}).")
    if not faces.faces and not faces.unjudged:
        raise PeopleError(f"No face was found in the {faces.photos - len(faces.skipped)} readable photo(s) "
                          f"of {os.fspath(root)}.")
    t = float(verifier.threshold if threshold is None else threshold)
    labels, used = cluster_labels(faces.vectors, t, verifier.distance.name, method=method, chunk=chunk,
                                  linkage=linkage)
    clusters, unsorted = group(faces.faces, labels)
    unsorted = sorted(unsorted + faces.unjudged, key=lambda f: f.seq)
    return ClusterResult(str(verifier.path) if verifier.path is not None else "", t, verifier.distance.name,
                         clusters, unsorted, faces.skipped, used, faces.photos, faces.embedded, faces.no_face)


def write_json(result: ClusterResult, path: str | os.PathLike) -> None:
    """``clusters.json``, written atomically (a failure leaves any earlier file as it was)."""
    from siamgui.core.modelfile import atomic_write

    try:
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise PeopleError(f"Cannot write {os.fspath(path)}: {exc.strerror or exc}") from None


def link_into(result: ClusterResult, out_dir: str | os.PathLike) -> int:
    """Folders of symbolic links: ``person_<id>/`` per cluster, ``unsorted/``; the photos are never
    touched. Refuses an ``out_dir`` that exists and is not empty. Returns the links made."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PeopleError(f"{out} is not an empty folder; choose a new one for the links.")
    made = 0
    try:
        for name, faces in [(f"person_{i}", c) for i, c in enumerate(result.clusters)] + [("unsorted", result.unsorted)]:
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            used: set[str] = set()
            for image in dict.fromkeys(f.image for f in faces):  # a photo once per folder
                base = os.path.basename(image)
                stem, ext = os.path.splitext(base)
                k = 1
                while base in used:
                    k += 1
                    base = f"{stem}_{k}{ext}"
                used.add(base)
                os.symlink(os.path.abspath(image), folder / base)
                made += 1
    except OSError as exc:
        raise PeopleError(f"Cannot make the links in {out}: {exc.strerror or exc}") from None
    return made

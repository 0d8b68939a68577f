"""The gallery: enrolled identities for one-shot identification (SQLite, no Qt).

A gallery is one SQLite file holding

- ``identities``: name (unique, case-insensitive), notes, creation time;
- ``examples``: for each identity, its example images *stored in the database*
  (the file's bytes when small enough, else a reduced copy), so the gallery
  survives moved or deleted files, plus a small JPEG thumbnail for display;
- ``embeddings``: one vector per example **and per model fingerprint**
  (:meth:`LoadedModel.fingerprint`: a hash of the weights and preprocessing).
  Embeddings of another model are never mixed in; when the model changes,
  :meth:`Gallery.sync` recomputes them from the stored images (progress, cancel).

Every write runs in one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, rollback
journal, ``synchronous=FULL``): a crash or a killed process mid-enrolment leaves
the gallery as it was before that enrolment. The schema carries a version
(``PRAGMA user_version``) and is migrated forward on open; a file written by a
newer siamgui is refused, not damaged.

Identification (:class:`GalleryIndex`) is vectorised numpy over an in-memory
snapshot of the embeddings: distance to every example, then per identity the
minimum, or the mean of its ``k`` nearest examples; "Unknown" (``best is None``)
when the best distance is not below the threshold (open set).

The gallery takes a :class:`~siamgui.core.verifier.Verifier` where it needs to
embed; it never imports torch itself. One :class:`Gallery` may be shared by
threads (an internal lock serialises database access).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import os
import sqlite3
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from siamgui.core.errors import ImageError, SiamguiError
from siamgui.core.images import describe, load_image

#: Current schema version (``PRAGMA user_version``).
SCHEMA_VERSION = 1
#: ``PRAGMA application_id``: marks a SQLite file as a siamgui gallery ("SGAL").
APPLICATION_ID = 0x5347414C
DEFAULT_FILE_NAME = "gallery.sqlite"
#: Ranking rules: nearest example, or mean of the k nearest examples.
RANKINGS = ("min", "mean")
#: Stored images: the file itself when it is at most this large and its longest
#: side at most ``MAX_STORED_SIDE``; otherwise a reduced JPEG copy.
MAX_COPY_BYTES = 2_000_000
MAX_STORED_SIDE = 1024
THUMB_SIDE = 128

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


class GalleryError(SiamguiError):
    """The gallery cannot do what was asked (unknown name, damaged file...)."""


def default_gallery_path() -> Path:
    """``<app data folder>/gallery.sqlite`` (``$SIAMGUI_DATA_DIR`` first)."""
    from siamgui.core.resources import user_data_dir

    return user_data_dir() / DEFAULT_FILE_NAME


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def check_name(name: str) -> str:
    """A cleaned identity name, or GalleryError."""
    if not isinstance(name, str):
        raise GalleryError("An identity name must be text.")
    clean = unicodedata.normalize("NFC", name).strip()
    if not clean:
        raise GalleryError("An identity name cannot be empty.")
    if len(clean) > 200:
        raise GalleryError("An identity name is limited to 200 characters.")
    if any(unicodedata.category(ch) == "Cc" for ch in clean):
        raise GalleryError("An identity name cannot contain control characters.")
    return clean


def model_fingerprint(verifier_or_model) -> str:
    """The fingerprint of a Verifier's (or LoadedModel's) model, computed once per object."""
    loaded = getattr(verifier_or_model, "loaded", verifier_or_model)
    fp = loaded.__dict__.get("_gallery_fingerprint")
    if fp is None:
        fp = loaded.fingerprint()
        loaded.__dict__["_gallery_fingerprint"] = fp
    return fp


def cached_fingerprint(verifier_or_model) -> str | None:
    """The fingerprint if :func:`model_fingerprint` already computed it, else None (cheap)."""
    loaded = getattr(verifier_or_model, "loaded", verifier_or_model)
    return loaded.__dict__.get("_gallery_fingerprint")


# -- schema -------------------------------------------------------------------------------
def _migrate_0_to_1(con: sqlite3.Connection) -> None:
    for stmt in (
        """CREATE TABLE identities (
               id INTEGER PRIMARY KEY,
               name TEXT NOT NULL UNIQUE COLLATE NOCASE,
               notes TEXT NOT NULL DEFAULT '',
               created TEXT NOT NULL)""",
        """CREATE TABLE examples (
               id INTEGER PRIMARY KEY,
               identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
               image BLOB NOT NULL,
               stored TEXT NOT NULL,
               thumbnail BLOB NOT NULL,
               width INTEGER NOT NULL,
               height INTEGER NOT NULL,
               source TEXT NOT NULL DEFAULT '',
               sha256 TEXT NOT NULL,
               created TEXT NOT NULL)""",
        "CREATE INDEX examples_identity ON examples(identity_id)",
        """CREATE TABLE embeddings (
               example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
               fingerprint TEXT NOT NULL,
               dim INTEGER NOT NULL,
               vector BLOB NOT NULL,
               PRIMARY KEY (example_id, fingerprint)) WITHOUT ROWID""",
        "CREATE INDEX embeddings_fingerprint ON embeddings(fingerprint)",
    ):
        con.execute(stmt)


#: ``MIGRATIONS[v]`` upgrades a database at version ``v`` to ``v + 1``.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1]
assert len(MIGRATIONS) == SCHEMA_VERSION


# -- results ------------------------------------------------------------------------------
@dataclass
class IdentityInfo:
    id: int
    name: str
    notes: str
    created: str
    examples: int
    #: Examples with an embedding for the fingerprint asked about (None: not asked).
    embedded: int | None = None


@dataclass
class ExampleInfo:
    id: int
    identity_id: int
    source: str
    stored: str
    width: int
    height: int
    created: str


@dataclass
class EnrolResult:
    name: str
    added: int
    #: (image label, reason) for images that were not added
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    identities: int = 0
    added: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False


@dataclass
class SyncResult:
    embedded: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    cancelled: bool = False


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
        q = np.asarray(query, dtype=np.float32).ravel()
        if q.shape[0] != self.vectors.shape[1]:
            raise GalleryError(f"The probe's embedding has {q.shape[0]} values, the gallery's {self.vectors.shape[1]}.")
        # einsum, not ``vectors @ q``: a BLAS matrix-vector product wakes its thread pool on
        # every call, which cost ~25 ms per probe on a busy 2-core machine (0.3 ms this way).
        if self.distance == "cosine":
            q = q / max(float(np.linalg.norm(q)), 1e-8)
            return 1.0 - np.einsum("ij,j->i", self.vectors, q)
        d2 = self.sq + float(q @ q) - 2.0 * np.einsum("ij,j->i", self.vectors, q)
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
            out.append(Candidate(self.names[i], float(score[i]), int(self.identity_ids[i]),
                                 int(self.example_ids[nearest])))
        return out

    def identify(self, query: np.ndarray, threshold: float, top: int = 5, rank: str = "min",
                 k: int = 3) -> Identification:
        cands = self.search(query, top, rank, k)
        if not cands:
            raise GalleryError("The gallery has no enrolled examples for this model.")
        best = cands[0]
        return Identification(best.name if best.distance < threshold else None, best.distance, float(threshold),
                              cands, rank, 1 if rank == "min" else int(k))


# -- stored images --------------------------------------------------------------------------
@dataclass
class _Stored:
    image: bytes
    stored: str
    thumbnail: bytes
    width: int
    height: int
    source: str
    sha256: str


def _jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _store_image(source, pil: Image.Image, face_box=None) -> _Stored:
    """What the database keeps of one example: the file, or a reduced copy, and a thumbnail."""
    raw = None
    label = ""
    if isinstance(source, (str, os.PathLike)):
        label = os.path.basename(os.fspath(source))
        try:
            if os.path.getsize(source) <= MAX_COPY_BYTES:
                with open(source, "rb") as fh:
                    raw = fh.read()
        except OSError as exc:
            raise ImageError(f"Cannot read {label}: {exc.strerror or exc}") from None
    elif isinstance(source, (bytes, bytearray)) and len(source) <= MAX_COPY_BYTES:
        raw = bytes(source)
    w, h = pil.size
    sha = hashlib.sha256(raw if raw is not None else pil.tobytes()).hexdigest()
    if raw is not None and max(w, h) <= MAX_STORED_SIDE:
        # the file's own bytes: they decode (through load_image) to exactly these pixels
        image, stored = raw, "copy"
    else:
        im = pil
        if max(w, h) > MAX_STORED_SIDE:
            im = pil.copy()
            im.thumbnail((MAX_STORED_SIDE, MAX_STORED_SIDE), Image.LANCZOS)
        image = _jpeg(im, 92)
        stored = "reduced" if isinstance(source, (str, os.PathLike, bytes, bytearray)) else "capture"
        w, h = im.size
    thumb_src = pil
    if face_box is not None:
        x, y, bw, bh = face_box
        side = max(bw, bh) * 1.4
        cx, cy = x + bw / 2, y + bh / 2
        thumb_src = pil.crop(tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2,
                                                           cy + side / 2)))
    t = thumb_src.copy()
    t.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.LANCZOS)
    return _Stored(image, stored, _jpeg(t, 85), w, h, label, sha)


# -- the store ------------------------------------------------------------------------------
class Gallery:
    """An open gallery file. Use as a context manager or call :meth:`close`.

    ``create=False`` refuses a file that does not exist yet (GalleryError)
    instead of creating an empty gallery (for commands that only read).
    """

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = True):
        path = Path(path) if path is not None else default_gallery_path()
        if path.is_dir():
            path = path / DEFAULT_FILE_NAME
        if not create and not path.exists():
            raise GalleryError(f"There is no gallery at {path} yet; enrol someone first (siamgui gallery add).")
        self.path = path
        self._lock = threading.RLock()
        self._index_cache: dict[tuple[str, str], GalleryIndex] = {}
        self._data_version = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GalleryError(f"Cannot create the gallery folder {path.parent}: {exc.strerror or exc}") from None
        try:
            self._con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=15.0)
        except sqlite3.Error as exc:
            raise GalleryError(f"Cannot open the gallery {path}: {exc}") from None
        try:
            self._open()
        except BaseException:
            self._con.close()
            raise

    # -- opening and migration --------------------------------------------------------
    def _open(self) -> None:
        con = self._con
        try:
            con.execute("PRAGMA foreign_keys = ON")
            con.execute("PRAGMA synchronous = FULL")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            tables = con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{self.path.name} is not a gallery file (or it is damaged: {exc}).") from None
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise GalleryError(f"{self.path.name} is a database, but not a siamgui gallery.")
        if version > SCHEMA_VERSION:
            raise GalleryError(f"{self.path.name} was written by a newer siamgui (gallery version {version}; "
                               f"this version reads up to {SCHEMA_VERSION}). Please update siamgui.")
        if version < SCHEMA_VERSION:
            self._migrate()

    def _migrate(self) -> None:
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                version = con.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
                for v in range(version, SCHEMA_VERSION):
                    MIGRATIONS[v](con)
                    con.execute(f"PRAGMA user_version = {v + 1}")
                con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise GalleryError(f"Cannot write the gallery {self.path}: {exc}.") from None

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._con.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None  # type: ignore[assignment]

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # -- transactions -------------------------------------------------------------------
    class _Tx:
        def __init__(self, gallery: "Gallery"):
            self.g = gallery

        def __enter__(self) -> sqlite3.Connection:
            self.g._lock.acquire()
            try:
                if self.g._con is None:
                    raise GalleryError("The gallery is closed.")
                self.g._con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                self.g._lock.release()
                raise GalleryError(f"The gallery {self.g.path.name} cannot be written ({exc}).") from None
            except BaseException:
                self.g._lock.release()
                raise
            return self.g._con

        def __exit__(self, exc_type, exc, tb) -> None:
            con = self.g._con
            try:
                if exc_type is None:
                    try:
                        con.execute("COMMIT")
                    except sqlite3.Error as err:
                        con.execute("ROLLBACK")
                        raise GalleryError(f"The gallery {self.g.path.name} could not be saved ({err}).") from None
                else:
                    if con.in_transaction:
                        con.execute("ROLLBACK")
            finally:
                self.g._index_cache.clear()
                self.g._lock.release()

    def transaction(self) -> "_Tx":
        """``with gallery.transaction() as con:`` one atomic write."""
        return Gallery._Tx(self)

    def _query(self, sql: str, params: Iterable = ()) -> list[tuple]:
        with self._lock:
            if self._con is None:
                raise GalleryError("The gallery is closed.")
            return self._con.execute(sql, tuple(params)).fetchall()

    # -- reading ------------------------------------------------------------------------
    def identities(self, fingerprint: str | None = None) -> list[IdentityInfo]:
        rows = self._query(
            "SELECT i.id, i.name, i.notes, i.created, count(e.id) FROM identities i "
            "LEFT JOIN examples e ON e.identity_id = i.id GROUP BY i.id ORDER BY i.name COLLATE NOCASE")
        out = [IdentityInfo(*r) for r in rows]
        if fingerprint is not None:
            emb = dict(self._query(
                "SELECT e.identity_id, count(*) FROM embeddings m JOIN examples e ON e.id = m.example_id "
                "WHERE m.fingerprint = ? GROUP BY e.identity_id", (fingerprint,)))
            for info in out:
                info.embedded = int(emb.get(info.id, 0))
        return out

    def names(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM identities ORDER BY name COLLATE NOCASE")]

    def __len__(self) -> int:
        return self._query("SELECT count(*) FROM identities")[0][0]

    def example_count(self) -> int:
        return self._query("SELECT count(*) FROM examples")[0][0]

    def identity(self, name: str) -> IdentityInfo:
        rows = self._query(
            "SELECT i.id, i.name, i.notes, i.created, count(e.id) FROM identities i "
            "LEFT JOIN examples e ON e.identity_id = i.id WHERE i.name = ? GROUP BY i.id", (check_name(name),))
        if not rows:
            raise GalleryError(f"No identity named {name.strip()!r} in the gallery.")
        return IdentityInfo(*rows[0])

    def examples(self, name: str) -> list[ExampleInfo]:
        ident = self.identity(name)
        return [ExampleInfo(*r) for r in self._query(
            "SELECT id, identity_id, source, stored, width, height, created FROM examples "
            "WHERE identity_id = ? ORDER BY id", (ident.id,))]

    def thumbnail(self, example_id: int) -> bytes:
        rows = self._query("SELECT thumbnail FROM examples WHERE id = ?", (int(example_id),))
        if not rows:
            raise GalleryError(f"No example {example_id} in the gallery.")
        return bytes(rows[0][0])

    def image_bytes(self, example_id: int) -> bytes:
        rows = self._query("SELECT image FROM examples WHERE id = ?", (int(example_id),))
        if not rows:
            raise GalleryError(f"No example {example_id} in the gallery.")
        return bytes(rows[0][0])

    def fingerprints(self) -> dict[str, int]:
        """Model fingerprints with embeddings stored, and how many each."""
        return dict(self._query("SELECT fingerprint, count(*) FROM embeddings GROUP BY fingerprint"))

    def unembedded_count(self, fingerprint: str) -> int:
        return self._query(
            "SELECT count(*) FROM examples WHERE id NOT IN "
            "(SELECT example_id FROM embeddings WHERE fingerprint = ?)", (fingerprint,))[0][0]

    # -- writing ------------------------------------------------------------------------
    def _identity_id(self, con: sqlite3.Connection, name: str) -> int | None:
        row = con.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def _insert_example(self, con: sqlite3.Connection, identity_id: int, s: _Stored) -> int:
        cur = con.execute(
            "INSERT INTO examples (identity_id, image, stored, thumbnail, width, height, source, sha256, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (identity_id, s.image, s.stored, s.thumbnail, s.width, s.height, s.source, s.sha256, _now()))
        return int(cur.lastrowid)

    def _insert_embedding(self, con: sqlite3.Connection, example_id: int, fingerprint: str,
                          vector: np.ndarray) -> None:
        v = np.ascontiguousarray(vector, dtype="<f4").ravel()
        con.execute("INSERT OR REPLACE INTO embeddings (example_id, fingerprint, dim, vector) "
                    "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM examples WHERE id = ?)",
                    (example_id, fingerprint, int(v.shape[0]), v.tobytes(), example_id))

    def add_prepared(self, name: str, stored: Sequence[_Stored], embeddings: np.ndarray | None = None,
                     fingerprint: str | None = None, notes: str | None = None) -> int:
        """Write an identity's new examples (and their embeddings) in one transaction.

        Creates the identity when it does not exist. Returns the identity's id.
        """
        name = check_name(name)
        if embeddings is not None and len(embeddings) != len(stored):
            raise ValueError("one embedding per stored example")
        with self.transaction() as con:
            ident = self._identity_id(con, name)
            if ident is None:
                ident = int(con.execute("INSERT INTO identities (name, notes, created) VALUES (?, ?, ?)",
                                        (name, notes or "", _now())).lastrowid)
            elif notes is not None:
                con.execute("UPDATE identities SET notes = ? WHERE id = ?", (notes, ident))
            for i, s in enumerate(stored):
                ex = self._insert_example(con, ident, s)
                if embeddings is not None and fingerprint is not None:
                    self._insert_embedding(con, ex, fingerprint, embeddings[i])
        return ident

    def enroll(self, verifier, name: str, images: Sequence, *, notes: str | None = None,
               face_policy: str = "largest", bgr: bool = False, skip_bad: bool = False,
               progress: Progress | None = None, cancel: Cancel | None = None) -> EnrolResult:
        """Add ``images`` (paths, bytes, arrays, PIL images) as examples of ``name``.

        The identity is created if needed. Every image is read, stored and embedded
        first; then everything is written in one transaction (all or nothing).
        A bad image raises :class:`ImageError` unless ``skip_bad`` (then it is listed
        in ``skipped``). Raises GalleryError when no image is usable.
        """
        name = check_name(name)
        result = EnrolResult(name, 0)
        stored: list[_Stored] = []
        prepared: list[np.ndarray] = []
        seen: set[str] = set()
        existing = set()
        with self._lock:
            row = self._query("SELECT id FROM identities WHERE name = ?", (name,))
            if row:
                existing = {r[0] for r in self._query("SELECT sha256 FROM examples WHERE identity_id = ?",
                                                      (row[0][0],))}
        images = list(images)
        for n, src in enumerate(images):
            if cancel is not None and cancel():
                raise GalleryError("Enrolment cancelled; nothing was added.")
            label = describe(src)
            try:
                pil = load_image(src, bgr=bgr)
                arr, info = verifier.prepare(pil, face_policy=face_policy)
                s = _store_image(src, pil, info.used_box if info is not None else None)
            except ImageError as exc:
                if not skip_bad:
                    raise
                result.skipped.append((label, str(exc)))
                continue
            if s.sha256 in seen or s.sha256 in existing:
                result.skipped.append((label, "already enrolled for this identity"))
                continue
            seen.add(s.sha256)
            if info is not None and info.mode != "face":
                result.notes.append(f"{label}: {info.message()}")
            stored.append(s)
            prepared.append(arr)
            if progress is not None:
                progress(n + 1, len(images))
        if not stored:
            why = f" ({result.skipped[0][1]})" if result.skipped else ""
            raise GalleryError(f"No usable image to enrol for {name!r}{why}.")
        emb = verifier.embed_prepared(prepared).numpy()
        self.add_prepared(name, stored, emb, model_fingerprint(verifier), notes)
        result.added = len(stored)
        return result

    def import_folder(self, verifier, root: str | os.PathLike, *, face_policy: str = "largest",
                      progress: Progress | None = None, cancel: Cancel | None = None) -> ImportResult:
        """Enrol every sub-folder of ``root`` as an identity (its images as examples).

        Each identity is written in its own transaction; unreadable images are skipped
        and listed. Cancelling keeps the identities already written.
        """
        from siamgui.core.datasets import scan_folder

        ds = scan_folder(root, cancel=cancel)
        result = ImportResult(skipped=[(os.path.basename(p), r) for p, r in ds.skipped])
        if not ds.samples:
            raise GalleryError(f"{root} holds no images in sub-folders (one sub-folder per identity).")
        by_class: dict[int, list[str]] = {}
        for p, c in ds.samples:
            by_class.setdefault(c, []).append(p)
        total, done = len(ds.samples), 0
        for c, paths in by_class.items():
            if cancel is not None and cancel():
                result.cancelled = True
                break
            try:
                r = self.enroll(verifier, ds.classes[c], paths, face_policy=face_policy, skip_bad=True)
                result.identities += 1
                result.added += r.added
                result.skipped.extend(r.skipped)
            except GalleryError as exc:
                result.skipped.append((ds.classes[c], str(exc)))
            done += len(paths)
            if progress is not None:
                progress(done, total)
        return result

    def rename(self, old: str, new: str) -> None:
        old_c, new_c = check_name(old), check_name(new)
        with self.transaction() as con:
            ident = self._identity_id(con, old_c)
            if ident is None:
                raise GalleryError(f"No identity named {old_c!r} in the gallery.")
            other = self._identity_id(con, new_c)
            if other is not None and other != ident:
                raise GalleryError(f"An identity named {new_c!r} already exists.")
            con.execute("UPDATE identities SET name = ? WHERE id = ?", (new_c, ident))

    def set_notes(self, name: str, notes: str) -> None:
        name = check_name(name)
        with self.transaction() as con:
            ident = self._identity_id(con, name)
            if ident is None:
                raise GalleryError(f"No identity named {name!r} in the gallery.")
            con.execute("UPDATE identities SET notes = ? WHERE id = ?", (notes, ident))

    def remove(self, name: str) -> int:
        """Remove an identity with its examples and embeddings; returns the examples removed."""
        name = check_name(name)
        with self.transaction() as con:
            ident = self._identity_id(con, name)
            if ident is None:
                raise GalleryError(f"No identity named {name!r} in the gallery.")
            n = con.execute("SELECT count(*) FROM examples WHERE identity_id = ?", (ident,)).fetchone()[0]
            con.execute("DELETE FROM identities WHERE id = ?", (ident,))
        return int(n)

    def remove_example(self, example_id: int) -> None:
        """Remove one example; an identity left without examples is removed too."""
        with self.transaction() as con:
            row = con.execute("SELECT identity_id FROM examples WHERE id = ?", (int(example_id),)).fetchone()
            if row is None:
                raise GalleryError(f"No example {example_id} in the gallery.")
            con.execute("DELETE FROM examples WHERE id = ?", (int(example_id),))
            left = con.execute("SELECT count(*) FROM examples WHERE identity_id = ?", (row[0],)).fetchone()[0]
            if left == 0:
                con.execute("DELETE FROM identities WHERE id = ?", (row[0],))

    def prune_embeddings(self, keep: Iterable[str]) -> int:
        """Delete embeddings of models other than ``keep``; returns how many."""
        keep = list(keep)
        with self.transaction() as con:
            marks = ",".join("?" * len(keep)) or "''"
            return con.execute(f"DELETE FROM embeddings WHERE fingerprint NOT IN ({marks})", keep).rowcount

    # -- embeddings for a model -----------------------------------------------------------
    def sync(self, verifier, *, batch_size: int = 32, progress: Progress | None = None,
             cancel: Cancel | None = None) -> SyncResult:
        """Embed every stored example that has no embedding for the verifier's model.

        Works in batches, each written in its own transaction: cancelling (checked
        between batches) keeps what is done, and a later call resumes.
        """
        fp = model_fingerprint(verifier)
        result = SyncResult()
        ids = [r[0] for r in self._query(
            "SELECT id FROM examples WHERE id NOT IN (SELECT example_id FROM embeddings WHERE fingerprint = ?) "
            "ORDER BY id", (fp,))]
        total = len(ids)
        if progress is not None:
            progress(0, total)
        for start in range(0, total, batch_size):
            if cancel is not None and cancel():
                result.cancelled = True
                break
            chunk = ids[start:start + batch_size]
            marks = ",".join("?" * len(chunk))
            rows = self._query(f"SELECT id, image FROM examples WHERE id IN ({marks})", chunk)
            arrays, good = [], []
            for ex_id, blob in rows:
                try:
                    arrays.append(verifier.prepare(bytes(blob))[0])
                    good.append(ex_id)
                except ImageError as exc:
                    result.failed.append((ex_id, str(exc)))
            if arrays:
                emb = verifier.embed_prepared(arrays).numpy()
                with self.transaction() as con:
                    for ex_id, v in zip(good, emb):
                        self._insert_embedding(con, ex_id, fp, v)
                result.embedded += len(good)
            if progress is not None:
                progress(min(start + batch_size, total), total)
        return result

    def index(self, fingerprint: str, distance: str = "euclidean") -> GalleryIndex:
        """The search snapshot for one model (cached until the gallery changes)."""
        with self._lock:
            dv = self._query("PRAGMA data_version")[0][0]  # changes when another connection commits
            if dv != self._data_version:
                self._index_cache.clear()
                self._data_version = dv
            key = (fingerprint, distance)
            cached = self._index_cache.get(key)
            if cached is not None:
                return cached
            idents = self._query("SELECT id, name FROM identities ORDER BY name COLLATE NOCASE, id")
            pos = {iid: i for i, (iid, _) in enumerate(idents)}
            rows = self._query(
                "SELECT e.identity_id, e.id, m.dim, m.vector FROM embeddings m JOIN examples e "
                "ON e.id = m.example_id WHERE m.fingerprint = ? ORDER BY e.identity_id, e.id", (fingerprint,))
            dims = {r[2] for r in rows}
            if len(dims) > 1:
                raise GalleryError("The gallery's embeddings for this model have mixed sizes (damaged gallery).")
            dim = dims.pop() if dims else 0
            vectors = (np.frombuffer(b"".join(bytes(r[3]) for r in rows), dtype="<f4").reshape(len(rows), dim)
                       if rows else np.zeros((0, 0), np.float32))
            owner = np.array([pos[r[0]] for r in rows], dtype=np.int64)
            index = GalleryIndex(vectors, owner, [n for _, n in idents], [i for i, _ in idents],
                                 [r[1] for r in rows], distance, fingerprint)
            self._index_cache[key] = index
            return index

    def identify(self, verifier, image, *, top: int = 5, rank: str = "min", k: int = 3,
                 threshold: float | None = None, face_policy: str = "largest", bgr: bool = False) -> Identification:
        """Rank the enrolled identities for a probe image (see :class:`GalleryIndex`)."""
        if rank not in RANKINGS:
            raise GalleryError(f"Unknown ranking {rank!r}; choose from {', '.join(RANKINGS)}.")
        fp = model_fingerprint(verifier)
        index = self.index(fp, verifier.distance.name)
        if not len(index):
            if self.example_count():
                raise GalleryError("The gallery's examples are not embedded for this model yet; "
                                   "wait for re-embedding to finish.")
            raise GalleryError("The gallery is empty; enrol some identities first.")
        arr, info = verifier.prepare(image, face_policy=face_policy, bgr=bgr)
        q = verifier.embed_prepared([arr])[0].numpy()
        t = verifier.threshold if threshold is None else float(threshold)
        result = index.identify(q, t, top, rank, k)
        result.face = info
        result.unembedded = self.unembedded_count(fp)
        return result

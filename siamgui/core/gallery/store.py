"""The gallery's SQLite store: enrolled identities, their images and embeddings (no Qt).

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
the gallery as it was before that enrolment. Reads that take several queries run
in one read transaction (:meth:`GalleryStore.snapshot`), so another process's
enrolment is seen whole or not at all. Several processes may share the file: a
writer waits (SQLite's busy timeout, :data:`BUSY_TIMEOUT_S`) while another
writes, and only then gives up with "the gallery is busy". The rollback journal
is kept rather than WAL because WAL needs a shared-memory file beside the
gallery, so a gallery in a read-only folder could no longer even be read. The schema carries a version
(``PRAGMA user_version``) and is migrated forward on open; a file written by a
newer siamgui is refused, not damaged.

:meth:`GalleryStore.index` hands out a search snapshot
(:class:`~siamgui.core.gallery.index.GalleryIndex`, or for a large gallery with faiss
installed :class:`~siamgui.core.gallery.ann.FaissIndex`), rebuilt from the database
whenever it changed; enrolment, re-embedding and
identification, which need a model, are :class:`~siamgui.core.gallery.enrol.Gallery`'s.
One store may be shared by threads (an internal lock serialises database access).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import os
import sqlite3
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from siamgui.core.errors import GalleryError, ImageError
from siamgui.core.gallery.ann import INDEX_KINDS, build_index
from siamgui.core.gallery.index import GalleryIndex

#: Current schema version (``PRAGMA user_version``).
SCHEMA_VERSION = 1
#: ``PRAGMA application_id``: marks a SQLite file as a siamgui gallery ("SGAL").
APPLICATION_ID = 0x5347414C
DEFAULT_FILE_NAME = "gallery.sqlite"
#: Stored images: the file itself when it is at most this large and its longest
#: side at most ``MAX_STORED_SIDE``; otherwise a reduced JPEG copy.
MAX_COPY_BYTES = 2_000_000
MAX_STORED_SIDE = 1024
THUMB_SIDE = 128
#: How long an access waits for another process's write to finish before "the gallery is busy".
BUSY_TIMEOUT_S = 30.0

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


def default_gallery_path() -> Path:
    """``<app data folder>/gallery.sqlite`` (``$SIAMGUI_DATA_DIR`` first)."""
    from siamgui.core.resources import user_data_dir

    return user_data_dir() / DEFAULT_FILE_NAME


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _reason(exc: sqlite3.Error) -> str:
    """SQLite's error in the user's words where it has common ones."""
    text = str(exc)
    low = text.lower()
    if "disk is full" in low:
        return "the disk is full"
    if "readonly" in low or "read-only" in low:
        return "the file or its folder is read-only"
    if "unable to open" in low:
        return "its folder cannot be written (read-only, or no permission)"
    return text


def _is_busy(exc: sqlite3.Error) -> bool:
    low = str(exc).lower()
    return "locked" in low or "busy" in low


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
class GalleryStore:
    """An open gallery file. Use as a context manager or call :meth:`close`.

    ``create=False`` refuses a file that does not exist yet (GalleryError)
    instead of creating an empty gallery (for commands that only read).
    ``index_kind`` chooses the search snapshot (:func:`~siamgui.core.gallery.ann.build_index`):
    ``auto`` (by size, faiss when installed), ``numpy``, ``exact`` or ``approximate``.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = True, index_kind: str = "auto"):
        if index_kind not in INDEX_KINDS:
            raise GalleryError(f"Unknown index {index_kind!r}; choose from {', '.join(INDEX_KINDS)}.")
        self.index_kind = index_kind
        path = Path(path) if path is not None else default_gallery_path()
        if path.is_dir():
            path = path / DEFAULT_FILE_NAME
        if not create and not path.exists():
            raise GalleryError(f"There is no gallery at {path} yet; enrol someone first (siamgui gallery add).")
        self.path = path
        self._lock = threading.RLock()
        self._index_cache: dict[tuple[str, str], GalleryIndex] = {}
        self._index_training: dict[tuple[str, str], object] = {}  # an IVF's centroids, kept across rebuilds
        self._data_version = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GalleryError(f"Cannot create the gallery folder {path.parent}: {exc.strerror or exc}") from None
        try:
            self._con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                        timeout=BUSY_TIMEOUT_S)
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

    def __enter__(self) -> "GalleryStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # -- transactions -------------------------------------------------------------------
    def _failure(self, exc: sqlite3.Error, doing: str) -> GalleryError:
        if _is_busy(exc):
            return GalleryError(f"The gallery {self.path.name} is busy: another siamgui window or command kept "
                                f"it locked for over {BUSY_TIMEOUT_S:.0f} s. Try again when it has finished.")
        return GalleryError(f"The gallery {self.path.name} {doing} ({_reason(exc)}).")

    class _Tx:
        def __init__(self, gallery: "GalleryStore"):
            self.g = gallery

        def __enter__(self) -> sqlite3.Connection:
            self.g._lock.acquire()
            try:
                if self.g._con is None:
                    raise GalleryError("The gallery is closed.")
                self.g._con.execute("BEGIN IMMEDIATE")  # waits up to BUSY_TIMEOUT_S for another writer
            except sqlite3.Error as exc:
                self.g._lock.release()
                raise self.g._failure(exc, "cannot be written") from None
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
                        with contextlib.suppress(sqlite3.Error):
                            con.execute("ROLLBACK")
                        raise self.g._failure(err, "could not be saved") from None
                else:
                    if con.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            con.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        raise self.g._failure(exc, "could not be saved") from None
            finally:
                self.g._index_cache.clear()
                self.g._lock.release()

    def transaction(self) -> "_Tx":
        """``with gallery.transaction() as con:`` one atomic write."""
        return GalleryStore._Tx(self)

    @contextlib.contextmanager
    def snapshot(self):
        """``with gallery.snapshot():`` the reads inside see one state of the file.

        Without it, another process's enrolment committed between two queries
        would show in the second but not the first (half an enrolment).
        """
        with self._lock:
            con = self._con
            if con is None:
                raise GalleryError("The gallery is closed.")
            own = not con.in_transaction
            if own:
                con.execute("BEGIN")  # deferred: the first read takes the shared lock
            try:
                yield con
            finally:
                if own and con.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        con.execute("COMMIT")

    def _query(self, sql: str, params: Iterable = ()) -> list[tuple]:
        with self._lock:
            if self._con is None:
                raise GalleryError("The gallery is closed.")
            try:
                return self._con.execute(sql, tuple(params)).fetchall()
            except sqlite3.OperationalError as exc:
                raise self._failure(exc, "cannot be read") from None

    # -- reading ------------------------------------------------------------------------
    def identities(self, fingerprint: str | None = None) -> list[IdentityInfo]:
        with self.snapshot():
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

    def index(self, fingerprint: str, distance: str = "euclidean") -> GalleryIndex:
        """The search snapshot for one model (cached until the gallery changes)."""
        with self.snapshot():
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
            # by example id (the index's order, no temporary B-tree); the snapshot groups them by identity
            rows = self._query(
                "SELECT e.identity_id, e.id, m.dim, m.vector FROM embeddings m JOIN examples e "
                "ON e.id = m.example_id WHERE m.fingerprint = ? ORDER BY m.example_id", (fingerprint,))
            dims = {r[2] for r in rows}
            if len(dims) > 1:
                raise GalleryError("The gallery's embeddings for this model have mixed sizes (damaged gallery).")
            dim = dims.pop() if dims else 0
            vectors = (np.frombuffer(b"".join(bytes(r[3]) for r in rows), dtype="<f4").reshape(len(rows), dim)
                       if rows else np.zeros((0, 0), np.float32))
            owner = np.array([pos[r[0]] for r in rows], dtype=np.int64)
            example_ids = [r[1] for r in rows]
            del rows
            index = build_index(vectors, owner, [n for _, n in idents], [i for i, _ in idents], example_ids,
                                distance, fingerprint, kind=self.index_kind, training=self._index_training.get(key))
            if getattr(index, "training", None) is not None:
                self._index_training[key] = index.training
            self._index_cache[key] = index
            return index

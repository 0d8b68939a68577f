"""The face cache of folder sorting: every face of a photo and its embedding, keyed by content (no Qt).

Sorting a folder again (after adding photos) must only embed the new photos. A photo is
keyed by the SHA-256 of its bytes (a renamed, moved or copied photo is still known; an
edited one is new) **and** the model's fingerprint (another model's embeddings are never
mixed in). Per key the cache holds the photo's size, how many faces the detector found, and
each face's box, issue (too small, cut by the border) and embedding (none for a face not judged).

Location: ``<user cache folder>/faces.sqlite`` (``$SIAMGUI_CACHE_DIR``, else the platform's
cache folder: :func:`siamgui.core.face.chips.cache_root`): it can always be deleted, it is
rebuilt by the next run. Every batch of photos is written in one transaction, so an
interrupted run keeps every batch before it and never a torn photo.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamgui.core.errors import PeopleError

#: ``PRAGMA user_version`` of the cache file; another version is dropped and rebuilt (it is only a cache).
CACHE_VERSION = 1
CACHE_FILE_NAME = "faces.sqlite"


def default_cache_path() -> Path:
    from siamgui.core.face.chips import cache_root

    return cache_root() / CACHE_FILE_NAME


@dataclass
class CachedFace:
    """One face of a photo: box (x, y, w, h), why it is not judged (None: judged), embedding (None: not judged)."""

    box: tuple[int, int, int, int]
    issue: str | None
    vector: np.ndarray | None


@dataclass
class CachedPhoto:
    width: int
    height: int
    #: Faces the detector found (more than ``len(faces)`` when the per-photo cap applied).
    found: int
    faces: list[CachedFace]


class FaceCache:
    """The SQLite face cache. Thread-safe (one lock); use as a context manager or :meth:`close`."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._con.execute("PRAGMA synchronous=NORMAL")
            version = self._con.execute("PRAGMA user_version").fetchone()[0]
            if version != CACHE_VERSION:
                self._con.execute("DROP TABLE IF EXISTS faces")
                self._con.execute("DROP TABLE IF EXISTS photos")
                self._create()
        except (sqlite3.Error, OSError) as exc:
            raise PeopleError(f"The face cache {self.path} cannot be used: {exc}") from None

    def _create(self) -> None:
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        con.execute("""CREATE TABLE photos (sha256 TEXT NOT NULL, fingerprint TEXT NOT NULL,
                       width INTEGER NOT NULL, height INTEGER NOT NULL, found INTEGER NOT NULL,
                       PRIMARY KEY (sha256, fingerprint)) WITHOUT ROWID""")
        con.execute("""CREATE TABLE faces (sha256 TEXT NOT NULL, fingerprint TEXT NOT NULL, k INTEGER NOT NULL,
                       x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
                       issue TEXT, vector BLOB, PRIMARY KEY (sha256, fingerprint, k)) WITHOUT ROWID""")
        con.execute(f"PRAGMA user_version = {CACHE_VERSION}")
        con.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> "FaceCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, sha256: str, fingerprint: str) -> CachedPhoto | None:
        with self._lock:
            row = self._con.execute("SELECT width, height, found FROM photos WHERE sha256 = ? AND fingerprint = ?",
                                    (sha256, fingerprint)).fetchone()
            if row is None:
                return None
            faces = self._con.execute("SELECT x, y, w, h, issue, vector FROM faces WHERE sha256 = ? AND "
                                      "fingerprint = ? ORDER BY k", (sha256, fingerprint)).fetchall()
        return CachedPhoto(row[0], row[1], row[2], [
            CachedFace((x, y, w, h), issue, None if v is None else np.frombuffer(v, dtype="<f4").copy())
            for x, y, w, h, issue, v in faces])

    def put_many(self, fingerprint: str, photos: list[tuple[str, CachedPhoto]]) -> None:
        """Write ``(sha256, photo)`` items in one transaction (all or none)."""
        if not photos:
            return
        with self._lock:
            con = self._con
            try:
                con.execute("BEGIN IMMEDIATE")
                for sha, p in photos:
                    con.execute("INSERT OR REPLACE INTO photos VALUES (?, ?, ?, ?, ?)",
                                (sha, fingerprint, p.width, p.height, p.found))
                    con.execute("DELETE FROM faces WHERE sha256 = ? AND fingerprint = ?", (sha, fingerprint))
                    con.executemany("INSERT INTO faces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                        (sha, fingerprint, k, *map(int, f.box), f.issue,
                         None if f.vector is None else np.asarray(f.vector, dtype="<f4").tobytes())
                        for k, f in enumerate(p.faces)])
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise PeopleError(f"The face cache {self.path} cannot be written: {exc}") from None

    def __len__(self) -> int:
        with self._lock:
            return self._con.execute("SELECT COUNT(*) FROM photos").fetchone()[0]

"""The People store: a sorted folder and the user's edits to it, in SQLite (no Qt).

One file, ``people.sqlite`` beside the gallery (the app's data folder, ``$SIAMGUI_DATA_DIR``
first), holding per sorted folder (an *album*): its people (an optional name each) and
every face (photo path, box, person or none = unsorted). Sorting a folder again replaces
its album. Edits: :meth:`PeopleStore.merge`, :meth:`~PeopleStore.split`,
:meth:`~PeopleStore.move` ("not this person"), :meth:`~PeopleStore.rename`, and
:meth:`~PeopleStore.enrol` of a named person into the gallery. Every write is one
transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a crash leaves the edit done or not done.
"""

from __future__ import annotations

import datetime as _dt
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from siamgui.core.errors import GalleryError, ImageError, PeopleError

SCHEMA_VERSION = 1
#: ``PRAGMA application_id``: marks a SQLite file as a siamgui people file ("SPPL").
APPLICATION_ID = 0x5350504C
DEFAULT_FILE_NAME = "people.sqlite"
#: A face is enrolled as its box grown by this fraction of its size on every side, so the
#: model's own detector finds it again in the crop.
ENROL_MARGIN = 0.5


def default_people_path() -> Path:
    """``<app data folder>/people.sqlite``, beside the default gallery."""
    from siamgui.core.resources import user_data_dir

    return user_data_dir() / DEFAULT_FILE_NAME


@dataclass
class Album:
    id: int
    folder: str
    model: str
    threshold: float
    created: str


@dataclass
class PersonFace:
    id: int
    image: str
    box: tuple[int, int, int, int]
    person_id: int | None


@dataclass
class Person:
    id: int
    name: str | None
    faces: list[PersonFace] = field(default_factory=list)

    def label(self, number: int | None = None) -> str:
        return self.name or (f"Person {number}" if number is not None else f"Person #{self.id}")


class PeopleStore:
    """An open people file (created when missing). Thread-safe; use as a context manager or :meth:`close`."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_people_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._con.execute("PRAGMA foreign_keys = ON")
            self._con.execute("PRAGMA synchronous = FULL")
            self._open_schema()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise PeopleError(f"{self.path} is not a usable people file: {exc}") from None
        except OSError as exc:
            raise PeopleError(f"Cannot open {self.path}: {exc.strerror or exc}") from None

    def _open_schema(self) -> None:
        version = self._con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise PeopleError(f"{self.path} was written by a newer siamgui (schema {version}).")
        if version == SCHEMA_VERSION:
            if self._con.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                raise PeopleError(f"{self.path} is not a siamgui people file.")
            return
        if self._con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
            raise PeopleError(f"{self.path} is another program's database, not a siamgui people file.")
        with self._tx() as con:
            con.execute("""CREATE TABLE albums (id INTEGER PRIMARY KEY, folder TEXT NOT NULL UNIQUE,
                           model TEXT NOT NULL, threshold REAL NOT NULL, created TEXT NOT NULL)""")
            con.execute("""CREATE TABLE people (id INTEGER PRIMARY KEY,
                           album_id INTEGER NOT NULL REFERENCES albums(id) ON DELETE CASCADE, name TEXT)""")
            con.execute("""CREATE TABLE faces (id INTEGER PRIMARY KEY,
                           album_id INTEGER NOT NULL REFERENCES albums(id) ON DELETE CASCADE,
                           person_id INTEGER REFERENCES people(id) ON DELETE SET NULL,
                           image TEXT NOT NULL, x INTEGER NOT NULL, y INTEGER NOT NULL,
                           w INTEGER NOT NULL, h INTEGER NOT NULL)""")
            con.execute("CREATE INDEX faces_person ON faces(person_id)")
            con.execute("CREATE INDEX faces_album ON faces(album_id)")
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    class _Tx:
        def __init__(self, store: "PeopleStore"):
            self.s = store

        def __enter__(self) -> sqlite3.Connection:
            self.s._lock.acquire()
            if self.s._con is None:
                self.s._lock.release()
                raise PeopleError("The people file is closed.")
            try:
                self.s._con.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self.s._lock.release()
                raise PeopleError(f"{self.s.path} cannot be written: {exc}") from None
            return self.s._con

        def __exit__(self, etype, exc, tb):
            con = self.s._con
            try:
                if etype is None:
                    try:
                        con.execute("COMMIT")
                    except sqlite3.Error as err:
                        con.execute("ROLLBACK")
                        raise PeopleError(f"{self.s.path} cannot be written: {err}") from None
                else:
                    con.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        raise PeopleError(f"{self.s.path} cannot be written: {exc}") from None
            finally:
                self.s._lock.release()
            return False

    def _tx(self) -> "_Tx":
        return PeopleStore._Tx(self)

    def _query(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            if self._con is None:
                raise PeopleError("The people file is closed.")
            return self._con.execute(sql, tuple(args)).fetchall()

    def close(self) -> None:
        with self._lock:
            con, self._con = getattr(self, "_con", None), None
            if con is not None:
                con.close()

    def __enter__(self) -> "PeopleStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- albums -------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, result) -> int:
        """Keep a :class:`~siamgui.core.people.cluster.ClusterResult` as the album of ``folder``,
        replacing an earlier sorting of it (and its edits). Returns the album's id."""
        folder = os.path.abspath(os.fspath(folder))
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with self._tx() as con:
            con.execute("DELETE FROM albums WHERE folder = ?", (folder,))
            album = con.execute("INSERT INTO albums (folder, model, threshold, created) VALUES (?, ?, ?, ?)",
                                (folder, result.model, float(result.threshold), now)).lastrowid
            for faces in result.clusters:
                pid = con.execute("INSERT INTO people (album_id) VALUES (?)", (album,)).lastrowid
                con.executemany("INSERT INTO faces (album_id, person_id, image, x, y, w, h) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [(album, pid, os.path.abspath(f.image), *map(int, f.box)) for f in faces])
            con.executemany("INSERT INTO faces (album_id, person_id, image, x, y, w, h) VALUES (?, NULL, ?, ?, ?, ?, ?)",
                            [(album, os.path.abspath(f.image), *map(int, f.box)) for f in result.unsorted])
        return album

    def albums(self) -> list[Album]:
        """The sorted folders, the latest first."""
        return [Album(*r) for r in self._query("SELECT id, folder, model, threshold, created FROM albums "
                                                "ORDER BY id DESC")]

    def latest(self) -> Album | None:
        albums = self.albums()
        return albums[0] if albums else None

    # -- reading ------------------------------------------------------------------------------
    def _faces(self, where: str, args: tuple) -> list[PersonFace]:
        return [PersonFace(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6]) for r in
                self._query(f"SELECT id, image, x, y, w, h, person_id FROM faces WHERE {where} ORDER BY id", args)]

    def people(self, album_id: int) -> list[Person]:
        """The album's people, the most faces first (ties: the older person first)."""
        with self._lock:
            out = {pid: Person(pid, name) for pid, name in
                   self._query("SELECT id, name FROM people WHERE album_id = ? ORDER BY id", (album_id,))}
            for f in self._faces("album_id = ? AND person_id IS NOT NULL", (album_id,)):
                out[f.person_id].faces.append(f)
        return sorted(out.values(), key=lambda p: -len(p.faces))

    def person(self, person_id: int) -> Person:
        rows = self._query("SELECT id, name FROM people WHERE id = ?", (person_id,))
        if not rows:
            raise PeopleError(f"There is no person #{person_id} (removed by an earlier edit?).")
        return Person(rows[0][0], rows[0][1], self._faces("person_id = ?", (person_id,)))

    def unsorted(self, album_id: int) -> list[PersonFace]:
        return self._faces("album_id = ? AND person_id IS NULL", (album_id,))

    # -- edits ----------------------------------------------------------------------------------
    def _album_of_person(self, con, person_id: int) -> int:
        row = con.execute("SELECT album_id FROM people WHERE id = ?", (person_id,)).fetchone()
        if row is None:
            raise PeopleError(f"There is no person #{person_id} (removed by an earlier edit?).")
        return row[0]

    @staticmethod
    def _drop_empty(con, album_id: int) -> None:
        con.execute("DELETE FROM people WHERE album_id = ? AND id NOT IN "
                    "(SELECT person_id FROM faces WHERE person_id IS NOT NULL)", (album_id,))

    def merge(self, keep: int, other: int) -> None:
        """``other``'s faces join ``keep`` (which keeps its name, or takes ``other``'s when it has none)."""
        if keep == other:
            raise PeopleError("Choose two different people to merge.")
        with self._tx() as con:
            album = self._album_of_person(con, keep)
            if self._album_of_person(con, other) != album:
                raise PeopleError("These people belong to different sorted folders.")
            con.execute("UPDATE faces SET person_id = ? WHERE person_id = ?", (keep, other))
            con.execute("UPDATE people SET name = COALESCE(name, (SELECT name FROM people WHERE id = ?)) "
                        "WHERE id = ?", (other, keep))
            con.execute("DELETE FROM people WHERE id = ?", (other,))

    def _check_faces(self, con, face_ids: list[int]) -> list[tuple[int, int | None]]:
        if not face_ids:
            raise PeopleError("Select one or more faces first.")
        marks = ",".join("?" * len(face_ids))
        rows = con.execute(f"SELECT album_id, person_id FROM faces WHERE id IN ({marks})", face_ids).fetchall()
        if len(rows) != len(set(face_ids)):
            raise PeopleError("Some of these faces are no longer in the people file.")
        if len({r[0] for r in rows}) != 1:
            raise PeopleError("These faces belong to different sorted folders.")
        return rows

    def split(self, face_ids: Iterable[int]) -> int:
        """The given faces (of one person, or unsorted) become a new person; returns its id."""
        face_ids = list(face_ids)
        with self._tx() as con:
            rows = self._check_faces(con, face_ids)
            if len({r[1] for r in rows}) != 1:
                raise PeopleError("Split takes faces of one person.")
            album = rows[0][0]
            pid = con.execute("INSERT INTO people (album_id) VALUES (?)", (album,)).lastrowid
            con.executemany("UPDATE faces SET person_id = ? WHERE id = ?", [(pid, f) for f in face_ids])
            self._drop_empty(con, album)
        return pid

    def move(self, face_ids: Iterable[int], person_id: int | None) -> None:
        """Move faces to another person, or with None to unsorted ("not this person")."""
        face_ids = list(face_ids)
        with self._tx() as con:
            rows = self._check_faces(con, face_ids)
            album = rows[0][0]
            if person_id is not None and self._album_of_person(con, person_id) != album:
                raise PeopleError("That person belongs to another sorted folder.")
            con.executemany("UPDATE faces SET person_id = ? WHERE id = ?", [(person_id, f) for f in face_ids])
            self._drop_empty(con, album)

    def rename(self, person_id: int, name: str | None) -> None:
        """Name a person (None or "" removes the name)."""
        from siamgui.core.gallery.store import check_name

        clean = None
        if name is not None and name.strip():
            try:
                clean = check_name(name)
            except GalleryError as exc:
                raise PeopleError(str(exc)) from None
        with self._tx() as con:
            self._album_of_person(con, person_id)
            con.execute("UPDATE people SET name = ? WHERE id = ?", (clean, person_id))

    # -- enrolment ----------------------------------------------------------------------------
    def face_crop(self, face: PersonFace, margin: float = ENROL_MARGIN):
        """The face's region of its photo (PIL), grown by ``margin`` per side; ImageError when unreadable."""
        from siamgui.core.images import load_image

        pil = load_image(face.image)
        x, y, w, h = face.box
        mx, my = w * margin, h * margin
        box = (max(0, int(x - mx)), max(0, int(y - my)), min(pil.width, int(x + w + mx)), min(pil.height, int(y + h + my)))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ImageError(f"{os.path.basename(face.image)}: the face lies outside the photo (was it edited?).")
        return pil.crop(box)

    def enrol(self, person_id: int, gallery, verifier, *, progress=None, cancel=None):
        """Enrol a named person's faces into ``gallery`` (:meth:`Gallery.enroll`, one transaction);
        photos that are gone or unreadable are skipped and listed."""
        person = self.person(person_id)
        if not person.name:
            raise PeopleError("Name this person before enrolling them into the gallery.")
        crops, skipped = [], []
        for n, f in enumerate(person.faces):
            if cancel is not None and cancel():
                raise PeopleError("Enrolment cancelled; nothing was added.")
            try:
                crops.append(self.face_crop(f))
            except ImageError as exc:
                skipped.append((f.image, str(exc)))
            if progress is not None:
                progress(n + 1, 2 * len(person.faces))
        if not crops:
            raise PeopleError(f"None of {person.name}'s photos can be read any more"
                              + (f" ({skipped[0][1]})." if skipped else "."))
        result = gallery.enroll(verifier, person.name, crops, skip_bad=True, cancel=cancel)
        result.skipped[:0] = skipped
        return result

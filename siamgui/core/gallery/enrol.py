"""What a gallery does with a model: enrol images, import a folder, re-embed, identify.

:class:`Gallery` is the store (:class:`~siamgui.core.gallery.store.GalleryStore`)
plus the operations that need a :class:`~siamgui.core.verifier.Verifier`; it
never imports torch itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from siamgui.core.errors import ImageError
from siamgui.core.face.multi import FacesInfo
from siamgui.core.gallery.index import RANKINGS, GalleryIndex, Identification
from siamgui.core.gallery.store import (Cancel, EnrolResult, GalleryError, GalleryStore, ImportResult, Progress,
                                        SyncResult, _store_image, _Stored, check_name, model_fingerprint)
from siamgui.core.images import describe, load_image


@dataclass
class FaceIdentification:
    """One face of a probe photo and who it is (:meth:`Gallery.identify_faces`)."""

    #: (x, y, w, h) in the photo; None when no face was detected and the answer is the
    #: whole image's usual one (the main-face rule's fallback, as without ``identify_faces``).
    box: tuple[int, int, int, int] | None
    #: The ranking for this face; None when the face was not judged.
    result: Identification | None
    #: Why the face was not judged (too small, cut by the border), else None.
    issue: str | None = None

    @property
    def label(self) -> str:
        """What to write on the face: the name, "Unknown", or why it was not judged."""
        if self.result is None:
            return self.issue or "not judged"
        if self.result.no_face:
            return "no face found"
        return self.result.best if self.result.best is not None else "Unknown"

    def to_dict(self) -> dict:
        out = {"box": None if self.box is None else list(self.box)}
        if self.result is not None:
            out.update(self.result.to_dict())
        else:
            out.update({"best": None, "distance": None, "candidates": []})
        out["issue"] = self.issue
        return out


@dataclass
class FacesIdentification:
    """Every face of a probe photo, largest first (:meth:`Gallery.identify_faces`)."""

    faces: list[FaceIdentification]
    threshold: float
    #: Faces the detector found (more than ``len(faces)`` when the cap on faces per image applied).
    found: int = 0
    #: What face processing reported for the photo (:class:`~siamgui.core.face.multi.FacesInfo`
    #: with faces, the main-face rule's report without), for notes.
    face: Any = None
    unembedded: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def primary(self) -> Identification | None:
        """The first (largest) judged face's ranking."""
        return next((f.result for f in self.faces if f.result is not None), None)

    def apply_threshold(self, threshold: float) -> None:
        """A new open-set threshold: each verdict changes, the rankings do not."""
        self.threshold = float(threshold)
        for f in self.faces:
            r = f.result
            if r is not None:
                r.threshold = self.threshold
                r.best = r.candidates[0].name if r.distance < self.threshold and not r.no_face else None

    def to_dict(self) -> dict:
        return {"faces": [f.to_dict() for f in self.faces], "faces_found": self.found, "threshold": self.threshold}


def _refuse_poor_face(pil, info, thresholds, label: str) -> None:
    from siamgui.core.face.quality import assess

    q = assess(np.asarray(pil), info, thresholds)
    if q is not None and not q.good:
        raise ImageError(f"{label}: {q.message()} Enrol a better photo, or allow poor faces.")


class Gallery(GalleryStore):
    """An open gallery file. Use as a context manager or call :meth:`close`.

    ``create=False`` refuses a file that does not exist yet (GalleryError)
    instead of creating an empty gallery (for commands that only read).
    """

    def enroll(self, verifier, name: str, images: Sequence, *, notes: str | None = None,
               face_policy: str = "largest", bgr: bool = False, skip_bad: bool = False,
               progress: Progress | None = None, cancel: Cancel | None = None,
               min_quality=None) -> EnrolResult:
        """Add ``images`` (paths, bytes, arrays, PIL images) as examples of ``name``.

        The identity is created if needed. Every image is read, stored and embedded
        first; then everything is written in one transaction (all or nothing).
        A bad image raises :class:`ImageError` unless ``skip_bad`` (then it is listed
        in ``skipped``); with ``min_quality`` (a
        :class:`~siamgui.core.face.quality.QualityThresholds`) so does a face judged poor.
        Raises GalleryError when no image is usable.
        """
        name = check_name(name)
        result = EnrolResult(name, 0)
        stored: list[_Stored] = []
        prepared: list[np.ndarray] = []
        seen: set[str] = set()
        existing = set()
        with self.snapshot():
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
                if min_quality is not None:
                    _refuse_poor_face(pil, info, min_quality, label)
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
                      progress: Progress | None = None, cancel: Cancel | None = None,
                      min_quality=None) -> ImportResult:
        """Enrol every sub-folder of ``root`` as an identity (its images as examples).

        Each identity is written in its own transaction; unreadable images (and, with
        ``min_quality``, poor faces) are skipped and listed. Cancelling keeps the
        identities already written.
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
                r = self.enroll(verifier, ds.classes[c], paths, face_policy=face_policy, skip_bad=True,
                                min_quality=min_quality)
                result.identities += 1
                result.added += r.added
                result.skipped.extend(r.skipped)
            except GalleryError as exc:
                result.skipped.append((ds.classes[c], str(exc)))
            done += len(paths)
            if progress is not None:
                progress(done, total)
        return result

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

    def search_index(self, verifier, rank: str) -> GalleryIndex:
        """The model's embeddings to rank against; GalleryError when there are none."""
        if rank not in RANKINGS:
            raise GalleryError(f"Unknown ranking {rank!r}; choose from {', '.join(RANKINGS)}.")
        index = self.index(model_fingerprint(verifier), verifier.distance.name)
        if not len(index):
            if self.example_count():
                raise GalleryError("The gallery's examples are not embedded for this model yet; "
                                   "wait for re-embedding to finish.")
            raise GalleryError("The gallery is empty; enrol some identities first.")
        return index

    def identify(self, verifier, image, *, top: int = 5, rank: str = "min", k: int = 3,
                 threshold: float | None = None, face_policy: str = "largest", bgr: bool = False) -> Identification:
        """Rank the enrolled identities for a probe image (see :class:`GalleryIndex`). A face
        model that finds no face (except with ``face_policy="whole"``) claims no identity
        (:attr:`Identification.no_face`)."""
        index = self.search_index(verifier, rank)
        arr, info = verifier.prepare(image, face_policy=face_policy, bgr=bgr)
        q = verifier.embed_prepared([arr])[0].numpy()
        t = verifier.threshold if threshold is None else float(threshold)
        result = index.identify(q, t, top, rank, k)
        result.face = info
        if verifier.face_mode and face_policy != "whole" and (info is None or info.mode != "face"):
            result.no_face, result.best = True, None  # no identity claimed without a face (as compare)
        result.unembedded = self.unembedded_count(model_fingerprint(verifier))
        return result

    def identify_faces(self, verifier, image, *, top: int = 5, rank: str = "min", k: int = 3,
                       threshold: float | None = None, bgr: bool = False) -> FacesIdentification:
        """Rank the enrolled identities for every face of a probe photo, largest first.

        All faces are embedded in one batch (:meth:`Verifier.analyse_faces`, at most
        :data:`~siamgui.core.face.multi.MAX_FACES`). A face too small or too poor to judge
        gets no ranking, only its ``issue``. No face detected (or not a face model): one
        result for the whole image, the same answer as :meth:`identify`.
        """
        index = self.search_index(verifier, rank)
        a = verifier.analyse_faces(image, bgr=bgr)
        t = verifier.threshold if threshold is None else float(threshold)
        emb = a.embeddings.numpy()
        ranked = {row: index.identify(emb[n], t, top, rank, k) for n, row in enumerate(a.rows)}
        if not a.faces:
            faces = [FaceIdentification(None, ranked[None])]
            ranked[None].face = a.info
            if verifier.face_mode:  # no identity claimed without a face (as compare)
                ranked[None].no_face, ranked[None].best = True, None
        else:
            faces = [FaceIdentification(f.box, ranked.get(n) if f.judged else None, f.issue)
                     for n, f in enumerate(a.faces)]
        info = a.info
        found = info.found if isinstance(info, FacesInfo) else len(a.faces)
        result = FacesIdentification(faces, t, found, info, self.unembedded_count(model_fingerprint(verifier)))
        if isinstance(info, FacesInfo):
            if info.unjudged or info.found > info.count:
                result.notes.append(info.message())
        elif verifier.face_mode and info is not None and (info.count != 1 or info.mode != "face"):
            result.notes.append(info.message())
        return result

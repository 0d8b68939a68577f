"""What a gallery does with a model: enrol images, import a folder, re-embed, identify.

:class:`Gallery` is the store (:class:`~siamgui.core.gallery.store.GalleryStore`)
plus the operations that need a :class:`~siamgui.core.verifier.Verifier`; it
never imports torch itself.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from siamgui.core.errors import ImageError
from siamgui.core.gallery.index import RANKINGS, Identification
from siamgui.core.gallery.store import (Cancel, EnrolResult, GalleryError, GalleryStore, ImportResult, Progress,
                                        SyncResult, _store_image, _Stored, check_name, model_fingerprint)
from siamgui.core.images import describe, load_image


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

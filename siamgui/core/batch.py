"""Batch verification and identification: many images in, one results CSV out.

:func:`plan_pairs` / :func:`plan_identify` check the input and the results file (no model
needed, so bad input is refused before anything loads); :func:`run_pairs` /
:func:`run_identify` then work through the input in chunks. For pairs, each distinct image
path is read, prepared and embedded once per run (embeddings kept by path, small vectors
only); an image list is deduplicated per chunk only. Each chunk's new images go through the
network in one batch on the model's device. Rows keep the input order; an
unreadable image gives a row with the reason in ``error``, never an exception.

The results file is appended to and flushed after every chunk, not written to a temporary
file and renamed: a run stopped by Ctrl-C or a kill keeps every finished row, and
``existing="resume"`` skips the rows already there (they must be the input's first rows,
in order) without recomputing them.
"""

from __future__ import annotations

import csv
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from siamgui.core.errors import ImageError, SiamguiError
from siamgui.core.images import is_image_name, load_image

#: The columns of ``compare --pairs`` results and of ``gallery identify --out`` results.
#: The ``error`` cell of a row without a verdict because a face model found no face.
NO_FACE = "no face found (no verdict; --face whole compares the whole images)"
PAIR_COLUMNS = ("a", "b", "distance", "same", "faces", "quality", "error")
IDENTIFY_COLUMNS = ("image", "best", "distance", "known", "candidates", "faces", "error")
#: What to do with a results file that exists: refuse it, carry on after its rows, or replace it.
EXISTING = ("refuse", "resume", "overwrite")
#: Input rows between two flushes of the results file (what a Ctrl-C can lose at most).
CHUNK = 128

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


class BatchError(SiamguiError):
    """A pairs file, an image list or a results file that cannot be used."""


@dataclass
class Batch:
    """One batch run: its input, its results file and how far it got (filled in as it runs)."""

    out: Path
    columns: tuple[str, ...]
    #: Input rows (pairs or images) in all.
    total: int
    #: Rows that were already in the results file (``resume``).
    resumed: int = 0
    #: Rows this run wrote, and how many of them hold an error.
    written: int = 0
    errors: int = 0
    #: Images this run read (each distinct path once; the readable ones were embedded).
    images: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    #: How the results file is opened: "x" (new), "a" (resume), "w" (overwrite).
    mode: str = "x"
    _items: Callable[[], Iterator[tuple[str, ...]]] = field(default=None, repr=False)
    _base: Path = field(default=Path("."), repr=False)

    @property
    def done(self) -> int:
        return self.resumed + self.written

    def items(self) -> Iterator[tuple[str, ...]]:
        """The input rows as written (a pair's two paths, or one image path)."""
        return self._items()

    def rows_in_file(self) -> int:
        """Complete result rows in the file now (after an interruption: what a resume keeps)."""
        try:
            return sum(1 for _ in _result_rows(self.out)) if self.out.is_file() else 0
        except BatchError:
            return 0

    def to_dict(self) -> dict:
        return {"out": str(self.out), "total": self.total, "resumed": self.resumed, "written": self.written,
                "errors": self.errors, "images_read": self.images, "seconds": round(self.seconds, 2)}


# -- input ---------------------------------------------------------------------------------
def _pair_rows(path: Path) -> Iterator[tuple[int, tuple[str, str]]]:
    """(line, (a, b)) per pair of a CSV with a header naming ``a`` and ``b``, or plain two columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: Excel writes a BOM
            reader = csv.reader(fh)
            cols = None
            for row in reader:
                cells = [c.strip() for c in row]
                if not any(cells):
                    continue
                if cols is None:
                    names = [c.lower() for c in cells]
                    if "a" in names and "b" in names:
                        cols = (names.index("a"), names.index("b"))
                        continue
                    cols = (0, 1)
                if len(cells) <= max(cols):
                    raise BatchError(f"{path.name} line {reader.line_num}: expected two image paths "
                                     f"(a,b), got {len(cells)} column(s).")
                yield reader.line_num, (cells[cols[0]], cells[cols[1]])
    except UnicodeDecodeError:
        raise BatchError(f"{path.name} is not a UTF-8 text file.") from None
    except csv.Error as exc:
        raise BatchError(f"{path.name} is not a readable CSV file: {exc}.") from None
    except OSError as exc:
        raise BatchError(f"Cannot read {path}: {exc.strerror or exc}") from None


def _image_paths(sources: list[str]) -> Iterator[tuple[str]]:
    """Each source file as given, and each image file under a source folder (sorted, recursive),
    as the folder's path joined with the file's path inside it."""
    for src in sources:
        if os.path.isdir(src):
            for root, dirs, files in os.walk(src):
                dirs.sort()
                for name in sorted(files):
                    if is_image_name(name):
                        yield (os.path.join(root, name),)
        else:
            yield (src,)  # a missing or unreadable file gets a row with the reason


def _resolve(raw: str, base: Path) -> str:
    return raw if not raw or os.path.isabs(raw) else str(base / raw)


# -- the results file ----------------------------------------------------------------------------
def _result_rows(out: Path, columns: tuple[str, ...] | None = None) -> Iterator[list[str]]:
    """The complete rows of a results file (a last line cut by a kill is left out)."""
    cut = _complete_length(out) != out.stat().st_size
    try:
        with open(out, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if columns is not None and header is not None and tuple(header) != columns:
                raise BatchError(f"{out} is not a results file of this command (its columns are "
                                 f"{','.join(header)}); choose another --out, or --overwrite.")
            prev = None
            for row in reader:
                if prev is not None:
                    yield prev
                prev = row
            if prev is not None and not cut:
                yield prev
    except UnicodeDecodeError:
        raise BatchError(f"{out} is not a results file (not UTF-8 text); choose another --out.") from None
    except csv.Error as exc:
        raise BatchError(f"{out} is not a readable CSV file: {exc}.") from None


def _complete_length(out: Path) -> int:
    """The byte length of ``out`` up to its last complete line."""
    with open(out, "rb") as fh:
        data_end = fh.seek(0, os.SEEK_END)
        pos = data_end
        while pos > 0:
            step = min(65536, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            k = chunk.rfind(b"\n")
            if k != -1:
                return pos - step + k + 1
            pos -= step
        return 0


def _check_out(out: Path, inputs: list[Path], existing: str) -> str:
    """The mode to open ``out`` with; BatchError for a results file that must not be written."""
    if existing not in EXISTING:
        raise ValueError(f"existing must be one of {EXISTING}")
    if out.is_dir():
        raise BatchError(f"{out} is a folder; give a file name such as results.csv.")
    if not out.resolve().parent.is_dir():
        raise BatchError(f"The folder {out.parent} does not exist.")
    if not out.exists():
        return "x"
    if any(p.exists() and os.path.samefile(out, p) for p in inputs):
        raise BatchError(f"{out} is an input of this run; write the results to another file.")
    if existing == "refuse":
        raise BatchError(f"{out} already exists; add --resume to continue it, or --overwrite to replace it.")
    return "a" if existing == "resume" else "w"


def _plan(out, columns, items, total, inputs, existing, what) -> Batch:
    out = Path(out)
    batch = Batch(out, columns, total, mode=_check_out(out, inputs, existing), _items=items)
    if batch.mode == "a":
        expected = items()
        key = 2 if columns == PAIR_COLUMNS else 1  # a row's input: its pair, or its image
        n = 0
        for n, row in enumerate(_result_rows(out, columns), start=1):
            want, got = next(expected, None), tuple(row[:key])
            if got != want:
                raise BatchError(f"{out} row {n} ({', '.join(got)}) is not {what} {n} of the input; "
                                 "it holds the results of another run. Use another --out, or --overwrite.")
        batch.resumed = n
    return batch


def plan_pairs(pairs_csv: str | os.PathLike, out: str | os.PathLike, existing: str = "refuse") -> Batch:
    """Check a pairs file (columns ``a,b``, header optional; relative paths are relative to
    its folder) and the results file; BatchError on bad input. Reads the pairs file once."""
    path = Path(pairs_csv)
    if not path.is_file():
        raise BatchError(f"No such pairs file: {path}" if not path.is_dir() else f"{path} is a folder, not a pairs file.")
    total = sum(1 for _ in _pair_rows(path))
    if not total:
        raise BatchError(f"{path.name} holds no pairs.")

    def items():
        return (pair for _, pair in _pair_rows(path))

    batch = _plan(out, PAIR_COLUMNS, items, total, [path], existing, "pair")
    batch._base = path.parent
    return batch


def plan_identify(sources: list[str], out: str | os.PathLike, existing: str = "refuse") -> Batch:
    """Check a list of image files and folders (searched recursively) and the results file."""
    total = sum(1 for _ in _image_paths(sources))
    if not total:
        raise BatchError(f"No image files in {', '.join(sources)}.")
    return _plan(out, IDENTIFY_COLUMNS, lambda: _image_paths(sources), total, [Path(s) for s in sources],
                 existing, "image")


# -- embedding each image once -------------------------------------------------------------------------
@dataclass
class _Image:
    embedding: np.ndarray | None = None
    faces: str = ""
    quality: str = ""
    error: str = ""
    input: np.ndarray | None = None
    #: A face model found no face (and the whole image was not asked for): no verdict, as in ``compare``.
    no_face: bool = False


def _faces_text(info) -> str:
    """How many faces were found, and what was used when it was not a detected face."""
    if info is None:
        return ""
    return str(info.count) if info.mode == "face" else f"{info.count} ({info.mode})"


def _prepare(verifier, path: str, face_policy: str) -> _Image:
    from siamgui.core.face.quality import assess

    try:
        pil = load_image(path)
        arr, info = verifier.prepare(pil, face_policy=face_policy)
    except ImageError as exc:
        return _Image(error=str(exc))
    q = assess(np.asarray(pil), info) if verifier.face_mode else None
    no_face = verifier.face_mode and face_policy != "whole" and (info is None or info.mode != "face")
    return _Image(faces=_faces_text(info) if verifier.face_mode else "", quality=q.verdict if q else "", input=arr,
                  no_face=no_face)


def _embed_new(verifier, paths, cache: dict, face_policy: str, pool) -> int:
    """Read, prepare and embed the paths not in ``cache`` (one batch); how many were new."""
    new = [p for p in dict.fromkeys(paths) if p not in cache]
    prepared = list(pool.map(lambda p: _prepare(verifier, p, face_policy), new))
    good = [im for im in prepared if not im.error]
    if good:
        emb = verifier.embed_prepared([im.input for im in good]).numpy()
        for im, v in zip(good, emb):
            im.embedding, im.input = v, None
    cache.update(zip(new, prepared))
    return len(new)


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _run(batch: Batch, work, progress: Progress | None, cancel: Cancel | None, chunk: int) -> Batch:
    """Feed the input after the resumed rows to ``work(rows) -> (csv rows, errors)`` chunk by chunk,
    appending each chunk's rows to the results file in one write, flushed."""
    t0 = time.perf_counter()
    items = batch.items()
    for _ in range(batch.resumed):
        next(items)
    if batch.mode == "a":
        keep = _complete_length(batch.out)
        if keep != batch.out.stat().st_size:  # a row cut by a kill: recomputed below
            os.truncate(batch.out, keep)
    with ThreadPoolExecutor(2) as pool, open(batch.out, batch.mode, newline="", encoding="utf-8") as fh:
        if batch.mode != "a" or fh.tell() == 0:
            csv.writer(fh).writerow(batch.columns)
            fh.flush()
        if progress is not None:
            progress(batch.done, batch.total)
        for rows in _chunks(items, chunk):
            if cancel is not None and cancel():
                batch.cancelled = True
                break
            lines, errors = work(rows, pool)
            buf = io.StringIO()
            csv.writer(buf).writerows(lines)
            fh.write(buf.getvalue())  # whole rows; one cut by a kill is dropped on resume
            fh.flush()
            batch.written += len(lines)
            batch.errors += errors
            batch.seconds = time.perf_counter() - t0
            if progress is not None:
                progress(batch.done, batch.total)
    batch.seconds = time.perf_counter() - t0
    return batch


def run_pairs(verifier, batch: Batch, *, face_policy: str = "largest", threshold: float | None = None,
              progress: Progress | None = None, cancel: Cancel | None = None, chunk: int | None = None) -> Batch:
    """Compare every pair of ``batch`` (:func:`plan_pairs`) and write one row per pair."""
    if face_policy not in ("largest", "whole"):
        raise BatchError(f"Batch comparison takes the main face or the whole image, not {face_policy!r}.")
    t = verifier.threshold if threshold is None else float(threshold)
    cache: dict[str, _Image] = {}

    def work(rows, pool):
        paths = [(_resolve(a, batch._base), _resolve(b, batch._base)) for a, b in rows]
        batch.images += _embed_new(verifier, [p for pair in paths for p in pair], cache, face_policy, pool)
        ok = [i for i, (a, b) in enumerate(paths) if not cache[a].error and not cache[b].error]
        d = np.empty(0)
        if ok:
            ea = torch.from_numpy(np.stack([cache[paths[i][0]].embedding for i in ok]))
            eb = torch.from_numpy(np.stack([cache[paths[i][1]].embedding for i in ok]))
            d = verifier.distances(ea, eb)
        dist = dict(zip(ok, d))
        lines, errors = [], 0
        for i, ((ra, rb), (a, b)) in enumerate(zip(rows, paths)):
            ia, ib = cache[a], cache[b]
            faces = f"{ia.faces};{ib.faces}" if ia.faces or ib.faces else ""
            quality = f"{ia.quality};{ib.quality}" if ia.quality or ib.quality else ""
            if i in dist and (ia.no_face or ib.no_face):  # the distance for information, no verdict
                errors += 1
                which = " and ".join(k for k, im in (("a", ia), ("b", ib)) if im.no_face)
                lines.append([ra, rb, f"{dist[i]:.6f}", "", faces, quality, f"{NO_FACE} in {which}"])
            elif i in dist:
                lines.append([ra, rb, f"{dist[i]:.6f}", int(dist[i] < t), faces, quality, ""])
            else:
                errors += 1
                why = "; ".join(f"{k}: {im.error}" for k, im in (("a", ia), ("b", ib)) if im.error)
                lines.append([ra, rb, "", "", faces, quality, why])
        return lines, errors

    return _run(batch, work, progress, cancel, chunk or CHUNK)


def run_identify(verifier, gallery, batch: Batch, *, top: int = 5, rank: str = "min", k: int = 3,
                 threshold: float | None = None, face_policy: str = "largest",
                 progress: Progress | None = None, cancel: Cancel | None = None, chunk: int | None = None) -> Batch:
    """Rank ``gallery``'s identities for every image of ``batch`` (:func:`plan_identify`)."""
    index = gallery.search_index(verifier, rank)
    t = verifier.threshold if threshold is None else float(threshold)

    def work(rows, pool):
        cache: dict[str, _Image] = {}  # per chunk: an image list rarely repeats a path
        paths = [p for (p,) in rows]
        batch.images += _embed_new(verifier, paths, cache, face_policy, pool)
        lines, errors = [], 0
        for p in paths:
            im = cache[p]
            if im.error:
                errors += 1
                lines.append([p, "", "", "", "", im.faces, im.error])
                continue
            res = index.identify(im.embedding, t, top, rank, k)
            cands = ";".join(f"{c.name}:{c.distance:.6f}" for c in res.candidates)
            if im.no_face:  # the ranking for information, no identity claimed
                errors += 1
                lines.append([p, "", f"{res.distance:.6f}", "", cands, im.faces, NO_FACE])
                continue
            lines.append([p, res.best or "", f"{res.distance:.6f}", int(res.known), cands, im.faces, ""])
        return lines, errors

    return _run(batch, work, progress, cancel, chunk or CHUNK)

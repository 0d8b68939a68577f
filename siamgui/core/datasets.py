"""Folder datasets, class-disjoint splits, and pairs files.

A dataset folder holds one sub-folder per class (identity); images may sit in
nested folders below a class folder. Hidden files, ``Thumbs.db`` and non-image
names are ignored; symlinked folders are not followed (no loops). Files that
cannot be read are skipped and counted, never fatal.

Skilled forgeries, as signature datasets ship them: a sibling folder
``NAME_forg`` or a sub-folder ``NAME/forgeries/`` holds forgeries of class
``NAME``. They are never a class and never positives: they are kept apart in
:attr:`FolderDataset.forgeries` and used only as negatives of ``NAME``.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siamgui.core.errors import DatasetError
from siamgui.core.images import is_image_name


@dataclass
class DatasetSummary:
    root: str
    classes: int
    images: int
    per_class_min: int
    per_class_median: float
    per_class_max: int
    #: Classes with 2+ images (usable for positive pairs).
    classes_with_pairs: int
    #: Classes with one image only (usable as negatives only).
    single_image_classes: list[str]
    skipped: list[tuple[str, str]]
    counts: dict[str, int]
    #: Problems that make training impossible (empty when training can start).
    problems: list[str]
    #: Classes that have skilled forgeries, and the number of forgery images.
    classes_with_forgeries: int = 0
    forgery_images: int = 0
    #: Things the user should know that do not stop training (e.g. forgeries of a missing class).
    notes: list[str] = field(default_factory=list)

    def headline(self) -> str:
        """One line: "12 classes, 3 with forgeries (40 images), 150 images"."""
        forg = (f", {self.classes_with_forgeries} with forgeries ({self.forgery_images} images)"
                if self.forgery_images else "")
        return f"{self.classes} classes{forg}, {self.images} images"

    @property
    def trainable(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "root": self.root, "classes": self.classes, "images": self.images,
            "per_class_min": self.per_class_min, "per_class_median": self.per_class_median,
            "per_class_max": self.per_class_max, "classes_with_pairs": self.classes_with_pairs,
            "single_image_classes": len(self.single_image_classes), "skipped": len(self.skipped),
            "classes_with_forgeries": self.classes_with_forgeries, "forgery_images": self.forgery_images,
        }


@dataclass
class FolderDataset:
    root: Path
    classes: list[str]
    #: (path, class index)
    samples: list[tuple[str, int]]
    #: (path, reason) for files that could not be used
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: (path, index of the class it forges): skilled forgeries, negatives of that class only.
    forgeries: list[tuple[str, int]] = field(default_factory=list)
    #: Notes for the summary (e.g. a ``NAME_forg`` folder without ``NAME``, ignored).
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.fromiter((c for _, c in self.samples), dtype=np.int64, count=len(self.samples))

    @property
    def paths(self) -> list[str]:
        return [p for p, _ in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    def subset(self, class_indices) -> "FolderDataset":
        """The dataset restricted to some classes (re-indexed 0..k-1)."""
        keep = sorted(int(c) for c in class_indices)
        remap = {c: i for i, c in enumerate(keep)}
        return FolderDataset(self.root, [self.classes[c] for c in keep],
                             [(p, remap[c]) for p, c in self.samples if c in remap], [],
                             [(p, remap[c]) for p, c in self.forgeries if c in remap])

    def drop(self, bad_paths: set[str], reason: str = "unreadable") -> "FolderDataset":
        """The dataset without some files (e.g. ones that failed to decode), counted as skipped."""
        return FolderDataset(self.root, self.classes, [(p, c) for p, c in self.samples if p not in bad_paths],
                             self.skipped + [(p, reason) for p in sorted(bad_paths)],
                             [(p, c) for p, c in self.forgeries if p not in bad_paths], list(self.notes))

    @property
    def forgery_paths(self) -> list[str]:
        return [p for p, _ in self.forgeries]

    def labels_with_forgeries(self) -> tuple[np.ndarray, np.ndarray]:
        """Labels of ``paths + forgery_paths`` and, for each, the class it forges (-1: genuine).

        Each forgery gets a label of its own (past the class indices): it has no positive,
        and is a negative of every class, its victim's above all.
        """
        n = len(self.samples)
        labels = np.r_[self.labels, len(self.classes) + np.arange(len(self.forgeries), dtype=np.int64)]
        forgery_of = np.r_[np.full(n, -1, np.int64), np.fromiter((c for _, c in self.forgeries), np.int64,
                                                                   count=len(self.forgeries))]
        return labels.astype(np.int64), forgery_of

    def summary(self) -> DatasetSummary:
        counts = self.class_counts()
        nonzero = [int(n) for n in counts]
        problems = []
        with_pairs = int((counts >= 2).sum())
        if not self.samples:
            if self.skipped:
                path, reason = self.skipped[0]
                problems.append(f"The folder holds no readable images: {len(self.skipped)} file(s) could not be "
                                f"read (e.g. {os.path.basename(path)}: {reason}).")
            else:
                problems.append("The folder holds no readable images (expected one sub-folder of images per class).")
        elif len(self.classes) < 2:
            problems.append("Training needs at least two classes (sub-folders); found "
                            f"{len(self.classes)}.")
        if self.samples and with_pairs < 2:
            problems.append(f"Training needs at least two classes with two or more images; found {with_pairs}.")
        return DatasetSummary(
            root=str(self.root), classes=len(self.classes), images=len(self.samples),
            per_class_min=min(nonzero) if nonzero else 0,
            per_class_median=float(statistics.median(nonzero)) if nonzero else 0.0,
            per_class_max=max(nonzero) if nonzero else 0,
            classes_with_pairs=with_pairs,
            single_image_classes=[self.classes[i] for i, n in enumerate(counts) if n == 1],
            skipped=list(self.skipped), counts={c: int(n) for c, n in zip(self.classes, counts)},
            problems=problems, classes_with_forgeries=len({c for _, c in self.forgeries}),
            forgery_images=len(self.forgeries), notes=list(self.notes),
        )


def _quick_check(path: str) -> str | None:
    """Reason a file is unusable, from its size and header only; None when it looks fine."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        return exc.strerror or "cannot be read"
    if size == 0:
        return "empty file"
    from PIL import Image

    from siamgui.core.images import MAX_PIXELS, open_formats

    try:
        with Image.open(path, formats=open_formats()) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                return f"too large ({w}x{h})"
    except Image.DecompressionBombError:
        return "too large (more pixels than allowed)"
    except Exception:  # noqa: BLE001 - any decoder failure means "not an image"
        return "not a readable image"
    return None


def scan_folder(root: str | os.PathLike, *, check: bool = True, cancel=None) -> FolderDataset:
    """Scan ``root`` (one sub-folder per class). ``check`` opens each header."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"No such folder: {root}")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder.")
    try:
        entries = sorted((e for e in os.scandir(root) if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"Cannot read {root}: {exc.strerror or exc}") from None
    class_dirs = [e for e in entries if e.is_dir(follow_symlinks=False)]
    names = {e.name for e in class_dirs}
    classes: list[str] = []
    samples: list[tuple[str, int]] = []
    skipped: list[tuple[str, str]] = []
    forged: dict[str, list[str]] = {}
    notes: list[str] = []

    def usable(files: list[str]) -> list[str]:
        good = []
        for path in files:
            if cancel is not None and cancel():
                raise DatasetError("Scan cancelled.")
            reason = _quick_check(path) if check else None
            if reason:
                skipped.append((path, reason))
            else:
                good.append(path)
        return good

    for entry in class_dirs:
        if entry.name.endswith(FORGERY_SUFFIX) and len(entry.name) > len(FORGERY_SUFFIX):
            owner = entry.name[:-len(FORGERY_SUFFIX)]
            if owner in names:
                forged.setdefault(owner, []).extend(usable(_image_files(entry.path)))
            else:
                notes.append(f"{entry.name}: forgeries of {owner}, but there is no folder {owner}; ignored.")
            continue
        good = usable(_image_files(entry.path, skip_forgeries=True))
        forg_dir = os.path.join(entry.path, FORGERY_FOLDER)
        if os.path.isdir(forg_dir) and not os.path.islink(forg_dir):
            forged.setdefault(entry.name, []).extend(usable(_image_files(forg_dir)))
        if good:
            idx = len(classes)
            classes.append(entry.name)
            samples.extend((p, idx) for p in good)
    index = {name: i for i, name in enumerate(classes)}
    forgeries = []
    for owner, paths in sorted(forged.items()):
        if owner in index:
            forgeries.extend((p, index[owner]) for p in paths)
        elif paths:
            notes.append(f"{owner}: forgeries but no readable genuine images; ignored.")
    return FolderDataset(root, classes, samples, skipped, forgeries, notes)


#: ``NAME_forg`` beside ``NAME``, or ``NAME/forgeries/``: skilled forgeries of ``NAME`` (as signature sets ship them).
FORGERY_SUFFIX = "_forg"
FORGERY_FOLDER = "forgeries"


def _image_files(folder: str, skip_forgeries: bool = False) -> list[str]:
    """Image files under ``folder`` (sorted, nested folders too, no hidden ones, no symlinked folders)."""
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not (skip_forgeries and dirpath == folder and d == FORGERY_FOLDER))
        files.extend(os.path.join(dirpath, name) for name in sorted(filenames) if is_image_name(name))
    return files


def split_by_class(ds: FolderDataset, val_fraction: float, seed: int) -> tuple[FolderDataset, FolderDataset | None]:
    """Split classes (never images of one class) into train and validation.

    Validation takes about ``val_fraction`` of the classes that have 2+ images
    (at least two, and up to four when a third of the classes allows), and
    leaves at least two such classes for training.
    Returns ``(train, None)`` when ``val_fraction`` is 0 or the split is impossible.
    """
    counts = ds.class_counts()
    multi = np.flatnonzero(counts >= 2)
    if val_fraction <= 0 or len(multi) < 4:
        return ds, None
    rng = np.random.default_rng(seed)
    n_val = int(round(val_fraction * len(multi)))
    # A validation set of two classes says little (one pair of classes decides
    # every "different" pair): take up to four when there are enough classes.
    n_val = min(max(min(4, len(multi) // 3), 2, n_val), len(multi) - 2)
    val_classes = set(rng.permutation(multi)[:n_val].tolist())
    train_classes = [c for c in range(len(ds.classes)) if c not in val_classes]
    return ds.subset(train_classes), ds.subset(sorted(val_classes))


def read_pairs_csv(path: str | os.PathLike) -> list[tuple[str, str, bool]]:
    """Read ``a,b,same`` rows; relative paths resolve against the CSV's folder."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"No such pairs file: {path}")
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: Excel writes a BOM
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"a", "b", "same"} <= {f.strip() for f in reader.fieldnames}:
                raise DatasetError(f"{path.name} must have a header 'a,b,same'.")
            for line, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                if row["same"] not in ("0", "1"):
                    raise DatasetError(f"{path.name} line {line}: 'same' must be 0 or 1, got {row['same']!r}.")
                a, b = (str(p if Path(p).is_absolute() else path.parent / p) for p in (row["a"], row["b"]))
                rows.append((a, b, row["same"] == "1"))
    except UnicodeDecodeError:
        raise DatasetError(f"{path.name} is not a UTF-8 text file.") from None
    if not rows:
        raise DatasetError(f"{path.name} holds no pairs.")
    return rows


def read_lfw_pairs(pairs_file: str | os.PathLike, root: str | os.PathLike
                   ) -> tuple[list[tuple[str, str, bool]], np.ndarray | None]:
    """Read an LFW protocol file (View 1 ``pairsDev*.txt`` or View 2 ``pairs.txt``).

    Returns the pairs and, for View 2, the fold index of each pair.
    """
    pairs_file, root = Path(pairs_file), Path(root)
    if not pairs_file.is_file():
        raise DatasetError(f"No such pairs file: {pairs_file}")
    if not root.is_dir():
        raise DatasetError(f"No such image folder: {root}")
    lines = pairs_file.read_text(encoding="utf-8", errors="replace").split("\n")
    head = lines[0].split()
    try:
        if len(head) == 1:
            n_folds, per_fold = 1, int(head[0])
        elif len(head) == 2:
            n_folds, per_fold = int(head[0]), int(head[1])
        else:
            raise ValueError
        if n_folds < 1 or per_fold < 1:  # 0 pairs made evaluate fail with an internal error
            raise ValueError
    except ValueError:
        raise DatasetError(f"{pairs_file.name} does not look like an LFW pairs file.") from None

    def img(name: str, i: str) -> str:
        return str(root / name / f"{name}_{int(i):04d}.jpg")

    pairs, folds = [], []
    pos = 1
    try:
        for fold in range(n_folds):
            for kind in ("same", "diff"):
                for _ in range(per_fold):
                    parts = lines[pos].split()
                    pos += 1
                    if kind == "same":
                        pairs.append((img(parts[0], parts[1]), img(parts[0], parts[2]), True))
                    else:
                        pairs.append((img(parts[0], parts[1]), img(parts[2], parts[3]), False))
                    folds.append(fold)
    except (IndexError, ValueError):
        raise DatasetError(f"{pairs_file.name} is malformed near line {pos + 1}.") from None
    return pairs, (np.array(folds) if n_folds > 1 else None)



"""The data phase of training: scan the folder, split by class, prepare every image once.

Images are decoded and prepared before the first epoch (in a background
thread, reporting :class:`Loading`) and kept in memory as uint8.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from siamgui.core.datasets import DatasetSummary, FolderDataset, scan_folder, split_by_class
from siamgui.core.errors import DatasetError, ImageError
from siamgui.core.face.chips import ChipCache, cache_enabled
from siamgui.core.preprocess import Preprocessor
from siamgui.core.training.config import AUTO_HOLDOUT_MIN_CLASSES, AUTO_VAL_SPLIT, TrainConfig
from siamgui.core.training.events import Loading, Log, TrainControl


@dataclass
class TrainingData:
    """The prepared images of the training and validation classes."""

    summary: DatasetSummary
    train_ds: FolderDataset
    #: None when there are too few classes to hold some out (validation then uses the training classes).
    val_ds: FolderDataset | None
    train_images: torch.Tensor
    val_images: torch.Tensor
    #: {path: reason} for images that failed to decode and were dropped.
    bad: dict[str, str]
    #: Seconds spent per part of the job, filled in by the later phases too.
    timing: dict[str, Any]
    #: Labels of ``train_images`` (genuine images, then skilled forgeries with a label each) and the
    #: class each forges (-1: genuine); see :meth:`FolderDataset.labels_with_forgeries`.
    train_labels: np.ndarray = None
    train_forgery_of: np.ndarray = None
    val_labels: np.ndarray = None
    val_forgery_of: np.ndarray = None

    def __post_init__(self):
        if self.train_labels is None:
            self.train_labels, self.train_forgery_of = self.train_ds.labels_with_forgeries()
        if self.val_labels is None:
            self.val_labels, self.val_forgery_of = (self.val_ds or self.train_ds).labels_with_forgeries()


def prepare_images(paths: list[str], preprocessor: Preprocessor, workers: int = 2, control: TrainControl | None = None,
                   progress=None, cache: ChipCache | None = None) -> tuple[torch.Tensor, dict[str, str]]:
    """Decode and prepare every image once: (N, C, S, S) uint8 tensor, and {path: error} for failures.

    With a :class:`ChipCache`, chips found on disk are read instead of prepared,
    and newly prepared ones are stored.
    """
    s = preprocessor.spec
    out = torch.zeros((len(paths), s.channels, s.image_size, s.image_size), dtype=torch.uint8)
    bad: dict[str, str] = {}
    todo = list(enumerate(paths))
    if cache is not None:
        todo = []
        for i, path in enumerate(paths):
            arr = cache.get(path)
            if arr is None:
                todo.append((i, path))
            else:
                out[i] = torch.from_numpy(arr).permute(2, 0, 1)
    n_cached = len(paths) - len(todo)
    if progress is not None and n_cached:
        progress(n_cached, len(paths))

    def work(i_path):
        i, path = i_path
        try:
            arr, _ = preprocessor.prepare(path)
            out[i] = torch.from_numpy(arr).permute(2, 0, 1)
            if cache is not None:
                cache.put(path, arr)
        except ImageError as exc:
            bad[path] = str(exc)
        return i

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for done, _ in enumerate(pool.map(work, todo), start=n_cached + 1):
            if control is not None and control.cancelled:
                pool.shutdown(cancel_futures=True)
                break
            if progress is not None:
                progress(done, len(paths))
    return out, {p: bad[p] for p in paths if p in bad}  # input order, not the threads' finishing order


def scan(cfg: TrainConfig, dataset: FolderDataset | None) -> Iterator[Log]:
    """The dataset to train on (scanned unless given); returns it. Refuses one training cannot use."""
    ds = dataset if dataset is not None else scan_folder(cfg.data_dir)
    problems = ds.summary().problems
    if problems:
        raise DatasetError(" ".join(problems))
    if ds.skipped:
        yield Log("warning", f"{len(ds.skipped)} file(s) could not be read and are skipped.")
    for note in ds.notes:
        yield Log("warning", note)
    return ds


def load(cfg: TrainConfig, ds: FolderDataset, preprocessor: Preprocessor, control: TrainControl
         ) -> Iterator[Log | Loading]:
    """Split by class and prepare every image; returns :class:`TrainingData`, or None when cancelled."""
    summary = ds.summary()
    val_split = cfg.val_split
    n_multi = int((ds.class_counts() >= 2).sum())
    if val_split is None:
        val_split = AUTO_VAL_SPLIT if n_multi >= AUTO_HOLDOUT_MIN_CLASSES else 0.0
    train_ds, val_ds = split_by_class(ds, val_split, cfg.seed)
    if val_ds is None and cfg.val_split is None:
        yield Log("info", f"{n_multi} classes with 2+ images (fewer than {AUTO_HOLDOUT_MIN_CLASSES}): every class is "
                          "trained on, and the threshold is calibrated on them, so the metrics will be optimistic "
                          "(--val-split holds some out).")
    elif val_ds is None and val_split > 0:
        yield Log("warning", "Too few classes to hold some out for validation: the threshold is calibrated on the "
                             "training classes and the metrics will be optimistic.")
    train_paths = train_ds.paths + train_ds.forgery_paths
    paths = train_paths + (val_ds.paths + val_ds.forgery_paths if val_ds is not None else [])
    use_cache = cfg.chip_cache if cfg.chip_cache is not None else preprocessor.spec.face is not None
    chip_cache = ChipCache(preprocessor.spec) if (use_cache and cache_enabled()) else None
    t_prepare = time.perf_counter()
    prepared = yield from _prepare_in_background(paths, preprocessor, cfg.workers, control, chip_cache)
    if prepared is None:
        return None
    images, bad = prepared
    yield Loading(len(paths), len(paths))
    timing = {"prepare_s": round(time.perf_counter() - t_prepare, 2), "data_s": 0.0, "compute_s": 0.0,
              "validate_s": 0.0, "pairs": 0}
    if chip_cache is not None:
        timing.update(cache_hits=chip_cache.hits, cache_misses=len(paths) - chip_cache.hits)
    yield Log("info", f"Prepared {len(paths)} images in {timing['prepare_s']:.1f} s"
                      + (f" ({chip_cache.hits} from the chip cache)." if chip_cache is not None else "."))
    if summary.forgery_images:
        yield Log("info", f"Skilled forgeries of {summary.classes_with_forgeries} class(es) "
                          f"({summary.forgery_images} images) are used as negatives of their class only.")
    if bad:
        yield Log("warning", f"{len(bad)} image(s) failed to decode and are skipped, e.g. "
                             f"{os.path.basename(next(iter(bad)))}: {next(iter(bad.values()))}")
        images, train_ds, val_ds = _drop_failures(bad, paths, images, train_ds, val_ds)
    n_train = len(train_ds) + len(train_ds.forgeries)
    return TrainingData(summary, train_ds, val_ds, images[:n_train],
                        images[n_train:] if val_ds is not None else images[:n_train], bad, timing)


def _prepare_in_background(paths, preprocessor, workers, control, chip_cache) -> Iterator[Loading]:
    """:func:`prepare_images` in a thread while this generator reports progress; None when cancelled."""
    progress_box: list[tuple[int, int]] = []
    holder: dict[str, Any] = {}

    def run_prepare():
        try:
            holder["result"] = prepare_images(paths, preprocessor, workers, control,
                                              lambda d, t: progress_box.append((d, t)), chip_cache)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the generator's thread
            holder["error"] = exc

    loader = threading.Thread(target=run_prepare, name="siamgui-prepare", daemon=True)
    loader.start()
    last = -1
    while loader.is_alive():
        loader.join(0.1)
        if progress_box and progress_box[-1][0] != last:
            last = progress_box[-1][0]
            yield Loading(last, len(paths))
    if "error" in holder:
        raise holder["error"]
    if control.cancelled:
        return None
    return holder["result"]


def _drop_failures(bad, paths, images, train_ds, val_ds):
    """The images and datasets without the images that failed; refuses what is then too small."""
    keep = [i for i, p in enumerate(paths) if p not in bad]
    images = images[keep]
    train_ds = train_ds.drop(set(bad))
    if val_ds is not None:
        val_ds = val_ds.drop(set(bad))
    for part in (train_ds,) + ((val_ds,) if val_ds is not None else ()):
        if part.summary().problems:
            raise DatasetError("Too many images failed to decode: " + " ".join(part.summary().problems))
    return images, train_ds, val_ds

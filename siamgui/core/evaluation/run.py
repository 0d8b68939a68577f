"""One evaluation of a model on labelled pairs: the engine behind ``siamgui evaluate``
and the Evaluate tab.

:func:`run_evaluation` embeds every distinct image once (in batches), scores the
pairs and returns an :class:`EvaluationResult` of plain data: the metrics, TAR at
FAR, ROC/DET points, histograms, a threshold table, the worst errors with the
crops the model saw (and their occlusion maps), and a calibration table. It reports
:class:`Progress` through a callback and stops at the next batch when ``cancel()``
returns True (raising :class:`EvaluationCancelled`), so a GUI worker thread and the
CLI call it the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from siamgui.core.errors import DatasetError, EvaluationCancelled, SiamguiError  # noqa: F401  (EvaluationCancelled: callers catch it from here)
from siamgui.core.evaluation import metrics as ev
from siamgui.core.evaluation.calibration import Calibration, calibration_table
from siamgui.core.evaluation.explain import Explanation, explain_pair


# -- pair sources ------------------------------------------------------------------------
@dataclass
class PairSet:
    """Labelled pairs ``(path_a, path_b, same)`` and where they came from."""

    pairs: list[tuple[str, str, bool]]
    #: LFW View 2 fold of each pair (10-fold accuracy), else None.
    folds: np.ndarray | None
    #: "folder", "csv" or "lfw".
    kind: str
    source: str
    note: str = ""

    @property
    def genuine(self) -> int:
        return sum(1 for _, _, s in self.pairs if s)

    @property
    def impostor(self) -> int:
        return len(self.pairs) - self.genuine

    def images(self) -> list[str]:
        """The distinct images, in order of first appearance."""
        return list(dict.fromkeys(p for a, b, _ in self.pairs for p in (a, b)))

    def label(self) -> str:
        """A short name for the data, e.g. "LFW pairs.txt" (used in calibration sentences)."""
        name = Path(self.source).name
        return {"lfw": f"LFW {name}", "csv": name, "folder": f"{name} folder"}.get(self.kind, name)

    def check(self) -> None:
        """Raise DatasetError unless the pairs hold both genuine and impostor pairs."""
        if not self.pairs:
            raise DatasetError(f"{self.label()} holds no pairs.")
        if self.genuine == 0 or self.impostor == 0:
            kind = "genuine (same)" if self.impostor == 0 else "impostor (different)"
            raise DatasetError(f"{self.label()} holds only {kind} pairs; an evaluation needs both kinds.")


def pairs_from_folder(root: str | os.PathLike, num_pairs: int = 2000, seed: int = 0,
                      cancel: Callable[[], bool] | None = None) -> PairSet:
    """Seeded balanced pairs drawn from a class folder (one sub-folder per class)."""
    from siamgui.core.datasets import scan_folder
    from siamgui.core.training.sampling import fixed_pairs

    ds = scan_folder(root, cancel=cancel)
    counts = ds.class_counts()
    if len(ds.classes) < 2 or (counts >= 2).sum() < 1:
        raise DatasetError("evaluation needs two classes and at least one class with two images")
    labels, forgery_of = ds.labels_with_forgeries()  # skilled forgeries: impostor pairs with their class only
    ia, ib, dis = fixed_pairs(labels, num_pairs, seed, forgery_of)
    paths = ds.paths + ds.forgery_paths
    pairs = [(paths[a], paths[b], d == 0) for a, b, d in zip(ia, ib, dis)]
    forg = f" and {len(ds.forgeries)} skilled forgeries" if ds.forgeries else ""
    return PairSet(pairs, None, "folder", str(root),
                   f"{num_pairs} pairs drawn (seed {seed}) from {len(ds.classes)} classes, {len(ds)} images{forg}")


def pairs_from_csv(path: str | os.PathLike) -> PairSet:
    from siamgui.core.datasets import read_pairs_csv

    return PairSet(read_pairs_csv(path), None, "csv", str(path))


def pairs_from_lfw(pairs_file: str | os.PathLike, root: str | os.PathLike) -> PairSet:
    from siamgui.core.datasets import read_lfw_pairs

    pairs, folds = read_lfw_pairs(pairs_file, root)
    note = f"{len(np.unique(folds))} folds" if folds is not None else ""
    return PairSet(pairs, folds, "lfw", str(pairs_file), note)


# -- progress ----------------------------------------------------------------------------
@dataclass
class Progress:
    """Where a running evaluation stands (passed to the ``progress`` callback)."""

    #: "embedding" (images prepared and embedded), "explaining" (worst pairs), "done".
    stage: str
    done: int
    total: int
    elapsed_s: float
    eta_s: float | None = None
    #: Pairs whose two images are embedded so far, and the AUC on them (None until
    #: both kinds of pair are among them): a partial result to show while running.
    pairs_scored: int = 0
    partial_auc: float | None = None

    def text(self) -> str:
        what = {"embedding": "embedding images", "explaining": "explaining the worst pairs"}.get(self.stage, self.stage)
        eta = f", about {_duration(self.eta_s)} left" if self.eta_s is not None and self.done < self.total else ""
        return f"{what} {self.done}/{self.total}{eta}"


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min"


# -- results -----------------------------------------------------------------------------
@dataclass
class PairExample:
    """One of the worst pairs: what the model saw and, optionally, why."""

    index: int
    a: str
    b: str
    same: bool
    distance: float
    #: True when the model's threshold gets this pair wrong (a false accept or reject).
    error: bool
    fold: int | None
    #: The prepared inputs the model saw, (H, W, C) uint8.
    inputs: tuple[np.ndarray, np.ndarray]
    #: The original images, longest side at most THUMB px, (h, w, 3) uint8 RGB.
    thumbs: tuple[np.ndarray | None, np.ndarray | None]
    #: Face detection notes (face models), one per image ("" when one face was found).
    notes: tuple[str, str] = ("", "")
    explanation: Explanation | None = None

    def to_dict(self) -> dict:
        return {"index": self.index, "a": self.a, "b": self.b, "same": self.same, "distance": self.distance,
                "error": self.error, "fold": self.fold, "notes": list(self.notes)}


THUMB = 160


@dataclass
class EvaluationResult:
    model: dict
    data: dict
    distances: np.ndarray
    same: np.ndarray
    folds: np.ndarray | None
    threshold: float
    metrics: ev.Metrics
    tenfold: tuple[float, float] | None
    tar_at_far: list[ev.TarAtFar]
    threshold_table: list[dict]
    #: Impostor pairs with the smallest distances (false accepts first) and genuine pairs
    #: with the largest (false rejects first).
    worst_accepts: list[PairExample]
    worst_rejects: list[PairExample]
    calibration: Calibration
    timing: dict = field(default_factory=dict)
    precision: str = ""

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return ev.roc_curve(self.distances, self.same)

    def det(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return ev.det_curve(self.distances, self.same)

    def histograms(self, bins: int = 40) -> dict:
        return ev.histograms(self.distances, self.same, bins)

    def summary(self) -> dict:
        """The CLI's ``--json`` object: its long-standing keys plus ``tar_at_far``."""
        m = self.metrics
        out = {"pairs": m.pairs, "auc": m.auc, "eer": m.eer, "threshold": m.threshold, "accuracy": m.accuracy,
               "best_threshold": m.best_threshold, "best_accuracy": m.best_accuracy, "precision": self.precision}
        if self.tenfold is not None:
            out["tenfold_accuracy_mean"], out["tenfold_accuracy_std"] = self.tenfold
        out["tar_at_far"] = [r.to_dict() for r in self.tar_at_far]
        return out

    def summary_text(self) -> str:
        """The CLI's plain-text summary (the figures of :meth:`summary`)."""
        m = self.metrics
        lines = [f"pairs           {m.pairs}", f"AUC             {m.auc:.4f}", f"EER             {m.eer:.4f}",
                 f"accuracy        {m.accuracy:.4f} at threshold {m.threshold:.4f}",
                 f"best accuracy   {m.best_accuracy:.4f} at threshold {m.best_threshold:.4f}"]
        if self.tenfold is not None:
            lines.append(f"10-fold         {self.tenfold[0]:.4f} ± {self.tenfold[1]:.4f}")
        for r in self.tar_at_far:
            lines.append(f"TAR@FAR={r.far:<7g} " + (
                f"{r.tar:.4f} ({r.impostor_pairs} impostor pairs, {r.false_accepts} accepted"
                f"{', rough' if r.rough else ''})" if r.supported
                else f"not supported (needs {r.impostors_needed} impostor pairs, has {r.impostor_pairs})"))
        return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------
def run_evaluation(verifier, pairset: PairSet, *, progress: Callable[[Progress], None] | None = None,
                   cancel: Callable[[], bool] | None = None, worst: int = 8, explain: bool = True,
                   batch_size: int = 64, workers: int = 2, chip_cache=None) -> EvaluationResult:
    """Evaluate ``verifier``'s model (at ``verifier.threshold``) on ``pairset``.

    ``worst``: how many impostor and how many genuine pairs to keep as worst cases
    (``explain``: with their occlusion maps). ``chip_cache``: a ``ChipCache`` for the
    model's preprocessing, to reuse prepared face crops across runs (off by default).
    Raises DatasetError/ImageError on bad input, EvaluationCancelled when cancelled.
    """
    t0 = time.perf_counter()
    images = pairset.images()
    missing = [p for p in images if not os.path.isfile(p)]
    if missing:
        raise DatasetError(f"{len(missing)} of the {len(images)} images in {pairset.label()} cannot be found, "
                           f"e.g. no such file: {missing[0]}.")
    pairset.check()  # after the file check: a missing image is the more useful message
    index = {p: i for i, p in enumerate(images)}
    ia = np.array([index[a] for a, _, _ in pairset.pairs])
    ib = np.array([index[b] for _, b, _ in pairset.pairs])
    same = np.array([s for _, _, s in pairset.pairs], dtype=bool)
    emb, faces = _embed_all(verifier, images, ia, ib, same, progress, cancel, batch_size, workers, chip_cache, t0)
    d = verifier.distances(emb[torch.from_numpy(ia)], emb[torch.from_numpy(ib)])
    t_embed = time.perf_counter() - t0

    threshold = float(verifier.threshold)
    folds = pairset.folds
    result = EvaluationResult(
        model=model_summary(verifier), data=_data_summary(pairset, images, faces),
        distances=d, same=same, folds=folds, threshold=threshold,
        metrics=ev.evaluate(d, same, threshold),
        tenfold=ev.tenfold_accuracy(d, same, folds) if folds is not None else None,
        tar_at_far=ev.tar_at_far(d, same),
        threshold_table=ev.threshold_table(d, same, extra=[(threshold, "model")]),
        worst_accepts=[], worst_rejects=[],
        calibration=calibration_table(d, same, pairset.label(), extra=[threshold]),
        precision=verifier.precision_choice.name)
    order = np.argsort(d, kind="mergesort")
    impostors = [int(i) for i in order if not same[i]][:worst]
    genuine = [int(i) for i in order[::-1] if same[i]][:worst]
    chosen = impostors + genuine
    examples = []
    for k, i in enumerate(chosen):
        if cancel is not None and cancel():
            raise EvaluationCancelled("Evaluation cancelled.")
        examples.append(_example(verifier, pairset, i, d[i], threshold, explain, cancel))
        if progress is not None and explain:
            progress(Progress("explaining", k + 1, len(chosen), time.perf_counter() - t0))
    result.worst_accepts, result.worst_rejects = examples[:len(impostors)], examples[len(impostors):]
    total = time.perf_counter() - t0
    result.timing = {"seconds": round(total, 2), "embedding_s": round(t_embed, 2),
                     "worst_pairs_s": round(total - t_embed, 2), "images": len(images),
                     "ms_per_image": round(1000 * t_embed / max(len(images), 1), 1)}
    if progress is not None:
        progress(Progress("done", 1, 1, total, 0.0, len(d), result.metrics.auc))
    return result


def _embed_all(verifier, images, ia, ib, same, progress, cancel, batch_size, workers, chip_cache, t0):
    """Embeddings (N, D) of ``images`` in order, and the face detection counts."""
    faces = {"detected": 0, "several": 0, "none": 0, "cached": 0}
    ready_after = np.maximum(ia, ib)  # a pair is scored once its later image is embedded
    chunks = []

    def prepare(path):
        arr = chip_cache.get(path) if chip_cache is not None else None
        if arr is not None:
            return arr, None
        arr, info = verifier.prepare(path)
        if chip_cache is not None:
            chip_cache.put(path, arr)
        return arr, info

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(images), batch_size):
            if cancel is not None and cancel():
                raise EvaluationCancelled("Evaluation cancelled.")
            prepared = list(pool.map(prepare, images[start:start + batch_size]))
            chunks.append(verifier.embed_prepared([arr for arr, _ in prepared], batch_size))
            for _, info in prepared:
                if info is None:  # read from the chip cache: no detection report
                    faces["cached"] += 1
                elif info.count == 0:
                    faces["none"] += 1
                else:
                    faces["detected"] += 1
                    faces["several"] += info.count > 1
            if progress is not None:
                done = min(start + batch_size, len(images))
                elapsed = time.perf_counter() - t0
                progress(Progress("embedding", done, len(images), elapsed, elapsed / done * (len(images) - done),
                                  *_partial(chunks, ia, ib, same, ready_after < done, verifier)))
    return torch.cat(chunks), (faces if verifier.face_mode else None)


def _partial(chunks, ia, ib, same, ready, verifier) -> tuple[int, float | None]:
    n = int(ready.sum())
    if not (same[ready].any() and (~same[ready]).any()):
        return n, None
    emb = torch.cat(chunks)
    d = verifier.distances(emb[torch.from_numpy(ia[ready])], emb[torch.from_numpy(ib[ready])])
    return n, ev.auc(d, same[ready])


def _example(verifier, pairset: PairSet, i: int, distance: float, threshold: float, explain: bool,
             cancel) -> PairExample:
    a, b, s = pairset.pairs[i]
    (arr_a, info_a), (arr_b, info_b) = verifier.prepare(a), verifier.prepare(b)
    notes = tuple("" if info is None or (info.count == 1 and info.mode == "face") else info.message()
                  for info in (info_a, info_b))
    accepted = distance < threshold
    return PairExample(
        index=i, a=a, b=b, same=bool(s), distance=float(distance), error=bool(accepted != s),
        fold=int(pairset.folds[i]) if pairset.folds is not None else None, inputs=(arr_a, arr_b),
        thumbs=(_thumb(a), _thumb(b)), notes=notes,
        explanation=explain_pair(verifier, arr_a, arr_b, cancel=cancel) if explain else None)


def _thumb(path: str) -> np.ndarray | None:
    from siamgui.core.errors import ImageError
    from siamgui.core.images import load_image

    try:
        im = load_image(path)
    except ImageError:
        return None
    im.thumbnail((THUMB, THUMB))
    return np.asarray(im)


def model_summary(verifier) -> dict:
    """What the report says about the model: name, file, architecture, provenance..."""
    meta = verifier.meta
    training = meta.get("training") or {}
    data = training.get("data") or {}
    return {
        "name": verifier.loaded.name, "file": str(verifier.path) if verifier.path else "",
        "architecture": (meta.get("architecture") or {}).get("name", ""),
        "preset": (meta.get("preprocess") or {}).get("preset", ""),
        "input": "x".join(str(v) for v in meta.get("input_size") or []),
        "distance": verifier.loaded.distance, "model_threshold": float(verifier.model_threshold),
        "threshold": float(verifier.threshold), "device": str(verifier.device),
        "precision": verifier.precision_choice.name, "created": meta.get("created", ""),
        "loss": meta.get("loss") or "", "provenance": dict(meta.get("provenance") or {}),
        "training": ({"data": data.get("folder", ""), "classes": data.get("classes"), "images": data.get("images"),
                      "epochs": training.get("epochs_run"), "evaluated_on": (meta.get("metrics") or {})
                      .get("evaluated_on", "")} if training else {}),
    }


def _data_summary(pairset: PairSet, images: list[str], faces: dict | None) -> dict:
    out = {"kind": pairset.kind, "source": pairset.source, "label": pairset.label(), "note": pairset.note,
           "pairs": len(pairset.pairs), "genuine_pairs": pairset.genuine, "impostor_pairs": pairset.impostor,
           "images": len(images)}
    if pairset.folds is not None:
        out["folds"] = len(np.unique(pairset.folds))
    if faces is not None:
        out["faces"] = faces
    return out

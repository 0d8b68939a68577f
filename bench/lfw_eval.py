"""LFW evaluation of a face model with our own detection and alignment.

Like ``siamgui evaluate --lfw-pairs`` (same metrics code), plus what that
command does not report: how many images the face detector missed (they are
aligned from a central box, never dropped), how many had several faces, and
the time per face split into detection+alignment and embedding.

    .venv/bin/python bench/lfw_eval.py --pairs ../shared/data/lfw/pairs.txt \
        --root ../shared/data/lfw/lfw [--model FILE] [--threads 2] [--flip] [--json OUT]

Tuning choices may use pairsDevTrain.txt; View 2 (pairs.txt) is for reporting.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", required=True, help="LFW pairs file (pairsDevTrain.txt, pairsDevTest.txt, pairs.txt)")
    ap.add_argument("--root", required=True, help="LFW image folder")
    ap.add_argument("--model", help="model file (default: the bundled model)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--flip", action="store_true", help="also average with the mirrored chip's embedding")
    ap.add_argument("--limit", type=int, help="only the first N distinct images' pairs (quick checks)")
    ap.add_argument("--json", help="write the figures to this JSON file")
    args = ap.parse_args(argv)

    import torch

    from siamgui.core import evaluation as ev
    from siamgui.core.datasets import read_lfw_pairs
    from siamgui.core.resources import bundled_model_path
    from siamgui.core.verifier import Verifier

    torch.set_num_threads(args.threads)
    pairs, folds = read_lfw_pairs(args.pairs, args.root)
    verifier = Verifier(args.model or bundled_model_path(), device="cpu")
    images = sorted({p for a, b, _ in pairs for p in (a, b)})
    index = {p: i for i, p in enumerate(images)}
    n = len(images)
    t_prep = 0.0
    misses, multi = [], 0
    arrays = []
    t0 = time.perf_counter()
    for k, path in enumerate(images):
        t = time.perf_counter()
        arr, info = verifier.prepare(path)
        t_prep += time.perf_counter() - t
        arrays.append(arr)
        if info is not None and info.count == 0:
            misses.append(Path(path).name)
        elif info is not None and info.count > 1:
            multi += 1
        if sys.stderr.isatty() and (k % 50 == 0 or k == n - 1):
            print(f"\rpreparing {k + 1}/{n}", end="" if k < n - 1 else "\n", file=sys.stderr)
    t = time.perf_counter()
    emb = verifier.embed_prepared(arrays, batch_size=32)
    if args.flip:
        emb = (emb + verifier.embed_prepared([a[:, ::-1].copy() for a in arrays], batch_size=32)) / 2
    t_embed = time.perf_counter() - t
    # batch-1 latency of the network alone (what a single compare pays per face)
    one = [arrays[0]]
    verifier.embed_prepared(one)
    t = time.perf_counter()
    for _ in range(20):
        verifier.embed_prepared(one)
    t_single = (time.perf_counter() - t) / 20
    ia = np.array([index[a] for a, _, _ in pairs])
    ib = np.array([index[b] for _, b, _ in pairs])
    d = verifier.distances(emb[ia], emb[ib])
    same = np.array([s for _, _, s in pairs], bool)
    m = ev.evaluate(d, same, verifier.threshold)
    out = {"pairs_file": Path(args.pairs).name, "pairs": m.pairs, "images": n, "auc": m.auc, "eer": m.eer,
           "threshold": m.threshold, "accuracy_at_threshold": m.accuracy, "best_threshold": m.best_threshold,
           "best_accuracy": m.best_accuracy, "detector_misses": len(misses), "several_faces": multi,
           "flip": bool(args.flip), "threads": args.threads,
           "ms_per_face_detect_align": 1000 * t_prep / n, "ms_per_face_embed_batched": 1000 * t_embed / n,
           "ms_per_face_embed_batch1": 1000 * t_single, "total_s": time.perf_counter() - t0,
           "missed_images": misses[:50]}
    if folds is not None:
        out["tenfold_mean"], out["tenfold_std"] = ev.tenfold_accuracy(d, same, folds)
    for k, v in out.items():
        if k != "missed_images":
            print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

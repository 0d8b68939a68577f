"""LFW evaluation of a face model with our own detection and alignment.

Like ``siamgui evaluate --lfw-pairs`` (same metrics code), plus what that
command does not report: how many images the face detector missed (they are
aligned from a central box, never dropped), how many had several faces, and
the time per face split into detection+alignment and embedding.

    .venv/bin/python bench/lfw_eval.py --pairs ../shared/data/lfw/pairs.txt \
        --root ../shared/data/lfw/lfw [--model FILE] [--threads 2] [--face centre]
        [--detector yunet] [--face-set KEY=VALUE ...] [--precision float32] [--json OUT]

Tuning choices may use pairsDevTrain.txt; View 2 (pairs.txt) is for reporting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", required=True, nargs="+",
                    help="LFW pairs files (pairsDevTrain.txt, pairsDevTest.txt, pairs.txt); the distinct images "
                         "of all of them are prepared and embedded once, and each file is scored on its own")
    ap.add_argument("--root", required=True, help="LFW image folder")
    ap.add_argument("--model", help="model file (default: the bundled model)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--face", choices=("largest", "centre", "whole"), default="largest",
                    help="which face of a photo with several: the largest (the app's default) or the one "
                         "nearest the centre (LFW's convention: photos are framed on the labelled person)")
    ap.add_argument("--detector", choices=("haar", "mtcnn", "yunet"),
                    help="face detector to use instead of the model file's (for comparing detectors)")
    ap.add_argument("--face-set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override face settings of the model file, e.g. refine=0 detector_file=yunet_n_640_640.onnx "
                         "(numbers are read as numbers)")
    ap.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                    help="the network's arithmetic (as siamgui compare --precision; auto is the app's default)")
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--save", help="write per-image embeddings (plain and mirrored), landmarks and modes to "
                                   "this .npz, for offline analysis")
    args = ap.parse_args(argv)

    import torch

    from siamgui.core import evaluation as ev
    from siamgui.core.datasets import read_lfw_pairs
    from siamgui.core.resources import bundled_model_path
    from siamgui.core.verifier import Verifier

    torch.set_num_threads(args.threads)
    protocols = {Path(f).name: read_lfw_pairs(f, args.root) for f in args.pairs}
    verifier = Verifier(args.model or bundled_model_path(), device="cpu", precision=args.precision)
    face_cfg = verifier.preprocessor.spec.face  # the dict the aligner reads on every image
    if args.detector:
        face_cfg["detector"] = args.detector
    for item in args.face_set:
        key, _, value = item.partition("=")
        try:
            face_cfg[key] = float(value) if "." in value else int(value)
        except ValueError:
            face_cfg[key] = value
    images = sorted({p for pairs, _ in protocols.values() for a, b, _ in pairs for p in (a, b)})
    index = {p: i for i, p in enumerate(images)}
    n = len(images)
    t_prep = 0.0
    cpu0 = time.process_time()
    misses, multi, first_pass_misses = [], 0, 0
    arrays, modes, marks = [], [], []
    t0 = time.perf_counter()
    for k, path in enumerate(images):
        t = time.perf_counter()
        arr, info = verifier.prepare(path, face_policy=args.face)
        t_prep += time.perf_counter() - t
        arrays.append(arr)
        modes.append(info.mode if info is not None else "")
        marks.append(np.asarray(info.landmarks if info is not None and info.landmarks else np.zeros((5, 2))))
        first_pass_misses += bool(info is not None and info.relaxed)
        if info is not None and info.count == 0:
            misses.append(Path(path).name)
        elif info is not None and info.count > 1:
            multi += 1
        if sys.stderr.isatty() and (k % 50 == 0 or k == n - 1):
            print(f"\rpreparing {k + 1}/{n}", end="" if k < n - 1 else "\n", file=sys.stderr)
    cpu_prep = time.process_time() - cpu0
    t, c = time.perf_counter(), time.process_time()
    emb = verifier.embed_prepared(arrays, batch_size=32)
    t_embed, cpu_embed = time.perf_counter() - t, time.process_time() - c
    if args.save:  # emb is flip-averaged when the model's metadata asks for it
        np.savez_compressed(args.save, images=np.array(images), emb=emb.numpy(), modes=np.array(modes),
                            landmarks=np.array(marks, np.float32), flip_average=verifier.flip_average)
    # batch-1 latency of the network alone (what a single compare pays per face)
    one = [arrays[0]]
    verifier.embed_prepared(one)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(20):
        verifier.embed_prepared(one)
    t_single, cpu_single = (time.perf_counter() - t) / 20, (time.process_time() - c) / 20
    common = {"face_policy": args.face, "detector": face_cfg.get("detector"), "face_settings": face_cfg, "images": n,
              "first_pass_misses": first_pass_misses, "detector_misses": len(misses), "several_faces": multi,
              "flip_average": verifier.flip_average,
              "precision": verifier.precision_choice.name,
              "threads": args.threads, "ms_per_face_detect_align": 1000 * t_prep / n,
              "ms_per_face_embed_batched": 1000 * t_embed / n, "ms_per_face_embed_batch1": 1000 * t_single,
              "cpu_ms_per_face_detect_align": 1000 * cpu_prep / n, "cpu_ms_per_face_embed_batched": 1000 * cpu_embed / n,
              "cpu_ms_per_face_embed_batch1": 1000 * cpu_single, "load_average": os.getloadavg()[0],
              "total_s": time.perf_counter() - t0, "threshold": verifier.threshold}
    for k, v in common.items():
        print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")
    results = {"common": common, "missed_images": misses}
    for name, (pairs, folds) in protocols.items():
        ia = np.array([index[a] for a, _, _ in pairs])
        ib = np.array([index[b] for _, b, _ in pairs])
        d = verifier.distances(emb[ia], emb[ib])
        same = np.array([s for _, _, s in pairs], bool)
        m = ev.evaluate(d, same, verifier.threshold)
        out = {"pairs": m.pairs, "auc": m.auc, "eer": m.eer, "accuracy_at_threshold": m.accuracy,
               "best_threshold": m.best_threshold, "best_accuracy": m.best_accuracy}
        pair_imgs = {p for a, b, _ in pairs for p in (a, b)}
        out["detector_misses"] = sum(1 for p in pair_imgs if Path(p).name in set(misses))
        if folds is not None:
            out["tenfold_mean"], out["tenfold_std"] = ev.tenfold_accuracy(d, same, folds)
        results[name] = out
        print(f"-- {name}")
        for k, v in out.items():
            print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

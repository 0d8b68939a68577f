"""LFW evaluation of a face model with our own detection and alignment.

Like ``siamgui evaluate --lfw-pairs`` (same metrics code), plus what that
command does not report: how many images the face detector missed (they are
aligned from a central box, never dropped), how many had several faces, and
the time per face split into detection+alignment and embedding.

    .venv/bin/python bench/lfw_eval.py --pairs ../shared/data/lfw/pairs.txt \
        --root ../shared/data/lfw/lfw [--model FILE] [--threads 2] [--face centre|best]
        [--detector yunet] [--face-set KEY=VALUE ...] [--precision float32] [--no-flip] [--onnx FILE.onnx] [--json OUT]

``--onnx`` also embeds the same prepared chips with an exported encoder
(``siamgui.core.export``) under onnxruntime and scores every protocol with
those embeddings too (``onnx`` in each protocol's figures), with the largest
embedding difference from PyTorch; compare with ``--precision float32``.

``--face best`` scores each pair by its closest pair of faces (``siamgui compare --face
best``): every face of both photos is detected once, aligned and embedded in batches.

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
    ap.add_argument("--face", choices=("largest", "centre", "whole", "best"), default="largest",
                    help="which face of a photo with several: the main one (the app's default), the one "
                         "nearest the centre (LFW's convention: photos are framed on the labelled person), "
                         "or best: the closest pair of faces of the two photos decides")
    ap.add_argument("--detector", choices=("haar", "mtcnn", "yunet"),
                    help="face detector to use instead of the model file's (for comparing detectors)")
    ap.add_argument("--face-set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override face settings of the model file, e.g. refine=0 detector_file=yunet_n_640_640.onnx "
                         "(numbers are read as numbers)")
    ap.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                    help="the network's arithmetic (as siamgui compare --precision; auto is the app's default)")
    ap.add_argument("--onnx", help="an exported encoder (.onnx): score its onnxruntime embeddings of the same "
                                   "chips beside PyTorch's")
    ap.add_argument("--no-flip", action="store_true",
                    help="embed each face alone, without averaging in its mirror image (the model's default)")
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
    if args.no_flip:
        verifier.flip_average = False
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
    if args.face == "best":
        return best_face_eval(verifier, protocols, images, args)
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
    emb_onnx = None
    if args.onnx:
        from siamgui.core.export import OnnxEmbedder

        runner = OnnxEmbedder(args.onnx, threads=args.threads)
        t = time.perf_counter()
        emb_onnx = runner.embed_prepared(arrays, batch_size=32)
        t_onnx = time.perf_counter() - t
        onnx_diff = float(np.abs(emb_onnx - emb.numpy()).max())
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
    if emb_onnx is not None:
        common.update({"onnx_file": Path(args.onnx).name, "onnx_max_abs_diff": onnx_diff,
                       "onnx_ms_per_face_embed_batched": 1000 * t_onnx / n})
    for k, v in common.items():
        print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")
    results = {"common": common, "missed_images": misses}
    for name, (pairs, folds) in protocols.items():
        ia = np.array([index[a] for a, _, _ in pairs])
        ib = np.array([index[b] for _, b, _ in pairs])
        same = np.array([s for _, _, s in pairs], bool)

        def score(e, folds=folds, ia=ia, ib=ib, same=same) -> dict:
            d = verifier.distances(e[ia], e[ib])
            m = ev.evaluate(d, same, verifier.threshold)
            out = {"pairs": m.pairs, "auc": m.auc, "eer": m.eer, "accuracy_at_threshold": m.accuracy,
                   "best_threshold": m.best_threshold, "best_accuracy": m.best_accuracy}
            if folds is not None:
                out["tenfold_mean"], out["tenfold_std"] = ev.tenfold_accuracy(d, same, folds)
            return out

        out = score(emb)
        pair_imgs = {p for a, b, _ in pairs for p in (a, b)}
        out["detector_misses"] = sum(1 for p in pair_imgs if Path(p).name in set(misses))
        if emb_onnx is not None:
            out["onnx"] = score(torch.from_numpy(emb_onnx))
        results[name] = out
        print(f"-- {name}")
        for k, v in out.items():
            print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def best_face_eval(verifier, protocols, images, args) -> int:
    """``--face best``: every face of every photo, each pair scored by its closest pair of faces.

    Beside the figures, what differs from the main face: how many photos gave several
    faces, and how many pairs the main face (the main-face rule applied to the same
    boxes, :func:`siamgui.core.face.detect.main_face`) would have scored otherwise."""
    import torch

    from siamgui.core import evaluation as ev
    from siamgui.core.face.detect import main_face

    n = len(images)
    t0, cpu0 = time.perf_counter(), time.process_time()
    inputs, spans, mains, faces_found, unjudged, no_face = [], [], [], 0, 0, 0
    for k, path in enumerate(images):
        faces, info, arrays, rows = verifier.prepare_faces(path)
        spans.append((len(inputs), len(arrays)))
        inputs.extend(arrays)
        faces_found += len(faces)
        unjudged += sum(1 for f in faces if not f.judged)
        no_face += not faces
        if len(rows) > 1:  # the main face among the rows, as the main-face rule would choose
            mains.append(main_face([faces[r].box for r in rows], range(len(rows)), _size(path)))
        else:
            mains.append(0)
        if sys.stderr.isatty() and (k % 50 == 0 or k == n - 1):
            print(f"\rpreparing {k + 1}/{n}", end="" if k < n - 1 else "\n", file=sys.stderr)
    t_prep, cpu_prep = time.perf_counter() - t0, time.process_time() - cpu0
    t, c = time.perf_counter(), time.process_time()
    emb = verifier.embed_prepared(inputs, batch_size=32)
    t_embed, cpu_embed = time.perf_counter() - t, time.process_time() - c
    index = {p: i for i, p in enumerate(images)}
    several = sum(1 for _, m in spans if m > 1)
    common = {"face_policy": "best", "detector": verifier.loaded.spec.face.get("detector"), "images": n,
              "faces_embedded": len(inputs), "images_with_several_faces": several, "faces_not_judged": unjudged,
              "images_without_face": no_face, "faces_detected": faces_found, "flip_average": verifier.flip_average,
              "precision": verifier.precision_choice.name, "threads": args.threads,
              "ms_per_image_detect_align": 1000 * t_prep / n, "ms_per_face_embed_batched": 1000 * t_embed / len(inputs),
              "cpu_ms_per_image_detect_align": 1000 * cpu_prep / n,
              "cpu_ms_per_face_embed_batched": 1000 * cpu_embed / len(inputs),
              "load_average": os.getloadavg()[0], "total_s": time.perf_counter() - t0, "threshold": verifier.threshold}
    for k, v in common.items():
        print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")
    results = {"common": common}
    for name, (pairs, folds) in protocols.items():
        best, main, other = np.empty(len(pairs)), np.empty(len(pairs)), 0
        for q, (a, b, _) in enumerate(pairs):
            (sa, na), (sb, nb) = spans[index[a]], spans[index[b]]
            ea, eb = emb[sa:sa + na], emb[sb:sb + nb]
            d = verifier.distance.pairwise(ea.repeat_interleave(nb, 0), eb.repeat(na, 1)).view(na, nb)
            i, j = divmod(int(torch.argmin(d)), nb)
            ma, mb = mains[index[a]], mains[index[b]]
            best[q], main[q] = float(d[i, j]), float(d[ma, mb])
            other += (i, j) != (ma, mb)
        same = np.array([s for _, _, s in pairs], bool)
        out = {"pairs": len(pairs), "pairs_decided_by_another_face": other}
        for label, dist in (("best", best), ("main_of_same_boxes", main)):
            m = ev.evaluate(dist, same, verifier.threshold)
            out[label] = {"auc": m.auc, "eer": m.eer, "accuracy_at_threshold": m.accuracy,
                          "best_threshold": m.best_threshold, "best_accuracy": m.best_accuracy}
            if folds is not None:
                out[label]["tenfold_mean"], out[label]["tenfold_std"] = ev.tenfold_accuracy(dist, same, folds)
            out[label]["errors_at_threshold"] = int(((dist < verifier.threshold) != same).sum())
        out["changed_verdicts_same_to_different"] = int(((main < verifier.threshold) & (best >= verifier.threshold)).sum())
        out["changed_verdicts_different_to_same"] = int(((main >= verifier.threshold) & (best < verifier.threshold)).sum())
        changed = (main < verifier.threshold) != (best < verifier.threshold)
        out["changed_pairs_that_are_same"] = int((changed & same).sum())
        out["changed_pairs"] = [[Path(pairs[q][0]).name, Path(pairs[q][1]).name, bool(same[q]), round(main[q], 4),
                                 round(best[q], 4)] for q in np.flatnonzero(changed)]
        results[name] = out
        print(f"-- {name}")
        print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _size(path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


if __name__ == "__main__":
    raise SystemExit(main())

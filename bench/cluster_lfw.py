"""Sorting a photo folder by person, measured on LFW (docs/people.md, bench/README.md).

    .venv/bin/python bench/cluster_lfw.py --json bench/results/cluster_lfw.json
    .venv/bin/python bench/cluster_lfw.py --limit 200 --json /tmp/cluster_lfw_small.json   # a quick check

The photos of every LFW identity with at least ``--min-photos`` photos (158 identities,
4,324 photos at 10) are mixed into one flat folder of links with neutral names
(``photo_00042.jpg``, shuffled with ``--seed``), and sorted with the bundled face model
(:func:`siamgui.core.people.cluster.sort_folder`, a fresh face cache, so every photo is
embedded). ``--limit N`` keeps whole identities, in name order, until N photos.

Truth: an LFW photo's label is its centre face's (the judged face whose box holds the
photo's centre, else the judged face nearest to it); other faces (people in the
background) are left out of the figures and counted. A centre face in "unsorted" counts
as a cluster of its own. Figures (sklearn.metrics): pairwise precision and recall (over
all pairs of centre faces: same cluster and same person), adjusted Rand index, the share
of centre faces left unsorted, clusters against identities, and wall time per 1,000 photos
for the cold run (detect, align, embed, cluster) and for a second run over the same folder
(everything from the cache: read, hash, cluster). ``with_chunked``, ``with_complete_linkage``
and ``with_dbscan``: the same figures for the large-folder fallback (chunks of a quarter of
the photos, then their groups), for complete instead of average linkage, and for DBSCAN,
on the same cached embeddings.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import LFW_ROOT  # noqa: E402


def choose(root: Path, min_photos: int, limit: int | None) -> list[tuple[str, Path]]:
    """(identity, photo) for every identity with at least ``min_photos`` photos, by name; ``limit``:
    whole identities until that many photos."""
    out: list[tuple[str, Path]] = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(person.glob("*.jpg"))
        if len(photos) < min_photos:
            continue
        if limit is not None and out and len(out) + len(photos) > limit:
            break
        out.extend((person.name, p) for p in photos)
    return out


def mixed_folder(items: list[tuple[str, Path]], folder: Path, seed: int) -> dict[str, str]:
    """Links with neutral names in one flat folder; returns link path -> identity."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    truth = {}
    for n, k in enumerate(order):
        name, src = items[k]
        link = folder / f"photo_{n:05d}.jpg"
        os.symlink(src.resolve(), link)
        truth[str(link)] = name
    return truth


def centre_faces(result) -> dict[str, tuple[tuple, int | None]]:
    """Per photo, its centre face's box and predicted cluster (None: unsorted)."""
    from PIL import Image

    faces: dict[str, list[tuple[tuple, int | None, bool]]] = {}
    for cid, cluster in enumerate(result.clusters):
        for f in cluster:
            faces.setdefault(f.image, []).append((f.box, cid, True))
    for f in result.unsorted:
        faces.setdefault(f.image, []).append((f.box, None, f.issue is None))
    out = {}
    for image, fs in faces.items():
        judged = [f for f in fs if f[2]]
        if not judged:
            continue
        with Image.open(image) as im:
            cx, cy = im.width / 2, im.height / 2

        def off(f):
            x, y, w, h = f[0]
            inside = x <= cx <= x + w and y <= cy <= y + h
            return (not inside, (x + w / 2 - cx) ** 2 + (y + h / 2 - cy) ** 2)

        box, cid, _ = min(judged, key=off)
        out[image] = (box, cid)
    return out


def figures(truth: dict[str, str], centres: dict, result) -> dict:
    from sklearn.metrics import adjusted_rand_score
    from sklearn.metrics.cluster import pair_confusion_matrix

    images = sorted(centres)
    names = sorted(set(truth.values()))
    y_true = np.array([names.index(truth[i]) for i in images])
    next_id = len(result.clusters)
    y_pred = []
    for i in images:
        cid = centres[i][1]
        if cid is None:  # unsorted: a cluster of its own
            cid, next_id = next_id, next_id + 1
        y_pred.append(cid)
    y_pred = np.array(y_pred)
    (tn, fp), (fn, tp) = pair_confusion_matrix(y_true, y_pred)
    other = result.face_count - len(centres)
    return {
        "photos": len(truth), "identities": len(names), "centre_faces": len(centres),
        "photos_without_a_judged_face": len(truth) - len(centres), "other_faces": int(other),
        "clusters": len(result.clusters), "method": result.method, "threshold": result.threshold,
        "pairwise_precision": round(float(tp / (tp + fp)) if tp + fp else float("nan"), 4),
        "pairwise_recall": round(float(tp / (tp + fn)) if tp + fn else float("nan"), 4),
        "adjusted_rand_index": round(float(adjusted_rand_score(y_true, y_pred)), 4),
        "centre_faces_unsorted": round(sum(1 for c in centres.values() if c[1] is None) / max(len(centres), 1), 4),
        "skipped": len(result.skipped),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(LFW_ROOT), help="LFW's folder of identity folders")
    p.add_argument("--min-photos", type=int, default=10)
    p.add_argument("--limit", type=int, help="at most this many photos (whole identities, by name)")
    p.add_argument("--model", help="model file (default: the bundled face model)")
    p.add_argument("--threshold", type=float, help="override the model's threshold")
    p.add_argument("--method", default="auto", choices=("auto", "agglomerative", "dbscan"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the figures here too")
    args = p.parse_args(argv)

    import torch

    from siamgui.core.people.cache import FaceCache
    from siamgui.core.people.cluster import sort_folder
    from siamgui.core.verifier import Verifier

    root = Path(args.root)
    if not root.is_dir():
        print(f"no LFW at {root}", file=sys.stderr)
        return 2
    items = choose(root, args.min_photos, args.limit)
    verifier = Verifier(args.model, device="cpu", threshold=args.threshold)
    with tempfile.TemporaryDirectory(prefix="cluster_lfw_") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        truth = mixed_folder(items, folder, args.seed)
        with FaceCache(Path(tmp) / "faces.sqlite") as cache:
            t0 = time.perf_counter()
            result = sort_folder(verifier, folder, cache=cache, method=args.method)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = sort_folder(verifier, folder, cache=cache, method=args.method)
            warm = time.perf_counter() - t0
            assert again.embedded == 0
            out = figures(truth, centre_faces(result), result)
            # other methods on the same embeddings (from the cache): the chunked fallback for large
            # folders (here with chunks of a quarter of the photos) and DBSCAN
            chunk = max(50, len(items) // 4)
            for name, kw in (("chunked", {"method": "chunked", "chunk": chunk}),
                             ("complete_linkage", {"method": "agglomerative", "linkage": "complete"}),
                             ("dbscan", {"method": "dbscan"})):
                alt = sort_folder(verifier, folder, cache=cache, **kw)
                out[f"with_{name}"] = dict(figures(truth, centre_faces(alt), alt), **kw)
    out.update({
        "seconds_per_1000_photos": round(1000 * cold / len(items), 1),
        "seconds_per_1000_photos_cached": round(1000 * warm / len(items), 3),
        "model": os.path.basename(result.model), "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "min_photos": args.min_photos, "limit": args.limit, "seed": args.seed,
    })
    for k, v in out.items():
        print(f"{k:32s} {v}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

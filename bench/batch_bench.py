"""Batch verification throughput: ``compare --pairs`` against a loop of single compares.

Both sides run in this process with the same loaded model on the same pairs, interleaved
round by round:

- ``batch_pairs_per_s``: :func:`siamgui.core.batch.run_pairs`, what ``siamgui compare
  --pairs P --out R`` runs (each distinct image read and embedded once, a chunk's new
  images in one forward pass, two threads preparing images, rows written to a CSV);
- ``baseline_batch_pairs_per_s``: ``Verifier.compare(a, b)`` per pair, what each
  ``siamgui compare A B`` runs, with the embedding cache cleared before every call (a new
  process has an empty one); process start and model loading are left out, which favours
  the loop.

``batch_speedup`` is the ratio; ``batch_max_distance_diff`` the largest difference between
the two sides' distances (they do the same work, so about 0, or up to about 0.005 in bfloat16
where batching changes the rounding). Pairs: the first ``--pairs`` of LFW's pairsDevTest when
``../shared/data/lfw`` is present, else pairs of generated pictures. ``bench/run.py`` runs it
as its ``batch`` section; alone: ``.venv/bin/python bench/batch_bench.py [--pairs 200] [--json]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def bench_pairs(n: int, work: Path) -> tuple[list[tuple[str, str]], str]:
    """The first ``n`` pairs of LFW's pairsDevTest (same and different ones alternating), or
    generated pictures paired so that images repeat as they do in LFW's lists."""
    from bench import common

    lfw = common.LFW_ROOT.parent / "pairsDevTest.txt"
    if lfw.is_file() and (common.LFW_ROOT / "George_W_Bush").is_dir():
        from siamgui.core.datasets import read_lfw_pairs

        pairs, _ = read_lfw_pairs(lfw, common.LFW_ROOT)
        same, diff = [p for p in pairs if p[2]], [p for p in pairs if not p[2]]
        mixed = [p for two in zip(same, diff) for p in two][:n]
        return [(a, b) for a, b, _ in mixed], f"the first {len(mixed)} pairs of LFW pairsDevTest (mixed)"
    import random

    images = common.synthetic_photos(work / "photos", n=max(8, n))
    rng = random.Random(0)
    return ([(images[i % len(images)], rng.choice(images)) for i in range(n)],
            f"{n} pairs of generated 250x250 JPEGs (LFW absent)")


def measure_batch(model_path, pairs: list[tuple[str, str]], rounds: int = 3, work: Path | None = None,
                  precision: str = "auto") -> dict:
    """``batch_pairs_per_s`` and its baseline over ``rounds`` interleaved rounds (median, min, max)."""
    from bench import common
    from siamgui.core.batch import plan_pairs, run_pairs
    from siamgui.core.verifier import Verifier

    work = Path(work or tempfile.mkdtemp(prefix="siamgui-batch-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "pairs.csv"
    with open(src, "w", newline="") as fh:
        csv.writer(fh).writerows([("a", "b"), *pairs])
    v = Verifier(str(model_path), device="cpu", precision=precision)
    v.compare(pairs[0][0], pairs[0][1])  # warm-up: first-call set-up on neither side's clock
    ours, base, diff = [], [], 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        run_pairs(v, plan_pairs(src, work / "results.csv", "overwrite"))
        ours.append(len(pairs) / (time.perf_counter() - t))
        t = time.perf_counter()
        single = []
        for a, b in pairs:
            v.cache.clear()
            single.append(v.compare(a, b).distance)
        base.append(len(pairs) / (time.perf_counter() - t))
        with open(work / "results.csv", newline="") as fh:
            got = [float(r["distance"]) for r in csv.DictReader(fh) if r["distance"]]
        if len(got) == len(single):
            diff = max(diff, max(abs(x - y) for x, y in zip(got, single)))
        else:
            diff = float("inf")  # a pair failed on one side only: the figures are not comparable
    ratios = [o / b for o, b in zip(ours, base)]
    return {**common.summaries(batch_pairs_per_s=(ours, 1), baseline_batch_pairs_per_s=(base, 1),
                               batch_speedup=(ratios, 2)),
            "batch_pairs": len(pairs), "batch_distinct_images": len({p for pair in pairs for p in pair}),
            "batch_max_distance_diff": round(diff, 6), "batch_precision": v.precision_choice.name}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=200, help="pairs per round (default 200)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", help="model file (default: the bundled model, or a random stand-in)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    import siamgui  # noqa: F401 - its process-wide settings first, as in the app

    from bench import common

    work = Path(tempfile.mkdtemp(prefix="siamgui-batch-"))
    model, label = (Path(args.model), args.model) if args.model else common.model_for_bench(work)
    pairs, pairs_label = bench_pairs(args.pairs, work)
    res = measure_batch(model, pairs, args.rounds, work)
    res["notes"] = [f"model: {label}", f"pairs: {pairs_label}"]
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:32s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training recipes measured on LFW with the honest protocol.

Trains only on LFW identities that do not appear in ``pairsDevTest.txt`` and
scores on ``pairsDevTest.txt`` (View 1 test). The training folder is a tree of
per-file symbolic links in a temporary folder (the data is never copied).

    python bench/lfw_recipe.py scratch  [--minutes 50] [--fast-eval] [--tag T] [train options...]
    python bench/lfw_recipe.py finetune [train options...]
    python bench/lfw_recipe.py baseline            # the bundled model, no training

Writes a JSON summary to bench/results/lfw_<recipe>.json and prints it.
Every extra option is passed to ``siamgui train`` unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LFW = Path(os.environ.get("SIAMGUI_LFW", REPO.parent / "shared" / "data" / "lfw"))
RESULTS = REPO / "bench" / "results"


def devtest_identities(pairs_file: Path) -> set[str]:
    names = set()
    lines = pairs_file.read_text().split("\n")[1:]
    for line in lines:
        parts = line.split()
        if len(parts) == 3:
            names.add(parts[0])
        elif len(parts) == 4:
            names.update((parts[0], parts[2]))
    return names


def build_train_folder(dest: Path, min_images: int = 1, max_per_identity: int | None = None) -> dict:
    """Symlink every image of every non-DevTest identity into dest/<name>/ (optionally only
    identities with ``min_images`` or more, and at most ``max_per_identity`` images each)."""
    excluded = devtest_identities(LFW / "pairsDevTest.txt")
    people = images = multi = 0
    for person in sorted(os.listdir(LFW / "lfw")):
        if person in excluded:
            continue
        files = sorted(f for f in os.listdir(LFW / "lfw" / person) if f.lower().endswith(".jpg"))
        if len(files) < max(1, min_images):
            continue
        files = files[:max_per_identity] if max_per_identity else files
        (dest / person).mkdir(parents=True, exist_ok=True)
        for f in files:
            os.symlink(LFW / "lfw" / person / f, dest / person / f)
        people += 1
        images += len(files)
        multi += len(files) >= 2
    return {"identities": people, "images": images, "identities_with_2plus": multi,
            "excluded_devtest_identities": len(excluded)}


def siamgui(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "siamgui", *args]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, text=True, stdout=subprocess.PIPE)


def evaluate(model: str | None) -> dict:
    args = ["evaluate", "--lfw-pairs", str(LFW / "pairsDevTest.txt"), "--root", str(LFW / "lfw"), "--json"]
    if model:
        args += ["--model", model]
    proc = siamgui(*args)
    if proc.returncode != 0:
        raise SystemExit(f"evaluate failed ({proc.returncode})")
    return json.loads(proc.stdout)


def fast_devtest(model: str | None) -> dict:
    """DevTest figures in-process, with the prepared chips from the chip cache.

    Same pairs, same preprocessing spec (the model's), same metrics as
    ``siamgui evaluate --lfw-pairs``; only the preparing of images is cached.
    """
    sys.path.insert(0, str(REPO))
    import numpy as np

    from siamgui.core import evaluation as ev
    from siamgui.core.face.chips import ChipCache
    from siamgui.core.datasets import read_lfw_pairs
    from siamgui.core.training import prepare_images
    from siamgui.core.verifier import Verifier

    verifier = Verifier(model, device="cpu")
    pairs, _ = read_lfw_pairs(LFW / "pairsDevTest.txt", LFW / "lfw")
    paths = sorted({p for a, b, _ in pairs for p in (a, b)})
    index = {p: i for i, p in enumerate(paths)}
    images, bad = prepare_images(paths, verifier.preprocessor, 2, cache=ChipCache(verifier.loaded.spec))
    if bad:
        raise SystemExit(f"{len(bad)} DevTest images failed to prepare")
    emb = verifier.embed_prepared(images)
    ia = [index[a] for a, _, _ in pairs]
    ib = [index[b] for _, b, _ in pairs]
    d = verifier.distances(emb[ia], emb[ib])
    same = np.array([s for _, _, s in pairs], dtype=bool)
    m = ev.evaluate(d, same, verifier.threshold)
    return {"pairs": m.pairs, "auc": m.auc, "eer": m.eer, "threshold": m.threshold, "accuracy": m.accuracy,
            "best_threshold": m.best_threshold, "best_accuracy": m.best_accuracy}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", choices=("scratch", "finetune", "baseline"))
    p.add_argument("--out", help="model file to write (default: a temp file)")
    p.add_argument("--minutes", type=float, help="wall-clock budget of the training loop (siamgui train --max-minutes)")
    p.add_argument("--fast-eval", action="store_true",
                   help="score DevTest in-process with cached chips instead of `siamgui evaluate` (same figures)")
    p.add_argument("--tag", default="", help="suffix of the result file names")
    p.add_argument("--min-images", type=int, default=1, help="only identities with this many images or more")
    p.add_argument("--max-per-identity", type=int, help="at most this many images of each identity")
    args, train_args = p.parse_known_args()
    if not (LFW / "pairsDevTest.txt").is_file():
        print(f"LFW not found at {LFW} (set SIAMGUI_LFW)", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.minutes:
        train_args += ["--max-minutes", str(args.minutes)]
    score = fast_devtest if args.fast_eval else evaluate
    name = f"lfw_{args.recipe}{'_' + args.tag if args.tag else ''}"
    summary: dict = {"recipe": args.recipe, "train_args": train_args, "cpu_threads": os.cpu_count(),
                     "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    if args.recipe == "baseline":
        summary["devtest"] = score(None)
    else:
        with tempfile.TemporaryDirectory(prefix="lfw-train-") as tmp:
            data = Path(tmp) / "lfw-train"
            summary["data"] = build_train_folder(data, args.min_images, args.max_per_identity)
            out = args.out or str(Path(tmp) / "model.safetensors")
            base = ["train", str(data), "--out", out, "--preset", "face", "--log-json",
                    str(RESULTS / f"{name}_log.jsonl")]
            if args.recipe == "finetune":
                base += ["--init", "bundled"]
                summary["devtest_before"] = score(None)
            t0 = time.perf_counter()
            r0 = os.times()
            proc = siamgui(*base, *train_args)
            r1 = os.times()
            summary["train_seconds"] = round(time.perf_counter() - t0, 1)
            summary["train_cpu_seconds"] = round((r1.children_user - r0.children_user)
                                                 + (r1.children_system - r0.children_system), 1)
            summary["load_average_after"] = os.getloadavg()
            summary["train_stdout"] = proc.stdout.strip()
            if proc.returncode != 0:
                print(json.dumps(summary, indent=2))
                return proc.returncode
            summary["devtest"] = score(out)
            summary["training_meta"] = _training_meta(out)
            if args.out:
                summary["model"] = out
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def _training_meta(model: str) -> dict:
    sys.path.insert(0, str(REPO))
    from siamgui.core.modelfile import read_metadata

    meta = read_metadata(model)
    tr = meta.get("training") or {}
    return {"threshold": meta.get("threshold"), "validation": meta.get("metrics"),
            "epochs_run": tr.get("epochs_run"), "best_epoch": tr.get("best_epoch"),
            "duration_s": tr.get("duration_s"), "timing": tr.get("timing"), "history": tr.get("history")}


if __name__ == "__main__":
    sys.exit(main())

"""Training recipes measured on LFW with the honest protocol.

Trains only on LFW identities that do not appear in ``pairsDevTest.txt`` and
scores on ``pairsDevTest.txt`` (View 1 test). The training folder is a tree of
per-file symbolic links in a temporary folder (the data is never copied).

    python bench/lfw_recipe.py scratch  [--minutes 55] [train options...]
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


def build_train_folder(dest: Path) -> dict:
    """Symlink every image of every non-DevTest identity into dest/<name>/."""
    excluded = devtest_identities(LFW / "pairsDevTest.txt")
    people = images = multi = 0
    for person in sorted(os.listdir(LFW / "lfw")):
        if person in excluded:
            continue
        files = sorted(f for f in os.listdir(LFW / "lfw" / person) if f.lower().endswith(".jpg"))
        if not files:
            continue
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", choices=("scratch", "finetune", "baseline"))
    p.add_argument("--out", help="model file to write (default: a temp file)")
    args, train_args = p.parse_known_args()
    if not (LFW / "pairsDevTest.txt").is_file():
        print(f"LFW not found at {LFW} (set SIAMGUI_LFW)", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary: dict = {"recipe": args.recipe, "train_args": train_args, "cpu_threads": os.cpu_count()}
    if args.recipe == "baseline":
        summary["devtest"] = evaluate(None)
    else:
        with tempfile.TemporaryDirectory(prefix="lfw-train-") as tmp:
            data = Path(tmp) / "lfw-train"
            summary["data"] = build_train_folder(data)
            out = args.out or str(Path(tmp) / "model.safetensors")
            base = ["train", str(data), "--out", out, "--preset", "face", "--log-json",
                    str(RESULTS / f"lfw_{args.recipe}_log.jsonl")]
            if args.recipe == "finetune":
                base += ["--init", "bundled"]
                summary["devtest_before"] = evaluate(None)
            t0 = time.perf_counter()
            proc = siamgui(*base, *train_args)
            summary["train_seconds"] = round(time.perf_counter() - t0, 1)
            summary["train_stdout"] = proc.stdout.strip()
            if proc.returncode != 0:
                print(json.dumps(summary, indent=2))
                return proc.returncode
            summary["devtest"] = evaluate(out)
            if args.out:
                summary["model"] = out
    path = RESULTS / f"lfw_{args.recipe}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

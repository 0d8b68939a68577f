"""``siamgui evaluate``: ROC/AUC/EER on labelled pairs, or N-way K-shot episodes (``--one-shot``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from siamgui.cli.common import EXIT_OK, UsageError, finite_float, open_verifier, positive_int, progress


def add_parser(sub, shared) -> None:
    e = sub.add_parser("evaluate", help="evaluate a model on labelled pairs",
                       parents=shared("model", "device", "precision", "json"))
    e.add_argument("data_dir", nargs="?", metavar="DATA_DIR", help="a class folder (random balanced pairs)")
    e.add_argument("--pairs", help="CSV with header a,b,same")
    e.add_argument("--lfw-pairs", help="an LFW pairs file (pairsDevTest.txt, pairs.txt)")
    e.add_argument("--root", help="image folder for --lfw-pairs")
    e.add_argument("--num-pairs", type=positive_int, default=2000, help="pairs drawn from DATA_DIR")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--threshold", type=finite_float, help="override the model's threshold")
    e.add_argument("--report", metavar="OUT.html",
                   help="also write a self-contained HTML report (plots, tables, worst pairs with occlusion maps)")
    e.add_argument("--one-shot", metavar="DATA_DIR", help="N-way K-shot identification episodes on a class folder")
    e.add_argument("--way", type=positive_int, default=5, help="--one-shot: classes per episode (default 5)")
    e.add_argument("--shots", type=positive_int, default=1, help="--one-shot: support images per class (default 1)")
    e.add_argument("--episodes", type=positive_int, default=1000, help="--one-shot: episodes (default 1000)")
    e.add_argument("--rank", choices=("min", "mean"), default="min",
                   help="--one-shot: class distance: nearest support image (min) or mean of them")
    e.set_defaults(func=run)


def run(args) -> int:
    if args.one_shot:
        if args.report:
            raise UsageError("--report is for pair evaluations, not --one-shot")
        return run_one_shot(args)
    sources = [bool(args.data_dir), bool(args.pairs), bool(args.lfw_pairs)]
    if sum(sources) != 1:
        raise UsageError("give exactly one of DATA_DIR, --pairs or --lfw-pairs")
    if args.lfw_pairs and not args.root:
        raise UsageError("--lfw-pairs needs --root IMAGES_DIR")
    if args.num_pairs > 1_000_000:  # drawing 10^9 pairs would run for hours and fill the memory
        raise UsageError(f"--num-pairs must be at most 1000000, got {args.num_pairs}")
    if args.report:
        check_report_path(args.report)
    from siamgui.core.evaluation.report import write_report
    from siamgui.core.evaluation.run import pairs_from_csv, pairs_from_folder, pairs_from_lfw, run_evaluation

    if args.pairs:
        pairset = pairs_from_csv(args.pairs)
    elif args.lfw_pairs:
        pairset = pairs_from_lfw(args.lfw_pairs, args.root)
    else:
        pairset = pairs_from_folder(args.data_dir, args.num_pairs, args.seed)
    verifier = open_verifier(args)
    result = run_evaluation(verifier, pairset, progress=_progress(args.json),
                            worst=8 if args.report else 0, explain=bool(args.report))
    if args.report:
        write_report(result, args.report)
    print(json.dumps(result.summary()) if args.json else result.summary_text())
    return EXIT_OK


def check_report_path(path: str) -> None:
    """Refuse a ``--report`` path that cannot be written, before any work is done."""
    p = Path(path)
    if p.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--report must name an .html file, got {path!r}")
    if p.is_dir():
        raise UsageError(f"--report {path!r} is a folder; give a file name such as report.html")
    if not p.resolve().parent.is_dir():
        raise UsageError(f"--report: the folder {str(p.parent)!r} does not exist")


def _progress(quiet: bool):
    """The engine's progress callback: one redrawn line on a terminal's stderr, nothing otherwise."""
    tty = sys.stderr.isatty() and not quiet

    def cb(p) -> None:
        if tty:
            print("\r" + p.text(), end="\n" if p.stage == "done" else "", file=sys.stderr)

    return cb


def run_one_shot(args) -> int:
    """``siamgui evaluate --one-shot DATA_DIR --way N --shots K --episodes E [--json]``."""
    from siamgui.core.gallery.oneshot import run_one_shot as run_episodes

    if args.data_dir or args.pairs or args.lfw_pairs:
        raise UsageError("--one-shot DATA_DIR cannot be combined with DATA_DIR, --pairs or --lfw-pairs")
    verifier = open_verifier(args)
    res = run_episodes(verifier, args.one_shot, way=args.way, shots=args.shots, episodes=args.episodes,
                       seed=args.seed, rank=args.rank, progress=progress("embedding images", args.json))
    if args.json:
        print(json.dumps(res.to_dict()))
    else:
        print(f"{res.way}-way {res.shots}-shot, {res.episodes} episodes ({res.rank} distance; "
              f"{res.classes} classes, {res.images} images)\n"
              f"accuracy  {res.accuracy:.4f} ± {res.ci95:.4f} (95 % CI; Wilson {res.ci_low:.4f}-{res.ci_high:.4f})\n"
              f"chance    {res.chance:.4f}")
    return EXIT_OK

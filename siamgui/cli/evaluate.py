"""``siamgui evaluate``: ROC/AUC/EER on labelled pairs, or N-way K-shot episodes (``--one-shot``)."""

from __future__ import annotations

import json

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
    e.add_argument("--one-shot", metavar="DATA_DIR", help="N-way K-shot identification episodes on a class folder")
    e.add_argument("--way", type=positive_int, default=5, help="--one-shot: classes per episode (default 5)")
    e.add_argument("--shots", type=positive_int, default=1, help="--one-shot: support images per class (default 1)")
    e.add_argument("--episodes", type=positive_int, default=1000, help="--one-shot: episodes (default 1000)")
    e.add_argument("--rank", choices=("min", "mean"), default="min",
                   help="--one-shot: class distance: nearest support image (min) or mean of them")
    e.set_defaults(func=run)


def run(args) -> int:
    if args.one_shot:
        return run_one_shot(args)
    import numpy as np

    from siamgui.core import evaluation as ev
    from siamgui.core.datasets import read_lfw_pairs, read_pairs_csv, scan_folder
    from siamgui.core.training.sampling import fixed_pairs
    from siamgui.core.errors import DatasetError

    sources = [bool(args.data_dir), bool(args.pairs), bool(args.lfw_pairs)]
    if sum(sources) != 1:
        raise UsageError("give exactly one of DATA_DIR, --pairs or --lfw-pairs")
    if args.lfw_pairs and not args.root:
        raise UsageError("--lfw-pairs needs --root IMAGES_DIR")
    if args.num_pairs > 1_000_000:  # drawing 10^9 pairs would run for hours and fill the memory
        raise UsageError(f"--num-pairs must be at most 1000000, got {args.num_pairs}")
    folds = None
    if args.pairs:
        pairs = read_pairs_csv(args.pairs)
    elif args.lfw_pairs:
        pairs, folds = read_lfw_pairs(args.lfw_pairs, args.root)
    else:
        ds = scan_folder(args.data_dir)
        counts = ds.class_counts()
        if len(ds.classes) < 2 or (counts >= 2).sum() < 1:
            raise DatasetError("evaluation needs two classes and at least one class with two images")
        ia, ib, dis = fixed_pairs(ds.labels, args.num_pairs, args.seed)
        paths = ds.paths
        pairs = [(paths[a], paths[b], d == 0) for a, b, d in zip(ia, ib, dis)]
    verifier = open_verifier(args)
    d = verifier.pair_distances([(a, b) for a, b, _ in pairs], progress=progress("embedding images", args.json))
    same = np.array([s for _, _, s in pairs], dtype=bool)
    m = ev.evaluate(d, same, verifier.threshold)
    out = {"pairs": m.pairs, "auc": m.auc, "eer": m.eer, "threshold": m.threshold, "accuracy": m.accuracy,
           "best_threshold": m.best_threshold, "best_accuracy": m.best_accuracy,
           "precision": verifier.precision_choice.name}
    if folds is not None:
        out["tenfold_accuracy_mean"], out["tenfold_accuracy_std"] = ev.tenfold_accuracy(d, same, folds)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"pairs           {m.pairs}\nAUC             {m.auc:.4f}\nEER             {m.eer:.4f}\n"
              f"accuracy        {m.accuracy:.4f} at threshold {m.threshold:.4f}\n"
              f"best accuracy   {m.best_accuracy:.4f} at threshold {m.best_threshold:.4f}")
        if folds is not None:
            print(f"10-fold         {out['tenfold_accuracy_mean']:.4f} ± {out['tenfold_accuracy_std']:.4f}")
    return EXIT_OK


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

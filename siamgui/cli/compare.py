"""``siamgui compare A B``: the distance and verdict for two images; ``--pairs`` for many pairs."""

from __future__ import annotations

import json

from siamgui.cli.common import (EXIT_OK, FACE_HELP, UsageError, add_batch_options, batch_progress, existing_mode,
                                finish_batch, finite_float, interrupted_batch, note, open_verifier)

FACE_CHOICES = ("largest", "whole", "best")  # siamgui.core.verifier.COMPARE_FACE_POLICIES (no torch import to parse)


def add_parser(sub, shared) -> None:
    c = sub.add_parser("compare", help="compare two images, or every pair of a CSV file (--pairs)",
                       parents=shared("model", "device", "precision", "json"))
    c.add_argument("a", nargs="?", help="first image")
    c.add_argument("b", nargs="?", help="second image")
    c.add_argument("--threshold", type=finite_float, help="override the model's threshold")
    c.add_argument("--face", choices=FACE_CHOICES, default="largest",
                   help=FACE_HELP + "; best: every face of A against every face of B, the closest pair decides")
    c.add_argument("--pairs", metavar="PAIRS.csv",
                   help="compare every pair of this CSV (columns a,b; header optional; paths relative to "
                        "its folder) and write the results to --out")
    add_batch_options(c, "pair")
    c.set_defaults(func=run)


def run(args) -> int:
    if args.pairs or args.out or args.resume or args.overwrite:
        return run_pairs(args)
    if args.a is None or args.b is None:  # an empty path is the image's own error ("empty path")
        raise UsageError("compare: give two images A B, or --pairs PAIRS.csv --out RESULTS.csv")
    verifier = open_verifier(args)
    result = verifier.compare(args.a, args.b, face_policy=args.face)
    if result.missing_faces:  # no verdict: one line, nothing on stdout (--json too; docs/cli.md)
        named = " and ".join(f"{args.a if x == 'A' else args.b} (image {x})" for x in result.missing_faces)
        raise UsageError(f"no face found in {named}, so no verdict; use --face whole to compare the whole images")
    quality = _qualities(args, result) if verifier.face_mode else [None, None]
    for msg in result.notes:
        note(msg)
    best = result.faces_used is not None
    if args.json:
        out = {"distance": result.distance, "threshold": result.threshold, "same": result.same,
               "model": str(verifier.path), "device": verifier.device.type,
               "precision": verifier.precision_choice.name,
               "faces": [None if f is None else f.count for f in result.faces],
               "quality": [None if q is None else q.to_dict() for q in quality]}
        if best:
            out.update(faces_used=list(result.faces_used), face_distances=result.face_distances,
                       face_boxes=list(result.face_boxes))
        print(json.dumps(out))
    else:
        verdict = "SAME" if result.same else "DIFFERENT"
        print(f"distance  {result.distance:.4f}\nthreshold {result.threshold:.4f}\nverdict   {verdict}")
        if best:
            for label, k, boxes in zip("AB", result.faces_used, result.face_boxes):
                where = "the whole image's answer (no face)" if boxes[k] is None else f"box {boxes[k]}"
                print(f"face {label}    {k + 1} of {len(boxes)}, {where}")
        for label, q in zip("AB", quality):
            if q is not None and not q.good:
                print(f"quality {label} poor: {', '.join(q.reasons)}")
    return EXIT_OK


def run_pairs(args) -> int:
    """``compare --pairs PAIRS.csv --out RESULTS.csv [--resume | --overwrite]``."""
    if not (args.pairs and args.out):
        raise UsageError("compare: --pairs PAIRS.csv and --out RESULTS.csv go together")
    if args.a is not None or args.b is not None:
        raise UsageError("compare: give two images A B, or --pairs, not both")
    if args.face == "best":
        raise UsageError("compare --pairs takes --face largest or whole, not best")
    from siamgui.core.batch import plan_pairs, run_pairs as run_batch

    batch = plan_pairs(args.pairs, args.out, existing_mode(args))  # bad input refused before the model loads
    verifier = open_verifier(args)
    try:
        run_batch(verifier, batch, face_policy=args.face, threshold=args.threshold,
                  progress=batch_progress("comparing", "pairs", args.json))
    except KeyboardInterrupt:
        return interrupted_batch(batch)
    return finish_batch(args, batch, "rows", "pair(s) could not be compared")


def _qualities(args, result) -> list:
    """Per image the face's quality (FaceQuality), None where nothing was judged."""
    from siamgui.core.face.quality import assess_source

    return [assess_source(path, info) for path, info in zip((args.a, args.b), result.faces)]

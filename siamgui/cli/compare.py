"""``siamgui compare A B``: the distance and verdict for two images."""

from __future__ import annotations

import json

from siamgui.cli.common import EXIT_OK, finite_float, note, open_verifier


def add_parser(sub, shared) -> None:
    c = sub.add_parser("compare", help="compare two images", parents=shared("model", "device", "precision", "face",
                                                                            "json"))
    c.add_argument("a", help="first image")
    c.add_argument("b", help="second image")
    c.add_argument("--threshold", type=finite_float, help="override the model's threshold")
    c.set_defaults(func=run)


def run(args) -> int:
    verifier = open_verifier(args)
    result = verifier.compare(args.a, args.b, face_policy=args.face)
    for msg in result.notes:
        note(msg)
    if args.json:
        print(json.dumps({"distance": result.distance, "threshold": result.threshold, "same": result.same,
                          "model": str(verifier.path), "device": verifier.device.type,
                          "precision": verifier.precision_choice.name,
                          "faces": [None if f is None else f.count for f in result.faces]}))
    else:
        verdict = "SAME" if result.same else "DIFFERENT"
        print(f"distance  {result.distance:.4f}\nthreshold {result.threshold:.4f}\nverdict   {verdict}")
    return EXIT_OK

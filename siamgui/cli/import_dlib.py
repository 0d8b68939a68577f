"""``siamgui import-dlib MODEL.dat --out FILE.safetensors``: convert a dlib face network or shape predictor."""

from __future__ import annotations

import json
from pathlib import Path

from siamgui.cli.common import EXIT_OK, UsageError


def add_parser(sub, shared) -> None:
    p = sub.add_parser("import-dlib", help="convert a dlib .dat (face ResNet or shape predictor) to .safetensors")
    p.add_argument("model", metavar="MODEL.dat", help="dlib_face_recognition_resnet_model_v1.dat or "
                   "shape_predictor_5_face_landmarks.dat")
    p.add_argument("--out", required=True, metavar="FILE.safetensors")
    p.add_argument("--threshold", type=float, help="face network: threshold to store (default: the file's 0.6)")
    p.add_argument("--flip-average", action="store_true",
                   help="face network: embed each chip and its mirror image and average (stored in the metadata)")
    p.set_defaults(func=run)


def run(args) -> int:
    from siamgui.core.face.dlib_format import import_dlib_file

    out = Path(args.out)
    if out.suffix.lower() != ".safetensors":
        raise UsageError("--out must end in .safetensors")
    if not out.parent.exists():
        raise UsageError(f"The folder of --out does not exist: {out.parent}")
    kind, meta = import_dlib_file(args.model, out, threshold=args.threshold, flip_average=args.flip_average)
    if kind == "dnn":
        print(f"wrote {out}: {meta['architecture']['name']} {json.dumps(meta['architecture']['kwargs'])}, "
              f"threshold {meta['threshold']:.4f}, sha256 of source {meta['provenance']['sha256'][:16]}...")
    else:
        print(f"wrote {out}: shape predictor with {meta['points']} points, {meta['stages']} stages")
    return EXIT_OK

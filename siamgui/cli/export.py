"""``siamgui export MODEL.safetensors --onnx OUT.onnx``: the encoder as one ONNX file (docs/export.md)."""

from __future__ import annotations

import json

from siamgui.cli.common import EXIT_OK

DEFAULT_OPSET = 17  # siamgui.core.export.DEFAULT_OPSET (no torch import to parse)
OPSETS = range(11, 21)  # siamgui.core.export.OPSETS


def _opset(text: str) -> int:
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v not in OPSETS:
        raise argparse.ArgumentTypeError(f"choose {OPSETS.start}-{OPSETS.stop - 1}, got {v}")
    return v


def add_parser(sub, shared) -> None:
    p = sub.add_parser("export", help="export a model's encoder to ONNX (needs pip install 'siamgui[onnx]')",
                       parents=shared("json"))
    p.add_argument("model", metavar="MODEL.safetensors", help="the model file to export")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write (atomically)")
    p.add_argument("--opset", type=_opset, default=DEFAULT_OPSET,
                   help=f"ONNX opset, {OPSETS.start}-{OPSETS.stop - 1} (default {DEFAULT_OPSET})")
    p.add_argument("--no-flip", action="store_true",
                   help="leave the mirror-image averaging out of the graph even when the model asks for it "
                        "(half the work per image; embeddings then differ from siamgui's)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the onnxruntime parity check done before the file is written")
    p.set_defaults(func=run)


def run(args) -> int:
    from siamgui.core.export import export_onnx

    result = export_onnx(args.model, args.onnx, opset=args.opset, check=not args.no_check,
                         flip_average=False if args.no_flip else None)
    if args.json:
        print(json.dumps(result.to_dict()))
        return EXIT_OK
    check = ("not checked (onnxruntime is not installed)" if result.max_abs_diff is None
             else f"max |onnxruntime - PyTorch| {result.max_abs_diff:.2e}")
    print(f"wrote {result.path}: opset {result.opset}, input {result.input_shape}, "
          f"embedding {result.embedding_dim}, mirror averaging {'in the graph' if result.flip_average else 'off'}, "
          f"{result.size_bytes / 1e6:.1f} MB; {check}")
    return EXIT_OK

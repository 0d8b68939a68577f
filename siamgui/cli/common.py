"""What the commands share: usage errors, argument types, the shared options, model resolution, printers.

Only the standard library at import time: ``siamgui --help`` must not load torch.
"""

from __future__ import annotations

import argparse
import math
import sys

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2
DEVICES = ("auto", "cpu", "cuda", "mps")  # siamgui.core.device.DEVICE_CHOICES (no torch import to parse)
PRECISIONS = ("auto", "float32", "bfloat16")  # siamgui.core.device.PRECISION_CHOICES
PRECISION_HELP = ("the network's arithmetic: auto (default) is bfloat16 on CPUs that compute it natively "
                  "(AVX-512 BF16, AMX; faster, same LFW accuracy) and float32 elsewhere; float32 is exact")
FACE_HELP = ("face models: use the main face (default: the largest, or the most central of similar size) "
             "or the whole image")


class UsageError(Exception):
    """Bad command-line input: exit code 2 with one line on stderr."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + exits 2; we keep one line
        raise UsageError(f"{self.prog}: {message}")


def err(msg: str) -> None:
    """The one-line error every failure prints on stderr."""
    print(f"siamgui: error: {msg}", file=sys.stderr)


def note(msg: str) -> None:
    print(f"siamgui: note: {msg}", file=sys.stderr)


# -- argument types ------------------------------------------------------------------------
def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def fraction(text: str) -> float:
    v = finite_float(text)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {v}")
    return v


# -- options several commands take -----------------------------------------------------------
class SharedOptions:
    """The common options as argparse parent parsers: ``parents=shared("model", "json")``."""

    def __init__(self) -> None:
        self._parents: dict[str, argparse.ArgumentParser] = {}
        self._new("model").add_argument("--model", help="model file (.safetensors); default: the bundled model")
        self._new("device").add_argument("--device", choices=DEVICES, default="auto")
        self._new("precision").add_argument("--precision", choices=PRECISIONS, default="auto",
                                            help=PRECISION_HELP)
        self._new("face").add_argument("--face", choices=("largest", "whole"), default="largest", help=FACE_HELP)
        self._new("json").add_argument("--json", action="store_true", help="print one JSON object")

    def _new(self, name: str) -> argparse.ArgumentParser:
        self._parents[name] = p = argparse.ArgumentParser(add_help=False)
        return p

    def __call__(self, *names: str) -> list[argparse.ArgumentParser]:
        return [self._parents[n] for n in names]


# -- the model and the engine ------------------------------------------------------------------
def model_arg(args) -> str:
    """``--model``, or the bundled model when none was given."""
    from siamgui.core.resources import bundled_model_path, has_bundled_model

    if args.model:
        return args.model
    if not has_bundled_model():
        raise UsageError(f"no --model given and no bundled model at {bundled_model_path()}")
    return str(bundled_model_path())


def open_verifier(args):
    """A Verifier for ``--model/--device/--precision`` (and ``--threshold`` where the command has it)."""
    from siamgui.core.verifier import Verifier

    verifier = Verifier(model_arg(args), device=args.device, threshold=getattr(args, "threshold", None),
                        precision=args.precision)
    if verifier.device_choice.reason:
        note(verifier.device_choice.reason)
    return verifier


def progress(label: str, quiet: bool):
    """A ``progress(done, total)`` callback that draws ``label done/total`` on a terminal's stderr."""
    tty = sys.stderr.isatty() and not quiet

    def cb(done: int, total: int) -> None:
        if tty and total:
            print(f"\r{label} {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    return cb

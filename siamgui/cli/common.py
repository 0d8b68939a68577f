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


# -- batch runs (``compare --pairs``, ``gallery identify --out``) -------------------------------------
def add_batch_options(p, what: str) -> None:
    """``--out`` and what to do with a results file that exists."""
    p.add_argument("--out", metavar="RESULTS.csv", help=f"write one CSV row per {what} (batch mode)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true",
                   help="continue an existing --out file: skip the rows it holds, compute the rest")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def existing_mode(args) -> str:
    return "resume" if args.resume else "overwrite" if args.overwrite else "refuse"


def batch_progress(label: str, unit: str, quiet: bool, every: float = 1.0):
    """A ``progress(done, total)`` callback for batch runs: on stderr every ``every`` seconds, a
    redrawn line on a terminal, else a line every ten ``every`` (logs stay short); a run shorter
    than that prints nothing."""
    import time

    tty = sys.stderr.isatty()
    gap = every if tty else 10 * every
    state: dict = {"start": None, "t0": 0.0, "last": 0.0, "shown": False}

    def cb(done: int, total: int) -> None:
        now = time.perf_counter()
        if state["start"] is None:  # the rate counts this run's rows, not resumed ones
            state.update(start=done, t0=now, last=now)
            return
        if quiet or (now - state["last"] < gap and not (done >= total and state["shown"])):
            return
        state.update(last=now, shown=True)
        rate = (done - state["start"]) / max(now - state["t0"], 1e-9)
        left = f", about {(total - done) / rate:.0f} s left" if rate > 0 and done < total else ""
        text = f"{label}: {done}/{total} {unit} ({rate:.1f}/s{left})"
        print("\r" + text if tty else text, end="" if tty and done < total else "\n", file=sys.stderr, flush=True)

    return cb


def finish_batch(args, batch, unit: str, what_failed: str) -> int:
    """The summary of a finished batch run: a line on stdout (or the JSON object), a note for errors."""
    import json

    if batch.errors and not args.json:
        note(f"{batch.errors} {what_failed}; the error column of {batch.out} says why")
    if args.json:
        print(json.dumps(batch.to_dict()))
    else:
        resumed = f", {batch.resumed} kept from before" if batch.resumed else ""
        print(f"wrote {batch.written} {unit} to {batch.out} ({batch.done} of {batch.total}{resumed}; "
              f"{batch.errors} with an error; {batch.images} images read in {batch.seconds:.1f} s)")
    return EXIT_OK


def interrupted_batch(batch) -> int:
    """Ctrl-C during a batch run: one line saying what is kept and how to go on; exit 130."""
    err(f"interrupted: {batch.rows_in_file()} of {batch.total} rows are in {batch.out}; "
        "run the same command with --resume to continue")
    return 130

"""Command line: the same engine as the GUI, scriptable.

Exit codes: 0 success, 2 bad input or usage (one line on stderr, no
traceback), 1 unexpected internal error. Heavy modules (torch, Qt) are
imported inside the commands that need them, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2
DEVICES = ("auto", "cpu", "cuda", "mps")  # siamgui.core.device.DEVICE_CHOICES (no torch import to parse)
PRECISIONS = ("auto", "float32", "bfloat16")  # siamgui.core.device.PRECISION_CHOICES
PRECISION_HELP = ("the network's arithmetic: auto (default) is bfloat16 on CPUs that compute it natively "
                  "(AVX-512 BF16, AMX; faster, same LFW accuracy) and float32 elsewhere; float32 is exact")
PRESETS = ("face", "signature", "generic")


class UsageError(Exception):
    """Bad command-line input: exit code 2 with one line on stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + exits 2; we keep one line
        raise UsageError(f"{self.prog}: {message}")


def _err(msg: str) -> None:
    print(f"siamgui: error: {msg}", file=sys.stderr)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def _fraction(text: str) -> float:
    v = _finite_float(text)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {v}")
    return v


def _model_arg(args) -> str:
    from siamgui.core.resources import bundled_model_path, has_bundled_model

    if args.model:
        return args.model
    if not has_bundled_model():
        raise UsageError(f"no --model given and no bundled model at {bundled_model_path()}")
    return str(bundled_model_path())


def _device_note(verifier) -> None:
    if verifier.device_choice.reason:
        print(f"siamgui: note: {verifier.device_choice.reason}", file=sys.stderr)


# -- compare ---------------------------------------------------------------------------
def cmd_compare(args) -> int:
    from siamgui.core.verifier import Verifier

    verifier = Verifier(_model_arg(args), device=args.device, threshold=args.threshold, precision=args.precision)
    _device_note(verifier)
    result = verifier.compare(args.a, args.b, face_policy=args.face)
    for note in result.notes:
        print(f"siamgui: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"distance": result.distance, "threshold": result.threshold, "same": result.same,
                          "model": str(verifier.path), "device": verifier.device.type,
                          "precision": verifier.precision_choice.name,
                          "faces": [None if f is None else f.count for f in result.faces]}))
    else:
        verdict = "SAME" if result.same else "DIFFERENT"
        print(f"distance  {result.distance:.4f}\nthreshold {result.threshold:.4f}\nverdict   {verdict}")
    return EXIT_OK


# -- train -----------------------------------------------------------------------------
def _fmt_time(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def cmd_train(args) -> int:
    from siamgui.core.training import Epoch, Finished, Loading, Log, Step, TrainConfig, TrainControl, train

    out = Path(args.out)
    if out.suffix.lower() != ".safetensors":
        raise UsageError("--out must end in .safetensors")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder")
    if not out.parent.exists():
        raise UsageError(f"the folder of --out does not exist: {out.parent}")
    _check_writable(out)  # before training, not after an hour of it
    cfg = TrainConfig(
        data_dir=args.data_dir, preset=args.preset, arch=args.arch, loss=args.loss, margin=args.margin,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, image_size=args.image_size,
        embedding_dim=args.embedding_dim, val_split=args.val_split, seed=args.seed, device=args.device,
        pairs_per_epoch=args.pairs_per_epoch, init=args.init, freeze_fraction=args.freeze,
        patience=args.patience, distance=args.distance,
        time_budget_s=args.max_minutes * 60.0 if args.max_minutes else None, channels_last=args.channels_last,
    )
    try:
        log_fh = open(args.log_json, "w", encoding="utf-8") if args.log_json else None
    except OSError as exc:
        raise UsageError(f"cannot write --log-json {args.log_json}: {exc.strerror or exc}") from None
    tty = sys.stderr.isatty()
    control = TrainControl()
    result = None
    last_line = 0.0
    try:
        for ev in train(cfg, control):
            if log_fh is not None and not isinstance(ev, Finished):
                log_fh.write(json.dumps({"event": type(ev).__name__.lower(), **vars(ev)}) + "\n")
                log_fh.flush()
            if isinstance(ev, Log):
                print(f"siamgui: {ev.level}: {ev.message}", file=sys.stderr)
            elif isinstance(ev, Loading):
                now = time.monotonic()
                if tty and (now - last_line > 0.2 or ev.done == ev.total):
                    last_line = now
                    print(f"\rpreparing images {ev.done}/{ev.total}", end="", file=sys.stderr)
                    if ev.done == ev.total:
                        print(file=sys.stderr)
            elif isinstance(ev, Step):
                now = time.monotonic()
                if tty and (now - last_line > 0.2 or ev.step == ev.steps_per_epoch):
                    last_line = now
                    frac = ev.global_step / ev.total_steps
                    bar = "#" * int(frac * 24)
                    print(f"\repoch {ev.epoch}/{ev.epochs} [{bar:<24}] loss {ev.running_loss:.4f} "
                          f"{ev.pairs_per_s:,.0f} pairs/s ETA {_fmt_time(ev.eta_s)}  ", end="", file=sys.stderr)
            elif isinstance(ev, Epoch):
                if tty:
                    print(file=sys.stderr)
                val = (f"val loss {ev.val_loss:.4f} AUC {ev.val_auc:.4f} EER {ev.val_eer:.4f}"
                       if ev.val_auc is not None else "no validation")
                print(f"epoch {ev.epoch}/{ev.epochs}: train loss {ev.train_loss:.4f}, {val}"
                      f"{' (best)' if ev.is_best else ''}", file=sys.stderr)
            elif isinstance(ev, Finished):
                result = ev.result
                if ev.reason:
                    print(f"siamgui: {ev.reason}", file=sys.stderr)
    except KeyboardInterrupt:
        control.cancel()
        _err(f"interrupted; nothing was written to {out}")
        return 130
    finally:
        if log_fh is not None:
            log_fh.close()
    if result is None:
        _err(f"training stopped before a model could be kept; nothing was written to {out}")
        return EXIT_USAGE
    if args.threshold_point != "best-accuracy":
        result.choose_threshold(args.threshold_point, args.target_far)
    _save_or_rescue(result, out)
    m = result.meta["metrics"]
    print(f"saved {out}: threshold {result.threshold:.4f}, validation AUC {m['auc']:.4f}, EER {m['eer']:.4f}, "
          f"accuracy {m['accuracy']:.4f} ({m['evaluated_on']})")
    return EXIT_OK


def _check_writable(out: Path) -> None:
    """Refuse an --out folder that cannot take a new file (read-only, no permission)."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".check", dir=out.parent)
    except OSError as exc:
        raise UsageError(f"cannot write to the folder of --out {out.parent}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def _save_or_rescue(result, out: Path) -> None:
    """Save; when that fails (e.g. the disk filled up), keep the model in the app's data folder."""
    from siamgui.core.errors import ModelFileError, SiamguiError
    from siamgui.core.resources import user_data_dir

    try:
        result.save(out)
        return
    except ModelFileError as exc:
        reason = str(exc).split(". The trained model is still in memory")[0]
        rescue = user_data_dir() / "unsaved" / f"{out.stem}-{time.strftime('%Y%m%d-%H%M%S')}.safetensors"
        try:
            rescue.parent.mkdir(parents=True, exist_ok=True)
            result.save(rescue)
        except (OSError, SiamguiError):
            raise ModelFileError(f"{reason}; the trained model could not be kept.") from None
        raise ModelFileError(f"{reason}; the trained model was saved to {rescue} instead.") from None


# -- evaluate ----------------------------------------------------------------------------
def cmd_evaluate(args) -> int:
    import numpy as np

    from siamgui.core import evaluation as ev
    from siamgui.core.datasets import fixed_pairs, read_lfw_pairs, read_pairs_csv, scan_folder
    from siamgui.core.errors import DatasetError
    from siamgui.core.verifier import Verifier

    if args.one_shot:  # N-way K-shot episodes (siamgui.core.gallery.oneshot)
        from siamgui.gallery_cli import cmd_evaluate_one_shot

        return cmd_evaluate_one_shot(args)
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
    verifier = Verifier(_model_arg(args), device=args.device, threshold=args.threshold, precision=args.precision)
    _device_note(verifier)
    tty = sys.stderr.isatty() and not args.json

    def progress(done, total):
        if tty:
            print(f"\rembedding images {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    d = verifier.pair_distances([(a, b) for a, b, _ in pairs], progress=progress)
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


# -- info --------------------------------------------------------------------------------
def cmd_info(args) -> int:
    from siamgui.core.modelfile import load_model, read_metadata

    path = args.model or _model_arg(args)
    if Path(path).suffix.lower() in (".pt", ".pth"):
        meta = load_model(path).meta
    else:
        meta = read_metadata(path)
    if args.json:
        print(json.dumps(meta, indent=2))
        return EXIT_OK
    print(f"file          {path}")
    print(f"name          {meta.get('name') or '-'}")
    arch = meta["architecture"]
    print(f"architecture  {arch['name']} {json.dumps(arch.get('kwargs', {}))}")
    p = meta["preprocess"]
    print(f"preset        {p['preset']} ({p['channels']}x{p['image_size']}x{p['image_size']})")
    print(f"distance      {meta.get('distance')}   threshold {meta['threshold']:.4f}")
    if meta.get("loss"):
        print(f"loss          {meta['loss']} (margin {meta.get('margin')})")
    metrics = meta.get("metrics") or {}
    if metrics:
        print("metrics       " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in metrics.items() if not isinstance(v, (dict, list))))
    tr = meta.get("training") or {}
    if tr:
        data = tr.get("data", {})
        print(f"training      {data.get('classes', '?')} classes, {data.get('images', '?')} images; "
              f"{tr.get('epochs_run', '?')} epochs (best {tr.get('best_epoch', '?')}), "
              f"{tr.get('duration_s', '?')} s on {tr.get('device', '?')}")
    for k, v in (meta.get("provenance") or {}).items():
        print(f"provenance    {k}: {v}")
    print(f"created       {meta.get('created', '-')}")
    return EXIT_OK


# -- gui -----------------------------------------------------------------------------------
def cmd_gui(args) -> int:
    try:
        from siamgui.gui.app import run_gui
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("siamgui.gui"):
            raise UsageError("the desktop window is not available in this build yet; use the commands "
                             "(siamgui --help)") from None
        raise
    return run_gui(args)


def build_parser() -> argparse.ArgumentParser:
    from siamgui import __version__

    p = _Parser(prog="siamgui", description="Image verification with Siamese networks. "
                "With no command, opens the desktop app.")
    p.add_argument("--version", action="version", version=f"siamgui {__version__}")
    p.add_argument("--camera", help="camera source for the app: device index, video file or URL")
    p.add_argument("--model", help="model file for the app (default: the bundled model)")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    c = sub.add_parser("compare", help="compare two images")
    c.add_argument("a", help="first image")
    c.add_argument("b", help="second image")
    c.add_argument("--model", help="model file (.safetensors); default: the bundled model")
    c.add_argument("--device", choices=DEVICES, default="auto")
    c.add_argument("--threshold", type=_finite_float, help="override the model's threshold")
    c.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    c.add_argument("--face", choices=("largest", "whole"), default="largest",
                   help="face models: use the main face (default: the largest, or the most central "
                        "of similar size) or the whole image")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_compare)

    t = sub.add_parser("train", help="train a model on a folder (one sub-folder per class)")
    t.add_argument("data_dir", metavar="DATA_DIR")
    t.add_argument("--out", required=True, help="output model file (.safetensors)")
    t.add_argument("--preset", choices=PRESETS, default="generic")
    t.add_argument("--arch", help="encoder architecture (default: the preset's)")
    t.add_argument("--loss", choices=("contrastive", "triplet"),
                   help="default: the preset's (triplet for face, contrastive otherwise)")
    t.add_argument("--margin", type=_finite_float)
    t.add_argument("--distance", choices=("euclidean", "cosine"), default="euclidean")
    t.add_argument("--epochs", type=_positive_int)
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--lr", type=_finite_float)
    t.add_argument("--image-size", type=_positive_int)
    t.add_argument("--embedding-dim", type=_positive_int)
    t.add_argument("--val-split", type=_fraction, default=0.2, help="fraction of classes held out (default 0.2)")
    t.add_argument("--pairs-per-epoch", type=_positive_int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", choices=DEVICES, default="auto")
    t.add_argument("--init", help="start from 'bundled' or a model file (fine-tuning); default: from scratch")
    t.add_argument("--freeze", type=_fraction, default=0.0,
                   help="fine-tuning: fraction of the encoder (input side) to keep frozen")
    t.add_argument("--patience", type=_positive_int, help="early stop after N epochs without EER gain")
    t.add_argument("--max-minutes", type=_finite_float,
                   help="wall-clock budget of the training loop; the learning rate schedule follows it")
    t.add_argument("--channels-last", action="store_true", help="CPU: channels-last convolutions (faster)")
    t.add_argument("--threshold-point", choices=("best-accuracy", "eer", "far"), default="best-accuracy")
    t.add_argument("--target-far", type=_fraction, default=0.01)
    t.add_argument("--log-json", help="write one JSON line per event to this file")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a model on labelled pairs")
    e.add_argument("data_dir", nargs="?", metavar="DATA_DIR", help="a class folder (random balanced pairs)")
    e.add_argument("--model", help="model file; default: the bundled model")
    e.add_argument("--pairs", help="CSV with header a,b,same")
    e.add_argument("--lfw-pairs", help="an LFW pairs file (pairsDevTest.txt, pairs.txt)")
    e.add_argument("--root", help="image folder for --lfw-pairs")
    e.add_argument("--num-pairs", type=_positive_int, default=2000, help="pairs drawn from DATA_DIR")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", choices=DEVICES, default="auto")
    e.add_argument("--threshold", type=_finite_float, help="override the model's threshold")
    e.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    e.add_argument("--json", action="store_true")
    e.add_argument("--one-shot", metavar="DATA_DIR", help="N-way K-shot identification episodes on a class folder")
    e.add_argument("--way", type=_positive_int, default=5, help="--one-shot: classes per episode (default 5)")
    e.add_argument("--shots", type=_positive_int, default=1, help="--one-shot: support images per class (default 1)")
    e.add_argument("--episodes", type=_positive_int, default=1000, help="--one-shot: episodes (default 1000)")
    e.add_argument("--rank", choices=("min", "mean"), default="min",
                   help="--one-shot: class distance: nearest support image (min) or mean of them")
    e.set_defaults(func=cmd_evaluate)

    i = sub.add_parser("info", help="show a model file's metadata")
    i.add_argument("model", nargs="?", help="model file; default: the bundled model")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    g = sub.add_parser("gui", help="open the desktop app (scriptable for screenshots)")
    g.add_argument("images", nargs="*", metavar="IMAGE", help="up to two images for slots A and B")
    g.add_argument("--camera", help="camera source: device index, video file or URL")
    g.add_argument("--model", help="model file; default: the bundled model")
    g.add_argument("--train", metavar="DATA_DIR", help="open the Train tab on this folder and start training")
    g.add_argument("--epochs", type=_positive_int, help="epochs for --train")
    g.add_argument("--screenshot", metavar="OUT.png", help="save a picture of the window when ready, then exit")
    g.set_defaults(func=cmd_gui)
    _register_extra_commands(sub)
    return p


def _register_extra_commands(sub) -> None:
    """Commands that live in their own modules (each module adds its sub-parser)."""
    import importlib

    for mod_name in ("siamgui.core.face.dlib_format", "siamgui.gallery_cli"):
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:
                continue
            raise
        mod.add_cli_commands(sub, _Parser)


def _keep_torch_cache_in_app_folder() -> None:
    """torch creates its compiler cache folder ($TMPDIR/torchinductor_<user>) whenever an optimizer is
    built; keep it in the app's own cache folder instead, so nothing is left in the temporary folder."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        base = os.environ.get("SIAMGUI_CACHE_DIR")
        if not base:
            import platformdirs

            base = platformdirs.user_cache_dir("siamgui", appauthor=False)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(base, "torch")


def _tolerant_stdout() -> None:
    """File names that are not valid UTF-8 (POSIX allows them) reach us as surrogates; a strict stdout
    (the usual en_US.UTF-8 desktop) would fail on printing one *after* the work was done. stdout writes
    them back as the original bytes, stderr escapes them (as Python's own stderr does)."""
    for stream, errors in ((sys.stdout, "surrogateescape"), (sys.stderr, "backslashreplace")):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors=errors)
            except (ValueError, OSError):  # a stream that cannot change: leave it
                pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    _keep_torch_cache_in_app_folder()
    _tolerant_stdout()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            args.images, args.train, args.epochs, args.screenshot = [], None, None, None
            return cmd_gui(args)
        return int(args.func(args) or 0)
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001
        from siamgui.core.errors import SiamguiError

        if isinstance(exc, SiamguiError):
            _err(str(exc))
            return EXIT_USAGE
        if os.environ.get("SIAMGUI_DEBUG"):
            raise
        _err(f"internal error: {type(exc).__name__}: {exc} (set SIAMGUI_DEBUG=1 for a traceback)")
        return EXIT_INTERNAL

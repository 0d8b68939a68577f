"""``siamgui train DATA_DIR --out M.safetensors``: train a model, with progress on stderr.

Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) every process is one rank of a data-parallel job
(docs/distributed.md): rank 0 reports and writes ``--out``; the others print only errors.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from siamgui.cli.common import EXIT_OK, EXIT_USAGE, UsageError, err, finite_float, fraction, positive_int

PRESETS = ("face", "signature", "generic")


def add_parser(sub, shared) -> None:
    t = sub.add_parser("train", help="train a model on a folder (one sub-folder per class)", parents=shared("device"))
    t.add_argument("data_dir", metavar="DATA_DIR")
    t.add_argument("--out", required=True, help="output model file (.safetensors)")
    t.add_argument("--preset", choices=PRESETS, default="generic")
    t.add_argument("--arch", help="encoder architecture (default: the preset's)")
    t.add_argument("--loss", choices=("contrastive", "triplet"),
                   help="default: the preset's (triplet for face, contrastive otherwise)")
    t.add_argument("--margin", type=finite_float)
    t.add_argument("--distance", choices=("euclidean", "cosine"), default="euclidean")
    t.add_argument("--epochs", type=positive_int,
                   help="train exactly this many epochs (default: automatic, from the data size and the time "
                        "budget, with an early stop; docs/training.md)")
    t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--lr", type=finite_float)
    t.add_argument("--image-size", type=positive_int)
    t.add_argument("--embedding-dim", type=positive_int)
    t.add_argument("--val-split", type=fraction, default=None,
                   help="fraction of classes held out for validation (default: 0.2 of a folder with 20+ classes, "
                        "else none: every class is trained on; AUTO_* in core/training/config.py)")
    t.add_argument("--pairs-per-epoch", type=positive_int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--init", help="start from 'bundled' or a model file (fine-tuning); default: from scratch")
    t.add_argument("--freeze", type=fraction, default=0.0,
                   help="fine-tuning: fraction of the encoder (input side) to keep frozen")
    t.add_argument("--patience", type=positive_int, help="early stop after N epochs without EER gain")
    t.add_argument("--hard-classes", type=fraction,
                   help="triplet loss: share of each batch's classes chosen as look-alikes of the others "
                        "(class-level hard mining; default: the preset's)")
    t.add_argument("--max-minutes", type=finite_float,
                   help="wall-clock budget of the training loop (default without --epochs: 5); training stops "
                        "after the batch that spends it, then calibrates and saves; the learning rate follows it")
    t.add_argument("--channels-last", action="store_true", help="CPU: channels-last convolutions (faster)")
    t.add_argument("--threshold-point", choices=("best-accuracy", "eer", "far"), default="best-accuracy")
    t.add_argument("--target-far", type=fraction, default=0.01)
    t.add_argument("--log-json", help="write one JSON line per event to this file")
    t.set_defaults(func=run)


def run(args) -> int:
    from siamgui.core.training import Epoch, Finished, Loading, Log, Step, TrainConfig, TrainControl, time_left, train
    from siamgui.core.training.distributed import env_from_environ

    distributed = env_from_environ()
    main = distributed is None or distributed.is_main
    out = Path(args.out)
    if out.suffix.lower() != ".safetensors":
        raise UsageError("--out must end in .safetensors")
    if main:  # the other ranks write nothing (torchrun stops them when rank 0 exits with an error)
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
        patience=args.patience, distance=args.distance, hard_classes=args.hard_classes,
        time_budget_s=args.max_minutes * 60.0 if args.max_minutes else None, channels_last=args.channels_last,
    )
    try:
        log_fh = open(args.log_json, "w", encoding="utf-8") if (args.log_json and main) else None
    except OSError as exc:
        raise UsageError(f"cannot write --log-json {args.log_json}: {exc.strerror or exc}") from None
    tty = sys.stderr.isatty()
    control = TrainControl()
    result = None
    last_line = 0.0
    try:
        for ev in train(cfg, control, distributed=distributed):
            if not main:
                continue
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
                          f"{ev.pairs_per_s:,.0f} pairs/s, {time_left(ev.eta_s)}  ", end="", file=sys.stderr)
            elif isinstance(ev, Epoch):
                if tty:
                    print(file=sys.stderr)
                val = (f"val loss {ev.val_loss:.4f} AUC {ev.val_auc:.4f} EER {ev.val_eer:.4f}"
                       if ev.val_auc is not None else "no validation")
                left = f"; {time_left(ev.eta_s)}" if ev.eta_s else ""
                print(f"epoch {ev.epoch}/{ev.epochs}: train loss {ev.train_loss:.4f}, {val}"
                      f"{' (best)' if ev.is_best else ''}{left}", file=sys.stderr)
            elif isinstance(ev, Finished):
                result = ev.result
                if ev.reason:
                    print(f"siamgui: {ev.reason}", file=sys.stderr)
    except KeyboardInterrupt:
        control.cancel()
        err(f"interrupted; nothing was written to {out}")
        return 130
    finally:
        if log_fh is not None:
            log_fh.close()
    if not main:
        return EXIT_OK
    if result is None:
        err(f"training stopped before a model could be kept; nothing was written to {out}")
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

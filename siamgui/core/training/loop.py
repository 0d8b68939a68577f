"""The training job as a generator of progress events, in phases.

``for event in train(config, control): ...`` runs the whole job: the model
(built or loaded, partly frozen), the data (scanned, split by class, every
image prepared once), the fit (:mod:`.fit`: epochs of seeded batches from the
objective's sampler, validation, best weights) and the result (threshold
calibrated on the validation classes). The GUI runs it in a worker thread,
the CLI in the main thread.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from siamgui.core import evaluation as ev
from siamgui.core.datasets import FolderDataset
from siamgui.core.device import select_device
from siamgui.core.distances import get_distance
from siamgui.core.errors import SiamguiError
from siamgui.core.evaluation.calibration import calibration_table
from siamgui.core.modelfile import make_meta
from siamgui.core.models import SiameseNetwork, build_encoder
from siamgui.core.preprocess import PreprocessSpec, Preprocessor, preset_spec
from siamgui.core.training import data as data_phase
from siamgui.core.training.config import TrainConfig
from siamgui.core.training.data import TrainingData
from siamgui.core.training.distributed import DistEnv, Distributed
from siamgui.core.training.events import Epoch, Finished, Loading, Log, Step, TrainControl, TrainResult
from siamgui.core.training.fit import Fit, FitOutcome
from siamgui.core.training.objective import make_objective


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def train(config: TrainConfig, control: TrainControl | None = None, dataset: FolderDataset | None = None,
          distributed: DistEnv | None = None) -> Iterator[Log | Loading | Step | Epoch | Finished]:
    """Run a training job, yielding events; the last one is always :class:`Finished`.

    Raises :class:`SiamguiError` (with a readable message) for unusable input and
    :class:`DeviceError` for out-of-memory; nothing is written to disk here.
    Closing the generator early (``.close()``, or dropping it) cancels the job,
    so no background decoding outlives it.

    ``distributed`` (:func:`.distributed.env_from_environ`): this process is one rank of a
    torchrun job; it joins the process group, trains data-parallel and leaves the group at
    the end. Only rank 0's :class:`Finished` carries the result; the others' carry None.
    """
    control = control or TrainControl()
    group = None
    try:
        cfg = config.resolved()
        seed_everything(cfg.seed)  # before the group: every rank builds the same initial weights
        dev = select_device(cfg.device)
        if dev.reason and (distributed is None or distributed.is_main):
            yield Log("warning", dev.reason)
        device = dev.device
        if distributed is not None:
            group = Distributed(distributed, dev.device)
            device = group.device
        yield from _train(cfg, control, dataset, device, group)
    except GeneratorExit:
        control.cancel()
        raise
    finally:
        if group is not None:
            group.close()


def train_to_end(config: TrainConfig, distributed: DistEnv | None = None) -> tuple[list[Step], TrainResult | None]:
    """:func:`train` run to its end without reporting: its :class:`Step` events and the result
    (None when the job kept nothing, or on a rank other than 0)."""
    steps, result = [], None
    for event in train(config, distributed=distributed):
        if isinstance(event, Step):
            steps.append(event)
        elif isinstance(event, Finished):
            result = event.result
    return steps, result


def _train(cfg: TrainConfig, control: TrainControl, dataset: FolderDataset | None, device: torch.device,
           group: Distributed | None):
    t_start = time.perf_counter()
    main = group is None or group.is_main
    ds = yield from data_phase.scan(cfg, dataset)
    model = yield from _model(cfg)
    preprocessor = Preprocessor(model.spec)
    distance = get_distance(model.distance)
    data = yield from data_phase.load(cfg, ds, preprocessor, control)
    if data is None:
        yield Finished(None, cancelled=True, reason="Stopped before the first epoch finished.")
        return
    objective = make_objective(cfg.loss, cfg.margin, distance)
    fit = Fit(cfg, control, model.network, preprocessor, objective, distance, data, device, t_start, group)
    outcome = yield from fit.run()
    if group is not None:
        group.unwrap(model.network)
        if not main:
            yield Finished(None, cancelled=False, reason="")
            return
    yield from _result(cfg, model, data, outcome, fit.val_same, device, t_start,
                       group.record(int(cfg.batch_size)) if group is not None else None)


# -- model ---------------------------------------------------------------------------------
@dataclass
class _Model:
    network: SiameseNetwork
    spec: PreprocessSpec
    #: {"name", "kwargs"} as the model file records it.
    arch: dict[str, Any]
    distance: str
    #: "scratch", "bundled", or the name of the model file fine-tuned.
    init_label: str


def _model(cfg: TrainConfig) -> Iterator[Log]:
    """The network to train, built from the config or loaded to fine-tune, partly frozen; returns a _Model."""
    if cfg.fine_tuning:
        from siamgui.core.modelfile import load_model
        from siamgui.core.resources import bundled_model_path

        base = load_model(bundled_model_path() if cfg.init == "bundled" else Path(cfg.init))
        init_label = "bundled" if cfg.init == "bundled" else Path(cfg.init).name
        model = _Model(base.network, base.spec, base.meta["architecture"], base.distance, init_label)
        yield Log("info", f"Fine-tuning from {init_label} ({model.arch['name']}, input {model.spec.image_size}px).")
    else:
        spec = preset_spec(cfg.preset, cfg.image_size)
        kwargs = dict(cfg.arch_kwargs or {})
        kwargs.setdefault("in_channels", spec.channels)
        kwargs.setdefault("embedding_dim", cfg.embedding_dim)
        try:
            network = SiameseNetwork(build_encoder(cfg.arch, **kwargs))
        except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: torch could not allocate it
            raise SiamguiError(f"Cannot build architecture {cfg.arch!r}: {str(exc).splitlines()[0][:200]}") from None
        model = _Model(network, spec, {"name": cfg.arch, "kwargs": kwargs}, cfg.distance, "scratch")
    if cfg.freeze_fraction > 0:
        n = _freeze(model.network.encoder, cfg.freeze_fraction)
        yield Log("info", f"Froze the first {n} parameter tensors of the encoder.")
    return model


def _freeze(encoder: torch.nn.Module, fraction: float) -> int:
    params = list(encoder.parameters())
    n = int(len(params) * fraction)
    for p in params[:n]:
        p.requires_grad_(False)
    return n


# -- result --------------------------------------------------------------------------------
def _result(cfg: TrainConfig, model: _Model, data: TrainingData, outcome: FitOutcome, val_same: np.ndarray,
            device: torch.device, t_start: float, distributed: dict | None = None) -> Iterator[Log | Finished]:
    """Restore the best weights, calibrate the threshold on validation, and finish with a TrainResult."""
    timing = data.timing
    loop_s = timing["data_s"] + timing["compute_s"]
    if loop_s > 0:
        timing["pairs_per_s"] = round(timing["pairs"] / loop_s, 1)
        yield Log("info", f"Time: preparing images {timing['prepare_s']:.0f} s, batches (sampling + augmentation) "
                          f"{timing['data_s']:.0f} s, forward/backward {timing['compute_s']:.0f} s, validation "
                          f"{timing['validate_s']:.0f} s; {timing['pairs_per_s']:.0f} pairs/s.")
    best = outcome.best
    if best.state is None:
        yield Finished(None, cancelled=True, reason="Stopped before the first epoch finished; nothing to keep.")
        return
    network = model.network
    network.encoder.load_state_dict(best.state)
    network.to("cpu", memory_format=torch.contiguous_format).eval()
    for p in network.parameters():
        p.requires_grad_(True)
    threshold, _ = ev.best_threshold(best.d, val_same)
    metrics = ev.evaluate(best.d, val_same, threshold).to_dict()
    metrics.update(operating_point="best-accuracy", evaluated_on="validation classes" if data.val_ds is not None
                   else "training classes (no held-out classes)")
    meta = make_meta(architecture=model.arch, preprocess=model.spec, distance=model.distance, threshold=threshold,
                     margin=cfg.margin, loss=cfg.loss, metrics=metrics, name=f"{Path(cfg.data_dir).name} ({cfg.preset})",
                     training=_training_record(cfg, model, data, outcome, device, t_start, distributed),
                     calibration=calibration_table(best.d, val_same, metrics["evaluated_on"],
                                                   extra=[threshold]).to_dict())
    result = TrainResult(network, meta, best.d, val_same, outcome.history, outcome.stopped)
    yield Finished(result, cancelled=False, reason="Stopped by the user." if outcome.stopped else "")


def _training_record(cfg: TrainConfig, model: _Model, data: TrainingData, outcome: FitOutcome,
                     device: torch.device, t_start: float, distributed: dict | None = None) -> dict[str, Any]:
    """What the model file records about how it was trained."""
    train_ds, val_ds = data.train_ds, data.val_ds
    return {
        "data": {"folder": Path(cfg.data_dir).name, **data.summary.to_dict(), "root": None,
                 "train_classes": len(train_ds.classes), "train_images": len(train_ds),
                 "val_classes": len(val_ds.classes) if val_ds else 0,
                 "val_images": len(val_ds) if val_ds else 0, "decode_failures": len(data.bad)},
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("data_dir",)},
        "init": model.init_label,
        "epochs_run": len(outcome.history), "best_epoch": outcome.best.epoch, "stopped_early": outcome.stopped,
        "start_validation": outcome.start_metrics,
        "duration_s": round(time.perf_counter() - t_start, 1), "device": device.type,
        "timing": {k: round(v, 4) if isinstance(v, float) else v for k, v in data.timing.items()},
        "history": outcome.history,
        **({"distributed": distributed} if distributed else {}),
    }

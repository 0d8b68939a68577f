"""The training loop, as a generator of progress events.

``for event in train(config, control): ...`` runs the whole job: scan the
folder, split by class, decode and prepare every image once (cached in memory
as uint8), then epochs of seeded pair (or triplet) batches with batched
augmentation, validation on held-out classes after each epoch, best-by-
validation weights, and threshold calibration at the end. Between batches it
honours :class:`TrainControl` (pause, resume, cancel), so the GUI can run it
in a worker thread and the CLI in the main thread.
"""

from __future__ import annotations

import copy
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from siamgui.core import evaluation as ev
from siamgui.core.face.chips import ChipCache, cache_enabled
from siamgui.core.datasets import FolderDataset, PairSampler, TripletSampler, fixed_pairs, scan_folder, split_by_class
from siamgui.core.device import select_device
from siamgui.core.distances import get_distance
from siamgui.core.errors import DatasetError, DeviceError, ImageError, SiamguiError
from siamgui.core.losses import ContrastiveLoss, TripletLoss
from siamgui.core.modelfile import make_meta, save_model
from siamgui.core.models import SiameseNetwork, build_encoder, count_parameters
from siamgui.core.preprocess import Augmenter, Preprocessor, preset_spec

LOSSES = ("contrastive", "triplet")

#: Defaults per preset; the training-recipe work tunes these.
PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    # face: batch-hard triplet beat contrastive on held-out LFW identities (docs/training.md).
    "face": dict(arch="resnet", arch_kwargs={"width": 32, "blocks": [1, 1, 1, 1]}, image_size=64,
                 embedding_dim=128, loss="triplet", margin=1.0, epochs=12, batch_size=64, lr=2e-3),
    "signature": dict(arch="compact-cnn", arch_kwargs={"width": 32}, image_size=64, embedding_dim=64,
                      margin=1.0, epochs=12, batch_size=32, lr=2e-3),
    "generic": dict(arch="resnet", arch_kwargs={"width": 32, "blocks": [1, 1, 1, 1]}, image_size=64,
                    embedding_dim=128, margin=1.0, epochs=12, batch_size=32, lr=2e-3),
}
#: Safer defaults when starting from an existing model (fine-tuning): a low learning rate,
#: few epochs, early stop on validation EER; the starting weights are kept unless an epoch
#: beats them (measured on LFW with the bundled model, docs/training.md).
FINETUNE_DEFAULTS = dict(epochs=3, lr=1e-5, patience=2)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass
class TrainConfig:
    data_dir: str
    preset: str = "generic"
    arch: str | None = None
    arch_kwargs: dict[str, Any] | None = None
    image_size: int | None = None
    embedding_dim: int | None = None
    #: None = the preset's default loss ("triplet" for faces, else "contrastive").
    loss: str | None = None
    margin: float | None = None
    distance: str = "euclidean"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    val_split: float = 0.2
    seed: int = 0
    device: str = "auto"
    #: Pairs per epoch; None = twice the training images (at least 512, at most 20,000).
    pairs_per_epoch: int | None = None
    val_pairs: int = 2000
    augment: bool = True
    amp: bool = True
    #: None/"scratch", "bundled", or a model file to fine-tune.
    init: str | None = None
    #: Fraction of the encoder's parameter tensors (input side first) kept frozen.
    freeze_fraction: float = 0.0
    #: Stop when validation EER has not improved for this many epochs (None = never).
    patience: int | None = None
    workers: int = 2
    #: Keep prepared chips on disk (:mod:`siamgui.core.face.chips`); None = only for face
    #: preprocessing, where preparing an image (detection, landmarks) is the expensive part.
    chip_cache: bool | None = None
    #: Wall-clock budget of the training loop in seconds (None = none): the cosine learning
    #: rate follows the larger of step and time progress, and training stops (after
    #: validating) when the budget is spent.
    time_budget_s: float | None = None
    #: Channels-last memory format for the CPU training step (faster; opt-in, see _train).
    channels_last: bool = False

    def resolved(self) -> "TrainConfig":
        """A copy with every unset option taken from the preset (or fine-tuning) defaults."""
        if self.preset not in PRESET_DEFAULTS:
            raise SiamguiError(f"Unknown preset {self.preset!r}; choose from {', '.join(PRESET_DEFAULTS)}")
        d = dict(PRESET_DEFAULTS[self.preset])
        loss = self.loss if self.loss is not None else d.get("loss", "contrastive")
        if loss not in LOSSES:
            raise SiamguiError(f"Unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
        if self.init not in (None, "", "scratch"):
            d.update(FINETUNE_DEFAULTS)
        if loss == "triplet":
            d["margin"] = 0.2
        c = copy.deepcopy(self)
        c.loss = loss
        if c.arch is not None and c.arch != d["arch"]:
            d["arch_kwargs"] = {}  # the preset's kwargs belong to the preset's architecture
        for key in ("arch", "arch_kwargs", "image_size", "embedding_dim", "margin", "epochs", "batch_size", "lr",
                    "patience"):
            if getattr(c, key) is None and key in d:
                setattr(c, key, copy.deepcopy(d[key]))
        if c.arch_kwargs is None:
            c.arch_kwargs = {}
        for key, lo in (("epochs", 1), ("batch_size", 2), ("image_size", 8), ("embedding_dim", 2)):
            if int(getattr(c, key)) < lo:
                raise SiamguiError(f"{key.replace('_', ' ')} must be at least {lo}.")
        for key, hi in (("image_size", 1024), ("embedding_dim", 8192), ("batch_size", 65536)):  # preprocessing; memory
            if int(getattr(c, key)) > hi:
                raise SiamguiError(f"{key.replace('_', ' ')} must be at most {hi}.")
        if not (0.0 <= c.val_split < 1.0):
            raise SiamguiError("The validation split must be between 0 and 1.")
        if not (c.lr > 0 and math.isfinite(c.lr)):
            raise SiamguiError("The learning rate must be a positive number.")
        if not (c.margin > 0):
            raise SiamguiError("The margin must be positive.")
        if c.time_budget_s is not None and not (c.time_budget_s > 0 and math.isfinite(c.time_budget_s)):
            raise SiamguiError("The time budget must be a positive number of minutes.")
        if not (0.0 <= c.freeze_fraction < 1.0):
            raise SiamguiError("The frozen fraction must be in [0, 1).")
        get_distance(c.distance)
        return c


class TrainControl:
    """Cooperative pause / resume / cancel, checked between batches (thread-safe)."""

    def __init__(self):
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_if_paused(self, timeout: float | None = None) -> None:
        while not self._running.wait(0.1 if timeout is None else timeout):
            if timeout is not None:
                return


# -- events --------------------------------------------------------------------------
@dataclass
class Log:
    level: str  # "info" | "warning"
    message: str


@dataclass
class Loading:
    """Images being decoded and prepared (once, before the first epoch)."""

    done: int
    total: int


@dataclass
class Step:
    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    global_step: int
    total_steps: int
    loss: float
    running_loss: float
    lr: float
    pairs_per_s: float
    eta_s: float


@dataclass
class Epoch:
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    val_auc: float | None
    val_eer: float | None
    val_accuracy: float | None
    is_best: bool
    elapsed_s: float


@dataclass
class Finished:
    result: "TrainResult | None"
    cancelled: bool = False
    reason: str = ""


@dataclass
class TrainResult:
    network: SiameseNetwork
    meta: dict[str, Any]
    #: Validation distances and same-class flags at the best epoch (for ROC, histograms).
    val_distances: np.ndarray
    val_same: np.ndarray
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    def set_threshold(self, threshold: float, point: str = "custom") -> None:
        """Make ``threshold`` the model's threshold; metrics are recomputed for it."""
        m = ev.evaluate(self.val_distances, self.val_same, threshold)
        self.meta["threshold"] = float(threshold)
        self.meta["metrics"].update(m.to_dict())
        self.meta["metrics"]["operating_point"] = point

    def choose_threshold(self, point: str = "best-accuracy", target_far: float = 0.01) -> float:
        t = ev.choose_threshold(self.val_distances, self.val_same, point, target_far)
        self.set_threshold(t, point if point != "far" else f"far={target_far:g}")
        return t

    def save(self, path: str | os.PathLike) -> Path:
        return save_model(path, self.network, self.meta)


def prepare_images(paths: list[str], preprocessor: Preprocessor, workers: int = 2, control: TrainControl | None = None,
                   progress=None, cache: ChipCache | None = None) -> tuple[torch.Tensor, dict[str, str]]:
    """Decode and prepare every image once: (N, C, S, S) uint8 tensor, and {path: error} for failures.

    With a :class:`ChipCache`, chips found on disk are read instead of prepared,
    and newly prepared ones are stored.
    """
    s = preprocessor.spec
    out = torch.zeros((len(paths), s.channels, s.image_size, s.image_size), dtype=torch.uint8)
    bad: dict[str, str] = {}
    todo = list(enumerate(paths))
    if cache is not None:
        todo = []
        for i, path in enumerate(paths):
            arr = cache.get(path)
            if arr is None:
                todo.append((i, path))
            else:
                out[i] = torch.from_numpy(arr).permute(2, 0, 1)
    n_cached = len(paths) - len(todo)
    if progress is not None and n_cached:
        progress(n_cached, len(paths))

    def work(i_path):
        i, path = i_path
        try:
            arr, _ = preprocessor.prepare(path)
            out[i] = torch.from_numpy(arr).permute(2, 0, 1)
            if cache is not None:
                cache.put(path, arr)
        except ImageError as exc:
            bad[path] = str(exc)
        return i

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for done, _ in enumerate(pool.map(work, todo), start=n_cached + 1):
            if control is not None and control.cancelled:
                pool.shutdown(cancel_futures=True)
                break
            if progress is not None:
                progress(done, len(paths))
    return out, bad


def _freeze(encoder: torch.nn.Module, fraction: float) -> int:
    params = list(encoder.parameters())
    n = int(len(params) * fraction)
    for p in params[:n]:
        p.requires_grad_(False)
    return n


class _Diverged(SiamguiError):
    pass


def train(config: TrainConfig, control: TrainControl | None = None, dataset: FolderDataset | None = None
          ) -> Iterator[Log | Loading | Step | Epoch | Finished]:
    """Run a training job, yielding events; the last one is always :class:`Finished`.

    Raises :class:`SiamguiError` (with a readable message) for unusable input and
    :class:`DeviceError` for out-of-memory; nothing is written to disk here.
    Closing the generator early (``.close()``, or dropping it) cancels the job,
    so no background decoding outlives it.
    """
    control = control or TrainControl()
    try:
        yield from _train(config, control, dataset)
    except GeneratorExit:
        control.cancel()
        raise


def _train(config: TrainConfig, control: TrainControl, dataset: FolderDataset | None):
    cfg = config.resolved()
    t_start = time.perf_counter()
    seed_everything(cfg.seed)

    dev = select_device(cfg.device)
    if dev.reason:
        yield Log("warning", dev.reason)
    device = dev.device

    # -- data --------------------------------------------------------------------
    ds = dataset if dataset is not None else scan_folder(cfg.data_dir)
    summary = ds.summary()
    if summary.problems:
        raise DatasetError(" ".join(summary.problems))
    if ds.skipped:
        yield Log("warning", f"{len(ds.skipped)} file(s) could not be read and are skipped.")

    # -- model -------------------------------------------------------------------
    init_label = "scratch"
    if cfg.init not in (None, "", "scratch"):
        from siamgui.core.modelfile import load_model
        from siamgui.core.resources import bundled_model_path

        init_path = bundled_model_path() if cfg.init == "bundled" else Path(cfg.init)
        base = load_model(init_path)
        network = base.network
        spec = base.spec
        arch = base.meta["architecture"]
        distance_name = base.distance
        init_label = "bundled" if cfg.init == "bundled" else Path(cfg.init).name
        yield Log("info", f"Fine-tuning from {init_label} ({arch['name']}, input {spec.image_size}px).")
    else:
        spec = preset_spec(cfg.preset, cfg.image_size)
        kwargs = dict(cfg.arch_kwargs or {})
        kwargs.setdefault("in_channels", spec.channels)
        kwargs.setdefault("embedding_dim", cfg.embedding_dim)
        arch = {"name": cfg.arch, "kwargs": kwargs}
        try:
            network = SiameseNetwork(build_encoder(cfg.arch, **kwargs))
        except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: torch could not allocate it
            raise SiamguiError(f"Cannot build architecture {cfg.arch!r}: {str(exc).splitlines()[0][:200]}") from None
        distance_name = cfg.distance
    if cfg.freeze_fraction > 0:
        n = _freeze(network.encoder, cfg.freeze_fraction)
        yield Log("info", f"Froze the first {n} parameter tensors of the encoder.")
    preprocessor = Preprocessor(spec)
    distance = get_distance(distance_name)

    # -- split and cache -------------------------------------------------------------
    train_ds, val_ds = split_by_class(ds, cfg.val_split, cfg.seed)
    if val_ds is None:
        yield Log("warning", "Too few classes to hold some out for validation: the threshold is calibrated on the "
                             "training classes and the metrics will be optimistic.")
    paths = train_ds.paths + (val_ds.paths if val_ds is not None else [])
    loading_total = len(paths)
    use_cache = cfg.chip_cache if cfg.chip_cache is not None else spec.face is not None
    chip_cache = ChipCache(spec) if (use_cache and cache_enabled()) else None
    t_prepare = time.perf_counter()
    progress_box: list[tuple[int, int]] = []
    cache_holder: dict[str, Any] = {}

    def run_prepare():
        try:
            cache_holder["result"] = prepare_images(paths, preprocessor, cfg.workers, control,
                                                    lambda d, t: progress_box.append((d, t)), chip_cache)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the generator's thread
            cache_holder["error"] = exc

    loader = threading.Thread(target=run_prepare, name="siamgui-prepare", daemon=True)
    loader.start()
    last = -1
    while loader.is_alive():
        loader.join(0.1)
        if progress_box and progress_box[-1][0] != last:
            last = progress_box[-1][0]
            yield Loading(last, loading_total)
    if "error" in cache_holder:
        raise cache_holder["error"]
    if control.cancelled:
        yield Finished(None, cancelled=True, reason="Stopped before the first epoch finished.")
        return
    images, bad = cache_holder["result"]
    yield Loading(loading_total, loading_total)
    timing = {"prepare_s": round(time.perf_counter() - t_prepare, 2), "data_s": 0.0, "compute_s": 0.0,
              "validate_s": 0.0, "pairs": 0}
    if chip_cache is not None:
        timing.update(cache_hits=chip_cache.hits, cache_misses=len(paths) - chip_cache.hits)
    yield Log("info", f"Prepared {len(paths)} images in {timing['prepare_s']:.1f} s"
                      + (f" ({chip_cache.hits} from the chip cache)." if chip_cache is not None else "."))
    if bad:
        yield Log("warning", f"{len(bad)} image(s) failed to decode and are skipped, e.g. "
                             f"{os.path.basename(next(iter(bad)))}: {next(iter(bad.values()))}")
        keep = [i for i, p in enumerate(paths) if p not in bad]
        images = images[keep]
        train_ds = train_ds.drop(set(bad))
        if val_ds is not None:
            val_ds = val_ds.drop(set(bad))
        for part in (train_ds,) + ((val_ds,) if val_ds is not None else ()):
            if part.summary().problems:
                raise DatasetError("Too many images failed to decode: " + " ".join(part.summary().problems))
    n_train = len(train_ds)
    train_images = images[:n_train]
    val_images = images[n_train:] if val_ds is not None else train_images
    val_labels = val_ds.labels if val_ds is not None else train_ds.labels
    train_labels = train_ds.labels

    # -- training objects --------------------------------------------------------------
    network.to(device)
    # Channels-last convolutions ran 1.4x faster forward+backward on the CPU (resnet, 64 px), but
    # torch 2.14's CPU backward crashed (SIGSEGV) for one small shape (width 8, batch 9): opt-in.
    mem_format = torch.channels_last if (cfg.channels_last and device.type == "cpu") else torch.contiguous_format
    network.to(memory_format=mem_format)
    rng = np.random.default_rng(cfg.seed)
    pairs = PairSampler(train_labels, rng)
    triplets = TripletSampler(train_labels, rng) if cfg.loss == "triplet" else None
    va, vb, v_dis = fixed_pairs(val_labels, cfg.val_pairs, cfg.seed + 1)
    val_same = v_dis == 0
    contrastive = ContrastiveLoss(cfg.margin, distance)
    triplet = TripletLoss(cfg.margin, distance)
    augment = Augmenter(spec, seed=cfg.seed) if cfg.augment else None
    params = [p for p in network.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ppe = cfg.pairs_per_epoch or int(min(20000, max(512, 2 * n_train)))
    b = int(cfg.batch_size)
    steps_per_epoch = max(1, ppe // b)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=cfg.lr * 0.02)
    elif cfg.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, total_steps // 3), gamma=0.3)
    else:
        raise SiamguiError(f"Unknown schedule {cfg.schedule!r}; choose cosine or step.")
    use_amp = bool(cfg.amp and device.type == "cuda")
    yield Log("info", f"{len(train_ds.classes)} training classes ({n_train} images), "
                      f"{len(val_ds.classes) if val_ds else 0} validation classes; {count_parameters(network):,} "
                      f"parameters on {device.type}; {steps_per_epoch} steps x {cfg.epochs} epochs.")

    def batch_input(idx: np.ndarray) -> torch.Tensor:
        x = train_images[torch.from_numpy(idx)]
        x = augment(x) if augment is not None else x.float()
        return preprocessor.normalize(x.to(device, non_blocking=True)).contiguous(memory_format=mem_format)

    def validate() -> tuple[np.ndarray, float]:
        network.eval()
        with torch.inference_mode():
            embs = []
            for i in range(0, len(val_images), 128):
                x = preprocessor.normalize(val_images[i:i + 128].to(device))
                with torch.autocast("cuda", torch.bfloat16, enabled=use_amp):
                    embs.append(network.embed(x).float())
            e = torch.cat(embs)
            ia, ib = torch.from_numpy(va).to(device), torch.from_numpy(vb).to(device)
            d = distance.pairwise(e[ia], e[ib])
            if cfg.loss == "contrastive":
                vloss = contrastive(e[ia], e[ib], torch.from_numpy(v_dis).to(device))
            else:
                vloss = triplet.batch_hard(e, torch.from_numpy(val_labels).to(device))
        set_train_mode()  # not network.train(): frozen modules keep their statistics
        return d.double().cpu().numpy(), float(vloss)

    def set_train_mode():
        network.train()
        if cfg.freeze_fraction > 0:  # keep statistics of fully frozen modules fixed
            for m in network.modules():
                ps = list(m.parameters(recurse=False))
                if ps and not any(p.requires_grad for p in ps):
                    m.eval()

    # -- loop ----------------------------------------------------------------------------
    history: list[dict] = []
    best = {"eer": math.inf, "auc": -1.0, "epoch": 0, "state": None, "d": None}
    global_step = 0
    t_loop = time.perf_counter()
    running = None
    stopped = False
    epochs_without_gain = 0
    budget = float(cfg.time_budget_s) if cfg.time_budget_s else 0.0
    out_of_time = False
    start_metrics = None
    if init_label != "scratch":
        # Fine-tuning: the starting weights are a candidate too (epoch 0), so a run
        # that does not improve validation EER gives the model back unchanged.
        t_val = time.perf_counter()
        d0, _ = validate()
        timing["validate_s"] += time.perf_counter() - t_val
        m0 = ev.evaluate(d0, val_same, ev.best_threshold(d0, val_same)[0])
        best.update(eer=m0.eer, auc=m0.auc, epoch=0, d=d0,
                    state={k: v.detach().cpu().clone() for k, v in network.encoder.state_dict().items()})
        start_metrics = dict(val_auc=m0.auc, val_eer=m0.eer, val_accuracy=m0.best_accuracy)
        yield Log("info", f"Starting model on the validation classes: AUC {m0.auc:.4f}, EER {m0.eer:.4f}.")
    set_train_mode()
    try:
        for epoch in range(1, cfg.epochs + 1):
            losses = []
            for step in range(1, steps_per_epoch + 1):
                control.wait_if_paused()
                if control.cancelled:
                    stopped = True
                    break
                t0 = time.perf_counter()
                if triplets is None:
                    ia, ib, dis = pairs.sample(b)
                    xa, xb = batch_input(ia), batch_input(ib)
                    n_pairs = b
                else:
                    idx = triplets.pk_batch(2 * b)
                    x = batch_input(idx)
                    n_pairs = len(idx) // 2
                t1 = time.perf_counter()
                with torch.autocast("cuda", torch.bfloat16, enabled=use_amp):
                    if triplets is None:
                        ea, eb = network(xa, xb)
                        loss = contrastive(ea.float(), eb.float(), torch.from_numpy(dis).to(device))
                    else:
                        e = network.embed(x).float()
                        loss = triplet.batch_hard(e, torch.from_numpy(train_labels[idx]).to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if budget:
                    frac = min(1.0, max((global_step + 1) / total_steps, (time.perf_counter() - t_loop) / budget))
                    for g in opt.param_groups:
                        g["lr"] = cfg.lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * frac)))
                else:
                    sched.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise _Diverged("Training diverged (the loss became NaN or infinite); "
                                    "try a lower learning rate.")
                losses.append(value)
                running = value if running is None else 0.95 * running + 0.05 * value
                global_step += 1
                dt = time.perf_counter() - t0
                timing["data_s"] += t1 - t0
                timing["compute_s"] += dt - (t1 - t0)
                timing["pairs"] += n_pairs
                elapsed = time.perf_counter() - t_loop
                eta = elapsed / global_step * (total_steps - global_step)
                yield Step(epoch, cfg.epochs, step, steps_per_epoch, global_step, total_steps, value, running,
                           opt.param_groups[0]["lr"], n_pairs / max(dt, 1e-9), eta)
                if budget and time.perf_counter() - t_loop >= budget:
                    out_of_time = True
                    break
            if stopped:
                break
            t_val = time.perf_counter()
            d, vloss = validate()
            timing["validate_s"] += time.perf_counter() - t_val
            m = ev.evaluate(d, val_same, ev.best_threshold(d, val_same)[0])
            is_best = (m.eer, -m.auc) < (best["eer"], -best["auc"])
            if is_best:
                best.update(eer=m.eer, auc=m.auc, epoch=epoch, d=d,
                            state={k: v.detach().cpu().clone() for k, v in network.encoder.state_dict().items()})
                epochs_without_gain = 0
            else:
                epochs_without_gain += 1
            record = dict(epoch=epoch, train_loss=float(np.mean(losses)), val_loss=vloss, val_auc=m.auc,
                          val_eer=m.eer, val_accuracy=m.best_accuracy)
            history.append(record)
            yield Epoch(epoch, cfg.epochs, record["train_loss"], vloss, m.auc, m.eer, m.best_accuracy, is_best,
                        time.perf_counter() - t_start)
            if cfg.patience and epochs_without_gain >= cfg.patience:
                yield Log("info", f"Early stop: validation EER has not improved for {cfg.patience} epochs.")
                break
            if out_of_time:
                yield Log("info", f"Time budget of {budget / 60:.1f} min reached after {epoch} epoch(s).")
                break
            if control.cancelled:
                stopped = True
                break
    except torch.cuda.OutOfMemoryError:
        raise DeviceError(f"The GPU ran out of memory at batch size {b}; try a smaller batch size.") from None
    except MemoryError:
        raise DeviceError(f"Out of memory at batch size {b}; try a smaller batch size or image size.") from None
    except RuntimeError as exc:  # torch's CPU allocator reports failure as RuntimeError, not MemoryError
        if "can't allocate memory" not in str(exc):
            raise
        raise DeviceError(f"Out of memory at batch size {b}; try a smaller batch size or image size.") from None

    loop_s = timing["data_s"] + timing["compute_s"]
    if loop_s > 0:
        timing["pairs_per_s"] = round(timing["pairs"] / loop_s, 1)
        yield Log("info", f"Time: preparing images {timing['prepare_s']:.0f} s, batches (sampling + augmentation) "
                          f"{timing['data_s']:.0f} s, forward/backward {timing['compute_s']:.0f} s, validation "
                          f"{timing['validate_s']:.0f} s; {timing['pairs_per_s']:.0f} pairs/s.")
    if best["state"] is None:
        yield Finished(None, cancelled=True, reason="Stopped before the first epoch finished; nothing to keep.")
        return

    network.encoder.load_state_dict(best["state"])
    network.to("cpu", memory_format=torch.contiguous_format).eval()
    for p in network.parameters():
        p.requires_grad_(True)
    d = best["d"]
    threshold, _ = ev.best_threshold(d, val_same)
    metrics = ev.evaluate(d, val_same, threshold).to_dict()
    metrics.update(operating_point="best-accuracy", evaluated_on="validation classes" if val_ds is not None
                   else "training classes (no held-out classes)")
    training = {
        "data": {"folder": Path(cfg.data_dir).name, **summary.to_dict(), "root": None,
                 "train_classes": len(train_ds.classes), "train_images": n_train,
                 "val_classes": len(val_ds.classes) if val_ds else 0,
                 "val_images": len(val_ds) if val_ds else 0, "decode_failures": len(bad)},
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("data_dir",)},
        "init": init_label,
        "epochs_run": len(history), "best_epoch": best["epoch"], "stopped_early": stopped,
        "start_validation": start_metrics,
        "duration_s": round(time.perf_counter() - t_start, 1), "device": device.type,
        "timing": {k: round(v, 4) if isinstance(v, float) else v for k, v in timing.items()},
        "history": history,
    }
    meta = make_meta(architecture=arch, preprocess=spec, distance=distance_name, threshold=threshold,
                     margin=cfg.margin, loss=cfg.loss, training=training, metrics=metrics,
                     name=f"{Path(cfg.data_dir).name} ({cfg.preset})")
    result = TrainResult(network, meta, d, val_same, history, stopped)
    yield Finished(result, cancelled=False, reason="Stopped by the user." if stopped else "")

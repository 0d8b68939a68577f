"""The fit phase of training: epochs of seeded batches, validation after each, best weights kept.

Between batches it honours :class:`TrainControl` (pause, resume, cancel) and
the time budget; after each epoch it validates on the held-out classes and
keeps the weights with the lowest validation EER.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from siamgui.core import evaluation as ev
from siamgui.core.distances import Distance
from siamgui.core.errors import DeviceError, SiamguiError
from siamgui.core.models import SiameseNetwork, count_parameters
from siamgui.core.preprocess import Augmenter, Preprocessor
from siamgui.core.training.config import TrainConfig
from siamgui.core.training.data import TrainingData
from siamgui.core.training.distributed import AUGMENT_SEED_STRIDE, Distributed
from siamgui.core.training.events import Epoch, Log, Step, TrainControl
from siamgui.core.training.objective import Objective
from siamgui.core.training.sampling import fixed_pairs


class Diverged(SiamguiError):
    pass


@dataclass
class Best:
    """The best validation result so far and the encoder weights that gave it."""

    eer: float = math.inf
    auc: float = -1.0
    epoch: int = 0
    #: Validation loss at that epoch (breaks ties of EER and AUC: a saturated validation set).
    vloss: float = math.inf
    state: dict[str, torch.Tensor] | None = None
    #: Validation distances of the fixed validation pairs at that epoch.
    d: np.ndarray | None = None


@dataclass
class FitOutcome:
    history: list[dict] = field(default_factory=list)
    best: Best = field(default_factory=Best)
    stopped: bool = False
    #: Validation metrics of the starting weights when fine-tuning, else None.
    start_metrics: dict | None = None


class Fit:
    """One fit: ``outcome = yield from Fit(...).run()`` yields :class:`Log`, :class:`Step`, :class:`Epoch`.

    With ``dist`` (a torchrun job, :mod:`.distributed`) ``cfg.batch_size`` is per rank: each
    step draws a global batch of ``batch_size x world size`` and this rank trains on its share;
    only rank 0 validates and keeps the best weights.
    """

    def __init__(self, cfg: TrainConfig, control: TrainControl, network: SiameseNetwork, preprocessor: Preprocessor,
                 objective: Objective, distance: Distance, data: TrainingData, device: torch.device, t_start: float,
                 dist: Distributed | None = None):
        self.cfg, self.control, self.network, self.preprocessor = cfg, control, network, preprocessor
        self.objective, self.distance, self.data, self.device, self.t_start = objective, distance, data, device, t_start
        self.dist = dist
        self.is_main = dist is None or dist.is_main
        self.timing = data.timing
        network.to(device)
        # Opt-in: faster on the CPU, but torch's CPU backward has crashed for some small shapes.
        self.mem_format = (torch.channels_last if (cfg.channels_last and device.type == "cpu")
                           else torch.contiguous_format)
        network.to(memory_format=self.mem_format)
        self.global_batch = int(cfg.batch_size) * (dist.world_size if dist else 1)
        self.sampler = objective.sampler(data.train_labels, self.global_batch, np.random.default_rng(cfg.seed),
                                         data.train_forgery_of, cfg.hard_classes or 0.0)
        va, vb, v_dis = fixed_pairs(data.val_labels, cfg.val_pairs, cfg.seed + 1, data.val_forgery_of)
        self.val_pairs, self.val_same = (va, vb), v_dis == 0
        aug_seed = cfg.seed + (AUGMENT_SEED_STRIDE * dist.rank if dist else 0)
        self.augment = Augmenter(preprocessor.spec, seed=aug_seed, **cfg.augmentation) if cfg.augment else None
        #: Embeds a training batch: the network, or its DDP wrapper.
        self.embed = dist.wrap(network) if dist else network.embed
        self.opt = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=cfg.lr,
                                     weight_decay=cfg.weight_decay)
        ppe = cfg.pairs_per_epoch or int(min(20000, max(512, 2 * len(data.train_ds))))
        self.steps_per_epoch = max(1, ppe // self.global_batch)
        if cfg.min_steps:  # small folders: longer epochs, so the plan has enough optimisation steps
            self.steps_per_epoch = max(self.steps_per_epoch, math.ceil(cfg.min_steps / cfg.epochs))
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.schedule == "cosine":
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=self.total_steps,
                                                                    eta_min=cfg.lr * 0.02)
        else:
            self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=max(1, self.total_steps // 3), gamma=0.3)
        self.use_amp = bool(cfg.amp and device.type == "cuda")
        self.budget = float(cfg.time_budget_s) if cfg.time_budget_s else 0.0
        self.outcome = FitOutcome()
        self.global_step = 0
        self.running: float | None = None
        self.epochs_without_gain = 0
        self.out_of_time = False
        self.t_loop = 0.0

    def run(self) -> Iterator[Log | Step | Epoch]:
        """The whole fit; returns a :class:`FitOutcome`."""
        cfg, data = self.cfg, self.data
        yield Log("info", f"{len(data.train_ds.classes)} training classes ({len(data.train_ds)} images), "
                          f"{len(data.val_ds.classes) if data.val_ds else 0} validation classes; "
                          f"{count_parameters(self.network):,} parameters on {self.device.type}; "
                          f"{self.steps_per_epoch} steps x {cfg.epochs} epochs" + self._plan_note() + ".")
        self.t_loop = time.perf_counter()
        if cfg.fine_tuning and self.is_main:
            yield from self._validate_start()
        self._set_train_mode()
        b = int(cfg.batch_size)
        try:
            for epoch in range(1, cfg.epochs + 1):
                losses = yield from self._epoch(epoch)
                if self.outcome.stopped:
                    break
                stop = (yield from self._end_epoch(epoch, losses)) if self.is_main else False
                if self.dist is not None:
                    stop = self.dist.agree(stop)  # every rank leaves the loop with rank 0
                if stop:
                    break
        except torch.cuda.OutOfMemoryError:
            raise DeviceError(f"The GPU ran out of memory at batch size {b}; try a smaller batch size.") from None
        except MemoryError:
            raise DeviceError(f"Out of memory at batch size {b}; try a smaller batch size or image size.") from None
        except RuntimeError as exc:  # torch's CPU allocator reports failure as RuntimeError, not MemoryError
            if "can't allocate memory" not in str(exc):
                raise
            raise DeviceError(f"Out of memory at batch size {b}; try a smaller batch size or image size.") from None
        return self.outcome

    def _plan_note(self) -> str:
        cfg, parts = self.cfg, []
        if self.budget:
            parts.append(f"at most {self.budget / 60:.1f} min")
        if cfg.patience:
            parts.append(f"early stop after {cfg.patience} epochs without a validation gain")
        auto = "automatic plan: " if cfg.min_steps else ""
        return f" ({auto}{', '.join(parts)})" if parts else ""

    def _validate_start(self) -> Iterator[Log]:
        """Fine-tuning: the starting weights are epoch 0, kept unless an epoch beats them on validation."""
        d0, v0 = self._timed_validate()
        m0 = ev.evaluate(d0, self.val_same, ev.best_threshold(d0, self.val_same)[0])
        self._keep_as_best(0, m0, d0, v0)
        self.outcome.start_metrics = dict(val_auc=m0.auc, val_eer=m0.eer, val_accuracy=m0.best_accuracy)
        yield Log("info", f"Starting model on the validation classes: AUC {m0.auc:.4f}, EER {m0.eer:.4f}.")

    def _epoch(self, epoch: int) -> Iterator[Step]:
        """One epoch of batches; returns their losses (stops early on cancel or the time budget)."""
        losses: list[float] = []
        for step in range(1, self.steps_per_epoch + 1):
            self.control.wait_if_paused()
            if self.control.cancelled:
                self.outcome.stopped = True
                break
            t0 = time.perf_counter()
            value, n_pairs, t1 = self._step()
            losses.append(value)
            self.running = value if self.running is None else 0.95 * self.running + 0.05 * value
            self.global_step += 1
            dt = time.perf_counter() - t0
            self.timing["data_s"] += t1 - t0
            self.timing["compute_s"] += dt - (t1 - t0)
            self.timing["pairs"] += n_pairs
            eta = self._eta()
            yield Step(epoch, self.cfg.epochs, step, self.steps_per_epoch, self.global_step, self.total_steps, value,
                       self.running, self.opt.param_groups[0]["lr"], n_pairs / max(dt, 1e-9), eta)
            if self.budget and self._agree(time.perf_counter() - self.t_loop >= self.budget):
                self.out_of_time = True
                break
        return losses

    def _agree(self, flag: bool) -> bool:
        return self.dist.agree(flag) if self.dist is not None else flag

    def _eta(self) -> float:
        """Seconds of training left: the plan's remaining steps at the measured pace, capped by the budget."""
        elapsed = time.perf_counter() - self.t_loop
        eta = elapsed / max(1, self.global_step) * (self.total_steps - self.global_step)
        return min(eta, max(0.0, self.budget - elapsed)) if self.budget else eta

    def _step(self) -> tuple[float, int, float]:
        """One batch: sample, augment, forward, backward, update. Returns (loss, pairs, time data was ready).

        Distributed: this rank embeds its share of the global batch; the loss is the global batch's."""
        parts = self.sampler.sample()
        idx = np.concatenate(parts) if len(parts) > 1 else parts[0]
        mine, layout = self.dist.share(parts) if self.dist is not None else (parts, None)
        xs = [self._batch_input(p) for p in mine]
        x = torch.cat(xs) if len(xs) > 1 else xs[0]
        labels = torch.from_numpy(self.data.train_labels[idx]).to(self.device)
        t1 = time.perf_counter()
        with torch.autocast("cuda", torch.bfloat16, enabled=self.use_amp):
            emb = self.embed(x).float()
            if self.dist is not None:
                emb = self.dist.gather(emb, layout)
            loss = self.objective.loss(emb, labels)
        self.sampler.observe(self.data.train_labels[idx], emb)  # the global batch: every rank's sampler agrees
        self.opt.zero_grad(set_to_none=True)
        (loss * self.dist.grad_scale if self.dist is not None else loss).backward()
        self.opt.step()
        self._update_lr()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise Diverged("Training diverged (the loss became NaN or infinite); try a lower learning rate.")
        return value, len(idx) // 2, t1

    def _batch_input(self, idx: np.ndarray) -> torch.Tensor:
        x = self.data.train_images[torch.from_numpy(idx)]
        x = self.augment(x) if self.augment is not None else x.float()
        return self.preprocessor.normalize(x.to(self.device, non_blocking=True)).contiguous(
            memory_format=self.mem_format)

    def _update_lr(self) -> None:
        if not self.budget:
            self.sched.step()
            return
        # With a time budget the cosine follows whichever is further along: steps or time (rank 0's time,
        # else the ranks' optimizers would apply different rates to the same averaged gradient).
        elapsed = time.perf_counter() - self.t_loop
        if self.dist is not None:
            elapsed = self.dist.main_value(elapsed)
        frac = min(1.0, max((self.global_step + 1) / self.total_steps, elapsed / self.budget))
        for g in self.opt.param_groups:
            g["lr"] = self.cfg.lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    def _end_epoch(self, epoch: int, losses: list[float]) -> Iterator[Log | Epoch]:
        """Validate, keep the best weights, report; returns True when training should stop."""
        d, vloss = self._timed_validate()
        m = ev.evaluate(d, self.val_same, ev.best_threshold(d, self.val_same)[0])
        best = self.outcome.best
        # Ties (a saturated validation set: EER 0, AUC 1) go to the lower validation loss, not the earlier epoch.
        is_best = (m.eer, -m.auc, vloss) < (best.eer, -best.auc, best.vloss)
        if is_best:
            self._keep_as_best(epoch, m, d, vloss)
            self.epochs_without_gain = 0
        else:
            self.epochs_without_gain += 1
        record = dict(epoch=epoch, train_loss=float(np.mean(losses)), val_loss=vloss, val_auc=m.auc,
                      val_eer=m.eer, val_accuracy=m.best_accuracy)
        self.outcome.history.append(record)
        yield Epoch(epoch, self.cfg.epochs, record["train_loss"], vloss, m.auc, m.eer, m.best_accuracy, is_best,
                    time.perf_counter() - self.t_start, self._eta() if epoch < self.cfg.epochs else 0.0)
        if self.cfg.patience and self.epochs_without_gain >= self.cfg.patience:
            yield Log("info", f"Early stop: validation EER has not improved for {self.cfg.patience} epochs.")
            return True
        if self.out_of_time:
            yield Log("info", f"Time budget of {self.budget / 60:.1f} min reached in epoch {epoch} (step "
                              f"{self.global_step} of {self.total_steps}); calibrating and saving now, outside the "
                              "budget.")
            return True
        if self.control.cancelled:
            self.outcome.stopped = True
            return True
        return False

    def _keep_as_best(self, epoch: int, m: ev.Metrics, d: np.ndarray, vloss: float = math.inf) -> None:
        state = {k: v.detach().cpu().clone() for k, v in self.network.encoder.state_dict().items()}
        self.outcome.best = Best(eer=m.eer, auc=m.auc, epoch=epoch, state=state, d=d, vloss=vloss)

    def _timed_validate(self) -> tuple[np.ndarray, float]:
        t_val = time.perf_counter()
        out = self._validate()
        self.timing["validate_s"] += time.perf_counter() - t_val
        return out

    def _validate(self) -> tuple[np.ndarray, float]:
        """Distances of the fixed validation pairs and the objective's loss on the validation images."""
        network, device = self.network, self.device
        network.eval()
        with torch.inference_mode():
            embs = []
            for i in range(0, len(self.data.val_images), 128):
                x = self.preprocessor.normalize(self.data.val_images[i:i + 128].to(device))
                with torch.autocast("cuda", torch.bfloat16, enabled=self.use_amp):
                    embs.append(network.embed(x).float())
            e = torch.cat(embs)
            ia, ib = (torch.from_numpy(p).to(device) for p in self.val_pairs)
            d = self.distance.pairwise(e[ia], e[ib])
            vloss = self.objective.validation_loss(e, torch.from_numpy(self.data.val_labels).to(device), (ia, ib))
        self._set_train_mode()  # not network.train(): frozen modules keep their statistics
        return d.double().cpu().numpy(), float(vloss)

    def _set_train_mode(self) -> None:
        self.network.train()
        if self.cfg.freeze_fraction > 0:  # keep statistics of fully frozen modules fixed
            for m in self.network.modules():
                ps = list(m.parameters(recurse=False))
                if ps and not any(p.requires_grad for p in ps):
                    m.eval()

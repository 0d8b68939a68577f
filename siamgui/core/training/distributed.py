"""Data-parallel training (DDP) with torch.distributed, for jobs launched by ``torchrun``.

``torchrun --nproc-per-node N -m siamgui train DIR --out M.safetensors`` starts N
processes (ranks) with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in their environment;
:func:`env_from_environ` reads them and :class:`Distributed` joins the process
group (gloo on the CPU, NCCL on CUDA, one GPU per rank: ``cuda:LOCAL_RANK``).

What each step does on every rank (:mod:`.fit` calls these):

- every rank draws the *same* global batch from the same seeded sampler (the
  per-rank batch size times the world size) and keeps its own contiguous,
  disjoint share of each part (:meth:`Distributed.share`);
- the encoder, wrapped in ``DistributedDataParallel``, embeds that share; batch
  norm layers use the statistics of the global batch (torch's SyncBatchNorm on
  CUDA, :class:`GlooSyncBatchNorm` on the CPU, which torch's does not run on);
- the embeddings are gathered from every rank in the global batch's order, the
  rank's own slot replaced by its local tensor so that its gradient flows
  (:meth:`Distributed.gather`); the loss (contrastive pairs, batch-hard triplet
  mining) is then computed over the global batch, negatives from every rank;
- the loss is scaled by the world size before ``backward`` (:data:`Distributed.grad_scale`).

Rank 0 validates, calibrates and returns the model; the others wait for its
decision to stop (:meth:`Distributed.agree`) and return nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from siamgui.core.errors import SiamguiError

#: Augmentation seeds of ranks 1, 2... are the job's seed plus this stride times the rank, so no two ranks
#: transform their images alike (rank 0 keeps the job's seed).
AUGMENT_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_environ(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The torchrun job this process belongs to, or None when it runs alone (a world of 1 included)."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return None
    try:
        world = int(environ["WORLD_SIZE"])
        rank = int(environ.get("RANK", "0"))
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise SiamguiError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (as torchrun sets them).") from None
    if world < 2:
        return None
    if not 0 <= rank < world or local < 0:
        raise SiamguiError(f"RANK {rank} does not fit WORLD_SIZE {world}.")
    return DistEnv(rank, world, local)


class _AllReduceSum(torch.autograd.Function):
    """all_reduce (sum) with a backward: the gradient of a sum over ranks is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor):
        import torch.distributed as dist

        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        return _AllReduceSum.apply(grad)


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch on the CPU (torch's SyncBatchNorm runs only on GPUs).

    In training the per-channel sums go through a differentiable all_reduce (two passes:
    the mean, then the squared deviations) whose backward sums the ranks' gradients, as
    SyncBatchNorm's does. In eval mode it is a plain batch norm.
    """

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {x.dim()}-D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not torch.distributed.is_initialized():
            return super().forward(x)
        all_reduce = _AllReduceSum.apply
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)
        local_n = x.new_tensor([x.numel() / max(c, 1)])
        sums = all_reduce(torch.cat([x.sum(dims), local_n]))
        n = sums[c]
        mean = sums[:c] / n
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1).clamp(min=1)), alpha=m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def _swap_batchnorm(module: nn.Module, make) -> nn.Module:
    """``module`` with every batch norm (sub)module replaced by ``make(bn)`` (None: keep it)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        new = make(module)
        return module if new is None else new
    for name, child in module.named_children():
        swapped = _swap_batchnorm(child, make)
        if swapped is not child:
            module.add_module(name, swapped)
    return module


def _copy_batchnorm(bn: nn.Module, cls) -> nn.Module:
    new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    new.load_state_dict(bn.state_dict())
    new.train(bn.training)
    for p_new, p_old in zip(new.parameters(), bn.parameters()):
        p_new.requires_grad_(p_old.requires_grad)
    new._siamgui_plain_type = type(bn)  # what unwrap() restores
    tensors = [*bn.parameters(), *bn.buffers()]
    return new.to(tensors[0].device) if tensors else new


class _Embed(nn.Module):
    """DDP hooks ``forward``; the network embeds with ``embed``."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.embed(x)


class Distributed:
    """This process's membership of the job's process group (joined on construction; :meth:`close` leaves it)."""

    def __init__(self, env: DistEnv, device: torch.device):
        import torch.distributed as dist

        self.env = env
        if device.type == "cuda":
            self.device = torch.device("cuda", env.local_rank % max(1, torch.cuda.device_count()))
            torch.cuda.set_device(self.device)
            self.backend = "nccl"
        else:
            self.device = torch.device("cpu")
            self.backend = "gloo"
        if not dist.is_available():
            raise SiamguiError("This torch build has no torch.distributed; train in one process.")
        #: False when the caller had joined a group already (it then leaves it itself).
        self._owned = not dist.is_initialized()
        if self._owned:
            kwargs = {"device_id": self.device} if self.backend == "nccl" else {}
            dist.init_process_group(self.backend, init_method="env://", rank=env.rank,
                                    world_size=env.world_size, **kwargs)

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_main(self) -> bool:
        return self.env.is_main

    @property
    def grad_scale(self) -> float:
        """Each rank's gradient flows only through its own share of the global-batch loss, and DDP
        averages the ranks' gradients: scaling the loss by the world size makes that average their
        sum, which is the one-process gradient of the same global batch."""
        return float(self.world_size)

    # -- the network ---------------------------------------------------------------------
    def wrap(self, network: nn.Module) -> nn.Module:
        """``network`` with global-batch batch norm, wrapped in DDP; calling the result embeds."""
        from torch.nn.parallel import DistributedDataParallel

        cls = nn.SyncBatchNorm if self.device.type == "cuda" else GlooSyncBatchNorm
        _swap_batchnorm(network, lambda bn: _copy_batchnorm(bn, cls))
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(_Embed(network), device_ids=ids)  # buffers follow rank 0's each forward

    @staticmethod
    def unwrap(network: nn.Module) -> nn.Module:
        """Undo :meth:`wrap`'s batch norm change in place (plain BatchNorm*d, same weights and statistics)."""
        def plain(bn):
            cls = getattr(bn, "_siamgui_plain_type", None)
            if cls is None:
                return None
            new = _copy_batchnorm(bn, cls)
            del new._siamgui_plain_type
            return new

        return _swap_batchnorm(network, plain)

    # -- the batch -------------------------------------------------------------------------
    def share(self, parts: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[list[int]]]:
        """This rank's contiguous share of every part of the global batch, and every rank's share
        sizes ``layout[part][rank]`` (known to all ranks: they drew the same batch)."""
        chunks = [np.array_split(np.asarray(p), self.world_size) for p in parts]
        return [c[self.rank] for c in chunks], [[len(x) for x in c] for c in chunks]

    def gather(self, local: torch.Tensor, layout: list[list[int]]) -> torch.Tensor:
        """The global batch's embeddings in the sampler's order: every rank's share, this rank's
        own slot being ``local`` itself (so its gradient flows; the others are constants)."""
        import torch.distributed as dist

        per_rank = [sum(sizes[r] for sizes in layout) for r in range(self.world_size)]
        width = max(per_rank)
        padded = local.detach()
        if len(padded) < width:  # all_gather wants equal shapes
            padded = torch.cat([padded, padded.new_zeros((width - len(padded), *padded.shape[1:]))])
        received = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(received, padded.contiguous())
        received[self.rank] = local
        offsets = [0] * self.world_size
        pieces = []
        for sizes in layout:
            for r, n in enumerate(sizes):
                pieces.append(received[r][offsets[r]:offsets[r] + n])
                offsets[r] += n
        return torch.cat(pieces)

    # -- decisions -------------------------------------------------------------------------
    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (stop now? every rank must leave the loop together)."""
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def main_value(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (its clock: every rank must follow one learning-rate schedule)."""
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return float(t.item())

    def record(self, per_rank_batch: int) -> dict:
        """What the model file records about the job."""
        return {"world_size": self.world_size, "backend": self.backend, "per_rank_batch": int(per_rank_batch),
                "global_batch": int(per_rank_batch) * self.world_size}

    def close(self) -> None:
        import torch.distributed as dist

        if self._owned and dist.is_initialized():
            dist.destroy_process_group()
        self._owned = False

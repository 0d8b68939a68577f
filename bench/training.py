"""Training figures: pairs/s of siamgui's trainer vs the naive loop, and the share of the matmul peak.

Each round measures, back to back: the matmul peak (a 2048x2048 float32
``torch.mm``), siamgui's ``train`` generator for a short epoch on the generated
64-class dataset (face preset), and the naive loop on the same files with the
same architecture and batch size. Ratios are taken within a round.
"""

from __future__ import annotations

import time

import torch

from bench.baselines import NaivePairDataset, naive_train
from bench.common import summaries


def matmul_gflops(n: int = 2048, reps: int = 8) -> float:
    """GFLOP/s of a large float32 matmul (the fastest of ``reps``): the practical ceiling here."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def flops_per_pair(encoder: torch.nn.Module, image_size: int, channels: int, batch: int) -> float:
    """FLOPs of one training step (forward of both images, loss, backward) per pair."""
    from torch.utils.flop_counter import FlopCounterMode

    from siamgui.core.losses import ContrastiveLoss

    enc = encoder.train()
    x = torch.randn(2 * batch, channels, image_size, image_size)
    y = (torch.arange(batch) % 2).float()
    with FlopCounterMode(display=False) as fc:
        z = enc(x)
        loss = ContrastiveLoss(1.0)(z[:batch], z[batch:], y)
        loss.backward()
    enc.zero_grad(set_to_none=True)
    return fc.get_total_flops() / batch


def _ours(data_dir: str, steps: int, batch: int | None, seed: int) -> dict:
    from siamgui.core.training import Finished, Step, TrainConfig, train

    cfg = TrainConfig(data_dir, preset="face", loss="contrastive", epochs=1, seed=seed, device="cpu",
                      val_pairs=200, batch_size=batch)
    b = cfg.resolved().batch_size
    cfg.pairs_per_epoch = b * (steps + 1)
    t0 = time.perf_counter()
    stamps = []
    for ev in train(cfg):
        if isinstance(ev, Step):
            stamps.append(time.perf_counter())
        elif isinstance(ev, Finished):
            pass
    first = stamps[0] - t0  # scan + decode-once cache + model build + first step
    rate = (len(stamps) - 1) * b / (stamps[-1] - stamps[0])
    return {"pairs_per_s": rate, "startup_s": first, "total_s": time.perf_counter() - t0, "batch": b}


def measure_training(data_dir: str, rounds: int = 3, steps: int = 5, seed: int = 0) -> dict:
    from siamgui.core.datasets import scan_folder
    from siamgui.core.models import build_encoder
    from siamgui.core.preprocess import preset_spec
    from siamgui.core.training import TrainConfig

    cfg = TrainConfig(data_dir, preset="face", loss="contrastive").resolved()
    spec = preset_spec("face", cfg.image_size)
    kwargs = dict(cfg.arch_kwargs, in_channels=spec.channels, embedding_dim=cfg.embedding_dim)
    fpp = flops_per_pair(build_encoder(cfg.arch, **kwargs), spec.image_size, spec.channels, 8)
    ds = scan_folder(data_dir)
    rates, base_rates, ratios, peaks, fracs, startups = [], [], [], [], [], []
    for r in range(rounds):
        peak = matmul_gflops()
        o = _ours(data_dir, steps, cfg.batch_size, seed + r)
        torch.manual_seed(seed + r)
        net = build_encoder(cfg.arch, **kwargs)
        naive_ds = NaivePairDataset(ds.paths, ds.labels, cfg.batch_size * (steps + 1), spec, seed + r)
        n = naive_train(net, naive_ds, cfg.batch_size, steps, lr=cfg.lr)
        rates.append(o["pairs_per_s"])
        base_rates.append(n["pairs_per_s"])
        ratios.append(o["pairs_per_s"] / n["pairs_per_s"])
        peaks.append(peak)
        fracs.append(o["pairs_per_s"] * fpp / 1e9 / peak)
        startups.append(o["startup_s"])
    out = summaries(
        train_pairs_per_s=(rates, 1),
        baseline_train_pairs_per_s=(base_rates, 1),
        train_speedup=(ratios, 2),
        matmul_peak_gflops=(peaks, 1),
        train_peak_fraction=(fracs, 3),
        train_first_step_s=(startups, 2))
    out["train_gflop_per_pair"] = round(fpp / 1e9, 4)
    out["train_config"] = (f"{cfg.arch} {cfg.arch_kwargs} {spec.image_size}px, face crop "
                           f"{(spec.face or {}).get('align')}, contrastive, batch {cfg.batch_size}, "
                           f"channels_last={getattr(cfg, 'channels_last', None)}, {steps} timed steps")
    return out

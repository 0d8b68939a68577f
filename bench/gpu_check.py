"""GPU check (``make gpu-check``): the engine on CUDA, checked against the CPU.

    .venv/bin/python bench/gpu_check.py [--lfw DIR] [--pairs N] [--json OUT]

On a machine with an NVIDIA GPU it runs, in under 8 minutes on an H200:

- compare: two LFW photos of one person with the bundled model, CUDA vs CPU;
- parity: float32 embeddings of 64 prepared LFW chips on CUDA vs the CPU, with
  TF32 off (strict float32, must be within 1e-4) and with torch's defaults
  (what the app runs, within 1e-2);
- evaluate: LFW View 2 (pairs.txt) on CUDA, end-to-end faces/s (reading, face
  detection, alignment, embedding) and embedding-only faces/s on prepared chips;
- train: a short run (ResNet encoder on generated shapes), pairs/s;
- ddp: one training step on a fixed global batch, one process vs DDP over NCCL
  (2 processes on 2+ GPUs; one process in a 1-rank NCCL group on one GPU):
  same loss and weights;
- the peak GPU memory of each step (``torch.cuda.max_memory_allocated``).

It prints a table and one JSON object (``--json`` also writes it) and exits 1
when a parity or equivalence check fails or a step raises. Without CUDA it
prints one line saying the check was skipped and exits 0. LFW steps are
skipped (and said so) when the LFW folder is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: Strict float32 (TF32 off): CUDA and CPU embeddings differ by float rounding only.
STRICT_TOLERANCE = 1e-4
#: torch's defaults (TF32 convolutions on Ampere and later): what the app computes on a GPU.
DEFAULT_TOLERANCE = 1e-2
#: compare: the whole pipeline, face detection on the GPU included (a landmark may move by a fraction of a pixel).
COMPARE_TOLERANCE = 5e-2
#: One step, 1 process vs DDP (TF32 off): loss and weights.
DDP_TOLERANCE = 1e-4
PARITY_CHIPS = 64
#: Where the "GPU" steps run: cuda, or cpu to rehearse the script's code paths on a machine without a GPU
#: (GPU_CHECK_DEVICE=cpu; the figures then mean nothing and the run is not a check).
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")


def _lfw_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("SIAMGUI_LFW"):
        return Path(os.environ["SIAMGUI_LFW"])
    repo = Path(__file__).resolve().parent.parent
    for base in (repo / "shared", repo.parent / "shared"):
        if (base / "data" / "lfw").is_dir():
            return base / "data" / "lfw"
    return repo.parent / "shared" / "data" / "lfw"


def _strict_float32(on: bool) -> None:
    import torch

    if DEVICE != "cuda":
        return
    torch.backends.cudnn.allow_tf32 = not on
    torch.backends.cuda.matmul.allow_tf32 = not on


def _peak(fn):
    """Run ``fn()``; (its result, seconds, peak GPU memory in MiB)."""
    import torch

    if DEVICE != "cuda":
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0, 0.0
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**20


# -- the steps -------------------------------------------------------------------------------
def step_compare(lfw: Path) -> dict:
    from siamgui.core.datasets import read_lfw_pairs
    from siamgui.core.verifier import Verifier

    pairs, _ = read_lfw_pairs(lfw / "pairs.txt", lfw / "lfw")
    a, b, _ = next(p for p in pairs if p[2])
    cpu = Verifier(device="cpu", precision="float32").compare(a, b)
    gpu_v = Verifier(device=DEVICE, precision="float32")
    res, seconds, peak = _peak(lambda: gpu_v.compare(a, b))
    diff = abs(res.distance - cpu.distance)
    return {"images": [Path(a).name, Path(b).name], "distance_cuda": res.distance, "distance_cpu": cpu.distance,
            "same_cuda": res.same, "same_cpu": cpu.same, "abs_diff": diff, "seconds": seconds, "peak_mib": peak,
            "ok": res.same == cpu.same and diff <= COMPARE_TOLERANCE}


def step_parity(lfw: Path, quick: bool = False) -> dict:
    import numpy as np

    from siamgui.core.datasets import read_lfw_pairs
    from siamgui.core.verifier import Verifier

    pairs, _ = read_lfw_pairs(lfw / "pairs.txt", lfw / "lfw")
    images = list(dict.fromkeys(p for a, b, _ in pairs for p in (a, b)))[:PARITY_CHIPS]
    cpu = Verifier(device="cpu", precision="float32", cache_size=0)
    chips = [cpu.prepare(p)[0] for p in images]
    ref = cpu.embed_prepared(chips).numpy()
    out = {"chips": len(chips)}
    for name, strict, tol in (("strict_float32", True, STRICT_TOLERANCE), ("torch_defaults", False, DEFAULT_TOLERANCE)):
        _strict_float32(strict)
        gpu = Verifier(device=DEVICE, precision="float32", cache_size=0)
        emb = gpu.embed_prepared(chips).numpy()
        diff = float(np.abs(emb - ref).max())
        out[name] = {"max_abs_diff": diff, "tolerance": tol, "ok": diff <= tol}
    _strict_float32(False)
    out["ok"] = all(out[k]["ok"] for k in ("strict_float32", "torch_defaults"))
    # embedding throughput on prepared chips (no decoding, no detection)
    gpu = Verifier(device=DEVICE, precision="float32", cache_size=0)
    batch = [chips[i % len(chips)] for i in range(256 if quick else 2048)]
    gpu.embed_prepared(batch[:256], batch_size=256)  # warm-up: cuDNN picks its algorithms
    _, seconds, peak = _peak(lambda: gpu.embed_prepared(batch, batch_size=256))
    out.update(embed_faces_per_s=len(batch) / seconds, embed_batch=256, embed_peak_mib=peak)
    return out


def step_evaluate(lfw: Path, max_pairs: int | None, workers: int) -> dict:
    from siamgui.core.evaluation.run import pairs_from_lfw, run_evaluation
    from siamgui.core.verifier import Verifier

    pairset = pairs_from_lfw(lfw / "pairs.txt", lfw / "lfw")
    if max_pairs and max_pairs < len(pairset.pairs):  # evenly spaced: every fold, both kinds of pair
        import numpy as np

        keep = np.unique(np.linspace(0, len(pairset.pairs) - 1, max_pairs).round().astype(int))
        pairset.pairs = [pairset.pairs[i] for i in keep]
        pairset.folds = pairset.folds[keep] if pairset.folds is not None else None
    verifier = Verifier(device=DEVICE, precision="float32")
    result, seconds, peak = _peak(lambda: run_evaluation(verifier, pairset, worst=0, explain=False,
                                                         batch_size=128, workers=workers))
    s = result.summary()
    n = result.timing["images"]
    return {"pairs": s["pairs"], "images": n, "auc": s["auc"], "eer": s["eer"], "accuracy": s["accuracy"],
            "threshold": s["threshold"], "tenfold_accuracy_mean": s.get("tenfold_accuracy_mean"),
            "tenfold_accuracy_std": s.get("tenfold_accuracy_std"), "seconds": seconds,
            "faces_per_s": n / seconds, "peak_mib": peak, "ok": True}


def step_train(tmp: Path, quick: bool = False) -> dict:
    from siamgui.core.synthetic import make_shapes_dataset
    from siamgui.core.training import Finished, TrainConfig, train

    data = make_shapes_dataset(tmp / "shapes", n_classes=12, per_class=24, size=96, seed=0)
    cfg = TrainConfig(str(data), preset="generic", arch="resnet", image_size=96, embedding_dim=128,
                      epochs=1 if quick else 2, batch_size=128, pairs_per_epoch=256 if quick else 16384,
                      val_split=0.25, seed=0, device=DEVICE)

    def run():
        for ev in train(cfg):
            if isinstance(ev, Finished):
                return ev.result
        return None

    result, seconds, peak = _peak(run)
    timing = result.meta["training"]["timing"]
    return {"arch": "resnet", "image_size": 96, "batch_pairs": 128, "pairs": timing["pairs"],
            "pairs_per_s": timing.get("pairs_per_s"), "seconds": seconds, "peak_mib": peak,
            "val_auc": result.meta["metrics"]["auc"], "ok": result is not None}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_step(data_dir: str, loss: str, per_rank: int, world: int, env):
    """One training step (SGD: the updated weights show the gradient); (loss, state) on rank 0, else None."""
    import torch

    from siamgui.core.training import TrainConfig, train_to_end

    torch.optim.AdamW = torch.optim.SGD  # Adam's first step turns a zero gradient's float noise into +-lr
    _strict_float32(True)
    cfg = TrainConfig(data_dir, preset="generic", arch="compact-cnn", arch_kwargs={"width": 16}, image_size=48,
                      embedding_dim=32, loss=loss, margin=1.0, epochs=1, batch_size=per_rank,
                      pairs_per_epoch=per_rank * world, augment=False, val_split=0.25, val_pairs=100, seed=3,
                      device=DEVICE, lr=0.5, weight_decay=0.0, amp=False)
    steps, result = train_to_end(cfg, env)
    if result is None:
        return None
    return steps[0].loss, {k: v.detach().cpu().clone() for k, v in result.network.state_dict().items()}


def _ddp_worker(rank: int, world: int, jobs, out_dir: str) -> None:
    import torch

    from siamgui.core.training.distributed import DistEnv

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    for loss, port, data_dir, per_rank in jobs:
        os.environ["MASTER_PORT"] = str(port)
        got = _one_step(data_dir, loss, per_rank, world, DistEnv(rank, world, rank))
        if got is not None:
            torch.save({"loss": got[0], "state": got[1]}, Path(out_dir) / f"{loss}.pt")


def step_ddp(tmp: Path) -> dict:
    import torch
    import torch.multiprocessing as mp

    from siamgui.core.synthetic import make_shapes_dataset

    data = str(make_shapes_dataset(tmp / "ddp", n_classes=10, per_class=16, size=48, seed=1))
    world = min(2, torch.cuda.device_count()) if DEVICE == "cuda" else 2
    per_rank = 32 // world
    jobs = [(loss, _free_port(), data, per_rank) for loss in ("contrastive", "triplet")]
    out_dir = tmp / "ddp_out"
    out_dir.mkdir()
    adamw = torch.optim.AdamW  # _one_step swaps it for SGD
    t0 = time.perf_counter()
    if world == 1:  # one GPU: a 1-rank NCCL group still runs the DDP code path (wrap, gather, agree)
        _ddp_worker(0, 1, jobs, str(out_dir))
    else:
        mp.start_processes(_ddp_worker, args=(world, jobs, str(out_dir)), nprocs=world, join=True,
                           start_method="spawn")
    out = {"world_size": world, "backend": "nccl" if DEVICE == "cuda" else "gloo",
           "seconds": time.perf_counter() - t0, "tolerance": DDP_TOLERANCE}
    ok = True
    for loss, *_ in jobs:
        want_loss, want = _one_step(data, loss, 32, 1, None)
        got = torch.load(out_dir / f"{loss}.pt", weights_only=True)
        wdiff = max(float((got["state"][k].double() - w.double()).abs().max()) for k, w in want.items()
                    if w.is_floating_point())
        ldiff = abs(got["loss"] - want_loss)
        good = ldiff <= DDP_TOLERANCE * max(1.0, abs(want_loss)) and wdiff <= DDP_TOLERANCE
        out[loss] = {"loss_1": want_loss, f"loss_{world}": got["loss"], "loss_diff": ldiff,
                     "max_weight_diff": wdiff, "ok": good}
        ok = ok and good
    _strict_float32(False)
    torch.optim.AdamW = adamw
    out["ok"] = ok
    return out


# -- the run ---------------------------------------------------------------------------------
def _row(name: str, r: dict) -> str:
    if r.get("skipped"):
        return f"{name:<9} skipped: {r['skipped']}"
    if "error" in r:
        return f"{name:<9} FAILED: {r['error']}"
    mark = "ok " if r.get("ok") else "MISMATCH"
    if name == "compare":
        text = (f"distance cuda {r['distance_cuda']:.6f} cpu {r['distance_cpu']:.6f} (|diff| {r['abs_diff']:.1e}), "
                f"same {r['same_cuda']}/{r['same_cpu']}; {r['peak_mib']:.0f} MiB")
    elif name == "parity":
        text = (f"{r['chips']} chips: max |cuda - cpu| strict float32 {r['strict_float32']['max_abs_diff']:.1e} "
                f"(<= {STRICT_TOLERANCE:g}), torch defaults {r['torch_defaults']['max_abs_diff']:.1e} "
                f"(<= {DEFAULT_TOLERANCE:g}); embedding {r['embed_faces_per_s']:,.0f} faces/s, "
                f"{r['embed_peak_mib']:.0f} MiB")
    elif name == "evaluate":
        tf = (f", 10-fold {r['tenfold_accuracy_mean']:.4f} +- {r['tenfold_accuracy_std']:.4f}"
              if r.get("tenfold_accuracy_mean") is not None else "")
        text = (f"{r['pairs']} pairs, AUC {r['auc']:.4f}, EER {r['eer']:.4f}, accuracy {r['accuracy']:.4f}{tf}; "
                f"{r['faces_per_s']:,.0f} faces/s end to end ({r['seconds']:.0f} s), {r['peak_mib']:.0f} MiB")
    elif name == "train":
        text = (f"{r['pairs']} pairs, {r['pairs_per_s'] or 0:,.0f} pairs/s, val AUC {r['val_auc']:.4f}, "
                f"{r['seconds']:.0f} s, {r['peak_mib']:.0f} MiB")
    else:
        parts = [f"{k}: loss diff {v['loss_diff']:.1e}, weights {v['max_weight_diff']:.1e}"
                 for k, v in r.items() if isinstance(v, dict)]
        text = f"{r['world_size']} x {r['backend']} vs 1 process; " + "; ".join(parts)
    return f"{name:<9} {mark} {text}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", help="LFW folder with pairs.txt and lfw/ (default: $SIAMGUI_LFW or ../shared/data/lfw)")
    ap.add_argument("--pairs", type=int, help="evaluate on the first N pairs of View 2 only (default: all 6,000)")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 2),
                    help="image preparation threads for the evaluation (default: up to 8)")
    ap.add_argument("--json", help="also write the JSON object to this file")
    ap.add_argument("--quick", action="store_true", help="smaller training and throughput runs (a rehearsal)")
    args = ap.parse_args(argv)

    import torch

    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("gpu-check: skipped: no CUDA GPU (torch.cuda.is_available() is False); nothing was checked")
        if args.json:
            Path(args.json).write_text(json.dumps({"skipped": "no CUDA GPU"}) + "\n")
        return 0
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    t_all = time.perf_counter()
    lfw = _lfw_dir(args.lfw)
    has_lfw = (lfw / "pairs.txt").is_file() and (lfw / "lfw").is_dir()
    report: dict = {"device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else f"{DEVICE} (rehearsal, not a check)",
                    "gpus": torch.cuda.device_count() if DEVICE == "cuda" else 0,
                    "torch": torch.__version__, "cuda": torch.version.cuda, "steps": {}}
    with tempfile.TemporaryDirectory(prefix="siamgui-gpu-check-") as tmp:
        steps = [("compare", lambda: step_compare(lfw), True), ("parity", lambda: step_parity(lfw, args.quick), True),
                 ("evaluate", lambda: step_evaluate(lfw, args.pairs, args.workers), True),
                 ("train", lambda: step_train(Path(tmp), args.quick), False), ("ddp", lambda: step_ddp(Path(tmp)), False)]
        for name, fn, needs_lfw in steps:
            if needs_lfw and not has_lfw:
                r = {"skipped": f"no LFW at {lfw} (pairs.txt and lfw/)"}
            else:
                try:
                    r = fn()
                except Exception as exc:  # noqa: BLE001 - reported, and the exit code says it failed
                    r = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                         "traceback": traceback.format_exc(limit=6)}
            report["steps"][name] = r
            print(_row(name, r), flush=True)
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    failed = [n for n, r in report["steps"].items() if "error" in r or (not r.get("skipped") and not r.get("ok"))]
    report["ok"] = not failed
    print(f"gpu-check: {'passed' if not failed else 'FAILED: ' + ', '.join(failed)} in {report['seconds']:.0f} s "
          f"on {report['device']}")
    text = json.dumps(report, default=float)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())

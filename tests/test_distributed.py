"""Data-parallel training (torch.distributed, gloo on the CPU): a torchrun job writes one model from
rank 0, and one step on a fixed global batch equals the one-process step (loss and weights)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamgui.core.training.distributed import DistEnv, env_from_environ

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from siamgui.core.synthetic import make_shapes_dataset

    return make_shapes_dataset(tmp_path_factory.mktemp("ddp") / "data", n_classes=8, per_class=8, size=32, seed=3)


@pytest.fixture(scope="module")
def forged_set(tmp_path_factory, tiny_set):
    """tiny_set plus skilled forgeries (NAME_forg) of every class: the triplet batches then hold extra
    forgery images, so the parts of a global batch split unevenly across ranks."""
    import shutil

    import numpy as np

    from siamgui.core.synthetic import draw_shape

    root = tmp_path_factory.mktemp("ddp_forged") / "data"
    shutil.copytree(tiny_set, root)
    rng = np.random.default_rng(4)
    for cls in sorted(p.name for p in tiny_set.iterdir() if p.is_dir()):
        (root / f"{cls}_forg").mkdir()
        for i in range(3):
            draw_shape("hexagon", 32, rng).save(root / f"{cls}_forg" / f"f{i}.png")
    return root


def _config(data_dir, loss, per_rank_batch, world, steps=1, **extra):
    from siamgui.core.training import TrainConfig

    # one step: the epoch is exactly one global batch; no augmentation (its seed differs per rank);
    # a large learning rate so that the step moves the weights far beyond the comparison's tolerance
    pairs = per_rank_batch * world * steps
    return TrainConfig(str(data_dir), preset="generic", arch="compact-cnn", arch_kwargs={"width": 4},
                       image_size=24, embedding_dim=8, loss=loss, margin=1.0, epochs=1, batch_size=per_rank_batch,
                       lr=0.5, weight_decay=0.0,
                       pairs_per_epoch=pairs, augment=False, val_split=0.25, val_pairs=40, seed=5, device="cpu",
                       workers=1, **extra)


def _plain_sgd():
    """The training loop's AdamW replaced by SGD, so that the updated weights show the gradient itself:
    Adam's first step is lr * g / |g|, which turns the float noise of a zero gradient (the head's bias:
    distances ignore a shift of every embedding) into +-lr."""
    torch.optim.AdamW = torch.optim.SGD


def _one_step(data_dir, loss, per_rank_batch, env):
    """Train one step; (the step's loss, the weights and statistics after it) from rank 0, None elsewhere."""
    from siamgui.core.training import train_to_end

    steps, result = train_to_end(_config(data_dir, loss, per_rank_batch, env.world_size if env else 1), env)
    if result is None:
        return None
    assert len(steps) == 1
    return steps[0].loss, {k: v.clone() for k, v in result.network.state_dict().items()}


#: Rank 1's clock in the budget job runs this many times faster than rank 0's.
FAST_CLOCK = 1e6


def _rank_worker(rank, world, jobs, budget_job, out_dir):
    """One rank of a 2-process job (torch.multiprocessing.spawn): every (name, loss, port, data dir)
    one-step job in turn, then the time-budget job with rank 1's clock running fast."""
    torch.set_num_threads(1)
    _plain_sgd()
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    for name, loss, port, data_dir, per_rank_batch in jobs:
        os.environ["MASTER_PORT"] = str(port)
        got = _one_step(data_dir, loss, per_rank_batch, DistEnv(rank, world, rank))
        assert (got is None) == (rank != 0)  # only rank 0 gets a model
        if got is not None:
            torch.save({"loss": got[0], "state": got[1]}, Path(out_dir) / f"{name}.pt")
        assert not torch.distributed.is_initialized()  # train() left the group
    import time

    from siamgui.core.training import train_to_end

    port, data_dir = budget_job
    os.environ["MASTER_PORT"] = str(port)
    if rank == 1:
        real, t0 = time.perf_counter, time.perf_counter()
        time.perf_counter = lambda: t0 + (real() - t0) * FAST_CLOCK
    steps, _ = train_to_end(_config(data_dir, "contrastive", 8, world, steps=3, time_budget_s=3600.0),
                            DistEnv(rank, world, rank))
    (Path(out_dir) / f"lr{rank}.json").write_text(json.dumps([s.lr for s in steps]))


@pytest.fixture(scope="module")
def two_process_runs(tiny_set, forged_set, tmp_path_factory):
    """One 2-process spawn for every job below (starting the processes is most of the time)."""
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ddp_runs")
    jobs = [(f"{name}-{loss}", loss, free_port(), str(data), 8)
            for name, data in (("plain", tiny_set), ("forged", forged_set)) for loss in ("contrastive", "triplet")]
    mp.start_processes(_rank_worker, args=(2, jobs, (free_port(), str(tiny_set)), str(out)), nprocs=2, join=True,
                       start_method="spawn")
    return out


def test_environment_detection():
    assert env_from_environ({}) is None
    assert env_from_environ({"WORLD_SIZE": "1", "RANK": "0"}) is None  # torchrun with one process: plain training
    env = env_from_environ({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert env == DistEnv(2, 4, 0) and not env.is_main
    from siamgui.core.errors import SiamguiError

    with pytest.raises(SiamguiError):
        env_from_environ({"WORLD_SIZE": "2", "RANK": "5"})
    with pytest.raises(SiamguiError):
        env_from_environ({"WORLD_SIZE": "two"})


def test_share_and_gather_rebuild_the_global_batch_order():
    """Without a process group: the layout arithmetic that gather relies on."""
    import numpy as np

    from siamgui.core.training.distributed import Distributed

    d = Distributed.__new__(Distributed)  # share() needs only the rank and world size
    parts = (np.arange(7), np.arange(100, 107))
    layouts, shares = [], []
    for rank in range(3):
        d.env = DistEnv(rank, 3, rank)
        mine, layout = d.share(parts)
        layouts.append(layout)
        shares.append(np.concatenate(mine))
        assert [len(m) for m in mine] == [layout[0][rank], layout[1][rank]]
    assert layouts[0] == layouts[1] == layouts[2] == [[3, 2, 2], [3, 2, 2]]
    # gather's reassembly: part by part, rank by rank
    offsets, rebuilt = [0, 0, 0], []
    for sizes in layouts[0]:
        for r, n in enumerate(sizes):
            rebuilt.append(shares[r][offsets[r]:offsets[r] + n])
            offsets[r] += n
    assert np.array_equal(np.concatenate(rebuilt), np.concatenate(parts))


@pytest.mark.parametrize("data", ["plain", "forged"])
def test_one_step_with_two_processes_equals_one_process(data, two_process_runs, tiny_set, forged_set, monkeypatch):
    """Same global batch: 1 process with 16 per step vs 2 processes with 8 each, contrastive and
    batch-hard triplet, without skilled forgeries (the default) and with them. The loss and every
    weight and batch-norm statistic after the step agree."""
    torch.set_num_threads(1)
    data_dir = {"plain": tiny_set, "forged": forged_set}[data]
    monkeypatch.setattr(torch.optim, "AdamW", torch.optim.SGD)  # as _plain_sgd() in the workers
    for loss in ("contrastive", "triplet"):
        want_loss, want = _one_step(data_dir, loss, 16, None)
        got = torch.load(two_process_runs / f"{data}-{loss}.pt", weights_only=True)
        assert abs(got["loss"] - want_loss) <= 1e-5 * max(1.0, abs(want_loss)), (loss, got["loss"], want_loss)
        assert set(got["state"]) == set(want)
        worst = max(float((got["state"][k] - w).abs().max()) for k, w in want.items() if w.is_floating_point())
        print(f"{data} {loss}: loss 1 process {want_loss:.7f}, 2 processes {got['loss']:.7f}; "
              f"largest weight difference {worst:.2e}")
        for name, w in want.items():
            g = got["state"][name]
            if w.is_floating_point():
                torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4, msg=f"{data} {loss}: {name}")
            else:
                assert torch.equal(g, w), (loss, name)
        assert want_loss > 0  # a batch with something to learn: the step changed the weights


def test_time_budget_schedule_follows_rank_0s_clock(two_process_runs):
    """With a time budget the learning rate follows steps or time; every rank takes rank 0's time, so a
    rank whose clock runs fast (its own time would say the budget is spent) applies the same rates."""
    lr0, lr1 = (json.loads((two_process_runs / f"lr{r}.json").read_text()) for r in (0, 1))
    assert len(lr0) == len(lr1) == 3  # rank 1 did not stop early on its own clock either
    assert lr1 == lr0
    assert lr0[0] > 0.5 * 0.5  # rank 0's schedule: the first step's rate is near the peak, not the floor 0.02 x lr


def test_torchrun_job_writes_one_model_from_rank_0(tiny_set, tmp_path):
    """``torchrun --nproc-per-node 2 -m siamgui train``: one model file, which loads and scores;
    rank 1 prints and writes nothing."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    logs = tmp_path / "logs"
    model = out_dir / "m.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
           "--log-dir", str(logs), "--redirects", "3",
           "-m", "siamgui", "train", str(tiny_set), "--out", str(model), "--arch", "compact-cnn",
           "--image-size", "24", "--embedding-dim", "8", "--epochs", "2", "--batch-size", "8",
           "--pairs-per-epoch", "32", "--loss", "triplet", "--device", "cpu", "--log-json", str(out_dir / "log.jsonl")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    rank_logs = {p.parent.name: p for p in logs.rglob("*.log")}
    assert proc.returncode == 0, proc.stderr[-3000:] + "".join(p.read_text()[-2000:] for p in rank_logs.values())
    assert sorted(p.name for p in out_dir.iterdir()) == ["log.jsonl", "m.safetensors"]  # no temp or second file
    by_rank = {}
    for path in logs.rglob("*.log"):
        by_rank.setdefault(path.parent.name, "")
        by_rank[path.parent.name] += path.read_text()
    assert "saved" in by_rank["0"] and by_rank["1"].strip() == "", by_rank["1"][-2000:]
    from siamgui.core.modelfile import load_model
    from siamgui.core.verifier import Verifier

    loaded = load_model(model)
    dist = loaded.meta["training"]["distributed"]
    assert dist == {"world_size": 2, "backend": "gloo", "per_rank_batch": 8, "global_batch": 16}
    verifier = Verifier(model, device="cpu")
    classes = sorted(p for p in tiny_set.iterdir() if p.is_dir())
    imgs = sorted(classes[0].iterdir())
    res = verifier.compare(imgs[0], imgs[1])
    assert res.distance >= 0 and torch.isfinite(torch.tensor(res.distance))
    events = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "epoch" for e in events) == 2

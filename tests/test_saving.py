"""Saving models: atomic overwrites, read-only and full destinations, Ctrl-C and Stop during training.

Root ignores permissions, so read-only and full destinations are simulated by
making the write fail with the error the system gives (EROFS, and safetensors'
own error for ENOSPC, measured on a full tmpfs); where the test may mount a
small tmpfs (root on Linux), the real thing is tried too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import torch

from _faults_helpers import assert_one_line_error, run_main
from _faults_helpers import tmpfs as _tmpfs
from siamgui.core.errors import ModelFileError
from siamgui.core.modelfile import load_model, save_model
from siamgui.core.synthetic import make_shapes_dataset

TRAIN_ARGS = ["--arch", "compact-cnn", "--image-size", "16", "--embedding-dim", "8", "--batch-size", "16",
              "--pairs-per-epoch", "32", "--val-split", "0", "--device", "cpu", "--seed", "0"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("data") / "d", n_classes=4, per_class=4, size=24, seed=0)


def _same_weights(a, b) -> bool:
    sa, sb = a.encoder.state_dict(), b.encoder.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


def _fail_writes_under(monkeypatch, folder, exc):
    """Creating any file in ``folder`` (the atomic write's temporary file) raises ``exc``."""
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):
        if dir is not None and os.path.realpath(dir) == os.path.realpath(folder):
            raise exc
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _disk_full_under(monkeypatch, folder):
    """safetensors reports a full disk as SafetensorError (seen on a 64 KiB tmpfs), not OSError."""
    import safetensors.torch
    from safetensors import SafetensorError

    real = safetensors.torch.save_file

    def save_file(tensors, filename, metadata=None):
        if os.path.realpath(os.path.dirname(filename)) == os.path.realpath(folder):
            with open(filename, "wb") as fh:
                fh.write(b"\0" * 100)  # a partial file, as a real full disk leaves
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


# -- atomic overwrite --------------------------------------------------------------------------
def test_overwrite_failing_at_replace_keeps_old_file(tmp_path, tiny_model, monkeypatch):
    """The new file is complete but the final rename fails: the old model is intact, no temp file."""
    m = load_model(tiny_model)
    path = save_model(tmp_path / "m.safetensors", m.network, m.meta)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ModelFileError, match="Input/output error"):
        save_model(path, m.network, dict(m.meta, threshold=0.123))
    monkeypatch.undo()
    assert path.read_bytes() == before and _listing(tmp_path) == ["m.safetensors"]


def test_overwrite_killed_mid_write_keeps_old_file(tmp_path, tiny_model):
    """A process killed (SIGKILL, no clean-up possible) while writing: the old model still loads."""
    m = load_model(tiny_model)
    path = save_model(tmp_path / "m.safetensors", m.network, m.meta)
    before = path.read_bytes()
    script = f"""
import sys, time, safetensors.torch
from siamgui.core.modelfile import load_model, save_model
m = load_model({str(tiny_model)!r})
def slow(tensors, filename, metadata=None):
    with open(filename, "wb") as fh:
        fh.write(b"half a model")
        fh.flush()
        print("writing", flush=True)
        time.sleep(60)
safetensors.torch.save_file = slow
save_model({str(path)!r}, m.network, dict(m.meta, threshold=0.5))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.kill()
    finally:
        proc.wait(30)
    assert path.read_bytes() == before
    assert load_model(path).threshold == m.threshold
    leftovers = [n for n in _listing(tmp_path) if n != "m.safetensors"]
    # only the hidden temporary file can remain; it never ends in .safetensors, so no list shows it
    assert all(n.startswith(".m.safetensors.") and n.endswith(".tmp") for n in leftovers), leftovers


def test_two_saves_racing_to_one_path(tmp_path, tiny_model):
    """Two saves of different models to the same file at once: the file is one of them, whole."""
    import threading

    m = load_model(tiny_model)
    path = tmp_path / "m.safetensors"
    metas = [dict(m.meta, threshold=t) for t in (0.25, 0.75)]
    errors = []

    def save(meta):
        try:
            for _ in range(5):
                save_model(path, m.network, meta)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(meta,)) for meta in metas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert load_model(path).threshold in (0.25, 0.75)
    assert _listing(tmp_path) == ["m.safetensors"]


# -- read-only and full destinations ----------------------------------------------------------------
@pytest.mark.parametrize("case", ["read-only", "permission-denied", "disk-full"])
def test_unwritable_destination_keeps_model_in_memory(case, tmp_path, tiny_model, monkeypatch):
    m = load_model(tiny_model)
    dest = tmp_path / "dest"
    dest.mkdir()
    if case == "read-only":
        _fail_writes_under(monkeypatch, dest, OSError(errno.EROFS, "Read-only file system"))
        expect = "Read-only file system"
    elif case == "permission-denied":
        _fail_writes_under(monkeypatch, dest, PermissionError(errno.EACCES, "Permission denied"))
        expect = "Permission denied"
    else:
        _disk_full_under(monkeypatch, dest)
        expect = "No space left on device"
    with pytest.raises(ModelFileError) as info:
        save_model(dest / "m.safetensors", m.network, m.meta)
    msg = str(info.value)
    assert expect in msg and "still in memory" in msg and "\n" not in msg, msg
    assert _listing(dest) == []  # no partial or temporary file
    elsewhere = save_model(tmp_path / "elsewhere.safetensors", m.network, m.meta)
    assert _same_weights(load_model(elsewhere).network, m.network)


def test_real_read_only_and_full_tmpfs(tmp_path):
    """The same on real file systems: a read-only tmpfs, and a 64 KiB one for a ~350 KiB model."""
    import safetensors.torch
    from safetensors import SafetensorError

    from siamgui.core.modelfile import make_meta
    from siamgui.core.models import SiameseNetwork, build_encoder
    from siamgui.core.preprocess import preset_spec

    kwargs = {"in_channels": 3, "embedding_dim": 64, "width": 32}
    net = SiameseNetwork(build_encoder("compact-cnn", **kwargs))
    meta = make_meta(architecture={"name": "compact-cnn", "kwargs": kwargs}, preprocess=preset_spec("generic", 32),
                     threshold=0.5)
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        with pytest.raises(ModelFileError, match="Read-only file system.*still in memory"):
            save_model(ro / "m.safetensors", net, meta)
    with _tmpfs(tmp_path / "full", "size=64k") as full:
        # what the simulation above copies: safetensors' own error type for ENOSPC
        with pytest.raises(SafetensorError, match="No space left on device"):
            safetensors.torch.save_file({"w": torch.zeros(100_000)}, str(full / "probe.safetensors"))
        with contextlib.suppress(FileNotFoundError):  # safetensors removes its partial file
            os.unlink(full / "probe.safetensors")
        with pytest.raises(ModelFileError, match="No space left on device.*still in memory"):
            save_model(full / "m.safetensors", net, meta)
        assert _listing(full) == []
    assert load_model(save_model(tmp_path / "ok.safetensors", net, meta)).meta["threshold"] == 0.5


def test_cli_train_refuses_unwritable_out_before_training(tmp_path, small_data, monkeypatch, capsys):
    dest = tmp_path / "ro"
    dest.mkdir()
    _fail_writes_under(monkeypatch, dest, OSError(errno.EROFS, "Read-only file system"))
    t0 = time.perf_counter()
    code, out, err = run_main(capsys, "train", small_data, "--out", dest / "m.safetensors", "--epochs", "1",
                              *TRAIN_ARGS)
    assert_one_line_error(code, err, "read-only file system")  # one line: no epoch was run
    assert time.perf_counter() - t0 < 5 and out == "" and _listing(dest) == []


def test_cli_train_disk_full_at_the_end_keeps_the_model(tmp_path, small_data, monkeypatch, capsys):
    """The disk fills up during the final save: the model goes to the app's data folder, and says so."""
    from siamgui.core.resources import user_data_dir

    dest = tmp_path / "dest"
    dest.mkdir()
    _disk_full_under(monkeypatch, dest)
    code, out, err = run_main(capsys, "train", small_data, "--out", dest / "m.safetensors", "--epochs", "1",
                              *TRAIN_ARGS)
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "No space left on device" in last and "saved to" in last, err
    rescued = list((user_data_dir() / "unsaved").glob("m-*.safetensors"))
    assert len(rescued) == 1 and str(rescued[0]) in last
    assert load_model(rescued[0]).meta["training"]["epochs_run"] == 1
    assert _listing(dest) == []


def test_cli_log_json_in_missing_folder(tmp_path, small_data, capsys):
    code, _, err = run_main(capsys, "train", small_data, "--out", tmp_path / "m.safetensors",
                            "--log-json", tmp_path / "no" / "such" / "log.jsonl", *TRAIN_ARGS)
    assert_one_line_error(code, err, "log-json")
    assert _listing(tmp_path) == []


# -- Ctrl-C and Stop ------------------------------------------------------------------------------------------
def test_ctrl_c_during_cli_training_leaves_nothing(tmp_path, small_data):
    """SIGINT to `siamgui train` after its first epoch: exit 130, nothing at --out, no temporary file."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "m.safetensors"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "siamgui", "train", str(small_data), "--out", str(out),
                             "--epochs", "500", *TRAIN_ARGS], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path,
                            # a suite started in the background (`make test &`) inherits SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("epoch 1/500"):
                proc.send_signal(signal.SIGINT)
                break
        rest_out, rest_err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert any(ln.startswith("epoch 1/500") for ln in lines), "".join(lines)
    assert proc.returncode == 130, rest_err
    assert "interrupted; nothing was written" in rest_err and "Traceback" not in rest_err
    assert "saved" not in rest_out
    assert _listing(out_dir) == [] and _listing(tmp_path) == ["out"]


def test_stop_during_training_writes_nothing(tmp_path, small_data):
    """Stop (TrainControl.cancel) mid-epoch: the job ends cleanly and train() never writes a file."""
    from siamgui.core.training import Finished, Step, TrainConfig, TrainControl, train

    before = sorted(p.name for p in small_data.rglob("*"))
    cfg = TrainConfig(str(small_data), arch="compact-cnn", image_size=16, embedding_dim=8, epochs=50,
                      batch_size=8, pairs_per_epoch=64, val_split=0.0, device="cpu", val_pairs=32, workers=1)
    control = TrainControl()
    events = []
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for ev in train(cfg, control):
            events.append(ev)
            if isinstance(ev, Step) and ev.global_step == 3:
                control.cancel()
    finally:
        os.chdir(cwd)
    done = events[-1]
    assert isinstance(done, Finished) and done.cancelled and done.result is None
    assert sum(isinstance(ev, Step) for ev in events) == 3
    assert _listing(tmp_path) == [] and sorted(p.name for p in small_data.rglob("*")) == before

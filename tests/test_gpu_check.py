"""bench/gpu_check.py (``make gpu-check``) without a GPU: one line saying it was skipped, exit 0."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_without_cuda_it_says_skipped_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))  # no GPU visible, even on a GPU machine
    env.pop("GPU_CHECK_DEVICE", None)
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--json", str(out)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "skipped" in lines[0] and "no CUDA GPU" in lines[0], proc.stdout
    assert json.loads(out.read_text()) == {"skipped": "no CUDA GPU"}


def test_a_failed_step_makes_the_exit_code_non_zero(monkeypatch, capsys, tmp_path):
    """The table and JSON still come out; a mismatch or an error is exit 1 (steps stubbed: no GPU needed)."""
    sys.path.insert(0, str(REPO))
    from bench import gpu_check

    monkeypatch.setattr(gpu_check, "DEVICE", "cpu")
    monkeypatch.setattr(gpu_check, "step_train", lambda tmp, quick=False: {"pairs": 1, "pairs_per_s": 1.0, "seconds": 1,
                                                                          "peak_mib": 0, "val_auc": 0.5, "ok": True})

    def bad_ddp(tmp):
        raise RuntimeError("NCCL error: unhandled system error")

    monkeypatch.setattr(gpu_check, "step_ddp", bad_ddp)
    assert gpu_check.main(["--lfw", str(tmp_path / "no-lfw")]) == 1
    out = capsys.readouterr().out
    assert "compare   skipped: no LFW" in out and "ddp       FAILED: RuntimeError: NCCL error" in out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["ok"] is False and report["steps"]["train"]["ok"] is True

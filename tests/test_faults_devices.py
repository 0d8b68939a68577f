"""Device faults: CUDA asked for but absent, a missing GPU index, out of memory in training and inference.

The GPU cases are simulated by raising the error type torch raises, so they run
(and mean the same) on machines with and without CUDA.
"""

from __future__ import annotations

import pytest
import torch

from _faults_helpers import assert_one_line_error, run_cli, run_main
from siamgui.core import device as dev
from siamgui.core.errors import DeviceError
from siamgui.core.synthetic import make_shapes_dataset
from siamgui.core.training import Epoch, Step, TrainConfig, train

CUDA_REASON = "CUDA was requested but no CUDA GPU is available; using the CPU."


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("data") / "d", n_classes=4, per_class=4, size=24, seed=0)


@pytest.fixture()
def image(tmp_path):
    from PIL import Image

    path = tmp_path / "a.png"
    Image.new("RGB", (24, 24), (200, 100, 0)).save(path)
    return path


def test_cuda_absent_compare_and_evaluate_fall_back_with_reason(monkeypatch, tiny_model, image, shapes_dir, capsys):
    monkeypatch.setattr(dev, "cuda_available", lambda: False)
    code, out, err = run_main(capsys, "compare", image, image, "--model", tiny_model, "--device", "cuda", "--json")
    assert code == 0 and '"device": "cpu"' in out
    assert err.strip() == f"siamgui: note: {CUDA_REASON}"
    code, out, err = run_main(capsys, "evaluate", shapes_dir, "--model", tiny_model, "--device", "cuda",
                              "--num-pairs", "20", "--json")
    assert code == 0 and err.strip() == f"siamgui: note: {CUDA_REASON}"


def test_cuda_absent_training_falls_back_with_reason(monkeypatch, small_data, tmp_path, capsys):
    monkeypatch.setattr(dev, "cuda_available", lambda: False)
    out = tmp_path / "m.safetensors"
    code, stdout, err = run_main(capsys, "train", small_data, "--out", out, "--device", "cuda", "--epochs", "1",
                                 "--arch", "compact-cnn", "--image-size", "16", "--pairs-per-epoch", "32",
                                 "--batch-size", "16", "--val-split", "0")
    assert code == 0, err
    assert err.splitlines()[0] == f"siamgui: warning: {CUDA_REASON}"
    from siamgui.core.modelfile import read_metadata

    assert read_metadata(out)["training"]["device"] == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: nothing to fall back from")
def test_cuda_absent_real_process(tiny_model, image):
    proc = run_cli("compare", image, image, "--model", tiny_model, "--device", "cuda")
    assert proc.returncode == 0 and "verdict" in proc.stdout
    assert proc.stderr.strip() == f"siamgui: note: {CUDA_REASON}"


def test_missing_gpu_index_falls_back_to_the_first(monkeypatch):
    monkeypatch.setattr(dev, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    choice = dev.select_device("cuda:3")
    assert choice.device == torch.device("cuda:0") and "only 1 CUDA GPU" in choice.reason
    assert dev.select_device("cuda:0").reason == ""
    with pytest.raises(ValueError):
        dev.select_device("cuda:abc")


def _cfg(root, **kw):
    base = dict(arch="compact-cnn", arch_kwargs={"width": 4}, image_size=16, embedding_dim=8, epochs=3,
                pairs_per_epoch=32, batch_size=16, val_split=0.0, device="cpu", val_pairs=32, workers=1)
    base.update(kw)
    return TrainConfig(str(root), **base)


OOM_ERRORS = {
    "cuda-oom": lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; "
                                                    "79.19 GiB total capacity; 78.50 GiB already allocated)"),
    # what torch's CPU allocator raises when a batch does not fit (measured: a RuntimeError, not MemoryError)
    "cpu-alloc": lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                                      "allocate memory: you tried to allocate 720000000000 bytes. Error code 12 "
                                      "(Cannot allocate memory)"),
    "memory-error": lambda: MemoryError(),
}


@pytest.mark.parametrize("kind", list(OOM_ERRORS))
def test_out_of_memory_during_training_suggests_a_smaller_batch(kind, small_data, monkeypatch):
    """Raised inside the loop (the 4th loss call: epoch 1's two steps, its validation, then epoch 2's first
    step): a DeviceError suggesting a smaller batch, not a crash."""
    from siamgui.core import losses

    calls = {"n": 0}
    real = losses.ContrastiveLoss.forward

    def forward(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OOM_ERRORS[kind]()
        return real(self, *a, **k)

    monkeypatch.setattr(losses.ContrastiveLoss, "forward", forward)
    seen = []
    with pytest.raises(DeviceError) as info:
        for ev in train(_cfg(small_data)):
            seen.append(ev)
    msg = str(info.value)
    assert "smaller batch size" in msg and "16" in msg and "\n" not in msg, msg
    assert sum(isinstance(ev, Epoch) for ev in seen) == 1 and sum(isinstance(ev, Step) for ev in seen) == 2


def test_out_of_memory_during_cli_training(small_data, tmp_path, monkeypatch, capsys):
    from siamgui.core import losses

    def forward(self, *a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(losses.ContrastiveLoss, "forward", forward)
    out = tmp_path / "m.safetensors"
    code, _, err = run_main(capsys, "train", small_data, "--out", out, "--device", "cpu", "--batch-size", "512",
                            "--arch", "compact-cnn", "--image-size", "16", "--val-split", "0")
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert last.startswith("siamgui: error: The GPU ran out of memory at batch size 512; try a smaller batch size")
    assert not out.exists()


def test_out_of_memory_during_compare(tiny_model, image, monkeypatch, capsys):
    """Inference on a full GPU: a DeviceError (exit 2, one line), and the next compare works."""
    from siamgui.core.verifier import Verifier

    v = Verifier(str(tiny_model), device="cpu")
    net = v.inference_network  # the network inference runs (a bfloat16 copy on some CPUs)
    real = net.embed
    monkeypatch.setattr(net, "embed", lambda x: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("CUDA oom")))
    with pytest.raises(DeviceError, match="ran out of memory"):
        v.compare(image, image)
    monkeypatch.setattr(net, "embed", real)
    assert v.compare(image, image).distance == pytest.approx(0.0, abs=1e-6)

    from siamgui.core.models import SiameseNetwork

    monkeypatch.setattr(SiameseNetwork, "embed", lambda self, x: (_ for _ in ()).throw(
        torch.cuda.OutOfMemoryError("CUDA oom")))
    code, out, err = run_main(capsys, "compare", image, image, "--model", tiny_model)
    assert out == ""
    assert_one_line_error(code, err, "ran out of memory")

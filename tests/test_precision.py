"""The encoder's inference dtype: bfloat16 where the CPU computes it natively, float32
otherwise or on request; the saved network stays float32 either way."""

import json

import pytest
import torch

from siamgui.core import device as dev
from siamgui.core.resources import has_bundled_model
from siamgui.core.verifier import Verifier

from conftest import LFW_ROOT, lfw_available
from test_cli import run_cli
from test_verifier_cache import _photos


def test_auto_follows_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    choice = dev.select_precision("auto", cpu)
    assert choice.dtype == torch.bfloat16 and choice.name == "bfloat16" and choice.reason
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    assert dev.select_precision("auto", cpu).dtype == torch.float32
    assert dev.select_precision(None, cpu).dtype == torch.float32


def test_auto_on_a_gpu_is_float32(monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    assert dev.select_precision("auto", torch.device("cuda")).dtype == torch.float32


def test_explicit_choices_and_unknown():
    cpu = torch.device("cpu")
    assert dev.select_precision("float32", cpu).dtype == torch.float32
    assert dev.select_precision("bfloat16", cpu).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        dev.select_precision("half", cpu)


def test_cli_choices_match_the_core():
    from siamgui import cli

    assert cli.PRECISIONS == dev.PRECISION_CHOICES and cli.DEVICES == dev.DEVICE_CHOICES


def test_bfloat16_verifier_is_close_and_leaves_the_network_float32(tiny_model, tmp_path):
    a, b, c, d = _photos(tmp_path)
    exact = Verifier(tiny_model, device="cpu", precision="float32", cache_size=0)
    fast = Verifier(tiny_model, device="cpu", precision="bfloat16", cache_size=0)
    assert exact.inference_network is exact.network
    assert all(p.dtype == torch.float32 for p in fast.network.parameters())
    assert all(p.dtype == torch.float32 for p in fast.loaded.network.parameters())  # what gets saved
    assert all(p.dtype == torch.bfloat16 for p in fast.inference_network.parameters())
    e32 = exact.embed([a, b, c, d])
    e16 = fast.embed([a, b, c, d])
    assert e16.dtype == torch.float32
    assert not torch.equal(e16, e32)  # it really ran in bfloat16
    scale = e32.norm(dim=1).mean()
    assert (e16 - e32).abs().max() < 0.02 * scale


@pytest.mark.skipif(not (has_bundled_model() and lfw_available()), reason="needs the bundled model and LFW")
def test_bundled_face_model_in_bfloat16_keeps_the_verdicts():
    same = (LFW_ROOT / "George_W_Bush" / "George_W_Bush_0001.jpg", LFW_ROOT / "George_W_Bush" / "George_W_Bush_0002.jpg")
    other = (same[0], LFW_ROOT / "Colin_Powell" / "Colin_Powell_0001.jpg")
    exact = Verifier(device="cpu", precision="float32")
    fast = Verifier(device="cpu", precision="bfloat16")
    assert fast.flip_average  # the mirror goes through the bfloat16 path as well
    for pair, want in ((same, True), (other, False)):
        r32, r16 = exact.compare(*pair), fast.compare(*pair)
        assert r32.same is want and r16.same is want
        assert r16.distance == pytest.approx(r32.distance, abs=0.01)  # LFW: at most 0.0051 over 7,000 pairs


def test_cli_reports_and_takes_the_precision(tiny_model, tmp_path):
    a, b = _photos(tmp_path, 2)
    r = run_cli("compare", a, b, "--model", tiny_model, "--precision", "float32", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["precision"] == "float32"
    r = run_cli("compare", a, b, "--model", tiny_model, "--precision", "half")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "half" in r.stderr

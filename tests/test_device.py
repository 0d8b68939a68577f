"""Device choice and fallback."""

import pytest
import torch

from siamgui.core import device as dev


def test_auto_is_a_real_device():
    choice = dev.select_device("auto")
    assert choice.device.type in ("cpu", "cuda", "mps") and choice.reason == ""


def test_cuda_fallback_states_reason(monkeypatch):
    monkeypatch.setattr(dev, "cuda_available", lambda: False)
    choice = dev.select_device("cuda")
    assert choice.device == torch.device("cpu") and "CUDA" in choice.reason


def test_mps_fallback(monkeypatch):
    monkeypatch.setattr(dev, "mps_available", lambda: False)
    assert dev.select_device("mps").reason


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(dev, "cuda_available", lambda: False)
    monkeypatch.setattr(dev, "mps_available", lambda: True)
    assert dev.select_device("auto").device.type == "mps"


def test_unknown_device():
    with pytest.raises(ValueError):
        dev.select_device("tpu")

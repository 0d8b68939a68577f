"""Choosing the compute device: auto = CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    requested: str
    #: Why the device differs from the request (empty when it does not).
    reason: str = ""

    @property
    def name(self) -> str:
        return self.device.type


def cuda_available() -> bool:
    return torch.cuda.is_available()


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_devices() -> dict[str, bool]:
    return {"cpu": True, "cuda": cuda_available(), "mps": mps_available()}


def select_device(requested: str | None = "auto") -> DeviceChoice:
    """Resolve a device name; an unavailable one falls back to the CPU with a reason."""
    req = (requested or "auto").lower()
    if req.startswith("cuda:"):
        base = "cuda"
    else:
        base = req
    if base not in DEVICE_CHOICES:
        raise ValueError(f"Unknown device {requested!r}; choose from {', '.join(DEVICE_CHOICES)}")
    if base == "auto":
        if cuda_available():
            return DeviceChoice(torch.device("cuda"), req)
        if mps_available():
            return DeviceChoice(torch.device("mps"), req)
        return DeviceChoice(torch.device("cpu"), req)
    if base == "cuda":
        if cuda_available():
            try:
                index = torch.device(req).index
            except RuntimeError:
                raise ValueError(f"Unknown device {requested!r}; use cuda or cuda:N") from None
            count = torch.cuda.device_count()
            if index is not None and index >= count:
                return DeviceChoice(torch.device("cuda:0"), req, f"{req} was requested but there are only {count} "
                                                                 "CUDA GPU(s); using cuda:0.")
            return DeviceChoice(torch.device(req), req)
        return DeviceChoice(torch.device("cpu"), req, "CUDA was requested but no CUDA GPU is available; using the CPU.")
    if base == "mps":
        if mps_available():
            return DeviceChoice(torch.device("mps"), req)
        return DeviceChoice(torch.device("cpu"), req, "MPS was requested but is not available; using the CPU.")
    return DeviceChoice(torch.device("cpu"), req)

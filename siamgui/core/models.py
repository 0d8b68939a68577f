"""Encoder architectures (a registry by name) and the Siamese network.

An architecture is stored in a model file as ``{"name": ..., "kwargs": {...}}``
and rebuilt with :func:`build_encoder`. Every encoder maps a batch of images
``(N, C, H, W)`` to embeddings ``(N, D)`` and exposes ``embedding_dim`` and
``in_channels``.
"""

from __future__ import annotations

import importlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}
#: Modules that register further architectures when imported.
_EXTRA_MODULES = ("siamgui.core.dlib_resnet",)
_extras_loaded = False


def register_architecture(name: str, description: str = ""):
    """Decorator: make an encoder factory available under ``name``."""

    def deco(factory):
        _REGISTRY[name] = factory
        _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().split("\n")[0]
        return factory

    return deco


def _load_extras() -> None:
    global _extras_loaded
    if _extras_loaded:
        return
    _extras_loaded = True
    for mod in _EXTRA_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def architecture_names() -> list[str]:
    _load_extras()
    return sorted(_REGISTRY)


def architecture_description(name: str) -> str:
    _load_extras()
    return _DESCRIPTIONS.get(name, "")


def build_encoder(name: str, **kwargs) -> nn.Module:
    """Build the encoder registered as ``name`` with its keyword arguments."""
    _load_extras()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory(**kwargs)


class Encoder(nn.Module):
    """Base: a feature trunk, a linear projection, optional L2 normalisation."""

    def __init__(self, in_channels: int, embedding_dim: int, normalize: bool):
        super().__init__()
        self.in_channels = int(in_channels)
        self.embedding_dim = int(embedding_dim)
        self.normalize = bool(normalize)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (N, F)
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.features(x))
        return F.normalize(z, dim=1) if self.normalize else z


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class CompactCNN(Encoder):
    def __init__(self, in_channels=1, embedding_dim=64, normalize=False, width=32):
        super().__init__(in_channels, embedding_dim, normalize)
        w = int(width)
        self.trunk = nn.Sequential(
            _conv_bn(in_channels, w, 5), nn.MaxPool2d(2),
            _conv_bn(w, 2 * w), nn.MaxPool2d(2),
            _conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
            _conv_bn(4 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, embedding_dim)

    def features(self, x):
        return self.trunk(x)


@register_architecture("compact-cnn", "Compact 4-layer CNN for small grey inputs (signatures, digits, shapes)")
def compact_cnn(in_channels: int = 1, embedding_dim: int = 64, normalize: bool = False, width: int = 32):
    return CompactCNN(in_channels, embedding_dim, normalize, width)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity, inplace=True)


class ResNetEncoder(Encoder):
    def __init__(self, in_channels=3, embedding_dim=128, normalize=True, width=32, blocks=(1, 1, 1, 1), dropout=0.0):
        super().__init__(in_channels, embedding_dim, normalize)
        w = int(width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)
        )
        layers = []
        cin = w
        for i, n in enumerate(blocks):
            cout = w * (2**i)
            for j in range(int(n)):
                layers.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(float(dropout)), nn.Linear(cin, embedding_dim), nn.BatchNorm1d(embedding_dim))

    def features(self, x):
        return self.pool(self.stages(self.stem(x)))


@register_architecture("resnet", "Residual CNN (BasicBlocks, 4 stages) for faces and colour images")
def resnet(in_channels: int = 3, embedding_dim: int = 128, normalize: bool = True, width: int = 32,
           blocks: tuple | list = (1, 1, 1, 1), dropout: float = 0.0):
    return ResNetEncoder(in_channels, embedding_dim, normalize, width, tuple(blocks), dropout)


class SiameseNetwork(nn.Module):
    """Two inputs through **one** encoder (shared weights, a single module)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    @property
    def embedding_dim(self) -> int:
        return self.encoder.embedding_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # One pass over the concatenated batch: same weights, same BN statistics.
        z = self.encoder(torch.cat([a, b], dim=0))
        return z[: len(a)], z[len(a):]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

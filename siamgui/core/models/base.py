"""The architecture registry, the encoder base class and the Siamese network.

Every encoder maps a batch of images
``(N, C, H, W)`` to embeddings ``(N, D)`` and exposes ``embedding_dim`` and
``in_channels``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_architecture(name: str, description: str = ""):
    """Decorator: make an encoder factory available under ``name``."""

    def deco(factory):
        _REGISTRY[name] = factory
        _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().split("\n")[0]
        return factory

    return deco


def architecture_names() -> list[str]:
    return sorted(_REGISTRY)


def architecture_description(name: str) -> str:
    return _DESCRIPTIONS.get(name, "")


def build_encoder(name: str, **kwargs) -> nn.Module:
    """Build the encoder registered as ``name`` with its keyword arguments."""
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

"""dlib's ResNet-29 face descriptor as a PyTorch encoder (architecture ``dlib-resnet29``).

The wiring follows dlib's ``anet_type`` (tools/python/src/face_recognition.cpp);
the file stores no topology, so it is written out here:

* stem: conv 7x7/2 (no padding) -> relu -> max pool 3x3/2 (no padding);
* five levels of residual units (widths 32, 64, 128, 256, 256 for the real
  model): 3 plain units, then [down, 3], [down, 2], [down, 2], [down];
* unit: ``relu(x + conv2(relu(conv1(x))))``, 3x3 convs, padding 1 at stride 1;
  a *down* unit has conv1 at stride 2 with **no padding**, and its shortcut is a
  2x2/2 average pool of ``x``; the sum is dlib's ``add_prev``: both tensors are
  zero-padded at the end of each dimension to the larger size (extra channels
  count as zeros, and a spatially smaller branch lands in the top-left corner);
* global average pool -> linear 128 without bias. No L2 normalisation.

dlib's affine (frozen batch-norm) layers are folded into the convolutions by
the importer, so each conv has a bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamgui.core.models.base import Encoder, register_architecture

#: Residual units per level after the first (downsampling) unit of levels 1..4.
LEVEL_RES_UNITS = (3, 3, 2, 2, 0)


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: zero-pad both to the larger (C, H, W) at the end, then add."""
    if a.shape == b.shape:
        return a + b
    c = max(a.shape[1], b.shape[1])
    h = max(a.shape[2], b.shape[2])
    w = max(a.shape[3], b.shape[3])

    def pad(t):
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class DlibUnit(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = bool(down)
        stride, pad = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, pad, bias=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv2(F.relu(self.conv1(x)))
        skip = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_prev(branch, skip))


class DlibResNet(Encoder):
    """dlib's face ResNet: 29 convolutions, 14 residual units, a 128-D output."""

    def __init__(self, in_channels: int = 3, stem_width: int = 32, widths=(32, 64, 128, 256, 256),
                 embedding_dim: int = 128):
        super().__init__(in_channels, embedding_dim, normalize=False)
        widths = [int(w) for w in widths]
        if len(widths) != len(LEVEL_RES_UNITS):
            raise ValueError(f"widths needs {len(LEVEL_RES_UNITS)} values")
        self.stem = nn.Conv2d(in_channels, int(stem_width), 7, 2, 0, bias=True)
        units = []
        cin = int(stem_width)
        for level, (w, n_res) in enumerate(zip(widths, LEVEL_RES_UNITS)):
            if level > 0:
                units.append(DlibUnit(cin, w, down=True))
                cin = w
            for _ in range(n_res):
                units.append(DlibUnit(cin, w, down=False))
                cin = w
        self.units = nn.Sequential(*units)
        self.head = nn.Linear(cin, embedding_dim, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        if x.device.type == "cpu" and not x.is_contiguous(memory_format=torch.channels_last):
            # The same maxima from the channels-last kernel, which is far faster than the NCHW
            # one on the CPU (bench/README.md, "The ResNet's stem max pool").
            x = F.max_pool2d(x.contiguous(memory_format=torch.channels_last), 3, 2).contiguous()
        else:
            x = F.max_pool2d(x, 3, 2)
        x = self.units(x)
        return x.mean(dim=(2, 3))


@register_architecture("dlib-resnet29", "dlib's ResNet-29 face descriptor (150x150 RGB, 128-D, Euclidean)")
def dlib_resnet29(in_channels: int = 3, stem_width: int = 32, widths: tuple | list = (32, 64, 128, 256, 256),
                  embedding_dim: int = 128, normalize: bool = False):
    if normalize:
        raise ValueError("dlib-resnet29 embeddings are not normalised")
    return DlibResNet(in_channels, stem_width, tuple(widths), embedding_dim)

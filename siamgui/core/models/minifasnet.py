"""MiniFASNet V2 and V1SE, Minivision's silent face anti-spoofing networks, in our own PyTorch code.

The architecture of Silent-Face-Anti-Spoofing (Minivision, Apache-2.0): a pruned
MobileFaceNet on 80x80 BGR crops with values 0..255, three classes (spoof, real,
spoof). Module names match the authors' so that their state dicts load as they
are (after dropping the ``module.`` prefix of ``nn.DataParallel``); the channel
widths are those their pruning left. V1SE differs from V2 in its widths and in a
squeeze-and-excitation module on the last block of each residual stage.

Not a registered encoder: :mod:`siamgui.core.face.liveness` builds and runs it.
"""

from __future__ import annotations

import torch
from torch import nn

#: Class order of the networks' outputs.
CLASSES = ("spoof", "real", "spoof")
INPUT_SIZE = 80

#: Per variant, the inner (expanded) width of every inverted-residual block:
#: conv_23, conv_3 (4 blocks), conv_34, conv_4 (6), conv_45, conv_5 (2).
WIDTHS = {
    "MiniFASNetV2": {"conv_23": 103, "conv_3": (13, 13, 13, 13), "conv_34": 231,
                     "conv_4": (231, 52, 26, 77, 26, 26), "conv_45": 308, "conv_5": (26, 26)},
    "MiniFASNetV1SE": {"conv_23": 103, "conv_3": (13, 26, 13, 52), "conv_34": 231,
                       "conv_4": (154, 52, 26, 52, 26, 26), "conv_45": 308, "conv_5": (26, 26)},
}
SE_VARIANTS = ("MiniFASNetV1SE",)


class ConvBN(nn.Module):
    """Convolution without bias, batch norm, and a PReLU unless ``act`` is False."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2 if kernel == 3 else 0, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout) if act else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        mid = channels // reduction
        self.fc1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.fc2 = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        w = x.mean((2, 3), keepdim=True)
        w = torch.sigmoid(self.bn2(self.fc2(torch.relu(self.bn1(self.fc1(w))))))
        return x * w


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise (stride 1 or 2), 1x1 project; a shortcut at stride 1."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, se: bool = False):
        super().__init__()
        self.conv = ConvBN(cin, mid)
        self.conv_dw = ConvBN(mid, mid, 3, stride, groups=mid)
        self.project = ConvBN(mid, cout, act=False)
        self.residual = stride == 1
        self.se_module = SqueezeExcite(cout) if se else None

    def forward(self, x):
        y = self.project(self.conv_dw(self.conv(x)))
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y if self.residual else y


class Stage(nn.Module):
    """Stride-1 residual blocks at ``channels``; the last one with squeeze-excitation if ``se``."""

    def __init__(self, channels: int, mids, se: bool):
        super().__init__()
        self.model = nn.Sequential(*(InvertedResidual(channels, m, channels, 1, se and i == len(mids) - 1)
                                     for i, m in enumerate(mids)))

    def forward(self, x):
        return self.model(x)


class MiniFASNet(nn.Module):
    """(N, 3, 80, 80) BGR float 0..255 -> (N, 3) logits over :data:`CLASSES`."""

    def __init__(self, variant: str = "MiniFASNetV2", embedding: int = 128):
        super().__init__()
        if variant not in WIDTHS:
            raise ValueError(f"Unknown MiniFASNet variant {variant!r}; choose from {tuple(WIDTHS)}")
        w, se = WIDTHS[variant], variant in SE_VARIANTS
        self.variant = variant
        self.conv1 = ConvBN(3, 32, 3, 2)
        self.conv2_dw = ConvBN(32, 32, 3, 1, groups=32)
        self.conv_23 = InvertedResidual(32, w["conv_23"], 64, 2)
        self.conv_3 = Stage(64, w["conv_3"], se)
        self.conv_34 = InvertedResidual(64, w["conv_34"], 128, 2)
        self.conv_4 = Stage(128, w["conv_4"], se)
        self.conv_45 = InvertedResidual(128, w["conv_45"], 128, 2)
        self.conv_5 = Stage(128, w["conv_5"], se)
        self.conv_6_sep = ConvBN(128, 512)
        # The 80x80 input is 5x5 here: a depthwise 5x5 "global" convolution.
        self.conv_6_dw = ConvBN(512, 512, (INPUT_SIZE + 15) // 16, groups=512, act=False)
        self.linear = nn.Linear(512, embedding, bias=False)
        self.bn = nn.BatchNorm1d(embedding)
        self.prob = nn.Linear(embedding, len(CLASSES), bias=False)

    def forward(self, x):
        for stage in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                      self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
            x = stage(x)
        return self.prob(self.bn(self.linear(x.flatten(1))))

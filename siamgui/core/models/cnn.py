"""The trainable encoders: a compact CNN for small grey inputs and a residual CNN."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from siamgui.core.models.base import Encoder, register_architecture


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

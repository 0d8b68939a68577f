"""Synthetic image datasets of shapes and patterns (tests, benchmarks, demos).

Each class is a distinct shape or pattern; each image varies position, size,
rotation, colours and noise, seeded, so the same seed gives the same files.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross", "star", "ring", "hbars", "vbars", "checker", "diamond",
          "xmark", "hexagon", "ellipse", "arrow", "dots", "crescent")


def _polygon(cx, cy, r, n, rot, star=False):
    pts = []
    k = 2 * n if star else n
    for i in range(k):
        rr = r if (not star or i % 2 == 0) else r * 0.45
        a = rot + 2 * math.pi * i / k
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def draw_shape(shape: str, size: int, rng: np.random.Generator, colour: bool = True) -> Image.Image:
    bg = tuple(int(v) for v in rng.integers(0, 90, 3)) if colour else (int(rng.integers(0, 60)),) * 3
    fg = tuple(int(v) for v in rng.integers(150, 256, 3)) if colour else (int(rng.integers(180, 256)),) * 3
    if rng.random() < 0.5:
        bg, fg = fg, bg
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    r = size * rng.uniform(0.28, 0.4)
    cx = size / 2 + rng.uniform(-0.08, 0.08) * size
    cy = size / 2 + rng.uniform(-0.08, 0.08) * size
    rot = rng.uniform(-0.25, 0.25)
    w = max(2, int(size * rng.uniform(0.06, 0.1)))
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        d.ellipse(box, fill=fg)
    elif shape == "square":
        d.polygon(_polygon(cx, cy, r * 1.2, 4, rot + math.pi / 4), fill=fg)
    elif shape == "triangle":
        d.polygon(_polygon(cx, cy, r * 1.15, 3, rot - math.pi / 2), fill=fg)
    elif shape == "cross":
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fg)
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fg)
    elif shape == "star":
        d.polygon(_polygon(cx, cy, r * 1.15, 5, rot - math.pi / 2, star=True), fill=fg)
    elif shape == "ring":
        d.ellipse(box, outline=fg, width=w)
    elif shape == "hbars":
        for k in range(4):
            y = cy - r + k * (2 * r / 3.5)
            d.rectangle((cx - r, y, cx + r, y + w), fill=fg)
    elif shape == "vbars":
        for k in range(4):
            x = cx - r + k * (2 * r / 3.5)
            d.rectangle((x, cy - r, x + w, cy + r), fill=fg)
    elif shape == "checker":
        n = 4
        s = 2 * r / n
        for i in range(n):
            for j in range(n):
                if (i + j) % 2 == 0:
                    d.rectangle((cx - r + i * s, cy - r + j * s, cx - r + (i + 1) * s, cy - r + (j + 1) * s), fill=fg)
    elif shape == "diamond":
        d.polygon([(cx, cy - r * 1.2), (cx + r * 0.7, cy), (cx, cy + r * 1.2), (cx - r * 0.7, cy)], fill=fg)
    elif shape == "xmark":
        d.line((cx - r, cy - r, cx + r, cy + r), fill=fg, width=w * 2)
        d.line((cx - r, cy + r, cx + r, cy - r), fill=fg, width=w * 2)
    elif shape == "hexagon":
        d.polygon(_polygon(cx, cy, r * 1.1, 6, rot), fill=fg)
    elif shape == "ellipse":
        d.ellipse((cx - r * 1.2, cy - r * 0.5, cx + r * 1.2, cy + r * 0.5), fill=fg)
    elif shape == "arrow":
        d.rectangle((cx - r, cy - w, cx + r * 0.2, cy + w), fill=fg)
        d.polygon([(cx + r * 0.2, cy - r * 0.6), (cx + r, cy), (cx + r * 0.2, cy + r * 0.6)], fill=fg)
    elif shape == "dots":
        for i in (-1, 1):
            for j in (-1, 1):
                d.ellipse((cx + i * r * 0.5 - w * 1.5, cy + j * r * 0.5 - w * 1.5,
                           cx + i * r * 0.5 + w * 1.5, cy + j * r * 0.5 + w * 1.5), fill=fg)
    elif shape == "crescent":
        d.ellipse(box, fill=fg)
        d.ellipse((cx - r * 0.4, cy - r, cx + r * 1.6, cy + r), fill=bg)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    arr = np.asarray(im, dtype=np.int16)
    arr = arr + rng.normal(0, 8, arr.shape).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_shapes_dataset(root: str | Path, n_classes: int = 12, per_class: int = 12, size: int = 64,
                        seed: int = 0, colour: bool = True, fmt: str = "png") -> Path:
    """Write ``n_classes`` folders of ``per_class`` images; returns ``root``."""
    if n_classes > len(SHAPES):
        raise ValueError(f"at most {len(SHAPES)} classes")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for shape in SHAPES[:n_classes]:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape(shape, size, rng, colour).save(folder / f"{shape}_{i:03d}.{fmt}")
    return root

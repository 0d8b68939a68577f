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


# -- stroke glyphs: many classes, with options that change the statistics ---------------------
def _glyph_strokes(rng: np.random.Generator) -> list[np.ndarray]:
    """A class: 2-4 strokes, each a polyline through 3-5 control points in the unit square, smoothed."""
    strokes = []
    for _ in range(int(rng.integers(2, 5))):
        pts = rng.uniform(0.15, 0.85, size=(int(rng.integers(3, 6)), 2))
        for _ in range(2):  # Chaikin corner cutting: the strokes look drawn, not ruled
            q, r = 0.75 * pts[:-1] + 0.25 * pts[1:], 0.25 * pts[:-1] + 0.75 * pts[1:]
            pts = np.concatenate([pts[:1], np.stack([q, r], 1).reshape(-1, 2), pts[-1:]])
        strokes.append(pts)
    return strokes


def draw_glyph(strokes: list[np.ndarray], size: int, rng: np.random.Generator, *, ink=(20, 20, 20),
               paper=(235, 235, 235), rotate: float = 0.12, clutter: int = 0, jitter: float = 0.025) -> Image.Image:
    """One image of a glyph class: jittered strokes, random width, small shift and scale, rotation up to
    ``rotate`` radians, ``clutter`` faint distractor lines, pixel noise."""
    im = Image.new("RGB", (size, size), tuple(int(v) for v in paper))
    d = ImageDraw.Draw(im)
    for _ in range(clutter):
        a, b = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        faint = tuple(int(p + (i - p) * 0.35) for p, i in zip(paper, ink))
        d.line((*a, *b), fill=faint, width=max(1, size // 40))
    angle = rng.uniform(-rotate, rotate)
    c, s = math.cos(angle), math.sin(angle)
    scale = rng.uniform(0.85, 1.1)
    shift = rng.uniform(-0.06, 0.06, 2)
    width = max(1, int(size * rng.uniform(0.03, 0.06)))
    for stroke in strokes:
        pts = stroke + rng.normal(0, jitter, stroke.shape)
        pts = (pts - 0.5) * scale
        pts = np.stack([c * pts[:, 0] - s * pts[:, 1], s * pts[:, 0] + c * pts[:, 1]], 1) + 0.5 + shift
        d.line([tuple(p) for p in pts * size], fill=tuple(int(v) for v in ink), width=width, joint="curve")
    arr = np.asarray(im, dtype=np.int16) + rng.normal(0, 6, (size, size, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_glyph_dataset(root: str | Path, n_classes: int = 30, per_class: int = 12, size: int = 64, seed: int = 0,
                       colour: bool = False, rotate: float = 0.12, clutter: int = 0, fmt: str = "png") -> Path:
    """Write ``n_classes`` folders of stroke glyphs (handwriting-like); returns ``root``.

    ``colour``: each class also has its own ink and paper colours (colour then carries
    identity); ``rotate``: the rotation range in radians (``math.pi``: any angle);
    ``clutter``: faint distractor lines per image.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for k in range(n_classes):
        strokes = _glyph_strokes(rng)
        if colour:
            ink, paper = rng.integers(0, 140, 3), rng.integers(150, 256, 3)
        else:
            ink, paper = np.full(3, int(rng.integers(0, 60))), np.full(3, int(rng.integers(200, 256)))
        folder = root / f"g{k:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = draw_glyph(strokes, size, rng, ink=ink + rng.integers(-15, 16, 3) if colour else ink,
                            paper=paper, rotate=rotate, clutter=clutter)
            im.save(folder / f"g{k:04d}_{i:03d}.{fmt}")
    return root

"""Why a pair got its distance: occlusion sensitivity of the pair distance.

A patch of each prepared input (the crop the model saw) is covered with the
image's median colour, the covered copies are embedded in batches, and the map
records how much the distance to the other, uncovered, image changes. Patches
are centred on a ``grid`` x ``grid`` lattice and are twice the lattice spacing wide;
the map interpolates the changes bilinearly between patch centres:

* positive: covering the region pushes the pair apart, so the region **pulls the
  two embeddings together** (shared evidence);
* negative: covering it brings them closer, so the region **pulls them apart**.

The median fill is the image's own background for most inputs (skin or wall for
a face crop, paper for an inverted signature), so covering adds no new shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

#: Patch centres per side: 8 x 8 patches per image, two images per pair.
DEFAULT_GRID = 8


@dataclass
class Explanation:
    """Occlusion maps of one pair, at the inputs' resolution."""

    distance: float
    #: (H, W) float32 maps for image A and image B (see the module's sign convention).
    maps: tuple[np.ndarray, np.ndarray]
    #: The change of distance per patch, (grid, grid) for A and B, row-major like ``boxes``.
    deltas: tuple[np.ndarray, np.ndarray]
    #: The patches as (y0, y1, x0, x1) in input pixels.
    boxes: list[tuple[int, int, int, int]]
    patch: int
    grid: int
    seconds: float

    @property
    def scale(self) -> float:
        """The largest absolute change in either map (a shared colour scale for both)."""
        return float(max(np.abs(m).max() for m in self.maps)) or 1.0


def _patches(size: tuple[int, int], grid: int) -> tuple[list[tuple[int, int, int, int]], int]:
    """Patch boxes (y0, y1, x0, x1) centred on a ``grid`` x ``grid`` lattice, each twice the
    spacing wide (clipped at the border), so every pixel is covered by up to four patches."""
    h, w = size
    step = max(h, w) / grid
    half = max(1, round(step))
    boxes = []
    for cy in (np.arange(grid) + 0.5) * h / grid:
        for cx in (np.arange(grid) + 0.5) * w / grid:
            y, x = int(np.rint(cy)), int(np.rint(cx))
            boxes.append((max(0, y - half), min(h, y + half), max(0, x - half), min(w, x + half)))
    return boxes, 2 * half


def occlusion_maps(embed: Callable[[torch.Tensor], torch.Tensor], pairwise: Callable, input_a: np.ndarray,
                   input_b: np.ndarray, *, grid: int = DEFAULT_GRID, batch_size: int = 64,
                   cancel: Callable[[], bool] | None = None) -> Explanation:
    """Occlusion maps for prepared (H, W, C) uint8 inputs.

    ``embed`` maps an (N, C, H, W) uint8 tensor to (N, D) embeddings (``Verifier.embed_prepared``);
    ``pairwise`` gives the distances of two (N, D) batches row by row.
    """
    t0 = time.perf_counter()
    a, b = (np.ascontiguousarray(x if x.ndim == 3 else x[:, :, None]) for x in (input_a, input_b))
    if a.shape != b.shape:
        raise ValueError("both inputs must have the model's input shape")
    boxes, patch = _patches(a.shape[:2], grid)
    originals = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2)  # (2, C, H, W)
    fills = originals.flatten(2).median(dim=2).values  # (2, C): each image's median colour
    covered = originals.repeat_interleave(len(boxes), dim=0).clone()  # A's copies, then B's
    for k, (y0, y1, x0, x1) in enumerate(boxes):
        for i in (0, 1):
            covered[i * len(boxes) + k, :, y0:y1, x0:x1] = fills[i].view(-1, 1, 1)
    batch = torch.cat([originals, covered])
    chunks = []
    for start in range(0, len(batch), batch_size):
        if cancel is not None and cancel():
            from siamgui.core.errors import EvaluationCancelled

            raise EvaluationCancelled("Explanation cancelled.")
        chunks.append(embed(batch[start:start + batch_size]))
    emb = torch.cat(chunks)
    emb_a, emb_b, rest = emb[0:1], emb[1:2], emb[2:]
    base = float(pairwise(emb_a, emb_b)[0])
    n = len(boxes)
    delta_a = pairwise(rest[:n], emb_b.expand(n, -1)).numpy() - base
    delta_b = pairwise(rest[n:], emb_a.expand(n, -1)).numpy() - base
    deltas = tuple(x.reshape(grid, grid).astype(np.float32) for x in (delta_a, delta_b))
    maps = tuple(_upsample(x, a.shape[:2]) for x in deltas)
    return Explanation(base, maps, deltas, boxes, patch, grid, time.perf_counter() - t0)


def _upsample(deltas: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation between patch centres (cell centres of the lattice)."""
    t = torch.from_numpy(deltas)[None, None]
    return torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def explain_pair(verifier, input_a: np.ndarray, input_b: np.ndarray, *, grid: int = DEFAULT_GRID,
                 cancel: Callable[[], bool] | None = None) -> Explanation:
    """Occlusion maps of a pair of prepared inputs (``Comparison.inputs``) under ``verifier``'s model."""
    return occlusion_maps(verifier.embed_prepared, verifier.distance.pairwise, input_a, input_b, grid=grid,
                          cancel=cancel)


# -- display (numpy only: the GUI turns the arrays into images, the report into PNGs) ---------
TOGETHER = np.array([0, 170, 90], np.float32)  # region pulls the pair together
APART = np.array([225, 40, 40], np.float32)  # region pulls the pair apart


def display_input(arr: np.ndarray, invert: bool = False) -> np.ndarray:
    """A prepared input as (H, W, 3) uint8 RGB for display (signature inputs un-inverted)."""
    rgb = np.repeat(arr, 3, axis=2) if arr.ndim == 3 and arr.shape[2] == 1 else arr
    rgb = rgb if rgb.ndim == 3 else np.repeat(rgb[:, :, None], 3, axis=2)
    return (255 - rgb) if invert else rgb.copy()


def overlay(rgb: np.ndarray, heat: np.ndarray, scale: float, strength: float = 0.65) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with ``heat`` drawn on it: green where the region pulls the
    pair together, red where it pulls it apart, more opaque the larger ``|heat| / scale``."""
    m = np.clip(heat / (scale or 1.0), -1.0, 1.0)[:, :, None]
    colour = np.where(m >= 0, TOGETHER, APART)
    alpha = np.abs(m) * strength
    return (rgb.astype(np.float32) * (1 - alpha) + colour * alpha).round().astype(np.uint8)

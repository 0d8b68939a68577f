"""Preprocessing presets, stored in every model file.

A :class:`PreprocessSpec` says exactly how an image becomes the tensor the
encoder sees, so inference always does what training did:

1. ``prepare``: face crop (``face``), or grey + invert + crop to ink + pad to
   square (``signature``), or nothing (``generic``); then resize to
   ``image_size``. Result: a uint8 array (H, W, C). Deterministic, so training
   caches it.
2. ``normalize``: ``(pixel - mean) / std`` per channel, in pixel units (0-255),
   giving a float tensor (C, H, W).

Augmentation (training only) works on batches of prepared uint8 tensors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from siamgui.core.face.aligners import get_aligner
from siamgui.core.face.alignment import FACE_DETECTORS
from siamgui.core.face.detect import FaceInfo
from siamgui.core.images import ImageSource, load_image

PRESETS = ("face", "signature", "generic")


@dataclass
class PreprocessSpec:
    preset: str = "generic"
    image_size: int = 96
    channels: int = 3
    #: Per-channel mean and std in pixel units (0-255).
    mean: list[float] = field(default_factory=lambda: [127.5, 127.5, 127.5])
    std: list[float] = field(default_factory=lambda: [127.5, 127.5, 127.5])
    #: Face handling: None, or {"detector": "yunet" | "mtcnn" | "haar", "margin": float, "align": "dlib5" | "box", ...}.
    face: dict[str, Any] | None = None
    #: Signature handling.
    invert: bool = False
    ink_crop: bool = False
    #: Augmentations allowed for this kind of image.
    hflip: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown preprocessing fields: {', '.join(sorted(unknown))}")
        spec = cls(**d)
        spec.validate()
        return spec

    def validate(self) -> None:
        # Types first: a model file's metadata is untrusted input, and a wrong type here
        # would only fail later, in the middle of a comparison.
        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not isinstance(self.image_size, int) or isinstance(self.image_size, bool):
            raise ValueError("image_size must be a whole number")
        for name in ("invert", "ink_crop", "hflip"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple)) or not all(number(v) for v in values):
                raise ValueError(f"{name} must be a list of numbers")
        if self.face is not None:
            if not isinstance(self.face, dict):
                raise ValueError("face must be a mapping of face settings")
            for key, value in self.face.items():
                if key in ("margin", "padding", "refine") and not number(value):
                    raise ValueError(f"face {key} must be a number")
                if key in ("detector", "align", "landmarks", "detector_file") and not isinstance(value, str):
                    raise ValueError(f"face {key} must be a name")
            if self.face.get("detector", "haar") not in FACE_DETECTORS:
                raise ValueError(f"unknown face detector {self.face.get('detector')!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}")
        if not (8 <= int(self.image_size) <= 1024):
            raise ValueError(f"image_size {self.image_size} out of range")
        if self.channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean/std must have one value per channel")
        if any(s <= 0 for s in self.std):
            raise ValueError("std must be positive")


def preset_spec(preset: str, image_size: int | None = None) -> PreprocessSpec:
    """The default preprocessing of a preset."""
    if preset == "face":
        # Landmark-aligned chips (5 points, dlib's template) like the bundled model's, at the
        # from-scratch input size: they beat the box crop (docs/training.md).
        spec = PreprocessSpec("face", image_size or 64, 3, face={
            "detector": "mtcnn", "align": "dlib5", "landmarks": "shape_predictor_5.safetensors", "padding": 0.25,
            "refine": 1, "margin": 0.15})
    elif preset == "signature":
        spec = PreprocessSpec("signature", image_size or 96, 1, [127.5], [127.5], invert=True, ink_crop=True,
                              hflip=False)
    elif preset == "generic":
        spec = PreprocessSpec("generic", image_size or 96, 3)
    else:
        raise ValueError(f"Unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    spec.validate()
    return spec


class Preprocessor:
    """Applies a :class:`PreprocessSpec`. Create once, reuse (it is cheap to call)."""

    def __init__(self, spec: PreprocessSpec, device: str | None = None):
        spec.validate()
        self.spec = spec
        #: Where a network-based face detector runs (the encoder's device); None: the CPU.
        self.device = None if device is None else str(device)
        c = spec.channels
        self._mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, c, 1, 1)
        self._inv_std = 1.0 / torch.tensor(spec.std, dtype=torch.float32).view(1, c, 1, 1)

    # -- step 1: image -> prepared uint8 array -----------------------------------
    def prepare(self, source: ImageSource | Image.Image, *, face_policy: str = "largest", bgr: bool = False
                ) -> tuple[np.ndarray, FaceInfo | None]:
        """Image -> uint8 array (S, S, C) at the model's input size, and face info."""
        image = source if isinstance(source, Image.Image) and source.mode == "RGB" else load_image(source, bgr=bgr)
        s = self.spec
        info = None
        if s.face is not None:
            image, info = self.face_region(image, face_policy)
        if s.channels == 1:
            image = image.convert("L")
        if s.invert:
            image = ImageOps.invert(image)
        if s.ink_crop:
            image = _crop_to_ink(image)
        if s.preset == "signature":
            image = _pad_to_square(image, fill=0 if s.invert else 255)
        if image.size != (s.image_size, s.image_size):
            image = image.resize((s.image_size, s.image_size), Image.BILINEAR, reducing_gap=3.0)
        arr = np.array(image, dtype=np.uint8)  # a writable copy
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return arr, info

    def face_region(self, image: Image.Image, policy: str = "largest") -> tuple[Image.Image, FaceInfo]:
        """The face-mode crop (before resizing) and what detection found."""
        cfg = self.spec.face or {}
        aligner = get_aligner(cfg.get("align", "box"))
        if self.device is not None:
            cfg = dict(cfg, device=self.device)
        return aligner(image, cfg, policy, self.spec.image_size)

    # -- step 2: uint8 -> normalised float ------------------------------------------
    def normalize(self, batch_u8: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) uint8 or float in pixel units -> normalised float32."""
        x = batch_u8.float() if batch_u8.dtype != torch.float32 else batch_u8
        return (x - self._mean.to(x.device)) * self._inv_std.to(x.device)

    def to_tensor(self, arr: np.ndarray) -> torch.Tensor:
        """One prepared (H, W, C) uint8 array -> normalised (C, H, W) float32."""
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).unsqueeze(0)
        return self.normalize(t)[0]

    def __call__(self, source, **kw) -> torch.Tensor:
        arr, _ = self.prepare(source, **kw)
        return self.to_tensor(arr)


def stack_prepared(arrays: list[np.ndarray]) -> torch.Tensor:
    """List of (H, W, C) uint8 arrays -> (N, C, H, W) uint8 tensor."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _crop_to_ink(grey: Image.Image, threshold: int = 40, pad_fraction: float = 0.05) -> Image.Image:
    """Crop an inverted (ink bright) image to the bounding box of its ink.

    The ink is found on the grey levels; a colour image (a model file may ask for
    ink cropping with 3 channels) is cropped in colour.
    """
    arr = np.asarray(grey if grey.mode == "L" else grey.convert("L"))
    ys, xs = np.nonzero(arr > threshold)
    if len(xs) == 0:
        return grey
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    pad = int(round(max(x1 - x0, y1 - y0) * pad_fraction))
    return grey.crop((max(0, x0 - pad), max(0, y0 - pad), min(arr.shape[1], x1 + pad), min(arr.shape[0], y1 + pad)))


def _pad_to_square(image: Image.Image, fill: int) -> Image.Image:
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    out = Image.new(image.mode, (side, side), fill)
    out.paste(image, ((side - w) // 2, (side - h) // 2))
    return out


class Augmenter:
    """Batched, seeded training augmentation on uint8 (N, C, H, W) tensors.

    Horizontal flip (when the preset allows and ``hflip`` is not False), a small
    random affine (rotation, scale, shift) and brightness/contrast jitter (0
    turns a part off). Output is float in pixel units.
    """

    def __init__(self, spec: PreprocessSpec, seed: int = 0, rotate_deg: float = 8.0, scale: float = 0.08,
                 shift: float = 0.06, brightness: float = 0.2, contrast: float = 0.2, hflip: bool | None = None):
        self.hflip = spec.hflip if hflip is None else bool(hflip) and spec.hflip
        self.rotate = math.radians(rotate_deg)
        self.scale, self.shift = scale, shift
        self.brightness, self.contrast = brightness, contrast
        self.gen = torch.Generator().manual_seed(int(seed))

    def _u(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=self.gen) * (hi - lo) + lo

    def __call__(self, batch_u8: torch.Tensor) -> torch.Tensor:
        x = batch_u8.float()
        n = x.shape[0]
        if self.hflip:
            flip = torch.rand(n, generator=self.gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        ang = self._u(n, -self.rotate, self.rotate)
        sc = 1.0 + self._u(n, -self.scale, self.scale)
        tx, ty = self._u(n, -self.shift, self.shift) * 2, self._u(n, -self.shift, self.shift) * 2
        cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        b = self._u(n, -self.brightness, self.brightness).view(-1, 1, 1, 1) * 255.0
        c = (1.0 + self._u(n, -self.contrast, self.contrast)).view(-1, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c + mean + b
        return x.clamp_(0.0, 255.0)

"""Reading images safely.

:func:`load_image` is the single door through which every image enters the
engine (CLI, GUI slots, dataset scan, gallery). It accepts a path, raw bytes,
a PIL image or a numpy array, and returns an upright 8-bit RGB PIL image, or
raises :class:`ImageError` with a readable message. It never returns a
half-decoded image and never allocates a decompression bomb.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps

from siamgui.core.errors import ImageError

#: Largest image accepted, in pixels (about 8000 x 8000). Larger headers are
#: refused before any pixel buffer is allocated.
MAX_PIXELS = 64_000_000
#: Largest file accepted, in bytes.
MAX_FILE_BYTES = 256 * 1024 * 1024

#: Decoders we allow; everything else is refused (smaller attack surface).
ALLOWED_FORMATS = ("JPEG", "PNG", "BMP", "PPM", "TIFF", "WEBP", "GIF", "MPO")
#: File name extensions treated as images when scanning folders.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp", ".gif"})

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray]


def open_formats() -> tuple[str, ...]:
    """The allowed formats this Pillow registers (Pillow 13 folded MPO into JPEG;
    naming an unregistered format makes ``Image.open`` raise KeyError)."""
    global _OPEN_FORMATS
    if _OPEN_FORMATS is None:
        Image.init()
        _OPEN_FORMATS = tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN)
    return _OPEN_FORMATS


_OPEN_FORMATS: tuple[str, ...] | None = None


def is_image_name(name: str) -> bool:
    """True for a file name with an image extension (case-insensitive), not hidden."""
    base = os.path.basename(name)
    if base.startswith(".") or base.lower() == "thumbs.db":
        return False
    return os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS


def describe(source: Any) -> str:
    """A short label for an image source, for messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(os.fspath(source)) or os.fspath(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape}>"
    if isinstance(source, Image.Image):
        return f"<image {source.size[0]}x{source.size[1]}>"
    return f"<{type(source).__name__}>"


def load_image(source: ImageSource, *, bgr: bool = False, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Return ``source`` as an upright RGB ``PIL.Image`` (mode ``"RGB"``, 8 bit).

    ``bgr=True`` says a 3- or 4-channel numpy array is in OpenCV's BGR(A) order.
    Raises :class:`ImageError` for anything that is not a usable image.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, bgr=bgr)
    if isinstance(source, Image.Image):
        return _to_rgb(_check_size(source, max_pixels, describe(source)))
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("The image data is empty.")
        return _decode(io.BytesIO(bytes(source)), describe(source), max_pixels)
    if isinstance(source, (str, os.PathLike)):
        if not os.fspath(source):  # Path("") would mean the current folder
            raise ImageError("No image file was given (the path is empty).")
        path = Path(source)
        name = str(path)
        try:
            if not path.exists():
                raise ImageError(f"No such file: {name}")
            if path.is_dir():
                raise ImageError(f"{name} is a folder, not an image file.")
            size = path.stat().st_size
        except OSError as exc:  # name too long, permission, loop...
            raise ImageError(f"Cannot open {name}: {exc.strerror or exc}") from None
        if size == 0:
            raise ImageError(f"{path.name} is an empty file (0 bytes).")
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{path.name} is too large ({size / 1e6:.0f} MB).")
        try:
            with open(path, "rb") as fh:
                return _decode(fh, path.name, max_pixels)
        except OSError as exc:
            raise ImageError(f"Cannot read {path.name}: {exc.strerror or exc}") from None
    raise ImageError(f"Unsupported image source: {type(source).__name__}")


def _decode(fh, label: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(fh, formats=open_formats())
            _check_size(im, max_pixels, label)
            im.seek(0)  # first frame of an animation
            im.load()
            im = ImageOps.exif_transpose(im) or im
            return _to_rgb(im)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{label} is too large to open safely (more than {max_pixels:,} pixels).") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{label} is not an image file or its format is not supported.") from None
    except MemoryError:
        raise ImageError(f"{label} needs more memory than is available.") from None
    except Exception as exc:  # PIL raises many types for damaged data
        msg = str(exc) or type(exc).__name__
        if "truncated" in msg.lower():
            raise ImageError(f"{label} is damaged or truncated.") from None
        raise ImageError(f"{label} could not be decoded ({msg}).") from None


def _check_size(im: Image.Image, max_pixels: int, label: str) -> Image.Image:
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(f"{label} has no pixels.")
    if w * h > max_pixels:
        raise ImageError(f"{label} is too large to open safely ({w}x{h} pixels; limit {max_pixels:,}).")
    return im


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im).astype(np.uint32)
        if arr.max(initial=0) > 255:
            arr = arr >> 8
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float32))
        if arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _from_array(arr: np.ndarray, *, bgr: bool) -> Image.Image:
    if arr.size == 0 or arr.ndim not in (2, 3):
        raise ImageError(f"An image array must be HxW or HxWxC, got shape {arr.shape}.")
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4):
        raise ImageError(f"An image array must have 1, 3 or 4 channels, got {arr.shape[2]}.")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ImageError("The image array is too large.")
    if arr.dtype == np.uint8:
        a = arr
    elif arr.dtype == np.uint16:
        a = (arr >> 8).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        f = np.nan_to_num(arr.astype(np.float32))
        if f.max(initial=0) <= 1.0:
            f = f * 255.0
        a = np.clip(f, 0, 255).astype(np.uint8)
    else:
        a = np.clip(arr, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(a), "L").convert("RGB")
    if bgr:
        a = a[:, :, [2, 1, 0, 3][: a.shape[2]]]
    a = np.ascontiguousarray(a)
    return _to_rgb(Image.fromarray(a, "RGBA" if a.shape[2] == 4 else "RGB"))

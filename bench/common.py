"""Shared helpers for the benchmarks: statistics, subprocess timing, test data.

Nothing here is timed itself; the measuring modules use these to build the
inputs (images, a dataset, a video, a model) and to summarise repeated runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LFW_ROOT = REPO.parent / "shared" / "data" / "lfw" / "lfw"


# -- statistics ------------------------------------------------------------------------
def percentile(values, q: float) -> float:
    """The q-th percentile (0-100), linear interpolation (numpy's default)."""
    xs = sorted(values)
    if not xs:
        raise ValueError("no values")
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(key: str, values, digits: int = 3) -> dict:
    """``{key: median, key_min: min, key_max: max}`` over repeated runs (None when empty)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {key: None, f"{key}_min": None, f"{key}_max": None}
    return {key: round(statistics.median(vals), digits), f"{key}_min": round(min(vals), digits),
            f"{key}_max": round(max(vals), digits)}


def summaries(**figures) -> dict:
    """:func:`summary` for several figures: ``summaries(key=(values, digits), ...)``."""
    out = {}
    for key, (values, digits) in figures.items():
        out.update(summary(key, values, digits))
    return out


def nulls(*keys: str) -> dict:
    out = {}
    for k in keys:
        out.update(summary(k, []))
    return out


# -- processes -------------------------------------------------------------------------
def run_child(argv: list[str], timeout: float = 300.0, env: dict | None = None
              ) -> tuple[int, float, float, str, str]:
    """Run ``argv``; return (exit code, wall seconds, peak RSS in MB of that command, stdout, stderr).

    The command is started by ``bench/launch.py``, a small process that times it and
    reaps it with ``os.wait4``: started straight from this runner, the child's peak
    RSS would include the runner's own (see launch.py).
    """
    import json
    import tempfile

    full_env = dict(os.environ)
    full_env.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    if env:
        full_env.update(env)
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        launcher = [sys.executable, str(REPO / "bench" / "launch.py"), report]
        try:
            proc = subprocess.run(launcher + list(argv), capture_output=True, text=True, env=full_env,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return -9, float(timeout), 0.0, _text(exc.stdout), _text(exc.stderr) + "\n(timed out)"
        try:
            with open(report) as fh:
                r = json.load(fh)
        except (OSError, ValueError):
            return proc.returncode or -1, 0.0, 0.0, proc.stdout, proc.stderr + "\n(no launcher report)"
        return r["rc"], r["wall_s"], r["maxrss_kb"] / 1024.0, proc.stdout, proc.stderr


def _text(b) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else b


def python() -> str:
    return sys.executable


# -- inputs ----------------------------------------------------------------------------
def lfw_images(n_people: int = 24) -> list[str]:
    """Two images each of the first ``n_people`` LFW people with 2+ images (sorted, fixed)."""
    if not (LFW_ROOT / "George_W_Bush").is_dir():
        return []
    out: list[str] = []
    for person in sorted(os.listdir(LFW_ROOT)):
        files = sorted(f for f in os.listdir(LFW_ROOT / person) if f.endswith(".jpg"))
        if len(files) >= 2:
            out += [str(LFW_ROOT / person / files[0]), str(LFW_ROOT / person / files[1])]
        if len(out) >= 2 * n_people:
            break
    return out


def synthetic_photos(folder: Path, n: int = 48, size: int = 250, seed: int = 0) -> list[str]:
    """JPEG pictures of shapes, LFW-sized, when LFW is absent (no faces: the whole image is used)."""
    import numpy as np

    from siamgui.core.synthetic import SHAPES, draw_shape

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = folder / f"img_{i:03d}.jpg"
        draw_shape(SHAPES[i % len(SHAPES)], size, rng).save(p, quality=90)
        out.append(str(p))
    return out


def compare_images(work: Path) -> tuple[list[str], str]:
    imgs = lfw_images()
    if imgs:
        return imgs, f"{len(imgs)} LFW images (250x250 JPEG)"
    return synthetic_photos(work / "photos"), "48 generated 250x250 JPEGs (LFW absent; no faces in them)"


def make_train_dataset(root: Path, n_classes: int = 64, per_class: int = 10, size: int = 250,
                       seed: int = 0) -> Path:
    """A generated 64-class dataset of LFW-sized JPEGs.

    ``siamgui.core.synthetic`` has 16 shapes; classes 16-63 are the same shapes with a
    class-specific colour-channel order and orientation, so all 64 are distinct.
    """
    import numpy as np
    from PIL import Image

    from siamgui.core.synthetic import SHAPES, draw_shape

    rng = np.random.default_rng(seed)
    perms = [(0, 1, 2), (2, 0, 1), (1, 2, 0), (0, 2, 1)]
    for c in range(n_classes):
        shape = SHAPES[c % len(SHAPES)]
        variant = c // len(SHAPES)
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = np.asarray(draw_shape(shape, size, rng))[:, :, list(perms[variant % 4])]
            if variant % 2:
                arr = arr[::-1]
            Image.fromarray(np.ascontiguousarray(arr)).save(folder / f"{c:02d}_{i:03d}.jpg", quality=90)
    return root


def make_video(path: Path, frames: int = 90, size=(640, 480), fps: float = 30.0) -> Path | None:
    """A 640x480 MJPG .avi with a moving face (an LFW image when present) on a plain background."""
    import cv2
    import numpy as np

    w, h = size
    face = None
    imgs = lfw_images(1)
    if imgs:
        face = cv2.imread(imgs[0])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        return None
    for i in range(frames):
        frame = np.full((h, w, 3), 90, np.uint8)
        cv2.putText(frame, f"frame {i}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        if face is not None:
            x = 100 + (i * 3) % 250
            frame[110:360, x:x + 250] = face
        else:
            cv2.circle(frame, (200 + (i * 3) % 250, 240), 80, (200, 180, 160), -1)
        writer.write(frame)
    writer.release()
    return path


def standin_model(path: Path) -> tuple[Path, str]:
    """A stand-in face model (random weights) of about the bundled model's cost.

    Used only until ``resources/models/face.safetensors`` exists. If the dlib ResNet
    port is registered, its architecture is used; otherwise a residual CNN at 150 px.
    """
    import torch

    from siamgui.core import models
    from siamgui.core.modelfile import make_meta, save_model
    from siamgui.core.models import SiameseNetwork, build_encoder
    from siamgui.core.preprocess import preset_spec

    torch.manual_seed(0)
    names = models.architecture_names()
    dlib_name = next((n for n in names if "dlib" in n), None)
    spec = preset_spec("face", 150)
    if dlib_name:
        arch = {"name": dlib_name, "kwargs": {}}
        label = f"{dlib_name} architecture, random weights"
    else:
        arch = {"name": "resnet", "kwargs": {"width": 32, "blocks": [1, 1, 1, 1], "embedding_dim": 128}}
        label = "residual CNN width 32, random weights"
    enc = build_encoder(arch["name"], **arch["kwargs"])
    net = SiameseNetwork(enc).eval()
    meta = make_meta(architecture=arch, preprocess=spec, threshold=0.6, name="bench stand-in")
    save_model(path, net, meta)
    return path, f"STAND-IN model ({label}, face preset 150 px): the bundled face model is absent"


def model_for_bench(work: Path) -> tuple[Path, str]:
    from siamgui.core.resources import bundled_model_path, has_bundled_model

    if has_bundled_model():
        return bundled_model_path(), "bundled face model"
    return standin_model(work / "standin.safetensors")

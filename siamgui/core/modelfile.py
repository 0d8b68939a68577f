"""Model files: ``.safetensors`` weights plus siamgui metadata.

The metadata is one JSON object stored under the safetensors header key
``"siamgui"``. Files are written atomically (temporary file in the same
folder, fsync, ``os.replace``), so an interrupted save leaves the old file.
A legacy ``.pt``/``.pth`` file is only ever read with ``weights_only=True``;
no pickle is ever executed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from siamgui.core.errors import ModelFileError
from siamgui.core.models import SiameseNetwork, build_encoder
from siamgui.core.preprocess import PreprocessSpec

FORMAT = "siamgui-model"
FORMAT_VERSION = 1
META_KEY = "siamgui"
MODEL_SUFFIXES = (".safetensors",)
LEGACY_SUFFIXES = (".pt", ".pth")


@dataclass
class LoadedModel:
    network: SiameseNetwork
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def spec(self) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self.meta["preprocess"])

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    @property
    def distance(self) -> str:
        return str(self.meta.get("distance", "euclidean"))

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or (self.path.stem if self.path else "model"))

    def fingerprint(self) -> str:
        """Hash of the weights and preprocessing: identifies what embeddings mean."""
        h = hashlib.sha256()
        for k, v in sorted(self.network.encoder.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps(self.meta["preprocess"], sort_keys=True).encode())
        h.update(json.dumps(self.meta["architecture"], sort_keys=True).encode())
        return h.hexdigest()[:32]


def make_meta(*, architecture: dict, preprocess: PreprocessSpec | dict, distance: str = "euclidean",
              threshold: float, margin: float | None = None, loss: str | None = None,
              training: dict | None = None, metrics: dict | None = None, name: str = "",
              provenance: dict | None = None, **extra) -> dict[str, Any]:
    spec = preprocess.to_dict() if isinstance(preprocess, PreprocessSpec) else dict(preprocess)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "architecture": {"name": architecture["name"], "kwargs": dict(architecture.get("kwargs", {}))},
        "preprocess": spec,
        "input_size": [spec["channels"], spec["image_size"], spec["image_size"]],
        "normalization": {"mean": spec["mean"], "std": spec["std"], "units": "pixel (0-255)"},
        "distance": distance,
        "threshold": float(threshold),
        "margin": margin,
        "loss": loss,
        "training": training or {},
        "metrics": metrics or {},
        "provenance": provenance or {},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    meta.update(extra)
    return meta


def validate_meta(meta: Any, label: str = "the model file") -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise ModelFileError(f"{label} has no siamgui metadata.")
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{label} is not a siamgui model file.")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{label} has an invalid format version.")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{label} was written by a newer siamgui (format {version}; this version reads "
                             f"up to {FORMAT_VERSION}). Please update siamgui.")
    for key in ("architecture", "preprocess", "threshold"):
        if key not in meta:
            raise ModelFileError(f"{label} lacks the metadata field {key!r}.")
    try:
        PreprocessSpec.from_dict(meta["preprocess"])
        if not math.isfinite(float(meta["threshold"])):
            raise ValueError("the threshold is not a finite number")
        arch = meta["architecture"]
        if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
            raise ValueError("architecture must name a registered encoder")
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{label} has invalid metadata: {exc}") from None
    from siamgui.core.distances import distance_names

    if meta.get("distance", "euclidean") not in distance_names():
        raise ModelFileError(f"{label} uses an unknown distance {meta.get('distance')!r}.")
    embedding = meta.get("embedding") or {}
    if not isinstance(embedding, dict) or not isinstance(embedding.get("flip_average", False), bool):
        raise ModelFileError(f"{label} has invalid metadata: 'embedding' must be a mapping with a true/false "
                             "flip_average.")
    return meta


def _encoder_state(network) -> dict[str, torch.Tensor]:
    enc = network.encoder if isinstance(network, SiameseNetwork) else network
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in enc.state_dict().items()}


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = ".tmp"):
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    On any failure (including KeyboardInterrupt) the temporary file is removed
    and ``path`` is left untouched. The temporary name carries the writer's
    process id, so temporary files of writers that were killed are removed by
    the next write to ``path``.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    _remove_orphans(directory, path.name, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_orphans(directory: Path, name: str, suffix: str) -> None:
    """Delete ``atomic_write`` temporary files for ``name`` whose writing process no longer runs."""
    prefix = f".{name}."
    try:
        entries = [e for e in os.scandir(directory) if e.name.startswith(prefix) and e.name.endswith(suffix)]
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _process_exists(int(pid)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)


def _process_exists(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap check: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else
    return True


def save_model(path: str | os.PathLike, network, meta: dict[str, Any]) -> Path:
    """Write weights and metadata to ``path`` atomically. Raises ModelFileError on I/O problems."""
    from safetensors.torch import save_file

    path = Path(path)
    validate_meta(meta)
    if path.suffix.lower() != ".safetensors":
        raise ModelFileError(f"Model files are saved as .safetensors, not {path.suffix or 'no extension'}.")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder.")
    if not path.parent.exists():
        raise ModelFileError(f"The folder {path.parent} does not exist.")
    try:
        with atomic_write(path, ".safetensors.tmp") as tmp:
            save_file(_encoder_state(network), str(tmp), metadata={META_KEY: json.dumps(meta)})
    except Exception as exc:  # noqa: BLE001 - safetensors reports a full disk as SafetensorError, not OSError
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
        else:
            found = re.search(r"I/O error: (.+?)(?: \(os error \d+\))?$", str(exc).strip())
            if found is None:
                raise
            reason = found.group(1)
        raise ModelFileError(f"Could not save the model to {path}: {reason}. The trained model is still in memory; "
                             "choose another location.") from None
    return path


def _check_path(path: Path) -> None:
    if not path.exists():
        raise ModelFileError(f"No such model file: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file.")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path.name} is empty.")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a ``.safetensors`` model file, without loading the weights."""
    from safetensors import safe_open

    path = Path(path)
    _check_path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ModelFileError(f"{path.name} is not a valid .safetensors file ({_short(exc)}).") from None
    if raw is None:
        raise ModelFileError(f"{path.name} has no siamgui metadata.")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise ModelFileError(f"{path.name} has damaged metadata.") from None
    return validate_meta(meta, path.name)


def _short(exc: Exception) -> str:
    text = str(exc).strip().split("\n")[0].split(". ")[0]  # first sentence (torch adds long advice)
    return text[:160] or type(exc).__name__


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Load a model file; any problem raises :class:`ModelFileError`."""
    path = Path(path)
    _check_path(path)
    suffix = path.suffix.lower()
    if suffix in LEGACY_SUFFIXES:
        state, meta = _load_legacy(path)
    elif suffix in MODEL_SUFFIXES:
        from safetensors.torch import load_file

        meta = read_metadata(path)
        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError(f"{path.name} is damaged ({_short(exc)}).") from None
    else:
        raise ModelFileError(f"{path.name}: model files end in .safetensors (or legacy .pt/.pth).")
    network = build_network(meta, path.name, state)
    channels = PreprocessSpec.from_dict(meta["preprocess"]).channels
    if getattr(network.encoder, "in_channels", channels) != channels:
        raise ModelFileError(f"{path.name}: the architecture takes {network.encoder.in_channels}-channel images "
                             f"but the preprocessing gives {channels}.")
    try:
        network.encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path.name}: the weights do not match the architecture "
                             f"{meta['architecture']['name']!r} ({_short(exc)}).") from None
    network.to(map_location).eval()
    return LoadedModel(network, meta, path)


def build_network(meta: dict[str, Any], label: str = "the model",
                  state: dict[str, torch.Tensor] | None = None) -> SiameseNetwork:
    """The network the metadata describes. With ``state`` (the file's weights), the
    architecture is first built on the ``meta`` device (no memory) and its shapes are
    checked against the weights, so metadata claiming a huge network allocates nothing."""
    arch = meta["architecture"]
    try:
        probe = None
        if state is not None:
            try:
                with torch.device("meta"):
                    probe = build_encoder(arch["name"], **arch.get("kwargs", {}))
            except RuntimeError:  # an architecture that cannot be built without data: no early check
                probe = None
        if probe is not None:
            want = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
            have = {k: tuple(v.shape) for k, v in state.items()}
            if want != have:
                odd = sorted(set(want.items()) ^ set(have.items()))[:1]
                raise ModelFileError(f"{label}: the weights do not match the architecture {arch.get('name')!r} "
                                     f"in its metadata (e.g. {odd[0][0] if odd else '?'}).")
        encoder = build_encoder(arch["name"], **arch.get("kwargs", {}))
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:  # inf sizes overflow int()
        raise ModelFileError(f"{label}: cannot build architecture {arch.get('name')!r} ({_short(exc)}).") from None
    return SiameseNetwork(encoder)


def _load_legacy(path: Path) -> tuple[dict, dict]:
    import pickle

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols: noise on the CLI's one line
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(f"{path.name} was refused: it contains Python objects other than weights "
                             "(possibly code). Only plain weight files are loaded.") from None
    except Exception as exc:  # noqa: BLE001 - zip/format errors
        raise ModelFileError(f"{path.name} is not a readable PyTorch weights file ({_short(exc)}).") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or META_KEY not in obj:
        raise ModelFileError(f"{path.name} is a PyTorch file without siamgui metadata; "
                             "it must hold {'state_dict': ..., 'siamgui': '<json>'}.")
    raw = obj[META_KEY]
    try:
        meta = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise ModelFileError(f"{path.name} has damaged metadata.") from None
    meta = validate_meta(meta, path.name)
    state = obj["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path.name}: 'state_dict' is not a mapping of tensors.")
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    return state, meta


def update_metadata(path: str | os.PathLike, **changes) -> dict[str, Any]:
    """Rewrite a model file with some metadata fields changed (atomically)."""
    loaded = load_model(path)
    meta = dict(loaded.meta)
    meta.update(changes)
    save_model(path, loaded.network, meta)
    return meta


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_copy(source: str | os.PathLike, target: str | os.PathLike, **changes) -> dict[str, Any]:
    """Write a copy of the model file ``source`` to ``target`` with some metadata fields
    changed (e.g. ``threshold``, ``calibration``). Never writes over ``source``."""
    source, target = Path(source), Path(target)
    if target.exists() and target.resolve() == source.resolve():
        raise ModelFileError(f"{target.name} is the model itself; save the changed model under another name "
                             "(the original is never overwritten).")
    loaded = load_model(source)
    meta = {**loaded.meta, **changes}
    save_model(target, loaded.network, meta)
    return meta


def bundled_face_config() -> dict:
    """The bundled face model's face settings (``preprocess.face``: detector, landmarks), a fresh
    copy; what a camera preview uses to draw the boxes a capture will start from."""
    from siamgui.core.resources import bundled_model_path

    return dict(read_metadata(bundled_model_path())["preprocess"]["face"])

"""Export a model's encoder to ONNX, with what a consumer needs in the file's metadata.

:func:`export_onnx` writes one self-contained ``.onnx`` file (no ``.onnx.data``
beside it): the embedding network with a dynamic batch axis and, when the model
file asks for it (``embedding.flip_average``), the mirror-image averaging inside
the graph, computed as :meth:`Verifier.embed_prepared` does it (image and mirror
in one batch, the two halves averaged). Its input is the *normalised* image
batch ``(N, C, H, W)`` float32, ``(pixel - mean) / std`` per channel; detection,
alignment and resizing stay outside (``siamgui.preprocess``).

``metadata_props`` (JSON strings, keys in :data:`METADATA_KEYS`) carry the
preprocessing, input size and normalisation, distance, threshold, embedding and
provenance. The file is written atomically and, when onnxruntime is installed,
checked against PyTorch on seeded inputs before it replaces anything.

The exporter is torch's TorchScript-based one (``dynamo=False``): the dynamo
exporter, torch's default, needs ``onnxscript`` and writes the weights to a
separate ``.onnx.data`` file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from siamgui.core.errors import SiamguiError

#: The opset written by default (onnxruntime >= 1.12 and OpenCV's DNN module read it).
DEFAULT_OPSET = 17
#: Opsets the TorchScript exporter writes.
OPSETS = range(11, 21)
#: Largest embedding difference from PyTorch that the export check accepts.
PARITY_TOLERANCE = 1e-4
FORMAT = "siamgui-onnx-encoder"
FORMAT_VERSION = 1
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
METADATA_KEYS = ("siamgui.format", "siamgui.input", "siamgui.output", "siamgui.preprocess", "siamgui.distance",
                 "siamgui.threshold", "siamgui.embedding", "siamgui.provenance", "siamgui.model_meta")
_INSTALL_HINT = "install the 'onnx' extra: pip install 'siamgui[onnx]'"


class ExportError(SiamguiError):
    """A model cannot be exported (missing package, bad destination, failed check)."""


@dataclass
class ExportResult:
    path: Path
    opset: int
    input_shape: list  # ["batch", C, H, W]
    embedding_dim: int
    flip_average: bool
    size_bytes: int
    #: Largest |onnxruntime - PyTorch| over the check's embeddings; None when onnxruntime is absent.
    max_abs_diff: float | None

    def to_dict(self) -> dict:
        return {"path": str(self.path), "opset": self.opset, "input_shape": self.input_shape,
                "embedding_dim": self.embedding_dim, "flip_average": self.flip_average,
                "size_bytes": self.size_bytes, "max_abs_diff": self.max_abs_diff}


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"ONNX export needs the {module!r} package; {_INSTALL_HINT}.") from None


def _graph_module(network, flip_average: bool):
    """The encoder as the Verifier runs it: flip averaging included when the model asks for it."""
    from torch import nn

    class EmbeddingGraph(nn.Module):
        def __init__(self, encoder: nn.Module):
            super().__init__()
            self.encoder = encoder

        def forward(self, x):
            if not flip_average:
                return self.encoder(x)
            import torch

            z = self.encoder(torch.cat([x, x.flip(3)]))
            # view + unbind, not z[:len(z) // 2]: the tracer would freeze len(z) to the example batch
            a, b = z.view(2, -1, z.shape[1]).unbind(0)
            return (a + b) / 2

    return EmbeddingGraph(network.encoder).eval()


def _metadata(loaded, source: Path, opset: int, flip_average: bool) -> dict[str, str]:
    import onnx
    import torch

    import siamgui
    from siamgui.core.modelfile import sha256_file

    meta = loaded.meta
    spec = loaded.spec
    dim = int(loaded.network.embedding_dim)
    normalization = {"mean": list(spec.mean), "std": list(spec.std), "units": "pixel (0-255)",
                     "formula": "(pixel - mean) / std, per channel"}
    values: dict[str, Any] = {
        "siamgui.format": {"format": FORMAT, "version": FORMAT_VERSION},
        "siamgui.input": {"name": INPUT_NAME, "dtype": "float32", "layout": "NCHW",
                          "shape": ["batch", spec.channels, spec.image_size, spec.image_size],
                          "colour": "RGB" if spec.channels == 3 else "grey", "normalization": normalization,
                          "note": "the prepared image (siamgui.preprocess: face detection, alignment, resize "
                                  "happen before), normalised"},
        "siamgui.output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", dim]},
        "siamgui.preprocess": spec.to_dict(),
        "siamgui.distance": loaded.distance,
        "siamgui.threshold": loaded.threshold,
        "siamgui.embedding": {"dim": dim, "flip_average": flip_average, "flip_average_in_graph": flip_average,
                              "normalized": bool(getattr(loaded.network.encoder, "normalize", False)),
                              "rule": "same when distance(a, b) < threshold"},
        "siamgui.provenance": {
            "model_name": loaded.name, "source_file": source.name, "source_sha256": sha256_file(source),
            "fingerprint": loaded.fingerprint(), "model_provenance": meta.get("provenance") or {},
            "exporter": "torch.onnx.export (TorchScript exporter, dynamo=False)", "opset": opset,
            "torch": torch.__version__, "onnx": onnx.__version__, "siamgui": siamgui.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        "siamgui.model_meta": meta,
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _check_destination(out: Path) -> None:
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"ONNX files end in .onnx, not {out.suffix or 'no extension'} ({out.name}).")
    if out.is_dir():
        raise ExportError(f"{out} is a folder.")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise ExportError(f"The folder {out.parent} does not exist.")


def export_onnx(model_path: str | os.PathLike, out_path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                check: bool = True, flip_average: bool | None = None) -> ExportResult:
    """Write ``model_path``'s encoder to ``out_path`` as one ONNX file (see the module doc).

    With ``check`` and onnxruntime installed, batches of 1 and 7 seeded inputs are
    embedded by both runtimes first; a difference above :data:`PARITY_TOLERANCE`
    raises ExportError and leaves ``out_path`` as it was. A file that is not a
    model raises ModelFileError. ``flip_average`` overrides the model file's
    ``embedding.flip_average`` (None: as the file says); the check and the
    metadata follow the choice.
    """
    import torch

    from siamgui.core.modelfile import atomic_write, load_model

    source, out = Path(model_path), Path(out_path)
    if int(opset) not in OPSETS:
        raise ExportError(f"Opset {opset} is not supported; choose {OPSETS.start}-{OPSETS.stop - 1} "
                          f"(default {DEFAULT_OPSET}).")
    _check_destination(out)
    onnx = _require("onnx")
    loaded = load_model(source)  # ModelFileError for anything that is not a model
    flip = bool((loaded.meta.get("embedding") or {}).get("flip_average", False)) if flip_average is None \
        else bool(flip_average)
    graph = _graph_module(loaded.network.float().cpu(), flip)
    spec = loaded.spec
    example = torch.randn(2, spec.channels, spec.image_size, spec.image_size, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(prefix="siamgui-onnx-") as tmp:
        raw = Path(tmp) / "graph.onnx"
        try:
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
                torch.onnx.export(graph, (example,), str(raw), dynamo=False, opset_version=int(opset),
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                                  do_constant_folding=True)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types for unsupported operators
            raise ExportError(f"{source.name} could not be converted to ONNX "
                              f"({(str(exc).splitlines() or [type(exc).__name__])[0][:200]}).") from None
        proto = onnx.load(str(raw))
    proto.producer_name = "siamgui"
    proto.doc_string = f"{loaded.name}: encoder exported by siamgui (see metadata_props siamgui.*)"
    for key, value in _metadata(loaded, source, int(opset), flip).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    diff = None
    try:
        with atomic_write(out, ".onnx.tmp") as tmp_out:
            onnx.save(proto, str(tmp_out))
            if check:
                diff = _parity(loaded, tmp_out, flip)
    except OSError as exc:
        raise ExportError(f"Could not write {out}: {exc.strerror or exc}.") from None
    return ExportResult(out, int(opset), ["batch", spec.channels, spec.image_size, spec.image_size],
                        int(loaded.network.embedding_dim), flip, out.stat().st_size, diff)


def _parity(loaded, onnx_path: Path, flip: bool) -> float | None:
    """Largest embedding difference between onnxruntime and the Verifier (float32); None without onnxruntime."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    from siamgui.core.verifier import Verifier

    verifier = Verifier(loaded, device="cpu", precision="float32", cache_size=0)
    verifier.flip_average = flip  # compare with what the graph computes (the caller may have overridden it)
    runner = OnnxEmbedder(onnx_path, threads=1)
    spec = loaded.spec
    rng = np.random.default_rng(0)
    worst = 0.0
    for n in (1, 7):
        pixels = rng.integers(0, 256, size=(n, spec.image_size, spec.image_size, spec.channels), dtype=np.uint8)
        ref = verifier.embed_prepared(list(pixels)).numpy()
        worst = max(worst, float(np.abs(runner.embed_prepared(pixels) - ref).max()))
    if not worst <= PARITY_TOLERANCE:
        raise ExportError(f"The ONNX encoder's embeddings differ from PyTorch's by {worst:.2e} "
                          f"(more than {PARITY_TOLERANCE:g}); the file was not written.")
    return worst


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``siamgui.*`` metadata of an exported file, JSON values decoded."""
    onnx = _require("onnx")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors
        raise ExportError(f"{Path(path).name} is not a readable ONNX file ({str(exc)[:120]}).") from None
    props = {p.key: p.value for p in proto.metadata_props if p.key.startswith("siamgui.")}
    if "siamgui.format" not in props:
        raise ExportError(f"{Path(path).name} was not exported by siamgui (no siamgui metadata).")
    out = {}
    for key, value in props.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


class OnnxEmbedder:
    """Embeds prepared uint8 images with an exported file and onnxruntime, normalising
    them as its metadata says (nothing is taken from the original model file)."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        ort = _require("onnxruntime")
        self.meta = read_onnx_metadata(path)
        norm = self.meta["siamgui.input"]["normalization"]
        c = len(norm["mean"])
        # the same float32 arithmetic as Preprocessor.normalize: (x - mean) * (1 / std)
        self._mean = np.asarray(norm["mean"], np.float32).reshape(1, c, 1, 1)
        self._inv_std = (np.float32(1.0) / np.asarray(norm["std"], np.float32)).reshape(1, c, 1, 1)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.distance = str(self.meta["siamgui.distance"])
        self.threshold = float(self.meta["siamgui.threshold"])

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 -> (N, C, H, W) float32, normalised."""
        x = np.ascontiguousarray(np.asarray(pixels).transpose(0, 3, 1, 2), dtype=np.float32)
        return (x - self._mean) * self._inv_std

    def embed_normalized(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, np.float32)})[0]

    def embed_prepared(self, arrays: Sequence[np.ndarray] | np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Embeddings (N, D) for prepared (H, W, C) uint8 images (``Verifier.prepare``'s output)."""
        pixels = np.stack(list(arrays)) if not isinstance(arrays, np.ndarray) else arrays
        out = [self.embed_normalized(self.normalize(pixels[i:i + batch_size]))
               for i in range(0, len(pixels), batch_size)]
        dim = int(self.meta["siamgui.output"]["shape"][1])
        return np.concatenate(out) if out else np.zeros((0, dim), np.float32)

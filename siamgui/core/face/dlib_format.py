"""Import dlib model files (``.dat``) with pure Python/NumPy: no dlib needed.

Two kinds of dlib file are understood:

* the ResNet face descriptor ``dlib_face_recognition_resnet_model_v1.dat``
  (a dnn ``anet_type``): :func:`read_dnn` parses the layer records, and
  :func:`import_face_model` writes a siamgui ``.safetensors`` model file with
  the ``dlib-resnet29`` architecture (see :mod:`siamgui.core.models.dlib_resnet`);
* a landmark ``shape_predictor`` such as ``shape_predictor_5_face_landmarks.dat``:
  :func:`read_shape_predictor` parses it, and :func:`import_shape_predictor`
  writes its arrays to a ``.safetensors`` file that :mod:`siamgui.core.face.landmarks`
  evaluates.

The serialization format is dlib's ``serialize.h``: integers are a control
byte (low nibble = byte count, 0x80 = negative) plus little-endian magnitude;
scalar floats are ``mantissa * 2**exponent`` as two such integers; strings are
a length plus bytes; bools are ASCII ``'0'``/``'1'``; tensors are four sizes
plus raw little-endian float32 data. A dnn file is the network's layers from
the loss layer inwards, each a name string and its parameters
(:func:`read_dnn`); a shape predictor is a version, the initial shape and, per
cascade stage, the regression forest and its anchor/delta pixel tables
(:func:`read_shape_predictor`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siamgui.core.errors import SiamguiError
from siamgui.core.face.landmarks import ShapePredictor

ARCH_NAME = "dlib-resnet29"
SOURCE_PACKAGE = "face_recognition_models 0.3.0 (PyPI sdist)"
LICENCE = "CC0 1.0 Universal (public domain dedication)"
TRAINED_BY = "trained by Davis E. King on about 3 million faces"


class DlibFormatError(SiamguiError):
    """A file is not a dlib model of a kind we can read."""


# -- primitives ----------------------------------------------------------------------------
class DlibReader:
    """Sequential reader of a dlib ``serialize()`` byte stream."""

    def __init__(self, data: bytes, label: str = "the file"):
        self.data = memoryview(data)
        self.pos = 0
        self.label = label

    def _fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.label} is not a dlib model file we can read ({what} at byte {self.pos}).")

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise self._fail("unexpected end of file")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def int(self) -> int:
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or ctrl & 0x70:
            self.pos -= 1
            raise self._fail("bad integer")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self._fail("old text-format float")
        mantissa = self.int()
        exponent = self.int()
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def string(self, max_len: int = 1 << 20) -> str:
        n = self.int()
        if n < 0 or n > max_len:
            raise self._fail("bad string length")
        raw = bytes(self._take(n))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self._fail("non-text string") from None

    def bool(self) -> bool:
        b = self._take(1)[0]
        if b not in (0x30, 0x31):
            self.pos -= 1
            raise self._fail("bad bool")
        return b == 0x31

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise self._fail(f"tensor version {version}")
        shape = tuple(self.int() for _ in range(4))
        if any(s < 0 for s in shape):
            raise self._fail("negative tensor size")
        n = int(np.prod(shape, dtype=np.int64))
        raw = self._take(4 * n)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise self._fail(f"alias_tensor version {version}")
        return tuple(self.int() for _ in range(4))

    def float_matrix(self) -> np.ndarray:
        """A ``matrix<float>`` (sizes stored negated) whose elements are scalar floats."""
        nr, nc = self.int(), self.int()
        if nr < 0 or nc < 0:  # the current format stores -nr, -nc
            nr, nc = -nr, -nc
        return np.array([self.float() for _ in range(nr * nc)], dtype=np.float32).reshape(nr, nc)

    def peek_string(self, prefix: bytes) -> bool:
        """Whether a string starting with ``prefix`` comes next (nothing is consumed)."""
        save = self.pos
        try:
            n = self.int()
            return 0 < n < 256 and bytes(self.data[self.pos:self.pos + len(prefix)]) == prefix
        except DlibFormatError:
            return False
        finally:
            self.pos = save


# -- dnn files -------------------------------------------------------------------------------
@dataclass
class Layer:
    kind: str  # "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc"
    version: str
    fields: dict[str, Any] = field(default_factory=dict)
    params: np.ndarray | None = None


@dataclass
class DnnFile:
    loss: str
    margin: float
    dist_thresh: float
    input: dict[str, Any]
    layers: list[Layer]  # input side first
    wrappers: list[int]  # the wrapper version ints, outermost first


def _read_layer(r: DlibReader) -> Layer:
    v = r.string(64)
    if v in ("con_4", "con_5", "con_6"):
        params = r.tensor()
        f = {"num_filters": r.int(), "nr": r.int(), "nc": r.int(), "stride_y": r.int(), "stride_x": r.int(),
             "padding_y": r.int(), "padding_x": r.int()}
        f["filters"], f["biases"] = r.alias(), r.alias()
        f["multipliers"] = [r.float() for _ in range(4)]
        f["use_bias"] = r.bool() if v in ("con_5", "con_6") else True
        if v == "con_6":
            f["use_relu"] = r.bool()
        return Layer("con", v, f, params)
    if v in ("affine_", "affine_2"):
        params = r.tensor()
        f = {"gamma": r.alias(), "beta": r.alias(), "mode": r.int()}
        f["disabled"] = r.bool() if v == "affine_2" else False
        return Layer("affine", v, f, params)
    if v in ("bn_con2", "bn_fc2"):
        params = r.tensor()
        f = {"gamma": r.alias(), "beta": r.alias()}
        f["means"], f["invstds"] = r.tensor(), r.tensor()
        f["running_means"], f["running_variances"] = r.tensor(), r.tensor()
        f["num_updates"], f["window"] = r.int(), r.int()
        f["multipliers"] = [r.float() for _ in range(4)]
        f["eps"] = r.float()
        return Layer("bn", v, f, params)
    if v in ("relu_", "relu_2"):
        return Layer("relu", v, {"disabled": r.bool() if v == "relu_2" else False})
    if v in ("max_pool_2", "avg_pool_2"):
        f = {"nr": r.int(), "nc": r.int(), "stride_y": r.int(), "stride_x": r.int(), "padding_y": r.int(),
             "padding_x": r.int()}
        return Layer(v[:-2], v, f)
    if v == "add_prev_":
        return Layer("add_prev", v)
    if v in ("fc_2", "fc_3"):
        f = {"num_outputs": r.int(), "num_inputs": r.int()}
        params = r.tensor()
        f["weights"], f["biases"] = r.alias(), r.alias()
        f["bias_mode"] = r.int()
        f["multipliers"] = [r.float() for _ in range(4)]
        if v == "fc_3":
            f["use_bias"] = r.bool()
        return Layer("fc", v, f, params)
    raise r._fail(f"unsupported layer type {v!r}")


def read_dnn(data: bytes, label: str = "the file") -> DnnFile:
    """Parse a dlib dnn (metric-loss network) file into its ordered layer records."""
    r = DlibReader(data, label)
    if r.int() != 1:
        raise r._fail("unexpected loss-layer version")
    loss = r.string(64)
    if loss == "loss_metric_2":
        margin, thresh = r.float(), r.float()
    elif loss == "loss_metric_":
        margin, thresh = 0.1, 0.75
    else:
        raise DlibFormatError(f"{label} has a {loss!r} loss; only dlib's metric-loss face networks are supported.")
    wrappers = []
    while True:
        v = r.int()
        wrappers.append(v)
        if v == 3 or (v == 2 and r.peek_string(b"input_")):
            break
        if v not in (1, 2) or len(wrappers) > 10000:
            raise r._fail(f"unexpected layer wrapper version {v}")
    kind = r.string(64)
    if kind not in ("input_rgb_image_sized", "input_rgb_image"):
        raise DlibFormatError(f"{label}: input layer {kind!r} is not supported (RGB input expected).")
    inp = {"kind": kind, "avg_rgb": [r.float(), r.float(), r.float()]}
    if kind == "input_rgb_image_sized":
        inp["nr"], inp["nc"] = r.int(), r.int()
    n_layers = sum(1 for v in wrappers if v in (2, 3))
    layers = []
    for i in range(n_layers):
        layer = _read_layer(r)
        for _ in range(3):
            r.bool()
        for _ in range(3):
            r.tensor()
        if i == 0 and wrappers[-1] == 3:
            layer.fields["sample_expansion_factor"] = r.int()
        layers.append(layer)
    if r.remaining:
        raise r._fail(f"{r.remaining} bytes left after the network")
    return DnnFile(loss, margin, thresh, inp, layers, wrappers)


# -- dnn -> PyTorch state dict ------------------------------------------------------------------
def _expected_plan(n_levels: tuple[int, ...] = (3, 3, 2, 2, 0)) -> list[str]:
    """The layer-record sequence (input side first) of dlib's face ``anet_type``."""
    plan = ["con", "affine", "relu", "max_pool"]
    res = ["con", "affine", "relu", "con", "affine", "add_prev", "relu"]
    down = ["con", "affine", "relu", "con", "affine", "avg_pool", "add_prev", "relu"]
    plan += res * n_levels[0]
    for n in n_levels[1:]:
        plan += down + res * n
    return plan + ["avg_pool", "fc"]


def _conv_affine(con: Layer, aff: Layer, stride: int, kernel: int, label: str) -> tuple[np.ndarray, np.ndarray]:
    f = con.fields
    if (f["nr"], f["nc"], f["stride_y"], f["stride_x"]) != (kernel, kernel, stride, stride):
        raise DlibFormatError(f"{label}: a convolution is {f['nr']}x{f['nc']}/{f['stride_y']}, expected "
                              f"{kernel}x{kernel}/{stride}; this is not dlib's face ResNet.")
    pad = 0 if stride != 1 else kernel // 2
    if (f["padding_y"], f["padding_x"]) != (pad, pad):
        raise DlibFormatError(f"{label}: unexpected convolution padding {f['padding_y']}.")
    fshape = f["filters"]
    n_w = int(np.prod(fshape))
    p = con.params.ravel()
    w = p[:n_w].reshape(fshape[0], fshape[1], fshape[2], fshape[3])
    b = p[n_w:n_w + fshape[0]] if f["use_bias"] else np.zeros(fshape[0], np.float32)
    if aff.kind == "affine":
        if aff.fields["mode"] != 0:
            raise DlibFormatError(f"{label}: an affine layer is not in convolution mode.")
        k = aff.fields["gamma"][1]
        ap = aff.params.ravel()
        g, beta = ap[:k], ap[k:2 * k]
        if aff.fields.get("disabled"):
            g, beta = np.ones_like(g), np.zeros_like(beta)
    elif aff.kind == "bn":
        k = aff.fields["gamma"][1]
        ap = aff.params.ravel()
        gamma, beta0 = ap[:k], ap[k:2 * k]
        rv = aff.fields["running_variances"].ravel()
        rm = aff.fields["running_means"].ravel()
        g = gamma / np.sqrt(rv + np.float32(aff.fields["eps"]))
        beta = beta0 - g * rm
    else:
        raise DlibFormatError(f"{label}: expected an affine layer after a convolution.")
    if len(g) != w.shape[0]:
        raise DlibFormatError(f"{label}: affine and convolution sizes differ.")
    # Fold y = (conv(x) + b) * g + beta into the convolution (float64, then float32).
    w2 = (w.astype(np.float64) * g.astype(np.float64)[:, None, None, None]).astype(np.float32)
    b2 = (b.astype(np.float64) * g + beta).astype(np.float32)
    return w2, b2


def dnn_to_state(dnn: DnnFile, label: str = "the file") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Map the layer records onto ``dlib-resnet29``'s state dict; returns (state, architecture kwargs)."""
    kinds = [("bn" if lay.kind == "bn" else lay.kind) for lay in dnn.layers]
    plan = _expected_plan()
    if [("affine" if k == "bn" else k) for k in kinds] != plan:
        raise DlibFormatError(f"{label} does not have the layer sequence of dlib's face ResNet "
                              f"({len(kinds)} layers, expected {len(plan)}).")
    layers = iter(dnn.layers)
    state: dict[str, np.ndarray] = {}

    def nxt(kind):
        lay = next(layers)
        if (lay.kind if lay.kind != "bn" else "affine") != kind:
            raise DlibFormatError(f"{label}: layer order differs from dlib's face ResNet.")
        return lay

    def conv(name, stride, kernel=3):
        w, b = _conv_affine(nxt("con"), nxt("affine"), stride, kernel, label)
        state[f"{name}.weight"], state[f"{name}.bias"] = w, b
        return w.shape[0]

    stem = conv("stem", 2, 7)
    nxt("relu")
    mp = nxt("max_pool").fields
    if (mp["nr"], mp["stride_y"], mp["padding_y"]) != (3, 2, 0):
        raise DlibFormatError(f"{label}: unexpected max pooling.")
    widths = []
    unit = 0
    for level, n_res in enumerate((3, 3, 2, 2, 0)):
        down = level > 0
        for j in range(int(down) + n_res):
            is_down = down and j == 0
            width = conv(f"units.{unit}.conv1", 2 if is_down else 1)
            nxt("relu")
            conv(f"units.{unit}.conv2", 1)
            if is_down:
                ap = nxt("avg_pool").fields
                if (ap["nr"], ap["stride_y"], ap["padding_y"]) != (2, 2, 0):
                    raise DlibFormatError(f"{label}: unexpected average pooling in a downsampling unit.")
            nxt("add_prev")
            nxt("relu")
            unit += 1
        widths.append(width)
    gp = nxt("avg_pool").fields
    if gp["nr"] != 0 or gp["nc"] != 0:
        raise DlibFormatError(f"{label}: the final pooling is not a global average.")
    fc = nxt("fc")
    f = fc.fields
    if f["bias_mode"] != 1:
        raise DlibFormatError(f"{label}: the final fc layer has a bias; dlib's face ResNet has none.")
    w = fc.params.ravel()[: f["num_inputs"] * f["num_outputs"]].reshape(f["num_inputs"], f["num_outputs"])
    state["head.weight"] = np.ascontiguousarray(w.T)
    if f["num_inputs"] != widths[-1]:
        raise DlibFormatError(f"{label}: fc input size {f['num_inputs']} differs from the last width {widths[-1]}.")
    kwargs = {"stem_width": int(stem), "widths": [int(x) for x in widths], "embedding_dim": int(f["num_outputs"])}
    return state, kwargs


def _float32(x: float) -> float:
    return float(np.float32(x))


def face_model_meta(dnn: DnnFile, kwargs: dict, sha256: str, source_name: str, *, threshold: float | None = None,
                    metrics: dict | None = None, face: dict | None = None, flip_average: bool = False) -> dict:
    from siamgui.core.modelfile import make_meta
    from siamgui.core.preprocess import PreprocessSpec

    size = int(dnn.input.get("nr", 150))
    spec = PreprocessSpec(
        preset="face", image_size=size, channels=3,
        mean=[_float32(v) for v in dnn.input["avg_rgb"]], std=[256.0, 256.0, 256.0],
        face=face if face is not None else default_face_config(), hflip=True,
    )
    spec.validate()
    return make_meta(
        architecture={"name": ARCH_NAME, "kwargs": kwargs},
        preprocess=spec,
        distance="euclidean",
        threshold=float(threshold if threshold is not None else _float32(dnn.dist_thresh)),
        margin=_float32(dnn.margin),
        loss=f"dlib {dnn.loss} (pairwise metric loss, margin {_float32(dnn.margin):g}, "
             f"threshold {_float32(dnn.dist_thresh):g})",
        metrics=metrics or {},
        name="dlib ResNet face descriptor v1",
        provenance={
            "source": f"{source_name} from {SOURCE_PACKAGE}",
            "sha256": sha256,
            "licence": LICENCE,
            "author": TRAINED_BY,
            "converted_by": "siamgui import-dlib (pure Python/NumPy reader; affine layers folded into convs)",
        },
        embedding={"normalized": False, "flip_average": bool(flip_average)},
    )


def default_face_config() -> dict:
    """The ``face`` preprocessing of the bundled model (see :mod:`siamgui.core.face.alignment`)."""
    return {"detector": "yunet", "align": "dlib5", "landmarks": "shape_predictor_5.safetensors",
            "padding": 0.25, "refine": 0, "margin": 0.15}


def import_face_model(dat: str | Path, out: str | Path, *, threshold: float | None = None,
                      metrics: dict | None = None, face: dict | None = None, flip_average: bool = False) -> dict:
    """Convert ``dlib_face_recognition_resnet_model_v1.dat`` to a siamgui model file; returns the metadata."""
    import torch

    from siamgui.core.modelfile import save_model
    from siamgui.core.models import SiameseNetwork, build_encoder

    dat = Path(dat)
    data = _read_bytes(dat)
    dnn = read_dnn(data, dat.name)
    state, kwargs = dnn_to_state(dnn, dat.name)
    encoder = build_encoder(ARCH_NAME, **kwargs)
    try:
        encoder.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                                strict=True)
    except RuntimeError as exc:
        raise DlibFormatError(f"{dat.name}: the weights do not fit {ARCH_NAME} ({str(exc)[:160]}).") from None
    meta = face_model_meta(dnn, kwargs, hashlib.sha256(data).hexdigest(), dat.name, threshold=threshold,
                           metrics=metrics, face=face, flip_average=flip_average)
    save_model(out, SiameseNetwork(encoder), meta)
    return meta


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DlibFormatError(f"No such file: {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DlibFormatError(f"Could not read {path}: {exc.strerror or exc}.") from None


# -- shape predictor files ----------------------------------------------------------------------
def read_shape_predictor(data: bytes, label: str = "the file") -> ShapePredictor:
    r = DlibReader(data, label)
    if r.int() != 1:
        raise r._fail("unexpected shape_predictor version")
    init = r.float_matrix().ravel()
    if init.size % 2:
        raise r._fail("odd initial shape")
    n_stages = r.int()
    split_idx, split_thresh, leaves = [], [], []
    for _ in range(n_stages):
        n_trees = r.int()
        idx_s, th_s, lv_s = [], [], []
        for _ in range(n_trees):
            n_splits = r.int()
            idx, th = [], []
            for _ in range(n_splits):
                idx.append((r.int(), r.int()))
                th.append(r.float())
            n_leaves = r.int()
            if n_leaves != n_splits + 1:
                raise r._fail("a regression tree is not complete")
            lv = [r.float_matrix().ravel() for _ in range(n_leaves)]
            idx_s.append(idx)
            th_s.append(th)
            lv_s.append(lv)
        split_idx.append(np.array(idx_s, np.int64))
        split_thresh.append(np.array(th_s, np.float32))
        leaves.append(np.array(lv_s, np.float32))
    if r.int() != n_stages:
        raise r._fail("anchor list size")
    anchor = [np.array([r.int() for _ in range(r.int())], np.int64) for _ in range(n_stages)]
    if r.int() != n_stages:
        raise r._fail("delta list size")
    deltas = []
    for _ in range(n_stages):
        n = r.int()
        deltas.append(np.array([(r.float(), r.float()) for _ in range(n)], np.float32).reshape(n, 2))
    if r.remaining:
        raise r._fail(f"{r.remaining} bytes left after the shape predictor")
    return ShapePredictor(init.reshape(-1, 2), anchor, deltas, split_idx, split_thresh, leaves)


def import_shape_predictor(dat: str | Path, out: str | Path) -> dict:
    """Convert a dlib ``shape_predictor`` ``.dat`` to a ``.safetensors`` file of arrays; returns its metadata."""
    from safetensors.numpy import save_file

    from siamgui.core.modelfile import atomic_write

    dat, out = Path(dat), Path(out)
    data = _read_bytes(dat)
    sp = read_shape_predictor(data, dat.name)
    meta = {"format": "siamgui-shape-predictor", "format_version": 1, "points": int(len(sp.initial_shape)),
            "stages": len(sp.anchor), "source": f"{dat.name} from {SOURCE_PACKAGE}",
            "sha256": hashlib.sha256(data).hexdigest(), "licence": LICENCE,
            "author": "Davis E. King (dlib 5-point landmark model)"}
    if not out.parent.exists():
        raise DlibFormatError(f"The folder {out.parent} does not exist.")
    with atomic_write(out, ".safetensors.tmp") as tmp:
        save_file(sp.to_tensors(), str(tmp), metadata={"siamgui": json.dumps(meta)})
    return meta


# -- either kind --------------------------------------------------------------------------------------
def detect_kind(data: bytes) -> str:
    """``"dnn"`` for a metric-loss network, ``"shape_predictor"`` for a landmark model."""
    r = DlibReader(data)
    try:
        if r.int() == 1 and r.peek_string(b"loss_"):
            return "dnn"
    except DlibFormatError:
        pass
    r.pos = 0
    try:
        if r.int() == 1:
            nr = r.int()
            if nr < 0:
                return "shape_predictor"
    except DlibFormatError:
        pass
    return "unknown"


def import_dlib_file(src: str | Path, out: str | Path, *, threshold: float | None = None,
                     flip_average: bool = False) -> tuple[str, dict]:
    """Convert a dlib face network or shape predictor, whichever ``src`` is; returns (kind, metadata)."""
    src = Path(src)
    kind = detect_kind(_read_bytes(src))
    if kind == "dnn":
        return kind, import_face_model(src, out, threshold=threshold, flip_average=flip_average)
    if kind == "shape_predictor":
        return kind, import_shape_predictor(src, out)
    raise DlibFormatError(f"{src.name} is neither a dlib face network nor a dlib shape predictor.")

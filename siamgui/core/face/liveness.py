"""A liveness hint: does the face look like a live person or a photo or screen held to the camera?

The networks are Silent-Face-Anti-Spoofing's (Minivision, Apache-2.0) MiniFASNetV2
and MiniFASNetV1SE (:mod:`siamgui.core.models.minifasnet`), converted by
``bench/make_liveness.py`` into ``resources/models/liveness.safetensors``. As in the
authors' ``test.py``: each network sees the face detector's box scaled by its own
factor (2.7 and 4.0) around the box centre, kept inside the image, resized to 80x80,
BGR values 0..255; the two softmax outputs over (spoof, real, spoof) are summed and
the largest class decides. ``score_real`` is the mean probability of "real". Boxes from
our detectors are first mapped to the box the authors' RetinaFace would draw (:func:`reference_box`).

This is a *hint*, not a security check: there is no spoof data here to measure it on,
so the only accuracy figures are the authors' own (their README), for camera
captures under their conditions (whole face in view, rotation under 30 degrees).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamgui.core.errors import ImageError, ModelFileError

FORMAT = "siamgui-liveness-1"
MODEL_FILE = "liveness.safetensors"
SOURCE = "Silent-Face-Anti-Spoofing (Minivision; MiniFASNetV2 + MiniFASNetV1SE, Apache-2.0)"
#: The class index of "real" in the networks' outputs (spoof, real, spoof).
REAL = 1


@dataclass(frozen=True)
class LivenessHint:
    #: Mean probability of "live face" over the two networks, 0..1.
    score_real: float
    #: "real" or "spoof": the class with the largest summed probability (the authors' rule).
    label: str
    #: Where the hint comes from (for display beside it).
    source: str = SOURCE

    @property
    def is_real(self) -> bool:
        return self.label == "real"

    def message(self) -> str:
        what = "looks like a live face" if self.is_real else "may be a photo or a screen"
        return f"Liveness hint: {what} (score {self.score_real:.2f}; {self.source}; not a security check)."

    def to_dict(self) -> dict:
        return {"score_real": round(self.score_real, 4), "label": self.label, "source": self.source}


#: Our detectors' boxes -> the box the authors' detector (RetinaFace) draws on the same face:
#: its width and height as multiples of ours, and its centre's shift in fractions of its size
#: (medians over LFW faces, ``bench/verify_liveness.py --detectors``).
REFERENCE_BOX = {
    "mtcnn": {"w": 1.1524, "h": 0.8894, "dx": -0.0060, "dy": 0.0778},
    "haar": {"w": 0.9279, "h": 0.9547, "dx": -0.0195, "dy": 0.0868},
}


def reference_box(box, detector: str | None) -> tuple[float, float, float, float]:
    """``box`` (x, y, w, h) from our ``detector`` as the authors' detector would have drawn it;
    unchanged for None or a detector without a calibration."""
    x, y, w, h = (float(v) for v in box)
    cal = REFERENCE_BOX.get(detector or "")
    if cal is None:
        return x, y, w, h
    rw, rh = w * cal["w"], h * cal["h"]
    cx, cy = x + w / 2 + cal["dx"] * rw, y + h / 2 + cal["dy"] * rh
    return cx - rw / 2, cy - rh / 2, rw, rh


def crop_region(size: tuple[int, int], box, scale: float) -> tuple[int, int, int, int]:
    """The authors' patch geometry: ``box`` (x, y, w, h) scaled by ``scale`` around its centre
    (less when that would not fit an image of ``size`` (w, h)), shifted back inside the image;
    returns inclusive (left, top, right, bottom) pixel indices."""
    src_w, src_h = size
    x, y, bw, bh = (float(v) for v in box)
    scale = min((src_h - 1) / bh, (src_w - 1) / bw, scale)
    new_w, new_h = bw * scale, bh * scale
    cx, cy = x + bw / 2, y + bh / 2
    left, top, right, bottom = cx - new_w / 2, cy - new_h / 2, cx + new_w / 2, cy + new_h / 2
    if left < 0:
        right, left = right - left, 0
    if top < 0:
        bottom, top = bottom - top, 0
    if right > src_w - 1:
        left, right = left - (right - src_w + 1), src_w - 1
    if bottom > src_h - 1:
        top, bottom = top - (bottom - src_h + 1), src_h - 1
    return int(left), int(top), int(right), int(bottom)


def liveness_crop(bgr: np.ndarray, box, scale: float, out_size: tuple[int, int] = (80, 80)) -> np.ndarray:
    """The (h, w, 3) uint8 BGR patch one network sees (``out_size`` is (h, w))."""
    from siamgui.core.face.detect import _import_cv2

    cv2 = _import_cv2()
    h, w = bgr.shape[:2]
    left, top, right, bottom = crop_region((w, h), box, scale)
    patch = bgr[top:bottom + 1, left:right + 1]
    return cv2.resize(patch, (out_size[1], out_size[0]))


class LivenessModel:
    """The two networks with their crop scales; thread-safe (inference only)."""

    def __init__(self, nets: list, specs: list[dict], meta: dict):
        self.nets, self.specs, self.meta = nets, specs, meta
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path) -> "LivenessModel":
        from safetensors import SafetensorError, safe_open

        from siamgui.core.models.minifasnet import MiniFASNet

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"The liveness model {path.name} is missing (looked in {path.parent}).")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (OSError, SafetensorError) as exc:
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"The liveness model {path.name} could not be read ({reason}).") from None
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{path.name} is not a siamgui liveness model (format {meta.get('format')!r}).")
        nets, specs = [], json.loads(meta["models"])
        for spec in specs:
            prefix = spec["variant"] + "."
            net = MiniFASNet(spec["variant"])
            try:
                net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            except RuntimeError:
                raise ModelFileError(f"The liveness model {path.name} does not hold {spec['variant']}.") from None
            nets.append(net.eval())
        return cls(nets, specs, meta)

    def probabilities(self, bgr: np.ndarray, box) -> np.ndarray:
        """Per network, softmax over (spoof, real, spoof): (n_networks, 3) float64."""
        import torch

        crops = [liveness_crop(bgr, box, s["scale"], tuple(s["input"])) for s in self.specs]
        out = []
        with self._lock, torch.inference_mode():
            for net, crop in zip(self.nets, crops):
                x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))).float()[None]
                out.append(torch.softmax(net(x), dim=1)[0].double().numpy())
        return np.stack(out)


_models: dict[str, LivenessModel] = {}
_models_lock = threading.Lock()


def model_path() -> Path:
    from siamgui.core.resources import resources_dir

    return resources_dir() / "models" / MODEL_FILE


def get_model(path: str | Path | None = None) -> LivenessModel:
    """The liveness model in ``path`` (default: the bundled one), loaded once per process."""
    key = str(path or model_path())
    with _models_lock:
        if key not in _models:
            _models[key] = LivenessModel.load(key)
        return _models[key]


def _as_bgr(image, bgr: bool) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError("The liveness hint needs an 8-bit grey, RGB or BGR image.")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    arr = arr[:, :, :3]
    return arr if bgr else arr[:, :, ::-1]


def liveness_hint(image, box, *, bgr: bool = False, detector: str | None = None,
                  model: LivenessModel | None = None) -> LivenessHint:
    """A hint whether the face in ``box`` (x, y, w, h) is live.

    ``image`` is an RGB (or, with ``bgr=True``, a camera's BGR) uint8 array or PIL image.
    ``detector`` names the detector the box comes from ("mtcnn", "haar"): the box is first
    turned into the one the authors' detector would draw (:data:`REFERENCE_BOX`), as the
    networks were trained on those; None takes the box as such a box.
    """
    arr = _as_bgr(image, bgr)
    h, w = arr.shape[:2]
    x, y, bw, bh = reference_box(box, detector)
    if bw < 1 or bh < 1 or x + bw <= 0 or y + bh <= 0 or x >= w or y >= h or w < 2 or h < 2:
        raise ImageError(f"The face box {tuple(box)} does not lie in the {w}x{h} image.")
    probs = (model or get_model()).probabilities(arr, (x, y, bw, bh))
    summed = probs.sum(0)
    label = "real" if int(np.argmax(summed)) == REAL else "spoof"
    return LivenessHint(float(summed[REAL] / len(probs)), label)

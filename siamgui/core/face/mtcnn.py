"""MTCNN face detector (Zhang et al. 2016) in our own PyTorch code (no Qt, no download).

Three small cascaded networks: P-Net scans an image pyramid for 12x12 face
windows, R-Net re-scores and refines the candidates on 24x24 crops, O-Net on
48x48 crops gives the final boxes, scores and five landmarks (eye centres,
nose tip, mouth corners). The weights are the original authors' as converted
by ``facenet-pytorch`` 2.6.0 (MIT licence, Timothy Esler); ``bench/make_mtcnn.py``
copies them from that wheel into ``resources/models/mtcnn.safetensors`` (we do
not depend on the package). The wiring and the box arithmetic follow
facenet-pytorch's ``detect_face`` so that ``bench/verify_mtcnn.py`` can check
this port against it box for box.

Used by the ``dlib5`` aligner as the face detector: its boxes start dlib's
5-point landmark model, which gives the points dlib's face chip is defined by.
Thread-safe: the networks are only run under ``torch.inference_mode``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from siamgui.core.errors import ModelFileError

#: Detection settings (facenet-pytorch's defaults).
THRESHOLDS = (0.6, 0.7, 0.7)
PYRAMID_FACTOR = 0.709


class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x))
        # the converted weights flatten in (W, H, C) order (the original ran on transposed images)
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


@dataclass
class Detections:
    """Faces found in one image: boxes (N, 4) as x1, y1, x2, y2; scores (N,); points (N, 5, 2)."""

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)


#: Up to this many boxes, NMS computes the whole overlap matrix (4 MB in float32) at once.
_NMS_MATRIX_MAX = 1000


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union",
         plus_one: bool = True) -> np.ndarray:
    """Greedy non-maximum suppression; kept indices, best first.

    A box is dropped when its overlap with a kept one exceeds ``threshold``:
    intersection over union, or over the smaller box (``method="min"``, MTCNN's last
    stage). ``plus_one`` counts areas in whole pixels (``x2 - x1 + 1``) as MTCNN's last
    stage does; its first two stages use torchvision's NMS, which does not.
    """
    if len(boxes) == 0:
        return np.empty(0, np.intp)
    one = 1.0 if plus_one else 0.0
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-scores, kind="stable")
    if len(order) <= _NMS_MATRIX_MAX:  # all overlaps at once, then one cheap greedy pass
        xx1, yy1, xx2, yy2, ar = x1[order], y1[order], x2[order], y2[order], area[order]
        w = np.maximum(0.0, np.minimum(xx2[:, None], xx2[None, :]) - np.maximum(xx1[:, None], xx1[None, :]) + one)
        h = np.maximum(0.0, np.minimum(yy2[:, None], yy2[None, :]) - np.maximum(yy1[:, None], yy1[None, :]) + one)
        inter = w * h
        if method == "min":
            overlap = inter / np.minimum(ar[:, None], ar[None, :])
        else:
            overlap = inter / (ar[:, None] + ar[None, :] - inter)
        suppress = overlap > threshold
        alive = np.ones(len(order), bool)
        keep = []
        for k in range(len(order)):
            if alive[k]:
                keep.append(order[k])
                alive[k + 1:] &= ~suppress[k, k + 1:]
        return np.asarray(keep, np.intp)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = w * h
        if method == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, np.intp)


def _nms_union(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Stages 1 and 2: IoU without the +1 (torchvision's, which the reference uses) on columns 0-4."""
    return _nms(boxes[:, :4].astype(np.float32), boxes[:, 4].astype(np.float32), threshold, "union", plus_one=False)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow boxes to squares about their centres (MTCNN's ``rerec``)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply the networks' box regression (offsets in units of the box's +1 size)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] = boxes[:, 0] + reg[:, 0] * w
    out[:, 1] = boxes[:, 1] + reg[:, 1] * h
    out[:, 2] = boxes[:, 2] + reg[:, 2] * w
    out[:, 3] = boxes[:, 3] + reg[:, 3] * h
    return out


def _scaled(x: torch.Tensor) -> torch.Tensor:
    """Pixel values 0-255 to the networks' input range, channels-last."""
    return ((x - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)


class MTCNN:
    """The three networks and the cascade that runs them."""

    def __init__(self, pnet: PNet, rnet: RNet, onet: ONet, device: str | torch.device = "cpu",
                 meta: dict | None = None):
        self.device = torch.device(device)
        # channels-last: the networks' CPU max pools are much faster that way (bench/README.md, "MTCNN")
        cl = torch.channels_last
        self.pnet = pnet.to(self.device, memory_format=cl).eval()
        self.rnet = rnet.to(self.device, memory_format=cl).eval()
        self.onet = onet.to(self.device, memory_format=cl).eval()
        self.meta = meta or {}

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "MTCNN":
        from safetensors import SafetensorError, safe_open

        nets = {"pnet": PNet(), "rnet": RNet(), "onet": ONet()}
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (OSError, SafetensorError) as exc:
            raise ModelFileError(f"The face detector file {path} could not be read ({exc}).") from None
        for name, net in nets.items():
            state = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
            try:
                net.load_state_dict(state)
            except RuntimeError:
                raise ModelFileError(f"The face detector file {path} does not hold MTCNN's {name}.") from None
        return cls(nets["pnet"], nets["rnet"], nets["onet"], device, meta)

    # -- the cascade -----------------------------------------------------------------
    @staticmethod
    def _integral(rgb: np.ndarray) -> torch.Tensor:
        """The summed-area table of an (H, W, C) uint8 image, on the CPU, as
        ((H + 1) * (W + 1), C) with a zero first row and column; exact (int32, or
        float64 when the sums could overflow it)."""
        h, w, c = rgb.shape
        dtype = torch.int32 if h * w * 255 < 2 ** 31 else torch.float64
        table = torch.zeros((h + 1, w + 1, c), dtype=dtype)
        table[1:, 1:] = torch.from_numpy(np.ascontiguousarray(rgb)).to(dtype).cumsum(0).cumsum(1)
        return table.reshape(-1, c)

    @staticmethod
    def _area(table: torch.Tensor, width: int, y0, x0, ch, cw, out_h: int, out_w: int) -> torch.Tensor:
        """Area resize of N regions (top-left ``y0``, ``x0``, size ``ch`` x ``cw``; arrays)
        of the image whose summed-area table is ``table`` (:meth:`_integral`; ``width`` is
        the image's) to ``out_h`` x ``out_w``: (N, C, out_h, out_w) float32 on the CPU.

        ``F.interpolate(mode="area")`` is adaptive average pooling: output pixel (i, j) is
        the mean of rows floor(i*h/out_h) .. ceil((i+1)*h/out_h) and the same for
        columns. Here every region's bins are summed at once from the table and divided
        as PyTorch's kernel divides (by the bin height, then its width): bit-identical
        to ``F.interpolate`` of each region (``tests/test_mtcnn.py``).
        """
        c = table.shape[1]
        i, j = np.arange(out_h), np.arange(out_w)
        ys = y0[:, None] + (i * ch[:, None]) // out_h  # bin starts (floor) and ends (ceil), per region
        ye = y0[:, None] - (-(i + 1) * ch[:, None]) // out_h
        xs = x0[:, None] + (j * cw[:, None]) // out_w
        xe = x0[:, None] - (-(j + 1) * cw[:, None]) // out_w

        def corner(rows, cols):
            index = (rows[:, :, None] * (width + 1) + cols[:, None, :]).reshape(-1)
            return table.index_select(0, torch.from_numpy(index))

        sums = corner(ye, xe) - corner(ys, xe) - corner(ye, xs) + corner(ys, xs)
        sums = sums.to(torch.float32).reshape(len(y0), out_h, out_w, c).permute(0, 3, 1, 2)
        kh = torch.from_numpy(ye - ys).to(torch.float32)[:, None, :, None]
        kw = torch.from_numpy(xe - xs).to(torch.float32)[:, None, None, :]
        return sums / kh / kw

    @staticmethod
    def _crops(table: torch.Tensor, shape: tuple[int, int], boxes: np.ndarray, size: int) -> torch.Tensor:
        """The in-image part of each box, area-resized to ``size`` and scaled to [-1, 1]
        (facenet-pytorch's ``pad`` + crop, which resizes box by box); CPU, channels-last.
        All boxes from one table, not one ``F.interpolate`` per box: a photo has dozens."""
        h, w = shape
        b = np.trunc(boxes[:, :4]).astype(np.int64)
        x0 = np.maximum(b[:, 0], 1) - 1
        y0 = np.maximum(b[:, 1], 1) - 1
        crops = MTCNN._area(table, w, y0, x0, np.minimum(b[:, 3], h) - y0, np.minimum(b[:, 2], w) - x0, size, size)
        return _scaled(crops)

    def detect(self, rgb: np.ndarray, min_face: int = 20) -> Detections:
        """Faces in an RGB (or grey) uint8 image, highest score first."""
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        empty = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        h, w = rgb.shape[:2]
        min_face = max(12, int(min_face))
        if min(h, w) < 12:
            return empty
        with torch.inference_mode():
            u8 = np.array(rgb[:, :, :3], np.uint8)
            table = self._integral(u8)  # every resize below (pyramid, crops) sums from it
            whole = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.array([h]), np.array([w]))
            # -- stage 1: P-Net over the pyramid
            m = 12.0 / min_face
            scales, side = [], min(h, w) * m
            s = m
            while side >= 12:
                scales.append(s)
                s *= PYRAMID_FACTOR
                side *= PYRAMID_FACTOR
            found = []
            for s in scales:
                x = self._area(table, w, *whole, int(h * s + 1), int(w * s + 1))  # F.interpolate(mode="area")
                reg, prob = self.pnet(_scaled(x).to(self.device))
                p = prob[0, 1].cpu().numpy()
                ys, xs = np.nonzero(p >= THRESHOLDS[0])
                if len(ys) == 0:
                    continue
                r = reg[0].cpu().numpy()[:, ys, xs].T
                # window corners in float32 arithmetic, as the reference computes them (floor is sensitive)
                cell = torch.from_numpy(np.column_stack([xs, ys]).astype(np.float32))
                q1 = torch.floor((2 * cell + 1) / s).numpy()
                q2 = torch.floor((2 * cell + 12) / s).numpy()
                cand = np.column_stack([q1, q2, p[ys, xs], r]).astype(np.float32)
                found.append(cand[_nms_union(cand, 0.5)])
            if not found:
                return empty
            cand = np.concatenate(found)
            cand = cand[_nms_union(cand, 0.7)]
            w1 = cand[:, 2] - cand[:, 0]  # stage 1 regresses in units of the plain size (no +1)
            h1 = cand[:, 3] - cand[:, 1]
            boxes = _square(np.column_stack([cand[:, 0] + cand[:, 5] * w1, cand[:, 1] + cand[:, 6] * h1,
                                             cand[:, 2] + cand[:, 7] * w1, cand[:, 3] + cand[:, 8] * h1, cand[:, 4]]))
            # -- stage 2: R-Net
            boxes = boxes[self._valid(boxes, w, h)]
            if len(boxes) == 0:
                return empty
            reg, prob = self.rnet(self._crops(table, (h, w), boxes, 24).to(self.device))
            score = prob[:, 1].cpu().numpy()
            ok = score > THRESHOLDS[1]
            boxes = np.column_stack([boxes[ok, :4], score[ok]])
            reg = reg.cpu().numpy()[ok]
            keep = _nms_union(boxes, 0.7)
            boxes = _square(_regress(boxes[keep], reg[keep]))
            # -- stage 3: O-Net
            boxes = boxes[self._valid(boxes, w, h)]
            if len(boxes) == 0:
                return empty
            reg, pts, prob = self.onet(self._crops(table, (h, w), boxes, 48).to(self.device))
            score = prob[:, 1].cpu().numpy()
            ok = score > THRESHOLDS[2]
            boxes = np.column_stack([boxes[ok, :4], score[ok]])
            pts = pts.cpu().numpy()[ok]
            reg = reg.cpu().numpy()[ok]
            bw = boxes[:, 2] - boxes[:, 0] + 1
            bh = boxes[:, 3] - boxes[:, 1] + 1
            px = bw[:, None] * pts[:, :5] + boxes[:, 0:1] - 1
            py = bh[:, None] * pts[:, 5:] + boxes[:, 1:2] - 1
            points = np.stack([px, py], axis=2)
            boxes = _regress(boxes, reg)
            keep = _nms(boxes[:, :4], boxes[:, 4], 0.7, "min")
        return Detections(boxes[keep, :4].astype(np.float32), boxes[keep, 4].astype(np.float32),
                          points[keep].astype(np.float32))

    @staticmethod
    def _valid(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
        """Boxes with a non-empty part inside the image (others cannot be cropped)."""
        b = np.trunc(boxes[:, :4])
        return ((np.minimum(b[:, 2], w) > np.maximum(b[:, 0], 1) - 1)
                & (np.minimum(b[:, 3], h) > np.maximum(b[:, 1], 1) - 1))


_detectors: dict = {}
_detectors_lock = threading.Lock()


def get_detector(path: str | Path, device: str | torch.device = "cpu") -> MTCNN:
    """The detector in ``path`` on ``device``, loaded once per process."""
    key = (str(path), str(torch.device(device)))
    with _detectors_lock:
        if key not in _detectors:
            _detectors[key] = MTCNN.load(path, device)
        return _detectors[key]

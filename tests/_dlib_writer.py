"""DlibWriter: the inverse of :class:`siamgui.core.face.dlib_format.DlibReader`, for
writing small synthetic dlib ``.dat`` files in the tests."""

from __future__ import annotations

import math

import numpy as np


def _float_details(x: float) -> tuple[int, int]:
    if math.isnan(x):
        return 0, 32002
    if math.isinf(x):
        return 0, 32000 if x > 0 else 32001
    if x == 0:
        return 0, 0
    m, e = math.frexp(x)
    mant, exp = int(m * (1 << 53)), e - 53
    while mant % 256 == 0:
        mant //= 256
        exp += 8
    return mant, exp


class DlibWriter:
    """The inverse of :class:`DlibReader` (used by the tests to write synthetic files)."""

    def __init__(self):
        self.buf = bytearray()

    def int(self, v: int) -> "DlibWriter":
        mag = abs(int(v))
        raw = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
        self.buf.append(len(raw) | (0x80 if v < 0 else 0))
        self.buf += raw
        return self

    def float(self, x: float) -> "DlibWriter":
        mant, exp = _float_details(float(x))
        return self.int(mant).int(exp)

    def string(self, s: str) -> "DlibWriter":
        raw = s.encode("ascii")
        self.int(len(raw))
        self.buf += raw
        return self

    def bool(self, b: bool) -> "DlibWriter":
        self.buf.append(0x31 if b else 0x30)
        return self

    def tensor(self, a: np.ndarray | None = None, shape: tuple | None = None) -> "DlibWriter":
        a = np.zeros((0, 0, 0, 0), np.float32) if a is None else np.asarray(a, dtype="<f4")
        shape = shape or tuple(a.shape) + (1,) * (4 - a.ndim)
        self.int(2)
        for s in shape:
            self.int(s)
        self.buf += a.tobytes()
        return self

    def alias(self, shape: tuple) -> "DlibWriter":
        self.int(1)
        for s in shape:
            self.int(s)
        return self

    def float_matrix(self, m: np.ndarray) -> "DlibWriter":
        m = np.atleast_2d(np.asarray(m, dtype=np.float32))
        self.int(-m.shape[0]).int(-m.shape[1])
        for v in m.ravel():
            self.float(float(v))
        return self

    def getvalue(self) -> bytes:
        return bytes(self.buf)

"""Small inline SVG charts for the HTML report (no plotting library).

Two kinds: :func:`line_chart` (curves on linear or log axes) and
:func:`histogram_chart` (overlaid step histograms). Both return an ``<svg>``
string sized in CSS pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

import numpy as np

W, H = 390, 300
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 30, 46


@dataclass
class Axis:
    lo: float
    hi: float
    log: bool = False
    label: str = ""

    def unit(self, v) -> np.ndarray:
        """Values mapped to 0..1 along the axis (log axes clip at ``lo``)."""
        v = np.asarray(v, dtype=np.float64)
        if self.log:
            v = np.log10(np.clip(v, self.lo, None))
            lo, hi = math.log10(self.lo), math.log10(self.hi)
        else:
            lo, hi = self.lo, self.hi
        return (v - lo) / ((hi - lo) or 1.0)

    def ticks(self) -> list[tuple[float, str]]:
        if self.log:
            return [(10.0 ** k, _decade(k)) for k in range(math.ceil(math.log10(self.lo) - 1e-9),
                                                           math.floor(math.log10(self.hi) + 1e-9) + 1)]
        step = _nice_step((self.hi - self.lo) / 5)
        first = math.ceil(self.lo / step - 1e-9) * step
        values = np.arange(first, self.hi + step * 1e-6, step)
        digits = max(0, -math.floor(math.log10(step) + 1e-9))
        return [(float(v), f"{v:.{digits}f}") for v in values]


def _decade(k: int) -> str:
    return {0: "1", -1: "0.1", -2: "0.01"}.get(k, f"10<tspan dy='-5' font-size='9'>{k}</tspan>")


def _nice_step(raw: float) -> float:
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


@dataclass
class Chart:
    x: Axis
    y: Axis
    title: str = ""
    parts: list[str] = field(default_factory=list)

    def px(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        return (LEFT + self.x.unit(x) * (W - LEFT - RIGHT), TOP + (1 - self.y.unit(y)) * (H - TOP - BOTTOM))

    def frame(self) -> None:
        x0, x1, y0, y1 = LEFT, W - RIGHT, TOP, H - BOTTOM
        for v, text in self.x.ticks():
            px = float(self.px(v, self.y.lo)[0])
            self.parts.append(f"<line x1='{px:.1f}' y1='{y0}' x2='{px:.1f}' y2='{y1}' class='grid'/>"
                              f"<text x='{px:.1f}' y='{y1 + 16}' text-anchor='middle'>{text}</text>")
        for v, text in self.y.ticks():
            py = float(self.px(self.x.lo, v)[1])
            self.parts.append(f"<line x1='{x0}' y1='{py:.1f}' x2='{x1}' y2='{py:.1f}' class='grid'/>"
                              f"<text x='{x0 - 6}' y='{py + 4:.1f}' text-anchor='end'>{text}</text>")
        self.parts.append(f"<rect x='{x0}' y='{y0}' width='{x1 - x0}' height='{y1 - y0}' class='frame'/>"
                          f"<text x='{(x0 + x1) / 2}' y='{H - 8}' text-anchor='middle'>{escape(self.x.label)}</text>"
                          f"<text transform='translate(14 {(y0 + y1) / 2}) rotate(-90)' text-anchor='middle'>"
                          f"{escape(self.y.label)}</text>")

    def polyline(self, xs, ys, colour: str, dash: str = "") -> None:
        if len(xs) == 0:
            return
        px, py = self.px(xs, ys)
        keep = [0]
        for i in range(1, len(px)):  # drop points closer than half a pixel to the last kept one
            if abs(px[i] - px[keep[-1]]) + abs(py[i] - py[keep[-1]]) >= 0.5 or i == len(px) - 1:
                keep.append(i)
        points = " ".join(f"{px[i]:.1f},{py[i]:.1f}" for i in keep)
        style = f" stroke-dasharray='{dash}'" if dash else ""
        self.parts.append(f"<polyline points='{points}' stroke='{colour}' fill='none' stroke-width='1.8'{style}/>")

    def vline(self, x: float, label: str, colour: str) -> None:
        px = float(self.px(x, self.y.lo)[0])
        self.parts.append(f"<line x1='{px:.1f}' y1='{TOP}' x2='{px:.1f}' y2='{H - BOTTOM}' stroke='{colour}' "
                          f"stroke-width='1.5' stroke-dasharray='5 3'/><text x='{px + 4:.1f}' y='{TOP + 12}' "
                          f"style='fill:{colour}'>{escape(label)}</text>")

    def legend(self, items: list[tuple[str, str]]) -> None:
        """One line above the plot area (never over the data)."""
        x = LEFT
        for label, colour in items:
            self.parts.append(f"<text x='{x}' y='{TOP - 10}' style='fill:{colour}'>&#9644; {escape(label)}</text>")
            x += 24 + 7 * len(label)

    def svg(self) -> str:
        title = f"<title>{escape(self.title)}</title>" if self.title else ""
        return (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {W} {H}' width='{W}' height='{H}' "
                f"class='chart' role='img'>{title}{''.join(self.parts)}</svg>")


def line_chart(x: Axis, y: Axis, series: list[tuple[str, np.ndarray, np.ndarray, str]], *, title: str = "",
               marks: list[tuple[float, float, str, str]] = ()) -> str:
    """Curves ``(label, xs, ys, colour)`` and point ``marks`` ``(x, y, label, colour)``.
    On a log axis, points at or below the axis' lower end are left out (a rate of zero
    has no place on it)."""
    c = Chart(x, y, title)
    c.frame()
    for _, xs, ys, colour in series:
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        keep = np.ones(len(xs), bool)
        for axis, v in ((x, xs), (y, ys)):
            if axis.log:
                keep &= v >= axis.lo
        c.polyline(xs[keep], ys[keep], colour)
    for mx, my, label, colour in marks:
        px, py = (float(v) for v in c.px(mx, my))
        right = px > W / 2  # label on the side with room
        c.parts.append(f"<circle cx='{px:.1f}' cy='{py:.1f}' r='3.5' fill='{colour}'/>"
                       f"<text x='{px - 7 if right else px + 7:.1f}' y='{py + 14:.1f}' style='fill:{colour}' "
                       f"text-anchor='{'end' if right else 'start'}'>{escape(label)}</text>")
    if len(series) > 1:
        c.legend([(label, colour) for label, _, _, colour in series])
    return c.svg()


def histogram_chart(edges, series: list[tuple[str, np.ndarray, str]], *, x_label: str,
                    lines: list[tuple[float, str, str]] = (), title: str = "") -> str:
    """Step histograms ``(label, counts, colour)`` over shared ``edges``, with vertical ``lines``."""
    edges = np.asarray(edges, dtype=np.float64)
    top = max(max((float(np.max(cnt)) for _, cnt, _ in series), default=1.0), 1.0)
    c = Chart(Axis(float(edges[0]), float(edges[-1]), label=x_label), Axis(0.0, top * 1.08, label="pairs"), title)
    c.frame()
    for _, counts, colour in series:
        # the outline: up at each edge, across each bin, down at the last edge
        ys = np.r_[0.0, np.repeat(np.asarray(counts, dtype=np.float64), 2), 0.0]
        c.polyline(np.repeat(edges, 2), ys, colour)
    for x, label, colour in lines:
        if edges[0] <= x <= edges[-1]:
            c.vline(x, label, colour)
    c.legend([(label, colour) for label, _, colour in series])
    return c.svg()

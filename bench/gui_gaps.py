"""GUI responsiveness while the Train tab trains: gaps between 10 ms QTimer ticks.

Measured in a fresh process (bench/gui_probe.py ``gaps`` mode): an idle window
first (the baseline), then the Train tab training on the generated dataset.
"""

from __future__ import annotations

import importlib.util

from bench.common import summary

KEYS = ("gui_gap_p99_ms", "gui_gap_max_ms", "baseline_gui_gap_p99_ms", "baseline_gui_gap_max_ms")


def _nulls() -> dict:
    out = {}
    for k in KEYS:
        out.update(summary(k, []))
    return out


def measure_gaps(data_dir: str, model_path, seconds: float = 8.0) -> tuple[dict, list[str]]:
    if importlib.util.find_spec("siamgui.gui.train_tab") is None:
        return _nulls(), ["GUI gaps not measured: siamgui.gui.train_tab does not exist yet."]
    return _nulls(), ["GUI gaps not measured: the probe for the Train tab is not written yet."]

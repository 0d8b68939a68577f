"""GUI responsiveness while the Train tab trains: gaps between 10 ms QTimer ticks.

Measured in a fresh process (bench/gui_probe.py ``gaps`` mode): an idle window
first (the baseline), then the Train tab training on the generated dataset.
"""

from __future__ import annotations

import importlib.util
import json
import time

from bench.common import REPO, python, run_child, summary

KEYS = ("gui_gap_p99_ms", "gui_gap_max_ms", "baseline_gui_gap_p99_ms", "baseline_gui_gap_max_ms")


def _nulls() -> dict:
    out = {}
    for k in KEYS:
        out.update(summary(k, []))
    return out


def measure_gaps(data_dir: str, model_path, seconds: float = 8.0) -> tuple[dict, list[str]]:
    if importlib.util.find_spec("siamgui.gui.train_tab") is None:
        return _nulls(), ["GUI gaps not measured: siamgui.gui.train_tab does not exist yet."]
    t0 = time.time()
    rc, wall, peak, out, err = run_child([python(), str(REPO / "bench" / "gui_probe.py"), "gaps", repr(t0), data_dir,
                                          str(seconds)], timeout=seconds + 240, env={"QT_QPA_PLATFORM": "offscreen"})
    line = next((ln for ln in reversed(out.strip().splitlines()) if ln.startswith("{")), None)
    if rc != 0 or line is None:
        return _nulls(), [f"GUI gaps probe failed (exit {rc}): {(err.strip().splitlines() or ['no output'])[-1]}"]
    d = json.loads(line)
    if "error" in d:
        return _nulls(), [f"GUI gaps not measured: {d['error']}"]
    res = {}
    res.update(summary("gui_gap_p99_ms", [w["p99"] for w in d["training"]], 1))
    res.update(summary("gui_gap_max_ms", [w["max"] for w in d["training"]], 1))
    res.update(summary("baseline_gui_gap_p99_ms", [w["p99"] for w in d["idle"]], 1))
    res.update(summary("baseline_gui_gap_max_ms", [w["max"] for w in d["idle"]], 1))
    notes = [f"GUI gaps: {len(d['training'])} windows of 2 s while training ({d['steps']} steps done), "
             f"baseline = the idle window before training"]
    if d.get("note"):
        notes.append(f"GUI gaps: {d['note']}")
    return res, notes

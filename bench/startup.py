"""Fresh-process figures: CLI cold start, GUI start, and peak memory (RSS).

Every child is a new Python process started by this runner; its wall time runs
from just before ``Popen`` to its exit (or, for the GUI, to the event it reports),
and its peak RSS comes from ``os.wait4`` on that child alone.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from bench.common import REPO, python, run_child, summaries, summary

GUI_PROBE = str(REPO / "bench" / "gui_probe.py")
BASELINES = str(REPO / "bench" / "baselines.py")


def measure_cli(model_path, img_a: str, img_b: str, rounds: int = 4) -> tuple[dict, list[str]]:
    """``siamgui compare A B --json`` from process start to verdict, vs the tutorial script."""
    notes = []
    ours_argv = [python(), "-m", "siamgui", "compare", img_a, img_b, "--json", "--device", "cpu",
                 "--model", str(model_path)]
    base_argv = [python(), BASELINES, "compare", str(model_path), img_a, img_b]
    floor_argv = [python(), "-c", "import torch"]
    t_ours, t_base, t_floor, rss, base_rss, ratio = [], [], [], [], [], []
    for _ in range(rounds):
        rc, wall, peak, out, err = run_child(ours_argv)
        if rc != 0 or '"same"' not in out:
            notes.append(f"siamgui compare failed (exit {rc}): {err.strip().splitlines()[-1:]}")
            break
        t_ours.append(wall)
        rss.append(peak)
        rc, bwall, bpeak, out, err = run_child(base_argv)
        if rc != 0:
            notes.append(f"baseline compare script failed (exit {rc}): {err.strip().splitlines()[-1:]}")
            break
        t_base.append(bwall)
        base_rss.append(bpeak)
        ratio.append(bwall / wall)
        t_floor.append(run_child(floor_argv)[1])
    out = summaries(
        cli_cold_start_s=(t_ours, 3),
        baseline_cli_cold_start_s=(t_base, 3),
        cli_cold_start_speedup=(ratio, 2),
        import_torch_s=(t_floor, 3),
        compare_peak_rss_mb=(rss, 1),
        baseline_compare_peak_rss_mb=(base_rss, 1))
    return out, notes


def measure_train_rss(data_dir: str, work: Path, rounds: int = 2) -> tuple[dict, list[str]]:
    """Peak RSS of ``siamgui train`` (face preset, one short epoch) on the generated dataset."""
    argv = [python(), "-m", "siamgui", "train", data_dir, "--out", str(work / "rss.safetensors"), "--preset", "face",
            "--epochs", "1", "--pairs-per-epoch", "128", "--device", "cpu"]
    vals, walls, notes = [], [], []
    for _ in range(rounds):
        rc, wall, peak, out, err = run_child(argv, timeout=300)
        if rc != 0:
            notes.append(f"siamgui train failed (exit {rc}): {err.strip().splitlines()[-1:]}")
            break
        vals.append(peak)
        walls.append(wall)
    out = summary("train_peak_rss_mb", vals, 1)
    out.update(summary("train_cli_wall_s", walls, 2))
    return out, notes


def gui_available() -> str | None:
    """None when the app can be started, else why not."""
    for mod in ("siamgui.gui.app", "siamgui.gui.main_window"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} does not exist yet"
    return None


def _probe(args: list[str], timeout: float = 120) -> dict:
    t0 = time.time()
    rc, wall, peak, out, err = run_child([python(), GUI_PROBE, args[0], repr(t0)] + args[1:], timeout=timeout,
                                         env={"QT_QPA_PLATFORM": "offscreen"})
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            d = json.loads(line)
            d["rss_mb"] = peak
            return d
    return {"error": f"probe exit {rc}: {(err.strip().splitlines() or ['no output'])[-1]}"}


def measure_gui(model_path, rounds: int = 3) -> tuple[dict, list[str]]:
    keys = ("gui_window_s", "gui_model_ready_s", "baseline_gui_window_s")
    why = gui_available()
    if why:
        out = {}
        for k in keys:
            out.update(summary(k, []))
        return out, [f"GUI start not measured: {why}."]
    win, ready, bare, notes = [], [], [], []
    for _ in range(rounds):
        d = _probe(["app", str(model_path)])
        if "error" in d or "window_s" not in d:
            notes.append(f"GUI probe: {d.get('error', 'no window was shown')}")
            break
        win.append(d["window_s"])
        if d.get("model_ready_s") is not None:
            ready.append(d["model_ready_s"])
        elif d.get("model_error"):
            notes.append(f"GUI model load failed: {d['model_error']}")
        b = _probe(["bare"])
        if "window_s" in b:
            bare.append(b["window_s"])
    out = summaries(
        gui_window_s=(win, 3),
        gui_model_ready_s=(ready, 3),
        baseline_gui_window_s=(bare, 3))
    return out, notes

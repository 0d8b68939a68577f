"""The benchmark runner: ``make bench`` or ``python bench/run.py [--quick] [--only SECTION ...]``.

Writes ``bench/results/latest.json`` (one flat JSON object; a figure that could
not be measured is ``null`` and the reason is in ``notes``) and prints a table.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SECTIONS = ("compare", "embed", "face", "faces", "batch", "peer", "cli", "train", "train_rss", "gui", "gui_gaps",
            "camera")

#: The headline keys, in table order (each also has _min/_max companions), and
#: ``compare_one_new_ms_p50`` (the app's usual comparison: one image new, the other cached)
#: and ``compare_float32_ms_p50`` (two new images, float32 where ours runs in bfloat16).
MAIN_KEYS = ["compare_ms_p50", "compare_ms_p90", "compare_speedup", "compare_one_new_ms_p50",
             "compare_float32_ms_p50", "embed_images_per_s_b1",
             "embed_images_per_s_b8", "embed_images_per_s_b64", "face_ms_p50", "faces_ms_per_extra_face",
             "batch_pairs_per_s", "peer_face_ms", "peer_speedup",
             "cli_cold_start_s", "gui_window_s", "gui_model_ready_s", "train_pairs_per_s", "train_speedup",
             "train_peak_fraction", "gui_gap_p99_ms", "gui_gap_max_ms", "camera_fps",
             "compare_peak_rss_mb",
             "train_peak_rss_mb", "torch_threads"]

#: figure -> (baseline figure, ratio figure) shown beside it in the table.
BESIDE = {
    "compare_ms_p50": ("baseline_compare_ms_p50", "compare_speedup"),
    "compare_ms_p90": ("baseline_compare_ms_p90", None),
    "compare_one_new_ms_p50": ("baseline_compare_ms_p50", "compare_one_new_speedup"),
    "compare_float32_ms_p50": ("baseline_compare_ms_p50", None),
    "embed_images_per_s_b1": ("baseline_embed_images_per_s_b1", "embed_speedup_b1"),
    "embed_images_per_s_b8": ("baseline_embed_images_per_s_b8", "embed_speedup_b8"),
    "embed_images_per_s_b64": ("baseline_embed_images_per_s_b64", "embed_speedup_b64"),
    "face_ms_p50": ("baseline_face_ms_p50", "face_speedup"),
    "faces_ms_per_extra_face": ("baseline_faces_ms_per_extra_face", "faces_extra_face_speedup"),
    "batch_pairs_per_s": ("baseline_batch_pairs_per_s", "batch_speedup"),
    "peer_face_ms": (None, "peer_speedup"),
    "cli_cold_start_s": ("baseline_cli_cold_start_s", "cli_cold_start_speedup"),
    "gui_window_s": ("baseline_gui_window_s", None),
    "train_pairs_per_s": ("baseline_train_pairs_per_s", "train_speedup"),
    "train_peak_fraction": ("matmul_peak_gflops", None),
    "gui_gap_p99_ms": ("baseline_gui_gap_p99_ms", None),
    "gui_gap_max_ms": ("baseline_gui_gap_max_ms", None),
    "camera_fps": ("baseline_camera_fps", "camera_speedup"),
    "compare_peak_rss_mb": ("baseline_compare_peak_rss_mb", None),
}


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def print_table(res: dict) -> None:
    rows = [("figure", "median", "min", "max", "baseline", "ratio")]
    for k in MAIN_KEYS:
        base, ratio = BESIDE.get(k, (None, None))
        rows.append((k, _fmt(res.get(k)), _fmt(res.get(f"{k}_min")), _fmt(res.get(f"{k}_max")),
                     _fmt(res.get(base)) if base else "", _fmt(res.get(ratio)) if ratio else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for note in res.get("notes", []):
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run, not for reporting)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "latest.json"))
    ap.add_argument("--budget", type=float, default=540.0,
                    help="seconds; a section that would start later is skipped (null, with a note)")
    args = ap.parse_args(argv)
    sections = args.only or list(SECTIONS)
    q = args.quick
    t_run = time.perf_counter()

    import siamgui  # noqa: F401 - first, so its process-wide settings apply here as in the app

    import torch

    from bench import common

    res: dict = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "host_cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                 "device": "cpu", "quick": q, "load_avg_start": round(os.getloadavg()[0], 2),
                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                 "gomp_spincount": os.environ.get("GOMP_SPINCOUNT")}
    notes: list[str] = []
    for k in MAIN_KEYS:
        if k != "torch_threads":
            res.update(common.summary(k, []))
    res["peer_speedup"] = None

    work = Path(tempfile.mkdtemp(prefix="siamgui-bench-"))
    # children (CLI, app) must not read or write the user's settings, gallery or caches
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "SIAMGUI_DATA_DIR"):
        os.environ[var] = str(work / "home" / var.lower())
    model_path, model_label = common.model_for_bench(work)
    notes.append(f"model: {model_label}")
    images, images_label = common.compare_images(work)
    notes.append(f"compare images: {images_label}")
    res["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        notes.append("CUDA is available but these figures are CPU figures (device=cpu).")

    data_dir = None
    if any(s in sections for s in ("train", "train_rss", "gui_gaps")):
        t = time.perf_counter()
        data_dir = str(common.make_train_dataset(work / "train64", per_class=8 if q else 10))
        notes.append(f"training data: 64 generated classes of 250x250 JPEGs, made in {time.perf_counter() - t:.1f} s")

    def section(name, fn):
        if name not in sections:
            return
        if time.perf_counter() - t_run > args.budget:
            notes.append(f"{name} skipped: the run had used its {args.budget:.0f} s budget (--budget)")
            return
        t = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        try:
            got = fn()
            figures, more = got if isinstance(got, tuple) else (got, [])
            res.update(figures)
            notes.extend(more)
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
            notes.append(f"{name} failed: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        res[f"section_{name}_s"] = round(time.perf_counter() - t, 1)

    from bench import camera, inference, peer, startup, training

    section("compare", lambda: inference.measure_compare(model_path, images, rounds=3 if q else 5,
                                                         pairs_per_round=6 if q else 12))
    section("embed", lambda: inference.measure_embed(model_path, images, rounds=2 if q else 3))
    face_imgs = images[:24]
    section("face", lambda: inference.measure_face(model_path, face_imgs, rounds=3, n=3 if q else 8))
    section("faces", lambda: inference.measure_faces(model_path, images, rounds=2 if q else 3))

    def batch():
        from bench import batch_bench

        pairs, label = batch_bench.bench_pairs(32 if q else 96, work)
        return batch_bench.measure_batch(model_path, pairs, rounds=2 if q else 3, work=work / "batch"), [
            f"batch pairs: {label}"]

    section("batch", batch)
    section("peer", lambda: peer.measure_peer(face_imgs, rounds=3))
    if res.get("peer_face_ms") and res.get("face_ms_p50"):
        res["peer_speedup"] = round(res["peer_face_ms"] / res["face_ms_p50"], 2)
        res["peer_speedup_min"] = round(res["peer_face_ms_min"] / res["face_ms_p50_max"], 2)
        res["peer_speedup_max"] = round(res["peer_face_ms_max"] / res["face_ms_p50_min"], 2)
    section("cli", lambda: startup.measure_cli(model_path, images[0], images[1], rounds=2 if q else 3))
    late = time.perf_counter() - t_run > args.budget / 2  # a slow machine: fewer training rounds
    section("train", lambda: training.measure_training(data_dir, rounds=2 if (q or late) else 3,
                                                       steps=3 if q else 5))
    section("train_rss", lambda: startup.measure_train_rss(data_dir, work, rounds=1 if q else 2))
    section("gui", lambda: startup.measure_gui(model_path, rounds=2 if q else 3))

    def gaps():
        from bench import gui_gaps

        return gui_gaps.measure_gaps(data_dir, model_path, seconds=4 if q else 8)

    section("gui_gaps", gaps)

    def cam():
        video = common.make_video(work / "camera.avi")
        return camera.measure_camera(str(video) if video else None, rounds=2 if q else 3, frames=20 if q else 40)

    section("camera", cam)

    res["torch_threads_after"] = torch.get_num_threads()
    res["load_avg_end"] = round(os.getloadavg()[0], 2)
    res["notes"] = notes
    res["total_s"] = round(time.perf_counter() - t_run, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    os.replace(tmp, out)
    print_table(res)
    print(f"\nwrote {out} in {res['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

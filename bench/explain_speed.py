"""Time of the "Why?" occlusion maps for the bundled face model, per grid and precision.

    .venv/bin/python bench/explain_speed.py [--threads 2] [--repeat 5]

Uses two drawn faces (no data needed); prints the median seconds per pair next to
the time of one plain comparison of the same two prepared inputs, and the CPU
seconds the process used (on a busy machine wall time overstates the cost; on an
idle one with N threads busy, wall is about CPU / N).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--grids", type=int, nargs="+", default=[6, 7, 8])
    args = ap.parse_args(argv)

    import torch
    from _gui_helpers import draw_face

    from siamgui.core.evaluation.explain import explain_pair
    from siamgui.core.verifier import Verifier

    torch.set_num_threads(args.threads)
    for precision in ("auto", "float32"):
        v = Verifier(device="cpu", precision=precision)
        a, _ = v.prepare(draw_face(200), bgr=True)
        b, _ = v.prepare(draw_face(240)[10:230, 20:220].copy(), bgr=True)
        v.embed_prepared([a, b])  # warm-up
        plain = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            v.embed_prepared([a, b])
            plain.append(time.perf_counter() - t0)
        print(f"{v.precision_choice.name:9s} one comparison (2 inputs): {statistics.median(plain) * 1000:.0f} ms")
        for grid in args.grids:
            explain_pair(v, a, b, grid=grid)  # warm-up
            times, cpu = [], []
            for _ in range(args.repeat):
                c0 = time.process_time()
                times.append(explain_pair(v, a, b, grid=grid).seconds)
                cpu.append(time.process_time() - c0)
            print(f"{v.precision_choice.name:9s} grid {grid} ({2 * grid * grid + 2} inputs): "
                  f"{statistics.median(times):.2f} s (min {min(times):.2f}), CPU {statistics.median(cpu):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

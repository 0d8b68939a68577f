"""Warm compare latency under the OpenMP wait settings in the environment (bench/README.md).

siamgui sets ``GOMP_SPINCOUNT`` only when neither it nor ``OMP_WAIT_POLICY`` is set,
so each setting is tried by setting it outside (``x`` is not a valid policy: libgomp
then uses its default with the given spin count):

    for cfg in "OMP_WAIT_POLICY=PASSIVE" "OMP_WAIT_POLICY=x GOMP_SPINCOUNT=30000" \\
               "OMP_WAIT_POLICY=x GOMP_SPINCOUNT=300000"; do
        env $cfg .venv/bin/python bench/omp_spin.py; done

Run it once on an idle machine and once with CPU-burning processes beside it
(``python3 -c "while True: pass" &`` four times on 2 cores).
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import siamgui  # noqa: E402,F401 - first, as in the app: its settings apply before torch loads
import torch  # noqa: E402

from bench import common  # noqa: E402
from siamgui.core.verifier import Verifier  # noqa: E402


def main() -> int:
    imgs = common.lfw_images() or common.synthetic_photos(Path(os.environ.get("TMPDIR", "/tmp")) / "omp-spin")
    v = Verifier(None, device="cpu")
    pairs = [(imgs[i], imgs[(i + 1) % len(imgs)]) for i in range(len(imgs))]
    for a, b in pairs[:3]:
        v.compare(a, b)
    ts = []
    for a, b in pairs[:30]:
        t = time.perf_counter()
        v.compare(a, b)
        ts.append((time.perf_counter() - t) * 1000)
    x = torch.randn(4, 3, 150, 150)
    with torch.inference_mode():
        v.network.embed(x)
        t4 = []
        for _ in range(10):
            t = time.perf_counter()
            v.network.embed(x)
            t4.append((time.perf_counter() - t) * 1000)
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')} "
          f"compare p50 {np.median(ts):.1f} ms, forward of 4 images {np.median(t4):.1f} ms, "
          f"load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

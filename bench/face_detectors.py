"""Time per photo of each face detector, interleaved image by image in one process.

For each image, each variant in turn: detection alone (the aligner's first pass) and
the whole preparation the bundled model's preprocessing does (decode, detect, landmarks,
chip). Interleaving puts a burst of load from elsewhere on every variant alike, so the
ratios hold on a busy machine where separate runs' averages do not. The accuracy
columns of the table in bench/README.md come from bench/lfw_eval.py.

    .venv/bin/python bench/face_detectors.py [--images 200] [--rounds 3] [--json OUT]
        [--variant NAME:DETECTOR[,KEY=VALUE...] ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: yunet_n (yunet_n_640_640.onnx) needs ``bench/make_yunet.py --files yunet_n_640_640.onnx`` first.
DEFAULT_VARIANTS = ["yunet_s:yunet", "yunet_s_seed0:yunet,yunet_points=seed,refine=0", "mtcnn:mtcnn", "haar:haar"]


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    detector, *settings = rest.split(",")
    cfg = {"detector": detector}
    for item in settings:
        key, _, value = item.partition("=")
        try:
            cfg[key] = float(value) if "." in value else int(value)
        except ValueError:
            cfg[key] = value
    return name, cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=200, help="LFW images (two per person, sorted)")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the images; median per round, then median")
    ap.add_argument("--variant", nargs="+", default=DEFAULT_VARIANTS)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from bench.common import lfw_images
    from siamgui.core.face import alignment as al
    from siamgui.core.images import load_image
    from siamgui.core.preprocess import Preprocessor, preset_spec

    torch.set_num_threads(2)
    images = lfw_images((args.images + 1) // 2)[:args.images]
    if not images:
        raise SystemExit("needs the shared LFW data (../shared/data/lfw)")
    variants = []
    for text in args.variant:
        name, cfg = parse_variant(text)
        spec = preset_spec("face", 150)
        spec.face.update(cfg)
        variants.append((name, dict(spec.face), Preprocessor(spec, device="cpu")))
    for _, cfg, prep in variants:  # warm-up: model files load, kernels are chosen
        prep.prepare(images[0])
    detect_ms = {n: [] for n, _, _ in variants}
    prepare_ms = {n: [] for n, _, _ in variants}
    prepare_cpu = {n: [] for n, _, _ in variants}
    for _ in range(args.rounds):
        per_d = {n: [] for n, _, _ in variants}
        per_p = {n: [] for n, _, _ in variants}
        per_c = {n: [] for n, _, _ in variants}
        for path in images:
            rgb = np.asarray(load_image(path))
            for name, cfg, prep in variants:
                t = time.perf_counter()
                al.detect_any(rgb, cfg)
                per_d[name].append(1000 * (time.perf_counter() - t))
                t, c = time.perf_counter(), time.process_time()
                prep.prepare(path)
                per_p[name].append(1000 * (time.perf_counter() - t))
                per_c[name].append(1000 * (time.process_time() - c))
        for n in per_d:
            detect_ms[n].append(statistics.median(per_d[n]))
            prepare_ms[n].append(statistics.median(per_p[n]))
            prepare_cpu[n].append(statistics.median(per_c[n]))
    out = {"images": len(images), "rounds": args.rounds, "load_average": round(os.getloadavg()[0], 2),
           "variants": {}}
    print(f"{'variant':10s} {'detect ms':>18s} {'prepare ms':>18s} {'prepare cpu ms':>15s}")
    for name, cfg, _ in variants:
        d, p, c = detect_ms[name], prepare_ms[name], prepare_cpu[name]
        out["variants"][name] = {"face": cfg, "detect_ms": round(statistics.median(d), 2),
                                 "detect_ms_min": round(min(d), 2), "detect_ms_max": round(max(d), 2),
                                 "prepare_ms": round(statistics.median(p), 2), "prepare_ms_min": round(min(p), 2),
                                 "prepare_ms_max": round(max(p), 2), "prepare_cpu_ms": round(statistics.median(c), 2)}
        print(f"{name:10s} {statistics.median(d):6.2f} ({min(d):5.2f}-{max(d):5.2f}) "
              f"{statistics.median(p):6.2f} ({min(p):5.2f}-{max(p):5.2f}) {statistics.median(c):15.2f}")
    print(f"load average {out['load_average']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Measure a face detector's box -> dlib box calibration (``*_TO_DLIB`` in alignment.py) on LFW DevTrain.

For each distinct image of ``pairsDevTrain.txt`` the detector's main face starts dlib's
5-point landmark model, the landmarks are refined (box re-fitted to them, predicted
again) until they settle, and the re-fitted box is compared with the detector's:
centre shift as fractions of the box's width and height, size as a fraction of its
longer side. The medians are the calibration. For YuNet it also prints the median
position of YuNet's own five points in the re-fitted box (0-1 coordinates): a
template from which those points give a dlib box without the detector box.

    .venv/bin/python bench/calibrate_detector.py --detector yunet \\
        [--pairs ../shared/data/lfw/pairsDevTrain.txt] [--root ../shared/data/lfw/lfw] [--limit N]

Tuning only on DevTrain: View 2 and DevTest stay for reporting (../shared/data/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
LFW = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "lfw"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", choices=("haar", "mtcnn", "yunet"), required=True)
    ap.add_argument("--pairs", default=str(LFW / "pairsDevTrain.txt"))
    ap.add_argument("--root", default=str(LFW / "lfw"))
    ap.add_argument("--limit", type=int, default=0, help="use the first N images only (0: all)")
    ap.add_argument("--refine", type=int, default=3, help="landmark re-fits per face (they settle in 2-3)")
    args = ap.parse_args(argv)

    from PIL import Image

    from siamgui.core.datasets import read_lfw_pairs
    from siamgui.core.face import alignment as al
    from siamgui.core.face.landmarks import get_predictor, grey_intensity

    pairs, _ = read_lfw_pairs(args.pairs, args.root)
    images = sorted({p for a, b, _ in pairs for p in (a, b)})
    if args.limit:
        images = images[:args.limit]
    cfg = {"detector": args.detector}
    cal = al.calibration(args.detector)
    predictor = get_predictor(al.landmark_model_path(cfg))
    rows, yunet_pts, dlib_pts, t_det, misses = [], [], [], 0.0, 0
    for path in images:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        t = time.perf_counter()
        if args.detector == "yunet":
            found = al.detect_faces_yunet(rgb, cfg, with_landmarks=True)
        else:
            found = al.detect_any(rgb, cfg)
        t_det += time.perf_counter() - t
        if not found:
            misses += 1
            continue
        k = al.choose_face([f[:2] for f in found], "largest", (rgb.shape[1], rgb.shape[0]))
        x, y, w, h = found[k][0]
        grey = grey_intensity(rgb)
        pts = predictor.predict(grey, al.detector_to_dlib_box((x, y, w, h), cal))
        for _ in range(args.refine):
            pts = predictor.predict(grey, predictor.box_from_landmarks(pts))
        left, top, right, bottom = predictor.box_from_landmarks(pts)
        side = right - left
        rows.append((((left + right) / 2 - (x + w / 2)) / w, ((top + bottom) / 2 - (y + h / 2)) / h,
                     side / max(w, h)))
        dlib_pts.append((pts - [left, top]) / side)
        if args.detector == "yunet":
            yunet_pts.append((found[k][2] - [left, top]) / side)
    r = np.array(rows)
    q = np.percentile(r, [25, 50, 75], axis=0)
    out = {"detector": args.detector, "images": len(images), "faces": len(r), "misses": misses,
           "ms_per_image_detect": round(1000 * t_det / len(images), 2),
           "dx": round(float(q[1, 0]), 3), "dy": round(float(q[1, 1]), 3), "scale": round(float(q[1, 2]), 3),
           "iqr": {k: [round(float(q[0, i]), 3), round(float(q[2, i]), 3)] for i, k in enumerate(("dx", "dy", "scale"))},
           "dlib_points_in_box": np.round(np.median(dlib_pts, axis=0), 4).tolist()}
    if yunet_pts:
        out["yunet_points_in_box"] = np.round(np.median(yunet_pts, axis=0), 4).tolist()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

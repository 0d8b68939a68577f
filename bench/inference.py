"""Inference figures: warm compare latency, embedding throughput, per-face time.

Ours and the tutorial baseline are interleaved pair by pair inside each round,
so a burst of load from elsewhere hits both; each round gives one p50/p90 (and
one ratio), and the report is the median round with the min and max round.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.baselines import TutorialVerifier
from bench.common import percentile, summaries, summary


def _timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t) * 1000.0


def measure_compare(model_path, images: list[str], rounds: int = 5, pairs_per_round: int = 12) -> dict:
    """Warm compare of two new images (``compare_ms_*``, the embedding cache off, so both
    are decoded, detected, aligned and embedded), and of one new image against a reference
    the Verifier has seen (``compare_one_new_ms_*``: the cache on, as in the app). Where
    ours runs the network in bfloat16, ``compare_float32_ms_p50`` is the two-new-images
    figure in float32 (null otherwise)."""
    from siamgui.core.verifier import Verifier

    ours = Verifier(str(model_path), device="cpu")
    # the same work in float32, where ours runs in bfloat16 (what the precision choice gains)
    exact = (Verifier(ours.loaded, device="cpu", precision="float32", cache_size=0)
             if ours.dtype != torch.float32 else None)
    cache_size = ours.cache.size
    base = TutorialVerifier(ours.loaded.network, ours.loaded.spec, ours.threshold, ours.loaded.distance,
                            ours.flip_average)
    pairs = [(images[i], images[(i + 1) % len(images)]) for i in range(len(images))]
    ours.cache.size = 0
    # warm-up: first calls pay lazy imports, the detector load and oneDNN kernel selection
    for a, b in pairs[:2]:
        ours.compare(a, b)
        base.compare(a, b)
        if exact is not None:
            exact.compare(a, b)
    # the two implementations must agree, or the comparison means nothing
    d_ours = float(ours.compare(*pairs[0]).distance)
    d_base = base.compare(*pairs[0])[0]
    p50, p90, bp50, bp90, ratio, n50, n90, nratio, f50 = [], [], [], [], [], [], [], [], []
    k = 0
    reference = images[0]
    for _ in range(rounds):
        t_ours, t_base, t_new, t_f32 = [], [], [], []
        ours.cache.size = cache_size
        ours.cache.clear()
        ours.compare(reference, reference)  # the reference is embedded once, untimed
        news = [p for p in images if p != reference][:pairs_per_round]  # each new to this round's cache
        for j in range(pairs_per_round):
            a, b = pairs[k % len(pairs)]
            k += 1
            ours.cache.size = 0
            t_ours.append(_timed(ours.compare, a, b))
            t_base.append(_timed(base.compare, a, b))
            ours.cache.size = cache_size
            t_new.append(_timed(ours.compare, reference, news[j % len(news)]))
            if exact is not None:
                t_f32.append(_timed(exact.compare, a, b))
        p50.append(percentile(t_ours, 50))
        p90.append(percentile(t_ours, 90))
        bp50.append(percentile(t_base, 50))
        bp90.append(percentile(t_base, 90))
        ratio.append(bp50[-1] / p50[-1])
        n50.append(percentile(t_new, 50))
        n90.append(percentile(t_new, 90))
        nratio.append(bp50[-1] / n50[-1])
        if t_f32:
            f50.append(percentile(t_f32, 50))
    ours.cache.size = cache_size
    out = summaries(
        compare_ms_p50=(p50, 2),
        compare_ms_p90=(p90, 2),
        baseline_compare_ms_p50=(bp50, 2),
        baseline_compare_ms_p90=(bp90, 2),
        compare_speedup=(ratio, 2),
        compare_one_new_ms_p50=(n50, 2),
        compare_one_new_ms_p90=(n90, 2),
        compare_one_new_speedup=(nratio, 2),
        compare_float32_ms_p50=(f50, 2))
    # same pair: the two paths must agree (to bfloat16 rounding where ours runs in it)
    out["compare_distance_ours"] = round(d_ours, 4)
    out["compare_distance_baseline"] = round(d_base, 4)
    out["precision"] = ours.precision_choice.name
    return out


def measure_embed(model_path, images: list[str], rounds: int = 3, batches=(1, 8, 64)) -> dict:
    """Images/s of ``embed_prepared`` at each batch size, vs one no_grad forward per image."""
    from siamgui.core.preprocess import stack_prepared
    from siamgui.core.verifier import Verifier

    v = Verifier(str(model_path), device="cpu")
    arrays = [v.prepare(p)[0] for p in images]
    big = max(batches)
    while len(arrays) < big:
        arrays = arrays + arrays
    batch_u8 = stack_prepared(arrays[:big])
    net = v.network
    norm = v.preprocessor.normalize

    def baseline(n):  # the tutorial: one image at a time (and its mirror, when ours averages it), no_grad
        with torch.no_grad():
            for i in range(n):
                x = norm(batch_u8[i:i + 1])
                z = net.embed(x)
                if v.flip_average:
                    z = (z + net.embed(x.flip(3))) / 2

    out = {}
    v.embed_prepared(batch_u8[:8], batch_size=8)
    baseline(2)
    for bs in batches:
        n = max(bs, 16)  # at least 16 images per timing
        rates, base_rates, ratios = [], [], []
        for _ in range(rounds):
            t = time.perf_counter()
            v.embed_prepared(batch_u8[:n], batch_size=bs)
            r = n / (time.perf_counter() - t)
            t = time.perf_counter()
            baseline(n)
            br = n / (time.perf_counter() - t)
            rates.append(r)
            base_rates.append(br)
            ratios.append(r / br)
        out.update(summary(f"embed_images_per_s_b{bs}", rates, 1))
        out.update(summary(f"baseline_embed_images_per_s_b{bs}", base_rates, 1))
        out.update(summary(f"embed_speedup_b{bs}", ratios, 2))
    return out


def measure_face(model_path, images: list[str], rounds: int = 3, n: int = 8) -> dict:
    """Detect + crop/align + embed one face (one image), ours vs the tutorial, in ms."""
    from siamgui.core.verifier import Verifier

    v = Verifier(str(model_path), device="cpu")
    base = TutorialVerifier(v.loaded.network, v.loaded.spec, v.threshold, v.loaded.distance, v.flip_average)

    def ours(path):
        arr, _ = v.prepare(path)
        v.embed_prepared([arr])

    ours(images[0])
    base.embed_one(images[0])
    med, bmed, ratio = [], [], []
    for r in range(rounds):
        t_o, t_b = [], []
        for p in images[r * n:(r + 1) * n] or images[:n]:
            t_o.append(_timed(ours, p))
            t_b.append(_timed(base.embed_one, p))
        med.append(float(np.median(t_o)))
        bmed.append(float(np.median(t_b)))
        ratio.append(bmed[-1] / med[-1])
    out = summaries(
        face_ms_p50=(med, 2),
        baseline_face_ms_p50=(bmed, 2),
        face_speedup=(ratio, 2))
    return out


def group_photo(paths: list[str], side: int = 150, cols: int = 4) -> np.ndarray:
    """An RGB canvas with the central ``side`` px of each photo (an LFW face) pasted in a grid."""
    from PIL import Image

    rows = (len(paths) + cols - 1) // cols
    canvas = np.full((rows * side, min(cols, len(paths)) * side, 3), 128, np.uint8)
    for k, p in enumerate(paths):
        with Image.open(p) as im:
            w, h = im.size
            crop = im.convert("RGB").crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
        r, c = divmod(k, cols)
        canvas[r * side:(r + 1) * side, c * side:(c + 1) * side] = np.asarray(crop)
    return canvas


def measure_faces(model_path, images: list[str], rounds: int = 3, counts=(1, 2, 4, 8)) -> tuple[dict, list[str]]:
    """Every face of a group photo (``Verifier.analyse_faces``: the detector once, each face aligned,
    the network batched) on canvases of 1-8 LFW faces: the time per extra face, the slope
    (t(8 faces) - t(1 face)) / 7. Baseline: the same detection and alignment, then one forward
    pass per face (batch 1). ``faces_found_max`` checks the canvases' faces were all found."""
    from siamgui.core.verifier import Verifier

    v = Verifier(str(model_path), device="cpu", cache_size=0)
    if not v.face_mode:
        return {}, ["faces: the model is not a face model; not measured"]
    canvases = {n: group_photo(images[:n]) for n in counts}
    found = max(len(v.prepare_faces(canvases[n])[0]) for n in counts)
    if found < max(counts):
        return {"faces_found_max": found}, [f"faces: {found} of {max(counts)} pasted faces found; not measured"]

    def ours(img):
        v.analyse_faces(img)

    def baseline(img):
        _, _, inputs, _ = v.prepare_faces(img)
        for arr in inputs:
            v.embed_prepared([arr])

    for n in counts:  # warm-up: detector load, oneDNN kernels for each batch size
        ours(canvases[n])
        baseline(canvases[n])
    extra, base_extra, ratio, one, eight = [], [], [], [], []
    lo, hi = min(counts), max(counts)
    for _ in range(rounds):
        t = {n: _timed(ours, canvases[n]) for n in counts}
        b = {n: _timed(baseline, canvases[n]) for n in counts}
        extra.append((t[hi] - t[lo]) / (hi - lo))
        base_extra.append((b[hi] - b[lo]) / (hi - lo))
        ratio.append(base_extra[-1] / extra[-1])
        one.append(t[lo])
        eight.append(t[hi])
    out = summaries(
        faces_ms_per_extra_face=(extra, 2),
        baseline_faces_ms_per_extra_face=(base_extra, 2),
        faces_extra_face_speedup=(ratio, 2),
        faces_ms_one_face=(one, 2),
        faces_ms_eight_faces=(eight, 2))
    out["faces_found_max"] = found
    return out, []

"""The evaluation report: one self-contained HTML file.

Plots are inline SVG (:mod:`.svg`), images inline base64 (JPEG thumbnails of the
originals, PNG crops and occlusion maps); nothing is fetched from the network.
The whole page is rendered in memory first and then written atomically
(temporary file + ``os.replace``): a failure leaves no half-written report and
keeps any earlier file of that name.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import os
import shlex
from html import escape
from pathlib import Path

import numpy as np

from siamgui.core.errors import SiamguiError
from siamgui.core.evaluation.calibration import describe_threshold
from siamgui.core.evaluation.explain import display_input, overlay
from siamgui.core.evaluation.run import EvaluationResult, PairExample
from siamgui.core.evaluation.svg import Axis, histogram_chart, line_chart

GENUINE, IMPOSTOR, THRESH, OTHER = "#1f6fb4", "#d0542c", "#333333", "#7a7a7a"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1240px;color:#222;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:120px}.card b{display:block;font-size:20px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}tr.model td{background:#fff6d6}.na{color:#999}
.charts{display:flex;flex-wrap:wrap;gap:12px}.cf{margin:0;font-size:12px;color:#555;text-align:center}.chart{border:1px solid #eee;font-size:11px}
.chart text{fill:#333}.chart .grid{stroke:#eee}.chart .frame{fill:none;stroke:#999}
.pair{border:1px solid #ddd;border-radius:6px;padding:8px;margin:8px 0}
.imgs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-end;margin-top:6px}.pair figure{margin:0;text-align:center;font-size:11px;color:#666}
.pair img{display:block}.info{font-size:13px}
.err{color:#b3261e;font-weight:600}.ok{color:#2e7d32;font-weight:600}code{font-size:12px;word-break:break-all}
.key span{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 4px 0 12px}
"""


def write_report(result: EvaluationResult, path: str | os.PathLike) -> Path:
    """Render ``result`` and write it to ``path`` atomically; returns the path."""
    from siamgui.core.modelfile import atomic_write

    path = Path(path)
    page = render_report(result)
    if path.is_dir():
        raise SiamguiError(f"{path} is a folder; give the report a file name (e.g. report.html).")
    if not path.parent.is_dir():
        raise SiamguiError(f"Could not write the report: the folder {path.parent} does not exist.")
    try:
        with atomic_write(path, ".html.tmp") as tmp:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(page)
            os.chmod(tmp, 0o644)  # a report is for reading and sharing; mkstemp makes it private
    except OSError as exc:
        raise SiamguiError(f"Could not write the report to {path}: {exc.strerror or exc}.") from None
    return path


def render_report(r: EvaluationResult) -> str:
    """The report as one HTML string."""
    from siamgui import __version__

    m, data, model = r.metrics, r.data, r.model
    when = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    cards = [("AUC", f"{m.auc:.4f}"), ("EER", f"{m.eer * 100:.2f} %"),
             (f"accuracy at {m.threshold:.3f}", f"{m.accuracy * 100:.2f} %"),
             (f"best accuracy (at {m.best_threshold:.3f})", f"{m.best_accuracy * 100:.2f} %")]
    if r.tenfold is not None:
        cards.append(("10-fold accuracy", f"{r.tenfold[0] * 100:.2f} ± {r.tenfold[1] * 100:.2f} %"))
    body = [
        f"<h1>Evaluation of {escape(model['name'])}</h1>",
        (f"<div class='sub'>on {escape(data['label'])}: {data['pairs']} pairs ({data['genuine_pairs']} genuine, "
         f"{data['impostor_pairs']} impostor), {data['images']} images &middot; siamgui {escape(__version__)} "
         f"&middot; {escape(when)}</div>"),
        "<div class='cards'>" + "".join(f"<div class='card'>{escape(k)}<b>{v}</b></div>" for k, v in cards) + "</div>",
        (f"<p><b>What the threshold means here:</b> {escape(describe_threshold(r.calibration, r.threshold))}. "
         "A pair is judged &ldquo;same&rdquo; when its distance is below the threshold.</p>"),
        "<h2>True accepts at fixed false-accept rates</h2>", _tar_table(r),
        "<h2>Curves</h2><div class='charts'>" + _charts(r) + "</div>",
        ("<h2>Thresholds</h2><p>Candidate thresholds with their error rates on these pairs; the highlighted row is "
         "the threshold used above.</p>"), _threshold_table(r),
        ("<h2>Worst impostor pairs</h2><p>Different-class pairs with the smallest distances: false accepts first. "
         + _key() + "</p>"), _examples(r.worst_accepts, r, "accepted"),
        "<h2>Worst genuine pairs</h2><p>Same-class pairs with the largest distances: false rejects first.</p>",
        _examples(r.worst_rejects, r, "rejected"),
        "<h2>Model</h2>", _kv_table(_model_rows(model)),
        "<h2>Data</h2>", _kv_table(_data_rows(r)),
    ]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>siamgui evaluation: {escape(model['name'])} on {escape(data['label'])}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def _tar_table(r: EvaluationResult) -> str:
    rows = []
    for t in r.tar_at_far:
        if t.supported:
            rough = " (rough: few false accepts)" if t.rough else ""
            rows.append(f"<tr><td>{t.far:g}</td><td>{t.tar * 100:.2f} %</td><td>{t.threshold:.4f}</td>"
                        f"<td>{t.impostor_pairs}</td><td class='l'>{t.false_accepts}{rough}</td></tr>")
        else:
            rows.append(f"<tr class='na'><td>{t.far:g}</td><td colspan='4' class='l'>not supported: needs at least "
                        f"{t.impostors_needed} impostor pairs, these data have {t.impostor_pairs}</td></tr>")
    return ("<table><tr><th>FAR</th><th>TAR</th><th>threshold</th><th>impostor pairs</th>"
            "<th class='l'>impostors accepted</th></tr>" + "".join(rows) + "</table>"
            "<p class='sub'>A level 10<sup>-k</sup> is reported only when at least 10<sup>k</sup> impostor pairs "
            "stand behind it; with fewer than 10 impostors accepted at that threshold the figure is rough.</p>")


def _charts(r: EvaluationResult) -> str:
    far, tar, _ = r.roc()
    n_imp, n_gen = int((~r.same).sum()), int(r.same.sum())
    far_lo = 10.0 ** np.floor(np.log10(1.0 / max(n_imp, 1)))
    frr_lo = 10.0 ** np.floor(np.log10(1.0 / max(n_gen, 1)))
    at = _rates_at(r, r.threshold)
    mark = [(max(at[0], far_lo), at[1], f"threshold {r.threshold:.3f}", THRESH)]
    roc = line_chart(Axis(far_lo, 1.0, True, "false accept rate (log)"), Axis(0.0, 1.0, False, "true accept rate"),
                     [("ROC", far, tar, GENUINE)], title="ROC: true accepts against false accepts", marks=mark)
    det = line_chart(Axis(far_lo, 1.0, True, "false accept rate (log)"),
                     Axis(frr_lo, 1.0, True, "false reject rate (log)"),
                     [("DET", far, np.clip(1.0 - tar, frr_lo, None), IMPOSTOR)],
                     title="DET: false rejects against false accepts",
                     marks=[(max(at[0], far_lo), max(1 - at[1], frr_lo), f"threshold {r.threshold:.3f}", THRESH)])
    h = r.histograms()
    hist = histogram_chart(h["edges"], [("genuine pairs", h["same"], GENUINE),
                                        ("impostor pairs", h["different"], IMPOSTOR)],
                           x_label="distance", lines=[(r.threshold, f"threshold {r.threshold:.3f}", THRESH)],
                           title="distance histograms")
    captions = ("ROC (true accepts against false accepts, log FAR)", "DET (false rejects against false accepts)",
                "Distances of genuine and impostor pairs")
    return "".join(f"<figure class='cf'>{svg}<figcaption>{c}</figcaption></figure>"
                   for svg, c in zip((roc, det, hist), captions))


def _rates_at(r: EvaluationResult, t: float) -> tuple[float, float]:
    """(FAR, TAR) at threshold ``t``."""
    accepted = r.distances < t
    return float(accepted[~r.same].mean()), float(accepted[r.same].mean())


def _threshold_table(r: EvaluationResult) -> str:
    rows = []
    for row in r.threshold_table:
        cls = " class='model'" if "model" in row["label"] else ""
        rows.append(f"<tr{cls}><td>{row['threshold']:.4f}</td><td class='l'>{escape(row['label'])}</td>"
                    f"<td>{row['far'] * 100:.3f} %</td><td>{row['frr'] * 100:.2f} %</td>"
                    f"<td>{row['accuracy'] * 100:.2f} %</td><td>{row['false_accepts']}</td>"
                    f"<td>{row['false_rejects']}</td></tr>")
    return ("<table><tr><th>threshold</th><th class='l'></th><th>FAR</th><th>FRR</th><th>accuracy</th>"
            "<th>false accepts</th><th>false rejects</th></tr>" + "".join(rows) + "</table>")


def _key() -> str:
    return ("<span class='key'>Maps (what the model saw, covered patch by patch):<span style='background:#00aa5a'>"
            "</span>region pulls the pair together<span style='background:#e12828'></span>region pulls it apart"
            "</span>")


def _examples(examples: list[PairExample], r: EvaluationResult, wrong: str) -> str:
    if not examples:
        return "<p class='na'>None.</p>"
    invert = r.model.get("preset") == "signature"
    return "".join(_example(e, r.threshold, wrong, invert) for e in examples)


def _example(e: PairExample, threshold: float, wrong: str, invert: bool) -> str:
    figs = []
    for label, thumb in zip("AB", e.thumbs):
        if thumb is not None:
            figs.append(_figure(_jpeg(thumb), f"image {label}", thumb.shape[1], thumb.shape[0]))
    crops = [display_input(x, invert) for x in e.inputs]
    for label, crop in zip("AB", crops):
        figs.append(_figure(_png(crop), f"model input {label}", *_shown(crop)))
    if e.explanation is not None:
        scale = e.explanation.scale
        for label, crop, heat in zip("AB", crops, e.explanation.maps):
            figs.append(_figure(_png(overlay(crop, heat, scale)), f"map {label}", *_shown(crop)))
    verdict = (f"<span class='err'>{wrong} (error)</span>" if e.error
               else f"<span class='ok'>correct at {threshold:.3f}</span>")
    notes = "".join(f"<div>image {label}: {escape(n)}</div>" for label, n in zip("AB", e.notes) if n)
    fold = f" &middot; fold {e.fold + 1}" if e.fold is not None else ""
    span = (f"<div>largest change when covering a patch: {e.explanation.scale:.3f}</div>"
            if e.explanation is not None else "")
    info = (f"<div class='info'><div>distance <b>{e.distance:.4f}</b> &middot; {verdict} &middot; "
            f"pair {e.index + 1}{fold}</div>{notes}{span}<div>A: <code>{escape(e.a)}</code></div>"
            f"<div>B: <code>{escape(e.b)}</code></div><div class='sub'>open in the app: "
            f"<code>{escape(shlex.join(['siamgui', 'compare', e.a, e.b]))}</code></div></div>")
    return "<div class='pair'>" + info + "<div class='imgs'>" + "".join(figs) + "</div></div>"


def _shown(arr: np.ndarray) -> tuple[int, int]:
    """Display size of a model input: small inputs shown at least 120 px wide."""
    h, w = arr.shape[:2]
    k = max(1, int(np.ceil(120 / max(w, 1))))
    return w * k, h * k


def _figure(src: str, caption: str, width: int, height: int) -> str:
    return (f"<figure><img src='{src}' width='{width}' height='{height}' alt='{escape(caption)}'>"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _png(arr: np.ndarray) -> str:
    return _data_uri(arr, "PNG", "image/png")


def _jpeg(arr: np.ndarray) -> str:
    return _data_uri(arr, "JPEG", "image/jpeg")


def _data_uri(arr: np.ndarray, fmt: str, mime: str) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def _kv_table(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th class='l'>{escape(k)}</th><td class='l'>{escape(str(v))}</td></tr>"
                               for k, v in rows if v not in ("", None)) + "</table>"


def _model_rows(model: dict) -> list[tuple[str, str]]:
    rows = [("name", model["name"]), ("file", model["file"]), ("architecture", model["architecture"]),
            ("preprocessing", f"{model['preset']} ({model['input']})"), ("distance", model["distance"]),
            ("threshold", f"{model['threshold']:.4f}" + ("" if model["threshold"] == model["model_threshold"]
                                                       else f" (the model's own: {model['model_threshold']:.4f})")),
            ("loss", model["loss"]), ("ran on", f"{model['device']}, {model['precision']}"),
            ("created", model["created"])]
    rows += [(f"provenance: {k}", v) for k, v in model["provenance"].items()]
    t = model.get("training") or {}
    if t:
        rows.append(("trained on", (f"{t.get('data')}: {t.get('classes')} classes, {t.get('images')} images, "
                                    f"{t.get('epochs')} epochs; its threshold chosen on {t.get('evaluated_on')}")))
    return rows


def _data_rows(r: EvaluationResult) -> list[tuple[str, str]]:
    d = r.data
    rows = [("source", d["source"]), ("kind", {"lfw": "LFW protocol file", "csv": "pairs CSV",
                                               "folder": "class folder"}.get(d["kind"], d["kind"])),
            ("pairs", f"{d['pairs']} ({d['genuine_pairs']} genuine, {d['impostor_pairs']} impostor)"),
            ("distinct images", d["images"]), ("folds", d.get("folds", "")), ("note", d["note"])]
    faces = d.get("faces")
    if faces:
        rows.append(("face detection", f"{faces['detected']} images with a face ({faces['several']} with several; "
                                       f"the main one used), {faces['none']} without (aligned from the centre)"
                     + (f", {faces['cached']} from the chip cache" if faces["cached"] else "")))
    t = r.timing
    rows.append(("time", (f"{t.get('seconds', 0):.1f} s ({t.get('ms_per_image', 0):.1f} ms per image to prepare "
                          f"and embed; {t.get('worst_pairs_s', 0):.1f} s for the worst pairs and their maps)")))
    return rows

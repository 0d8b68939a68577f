"""``siamgui info [MODEL]``: a model file's metadata."""

from __future__ import annotations

import json
from pathlib import Path

from siamgui.cli.common import EXIT_OK, model_arg


def add_parser(sub, shared) -> None:
    i = sub.add_parser("info", help="show a model file's metadata", parents=shared("json"))
    i.add_argument("model", nargs="?", help="model file; default: the bundled model")
    i.set_defaults(func=run)


def run(args) -> int:
    from siamgui.core.evaluation.calibration import threshold_meaning
    from siamgui.core.modelfile import load_model, read_metadata

    path = model_arg(args)
    if Path(path).suffix.lower() in (".pt", ".pth"):
        meta = load_model(path).meta
    else:
        meta = read_metadata(path)
    if args.json:
        print(json.dumps(meta, indent=2))
        return EXIT_OK
    print(f"file          {path}")
    print(f"name          {meta.get('name') or '-'}")
    arch = meta["architecture"]
    print(f"architecture  {arch['name']} {json.dumps(arch.get('kwargs', {}))}")
    p = meta["preprocess"]
    print(f"preset        {p['preset']} ({p['channels']}x{p['image_size']}x{p['image_size']})")
    print(f"distance      {meta.get('distance')}   threshold {meta['threshold']:.4f}")
    meaning = threshold_meaning(meta)
    if meaning:
        print(f"meaning       {meaning}")
    if meta.get("loss"):
        print(f"loss          {meta['loss']} (margin {meta.get('margin')})")
    metrics = meta.get("metrics") or {}
    if metrics:
        print("metrics       " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in metrics.items() if not isinstance(v, (dict, list))))
    tr = meta.get("training") or {}
    if tr:
        data = tr.get("data", {})
        print(f"training      {data.get('classes', '?')} classes, {data.get('images', '?')} images; "
              f"{tr.get('epochs_run', '?')} epochs (best {tr.get('best_epoch', '?')}), "
              f"{tr.get('duration_s', '?')} s on {tr.get('device', '?')}")
    for k, v in (meta.get("provenance") or {}).items():
        print(f"provenance    {k}: {v}")
    print(f"created       {meta.get('created', '-')}")
    return EXIT_OK

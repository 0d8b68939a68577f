"""Evaluation report of a model (``run_evaluation`` + ``write_report``), and the bundled
model's calibration table.

    .venv/bin/python bench/eval_report.py --lfw-pairs ../shared/data/lfw/pairs.txt \
        --root ../shared/data/lfw/lfw --report /tmp/lfw_view2.html --calibration
    .venv/bin/python bench/eval_report.py --pairs ../shared/data/signatures/test_skilled_pairs.csv \
        --model sig.safetensors --report /tmp/sig.html

``--calibration`` writes the table to ``resources/models/face.calibration.json`` (bundled
model only: the table the app reads when the model file carries none). Prepared face
crops are kept in the chip cache (``$SIAMGUI_CACHE_DIR``), so a second run only embeds.
Reports of LFW hold LFW photos: never commit them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--lfw-pairs", help="LFW protocol file (needs --root)")
    src.add_argument("--pairs", help="pairs CSV (a,b,same)")
    src.add_argument("--folder", help="class folder (random balanced pairs)")
    ap.add_argument("--root", help="LFW image folder")
    ap.add_argument("--model", help="model file (default: the bundled model)")
    ap.add_argument("--report", help="write the HTML report here")
    ap.add_argument("--json", help="write the summary (the CLI's --json object) here")
    ap.add_argument("--save-distances", help="write the distances, labels and folds to this .npz")
    ap.add_argument("--calibration", action="store_true", help="write the bundled model's calibration resource")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-cache", action="store_true", help="do not use the chip cache")
    args = ap.parse_args(argv)

    import torch

    from siamgui.core.evaluation import run
    from siamgui.core.evaluation.calibration import (
        describe_threshold,
    )
    from siamgui.core.evaluation.report import write_report
    from siamgui.core.face.chips import ChipCache
    from siamgui.core.resources import bundled_model_path
    from siamgui.core.verifier import Verifier

    torch.set_num_threads(args.threads)
    verifier = Verifier(args.model or bundled_model_path(), device="cpu")
    if args.lfw_pairs:
        pairset = run.pairs_from_lfw(args.lfw_pairs, args.root)
    elif args.pairs:
        pairset = run.pairs_from_csv(args.pairs)
    else:
        pairset = run.pairs_from_folder(args.folder)
    cache = None if args.no_cache else ChipCache(verifier.loaded.spec)

    def progress(p):
        print(f"\r{p.text()}" + (f" (AUC so far {p.partial_auc:.4f})" if p.partial_auc is not None else ""),
              end="\n" if p.stage == "done" else "", file=sys.stderr, flush=True)

    result = run.run_evaluation(verifier, pairset, progress=progress, chip_cache=cache)
    print(result.summary_text())
    print(describe_threshold(result.calibration, result.threshold))
    print(json.dumps(result.timing))
    if args.save_distances:
        import numpy as np

        np.savez(args.save_distances, distances=result.distances, same=result.same,
                 folds=result.folds if result.folds is not None else np.zeros(0))
    if args.json:
        Path(args.json).write_text(json.dumps(result.summary(), indent=1))
    if args.report:
        write_report(result, args.report)
        print(f"report: {args.report}")
    if args.calibration:
        if args.model:
            raise SystemExit("--calibration is for the bundled model only")
        out = write_calibration_resource(verifier.meta, result.calibration, result.precision)
        print(f"calibration: {out}")
    return 0


def write_calibration_resource(meta: dict, calibration, precision: str):
    """The bundled model's table as resources/models/face.calibration.json (atomically)."""
    from siamgui.core.evaluation.calibration import BUNDLED_CALIBRATION_NAME
    from siamgui.core.modelfile import atomic_write
    from siamgui.core.resources import resources_dir

    out = resources_dir() / "models" / BUNDLED_CALIBRATION_NAME
    doc = {"_about": "FAR/FRR of the bundled model by threshold on LFW View 2 (pairs.txt), which it never saw "
                     "in training; made by bench/eval_report.py --calibration. Read when the model file has "
                     "no 'calibration' metadata.",
           "model": {"provenance_sha256": (meta.get("provenance") or {}).get("sha256"),
                     "architecture": meta["architecture"]["name"], "preprocess": meta["preprocess"],
                     "precision": precision},
           "calibration": {**calibration.to_dict(), "source": "LFW"}}
    # one line per key (the three columns of the table each on one line)
    text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()) + "\n}\n"
    with atomic_write(out, ".json.tmp") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out


if __name__ == "__main__":
    raise SystemExit(main())

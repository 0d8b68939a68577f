"""Copy MTCNN's weights from the ``facenet-pytorch`` 2.6.0 wheel into ``resources/models/mtcnn.safetensors``.

    .venv/bin/pip download --no-deps facenet-pytorch==2.6.0 -d /tmp/fp
    .venv/bin/python bench/make_mtcnn.py /tmp/fp/facenet_pytorch-2.6.0-py3-none-any.whl

The wheel's ``facenet_pytorch/data/{pnet,rnet,onet}.pt`` are PyTorch state
dicts, read with ``torch.load(weights_only=True)`` (no pickle code runs) and
loaded into our own networks (:mod:`siamgui.core.face.mtcnn`) to check the names and
shapes, then written as one ``.safetensors`` file with provenance metadata. The
package itself is never installed or imported. Adds ``mtcnn.safetensors`` to
``resources/models/PROVENANCE.json`` and the MIT licence text to
``resources/models/LICENSE-mtcnn.txt``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WHEEL = "facenet_pytorch-2.6.0-py3-none-any.whl"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("wheel", help=f"path to {WHEEL}")
    args = ap.parse_args(argv)

    import torch
    from safetensors.torch import save_file

    from siamgui.core.face import mtcnn
    from siamgui.core.modelfile import atomic_write
    from siamgui.core.resources import resources_dir

    wheel = Path(args.wheel)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    tensors, sources = {}, {}
    with zipfile.ZipFile(wheel) as zf:
        licence = next(zf.read(n).decode() for n in zf.namelist() if n.endswith(".dist-info/LICENSE.md"))
        for name, cls in (("pnet", mtcnn.PNet), ("rnet", mtcnn.RNet), ("onet", mtcnn.ONet)):
            raw = zf.read(f"facenet_pytorch/data/{name}.pt")
            sources[name] = hashlib.sha256(raw).hexdigest()
            state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            cls().load_state_dict(state)  # names and shapes must match our networks exactly
            tensors.update({f"{name}.{k}": v.float().contiguous() for k, v in state.items()})
    meta = {
        "format": "siamgui-mtcnn-1",
        "architecture": "mtcnn (P-Net, R-Net, O-Net)",
        "source_package": "facenet-pytorch 2.6.0 (PyPI wheel)",
        "source_sha256": digest,
        "source_files_sha256": json.dumps(sources),
        "licence": "MIT (facenet-pytorch, Copyright (c) 2019 Timothy Esler); see LICENSE-mtcnn.txt",
        "origin": "MTCNN, Zhang, Zhang, Li, Qiao: Joint Face Detection and Alignment using Multi-task "
                  "Cascaded Convolutional Networks (2016); weights from kpzhang93/MTCNN_face_detection_alignment "
                  "via davidsandberg/facenet, converted to PyTorch by facenet-pytorch",
    }
    out_dir = resources_dir() / "models"
    out = out_dir / "mtcnn.safetensors"
    with atomic_write(out) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    out.chmod(0o644)
    (out_dir / "LICENSE-mtcnn.txt").write_text(
        "resources/models/mtcnn.safetensors holds MTCNN weights copied from the facenet-pytorch 2.6.0 wheel,\n"
        "distributed under this licence:\n\n" + licence)
    prov_path = out_dir / "PROVENANCE.json"
    record = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    record["mtcnn.safetensors"] = {
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "bytes": out.stat().st_size,
        "source_file": f"{WHEEL}: facenet_pytorch/data/{{pnet,rnet,onet}}.pt", "source_sha256": digest,
        "licence": "MIT (see LICENSE-mtcnn.txt)"}
    prov_path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["mtcnn.safetensors"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

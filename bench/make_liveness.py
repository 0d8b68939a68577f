"""Convert Silent-Face-Anti-Spoofing's two ``.pth`` files into ``resources/models/liveness.safetensors``.

    .venv/bin/python bench/make_liveness.py ../shared/models/2.7_80x80_MiniFASNetV2.pth \
        ../shared/models/4_0_0_80x80_MiniFASNetV1SE.pth --licence ../shared/models/LICENSE-silent-face.txt

The ``.pth`` files (Minivision, Apache-2.0; from github.com/minivision-ai/Silent-Face-Anti-Spoofing,
``resources/anti_spoof_models/``) are state dicts saved from ``nn.DataParallel``. They are read
with ``torch.load(weights_only=True)`` (no pickle code runs), their ``module.`` prefixes
stripped, loaded strictly into our own networks (:mod:`siamgui.core.models.minifasnet`) to
check every name and shape, and written as one ``.safetensors`` file whose metadata records
each source file's SHA-256, crop scale, input size, channel order, value range and class
order. Also writes ``LICENSE-silent-face.txt`` beside it and the file's entry in
``PROVENANCE.json``. ``bench/verify_liveness.py`` checks the result against the authors' code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPOSITORY = "github.com/minivision-ai/Silent-Face-Anti-Spoofing (resources/anti_spoof_models/, commit b6d5f04)"
OUT_NAME = "liveness.safetensors"
LICENCE_NAME = "LICENSE-silent-face.txt"


def parse_name(name: str) -> tuple[float, int, int, str]:
    """The authors' file-name convention: ``<scale>_<h>x<w>_<variant>.pth``, the scale
    written with ``_`` for the decimal point after the first digit group ("4_0_0" = 4.0)."""
    m = re.fullmatch(r"([0-9._]+?)_(\d+)x(\d+)_(MiniFASNet\w+)\.pth", name)
    if not m:
        raise ValueError(f"{name} does not follow <scale>_<h>x<w>_<MiniFASNet...>.pth")
    scale_text = m.group(1)
    scale = float(scale_text) if "_" not in scale_text else float(scale_text.split("_")[0])
    return scale, int(m.group(2)), int(m.group(3)), m.group(4)


def read_pth(path: str | Path) -> dict:
    """The state dict in ``path`` with any ``module.`` prefix removed; a pickle holding
    anything but tensors and plain containers is refused by ``weights_only``."""
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def convert(sources: list[Path], out: Path, licence_text: str) -> dict:
    import torch
    from safetensors.torch import save_file

    from siamgui.core.face.liveness import FORMAT
    from siamgui.core.models.minifasnet import CLASSES, MiniFASNet
    from siamgui.core.modelfile import atomic_write

    tensors, models = {}, []
    for src in sources:
        scale, h, w, variant = parse_name(src.name)
        state = read_pth(src)
        MiniFASNet(variant).load_state_dict(state, strict=True)  # every name and shape must match ours
        tensors.update({f"{variant}.{k}": v.contiguous() if v.is_floating_point() else v.to(torch.int64)
                        for k, v in state.items()})
        models.append({"variant": variant, "scale": scale, "input": [h, w], "source_file": src.name,
                       "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest()})
    meta = {
        "format": FORMAT,
        "models": json.dumps(models),
        "classes": json.dumps(list(CLASSES)),
        "channels": "BGR",
        "value_range": "0..255 (uint8 values as float, not normalised)",
        "crop": "the face detector's box (x, y, w, h) scaled by each model's scale around its centre, "
                "shifted inside the image, clipped to fit it, resized to the input size (bilinear)",
        "licence": "Apache-2.0 (Copyright 2020 Minivision); see LICENSE-silent-face.txt",
        "origin": REPOSITORY,
    }
    with atomic_write(out) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    out.chmod(0o644)
    licence_path = out.parent / LICENCE_NAME
    with atomic_write(licence_path) as tmp:
        tmp.write_text(f"resources/models/{OUT_NAME} holds the weights of Silent-Face-Anti-Spoofing's\n"
                       "2.7_80x80_MiniFASNetV2.pth and 4_0_0_80x80_MiniFASNetV1SE.pth (Minivision),\n"
                       "converted to safetensors, distributed under this licence:\n\n" + licence_text)
    licence_path.chmod(0o644)
    prov_path = out.parent / "PROVENANCE.json"
    record = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    record[OUT_NAME] = {
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "bytes": out.stat().st_size,
        "source_file": ", ".join(m["source_file"] for m in models),
        "source_sha256": ", ".join(m["source_sha256"] for m in models),
        "origin": REPOSITORY,
        "licence": f"Apache-2.0 (see {LICENCE_NAME})"}
    with atomic_write(prov_path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    prov_path.chmod(0o644)
    return record[OUT_NAME]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pth", nargs=2, type=Path, help="2.7_80x80_MiniFASNetV2.pth and 4_0_0_80x80_MiniFASNetV1SE.pth")
    ap.add_argument("--licence", type=Path, required=True, help="the repository's Apache-2.0 LICENSE file")
    ap.add_argument("--out", type=Path, default=None, help=f"default: resources/models/{OUT_NAME}")
    args = ap.parse_args(argv)

    from siamgui.core.resources import resources_dir

    out = args.out or resources_dir() / "models" / OUT_NAME
    print(json.dumps(convert(list(args.pth), out, args.licence.read_text()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Finding the peer library (face_recognition / dlib) and timing it on our images."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from bench.common import REPO, run_child, summary

PEER_SCRIPT = str(REPO / "bench" / "peer_face.py")
#: A separate virtual environment with dlib built from source (outside the repo), if present.
DLIB_VENV_PYTHON = Path(os.environ.get("SIAMGUI_BENCH_PEER_PYTHON", "/work/dlibenv/bin/python"))


def peer_python() -> tuple[str | None, str]:
    """An interpreter that imports face_recognition, and where it came from."""
    candidates = []
    if DLIB_VENV_PYTHON.is_file():
        candidates.append((str(DLIB_VENV_PYTHON), f"separate dlib venv {DLIB_VENV_PYTHON.parent.parent}"))
    candidates.append((sys.executable, "the project's bench extra"))
    for exe, label in candidates:
        rc, *_ = run_child([exe, "-c", "import face_recognition"], timeout=60)
        if rc == 0:
            return exe, label
    return None, ("face_recognition is not installed (pip install -e '.[bench]' builds dlib from source, "
                  "10-30 minutes)")


def measure_peer(images: list[str], rounds: int = 3) -> tuple[dict, list[str]]:
    exe, where = peer_python()
    keys = ("peer_face_ms", "peer_detect_ms", "peer_encode_ms")
    if exe is None:
        out = {}
        for k in keys:
            out.update(summary(k, []))
        return out, [f"peer not measured: {where}."]
    rc, wall, peak, out_text, err = run_child([exe, PEER_SCRIPT, str(rounds)] + images, timeout=300)
    line = next((ln for ln in reversed(out_text.strip().splitlines()) if ln.startswith("{")), None)
    if rc != 0 or line is None:
        out = {}
        for k in keys:
            out.update(summary(k, []))
        return out, [f"peer failed (exit {rc}): {(err.strip().splitlines() or ['no output'])[-1]}"]
    d = json.loads(line)
    out = {}
    out.update(summary("peer_face_ms", d["total_ms"], 2))
    out.update(summary("peer_detect_ms", d["detect_ms"], 2))
    out.update(summary("peer_encode_ms", d["encode_ms"], 2))
    return out, [f"peer: face_recognition from {where}; found a face in {d['faces_found']}/{d['images']} images."]

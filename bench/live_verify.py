"""Live verification speed: verdicts per second of "Verify live against A" on a generated video.

    .venv/bin/python bench/live_verify.py [--frames 150] [--rounds 3] [--threads N] [--json bench/results/live_verify.json]

The video (``bench.common.make_video``: 640x480 MJPG, an LFW face moving across a plain
background; a drawn circle without LFW, and then no verdicts) is read with the camera
layer (``siamgui.capture.camera.open_source``) and every frame goes through
``LiveVerifier.verify`` with the bundled face model, as the Compare tab's live worker does:
detection, landmarks, alignment, embedding, distance to image A (embedded once), the
face's quality and the liveness hint (at most 3 per second, on the wall clock). Image A is
another photo of the same person (the second LFW image of the first person that has two).
Prints ``verdicts_per_s`` (median, min-max over rounds), the share of SAME verdicts and how
many liveness hints ran. The target is 15 verdicts/s on 2 cores (issue #16).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import LFW_ROOT, make_video, summary  # noqa: E402


def reference_image() -> str | None:
    """Another photo of the person in the video (make_video uses the first of lfw_images(1))."""
    from bench.common import lfw_images

    imgs = lfw_images(1)
    if not imgs:
        return None
    person = Path(imgs[0]).parent
    others = sorted(p for p in person.iterdir() if p.suffix == ".jpg" and str(p) != imgs[0])
    return str(others[0]) if others else imgs[0]


def one_round(verifier, reference: str, video: str, frames: int) -> dict:
    from siamgui.capture.camera import open_source
    from siamgui.core.face.live import LiveVerifier

    live = LiveVerifier(verifier, reference)
    live.reference_embedding()  # computed once before the clock starts, as when live mode begins
    source = open_source(video)
    verdicts = same = faces = 0
    try:
        t0 = time.perf_counter()
        while verdicts < frames:
            frame = source.read()
            if frame is None:
                break
            v = live.verify(frame)
            verdicts += 1
            faces += v.same is not None
            same += v.smoothed is True
        elapsed = time.perf_counter() - t0
    finally:
        source.release()
    return {"verdicts_per_s": verdicts / elapsed, "same_share": same / max(1, verdicts),
            "face_share": faces / max(1, verdicts), "liveness_hints": live.judge.liveness_runs,
            "seconds": elapsed}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=150, help="frames per round (default 150; the video has as many)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from siamgui.core.verifier import Verifier

    reference = reference_image()
    if reference is None:
        print(f"no LFW images under {LFW_ROOT}: nothing to verify against", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "live.avi", frames=args.frames)
        if video is None:
            print("OpenCV could not write the MJPG test video", file=sys.stderr)
            return 2
        verifier = Verifier(None)
        one_round(verifier, reference, str(video), 10)  # warm-up: model, detector, liveness loaded
        rounds = [one_round(verifier, reference, str(video), args.frames) for _ in range(args.rounds)]
    import torch

    out = {"frames": args.frames, "rounds": args.rounds, "precision": verifier.precision_choice.name,
           "threads": torch.get_num_threads(), "reference": reference}
    out.update(summary("verdicts_per_s", [r["verdicts_per_s"] for r in rounds], 1))
    out.update(summary("same_share", [r["same_share"] for r in rounds], 3))
    out.update(summary("face_share", [r["face_share"] for r in rounds], 3))
    out["liveness_hints_per_round"] = [r["liveness_hints"] for r in rounds]
    out["liveness_hints_per_s"] = round(sum(r["liveness_hints"] for r in rounds)
                                        / sum(r["seconds"] for r in rounds), 2)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

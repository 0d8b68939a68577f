"""Camera frames judged and verified live (siamgui.core.face.live), with a fake clock; no Qt."""

from __future__ import annotations

import numpy as np
import pytest
from _gui_helpers import face_canvas, no_face

from siamgui.core.face.live import LiveVerifier, PreviewJudge, liveness_text
from siamgui.core.verifier import Verifier


@pytest.fixture(scope="module")
def verifier():
    return Verifier(None, device="cpu", precision="float32")


def grainy(variant: int = 0, seed: int = 0) -> np.ndarray:
    """A drawn face (BGR) with a camera's grain."""
    canvas = face_canvas((240, 240), [(variant, 30, 30, 180)])
    return np.clip(canvas + np.random.default_rng(seed).normal(0, 8, canvas.shape), 0, 255).astype(np.uint8)


def test_liveness_is_rate_limited_and_quality_judged_every_frame():
    judge = PreviewJudge()
    frame = grainy()
    box = (60, 50, 120, 140)
    got = [judge.judge(frame, box, now=t) for t in np.arange(0.0, 1.0, 0.05)]  # 20 frames in one second
    assert judge.liveness_runs == 3, "at most ~3 hints per second, reused in between"
    assert all(j.liveness is not None and j.quality is not None for j in got)
    assert got[1].liveness is got[0].liveness and got[1].liveness_age == pytest.approx(0.05)
    assert liveness_text(got[0].liveness).startswith("Liveness hint (MiniFASNet, Silent-Face): ")
    assert judge.judge(frame, None, now=2.0).text() == "No face"


def test_a_missing_liveness_model_leaves_a_message_not_a_crash(tmp_path, monkeypatch):
    import siamgui.core.face.liveness as liveness_mod

    missing = tmp_path / "missing.safetensors"
    monkeypatch.setattr(liveness_mod, "get_model", lambda path=None: liveness_mod.LivenessModel.load(missing))
    judge = PreviewJudge()
    j = judge.judge(grainy(), (60, 50, 120, 140), now=0.0)
    assert j.liveness is None and "missing.safetensors" in j.liveness_error and "No liveness hint" in j.text()
    assert j.quality is not None and judge.judge(grainy(), (60, 50, 120, 140), now=1.0).liveness is None


def test_live_verdicts_are_smoothed_and_need_a_face(verifier):
    live = LiveVerifier(verifier, grainy(seed=1)[:, :, ::-1].copy(), window=0.5)
    v = live.verify(grainy(seed=2), now=0.0)
    assert v.same is True and v.smoothed is True and v.votes == 1 and v.judgement.quality is not None
    no = live.verify(no_face(240), now=0.1)
    assert no.missing == "frame" and no.same is None and no.distance is None
    assert no.smoothed is True and no.votes == 1, "the face seen 0.1 s ago still counts"
    # a threshold under every distance: each frame says DIFFERENT, and the majority follows
    for k, now in enumerate((0.2, 0.3, 0.4)):
        w = live.verify(grainy(seed=3 + k), now=now, threshold=1e-6)
    assert w.same is False and w.smoothed is False and w.votes == 4
    later = live.verify(no_face(240), now=5.0)
    assert later.smoothed is None and later.votes == 0, "older frames leave the window"
    assert "SAME" in v.text() and later.text() == "No face in view"


def test_no_face_in_the_reference_gives_no_live_verdict(verifier):
    live = LiveVerifier(verifier, no_face(240))
    v = live.verify(grainy(), now=0.0)
    assert v.missing == "A" and v.smoothed is None and "image A" in v.text()

"""Camera frames, judged and verified live (no Qt, no threads: the caller's worker runs these).

:class:`PreviewJudge` gives a preview frame's main face its quality
(:func:`~siamgui.core.face.quality.assess_detection`) and a liveness hint
(:func:`~siamgui.core.face.liveness.liveness_hint`) computed at most every
``liveness_interval`` seconds (the hint is reused in between), so the preview stays fluid.

:class:`LiveVerifier` compares each frame's main face with a reference image whose
embedding is computed once, and smooths the verdict over the last ``window`` seconds
(majority of the frames' verdicts; a tie goes to the mean distance). A frame without a face
gets no verdict (as :meth:`~siamgui.core.verifier.Verifier.compare`), nor does any frame while
the reference has no face.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from siamgui.core.face.liveness import LivenessHint
from siamgui.core.face.quality import FaceQuality

#: How the hint is named beside its figure (its source, short; docs/quality.md).
LIVENESS_SOURCE_SHORT = "MiniFASNet, Silent-Face"
#: At most this many liveness hints per second by default (two small networks per hint).
LIVENESS_PER_SECOND = 3.0


def liveness_text(hint: LivenessHint) -> str:
    """ "Liveness hint (MiniFASNet, Silent-Face): looks real 0.93" (or "may be a photo or screen")."""
    what = "looks real" if hint.is_real else "may be a photo or screen"
    return f"Liveness hint ({LIVENESS_SOURCE_SHORT}): {what} {hint.score_real:.2f}"


def quality_text(quality: FaceQuality) -> str:
    """ "Quality: good" or "Quality: poor (blurred; too dark)"."""
    return "Quality: good" if quality.good else "Quality: poor (" + "; ".join(quality.reasons) + ")"


@dataclass(frozen=True)
class FrameJudgement:
    """One frame's main face: its box, quality and the latest liveness hint (None: not available)."""

    box: tuple | None
    quality: FaceQuality | None
    liveness: LivenessHint | None
    #: Seconds since :attr:`liveness` was computed (0 for this frame).
    liveness_age: float = 0.0
    #: Why there is no liveness hint (e.g. the liveness model is missing), else "".
    liveness_error: str = ""

    def text(self) -> str:
        """One line for display under a preview."""
        if self.box is None:
            return "No face"
        parts = [quality_text(self.quality) if self.quality is not None else "Quality: not judged"]
        if self.liveness is not None:
            parts.append(liveness_text(self.liveness))
        elif self.liveness_error:
            parts.append(f"No liveness hint: {self.liveness_error}")
        return " · ".join(parts)


class PreviewJudge:
    """Quality of each frame's main face and a rate-limited liveness hint (see the module docstring).

    ``face_cfg``: the face model's ``preprocess.face`` settings (detector, landmarks), default the
    bundled model's; ``liveness=False`` leaves the hint out.
    """

    def __init__(self, face_cfg: dict | None = None, *, liveness: bool = True,
                 liveness_interval: float = 1.0 / LIVENESS_PER_SECOND, liveness_model=None):
        self.face_cfg = face_cfg
        self.liveness = liveness
        self.liveness_interval = float(liveness_interval)
        self.liveness_model = liveness_model
        self._hint: LivenessHint | None = None
        self._hint_time = -float("inf")
        self._error = ""
        #: How many hints were computed (for tests and benchmarks).
        self.liveness_runs = 0

    def judge(self, image: np.ndarray, box, now: float | None = None, *, bgr: bool = True,
              landmarks=None) -> FrameJudgement:
        """The judgement of the face at ``box`` (x, y, w, h) in ``image`` (BGR camera frame by
        default); None box: no face. ``landmarks`` (dlib's 5, when the caller has them) save
        finding them again."""
        if box is None:
            return FrameJudgement(None, None, None)
        now = time.monotonic() if now is None else now
        quality = self._quality(image, box, bgr, landmarks)
        hint = self._liveness(image, box, now, bgr)
        age = 0.0 if hint is None else max(0.0, now - self._hint_time)
        return FrameJudgement(tuple(box), quality, hint, age, self._error)

    def _quality(self, image, box, bgr: bool, landmarks) -> FaceQuality | None:
        from siamgui.core.face.quality import assess_detection, assess_face

        try:
            if landmarks is not None:
                rgb = np.asarray(image)[:, :, ::-1] if bgr else np.asarray(image)
                return assess_face(np.ascontiguousarray(rgb), landmarks)
            return assess_detection(image, box, self.face_cfg or _bundled_face_config(), bgr=bgr)
        except Exception:  # noqa: BLE001 - a frame whose quality cannot be judged is still shown
            return None

    def _liveness(self, image, box, now: float, bgr: bool) -> LivenessHint | None:
        if not self.liveness or self._error:
            return None
        if self._hint is not None and now - self._hint_time < self.liveness_interval:
            return self._hint
        from siamgui.core.errors import SiamguiError
        from siamgui.core.face.liveness import liveness_hint

        detector = str((self.face_cfg or _bundled_face_config()).get("detector", "")) or None
        try:
            self._hint = liveness_hint(image, box, bgr=bgr, detector=detector, model=self.liveness_model)
        except SiamguiError as exc:  # the model is missing or damaged: say so once, keep previewing
            self._error, self._hint = str(exc), None
            return None
        except Exception:  # noqa: BLE001 - e.g. a box at the frame's edge: no hint for this frame
            return self._hint
        self._hint_time = now
        self.liveness_runs += 1
        return self._hint


@functools.lru_cache(maxsize=1)
def _bundled_face_config() -> dict:
    """Read once per process (the preview asks on every frame)."""
    from siamgui.core.modelfile import bundled_face_config

    return bundled_face_config()


@dataclass(frozen=True)
class LiveVerdict:
    """One frame checked against the reference."""

    #: This frame's distance to the reference; None without a face (in the frame or the reference).
    distance: float | None
    threshold: float
    #: This frame's own verdict (None: no face).
    same: bool | None
    #: The verdict over the last ``window`` seconds (None: no frame with a face in it).
    smoothed: bool | None
    #: Mean distance over the frames that voted, and how many did.
    smoothed_distance: float | None
    votes: int
    judgement: FrameJudgement
    #: "A" when the reference has no face, "frame" when this frame has none, else "".
    missing: str = ""
    time: float = 0.0

    def text(self) -> str:
        if self.missing == "A":
            return "No face in image A: no live verdict"
        if self.smoothed is None:
            return "No face in view"
        word = "SAME" if self.smoothed else "DIFFERENT"
        return f"{word} (distance {self.smoothed_distance:.3f}, {self.votes} frame(s))"


class LiveVerifier:
    """Each camera frame's main face against ``reference`` (see the module docstring).

    ``reference`` is anything :meth:`Verifier.prepare` takes (an RGB PIL image from a slot);
    its embedding is computed on the first :meth:`verify` (in the caller's worker) and kept.
    """

    def __init__(self, verifier, reference, *, window: float = 0.5, judge: PreviewJudge | None = None,
                 reference_bgr: bool = False):
        self.verifier = verifier
        self.reference = reference
        self.reference_bgr = reference_bgr
        self.window = float(window)
        self.judge = judge if judge is not None else PreviewJudge(verifier.loaded.spec.face)
        self._ref = None  # (embedding (1, D)) or False when the reference has no face
        self._history: deque = deque()  # (time, same, distance) of frames with a face

    def reference_embedding(self):
        """The reference's embedding (1, D), or None when a face model finds no face in it."""
        if self._ref is None:
            arr, info = self.verifier.prepare(self.reference, bgr=self.reference_bgr)
            if self.verifier.face_mode and (info is None or info.mode != "face"):
                self._ref = False
            else:
                self._ref = self.verifier.embed_prepared([arr])
        return self._ref if self._ref is not False else None

    def verify(self, frame_bgr: np.ndarray, now: float | None = None, threshold: float | None = None) -> LiveVerdict:
        now = time.monotonic() if now is None else now
        t = self.verifier.threshold if threshold is None else float(threshold)
        ref = self.reference_embedding()
        if ref is None:
            return LiveVerdict(None, t, None, None, None, 0, FrameJudgement(None, None, None), "A", now)
        arr, info = self.verifier.prepare(frame_bgr, bgr=True)
        face = info is not None and info.mode == "face"
        if self.verifier.face_mode and not face:
            judgement = FrameJudgement(None, None, None)
            distance = same = None
        else:
            d = float(self.verifier.distances(self.verifier.embed_prepared([arr]), ref)[0])
            distance, same = d, d < t
            self._history.append((now, same, d))
            box = info.used_box if face else None
            judgement = self.judge.judge(frame_bgr, box, now, bgr=True,
                                         landmarks=info.landmarks if face else None)
        while self._history and self._history[0][0] < now - self.window:
            self._history.popleft()
        smoothed, mean, votes = self._smoothed(t)
        return LiveVerdict(distance, t, same, smoothed, mean, votes, judgement,
                           "frame" if distance is None else "", now)

    def _smoothed(self, threshold: float) -> tuple[bool | None, float | None, int]:
        if not self._history:
            return None, None, 0
        # votes under the current threshold, so moving it acts at once
        yes = sum(1 for _, _, d in self._history if d < threshold)
        no = len(self._history) - yes
        mean = float(np.mean([d for _, _, d in self._history]))
        return (yes > no) if yes != no else (mean < threshold), mean, len(self._history)

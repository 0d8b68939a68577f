"""The Gallery tab's work: job functions for its workers (no widgets here) and what their results say.

Jobs run in :class:`~siamgui.gui.workers.JobRunner` workers as ``fn(task, *args)``;
the identification function runs in :class:`~siamgui.gui.workers.LatestOnlyRunner`.
"""

from __future__ import annotations

#: Candidates listed for a probe.
TOP = 5


def min_quality(verifier, allow_poor: bool):
    """The quality thresholds an enrolled face must pass (None: no check; not a face model or allowed)."""
    if allow_poor or not verifier.face_mode:
        return None
    from siamgui.core.face.quality import DEFAULT_THRESHOLDS

    return DEFAULT_THRESHOLDS


def enroll(task, gallery, verifier, name, images, bgr, allow_poor=False):
    return gallery.enroll(verifier, name, images, bgr=bgr, skip_bad=len(images) > 1,
                          progress=task.progress, cancel=task.cancelled,
                          min_quality=min_quality(verifier, allow_poor))


def import_folder(task, gallery, verifier, folder, allow_poor=False):
    return gallery.import_folder(verifier, folder, progress=task.progress, cancel=task.cancelled,
                                 min_quality=min_quality(verifier, allow_poor))


def sync(task, gallery, verifier):
    return gallery.sync(verifier, progress=task.progress, cancel=task.cancelled)


def call(_task, fn, *args):
    return fn(*args)


def evaluate(task, verifier, folder, way, shots, episodes, rank):
    from siamgui.core.gallery.oneshot import run_one_shot

    return run_one_shot(verifier, folder, way, shots, episodes, seed=0, rank=rank, progress=task.progress,
                        cancel=task.cancelled)


def identify(gallery, verifier, image, rank, k, bgr, live):
    """Identify every face of one probe (one result for the whole image without a face or a face
    model). Returns (FacesIdentification, live)."""
    result = gallery.identify_faces(verifier, image, top=TOP, rank=rank, k=k, bgr=bgr)
    return result, live


def face_overlays(result, scale: float = 1.0, whole=None, distances: bool = False) -> list[tuple]:
    """``(box, kind, text)`` for each face of a FacesIdentification, ``box`` scaled by ``scale``;
    ``kind`` is "known", "unknown" or "unjudged". A result for the whole image (no face) gets
    the box ``whole`` (or nothing when None)."""
    out = []
    for f in result.faces:
        box = whole if f.box is None else tuple(v * scale for v in f.box)
        if box is None:
            continue
        kind = "unjudged" if f.result is None else ("known" if f.result.best is not None else "unknown")
        if f.result is None:
            text = f.label.split(" (")[0]  # the issue without its figures: a short label
        else:
            text = f.label + (f" ({f.result.distance:.3f})" if distances else "")
        out.append((box, kind, text))
    return out


def faces_summary(result) -> str:
    """One line naming every face of a FacesIdentification, largest first ("" for a single result)."""
    if len(result.faces) < 2:
        return ""
    names = [f.label if f.result is not None else "not judged" for f in result.faces]
    more = f" (the largest {len(result.faces)} of {result.found})" if result.found > len(result.faces) else ""
    return f"{len(result.faces)} faces{more}: " + ", ".join(names)


def job_message(kind: str, result) -> str:
    """What the tab says when a job of ``kind`` finished with ``result`` ("" for nothing to say)."""
    if kind == "sync":
        if result.embedded or result.failed:
            msg = f"Embedded {result.embedded} example(s) for this model"
            if result.failed:
                msg += f"; {len(result.failed)} stored image(s) could not be read"
            return msg + ("; cancelled" if result.cancelled else "") + "."
        return "Embedding cancelled; identification uses the examples embedded so far." if result.cancelled else ""
    if kind == "enroll":
        msg = f"Added {result.added} example(s) to {result.name}."
        skipped = [f"{label}: {why}" for label, why in result.skipped]
        if skipped:
            msg += " Skipped " + "; ".join(skipped[:3]) + (" …" if len(skipped) > 3 else "")
        return msg
    if kind == "import":
        return (f"Imported {result.identities} identities, {result.added} example(s)"
                f"{', ' + str(len(result.skipped)) + ' skipped' if result.skipped else ''}"
                f"{' (cancelled)' if result.cancelled else ''}.")
    if kind in ("rename", "remove"):
        return "Gallery updated."
    if kind == "evaluate":
        return "One-shot evaluation finished."
    return ""


def evaluation_text(result) -> str:
    return (f"{result.way}-way {result.shots}-shot over {result.episodes} episodes "
            f"({result.classes} classes): accuracy {result.accuracy:.1%} ± {result.ci95:.1%} "
            f"(95 % CI); chance {result.chance:.1%}.")

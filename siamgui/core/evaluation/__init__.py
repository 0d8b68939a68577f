"""Evaluating a model on labelled pairs.

* :mod:`.metrics`: ROC, DET, AUC, EER, accuracy, 10-fold accuracy, TAR at FAR,
  threshold tables (numpy only; the names below are re-exported here).
* :mod:`.run`: :func:`~.run.run_evaluation`, the one call behind ``siamgui evaluate``
  and the Evaluate tab (pair sources, progress, cancel, worst errors).
* :mod:`.calibration`: what a threshold means for a model (FAR/FRR table stored in
  the model file, and the sentence that says it).
* :mod:`.explain`: occlusion maps of a pair distance (the "Why?" view).
* :mod:`.report`: the self-contained HTML report (inline SVG plots and images).

Convention everywhere: a pair is predicted "same" when ``distance < threshold``.
"""

from siamgui.core.evaluation.metrics import (
    FAR_LEVELS,
    OPERATING_POINTS,
    Metrics,
    TarAtFar,
    accuracy_at,
    auc,
    best_threshold,
    choose_threshold,
    det_curve,
    eer,
    evaluate,
    far_level_supported,
    histograms,
    rates_at,
    roc_curve,
    tar_at_far,
    tenfold_accuracy,
    threshold_at_far,
    threshold_table,
)

__all__ = [
    "FAR_LEVELS", "OPERATING_POINTS", "Metrics", "TarAtFar", "accuracy_at", "auc", "best_threshold",
    "choose_threshold", "det_curve", "eer", "evaluate", "far_level_supported", "histograms", "rates_at",
    "roc_curve", "tar_at_far", "tenfold_accuracy", "threshold_at_far", "threshold_table",
]

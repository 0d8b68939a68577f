"""``siamgui evaluate --report`` and the threshold's meaning in ``siamgui info`` (subprocesses)."""

import json

from test_cli import run_cli


def test_evaluate_report_writes_self_contained_html(tiny_model, shapes_dir, tmp_path):
    out = tmp_path / "report.html"
    proc = run_cli("evaluate", shapes_dir, "--model", tiny_model, "--num-pairs", "60", "--json",
                   "--report", out, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert set(res) >= {"pairs", "auc", "eer", "threshold", "accuracy", "best_threshold", "best_accuracy",
                        "tar_at_far"}
    assert res["pairs"] == 60 and all("far" in r for r in res["tar_at_far"])
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") or "<html" in page[:200]
    assert "<svg" in page and "data:image/" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "src=\"http" not in page


def test_evaluate_text_summary_has_tar_at_far(tiny_model, shapes_dir):
    proc = run_cli("evaluate", shapes_dir, "--model", tiny_model, "--num-pairs", "40", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "AUC" in proc.stdout and "TAR@FAR" in proc.stdout


def test_evaluate_bad_report_path_is_usage_error(tiny_model, shapes_dir, tmp_path):
    for bad in (tmp_path / "report.txt", tmp_path / "no" / "such" / "r.html", tmp_path):
        proc = run_cli("evaluate", shapes_dir, "--model", tiny_model, "--report", bad, timeout=120)
        assert proc.returncode == 2, (bad, proc.stdout, proc.stderr)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "report" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "report.txt").exists()


def test_trained_model_carries_calibration_and_info_says_it(tiny_model):
    from siamgui.core.modelfile import read_metadata

    assert read_metadata(tiny_model).get("calibration")
    proc = run_cli("info", tiny_model)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("meaning"))
    assert "genuine pairs" in line and "classes" in line

"""Killed at any moment: SIGKILL at random points of enrolment, re-embedding after a model change,
model saving, report writing and a settings write leaves each file as before or as after, and the next start
opens it and goes on (a small run of ``bench/soak.py``'s kill harness; ``make soak`` runs 50+
kill points per operation).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import soak  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL and a fork server: Linux")

KILLS = 10


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory, tiny_model, other_model):
    return soak.kill_fixtures(tmp_path_factory.mktemp("kill"), tiny_model, other_model)


@pytest.mark.parametrize("operation", ["enrol", "re-embed", "model-save", "report", "settings"])
def test_killed_at_random_points_leaves_before_or_after(operation, fixtures, tmp_path):
    report = soak.kill_test(soak.KILL_OPS[operation], KILLS, fixtures, tmp_path, seed=1, calibrations=1)
    assert report.kills == KILLS
    assert report.inconsistent == [], report.inconsistent
    assert set(report.states) <= {"before", "after", "partial"}, report.states
    assert report.debris == 0  # the next start (or save) removed what the killed process left
    assert report.inside > 0  # some kills did land during the operation


def test_a_checker_that_finds_damage_is_counted(fixtures, tmp_path):
    """The harness itself: an operation that leaves a half-written model is reported, not hidden."""
    op = soak.KILL_OPS["model-save"]
    half = soak.KillOp("half-save", op.prepare, op.reset, _half_save_run, op.check, op.debris)
    with pytest.raises(RuntimeError, match="not 'after'"):
        soak.kill_test(half, 2, fixtures, tmp_path, calibrations=1)
    ctx = op.prepare(tmp_path, fixtures)
    op.reset(tmp_path / "work", ctx)
    _half_save_run(tmp_path / "work", ctx, lambda what: None)
    assert op.check(tmp_path / "work", ctx).startswith("inconsistent")


def _half_save_run(work, ctx, mark):
    """Overwrites the model file in place, as a non-atomic save would, and stops half-way."""
    mark("start")
    data = (work / "model.safetensors").read_bytes()
    (work / "model.safetensors").write_bytes(data[: len(data) // 2])
    mark("end")

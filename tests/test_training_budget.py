"""The amount of training: the automatic plan, the time budget, and the ETA in progress events."""

import math

import pytest

from _faults_helpers import run_main
from siamgui.core.training import Epoch, Finished, Log, Step, TrainConfig, time_left, train
from siamgui.core.training.config import AUTO_BUDGET_MIN, AUTO_MIN_STEPS, AUTO_PATIENCE

TINY = dict(arch="compact-cnn", arch_kwargs={"width": 4}, image_size=16, embedding_dim=8, batch_size=8,
            val_split=0.3, device="cpu", val_pairs=64, workers=1)


def test_automatic_plan_only_without_epochs():
    auto = TrainConfig("x").resolved()
    assert (auto.min_steps, auto.time_budget_s, auto.patience) == (AUTO_MIN_STEPS, AUTO_BUDGET_MIN * 60, AUTO_PATIENCE)
    assert auto.automatic_plan
    mine = TrainConfig("x", time_budget_s=30).resolved()
    assert (mine.time_budget_s, mine.min_steps) == (30, AUTO_MIN_STEPS)
    fixed = TrainConfig("x", epochs=5).resolved()
    assert (fixed.epochs, fixed.min_steps, fixed.time_budget_s, fixed.patience) == (5, None, None, None)
    tuned = TrainConfig("x", init="model.safetensors").resolved()  # fine-tuning keeps its own safe defaults
    assert tuned.min_steps is None and not tuned.automatic_plan


def test_small_folder_gets_longer_epochs_for_enough_steps(shapes_dir):
    events = train(TrainConfig(str(shapes_dir), pairs_per_epoch=32, **TINY))
    first = next(e for e in events if isinstance(e, Step))
    events.close()  # the plan is known at the first step
    assert first.steps_per_epoch == math.ceil(AUTO_MIN_STEPS / first.epochs) > 32 // 8
    assert first.total_steps >= AUTO_MIN_STEPS


def test_the_budget_stops_training_and_a_model_is_kept(shapes_dir):
    # far more steps than 2 s allow on any machine, so the budget is what stops it
    cfg = TrainConfig(str(shapes_dir), time_budget_s=2.0, min_steps=200_000, pairs_per_epoch=32, **TINY)
    events = list(train(cfg))
    steps = [e for e in events if isinstance(e, Step)]
    assert steps[-1].global_step < steps[0].total_steps
    logs = [e.message for e in events if isinstance(e, Log)]
    assert any("automatic plan" in m for m in logs)
    assert any("Time budget" in m and "outside the budget" in m for m in logs)
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.result is not None and fin.result.meta["training"]["epochs_run"] == 1


def test_eta_is_present_and_falls(shapes_dir):
    cfg = TrainConfig(str(shapes_dir), epochs=3, pairs_per_epoch=160, **TINY)
    events = list(train(cfg))
    etas = [e.eta_s for e in events if isinstance(e, Step)]
    assert len(etas) == 60 and all(e is not None and e >= 0 for e in etas)
    assert etas[5] > etas[45] > etas[-1] == 0.0  # a 4x margin either side: timing noise cannot flip it
    epoch_etas = [e.eta_s for e in events if isinstance(e, Epoch)]
    assert epoch_etas[0] > 0 and epoch_etas[-1] == 0.0


def test_cli_max_minutes_stops_early_and_writes_a_valid_model(shapes_dir, tmp_path, capsys):
    from siamgui.core.modelfile import load_model

    out = tmp_path / "m.safetensors"
    code, stdout, err = run_main(capsys, "train", shapes_dir, "--out", out, "--arch", "compact-cnn", "--image-size",
                                 "16", "--embedding-dim", "8", "--batch-size", "8", "--pairs-per-epoch", "32",
                                 "--device", "cpu", "--epochs", "1000", "--max-minutes", "0.05")
    assert code == 0, err
    assert "Time budget of 0.1 min reached" in err and "left" in err  # the epoch lines carry the ETA
    model = load_model(out)
    record = model.meta["training"]
    assert 1 <= record["epochs_run"] < 1000 and record["config"]["time_budget_s"] == pytest.approx(3.0)


def test_time_left_reads_like_speech():
    assert time_left(130) == "about 2 min left"
    assert time_left(41) == "about 40 s left"
    assert time_left(0.5) == "a few seconds left"
    assert time_left(-3) == "a few seconds left"

"""Fast versions of the training recipes (the measured ones are bench/lfw_recipe.py, docs/training.md)."""

import os

import pytest
import torch

from siamgui.core.modelfile import load_model
from siamgui.core.training import Finished, Log, TrainConfig, train

from conftest import LFW_ROOT, lfw_available


def _run(cfg):
    events = list(train(cfg))
    assert isinstance(events[-1], Finished)
    return events, events[-1].result


def test_preset_defaults_resolve():
    face = TrainConfig("x", preset="face").resolved()
    assert (face.loss, face.margin, face.arch) == ("triplet", 0.2, "resnet")
    assert TrainConfig("x", preset="face", loss="contrastive").resolved().margin == 1.0
    assert TrainConfig("x", preset="generic").resolved().loss == "contrastive"
    tuned = TrainConfig("x", preset="face", init="model.safetensors").resolved()
    assert tuned.lr < face.lr and tuned.patience and tuned.epochs <= face.epochs


def test_fine_tuning_never_returns_a_model_worse_on_validation(tiny_model, shapes_dir):
    """The starting weights are epoch 0: when no epoch beats them, they come back unchanged."""
    start = load_model(tiny_model).network.encoder.state_dict()
    # a learning rate far too high for fine-tuning: epochs that get worse are never kept
    cfg = TrainConfig(str(shapes_dir), preset="generic", init=str(tiny_model), epochs=2, lr=0.05,
                      pairs_per_epoch=64, batch_size=16, val_split=0.3, device="cpu", val_pairs=200, patience=None)
    events, result = _run(cfg)
    tr = result.meta["training"]
    assert tr["start_validation"] is not None
    assert any(isinstance(e, Log) and e.message.startswith("Starting model") for e in events)
    assert result.meta["metrics"]["eer"] <= tr["start_validation"]["val_eer"] + 1e-12
    if tr["best_epoch"] == 0:
        end = result.network.encoder.state_dict()
        assert all(torch.equal(start[k], end[k]) for k in start)
    else:
        assert min(h["val_eer"] for h in tr["history"]) < tr["start_validation"]["val_eer"]


@pytest.mark.skipif(not lfw_available(), reason="LFW not available")
def test_face_preset_smoke_on_a_few_lfw_identities(tmp_path, monkeypatch):
    """The face recipe end to end on 5 identities: landmark-aligned chips (cached), triplet loss."""
    monkeypatch.setenv("SIAMGUI_CACHE_DIR", str(tmp_path / "cache"))
    people = ["Colin_Powell", "Donald_Rumsfeld", "Tony_Blair", "Gerhard_Schroeder", "Ariel_Sharon"]
    data = tmp_path / "faces"
    for p in people:
        (data / p).mkdir(parents=True)
        for f in sorted(os.listdir(LFW_ROOT / p))[:3]:
            os.symlink(LFW_ROOT / p / f, data / p / f)
    cfg = TrainConfig(str(data), preset="face", arch_kwargs={"width": 8, "blocks": [1, 1, 1, 1]}, epochs=1,
                      pairs_per_epoch=32, batch_size=16, val_split=0.3, device="cpu", val_pairs=100)
    _, result = _run(cfg)
    meta = result.meta
    assert meta["loss"] == "triplet" and meta["preprocess"]["face"]["align"] == "dlib5"
    assert meta["preprocess"]["image_size"] == 64
    assert meta["training"]["timing"]["cache_misses"] == 15
    _, again = _run(cfg)
    assert again.meta["training"]["timing"]["cache_hits"] == 15


_FAST = dict(arch="compact-cnn", arch_kwargs={"width": 4}, image_size=16, embedding_dim=8, epochs=1,
             pairs_per_epoch=32, batch_size=8, device="cpu", val_pairs=64, workers=1)


def test_automatic_validation_split_holds_out_classes_only_from_large_folders(shapes_dir, tmp_path):
    """val_split None: a 12-class folder trains on every class; a folder of AUTO_HOLDOUT_MIN_CLASSES holds 20 % out."""
    from siamgui.core.synthetic import make_glyph_dataset
    from siamgui.core.training.config import AUTO_HOLDOUT_MIN_CLASSES

    assert TrainConfig("x").val_split is None
    events, small = _run(TrainConfig(str(shapes_dir), **_FAST))
    data = small.meta["training"]["data"]
    assert (data["train_classes"], data["val_classes"]) == (12, 0)
    assert small.meta["metrics"]["evaluated_on"].startswith("training classes")
    assert any(isinstance(e, Log) and "every class is trained on" in e.message for e in events)
    many = make_glyph_dataset(tmp_path / "glyphs", n_classes=AUTO_HOLDOUT_MIN_CLASSES, per_class=2, size=16, seed=0)
    _, large = _run(TrainConfig(str(many), **_FAST))
    data = large.meta["training"]["data"]
    assert data["val_classes"] == 4 and data["train_classes"] == AUTO_HOLDOUT_MIN_CLASSES - 4
    _, explicit = _run(TrainConfig(str(shapes_dir), val_split=0.3, **_FAST))  # an explicit split is kept
    assert explicit.meta["training"]["data"]["val_classes"] == 4


def test_generic_augmentation_has_no_photometric_jitter():
    """Brightness/contrast jitter cost the generic preset most of its unseen-class AUC (docs/training.md)."""
    from siamgui.core.preprocess import Augmenter, preset_spec

    generic = TrainConfig("x").resolved()
    assert generic.augmentation == {"brightness": 0.0, "contrast": 0.0}
    assert TrainConfig("x", preset="face").resolved().augmentation == {}
    aug = Augmenter(preset_spec("generic", 16), seed=0, rotate_deg=0, scale=0, shift=0, hflip=False,
                    **generic.augmentation)
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    assert torch.allclose(aug(x), x.float(), atol=1e-3)  # nothing left to change the pixels
    with pytest.raises(Exception, match="Unknown augmentation option"):
        TrainConfig("x", augmentation={"hue": 0.1}).resolved()

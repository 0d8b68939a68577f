"""Test set-up: headless Qt, isolated settings and data folders, shared fixtures."""

import os
from pathlib import Path

# Without a display Qt aborts the process: choose the offscreen platform before
# anything can create a QApplication.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
LFW_ROOT = SHARED_DATA / "lfw" / "lfw"


@pytest.fixture(autouse=True)
def _isolate_user_folders(tmp_path_factory, monkeypatch):
    """Keep settings and app data out of the real home folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("SIAMGUI_DATA_DIR", str(home / "siamgui-data"))


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory):
    """A small synthetic dataset: 12 classes x 10 images of shapes (64 px)."""
    from siamgui.core.synthetic import make_shapes_dataset

    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), n_classes=12, per_class=10, size=64, seed=1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, shapes_dir):
    """A quickly trained compact model file (seconds), for inference tests."""
    from siamgui.core.training import Finished, TrainConfig, train

    cfg = TrainConfig(str(shapes_dir), preset="generic", arch="compact-cnn", arch_kwargs={"width": 8},
                      image_size=32, embedding_dim=16, epochs=1, pairs_per_epoch=64, batch_size=16,
                      val_split=0.3, seed=0, device="cpu", val_pairs=200)
    result = None
    for ev in train(cfg):
        if isinstance(ev, Finished):
            result = ev.result
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    result.save(path)
    return path



@pytest.fixture(scope="session")
def other_model(tiny_model, tmp_path_factory):
    """The tiny model with perturbed weights: same architecture, another fingerprint."""
    import torch

    from siamgui.core.modelfile import load_model, save_model

    loaded = load_model(tiny_model)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in loaded.network.encoder.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    path = tmp_path_factory.mktemp("other") / "other.safetensors"
    save_model(path, loaded.network, loaded.meta)
    return path

def lfw_available() -> bool:
    return (LFW_ROOT / "George_W_Bush").is_dir()


@pytest.fixture
def state(qtbot, tiny_model):
    """The GUI tests' usual app state: the tiny test model loaded; its workers waited for at the end."""
    from _gui_helpers import loaded_state

    s = loaded_state(qtbot, tiny_model)
    yield s
    s.wait()

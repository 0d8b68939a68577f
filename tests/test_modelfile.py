"""Model files: round trip, atomic writes, refusal of pickles and damaged files."""

import json
import os

import pytest
import torch

from siamgui.core.errors import ModelFileError
from siamgui.core.modelfile import (FORMAT_VERSION, load_model, make_meta, read_metadata, save_model,
                                    update_metadata)
from siamgui.core.models import SiameseNetwork, build_encoder
from siamgui.core.preprocess import preset_spec


def _net_and_meta(dim=8):
    torch.manual_seed(0)
    net = SiameseNetwork(build_encoder("compact-cnn", in_channels=1, embedding_dim=dim, width=4))
    meta = make_meta(architecture={"name": "compact-cnn", "kwargs": {"in_channels": 1, "embedding_dim": dim,
                                                                     "width": 4}},
                     preprocess=preset_spec("signature", 32), threshold=0.42, margin=1.0, loss="contrastive",
                     metrics={"auc": 0.9})
    return net, meta


def test_round_trip_same_outputs(tmp_path):
    net, meta = _net_and_meta()
    path = save_model(tmp_path / "m.safetensors", net, meta)
    loaded = load_model(path)
    x = torch.randn(3, 1, 32, 32)
    net.eval()
    assert torch.allclose(net.embed(x), loaded.network.embed(x), atol=1e-6)
    assert loaded.threshold == pytest.approx(0.42)
    assert loaded.spec.preset == "signature" and loaded.meta["format_version"] == FORMAT_VERSION
    assert read_metadata(path)["metrics"]["auc"] == 0.9
    assert loaded.fingerprint() == load_model(path).fingerprint()


def test_shared_weights_single_encoder():
    net, _ = _net_and_meta()
    a, b = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32)
    net.eval()
    ea, eb = net(a, b)
    assert torch.allclose(ea, net.embed(a), atol=1e-6) and torch.allclose(eb, net.embed(b), atol=1e-6)
    assert len([m for m in net.children()]) == 1  # one encoder module


def test_update_metadata_changes_threshold(tmp_path):
    net, meta = _net_and_meta()
    path = save_model(tmp_path / "m.safetensors", net, meta)
    update_metadata(path, threshold=0.77)
    assert load_model(path).threshold == pytest.approx(0.77)


def test_interrupted_save_keeps_old_file(tmp_path, monkeypatch):
    net, meta = _net_and_meta()
    path = save_model(tmp_path / "m.safetensors", net, meta)
    before = path.read_bytes()
    import safetensors.torch

    def boom(*a, **k):
        with open(a[1], "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        save_model(path, net, dict(meta, threshold=0.1))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left


def test_save_to_readonly_folder_is_clear(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    net, meta = _net_and_meta()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ModelFileError, match="still in memory"):
            save_model(ro / "m.safetensors", net, meta)
    finally:
        ro.chmod(0o700)


def test_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "siamgui": "{}", "x": Payload()}, path)
    with pytest.raises(ModelFileError, match="refused"):
        load_model(path)
    assert not marker.exists()


def test_legacy_pt_with_metadata_loads(tmp_path):
    net, meta = _net_and_meta()
    path = tmp_path / "ok.pt"
    torch.save({"state_dict": net.encoder.state_dict(), "siamgui": json.dumps(meta)}, path)
    assert load_model(path).threshold == pytest.approx(0.42)


# Damaged, unsafe and mismatched model files (truncated, garbage, folder, huge header,
# missing metadata, future format, other architecture, wrong embedding size, ...) are
# covered case by case in tests/test_bad_models.py, through load_model and the CLI.

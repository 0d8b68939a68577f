"""ONNX export: parity with PyTorch under onnxruntime, metadata, refusals (skipped without onnx/onnxruntime)."""

import json
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from siamgui.core.errors import ModelFileError, SiamguiError  # noqa: E402
from siamgui.core.export import (  # noqa: E402
    METADATA_KEYS,
    PARITY_TOLERANCE,
    ExportError,
    OnnxEmbedder,
    export_onnx,
    read_onnx_metadata,
)


def _untrained(tmp_path, arch, kwargs, preset, size, flip=False):
    """A model file with freshly initialised weights (no training: parity does not need it)."""
    import torch

    from siamgui.core.modelfile import make_meta, save_model
    from siamgui.core.models import SiameseNetwork, build_encoder
    from siamgui.core.preprocess import preset_spec

    torch.manual_seed(0)
    network = SiameseNetwork(build_encoder(arch, **kwargs)).eval()
    spec = preset_spec(preset, size)
    extra = {"embedding": {"flip_average": True}} if flip else {}
    meta = make_meta(architecture={"name": arch, "kwargs": kwargs}, preprocess=spec, threshold=0.5,
                     name=f"untrained {arch}", **extra)
    path = tmp_path / f"{arch}.safetensors"
    save_model(path, network, meta)
    return path


def _models(tmp_path):
    from siamgui.core.resources import bundled_model_path, has_bundled_model

    out = {
        "compact-cnn": _untrained(tmp_path, "compact-cnn", {"in_channels": 1, "embedding_dim": 16, "width": 8},
                                  "signature", 40),
        "resnet-flip": _untrained(tmp_path, "resnet", {"in_channels": 3, "embedding_dim": 24, "width": 8},
                                  "generic", 48, flip=True),
    }
    if has_bundled_model():
        out["bundled"] = bundled_model_path()
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, model in _models(tmp).items():
        result = export_onnx(model, tmp / f"{name}.onnx")
        out[name] = (model, result)
    return out


def test_onnx_embeddings_match_pytorch_at_batch_1_and_7(exported):
    import onnxruntime as ort

    from siamgui.core.verifier import Verifier

    assert "compact-cnn" in exported and "resnet-flip" in exported
    for name, (model, result) in exported.items():
        assert result.max_abs_diff is not None and result.max_abs_diff <= PARITY_TOLERANCE, name
        session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape[0] == "batch", name  # dynamic batch axis
        verifier = Verifier(model, device="cpu", precision="float32", cache_size=0)
        runner = OnnxEmbedder(result.path)
        size, channels = verifier.loaded.spec.image_size, verifier.loaded.spec.channels
        rng = np.random.default_rng(7)
        for n in (1, 7):
            pixels = rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)
            ref = verifier.embed_prepared(list(pixels)).numpy()
            got = runner.embed_prepared(pixels)
            assert got.shape == ref.shape == (n, verifier.network.embedding_dim)
            assert np.abs(got - ref).max() <= 1e-4, (name, n, np.abs(got - ref).max())
        assert result.flip_average == verifier.flip_average


def test_onnx_metadata_describes_input_distance_threshold_and_provenance(exported):
    from siamgui.core.modelfile import load_model, sha256_file

    model, result = exported["resnet-flip"]
    meta = read_onnx_metadata(result.path)
    assert set(METADATA_KEYS) <= set(meta)
    loaded = load_model(model)
    assert meta["siamgui.distance"] == loaded.distance
    assert meta["siamgui.threshold"] == pytest.approx(loaded.threshold)
    assert meta["siamgui.preprocess"] == loaded.meta["preprocess"]
    assert meta["siamgui.input"]["shape"] == ["batch", 3, 48, 48]
    assert meta["siamgui.input"]["normalization"]["mean"] == loaded.meta["preprocess"]["mean"]
    assert meta["siamgui.embedding"]["flip_average_in_graph"] is True
    prov = meta["siamgui.provenance"]
    assert prov["source_sha256"] == sha256_file(model) and prov["fingerprint"] == loaded.fingerprint()
    assert prov["opset"] == result.opset
    # one self-contained file, no leftovers from the atomic write
    names = {p.name for p in result.path.parent.iterdir()}
    assert {n for n in names if n.endswith(".onnx")} == {f"{name}.onnx" for name in exported}
    assert not [n for n in names if n.startswith(".") or not n.endswith((".onnx", ".safetensors"))]
    json.dumps(result.to_dict())


def test_exporting_a_file_that_is_not_a_model_is_refused(tmp_path):
    bad = tmp_path / "notes.safetensors"
    bad.write_text("this is not a model")
    out = tmp_path / "out.onnx"
    with pytest.raises(ModelFileError) as info:
        export_onnx(bad, out)
    assert isinstance(info.value, SiamguiError) and "notes.safetensors" in str(info.value)
    assert not out.exists()
    with pytest.raises(ModelFileError, match="No such model file"):
        export_onnx(tmp_path / "missing.safetensors", out)
    model = _untrained(tmp_path, "compact-cnn", {"in_channels": 1, "embedding_dim": 8, "width": 4}, "signature", 32)
    with pytest.raises(ExportError, match=r"\.onnx"):
        export_onnx(model, tmp_path / "out.bin")
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(model, tmp_path / "nowhere" / "out.onnx")
    with pytest.raises(ExportError, match="Opset"):
        export_onnx(model, out, opset=3)
    with pytest.raises(ExportError, match="not exported by siamgui"):
        _plain_onnx_refused(tmp_path)
    with pytest.raises(ExportError, match="not a readable ONNX file"):
        read_onnx_metadata(bad)


def _plain_onnx_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    read_onnx_metadata(path)


def test_a_failed_parity_check_leaves_the_old_file(tmp_path, monkeypatch):
    import siamgui.core.export as export

    model = _untrained(tmp_path, "compact-cnn", {"in_channels": 1, "embedding_dim": 8, "width": 4}, "signature", 32)
    out = tmp_path / "out.onnx"
    out.write_bytes(b"old")
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(ExportError, match="differ"):
        export_onnx(model, out)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_without_onnxruntime_the_export_is_written_unchecked(tmp_path, monkeypatch):
    model = _untrained(tmp_path, "compact-cnn", {"in_channels": 1, "embedding_dim": 8, "width": 4}, "signature", 32)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    result = export_onnx(model, tmp_path / "m.onnx")
    assert result.max_abs_diff is None and result.path.stat().st_size > 0
    with pytest.raises(ExportError, match="onnxruntime"):
        OnnxEmbedder(result.path)

"""``siamgui export``: writes a checked ONNX file; bad input exits 2 with one line (no traceback)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from siamgui.cli import main


def _untrained(tmp_path, flip=False):
    import torch

    from siamgui.core.modelfile import make_meta, save_model
    from siamgui.core.models import SiameseNetwork, build_encoder
    from siamgui.core.preprocess import preset_spec

    torch.manual_seed(0)
    kwargs = {"in_channels": 3, "embedding_dim": 8, "width": 4}
    network = SiameseNetwork(build_encoder("compact-cnn", **kwargs)).eval()
    extra = {"embedding": {"flip_average": True}} if flip else {}
    meta = make_meta(architecture={"name": "compact-cnn", "kwargs": kwargs}, preprocess=preset_spec("generic", 32),
                     threshold=0.5, name="untrained", **extra)
    path = tmp_path / "m.safetensors"
    save_model(path, network, meta)
    return path


def _one_line_error(capsys, code, *words):
    out = capsys.readouterr()
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("siamgui: error:"), out.err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_export_writes_a_checked_file_and_reports_it(tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from siamgui.core.export import PARITY_TOLERANCE, read_onnx_metadata

    model = _untrained(tmp_path, flip=True)
    out = tmp_path / "m.onnx"
    assert main(["export", str(model), "--onnx", str(out), "--opset", "13", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["opset"] == 13 and res["flip_average"] is True and res["embedding_dim"] == 8
    assert 0 <= res["max_abs_diff"] <= PARITY_TOLERANCE
    meta = read_onnx_metadata(out)
    assert meta["siamgui.provenance"]["opset"] == 13 and meta["siamgui.embedding"]["flip_average_in_graph"] is True
    # plain text: one line naming the file
    assert main(["export", str(model), "--onnx", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"wrote {out}") and "opset 17" in text and "in the graph" in text


def test_no_flip_leaves_the_mirror_averaging_out(tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from siamgui.core.export import OnnxEmbedder, read_onnx_metadata
    from siamgui.core.verifier import Verifier

    model = _untrained(tmp_path, flip=True)
    out = tmp_path / "plain.onnx"
    assert main(["export", str(model), "--onnx", str(out), "--no-flip"]) == 0
    assert "mirror averaging off" in capsys.readouterr().out
    assert read_onnx_metadata(out)["siamgui.embedding"]["flip_average"] is False
    pixels = np.random.default_rng(3).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    verifier = Verifier(model, device="cpu", precision="float32", cache_size=0)
    with_flip = verifier.embed_prepared(list(pixels)).numpy()
    verifier.flip_average = False
    without = verifier.embed_prepared(list(pixels)).numpy()
    got = OnnxEmbedder(out).embed_prepared(pixels)
    assert np.abs(got - without).max() <= 1e-4
    assert np.abs(got - with_flip).max() > 1e-4  # the option changed the graph


def test_bad_model_file_or_destination_exits_2_with_one_line(tmp_path, capsys):
    pytest.importorskip("onnx")
    bad = tmp_path / "notes.safetensors"
    bad.write_text("not a model")
    assert not (tmp_path / "x.onnx").exists()
    _one_line_error(capsys, main(["export", str(bad), "--onnx", str(tmp_path / "x.onnx")]), "notes.safetensors")
    _one_line_error(capsys, main(["export", str(tmp_path / "missing.safetensors"), "--onnx",
                                  str(tmp_path / "x.onnx")]), "missing.safetensors")
    model = _untrained(tmp_path)
    _one_line_error(capsys, main(["export", str(model), "--onnx", str(tmp_path / "no" / "x.onnx")]), "does not exist")
    (tmp_path / "dir.onnx").mkdir()
    _one_line_error(capsys, main(["export", str(model), "--onnx", str(tmp_path / "dir.onnx")]), "is a folder")
    # a destination the system will not let anyone write (root included): /proc
    _one_line_error(capsys, main(["export", str(model), "--onnx", "/proc/siamgui.onnx"]), "/proc")
    _one_line_error(capsys, main(["export", str(model), "--onnx", str(tmp_path / "x.onnx"), "--opset", "99"]),
                    "opset")
    assert not (tmp_path / "x.onnx").exists()


def test_without_onnx_the_error_names_the_extra(tmp_path, capsys, monkeypatch):
    model = _untrained(tmp_path)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import fails as if not installed
    line = _one_line_error(capsys, main(["export", str(model), "--onnx", str(tmp_path / "x.onnx")]),
                           "pip install 'siamgui[onnx]'")
    assert "onnx" in line and not (tmp_path / "x.onnx").exists()


def test_export_in_a_real_process(tmp_path):
    """As a user runs it: exit 2, one line on stderr, no traceback."""
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\0" * 64)
    proc = subprocess.run([sys.executable, "-m", "siamgui", "export", str(bad), "--onnx", str(tmp_path / "o.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr

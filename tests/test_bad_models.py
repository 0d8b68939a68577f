"""Bad model files through the command line, and the current model staying loaded.

tests/test_modelfile.py checks that load_model raises ModelFileError for damaged
files; here every kind of bad file goes through ``siamgui compare / info /
evaluate / train --init`` (exit 2, one stderr line, no traceback), a pickle with a
code payload is refused by a real process without running it, and a failed load
leaves the previous model in place.
"""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from _faults_helpers import assert_one_line_error, run_cli, run_main
from siamgui.core.errors import ModelFileError
from siamgui.core.modelfile import FORMAT_VERSION, load_model, make_meta, read_metadata
from siamgui.core.models import build_encoder
from siamgui.core.preprocess import preset_spec

ARCH = {"name": "compact-cnn", "kwargs": {"in_channels": 3, "embedding_dim": 8, "width": 4}}


def _weights(**kw) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    enc = build_encoder("compact-cnn", **{**ARCH["kwargs"], **kw})
    return {k: v.contiguous() for k, v in enc.state_dict().items()}


def _meta(**changes) -> dict:
    meta = make_meta(architecture=ARCH, preprocess=preset_spec("generic", 32), threshold=0.5)
    meta.update(changes)
    return meta


def _write(path, weights, meta) -> None:
    save_file(weights, str(path), metadata={"siamgui": meta if isinstance(meta, str) else json.dumps(meta)})


def _build(case: str, tmp_path, good):
    """The bad file for ``case``; returns (path, metadata readable: bool)."""
    p = tmp_path / "bad.safetensors"
    if case == "truncated":
        p.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    elif case == "garbage":
        p.write_bytes(os.urandom(2048))
    elif case == "directory":
        p.mkdir()
    elif case == "missing":
        pass
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "huge-header":
        p.write_bytes((10**15).to_bytes(8, "little") + b'{"w": {"dtype": "F32", "shape": [1000000000, 1000000000]')
    elif case == "huge-tensor-offsets":
        header = json.dumps({"w": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 40000000000]},
                             "__metadata__": {"siamgui": json.dumps(_meta())}}).encode()
        p.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 64)
    elif case == "no-metadata":
        save_file(_weights(), str(p))
    elif case == "damaged-metadata":
        _write(p, _weights(), '{"format": "siamgui-model", "format_version": 1, ')
    elif case == "future-version":
        _write(p, _weights(), _meta(format_version=FORMAT_VERSION + 1))
    elif case == "nan-threshold":
        _write(p, _weights(), _meta(threshold=float("nan")))
    elif case == "unknown-architecture":
        _write(p, _weights(), _meta(architecture={"name": "transformer-9000", "kwargs": {}}))
    elif case == "other-architecture":
        _write(p, _weights(), _meta(architecture={"name": "resnet", "kwargs": {"in_channels": 3}}))
    elif case == "wrong-embedding-size":
        _write(p, _weights(embedding_dim=16), _meta())
    elif case == "channels-mismatch":  # weights and architecture agree, but the preprocessing gives grey images
        _write(p, _weights(), _meta(preprocess=preset_spec("signature", 32).to_dict()))
    elif case == "huge-architecture":  # metadata claiming a 2-trillion-parameter network
        _write(p, _weights(), _meta(architecture={"name": "compact-cnn",
                                                  "kwargs": {"in_channels": 3, "embedding_dim": 8, "width": 100000}}))
    elif case == "wrong-extension":
        p = tmp_path / "model.onnx"
        p.write_bytes(good.read_bytes())
    else:
        raise AssertionError(case)
    try:
        read_metadata(p)
        meta_ok = True
    except ModelFileError:
        meta_ok = False
    return p, meta_ok


CASES = ["truncated", "garbage", "directory", "missing", "empty", "huge-header", "huge-tensor-offsets",
         "no-metadata", "damaged-metadata", "future-version", "nan-threshold", "unknown-architecture",
         "other-architecture", "wrong-embedding-size", "channels-mismatch", "huge-architecture", "wrong-extension"]
EXPECT = {"future-version": "newer siamgui", "directory": "folder", "missing": "no such model file",
          "wrong-embedding-size": "do not match", "other-architecture": "do not match", "empty": "empty",
          "huge-architecture": "do not match", "channels-mismatch": "channel", "nan-threshold": "finite",
          "wrong-extension": ".safetensors", "no-metadata": "no siamgui metadata"}


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "good.safetensors"
    _write(path, _weights(), _meta())
    return path


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "a.png"
    Image.new("RGB", (24, 24), (10, 120, 200)).save(path)
    return path


@pytest.mark.parametrize("case", CASES)
def test_bad_model_file_cli(case, tmp_path, good_model, image, shapes_dir, capsys):
    """compare / evaluate / train --init exit 2 with one line; info too unless only the weights are wrong."""
    bad, meta_ok = _build(case, tmp_path, good_model)
    with pytest.raises(ModelFileError) as info:
        load_model(bad)
    assert "\n" not in str(info.value)
    if case in EXPECT:
        assert EXPECT[case] in str(info.value).lower(), str(info.value)
    code, out, err = run_main(capsys, "compare", image, image, "--model", bad)
    assert out == ""
    line = assert_one_line_error(code, err)
    assert str(info.value) in line
    code, _, err = run_main(capsys, "evaluate", shapes_dir, "--model", bad, "--num-pairs", "10")
    assert_one_line_error(code, err)
    if case in ("truncated", "future-version", "wrong-embedding-size", "directory"):  # a training run each: a few
        out_file = tmp_path / "tuned.safetensors"
        code, _, err = run_main(capsys, "train", shapes_dir, "--init", bad, "--out", out_file, "--epochs", "1")
        assert_one_line_error(code, err)
        assert not out_file.exists()
    code, out, err = run_main(capsys, "info", bad)
    if meta_ok:  # info shows metadata without loading the weights
        assert code == 0 and "architecture" in out, err
    else:
        assert_one_line_error(code, err)


def test_huge_architecture_allocates_nothing(tmp_path, good_model):
    """Metadata claiming a huge network is refused before anything is allocated."""
    import resource
    import time

    bad, _ = _build("huge-architecture", tmp_path, good_model)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(bad)
    assert time.perf_counter() - t0 < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 100 * 1024


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # creating the file proves the code ran


def test_pickle_payload_refused_by_the_cli_without_running(tmp_path, image, capsys):
    marker = tmp_path / "payload-ran"
    zip_pt = tmp_path / "evil.pt"
    torch.save({"state_dict": _weights(), "siamgui": json.dumps(_meta()), "x": _Payload(marker)}, zip_pt)
    raw_pth = tmp_path / "evil.pth"
    raw_pth.write_bytes(pickle.dumps({"state_dict": {}, "siamgui": "{}", "x": _Payload(marker)}))
    disguised = tmp_path / "evil.safetensors"
    disguised.write_bytes(zip_pt.read_bytes())
    # the payload works when unpickled the unsafe way (proves the test can fail) ...
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))
    assert (tmp_path / "control").exists()
    # ... but no siamgui command runs it
    for bad in (zip_pt, raw_pth, disguised):
        for argv in (["compare", image, image, "--model", bad], ["info", bad]):
            code, _, err = run_main(capsys, *argv)
            assert_one_line_error(code, err)
    proc = run_cli("compare", image, image, "--model", raw_pth, "--device", "cpu")
    assert_one_line_error(proc.returncode, proc.stderr, "refused")
    assert not marker.exists()


def test_failed_load_keeps_the_current_model(tmp_path, good_model, image, qtbot):
    """The app's state: a bad file emits model_failed and the previous model stays current."""
    from siamgui.gui.state import AppState

    state = AppState(device="cpu")
    with qtbot.waitSignal(state.model_changed, timeout=20000):
        state.load_model(str(good_model))
    current = state.verifier
    before = current.compare(image, image).distance
    for case in ("truncated", "future-version", "wrong-embedding-size", "directory"):
        sub = tmp_path / case
        sub.mkdir()
        bad, _ = _build(case, sub, good_model)
        with qtbot.waitSignal(state.model_failed, timeout=20000) as blocker:
            state.load_model(str(bad))
        assert blocker.args[0] and "\n" not in blocker.args[0]
        assert state.verifier is current
    assert state.verifier.compare(image, image).distance == before
    qtbot.waitUntil(lambda: not state._threads, timeout=5000)
    # The finished load threads were deleteLater()ed: delete them now, while their parent still
    # exists (a parent destroyed with deferred deletes pending crashed a later test's event loop).
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _meta_paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _meta_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _meta_paths(v, prefix + (i,))


_FUZZ_BASE = _meta()
_FUZZ_BASE["preprocess"]["face"] = {"detector": "haar", "margin": 0.15, "align": "box"}
_FUZZ_BASE["embedding"] = {"flip_average": True}  # test-time flip averaging (verifier)


def test_property_any_metadata_value_loads_or_is_refused(tmp_path_factory, image):
    """Any one metadata field replaced by any JSON value: the model loads and compares, or ModelFileError at
    load time; never another exception (which would reach the user as an internal error mid-comparison)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from siamgui.core.errors import SiamguiError
    from siamgui.core.verifier import Verifier

    values = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=8),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                          max_leaves=6)
    folder = tmp_path_factory.mktemp("fuzz")
    weights = _weights()
    paths = list(_meta_paths(_FUZZ_BASE))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(paths), values)
    def check(path, value):
        meta = json.loads(json.dumps(_FUZZ_BASE))
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        model = folder / "m.safetensors"
        _write(model, weights, meta)
        try:
            verifier = Verifier(str(model), device="cpu")
        except ModelFileError as exc:
            assert "\n" not in str(exc)
            return
        try:
            verifier.compare(image, image)
        except SiamguiError:
            pass

    check()


@pytest.mark.parametrize("key, size", [("in_channels", float("inf")), ("in_channels", float("-inf")),
                                       ("in_channels", float("nan")), ("width", 9.2e18)])
def test_infinite_architecture_size_is_refused(key, size, tmp_path):
    """A non-finite or absurd size in the architecture's kwargs (found by the fuzz test above: int(inf)
    raises OverflowError; 9.2e18 made torch raise a multi-line error) is a one-line model-file error."""
    meta = json.loads(json.dumps(_FUZZ_BASE))
    meta["architecture"]["kwargs"][key] = size
    model = tmp_path / "m.safetensors"
    _write(model, _weights(), meta)
    from siamgui.core.verifier import Verifier

    with pytest.raises(ModelFileError) as info:
        Verifier(str(model), device="cpu")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("landmarks", ["../../etc/passwd", "/etc/passwd", "not-there.safetensors", "JSON", "GARBAGE",
                                       "WRONG-KIND"])
def test_face_model_naming_a_bad_landmark_file(landmarks, tmp_path, image, monkeypatch):
    """The landmark file a face model names is looked up in the app's resources only; a missing, damaged or
    wrong file is a ModelFileError when comparing, never another exception."""
    from siamgui.core.resources import resources_dir
    from siamgui.core.verifier import Verifier

    res = tmp_path / "res"
    (res / "models").mkdir(parents=True)
    monkeypatch.setenv("SIAMGUI_RESOURCES", str(res))
    assert resources_dir() == res
    names = {"JSON": ("notes.json", b'{"a": 1}'), "GARBAGE": ("x.safetensors", b"\x00" * 64),
             "WRONG-KIND": ("other.safetensors", None)}
    if landmarks in names:
        name, content = names[landmarks]
        if content is None:
            _write(res / "models" / name, _weights(), _meta())  # a valid safetensors file of another kind
        else:
            (res / "models" / name).write_bytes(content)
        landmarks = name
    meta = _meta(preprocess=dict(preset_spec("face", 32).to_dict(), face={
        "detector": "haar", "align": "dlib5", "landmarks": landmarks, "padding": 0.25, "refine": 1, "margin": 0.15}))
    path = tmp_path / "face.safetensors"
    _write(path, _weights(), meta)
    try:
        verifier = Verifier(str(path), device="cpu")
    except ModelFileError:
        return
    with pytest.raises(ModelFileError) as info:
        verifier.compare(image, image)
    assert "\n" not in str(info.value)


def test_ink_crop_on_a_colour_model_is_cropped_in_colour():
    """A model file may ask for ink cropping with 3 channels (found by the metadata fuzz test above)."""
    from PIL import Image

    from siamgui.core.preprocess import Preprocessor, PreprocessSpec

    img = Image.new("RGB", (80, 60), (0, 0, 0))
    img.paste((200, 120, 40), (30, 20, 50, 40))  # bright "ink" in the middle
    arr, _ = Preprocessor(PreprocessSpec("generic", 16, 3, ink_crop=True)).prepare(img)
    assert arr.shape == (16, 16, 3)
    assert (arr[8, 8] > 100).any() and arr.mean() > 60  # mostly ink after the crop, still in colour

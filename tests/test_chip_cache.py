"""The disk cache of prepared training chips (siamgui.core.face.chips) and the training timing record."""

import os
import time

import numpy as np
import pytest
import torch

from siamgui.core.face.chips import ChipCache, cache_root, spec_key
from siamgui.core.preprocess import Preprocessor, preset_spec
from siamgui.core.training import Finished, Log, TrainConfig, prepare_images, train


def _images(shapes_dir, n=6):
    return sorted(str(p) for p in shapes_dir.rglob("*.png"))[:n]


def test_root_follows_env_and_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("SIAMGUI_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("SIAMGUI_CACHE_DIR")
    assert str(cache_root()).startswith(os.environ["XDG_CACHE_HOME"])  # isolated by conftest


def test_round_trip_and_keys(tmp_path, shapes_dir):
    spec = preset_spec("generic", 24)
    cache = ChipCache(spec, tmp_path)
    src = tmp_path / "img.png"
    src.write_bytes(open(_images(shapes_dir, 1)[0], "rb").read())
    arr = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    assert cache.get(src) is None
    assert cache.put(src, arr)
    assert np.array_equal(cache.get(src), arr)
    # a symbolic link to the same file is the same entry
    link = tmp_path / "link.png"
    link.symlink_to(src)
    assert np.array_equal(cache.get(link), arr)
    # a changed file (new mtime) misses
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert cache.get(src) is None
    # another spec lives elsewhere; wrong shapes are refused
    assert spec_key(preset_spec("generic", 32)) != spec_key(spec)
    assert ChipCache(preset_spec("generic", 32), tmp_path).get(link) is None
    assert not cache.put(src, arr[:10])
    assert cache.get(tmp_path / "missing.png") is None


def test_torn_entry_is_a_miss(tmp_path, shapes_dir):
    cache = ChipCache(preset_spec("generic", 16), tmp_path)
    path = _images(shapes_dir, 1)[0]
    cache.put(path, np.zeros((16, 16, 3), np.uint8))
    entry = next(cache.dir.rglob("*.npy"))
    entry.write_bytes(entry.read_bytes()[:20])
    assert cache.get(path) is None
    assert not list(cache.dir.rglob("*.tmp"))


def test_prepare_images_reads_the_cache_instead_of_preparing(tmp_path, shapes_dir, monkeypatch):
    paths = _images(shapes_dir)
    pre = Preprocessor(preset_spec("generic", 20))
    cache = ChipCache(pre.spec, tmp_path)
    first, bad = prepare_images(paths, pre, 2, cache=cache)
    assert not bad and cache.hits == 0
    assert len(list(cache.dir.rglob("*.npy"))) == len(paths)

    def boom(*a, **k):
        raise AssertionError("prepared again")

    monkeypatch.setattr(pre, "prepare", boom)
    cache2 = ChipCache(pre.spec, tmp_path)
    done = []
    second, bad = prepare_images(paths, pre, 2, cache=cache2, progress=lambda d, t: done.append((d, t)))
    assert not bad and cache2.hits == len(paths)
    assert torch.equal(first, second)
    assert done[-1] == (len(paths), len(paths))


def test_training_uses_the_cache_and_records_where_time_goes(tmp_path, shapes_dir, monkeypatch):
    monkeypatch.setenv("SIAMGUI_CACHE_DIR", str(tmp_path / "cache"))
    cfg = TrainConfig(str(shapes_dir), preset="generic", arch="compact-cnn", arch_kwargs={"width": 4},
                      image_size=16, embedding_dim=8, epochs=1, pairs_per_epoch=32, batch_size=16, val_split=0.3,
                      device="cpu", val_pairs=100, chip_cache=True)
    metas = []
    for _ in range(2):
        logs = []
        for ev in train(cfg):
            if isinstance(ev, Log):
                logs.append(ev.message)
            if isinstance(ev, Finished):
                metas.append(ev.result.meta["training"])
        assert any(m.startswith("Time: preparing images") for m in logs), logs
    first, second = metas[0]["timing"], metas[1]["timing"]
    assert first["cache_hits"] == 0 and first["cache_misses"] == 120
    assert second["cache_hits"] == 120 and second["cache_misses"] == 0
    for t in (first, second):
        assert t["data_s"] > 0 and t["compute_s"] > 0 and t["pairs"] == 32 and t["pairs_per_s"] > 0
    # the trained weights are stored contiguous (channels-last is only used while training)
    assert metas[1]["epochs_run"] == 1


def test_time_budget_stops_training(tmp_path, shapes_dir):
    cfg = TrainConfig(str(shapes_dir), preset="generic", arch="compact-cnn", arch_kwargs={"width": 4},
                      image_size=16, embedding_dim=8, epochs=50, pairs_per_epoch=32, batch_size=16, val_split=0.3,
                      device="cpu", val_pairs=100, time_budget_s=1e-6, chip_cache=False)
    t = time.perf_counter()
    events = list(train(cfg))
    assert time.perf_counter() - t < 60
    result = events[-1].result
    assert result is not None and result.meta["training"]["epochs_run"] == 1
    assert any(isinstance(e, Log) and "Time budget" in e.message for e in events)
    with pytest.raises(Exception, match="time budget"):
        TrainConfig(str(shapes_dir), time_budget_s=-1.0).resolved()


def test_changed_preparing_code_changes_the_key(monkeypatch):
    from siamgui.core.face import chips as chip_cache

    spec = preset_spec("face", 64)
    before = spec_key(spec)
    monkeypatch.setattr(chip_cache, "_code_digest", lambda: "another aligner")
    assert spec_key(spec) != before


def test_the_code_digest_reads_the_face_pipeline_sources():
    """Every file the digest covers exists in a source checkout (a moved module once fell back
    to the version string, so editing it no longer invalidated cached chips)."""
    from siamgui.core.face import chips as chip_cache

    files = chip_cache._code_files()
    names = {f.name for f in files}
    assert {"alignment.py", "detect.py", "landmarks.py", "mtcnn.py", "images.py", "preprocess.py"} <= names
    assert all(f.is_file() for f in files)

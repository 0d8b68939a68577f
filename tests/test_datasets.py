"""Folder scanning, class-disjoint split, seeded balanced sampling."""

import numpy as np
import pytest

from siamgui.core.datasets import scan_folder, split_by_class
from siamgui.core.errors import DatasetError
from siamgui.core.training.sampling import PairSampler, TripletSampler, fixed_pairs


def test_scan_counts_and_extensions(tmp_path, shapes_dir):
    ds = scan_folder(shapes_dir)
    assert len(ds.classes) == 12 and len(ds) == 120
    s = ds.summary()
    assert (s.per_class_min, s.per_class_max, s.trainable) == (10, 10, True)


def test_scan_skips_unreadable_and_ignores_junk(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c / "nested").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / c / "x.PNG")
        Image.new("RGB", (8, 8)).save(tmp_path / c / "nested" / "y.JpG")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"this is text")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "a" / "Thumbs.db").write_bytes(b"\0\1")
    (tmp_path / "a" / "notes.txt").write_text("hi")
    ds = scan_folder(tmp_path)
    assert ds.classes == ["a", "b"]
    assert len(ds) == 4
    assert [os_name.split("/")[-1] for os_name, _ in ds.skipped] == ["broken.jpg"]


def test_summary_problems(tmp_path):
    from PIL import Image

    (tmp_path / "only").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "1.png")
    assert scan_folder(tmp_path).summary().problems
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no readable images" in scan_folder(empty).summary().problems[0]
    with pytest.raises(DatasetError):
        scan_folder(tmp_path / "missing")


def test_split_is_class_disjoint_and_seeded(shapes_dir):
    ds = scan_folder(shapes_dir)
    tr, va = split_by_class(ds, 0.25, seed=3)
    assert set(tr.classes).isdisjoint(va.classes)
    # 25 % of 12 is 3, but validation takes four classes when a third of them allows
    assert len(tr.classes) + len(va.classes) == 12 and len(va.classes) == 4
    tr2, va2 = split_by_class(ds, 0.25, seed=3)
    assert va2.classes == va.classes
    assert len(tr) + len(va) == len(ds)


def test_pair_sampler_balance_and_correct_labels():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 1 + [3] * 30)
    a, b, dis = PairSampler(labels, seed=0).sample(4000)
    assert dis.mean() == pytest.approx(0.5, abs=1e-9)
    assert np.all((labels[a] != labels[b]) == (dis == 1))
    assert np.all(a[dis == 0] != b[dis == 0])  # no image paired with itself
    # class-balanced positives: each class with 2+ images about equally often
    pos_classes = labels[a[dis == 0]]
    counts = np.bincount(pos_classes, minlength=4)
    assert counts[2] == 0
    assert max(counts[[0, 1, 3]]) / min(counts[[0, 1, 3]]) < 1.3
    # the single-image class appears as a negative
    assert 13 in set(a[dis == 1]) | set(b[dis == 1])


def test_sampling_is_deterministic():
    labels = np.repeat(np.arange(8), 5)
    one = PairSampler(labels, seed=42).sample(100)
    two = PairSampler(labels, seed=42).sample(100)
    other = PairSampler(labels, seed=43).sample(100)
    assert all(np.array_equal(x, y) for x, y in zip(one, two))
    assert not all(np.array_equal(x, y) for x, y in zip(one, other))
    assert all(np.array_equal(x, y) for x, y in zip(fixed_pairs(labels, 50, 1), fixed_pairs(labels, 50, 1)))


def test_triplets_and_pk_batches():
    labels = np.repeat(np.arange(6), 4)
    ts = TripletSampler(labels, seed=0)
    an, po, ne = ts.sample(200)
    assert np.all(labels[an] == labels[po]) and np.all(an != po) and np.all(labels[an] != labels[ne])
    idx = ts.pk_batch(16, k=4)
    assert len(idx) == 16 and len(set(idx.tolist())) == 16
    assert all(c >= 2 for c in np.bincount(labels[idx]) if c)


def test_sampler_refuses_unusable_labels():
    with pytest.raises(DatasetError):
        PairSampler(np.array([0, 1, 2]))

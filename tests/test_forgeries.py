"""Skilled forgeries in a training folder (``NAME_forg``, ``NAME/forgeries/``): negatives of NAME only."""

import shutil

import numpy as np
import pytest

from siamgui.core.datasets import scan_folder, split_by_class
from siamgui.core.training.sampling import PairSampler, TripletSampler, fixed_pairs


@pytest.fixture(scope="module")
def forged_dir(tmp_path_factory):
    """8 shape classes x 6 images; 'circle_forg' (3 images) and 'square/forgeries/' (2) forge their class;
    'ghost_forg' has no 'ghost'."""
    from siamgui.core.synthetic import draw_shape, make_shapes_dataset

    root = make_shapes_dataset(tmp_path_factory.mktemp("forged"), n_classes=8, per_class=6, size=32, seed=2)
    rng = np.random.default_rng(5)
    for folder, shape, n in ((root / "circle_forg", "ellipse", 3), (root / "square" / "forgeries", "diamond", 2),
                             (root / "ghost_forg", "ring", 2)):
        folder.mkdir(parents=True)
        for i in range(n):
            draw_shape(shape, 32, rng).save(folder / f"f{i}.png")
    return root


def test_scan_keeps_forgeries_out_of_the_classes(forged_dir):
    ds = scan_folder(forged_dir)
    assert len(ds.classes) == 8 and not any(c.endswith("_forg") for c in ds.classes)
    assert len(ds) == 48  # the square's forgeries/ sub-folder is not merged into it as genuine
    owners = sorted(ds.classes[c] for _, c in ds.forgeries)
    assert owners == ["circle"] * 3 + ["square"] * 2
    s = ds.summary()
    assert (s.classes, s.classes_with_forgeries, s.forgery_images) == (8, 2, 5)
    assert s.headline() == "8 classes, 2 with forgeries (5 images), 48 images"
    assert any("ghost_forg" in n and "no folder ghost" in n for n in s.notes)
    assert s.to_dict()["forgery_images"] == 5


def test_forgeries_follow_their_class_through_split_and_drop(forged_dir):
    ds = scan_folder(forged_dir)
    tr, va = split_by_class(ds, 0.4, seed=0)
    for part in (tr, va):
        assert all(part.classes[c] in ("circle", "square") for _, c in part.forgeries)
    assert len(tr.forgeries) + len(va.forgeries) == 5
    gone = ds.forgery_paths[0]
    assert gone not in ds.drop({gone}).forgery_paths


def _forgery_labels(forged_dir):
    ds = scan_folder(forged_dir)
    labels, forgery_of = ds.labels_with_forgeries()
    assert len(labels) == len(ds) + 5 and (forgery_of >= 0).sum() == 5
    assert len(set(labels[forgery_of >= 0])) == 5 and labels[forgery_of >= 0].min() >= len(ds.classes)
    return labels, forgery_of


def test_pair_sampler_never_pairs_a_forgery_as_positive(forged_dir):
    labels, forgery_of = _forgery_labels(forged_dir)
    a, b, dissimilar = PairSampler(labels, 0, forgery_of).sample(2000)
    is_forg = forgery_of >= 0
    same = dissimilar == 0
    assert same.sum() == 1000
    assert not is_forg[a[same]].any() and not is_forg[b[same]].any()
    assert (labels[a[same]] == labels[b[same]]).all()
    # every pair holding a forgery is (genuine of C, forgery of C), and there are some
    with_forg = is_forg[a] | is_forg[b]
    assert with_forg.sum() > 300 and (dissimilar[with_forg] == 1).all()
    genuine, forg = np.where(is_forg[a], b, a)[with_forg], np.where(is_forg[a], a, b)[with_forg]
    assert (labels[genuine] == forgery_of[forg]).all() and not is_forg[genuine].any()
    va_a, va_b, va_dis = fixed_pairs(labels, 400, 1, forgery_of)  # validation / calibration pairs too
    assert (is_forg[va_a] | is_forg[va_b]).any() and (va_dis[is_forg[va_a] | is_forg[va_b]] == 1).all()


def test_without_forgeries_sampling_is_unchanged(forged_dir):
    labels = scan_folder(forged_dir).labels
    plain = PairSampler(labels, 3).sample(300)
    given = PairSampler(labels, 3, np.full(len(labels), -1)).sample(300)
    assert all(np.array_equal(x, y) for x, y in zip(plain, given))


def test_pk_batches_take_forgeries_of_their_classes_as_negatives(forged_dir):
    labels, forgery_of = _forgery_labels(forged_dir)
    ts = TripletSampler(labels, 0, forgery_of)
    seen = 0
    for _ in range(50):
        idx = ts.pk_batch(16, k=4)
        forg = idx[forgery_of[idx] >= 0]
        seen += len(forg)
        for i in forg:  # a forgery's label is its own: no positive in the batch
            assert (labels[idx] == labels[i]).sum() == 1
    assert seen > 0
    _, pos, _ = ts.sample(500)
    assert not (forgery_of[pos] >= 0).any()


def test_training_uses_forgeries_and_says_so(forged_dir, tmp_path):
    from siamgui.core.training import Finished, Log, TrainConfig, train

    root = tmp_path / "data"
    shutil.copytree(forged_dir, root)
    cfg = TrainConfig(str(root), arch="compact-cnn", arch_kwargs={"width": 4}, image_size=16, embedding_dim=8,
                      epochs=1, pairs_per_epoch=32, batch_size=8, val_split=0.0, device="cpu", val_pairs=200)
    events = list(train(cfg))
    logs = [e.message for e in events if isinstance(e, Log)]
    assert any("forgeries of 2 class(es) (5 images)" in m for m in logs)
    assert any("ghost_forg" in m for m in logs)
    result = events[-1].result
    assert isinstance(events[-1], Finished) and result is not None
    data = result.meta["training"]["data"]
    assert (data["classes"], data["forgery_images"]) == (8, 5)


def test_folder_evaluation_pairs_use_forgeries_as_impostors(forged_dir):
    from siamgui.core.evaluation.run import pairs_from_folder

    ps = pairs_from_folder(forged_dir, num_pairs=400, seed=0)
    ds = scan_folder(forged_dir)
    owner = {p: ds.classes[c] for p, c in ds.forgeries}
    genuine_class = {p: ds.classes[c] for p, c in ds.samples}
    with_forg = [(a, b, same) for a, b, same in ps.pairs if a in owner or b in owner]
    assert with_forg and not any(same for _, _, same in with_forg)
    for a, b, _ in with_forg:
        forgery, genuine = (a, b) if a in owner else (b, a)
        assert genuine_class[genuine] == owner[forgery]
    assert "5 skilled forgeries" in ps.note

"""Large-gallery search with faiss: same answers as the numpy index, recall of the approximate
index, the size rule, rebuilds from the store, and the numpy fallback without faiss."""

import sys

import numpy as np
import pytest

from siamgui.core.gallery import Gallery, GalleryError, GalleryIndex
from siamgui.core.gallery import ann
from siamgui.core.gallery.store import _Stored


def clustered(identities, per, dim=32, seed=0, spread=0.0625, noise=0.025, ragged=False):
    """Identity centres and examples around them (like face embeddings: others ~1 away, own ~0.4)."""
    rng = np.random.default_rng(seed)
    centres = (rng.normal(size=(identities, dim)) * spread).astype(np.float32)
    counts = rng.integers(1, 2 * per, identities) if ragged else np.full(identities, per)
    owner = np.repeat(np.arange(identities), counts)
    vectors = centres[owner] + (rng.normal(size=(len(owner), dim)) * noise).astype(np.float32)
    probes = centres[rng.integers(0, identities, 60)] + (rng.normal(size=(60, dim)) * noise).astype(np.float32)
    return vectors, owner, probes


def _both(vectors, owner, distance, **kw):
    names = [f"id{i:04d}" for i in range(owner.max() + 1)]
    perm = np.random.default_rng(1).permutation(len(owner))  # rows arrive unsorted, as from SQLite
    ids = 1000 + np.arange(len(owner))
    args = (vectors[perm], owner[perm], names, (), ids[perm], distance)
    return GalleryIndex(*args), ann.FaissIndex(*args, **kw)


def test_faiss_exact_gives_the_numpy_answers(monkeypatch):
    pytest.importorskip("faiss")
    monkeypatch.setattr(ann, "NEIGHBOURS_PER_RESULT", 1)  # makes the search widen its neighbourhood
    vectors, owner, probes = clustered(80, 4, ragged=True)
    # the cluster spread also at the scale of the probes' distances, so identities compete
    far = np.random.default_rng(5).normal(size=probes.shape).astype(np.float32) * 0.05
    for distance in ("euclidean", "cosine"):
        plain, fast = _both(vectors, owner, distance)
        assert isinstance(fast, GalleryIndex) and fast.kind == "exact" and len(fast) == len(plain)
        np.testing.assert_array_equal(fast.vectors, plain.vectors)  # the faiss storage, viewed
        for q in np.concatenate([probes, probes + far]):
            for rank, k, top in (("min", 1, 1), ("min", 1, 5), ("mean", 3, 5), ("mean", 2, 200)):
                want = plain.search(q, top, rank, k)
                got = fast.search(q, top, rank, k)
                assert [c.name for c in got] == [c.name for c in want], (distance, rank, k, top)
                assert [c.example_id for c in got] == [c.example_id for c in want]
                assert [c.identity_id for c in got] == [c.identity_id for c in want]
                np.testing.assert_allclose([c.distance for c in got], [c.distance for c in want], rtol=1e-6,
                                           atol=1e-7)
            a, b = plain.identify(q, 0.3, 3), fast.identify(q, 0.3, 3)
            assert (a.best, a.distance, a.known) == (b.best, b.distance, b.known)
    with pytest.raises(GalleryError, match="ranking"):
        fast.search(probes[0], rank="median")
    with pytest.raises(GalleryError, match="values"):
        fast.search(probes[0][:5])


@pytest.mark.parametrize("method", ["ivf", "hnsw"])
def test_approximate_recall_on_a_clustered_set(method):
    pytest.importorskip("faiss")
    vectors, owner, probes = clustered(2000, 5, dim=128)
    exact, approx = _both(vectors, owner, "euclidean", approximate=True, method=method)
    assert approx.kind == method and approx.approximate
    agree = [exact.search(q, 1)[0].name == approx.search(q, 1)[0].name for q in probes]
    assert np.mean(agree) >= 0.95
    top5 = [c.name for c in approx.search(probes[0], 5, "mean", 3)]
    assert len(top5) == 5 and len(set(top5)) == 5


def _fill(g, identities, per, dim=16, seed=0, fingerprint="fp"):
    vectors, owner, _ = clustered(identities, per, dim=dim, seed=seed)
    tiny = _Stored(b"x", "copy", b"t", 1, 1, "", "0")
    with g.transaction() as con:
        start = con.execute("SELECT count(*) FROM identities").fetchone()[0]
        for i in range(identities):
            iid = con.execute("INSERT INTO identities (name, notes, created) VALUES (?, '', '')",
                              (f"p{start + i:05d}",)).lastrowid
            for row in vectors[owner == i]:
                g._insert_embedding(con, g._insert_example(con, iid, tiny), fingerprint, row)
    return vectors


def test_the_store_chooses_by_size_and_rebuilds_when_the_data_changes(tmp_path, monkeypatch):
    pytest.importorskip("faiss")
    assert ann.choose_kind(ann.FAISS_MIN - 1) == "numpy"
    assert ann.choose_kind(ann.FAISS_MIN) == "exact" == ann.choose_kind(ann.EXACT_MAX)
    assert ann.choose_kind(ann.EXACT_MAX + 1) == "approximate"
    monkeypatch.setattr(ann, "FAISS_MIN", 100)
    monkeypatch.setattr(ann, "EXACT_MAX", 400)
    with Gallery(tmp_path / "g.sqlite") as g:
        _fill(g, 10, 5)
        small = g.index("fp")
        assert type(small) is GalleryIndex and len(small) == 50
        _fill(g, 30, 5, seed=1)
        mid = g.index("fp")
        assert isinstance(mid, ann.FaissIndex) and mid.kind == "exact" and len(mid) == 200
        assert g.index("fp") is mid  # cached until the gallery changes
        _fill(g, 50, 5, seed=2)
        big = g.index("fp")
        assert big.kind == ann.APPROXIMATE and len(big) == 450
        training = big.training
        _fill(g, 2, 5, seed=3)
        again = g.index("fp")
        assert len(again) == 460 and again is not big
        if again.kind == "ivf":  # centroids reused for a gallery of about the same size
            assert again.training is training
        q = g.index("fp").vectors[0]
        assert again.identify(q, 0.1).best == "p00000"
    # forcing one kind, and refusing an unknown one
    with Gallery(tmp_path / "g.sqlite", index_kind="numpy") as g:
        assert type(g.index("fp")) is GalleryIndex
    with Gallery(tmp_path / "g.sqlite", index_kind="exact") as g:
        assert g.index("fp").kind == "exact"
    with pytest.raises(GalleryError, match="Unknown index"):
        Gallery(tmp_path / "g.sqlite", index_kind="fast")


def test_without_faiss_the_gallery_uses_numpy(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import fails as if not installed
    monkeypatch.setattr(ann, "FAISS_MIN", 1)
    assert not ann.faiss_available()
    assert ann.choose_kind(10**7) == "numpy"
    with Gallery(tmp_path / "g.sqlite") as g:
        _fill(g, 10, 3)
        index = g.index("fp")
        assert type(index) is GalleryIndex and len(index) == 30
    with Gallery(tmp_path / "g.sqlite", index_kind="approximate") as g:
        with pytest.raises(GalleryError, match="faiss"):
            g.index("fp")


def test_identify_through_a_model_is_the_same_with_faiss(tmp_path, tiny_model, shapes_dir, monkeypatch):
    pytest.importorskip("faiss")
    from siamgui.core.verifier import Verifier

    verifier = Verifier(tiny_model, device="cpu")
    folders = sorted(p for p in shapes_dir.iterdir() if p.is_dir())
    with Gallery(tmp_path / "g.sqlite", index_kind="numpy") as g:
        for folder in folders[:6]:
            g.enroll(verifier, folder.name, sorted(folder.iterdir())[:3])
        probes = [sorted(f.iterdir())[5] for f in folders]
        want = [g.identify(verifier, p, top=4, rank="mean", k=2) for p in probes]
    with Gallery(tmp_path / "g.sqlite", index_kind="exact") as g:
        assert isinstance(g.index(verifier.loaded.fingerprint(), "euclidean"), ann.FaissIndex)
        got = [g.identify(verifier, p, top=4, rank="mean", k=2) for p in probes]
    for a, b in zip(want, got):
        assert a.best == b.best and [c.name for c in a.candidates] == [c.name for c in b.candidates]
        np.testing.assert_allclose([c.distance for c in a.candidates], [c.distance for c in b.candidates], rtol=1e-6)


def test_cli_identify_index_flag_reaches_the_store(tmp_path, tiny_model, shapes_dir, monkeypatch, capsys):
    import json

    from siamgui.cli import gallery as cli_gallery
    from siamgui.cli import main
    from siamgui.core.gallery import store

    assert cli_gallery.INDEX_KINDS == ann.INDEX_KINDS  # the CLI's copy (no engine import to parse) is current
    folders = sorted(p for p in shapes_dir.iterdir() if p.is_dir())
    g = str(tmp_path / "g.sqlite")
    base = ["--gallery", g, "--model", str(tiny_model), "--device", "cpu"]
    for folder in folders[:4]:
        assert main(["gallery", "add", folder.name, *map(str, sorted(folder.iterdir())[:3]), *base]) == 0
    probe = str(sorted(folders[1].iterdir())[5])
    built = []
    real = store.build_index
    monkeypatch.setattr(store, "build_index", lambda *a, **kw: built.append(kw["kind"]) or real(*a, **kw))
    capsys.readouterr()
    kinds = ("numpy", "exact", "approximate") if ann.faiss_available() else ("numpy",)
    answers = []
    for kind in kinds:
        assert main(["gallery", "identify", probe, *base, "--index", kind, "--json", "--top", "3"]) == 0
        answers.append(json.loads(capsys.readouterr().out))
        assert built[-1] == kind
    assert all(a["best"] == answers[0]["best"] for a in answers)
    # without faiss, a faiss index is refused with one line naming the extra
    monkeypatch.setitem(sys.modules, "faiss", None)
    assert main(["gallery", "identify", probe, *base, "--index", "exact"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "siamgui[faiss]" in err[0]
    assert main(["gallery", "identify", probe, *base, "--index", "faiss"]) == 2  # not a choice
    assert "--index" in capsys.readouterr().err

"""Sorting a photo folder by person: clustering, the content-keyed face cache, clusters.json, links,
the People store's edits (no Qt)."""

import json
import os
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from siamgui.core.errors import PeopleError
from siamgui.core.people.cache import FaceCache
from siamgui.core.people.cluster import ClusterResult, FaceItem, cluster_labels, group, link_into, sort_folder, write_json
from siamgui.core.people.store import PeopleStore


def _groups(seed=0, per=(5, 4, 3), outliers=2, dim=16, spread=0.05):
    """Well-separated groups around orthogonal centres (distance ≈ 1.4 apart) plus lone outliers."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for g, n in enumerate(per):
        centre = np.zeros(dim)
        centre[g] = 1.0
        for _ in range(n):
            rows.append(centre + rng.normal(0, spread, dim))
            truth.append(g)
    for k in range(outliers):
        centre = np.zeros(dim)
        centre[len(per) + k] = 1.0
        rows.append(centre)
        truth.append(-1)
    order = rng.permutation(len(rows))  # mixed together
    return np.asarray(rows)[order].astype(np.float32), np.asarray(truth)[order]


def _same_partition(labels, truth):
    """The clusters (label >= 0) equal the true groups and the outliers are exactly the -1s."""
    got = {frozenset(np.flatnonzero(labels == lab)) for lab in set(labels.tolist()) if lab >= 0}
    want = {frozenset(np.flatnonzero(truth == g)) for g in set(truth.tolist()) if g >= 0}
    return got == want and set(np.flatnonzero(labels < 0)) == set(np.flatnonzero(truth < 0))


@pytest.mark.parametrize("method", ["agglomerative", "chunked", "dbscan"])
@pytest.mark.parametrize("distance, threshold", [("euclidean", 0.6), ("cosine", 0.3)])
def test_clustering_finds_known_groups_and_outliers(method, distance, threshold):
    x, truth = _groups()
    labels, used = cluster_labels(x, threshold, distance, method=method, chunk=4)
    assert used == method
    assert _same_partition(labels, truth), (labels, truth)


def test_clustering_merges_everything_below_a_huge_threshold_and_nothing_below_zero():
    x, _ = _groups()
    labels, _ = cluster_labels(x, 100.0, "euclidean")
    assert len(set(labels.tolist())) == 1 and labels[0] >= 0
    labels, _ = cluster_labels(x, 1e-9, "euclidean")
    assert (labels == -1).all()


def test_auto_clusters_in_chunks_above_the_limit(monkeypatch):
    from siamgui.core.people import cluster

    x, truth = _groups(per=(9, 7, 5), outliers=3)
    monkeypatch.setattr(cluster, "AGGLOMERATIVE_MAX", 5)
    calls = []
    real = cluster._agglomerative
    monkeypatch.setattr(cluster, "_agglomerative", lambda rows, *a: calls.append(len(rows)) or real(rows, *a))
    labels, used = cluster_labels(x, 0.6, "euclidean")
    assert used == "chunked" and _same_partition(labels, truth)
    assert max(calls) <= 5 and len(calls) > 5  # never more than a chunk at once


def test_group_orders_clusters_largest_first():
    clusters, unsorted = group(list("abcdefg"), np.array([2, 0, 0, -1, 2, 0, 1]))
    assert clusters == [["b", "c", "f"], ["a", "e"], ["g"]] and unsorted == ["d"]


# -- the folder pipeline ---------------------------------------------------------------------------
def _photo_folder(tmp_path, shapes_dir, n=3, copies=2):
    """``n`` distinct shape images, each also copied (same bytes, so the same embedding) ``copies`` times."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    sources = sorted(shapes_dir.glob("*/*.png"))[::10][:n]
    for i, src in enumerate(sources):
        for c in range(copies):
            shutil.copy(src, folder / ("sub" if c else "") / f"img{i}_{c}.png")
    return folder


class _Counting:
    """Counts the inputs a Verifier embeds."""

    def __init__(self, verifier):
        self.n = 0
        original = verifier.embed_prepared

        def counted(arrays, *a, **k):
            self.n += len(arrays)
            return original(arrays, *a, **k)

        verifier.embed_prepared = counted


def test_sort_folder_embeds_only_new_photos_on_a_second_run(tmp_path, shapes_dir, tiny_model):
    from siamgui.core.verifier import Verifier

    folder = _photo_folder(tmp_path, shapes_dir)
    v = Verifier(tiny_model, device="cpu", threshold=1e-3)  # only identical images are one person
    count = _Counting(v)
    with FaceCache(tmp_path / "cache.sqlite") as cache:
        r1 = sort_folder(v, folder, cache=cache)
        assert count.n == 6 and r1.embedded == 6 and r1.photos == 6
        # identical copies are one person each; every photo is one item (not a face model)
        assert sorted(sorted(os.path.basename(f.image) for f in c) for c in r1.clusters) == \
            [[f"img{i}_0.png", f"img{i}_1.png"] for i in range(3)]
        assert all(f.box == (0, 0, 64, 64) for c in r1.clusters for f in c) and r1.unsorted == []
        shutil.copy(sorted(shapes_dir.glob("*/*.png"))[55], folder / "new.png")
        (folder / "renamed.png").write_bytes((folder / "img0_0.png").read_bytes())  # known content, new name
        count.n = 0
        r2 = sort_folder(v, folder, cache=cache)
        assert count.n == 1 and r2.embedded == 1 and r2.photos == 8
        assert [os.path.basename(f.image) for f in r2.unsorted] == ["new.png"]
        assert len(r2.clusters) == 3 and max(len(c) for c in r2.clusters) == 3
    # a fresh cache file: everything is embedded again
    count.n = 0
    with FaceCache(tmp_path / "other.sqlite") as cache:
        sort_folder(v, folder, cache=cache)
    assert count.n == 8


def test_bad_file_is_skipped_with_its_reason_and_json_has_the_schema(tmp_path, shapes_dir, tiny_model):
    from siamgui.core.verifier import Verifier

    folder = _photo_folder(tmp_path, shapes_dir, n=2)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image name: ignored")
    given = os.path.relpath(folder)  # paths in the JSON are the folder as given, joined with the file's path
    v = Verifier(tiny_model, device="cpu", threshold=1e-3)
    with FaceCache(tmp_path / "cache.sqlite") as cache:
        result = sort_folder(v, given, cache=cache)
    out = tmp_path / "clusters.json"
    write_json(result, out)
    data = json.loads(out.read_text())
    assert set(data) == {"model", "threshold", "clusters", "unsorted", "skipped"}
    assert data["model"] == str(tiny_model) and data["threshold"] == pytest.approx(1e-3)
    assert [c["id"] for c in data["clusters"]] == [0, 1] and all(c["name"] is None for c in data["clusters"])
    for c in data["clusters"]:
        for f in c["faces"]:
            assert set(f) == {"image", "box"} and len(f["box"]) == 4 and f["image"].startswith(given + os.sep)
            assert os.path.isfile(f["image"])
    assert os.path.join(given, "sub", "img0_1.png") in {f["image"] for c in data["clusters"] for f in c["faces"]}
    skipped = {s["image"]: s["reason"] for s in data["skipped"]}
    assert set(skipped) == {os.path.join(given, "broken.jpg"), os.path.join(given, "empty.png")}
    assert "not an image" in skipped[os.path.join(given, "broken.jpg")]
    assert "empty" in skipped[os.path.join(given, "empty.png")]


def test_folder_without_faces_says_so(tmp_path):
    from siamgui.core.resources import has_bundled_model
    from siamgui.core.verifier import Verifier

    if not has_bundled_model():
        pytest.skip("no bundled face model")
    folder = tmp_path / "landscapes"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((120, 160, 3), 40 + 80 * i, np.uint8)).save(folder / f"sky{i}.png")
    with FaceCache(tmp_path / "cache.sqlite") as cache, pytest.raises(PeopleError, match="No face was found in the 2"):
        sort_folder(Verifier(device="cpu"), folder, cache=cache)


def test_empty_and_unreadable_folders_say_so(tmp_path, tiny_model):
    from siamgui.core.verifier import Verifier

    v = Verifier(tiny_model, device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PeopleError, match="holds no images"):
        sort_folder(v, tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"xx")
    with pytest.raises(PeopleError, match="None of the 1 image"):
        sort_folder(v, tmp_path / "bad")
    with pytest.raises(PeopleError, match="not a folder"):
        sort_folder(v, tmp_path / "missing")


def test_cancel_keeps_the_cache_of_what_was_done(tmp_path, shapes_dir, tiny_model):
    from siamgui.core.verifier import Verifier

    folder = _photo_folder(tmp_path, shapes_dir)
    v = Verifier(tiny_model, device="cpu")
    seen = []
    with FaceCache(tmp_path / "cache.sqlite") as cache:
        with pytest.raises(PeopleError, match="cancelled"):
            sort_folder(v, folder, cache=cache, progress=lambda d, t: seen.append(d), cancel=lambda: len(seen) >= 3)
        assert len(cache) == 3


def _result(tmp_path, layout):
    """A ClusterResult over real files: ``layout`` is a list of clusters of image names, then unsorted names."""
    *clusters, unsorted = layout
    names = {n for c in layout for n in c}
    for n in names:
        Image.fromarray(np.full((80, 80, 3), 100, np.uint8)).save(tmp_path / n)

    def items(c):
        return [FaceItem(str(tmp_path / n), (10, 10, 40, 40)) for n in c]

    return ClusterResult("m.safetensors", 0.5, "euclidean", [items(c) for c in clusters], items(unsorted), [])


def test_link_into_makes_folders_of_links_and_refuses_a_full_folder(tmp_path):
    photos = tmp_path / "p"
    photos.mkdir()
    result = _result(photos, [["a.png", "b.png"], ["c.png", "c.png"], ["d.png"]])
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    out = tmp_path / "links"
    assert link_into(result, out) == 4  # c.png has two faces of person 1: one link
    assert sorted(os.listdir(out)) == ["person_0", "person_1", "unsorted"]
    assert os.path.islink(out / "person_0" / "a.png")
    assert os.path.realpath(out / "person_0" / "a.png") == str((photos / "a.png").resolve())
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    with pytest.raises(PeopleError, match="not an empty folder"):
        link_into(result, out)


# -- the People store ---------------------------------------------------------------------------
def test_people_edits_persist_across_reopening(tmp_path):
    photos = tmp_path / "p"
    photos.mkdir()
    result = _result(photos, [["a.png", "b.png", "c.png"], ["d.png", "e.png"], ["f.png"]])
    path = tmp_path / "people.sqlite"
    with PeopleStore(path) as store:
        album = store.save(photos, result)
        p0, p1 = store.people(album)
        assert [len(p0.faces), len(p1.faces)] == [3, 2] and len(store.unsorted(album)) == 1
        store.rename(p1.id, "  Dana ")
        store.merge(p0.id, p1.id)  # p0 takes the name of p1 (it had none)
        merged = store.person(p0.id)
        assert merged.name == "Dana" and len(merged.faces) == 5
        a, b = [f.id for f in merged.faces if os.path.basename(f.image) in ("a.png", "b.png")]
        new = store.split([a, b])
        e = next(f.id for f in merged.faces if f.image.endswith("e.png"))
        store.move([e], None)  # "not this person"
        f = next(x.id for x in store.unsorted(album) if x.image.endswith("f.png"))
        store.move([f], new)
    with PeopleStore(path) as store:  # a new process sees the edits
        album = store.latest().id
        people = {p.name: sorted(os.path.basename(x.image) for x in p.faces) for p in store.people(album)}
        assert people == {"Dana": ["c.png", "d.png"], None: ["a.png", "b.png", "f.png"]}
        assert [os.path.basename(x.image) for x in store.unsorted(album)] == ["e.png"]
        # moving every face away removes the emptied person
        dana = next(p for p in store.people(album) if p.name == "Dana")
        store.move([x.id for x in dana.faces], None)
        assert [p.name for p in store.people(album)] == [None]
        with pytest.raises(PeopleError, match="no person"):
            store.rename(dana.id, "X")
        with pytest.raises(PeopleError, match="two different"):
            store.merge(new, new)


def test_resorting_a_folder_replaces_its_album(tmp_path):
    photos = tmp_path / "p"
    photos.mkdir()
    with PeopleStore(tmp_path / "people.sqlite") as store:
        first = store.save(photos, _result(photos, [["a.png", "b.png"], []]))
        second = store.save(photos, _result(photos, [["a.png"]]))
        assert [a.id for a in store.albums()] == [second] and store.people(first) == []


def test_failed_edit_changes_nothing(tmp_path):
    photos = tmp_path / "p"
    photos.mkdir()
    with PeopleStore(tmp_path / "people.sqlite") as store:
        album = store.save(photos, _result(photos, [["a.png", "b.png"], ["c.png", "d.png"], []]))
        p0, p1 = store.people(album)
        with pytest.raises(PeopleError, match="one person"):
            store.split([p0.faces[0].id, p1.faces[0].id])
        with pytest.raises(PeopleError, match="no longer"):
            store.move([p0.faces[0].id, 10_000], None)
        assert [len(p.faces) for p in store.people(album)] == [2, 2] and store.unsorted(album) == []


def test_people_store_refuses_another_database(tmp_path):
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(PeopleError, match="not a siamgui people file"):
        PeopleStore(other)
    (tmp_path / "junk.sqlite").write_bytes(b"junk" * 100)
    with pytest.raises(PeopleError, match="not a usable people file"):
        PeopleStore(tmp_path / "junk.sqlite")


def test_enrol_a_named_person_into_the_gallery(tmp_path, shapes_dir, tiny_model):
    from siamgui.core.gallery import Gallery
    from siamgui.core.verifier import Verifier

    photos = tmp_path / "p"
    photos.mkdir()
    srcs = sorted(shapes_dir.glob("*/*.png"))[:3]
    for i, s in enumerate(srcs):
        shutil.copy(s, photos / f"x{i}.png")
    items = [FaceItem(str(photos / f"x{i}.png"), (8, 8, 48, 48)) for i in range(3)]
    result = ClusterResult("m", 0.5, "euclidean", [items], [], [])
    v = Verifier(tiny_model, device="cpu")
    with PeopleStore(tmp_path / "people.sqlite") as store, Gallery(tmp_path / "g.sqlite") as gallery:
        (person,) = store.people(store.save(photos, result))
        with pytest.raises(PeopleError, match="Name this person"):
            store.enrol(person.id, gallery, v)
        store.rename(person.id, "Circle")
        os.unlink(photos / "x2.png")  # a photo deleted since sorting is skipped, not fatal
        r = store.enrol(person.id, gallery, v)
        assert r.added == 2 and len(r.skipped) == 1 and "x2.png" in r.skipped[0][0]
        assert [i.name for i in gallery.identities()] == ["Circle"]


# -- the command ----------------------------------------------------------------------------------
def test_cli_cluster_writes_json_and_links(tmp_path, shapes_dir, tiny_model, capsys):
    from siamgui.cli import main

    folder = _photo_folder(tmp_path, shapes_dir, n=2)
    out, links = tmp_path / "clusters.json", tmp_path / "links"
    rc = main(["cluster", str(folder), "--out", str(out), "--model", str(tiny_model), "--device", "cpu",
               "--threshold", "0.001", "--link-into", str(links), "--cache", str(tmp_path / "c.sqlite"), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    data = json.loads(out.read_text())
    assert summary["people"] == len(data["clusters"]) == 2 and summary["embedded"] == 4 and summary["links"] == 4
    assert sorted(os.listdir(links)) == ["person_0", "person_1", "unsorted"]


@pytest.mark.parametrize("case", ["missing-dir", "full-link-folder", "links-inside-dir", "empty-folder"])
def test_cli_cluster_bad_input_is_one_line(tmp_path, tiny_model, capsys, case):
    from siamgui.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    args = ["cluster", str(folder), "--out", str(tmp_path / "c.json"), "--model", str(tiny_model),
            "--cache", str(tmp_path / "c.sqlite")]
    if case == "missing-dir":
        args[1] = str(tmp_path / "nope")
    elif case == "full-link-folder":
        (tmp_path / "links").mkdir()
        (tmp_path / "links" / "x").write_text("x")
        args += ["--link-into", str(tmp_path / "links")]
    elif case == "links-inside-dir":
        args += ["--link-into", str(folder / "sorted")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("siamgui: error:")
    assert not (tmp_path / "c.json").exists()
    if case == "empty-folder":
        assert "holds no images" in err[0]


# -- streaming, the face path, other models ------------------------------------------------------------
def test_photos_are_embedded_in_batches_not_all_at_once(tmp_path, shapes_dir, tiny_model):
    from siamgui.core.people.cluster import embed_folder
    from siamgui.core.verifier import Verifier

    folder = tmp_path / "many"
    folder.mkdir()
    srcs = sorted(shapes_dir.glob("*/*.png"))
    for i in range(70):
        shutil.copy(srcs[i % len(srcs)], folder / f"{i:03d}.png")
    v = Verifier(tiny_model, device="cpu")
    sizes = []
    original = v.embed_prepared
    v.embed_prepared = lambda arrays, *a, **k: sizes.append(len(arrays)) or original(arrays, *a, **k)
    faces = embed_folder(v, folder, batch_faces=32)
    assert sizes == [32, 32, 6] and faces.vectors.shape[0] == 70
    assert [f.image for f in faces.faces] == [str(folder / f"{i:03d}.png") for i in range(70)]  # folder order


def test_every_face_of_a_group_photo_is_sorted_with_its_box(tmp_path):
    """Drawn faces and the bundled face model: two people, each alone twice and together once."""
    from _gui_helpers import FACE_VARIANTS, draw_face

    from siamgui.core.resources import has_bundled_model
    from siamgui.core.verifier import Verifier

    if not has_bundled_model():
        pytest.skip("no bundled face model")
    folder = tmp_path / "faces"
    folder.mkdir()
    for variant in (0, 1):
        for k, (side, x) in enumerate(((180, 20), (150, 140))):
            canvas = np.full((260, 340, 3), 230, np.uint8)
            canvas[40:40 + side, x:x + side] = draw_face(side, **FACE_VARIANTS[variant])
            Image.fromarray(canvas[:, :, ::-1]).save(folder / f"p{variant}_{k}.png")
    group_photo = np.full((260, 480, 3), 230, np.uint8)
    for n, variant in enumerate((0, 1)):
        group_photo[30:230, 20 + 240 * n:220 + 240 * n] = draw_face(200, **FACE_VARIANTS[variant])
    Image.fromarray(group_photo[:, :, ::-1]).save(folder / "group.png")
    v = Verifier(device="cpu", threshold=0.2)  # drawn faces are alike to a photo model (0.28-0.47 apart)
    with FaceCache(tmp_path / "c.sqlite") as cache:
        result = sort_folder(v, folder, cache=cache)
    names = sorted(sorted(os.path.basename(f.image) for f in c) for c in result.clusters)
    assert names == [["group.png", "p0_0.png", "p0_1.png"], ["group.png", "p1_0.png", "p1_1.png"]]
    assert result.unsorted == [] and result.photos == 5
    group_boxes = sorted(f.box for c in result.clusters for f in c if f.image.endswith("group.png"))
    assert group_boxes[0][0] < 240 <= group_boxes[1][0]  # one box on each half of the group photo


def test_another_model_never_reuses_the_cache(tmp_path, shapes_dir, tiny_model, other_model):
    from siamgui.core.verifier import Verifier

    folder = _photo_folder(tmp_path, shapes_dir, n=2, copies=1)
    with FaceCache(tmp_path / "c.sqlite") as cache:
        assert sort_folder(Verifier(tiny_model, device="cpu"), folder, cache=cache).embedded == 2
        assert sort_folder(Verifier(other_model, device="cpu"), folder, cache=cache).embedded == 2
        assert sort_folder(Verifier(tiny_model, device="cpu"), folder, cache=cache).embedded == 0

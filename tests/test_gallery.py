"""The gallery store, identification, re-embedding, crash safety and the ``gallery`` CLI."""

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from siamgui.core.errors import ImageError
from siamgui.core.gallery import (SCHEMA_VERSION, Gallery, GalleryError, GalleryIndex, default_gallery_path,
                                  model_fingerprint)


@pytest.fixture(scope="module")
def verifier(tiny_model):
    from siamgui.core.verifier import Verifier

    return Verifier(tiny_model, device="cpu")




def images_of(shapes_dir, cls, n=None):
    folder = shapes_dir / cls
    files = sorted(folder.iterdir())
    return files if n is None else files[:n]


def classes(shapes_dir):
    return sorted(p.name for p in shapes_dir.iterdir() if p.is_dir())


def test_default_path_is_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SIAMGUI_DATA_DIR", str(tmp_path / "data"))
    assert default_gallery_path() == tmp_path / "data" / "gallery.sqlite"
    with Gallery() as g:  # creates the folder on open, not on import
        assert g.path.is_file() and g.schema_version == SCHEMA_VERSION


def test_enrol_identify_and_unknown(tmp_path, verifier, shapes_dir):
    cls = classes(shapes_dir)
    enrolled = cls[:4]
    with Gallery(tmp_path / "g.sqlite") as g:
        for c in enrolled:
            res = g.enroll(verifier, c, images_of(shapes_dir, c, 3))
            assert res.added == 3 and not res.skipped
        assert g.names() == sorted(enrolled)
        assert [i.examples for i in g.identities()] == [3, 3, 3, 3]
        # an enrolled image is its own nearest example: distance ~0 and identified
        probe = images_of(shapes_dir, enrolled[2])[1]
        r = g.identify(verifier, probe, top=3)
        assert r.best == enrolled[2] and r.distance < 1e-3
        assert len(r.candidates) == 3 and r.candidates[0].name == enrolled[2]
        assert [c.distance for c in r.candidates] == sorted(c.distance for c in r.candidates)
        # a probe of an unseen image: ranking equals the brute-force computation
        probe = images_of(shapes_dir, enrolled[1])[7]
        q = verifier.embed([probe])
        expected = {}
        for c in enrolled:
            d = verifier.distances(q.expand(3, -1), verifier.embed(images_of(shapes_dir, c, 3)))
            expected[c] = (d.min(), np.sort(d)[:2].mean())
        for rank, col in (("min", 0), ("mean", 1)):
            r = g.identify(verifier, probe, top=4, rank=rank, k=2, threshold=1e9)
            assert [c.name for c in r.candidates] == sorted(enrolled, key=lambda c: expected[c][col])
            for c in r.candidates:
                assert c.distance == pytest.approx(expected[c.name][col], rel=1e-4, abs=1e-5)
            assert r.best == r.candidates[0].name
        # open set: a class never enrolled, with the threshold below its best distance -> Unknown
        stranger = images_of(shapes_dir, cls[-1])[0]
        best = g.identify(verifier, stranger).distance
        unknown = g.identify(verifier, stranger, threshold=best * 0.5)
        assert unknown.best is None and not unknown.known and unknown.candidates
        assert unknown.to_dict()["best"] is None
        assert g.identify(verifier, stranger, threshold=best * 2).best is not None


def test_index_ranking_matches_a_loop():
    rng = np.random.default_rng(0)
    counts = [1, 4, 2, 6, 3]
    owner = np.repeat(np.arange(5), counts)
    vectors = rng.normal(size=(len(owner), 8)).astype(np.float32)
    perm = rng.permutation(len(owner))  # the index must cope with unsorted rows
    q = rng.normal(size=8).astype(np.float32)
    names = ["a", "b", "c", "d", "e"]
    for distance in ("euclidean", "cosine"):
        ids = 100 + np.arange(len(owner))  # example ids, as stored
        index = GalleryIndex(vectors[perm], owner[perm], names, example_ids=ids[perm], distance=distance)
        for rank, k in (("min", 1), ("mean", 3), ("mean", 10)):
            cands = index.search(q, top=5, rank=rank, k=k)
            got = {c.name: c.distance for c in cands}
            nearest = {c.name: c.example_id for c in cands}
            for i, name in enumerate(names):
                rows = vectors[owner == i].astype(np.float64)
                if distance == "euclidean":
                    d = np.sqrt(((rows - q) ** 2).sum(1))
                else:
                    d = 1 - rows @ q / (np.linalg.norm(rows, axis=1) * np.linalg.norm(q))
                want = d.min() if rank == "min" else np.sort(d)[:k].mean()
                assert got[name] == pytest.approx(want, abs=1e-4)
                assert nearest[name] == ids[owner == i][np.argmin(d)]
        assert len(index.search(q, top=2)) == 2
        assert index.identify(q, threshold=0.0).best is None


def test_near_duplicate_distance_is_exact():
    """A probe a hair from an example (the same photo embedded in another batch) reads that hair,
    not the rounding of |v|^2 + |q|^2 - 2 v.q, which is about 1e-4 for embeddings of length 10."""
    rng = np.random.default_rng(1)
    vectors = (10 * rng.normal(size=(6, 64))).astype(np.float32)
    step = np.zeros(64, np.float32)
    step[0] = 1e-5
    index = GalleryIndex(vectors, np.arange(6), list("abcdef"))
    d = index.distances(vectors[2] + step)
    assert d[2] == pytest.approx(1e-5, rel=0.2)
    far = np.sqrt(((vectors.astype(np.float64) - vectors[2]) ** 2).sum(1))
    assert np.allclose(np.delete(d, 2), np.delete(far, 2), rtol=1e-5)


def test_model_change_reembeds_with_progress_and_cancel(tmp_path, verifier, other_model, shapes_dir):
    from siamgui.core.verifier import Verifier

    other = Verifier(other_model, device="cpu")
    fp1, fp2 = model_fingerprint(verifier), model_fingerprint(other)
    assert fp1 != fp2
    cls = classes(shapes_dir)[:3]
    with Gallery(tmp_path / "g.sqlite") as g:
        for c in cls:
            g.enroll(verifier, c, images_of(shapes_dir, c, 4))
        assert g.unembedded_count(fp1) == 0 and g.unembedded_count(fp2) == 12
        with pytest.raises(GalleryError, match="not embedded"):
            g.identify(other, images_of(shapes_dir, cls[0])[0])
        # cancelled after the first batch: that batch is kept, the rest is left
        calls = []
        res = g.sync(other, batch_size=5, progress=lambda d, t: calls.append((d, t)),
                     cancel=lambda: len(calls) >= 2)
        assert res.cancelled and res.embedded == 5 and g.unembedded_count(fp2) == 7
        calls.clear()
        res = g.sync(other, batch_size=5, progress=lambda d, t: calls.append((d, t)))
        assert not res.cancelled and res.embedded == 7 and g.unembedded_count(fp2) == 0
        assert calls[0] == (0, 7) and calls[-1] == (7, 7)
        assert g.fingerprints() == {fp1: 12, fp2: 12}
        # the stored embeddings are the new model's embeddings of the stored images
        index = g.index(fp2, other.distance.name)
        direct = other.embed([p for c in cls for p in images_of(shapes_dir, c, 4)]).numpy()
        assert np.allclose(np.sort(index.vectors, axis=0), np.sort(direct, axis=0), atol=1e-5)
        r = g.identify(other, images_of(shapes_dir, cls[1])[0])
        assert r.best == cls[1] and r.distance < 1e-3
        assert g.prune_embeddings([fp2]) == 12 and g.fingerprints() == {fp2: 12}


def _snapshot(path):
    con = sqlite3.connect(str(path))
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("identities", "examples", "embeddings")}
    finally:
        con.close()


def test_failing_write_leaves_the_gallery_unchanged(tmp_path, verifier, shapes_dir, monkeypatch):
    cls = classes(shapes_dir)
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.enroll(verifier, cls[0], images_of(shapes_dir, cls[0], 2))
    before = _snapshot(path)
    calls = {"n": 0}
    original = Gallery._insert_embedding

    def failing(self, con, example_id, fingerprint, vector):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return original(self, con, example_id, fingerprint, vector)

    monkeypatch.setattr(Gallery, "_insert_embedding", failing)
    with Gallery(path) as g:
        with pytest.raises(OSError, match="simulated"):
            g.enroll(verifier, cls[1], images_of(shapes_dir, cls[1], 3))
        assert calls["n"] == 2  # the failure happened mid-transaction, after rows were written
        assert g.names() == [cls[0]]
        with pytest.raises(OSError):  # adding to an existing identity: same
            calls["n"] = 1
            g.enroll(verifier, cls[0], images_of(shapes_dir, cls[0])[5:8])
    assert _snapshot(path) == before
    monkeypatch.setattr(Gallery, "_insert_embedding", original)
    with Gallery(path) as g:  # still opens, still consistent, still writable
        assert g.integrity_ok()
        assert g.identify(verifier, images_of(shapes_dir, cls[0])[0]).best == cls[0]
        g.enroll(verifier, cls[1], images_of(shapes_dir, cls[1], 1))
        assert len(g) == 2


def test_killed_process_mid_enrolment_leaves_a_consistent_gallery(tmp_path):
    """A real kill (os._exit in the middle of the transaction): SQLite rolls back on next open."""
    path = tmp_path / "g.sqlite"
    code = textwrap.dedent(f"""
        import os, numpy as np
        from PIL import Image
        from siamgui.core.gallery import store as G, Gallery
        def stored(seed):
            im = Image.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8))
            return G._store_image(im, im)
        g = Gallery({str(path)!r})
        g.add_prepared("first", [stored(0), stored(1)], np.ones((2, 4)), "fp")
        n = {{"i": 0}}
        real = Gallery._insert_example
        def dying(self, con, ident, s):
            n["i"] += 1
            if n["i"] == 3:
                os._exit(9)  # killed: no rollback, no close
            return real(self, con, ident, s)
        Gallery._insert_example = dying
        g.add_prepared("second", [stored(2), stored(3), stored(4)], np.ones((3, 4)), "fp")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    assert (tmp_path / "g.sqlite-journal").exists()  # the process really died mid-transaction
    with Gallery(path) as g:
        assert g.names() == ["first"] and g.example_count() == 2
        assert g.integrity_ok()
        assert len(g.index("fp")) == 2


def test_bad_images_give_readable_errors(tmp_path, verifier, shapes_dir):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    good = images_of(shapes_dir, classes(shapes_dir)[0], 2)
    with Gallery(tmp_path / "g.sqlite") as g:
        with pytest.raises(ImageError, match="broken.png"):
            g.enroll(verifier, "x", [good[0], bad])
        assert len(g) == 0  # all or nothing
        res = g.enroll(verifier, "x", [good[0], bad, good[1], good[0]], skip_bad=True)
        assert res.added == 2 and [s[0] for s in res.skipped] == ["broken.png", good[0].name]
        with pytest.raises(GalleryError, match="No usable image"):
            g.enroll(verifier, "y", [bad], skip_bad=True)
        with pytest.raises(ImageError):
            g.identify(verifier, bad)


def test_rename_remove_and_examples(tmp_path, verifier, shapes_dir):
    cls = classes(shapes_dir)
    with Gallery(tmp_path / "g.sqlite") as g:
        g.enroll(verifier, "Alice", images_of(shapes_dir, cls[0], 2), notes="first")
        g.enroll(verifier, "bob", images_of(shapes_dir, cls[1], 1))
        g.enroll(verifier, "alice", images_of(shapes_dir, cls[0])[2:3])  # same identity, any case
        assert g.identity("ALICE").examples == 3 and g.identity("alice").notes == "first"
        with pytest.raises(GalleryError, match="already exists"):
            g.rename("Alice", "Bob")
        g.rename("Alice", "Carol")
        assert g.names() == ["bob", "Carol"]
        with pytest.raises(GalleryError, match="No identity"):
            g.remove("Alice")
        exs = g.examples("Carol")
        assert len(exs) == 3 and all(e.stored == "copy" for e in exs)
        assert g.thumbnail(exs[0].id)[:2] == b"\xff\xd8"  # a JPEG thumbnail
        g.remove_example(exs[0].id)
        assert g.identity("Carol").examples == 2
        assert g.remove("Carol") == 2
        assert g.names() == ["bob"] and g.example_count() == 1
        assert g.fingerprints() == {model_fingerprint(verifier): 1}  # embeddings went with their examples
        with pytest.raises(GalleryError):
            g.rename("bob", "  ")


def test_import_folder_and_stored_copies(tmp_path, verifier, shapes_dir):
    import shutil

    root = tmp_path / "people"
    for c in classes(shapes_dir)[:3]:
        shutil.copytree(shapes_dir / c, root / c)
    (root / classes(shapes_dir)[0] / "zz_broken.png").write_bytes(b"\x89PNG broken")
    with Gallery(tmp_path / "g.sqlite") as g:
        res = g.import_folder(verifier, root)
        assert res.identities == 3 and res.added == 30 and len(res.skipped) == 1
        # the gallery survives the files being removed
        shutil.rmtree(root)
        probe = images_of(shapes_dir, classes(shapes_dir)[2])[4]
        assert g.identify(verifier, probe).best == classes(shapes_dir)[2]


def test_schema_version_and_foreign_files(tmp_path):
    newer = tmp_path / "newer.sqlite"
    with Gallery(newer):
        pass
    con = sqlite3.connect(str(newer))
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    before = newer.read_bytes()
    with pytest.raises(GalleryError, match="newer siamgui"):
        Gallery(newer)
    assert newer.read_bytes() == before
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(GalleryError, match="not a gallery"):
        Gallery(junk)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(str(other))
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(GalleryError, match="not a siamgui gallery"):
        Gallery(other)
    assert other.read_bytes() == before
    empty = tmp_path / "empty.sqlite"  # an empty SQLite file (version 0) is migrated
    sqlite3.connect(str(empty)).close()
    with Gallery(empty) as g:
        assert g.schema_version == SCHEMA_VERSION and len(g) == 0


# -- the command line -------------------------------------------------------------------------
def run_cli(*args, timeout=120):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "siamgui", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def cli(capsys, *args):
    """The CLI in-process (fast): (exit code, stdout, stderr)."""
    from siamgui.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_gallery_end_to_end(tmp_path, tiny_model, shapes_dir, capsys):
    import shutil

    cls = classes(shapes_dir)
    gal = tmp_path / "cli.sqlite"
    common = ["--gallery", gal, "--model", tiny_model]
    root = tmp_path / "people"
    for c in cls[:2]:
        shutil.copytree(shapes_dir / c, root / c)
    code, out, err = cli(capsys, "gallery", "import", root, *common, "--json")
    assert code == 0, err
    assert json.loads(out)["identities"] == 2
    code, out, err = cli(capsys, "gallery", "add", "Mystery", *images_of(shapes_dir, cls[2], 2), *common)
    assert code == 0, err
    assert "added 2" in out
    probe = images_of(shapes_dir, cls[2])[1]
    # as a user runs it: a real process, JSON on stdout
    p = run_cli("gallery", "identify", probe, *common, "--json", "--top", "2")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert set(res) == {"best", "distance", "threshold", "candidates"}
    assert res["best"] == "Mystery" and res["distance"] < 1e-3
    assert len(res["candidates"]) == 2 and set(res["candidates"][0]) == {"name", "distance"}
    code, out, err = cli(capsys, "gallery", "identify", probe, *common, "--json", "--threshold", "0")
    assert code == 0 and json.loads(out)["best"] is None
    code, out, err = cli(capsys, "gallery", "identify", probe, *common)
    assert code == 0 and out.startswith("best      Mystery") and "2. " in out
    code, out, err = cli(capsys, "gallery", "rename", "Mystery", "Known", "--gallery", gal)
    assert code == 0, err
    code, out, err = cli(capsys, "gallery", "list", "--gallery", gal, "--json")
    assert code == 0, err
    listed = {i["name"]: i["examples"] for i in json.loads(out)["identities"]}
    assert listed == {cls[0]: 10, cls[1]: 10, "Known": 2}
    code, out, err = cli(capsys, "gallery", "list", *common)
    assert code == 0 and "3 identities, 22 examples" in out
    code, out, err = cli(capsys, "gallery", "remove", "Known", "--gallery", gal)
    assert code == 0 and "removed" in out
    for args in (["gallery", "add", "X", tmp_path / "missing.png", *common],
                 ["gallery", "identify", probe, "--gallery", tmp_path / "empty.sqlite", "--model", tiny_model],
                 ["gallery", "identify", probe, *common, "--top", "0"]):
        code, out, err = cli(capsys, *args)
        assert code == 2, (args, out, err)
        assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "empty.sqlite").exists()  # reading commands never create a gallery
    # an unknown name, in a real process: exit 2 and one line
    p = run_cli("gallery", "remove", "Nobody", "--gallery", gal)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Nobody" in lines[0] and "Traceback" not in p.stderr, p.stderr


def test_face_model_crops_thumbnails_and_reports_the_face(tmp_path):
    """Face models: the stored image is the whole photo, the thumbnail and the ranking use the face."""
    import cv2
    import torch
    from _gui_helpers import draw_face, no_face
    from PIL import Image

    from siamgui.core.modelfile import make_meta, save_model
    from siamgui.core.models import SiameseNetwork, build_encoder
    from siamgui.core.preprocess import preset_spec
    from siamgui.core.verifier import Verifier

    torch.manual_seed(0)
    arch = {"name": "compact-cnn", "kwargs": {"in_channels": 3, "embedding_dim": 8, "width": 8}}
    meta = make_meta(architecture=arch, preprocess=preset_spec("face", 32), threshold=1.0, name="face")
    model = tmp_path / "face.safetensors"
    save_model(model, SiameseNetwork(build_encoder(arch["name"], **arch["kwargs"])), meta)
    v = Verifier(model, device="cpu")
    photo = np.full((300, 400, 3), 200, np.uint8)
    photo[50:250, 150:350] = draw_face(200)
    cv2.imwrite(str(tmp_path / "face.png"), photo)
    with Gallery(tmp_path / "g.sqlite") as g:
        res = g.enroll(v, "cartoon", [tmp_path / "face.png"])
        assert res.added == 1 and not res.notes  # a face was found
        ex = g.examples("cartoon")[0]
        assert (ex.width, ex.height) == (400, 300)  # the whole photo is kept (re-embedding re-detects)
        import io

        thumb = Image.open(io.BytesIO(g.thumbnail(ex.id)))
        assert thumb.size[0] == thumb.size[1]  # a square crop around the face, not the 4:3 photo
        r = g.identify(v, photo, bgr=True)
        assert r.face.mode == "face" and r.best == "cartoon"
        res = g.enroll(v, "nobody", [no_face(120)])
        assert res.notes and "No face" in res.notes[0]


def test_two_connections_see_each_others_writes(tmp_path, verifier, shapes_dir):
    cls = classes(shapes_dir)
    path = tmp_path / "g.sqlite"
    with Gallery(path) as a, Gallery(path) as b:
        a.enroll(verifier, cls[0], images_of(shapes_dir, cls[0], 2))
        fp = model_fingerprint(verifier)
        assert len(b.index(fp)) == 2  # cached in b
        a.enroll(verifier, cls[1], images_of(shapes_dir, cls[1], 3))  # another connection commits
        assert len(b.index(fp)) == 5 and b.index(fp).identities == 2

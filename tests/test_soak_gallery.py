"""Two processes, one gallery: processes enrolling and identifying on the same SQLite file at once
never corrupt it, never lose an enrolment, and a reader never sees half an enrolment (a short
run of ``bench/soak.py``'s gallery part; ``make soak`` runs it for minutes).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import soak  # noqa: E402
from siamgui.core.gallery import Gallery, GalleryError, GalleryStore  # noqa: E402
from siamgui.core.gallery import store as store_mod  # noqa: E402


@pytest.mark.skipif(sys.platform != "linux", reason="a fork server: Linux")
def test_two_processes_enrol_and_identify_on_one_gallery(tmp_path, tiny_model, shapes_dir):
    images = sorted(shapes_dir.rglob("*.png"))
    r = soak.shared_gallery(tmp_path / "g.sqlite", tiny_model, images, seconds=6.0, writers=2, readers=1)
    assert r["crashes"] == [] and r["refused"] == []
    assert r["enrolled"] > 2 and r["reads"] > 0 and r["identified"] > 0
    assert r["found"] == r["enrolled"] and r["lost"] == [] and r["extra"] == []
    assert r["half_seen"] == []
    assert r["integrity"] == "ok"


def _stored(seed: int):
    from PIL import Image

    im = Image.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8))
    return store_mod._store_image(im, im)


def test_reader_never_sees_half_an_enrolment(tmp_path, monkeypatch):
    """Another connection commits an enrolment between the two queries of a search snapshot:
    the snapshot holds the gallery as it was (the enrolment waits for it), never half of it."""
    path = tmp_path / "g.sqlite"
    with GalleryStore(path) as g:
        g.add_prepared("first", [_stored(0), _stored(1), _stored(2)], np.ones((3, 4)), "fp")
    reader, writer = GalleryStore(path), GalleryStore(path)
    real = GalleryStore._query
    wrote = threading.Event()

    def enrol():
        writer.add_prepared("second", [_stored(3), _stored(4), _stored(5)], np.ones((3, 4)), "fp")
        wrote.set()

    thread = threading.Thread(target=enrol)

    def query_then_enrol(self, sql, params=()):
        rows = real(self, sql, params)
        if self is reader and sql.startswith("SELECT id, name FROM identities") and not thread.is_alive():
            thread.start()  # the other window enrols now, between this query and the next
            wrote.wait(1.0)
        return rows

    monkeypatch.setattr(GalleryStore, "_query", query_then_enrol)
    try:
        index = reader.index("fp")
        assert index.names == ["first"] and len(index) == 3
        monkeypatch.setattr(GalleryStore, "_query", real)
        thread.join(30)
        assert wrote.is_set()  # the enrolment went through once the snapshot was done
        index = reader.index("fp")
        assert index.names == ["first", "second"] and len(index) == 6
        assert [i.examples for i in reader.identities("fp")] == [3, 3]
    finally:
        reader.close()
        writer.close()


def test_a_writer_waits_for_another_then_says_busy(tmp_path, monkeypatch):
    """While another process holds the write lock, a write waits (retrying) and succeeds when it
    is released; past the wait it fails with a clear "busy" message and changes nothing."""
    import sqlite3

    path = tmp_path / "g.sqlite"
    GalleryStore(path).close()
    holder = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_S", 0.5)
    with GalleryStore(path) as g:
        with pytest.raises(GalleryError, match="is busy: another siamgui window or command"):
            g.add_prepared("x", [_stored(0)])
        timer = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
        monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_S", 30.0)
    timer.start()
    try:
        with GalleryStore(path) as g:  # a new connection waits up to BUSY_TIMEOUT_S
            g.add_prepared("x", [_stored(0)])
            assert g.names() == ["x"]
    finally:
        timer.join()
        holder.close()


def test_enrolment_and_identification_go_on_while_another_process_reads(tmp_path, verifier_tiny, shapes_dir):
    """Identification (a read) in one connection and enrolment in another, interleaved in threads."""
    images = sorted(shapes_dir.rglob("*.png"))
    path = tmp_path / "g.sqlite"
    errors = []
    with Gallery(path) as a, Gallery(path) as b:
        a.enroll(verifier_tiny, "seed", images[:3])

        def reads():
            try:
                for i in range(30):
                    b.identify(verifier_tiny, images[i % len(images)])
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        t = threading.Thread(target=reads)
        t.start()
        for k in range(6):
            a.enroll(verifier_tiny, f"p{k}", images[3 + 3 * k:6 + 3 * k])
        t.join(60)
        assert errors == [] and len(b.names()) == 7 and b.integrity_ok()


@pytest.fixture(scope="module")
def verifier_tiny(tiny_model):
    from siamgui.core.verifier import Verifier

    return Verifier(tiny_model, device="cpu")

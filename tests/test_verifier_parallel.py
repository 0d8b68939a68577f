"""Verifier.compare can prepare the two images at the same time without changing anything else.

Same distances and chips as one after the other, the same errors (A's first), no
helper thread left behind, and safe for several callers at once.
"""

import threading

import numpy as np
import pytest
from PIL import Image

from siamgui.core.errors import ImageError
from siamgui.core.resources import has_bundled_model
from siamgui.core.verifier import Verifier

from conftest import LFW_ROOT, lfw_available

HELPER_PREFIX = "siamgui-compare-prepare"


def helpers_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(HELPER_PREFIX)]


@pytest.fixture(scope="module")
def face_verifier():
    if not has_bundled_model():
        pytest.skip("no bundled face model in this checkout")
    v = Verifier(device="cpu")
    v.parallel_prepare = True  # opt-in (see Verifier.parallel_prepare)
    return v


def face_images(tmp_path) -> list:
    """Two LFW photos of one person and one of another where available, else generated faces-ish images."""
    if lfw_available():
        paths = [LFW_ROOT / "George_W_Bush" / "George_W_Bush_0001.jpg",
                 LFW_ROOT / "George_W_Bush" / "George_W_Bush_0002.jpg"]
        others = sorted(p for p in LFW_ROOT.glob("Colin_Powell/*.jpg"))[:1]
        if all(p.is_file() for p in paths) and others:
            return paths + others
    rng = np.random.default_rng(0)
    out = []
    for k in range(3):
        arr = rng.integers(0, 255, (120, 100, 3), dtype=np.uint8)
        arr[30:90, 25:75] = (200 - 40 * k, 160, 140)
        path = tmp_path / f"img{k}.png"
        Image.fromarray(arr).save(path)
        out.append(path)
    return out


def test_parallel_compare_equals_sequential(face_verifier, tmp_path):
    v = face_verifier
    images = face_images(tmp_path)
    for a, b in ((images[0], images[1]), (images[0], images[2]), (images[2], images[2])):
        v.parallel_prepare = False
        try:
            seq = v.compare(a, b)
        finally:
            v.parallel_prepare = True
        par = v.compare(a, b)
        assert par.distance == seq.distance
        assert par.same == seq.same and par.notes == seq.notes
        for x, y in zip(par.inputs, seq.inputs):
            np.testing.assert_array_equal(x, y)
        assert [f.used_box for f in par.faces] == [f.used_box for f in seq.faces]
    assert v.compare(images[0], images[0]).distance == pytest.approx(0.0, abs=1e-5)
    assert v.compare(images[0], images[2]).distance > 0.05  # different images really differ
    assert helpers_alive() == []


def test_face_compare_prepares_b_on_another_thread(face_verifier, tmp_path, monkeypatch):
    v = face_verifier
    seen: dict[str, int] = {}
    original = Verifier.prepare

    def recording(self, image, **kw):
        seen[str(image)] = threading.get_ident()
        return original(self, image, **kw)

    monkeypatch.setattr(Verifier, "prepare", recording)
    a, b, _ = face_images(tmp_path)
    v.compare(a, b)
    assert seen[str(a)] == threading.get_ident()
    assert seen[str(b)] != threading.get_ident()
    seen.clear()
    v.parallel_prepare = False
    try:
        v.compare(a, b)
    finally:
        v.parallel_prepare = True
    assert seen[str(a)] == seen[str(b)] == threading.get_ident()


def test_errors_pass_through_unchanged(face_verifier, tmp_path):
    v = face_verifier
    good = face_images(tmp_path)[0]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    missing = tmp_path / "missing.png"
    with pytest.raises(ImageError) as direct_bad:
        v.prepare(bad)
    with pytest.raises(ImageError) as direct_missing:
        v.prepare(missing)
    assert str(direct_bad.value) != str(direct_missing.value)
    with pytest.raises(ImageError) as exc_b:
        v.compare(good, bad)
    assert type(exc_b.value) is type(direct_bad.value) and str(exc_b.value) == str(direct_bad.value)
    with pytest.raises(ImageError) as exc_a:
        v.compare(bad, good)
    assert str(exc_a.value) == str(direct_bad.value)
    with pytest.raises(ImageError) as both:  # both bad: A's error, as sequential code gives
        v.compare(missing, bad)
    assert str(both.value) == str(direct_missing.value)
    assert helpers_alive() == []


def test_concurrent_callers_get_their_own_results(face_verifier, tmp_path):
    v = face_verifier
    a, b, c = face_images(tmp_path)
    pairs = [(a, b), (a, c), (b, c), (c, a)]
    want = [v.compare(x, y).distance for x, y in pairs]
    got: dict[int, float] = {}
    errors: list[BaseException] = []

    def worker(k):
        try:
            got[k] = v.compare(*pairs[k]).distance
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert [got[k] for k in range(len(pairs))] == want
    assert helpers_alive() == []


def test_default_and_non_face_models_stay_on_the_callers_thread(tiny_model, shapes_dir, monkeypatch):
    assert Verifier.parallel_prepare is False  # measured not to pay on 2 cores: opt-in
    v = Verifier(tiny_model, device="cpu")
    v.parallel_prepare = True
    assert not v.face_mode
    idents = []
    original = Verifier.prepare
    monkeypatch.setattr(Verifier, "prepare", lambda self, im, **kw: (idents.append(threading.get_ident()),
                                                                    original(self, im, **kw))[1])
    files = sorted(shapes_dir.rglob("*.png"))[:2]
    v.compare(*files)
    assert idents == [threading.get_ident()] * 2


def test_memory_allocator_tuning(tmp_path):
    import platform
    import subprocess
    import sys

    from siamgui.core import verifier

    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        pytest.skip("mallopt is glibc's")
    assert verifier.tune_memory_allocator() is True
    code = "from siamgui.core import verifier; print(verifier.tune_memory_allocator())"
    env = dict(__import__("os").environ, SIAMGUI_MALLOC_TUNING="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=str(tmp_path), check=True)
    assert out.stdout.strip() == "False"

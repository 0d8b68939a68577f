"""One Verifier shared by several threads gives each caller its own, correct result."""

import threading

import numpy as np
import pytest
from PIL import Image

from siamgui.core.resources import has_bundled_model
from siamgui.core.verifier import Verifier

from conftest import LFW_ROOT, lfw_available


def face_images(tmp_path) -> list:
    """Two LFW photos of one person and one of another where available, else generated images."""
    if lfw_available():
        paths = [LFW_ROOT / "George_W_Bush" / "George_W_Bush_0001.jpg",
                 LFW_ROOT / "George_W_Bush" / "George_W_Bush_0002.jpg",
                 LFW_ROOT / "Colin_Powell" / "Colin_Powell_0001.jpg"]
        if all(p.is_file() for p in paths):
            return paths
    rng = np.random.default_rng(0)
    out = []
    for k in range(3):
        arr = rng.integers(0, 255, (120, 100, 3), dtype=np.uint8)
        arr[30:90, 25:75] = (200 - 40 * k, 160, 140)
        path = tmp_path / f"img{k}.png"
        Image.fromarray(arr).save(path)
        out.append(path)
    return out


def test_concurrent_callers_get_their_own_results(tmp_path):
    if not has_bundled_model():
        pytest.skip("no bundled face model in this checkout")
    v = Verifier(device="cpu", cache_size=0)  # every call embeds both images, so the threads overlap
    a, b, c = face_images(tmp_path)
    pairs = [(a, b), (a, c), (b, c), (c, a)]
    want = [v.compare(x, y).distance for x, y in pairs]
    assert len(set(want)) > 1  # the pairs differ, so a mix-up would show
    got: dict[int, float] = {}
    errors: list[BaseException] = []

    def worker(k):
        try:
            got[k] = v.compare(*pairs[k]).distance
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert [got[k] for k in range(len(pairs))] == pytest.approx(want, abs=1e-5)


def test_two_images_prepared_on_two_threads_give_what_one_thread_gives(tmp_path):
    if not has_bundled_model():
        pytest.skip("no bundled face model in this checkout")
    a, b, c = face_images(tmp_path)
    parallel = Verifier(device="cpu", cache_size=0)
    serial = Verifier(parallel.loaded, device="cpu", cache_size=0)
    serial._parallel_prepare = False
    assert parallel._parallel_prepare  # YuNet: prepared in parallel
    for x, y in ((a, b), (b, c), (c, a)):
        p, s = parallel.compare(x, y), serial.compare(x, y)
        assert p.distance == s.distance and p.same == s.same  # order kept: A stays A
        assert [f.landmarks for f in p.faces] == [f.landmarks for f in s.faces]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    from siamgui.core.errors import ImageError

    for v in (parallel, serial):  # a bad image raises the same error either way
        with pytest.raises(ImageError):
            v.compare(a, broken)

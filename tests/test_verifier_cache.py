"""``Verifier.compare`` keeps recent images' embeddings: a new image B against the same A
embeds only B, and a changed file, another face rule or another image is never served
from the cache."""

import os

import numpy as np
import pytest
from PIL import Image

from siamgui.core.verifier import EmbeddingCache, Verifier, image_key


def _photos(folder, n=4, size=48):
    rng = np.random.default_rng(7)
    paths = []
    for k in range(n):
        arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        p = folder / f"p{k}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


class Counting(Verifier):
    """Counts the images prepared and the images embedded."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.prepared = 0
        self.embedded = 0

    def prepare(self, image, **kw):
        self.prepared += 1
        return super().prepare(image, **kw)

    def embed_prepared(self, arrays, batch_size=64):
        self.embedded += len(arrays)
        return super().embed_prepared(arrays, batch_size)


def test_new_image_against_the_same_reference_embeds_only_the_new_one(tiny_model, tmp_path):
    a, b, c, d = _photos(tmp_path)
    plain = Verifier(tiny_model, device="cpu", cache_size=0)
    v = Counting(tiny_model, device="cpu")
    for other in (b, c, d):
        before = v.prepared
        got = v.compare(a, other).distance
        assert got == pytest.approx(plain.compare(a, other).distance, abs=1e-5)
        assert v.prepared - before == (2 if other == b else 1)
    assert v.embedded == 4
    # swapped and repeated pairs are all cached: nothing prepared or embedded
    before = (v.prepared, v.embedded)
    assert v.compare(d, a).distance == pytest.approx(plain.compare(d, a).distance, abs=1e-5)
    assert (v.prepared, v.embedded) == before


def test_cache_off_prepares_both_every_time(tiny_model, tmp_path):
    a, b = _photos(tmp_path, 2)
    v = Counting(tiny_model, device="cpu", cache_size=0)
    for _ in range(3):
        v.compare(a, b)
    assert v.prepared == 6 and len(v.cache) == 0


def test_a_rewritten_file_is_embedded_again(tiny_model, tmp_path):
    a, b, c = _photos(tmp_path, 3)
    v = Counting(tiny_model, device="cpu")
    first = v.compare(a, b).distance
    Image.open(c).save(b)  # other content under the same name
    st = os.stat(b)
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))  # a coarse clock could leave it equal
    before = v.prepared
    second = v.compare(a, b).distance
    assert v.prepared - before == 1
    assert second == pytest.approx(Verifier(tiny_model, device="cpu", cache_size=0).compare(a, c).distance, abs=1e-5)
    assert second != pytest.approx(first, abs=1e-4)


def test_in_memory_images_are_keyed_by_content(tiny_model, tmp_path):
    a, b = _photos(tmp_path, 2)
    img_a = Image.open(a).convert("RGB")
    arr_b = np.asarray(Image.open(b).convert("RGB")).copy()
    v = Counting(tiny_model, device="cpu")
    v.compare(img_a, arr_b)
    before = v.prepared
    v.compare(img_a.copy(), arr_b.copy())  # equal content, other objects: cached
    assert v.prepared == before
    arr_b[0, 0] ^= 255  # one pixel changed: embedded again
    v.compare(img_a, arr_b)
    assert v.prepared == before + 1
    # the colour order is part of the key: read as BGR, both are other images
    v.compare(img_a, arr_b, bgr=True)
    assert v.prepared == before + 3


def test_same_image_on_both_sides_is_prepared_once(tiny_model, tmp_path):
    (a,) = _photos(tmp_path, 1)
    v = Counting(tiny_model, device="cpu")
    r = v.compare(a, a)
    assert v.prepared == 1 and v.embedded == 1
    assert r.distance == pytest.approx(0.0, abs=1e-5) and r.same


def test_face_rule_is_part_of_the_key(tiny_model, tmp_path):
    a, b = _photos(tmp_path, 2)
    v = Counting(tiny_model, device="cpu")
    v.compare(a, b, face_policy="largest")
    v.compare(a, b, face_policy="centre")
    assert v.prepared == 4


def test_least_recently_used_is_dropped():
    cache = EmbeddingCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2


def test_unreadable_path_is_not_cached_and_still_reported(tiny_model, tmp_path):
    from siamgui.core.errors import SiamguiError

    (a,) = _photos(tmp_path, 1)
    assert image_key(tmp_path / "missing.png") is None
    v = Verifier(tiny_model, device="cpu")
    with pytest.raises(SiamguiError):
        v.compare(a, tmp_path / "missing.png")
    assert len(v.cache) == 0  # nothing stored from a failed comparison

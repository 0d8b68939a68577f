"""Bad and unusual images: valid ones give a result, invalid ones a clear ImageError.

Every case goes through :func:`siamgui.core.images.load_image` (the one door for
images) and through ``siamgui compare`` (in-process ``cli.main``; a few real
subprocesses at the end): exit 0 and a distance, or exit 2 with one stderr line.
"""

from __future__ import annotations

import io
import json
import os
import resource
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from _faults_helpers import assert_one_line_error, png_claiming, run_cli, run_main
from siamgui.core.errors import ImageError
from siamgui.core.images import load_image

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(w=48, h=48, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _upright() -> Image.Image:
    """20 wide x 40 high: blue top half, red bottom half."""
    im = Image.new("RGB", (20, 40), RED)
    im.paste(BLUE, (0, 0, 20, 20))
    return im


def _exif_rotated(fmt="PNG") -> bytes:
    """The upright picture stored sideways, with EXIF orientation 6 ("rotate 90 CW to view")."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encoded(_upright().transpose(Image.Transpose.ROTATE_90), fmt, exif=exif)


# -- valid cases: (file name, bytes builder, check of the loaded RGB image) ------------------
def _px(x, y, want, tol=40):
    def check(im):
        got = im.getpixel((x, y))
        assert all(abs(g - w) <= tol for g, w in zip(got, want)), (got, want)
    return check


def _check_16bit(im):
    a = np.asarray(im)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()  # grey
    assert a.min() <= 5 and a.max() >= 230  # the 16-bit range was scaled, not clipped or zeroed


def _check_exif(im):
    assert im.size == (20, 40)  # upright: portrait, as the photo is meant to be viewed
    _px(10, 5, BLUE)(im)
    _px(10, 35, RED)(im)


def _palette_transparent() -> Image.Image:
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    im.paste(0, (0, 0, 2, 4))
    im.info["transparency"] = 0
    return im


def _two_tone(mode, left, right):
    im = Image.new(mode, (4, 4), right)
    im.paste(left, (0, 0, 2, 4))
    return im


def _gif() -> bytes:
    frames = [Image.new("RGB", (8, 8), c).convert("P") for c in (RED, GREEN, BLUE)]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _png16() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    return _encoded(Image.fromarray(ramp), "PNG")


LONG_255 = "é" * 125 + "x.png"  # 255 bytes in UTF-8: the longest name most file systems allow
assert len(LONG_255.encode()) == 255

VALID = {
    "one-pixel": ("one.png", lambda: _encoded(Image.new("RGB", (1, 1), GREEN), "PNG"), _px(0, 0, GREEN, 0)),
    "grey": ("grey.png", lambda: _encoded(Image.new("L", (8, 8), 77), "PNG"), _px(3, 3, (77, 77, 77), 0)),
    "16-bit-png": ("deep.png", _png16, _check_16bit),
    "cmyk-jpeg": ("cmyk.jpg", lambda: _encoded(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"),
                  _px(8, 8, RED)),
    "palette": ("pal.png", lambda: _encoded(Image.new("RGB", (8, 8), BLUE).quantize(4), "PNG"), _px(2, 2, BLUE, 8)),
    "palette-transparent": ("palt.png", lambda: _encoded(_palette_transparent(), "PNG"),
                            lambda im: (_px(0, 0, WHITE, 0)(im), _px(3, 0, (200, 30, 30), 0)(im))),
    "grey-alpha-LA": ("la.png", lambda: _encoded(_two_tone("LA", (10, 255), (10, 0)), "PNG"),
                      lambda im: (_px(0, 0, (10, 10, 10), 0)(im), _px(3, 0, WHITE, 0)(im))),
    "rgba-transparent": ("rgba.png", lambda: _encoded(_two_tone("RGBA", (0, 0, 255, 255), (0, 0, 255, 0)), "PNG"),
                         lambda im: (_px(0, 0, BLUE, 0)(im), _px(3, 0, WHITE, 0)(im))),
    "animated-gif": ("anim.gif", _gif, _px(4, 4, RED, 10)),
    "exif-rotated-jpeg": ("rot.jpg", lambda: _exif_rotated("JPEG"), _check_exif),
    "exif-rotated-png": ("rot.png", lambda: _exif_rotated("PNG"), _check_exif),
    "non-ascii-name": ("Zoë Ünïcødé 画像 ✓.png", lambda: _encoded(Image.new("RGB", (8, 8), BLUE), "PNG"),
                       _px(1, 1, BLUE, 0)),
    "255-byte-name": (LONG_255, lambda: _encoded(Image.new("RGB", (8, 8), RED), "PNG"), _px(1, 1, RED, 0)),
    "png-named-jpg": ("really-png.jpg", lambda: _encoded(Image.new("RGB", (8, 8), GREEN), "PNG"),
                      _px(1, 1, GREEN, 0)),
    "bmp-webp-tiff": ("t.tif", lambda: _encoded(Image.new("RGB", (8, 8), GREEN), "TIFF"), _px(1, 1, GREEN, 0)),
}

# -- invalid cases: (file name, builder or None (see test), text the message must contain) -----
INVALID = {
    "zero-byte": ("empty.jpg", lambda: b"", "empty"),
    "text-named-jpg": ("notes.jpg", lambda: b"Dear diary, this is not a picture.\n" * 20, "not an image"),
    "truncated-jpeg": ("cut.jpg", lambda: _encoded(_noise(), "JPEG")[:700], "truncated"),
    "truncated-png": ("cut.png", lambda: _encoded(_noise(), "PNG")[:3000], "truncated"),
    "decompression-bomb": ("bomb.png", lambda: png_claiming(30000, 30000), "too large"),
    "unsupported-format-ico": ("icon.png", lambda: _encoded(Image.new("RGB", (16, 16)), "ICO"), "not supported"),
    "directory": ("folder.png", None, "folder"),
    "missing-path": ("gone.png", None, "no such file"),
    "name-too-long": ("a" * 300 + ".png", None, "too long"),
    "empty-path": ("", None, "no image file"),
    "file-over-256-mb": ("huge.png", None, "too large"),
}


def _make(tmp_path, name, builder):
    path = tmp_path / name
    if builder is not None:
        path.write_bytes(builder())
    return path


@pytest.mark.parametrize("case", list(VALID))
def test_valid_image(case, tmp_path, tiny_model, capsys):
    """Loads as upright 8-bit RGB with the right pixels, and `siamgui compare` gives a distance."""
    name, builder, check = VALID[case]
    path = _make(tmp_path, name, builder)
    im = load_image(path)
    assert im.mode == "RGB"
    check(im)
    code, out, err = run_main(capsys, "compare", path, path, "--model", tiny_model, "--json")
    assert code == 0, err
    assert json.loads(out)["distance"] == pytest.approx(0.0, abs=1e-5)  # the same image, read the same way


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_image(case, tmp_path, tiny_model, capsys):
    """ImageError with a one-line message; `siamgui compare` exits 2 with one stderr line."""
    name, builder, expect = INVALID[case]
    if case == "directory":
        path = tmp_path / name
        path.mkdir()
    elif case == "empty-path":
        path = ""
    elif case == "file-over-256-mb":  # a sparse file: refused by its size before it is read
        path = _make(tmp_path, name, lambda: _encoded(_noise(), "PNG"))
        os.truncate(path, 300 * 1024 * 1024)
    else:
        path = _make(tmp_path, name, builder)
    with pytest.raises(ImageError) as info:
        load_image(path)
    msg = str(info.value)
    assert "\n" not in msg and expect in msg.lower(), msg
    good = _make(tmp_path, "good.png", lambda: _encoded(_noise(), "PNG"))
    for a, b in ((path, good), (good, path)):  # either slot
        code, out, err = run_main(capsys, "compare", a, b, "--model", tiny_model)
        assert out == ""
        assert_one_line_error(code, err, expect)


def test_decompression_bomb_is_not_allocated(tmp_path, monkeypatch):
    """A 69-byte PNG claiming 30000x30000 (2.7 GB decoded) is refused from its header alone."""
    from PIL import ImageFile

    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or real_load(self))
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(30000, 30000))
    assert path.stat().st_size < 200
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageError, match="too large"):
            load_image(source)
    assert time.perf_counter() - t0 < 1.0
    assert decoded == []  # no pixel data was ever decoded
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 200 * 1024


def test_exif_rotated_photo_is_compared_upright(tmp_path, tiny_model):
    """The model sees the upright picture: same input as the upright file, unlike the raw sideways one."""
    from siamgui.core.verifier import Verifier

    v = Verifier(str(tiny_model), device="cpu")
    upright, rotated, sideways = tmp_path / "up.png", tmp_path / "exif.png", tmp_path / "side.png"
    _upright().save(upright)
    rotated.write_bytes(_exif_rotated("PNG"))
    _upright().transpose(Image.Transpose.ROTATE_90).save(sideways)
    a, b, c = (v.prepare(p)[0] for p in (upright, rotated, sideways))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert v.compare(upright, rotated).distance == pytest.approx(0.0, abs=1e-6)
    assert v.compare(upright, sideways).distance > 1e-4


@pytest.mark.parametrize("preset", ["face", "signature", "generic"])
def test_valid_images_through_each_preset(preset, tmp_path):
    """Every valid case survives each preset's preprocessing (face detection, ink crop, ...)."""
    from siamgui.core.preprocess import Preprocessor, preset_spec

    pre = Preprocessor(preset_spec(preset, 32))
    for case, (name, builder, _) in VALID.items():
        (tmp_path / case).mkdir()
        arr, _ = pre.prepare(_make(tmp_path / case, name, builder))
        assert arr.shape == (32, 32, pre.spec.channels) and arr.dtype == np.uint8, case


@pytest.mark.parametrize("source", [
    np.zeros((0, 5, 3), np.uint8), np.zeros((4, 4, 2), np.uint8), np.zeros((2, 2, 2, 2), np.uint8),
    12, None, object(), "",
], ids=["empty-array", "two-channel-array", "4d-array", "int", "none", "object", "empty-string"])
def test_other_bad_sources(source):
    """Arrays of the wrong shape and things that are not images at all: ImageError, never a crash."""
    with pytest.raises(ImageError):
        load_image(source)


def test_cli_subprocess_good_and_bad_images(tmp_path, tiny_model):
    """A real process: a valid image with a 255-byte non-ASCII name, then a text file named .jpg."""
    good = _make(tmp_path, LONG_255, lambda: _encoded(_noise(), "PNG"))
    other = _make(tmp_path, "Zoë.jpg", lambda: _encoded(_noise(seed=1), "JPEG"))
    proc = run_cli("compare", good, other, "--model", tiny_model, "--json", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["distance"] > 0
    bad = _make(tmp_path, "notes.jpg", lambda: b"not a picture\n")
    proc = run_cli("compare", good, bad, "--model", tiny_model, "--device", "cpu")
    assert proc.stdout == ""
    assert_one_line_error(proc.returncode, proc.stderr, "not an image")


# -- property tests: the loader returns an RGB image or raises ImageError, nothing else ----------
def _check_loader(data: bytes) -> None:
    try:
        im = load_image(data)
    except ImageError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(im, Image.Image) and im.mode == "RGB" and im.size[0] * im.size[1] > 0
    im.getpixel((0, 0))


_BASES = [_encoded(_noise(24, 16), "PNG"), _encoded(_noise(24, 16), "JPEG", quality=80),
          _encoded(Image.new("LA", (12, 9), (90, 128)), "PNG"), _png16()]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(st.binary(min_size=0, max_size=3000))
def test_property_random_bytes(data):
    _check_loader(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(base=st.sampled_from(range(len(_BASES))),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_property_mutated_png_jpeg(base, edits, cut):
    """Valid PNG/JPEG bytes with a few bytes changed and perhaps truncated."""
    data = bytearray(_BASES[base])
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    _check_loader(bytes(data))


def test_every_case_through_the_bundled_face_model(tmp_path, capsys):
    """The app's default model (face detection, landmarks, dlib chips): valid images compare, bad ones exit 2."""
    from siamgui.core.resources import has_bundled_model

    if not has_bundled_model():
        pytest.skip("no bundled face model in this checkout")
    for case, (name, builder, _) in VALID.items():
        (tmp_path / case).mkdir()
        path = _make(tmp_path / case, name, builder)
        code, out, err = run_main(capsys, "compare", path, path, "--json", "--device", "cpu")
        if code == 2:  # no face in it: no verdict, one line naming the image (docs/failures.md)
            assert_one_line_error(code, err, "no face found")
            assert "--face whole" in err and out == "", case
            continue
        assert code == 0, (case, err)
        assert json.loads(out)["distance"] == pytest.approx(0.0, abs=1e-4), case
        assert all(line.startswith("siamgui: note: ") for line in err.splitlines()), err
    good = _make(tmp_path, "good.png", lambda: _encoded(_noise(), "PNG"))
    for case, (name, builder, expect) in INVALID.items():
        if builder is None:
            continue
        (tmp_path / case).mkdir()
        path = _make(tmp_path / case, name, builder)
        code, out, err = run_main(capsys, "compare", good, path, "--device", "cpu")
        assert_one_line_error(code, err, expect)


def test_postscript_named_jpg_never_runs_ghostscript(tmp_path, monkeypatch):
    """Pillow opens EPS by running Ghostscript; the loader never lets it (EPS is not an allowed format)."""
    import subprocess

    from siamgui.core.datasets import scan_folder

    calls = []
    real_popen = subprocess.Popen

    def recording_popen(*a, **k):
        calls.append(a)
        return real_popen(*a, **k)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    eps = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\n"
           b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n")
    from PIL import Image as PILImage

    PILImage.init()
    assert "EPS" in PILImage.OPEN  # Pillow itself would try it...
    for name in ("photo.jpg", "photo.eps"):
        (tmp_path / "c" / "x").mkdir(parents=True, exist_ok=True)
        path = tmp_path / "c" / "x" / name
        path.write_bytes(eps)
        with pytest.raises(ImageError, match="not an image file or its format is not supported"):
            load_image(path)
    assert [p for p, _ in scan_folder(tmp_path).skipped] == [str(tmp_path / "c" / "x" / "photo.jpg")]
    assert calls == []  # ... but nothing was started


def test_bad_images_in_the_gallery(tmp_path, tiny_model, capsys):
    """`siamgui gallery add/identify`: every refused case exits 2 with its reason; --skip-bad skips and says so."""
    good = _make(tmp_path, "good.png", lambda: _encoded(_noise(), "PNG"))
    code, _, err = run_main(capsys, "gallery", "add", "alice", good, "--model", tiny_model)
    assert code == 0, err
    for case in ("text-named-jpg", "truncated-jpeg", "decompression-bomb", "zero-byte"):
        name, builder, expect = INVALID[case]
        (tmp_path / case).mkdir()
        bad = _make(tmp_path / case, name, builder)
        code, out, err = run_main(capsys, "gallery", "add", "bob", good, bad, "--model", tiny_model)
        assert_one_line_error(code, err, expect)
        code, out, err = run_main(capsys, "gallery", "identify", bad, "--model", tiny_model)
        assert_one_line_error(code, err, expect)
    code, out, _ = run_main(capsys, "gallery", "list")
    assert code == 0 and "alice" in out and "bob" not in out  # the refused adds left nothing half-done
    code, out, err = run_main(capsys, "gallery", "add", "bob", good, tmp_path / "text-named-jpg" / "notes.jpg",
                              "--model", tiny_model, "--skip-bad")
    assert code == 0 and "added 1 example" in out
    assert err.strip().startswith("siamgui: note: skipped notes.jpg")
    code, out, _ = run_main(capsys, "gallery", "list")
    assert code == 0 and "bob" in out


def test_file_names_that_are_not_utf8(tmp_path, tiny_model, capsys):
    """POSIX names may be any bytes: images and class folders with such names work; a model file with one is
    refused with a message (safetensors opens UTF-8 paths only); printing such a name never fails."""
    import sys

    from siamgui.core.synthetic import make_shapes_dataset

    if sys.platform == "win32":
        pytest.skip("Windows names are Unicode")
    img = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9-\xff.png")
    with open(img, "wb") as fh:
        fh.write(_encoded(_noise(), "PNG"))
    code, out, err = run_main(capsys, "compare", img, img, "--model", tiny_model, "--json")
    assert code == 0, err
    odd_model = os.fsdecode(os.fsencode(str(tmp_path)) + b"/m\xff.safetensors")
    with open(odd_model, "wb") as fh:
        fh.write(tiny_model.read_bytes())
    code, _, err = run_main(capsys, "compare", img, img, "--model", odd_model)
    assert_one_line_error(code, err)
    # a real process with a strict stdout (as on an en_US.UTF-8 desktop) printing such a name after training
    data = make_shapes_dataset(tmp_path / "data", n_classes=4, per_class=4, size=24, seed=0)
    os.rename(data / "circle", os.fsdecode(os.fsencode(str(data)) + b"/\xe9circle"))
    out_path = os.fsdecode(os.fsencode(str(tmp_path)) + b"/model-\xff.safetensors")
    proc = run_cli("train", data, "--out", out_path, "--arch", "compact-cnn", "--image-size", "16", "--epochs", "1",
                   "--pairs-per-epoch", "32", "--batch-size", "16", "--val-split", "0", "--device", "cpu",
                   env={"PYTHONIOENCODING": "utf-8:strict"})
    assert proc.returncode == 0, proc.stderr
    assert os.path.isfile(out_path) and "Traceback" not in proc.stderr

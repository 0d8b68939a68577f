"""Bad dataset folders: a clear DatasetError before training, or a counted skip; never a crash or a hang."""

from __future__ import annotations

import builtins
import os

import pytest
from PIL import Image

from _faults_helpers import assert_one_line_error, png_claiming, run_main
from siamgui.core.datasets import scan_folder
from siamgui.core.errors import DatasetError
from siamgui.core.synthetic import make_shapes_dataset
from siamgui.core.training import Finished, Log, Step, TrainConfig, train

pytestmark = pytest.mark.timeout(60)


def _img(path, colour=(200, 30, 30), size=16):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def _tiny_cfg(root, **kw) -> TrainConfig:
    base = dict(preset="generic", arch="compact-cnn", arch_kwargs={"width": 4}, image_size=16, embedding_dim=8,
                epochs=1, pairs_per_epoch=32, batch_size=16, val_split=0.0, seed=0, device="cpu", val_pairs=64,
                workers=1)
    base.update(kw)
    return TrainConfig(str(root), **base)


def _train_events(root, **kw) -> list:
    return list(train(_tiny_cfg(root, **kw)))


def _refused_before_training(root, expect: str, capsys) -> str:
    """train() raises DatasetError before any step, and `siamgui train` exits 2 with that one line."""
    seen = []
    with pytest.raises(DatasetError) as info:
        for ev in train(_tiny_cfg(root)):
            seen.append(ev)
    assert not any(isinstance(ev, (Step, Finished)) for ev in seen)
    msg = str(info.value)
    assert "\n" not in msg and expect in msg.lower(), msg
    out = root.parent / f"{root.name}-model.safetensors"
    code, _, err = run_main(capsys, "train", root, "--out", out, "--device", "cpu", "--epochs", "1")
    assert_one_line_error(code, err, expect)
    assert not out.exists()
    return msg


def test_empty_folder(tmp_path, capsys):
    root = tmp_path / "empty"
    root.mkdir()
    _refused_before_training(root, "no readable images", capsys)


def test_one_class(tmp_path, capsys):
    root = tmp_path / "one"
    for i in range(5):
        _img(root / "only" / f"{i}.png", (40 * i, 0, 0))
    _refused_before_training(root, "two classes", capsys)


def test_every_class_has_one_image(tmp_path, capsys):
    root = tmp_path / "singles"
    for c in range(6):
        _img(root / f"c{c}" / "a.png", (40 * c, 0, 0))
    _refused_before_training(root, "two or more images", capsys)


def test_some_single_image_classes_are_used_as_negatives(tmp_path):
    root = make_shapes_dataset(tmp_path / "d", n_classes=4, per_class=4, size=24, seed=0)
    for c in ("lonely1", "lonely2"):
        _img(root / c / "x.png")
    s = scan_folder(root).summary()
    assert s.trainable and sorted(s.single_image_classes) == ["lonely1", "lonely2"] and s.classes == 6
    assert isinstance(_train_events(root)[-1], Finished)


def _unreadable(monkeypatch, marker: str):
    """Simulate files without read permission (root ignores chmod 000): opening them raises EACCES."""
    real_open = builtins.open

    def guarded(file, *a, **k):
        if isinstance(file, (str, os.PathLike)) and marker in os.fspath(file):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", guarded)


def test_only_unreadable_files(tmp_path, monkeypatch, capsys):
    root = tmp_path / "locked"
    for c in ("a", "b", "c"):
        for i in range(3):
            _img(root / c / f"{i}.png")
    if os.geteuid() != 0:
        for p in root.rglob("*.png"):
            p.chmod(0)
    _unreadable(monkeypatch, str(root))
    ds = scan_folder(root)
    assert len(ds) == 0 and len(ds.skipped) == 9
    msg = _refused_before_training(root, "no readable images", capsys)
    assert "9" in msg  # the message says how many files were skipped


def test_nested_subfolders_belong_to_their_class(tmp_path):
    root = tmp_path / "nested"
    deep = root / "alice" / "2019" / "summer" / "beach" / "day1"
    _img(deep / "a.png")
    _img(root / "alice" / "b.png")
    _img(root / "bob" / "x" / "c.png")
    _img(root / "bob" / "d.png")
    ds = scan_folder(root)
    assert ds.classes == ["alice", "bob"] and ds.class_counts().tolist() == [2, 2]


def test_hidden_files_and_thumbnails_are_ignored(tmp_path):
    root = tmp_path / "junk"
    for c in ("a", "b"):
        _img(root / c / "1.png")
        _img(root / c / "2.png")
        (root / c / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 100)
        (root / c / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
        (root / c / "._1.png").write_bytes(b"\0\5\x16\7AppleDouble")  # macOS resource fork
        _img(root / c / ".thumbnails" / "1.png")  # a hidden thumbnail folder with real images
        (root / c / "desktop.ini").write_text("[.ShellClassInfo]")
    _img(root / ".Trash" / "old.png")  # a hidden folder at the top is not a class
    (root / ".DS_Store").write_bytes(b"\0")
    ds = scan_folder(root)
    assert ds.classes == ["a", "b"] and len(ds) == 4 and ds.skipped == []


def test_symlink_loops_do_not_hang(tmp_path):
    root = tmp_path / "loops"
    for c in ("a", "b"):
        _img(root / c / "1.png")
        _img(root / c / "2.png")
    os.symlink("..", root / "a" / "up")  # a folder loop inside a class
    os.symlink(root, root / "b" / "root")  # back to the top
    os.symlink(root / "a", root / "a_again")  # a class folder linked at the top
    os.symlink("self.png", root / "a" / "self.png")  # a link to itself (ELOOP)
    os.symlink("nowhere.png", root / "b" / "dangling.png")
    ds = scan_folder(root)
    assert ds.classes == ["a", "b"] and len(ds) == 4
    assert sorted(os.path.basename(p) for p, _ in ds.skipped) == ["dangling.png", "self.png"]


def test_named_pipe_does_not_hang(tmp_path):
    root = tmp_path / "fifo"
    for c in ("a", "b"):
        _img(root / c / "1.png")
        _img(root / c / "2.png")
    os.mkfifo(root / "a" / "pipe.jpg")  # opening it for reading would block forever
    ds = scan_folder(root)
    assert len(ds) == 4 and [os.path.basename(p) for p, _ in ds.skipped] == ["pipe.jpg"]


def test_decompression_bomb_in_dataset_is_skipped(tmp_path):
    root = tmp_path / "bomb"
    for c in ("a", "b"):
        _img(root / c / "1.png")
        _img(root / c / "2.png")
    (root / "a" / "bomb.png").write_bytes(png_claiming(30000, 30000))
    ds = scan_folder(root)
    assert len(ds) == 4 and ds.skipped[0][1].startswith("too large")


@pytest.mark.parametrize("case", ["missing", "a-file"])
def test_data_dir_not_a_folder(case, tmp_path, capsys):
    path = tmp_path / "x"
    if case == "a-file":
        path = _img(tmp_path / "x.png")
    with pytest.raises(DatasetError):
        scan_folder(path)
    code, _, err = run_main(capsys, "train", path, "--out", tmp_path / "m.safetensors")
    assert_one_line_error(code, err)
    code, _, err = run_main(capsys, "evaluate", path, "--model", tmp_path / "m.safetensors")
    assert_one_line_error(code, err)


def _truncate_bodies(paths):
    """Keep each file's header (the scan's quick check passes) but cut its pixel data."""
    for p in paths:
        data = p.read_bytes()
        p.write_bytes(data[: max(60, len(data) // 3)])


def test_images_failing_mid_training_are_counted_and_skipped(tmp_path):
    root = make_shapes_dataset(tmp_path / "d", n_classes=4, per_class=5, size=32, seed=0)
    broken = [root / c / sorted(os.listdir(root / c))[0] for c in sorted(os.listdir(root))[:2]]
    _truncate_bodies(broken)
    assert scan_folder(root).skipped == []  # the headers look fine: the failure comes while decoding
    events = _train_events(root)
    warnings = [ev.message for ev in events if isinstance(ev, Log) and ev.level == "warning"]
    assert any("2 image(s) failed to decode and are skipped" in w for w in warnings), warnings
    done = events[-1]
    assert isinstance(done, Finished) and done.result is not None
    assert done.result.meta["training"]["data"]["decode_failures"] == 2


def test_too_many_images_failing_mid_training_is_a_clear_error(tmp_path, capsys):
    root = make_shapes_dataset(tmp_path / "d", n_classes=3, per_class=3, size=32, seed=0)
    classes = sorted(os.listdir(root))
    _truncate_bodies([root / c / f for c in classes[1:] for f in sorted(os.listdir(root / c))[1:]])
    seen = []
    with pytest.raises(DatasetError, match="failed to decode") as info:
        for ev in train(_tiny_cfg(root)):
            seen.append(ev)
    assert not any(isinstance(ev, Step) for ev in seen) and "\n" not in str(info.value)


@pytest.mark.parametrize("option", [("--image-size", "5000"), ("--embedding-dim", "1000000000"),
                                    ("--batch-size", "1000000000")],
                         ids=["image-size-5000", "embedding-dim-1e9", "batch-size-1e9"])
def test_training_options_out_of_range(option, tmp_path, shapes_dir, capsys):
    """Refused at once with the limit, not an internal error or a 4 TB allocation."""
    out = tmp_path / "m.safetensors"
    code, _, err = run_main(capsys, "train", shapes_dir, "--out", out, "--epochs", "1", *option)
    assert_one_line_error(code, err, "must be at most")
    assert not out.exists()


def test_architecture_too_large_to_build(shapes_dir):
    from siamgui.core.errors import SiamguiError

    with pytest.raises(SiamguiError, match="Cannot build architecture 'compact-cnn'") as info:
        list(train(_tiny_cfg(shapes_dir, arch_kwargs={"width": 1_000_000})))
    assert "\n" not in str(info.value)


PAIRS = {
    "excel-bom": (b"\xef\xbb\xbfa,b,same\nA0,A1,1\nA0,B0,0\n", None),
    "no-header": (b"A0,A1,1\n", "header"),
    "missing-column": (b"a,b,same\nA0\n", "'same' must be 0 or 1"),
    "same-not-0-or-1": (b"a,b,same\nA0,A1,yes\n", "'same' must be 0 or 1"),
    "not-utf8": (b"a,b,same\n\xff\xfe\xfa,A1,1\n", "not a UTF-8 text file"),
    "no-pairs": (b"a,b,same\n", "holds no pairs"),
    "missing-image": (b"a,b,same\nA0,gone.png,1\n", "no such file"),
}


@pytest.mark.parametrize("case", list(PAIRS))
def test_pairs_csv(case, tmp_path, tiny_model, capsys):
    """`evaluate --pairs`: a UTF-8 file with a BOM (as Excel saves) works; broken files exit 2 with one line."""
    data = make_shapes_dataset(tmp_path / "imgs", n_classes=2, per_class=2, size=24, seed=0)
    a, b = (sorted((data / c).iterdir()) for c in sorted(os.listdir(data)))
    text, expect = PAIRS[case]
    for key, path in (("A0", a[0]), ("A1", a[1]), ("B0", b[0])):
        text = text.replace(key.encode(), str(path).encode())
    csv = tmp_path / "pairs.csv"
    csv.write_bytes(text)
    code, out, err = run_main(capsys, "evaluate", "--pairs", csv, "--model", tiny_model, "--json")
    if expect is None:
        assert code == 0, err
        assert '"pairs": 2' in out
    else:
        assert_one_line_error(code, err, expect)


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage\xff", b"2\nGeorge 1 2\n", b"1 1\nA 1 x\nB 1 C 1\n",
                                     b"1 0\n", b"1 -3\n"],
                         ids=["empty", "binary", "too-short", "not-a-number", "zero-pairs", "negative-count"])
def test_lfw_pairs_file_malformed(content, tmp_path, tiny_model, capsys):
    pairs = tmp_path / "pairs.txt"
    pairs.write_bytes(content)
    code, _, err = run_main(capsys, "evaluate", "--lfw-pairs", pairs, "--root", tmp_path, "--model", tiny_model)
    assert_one_line_error(code, err)


def test_evaluate_folder_with_an_image_failing_to_decode(tmp_path, tiny_model, capsys):
    """Evaluation does not drop pairs silently (that would change its figures): it stops and names the file."""
    root = make_shapes_dataset(tmp_path / "d", n_classes=3, per_class=3, size=32, seed=0)
    broken = root / sorted(os.listdir(root))[0] / sorted(os.listdir(root / sorted(os.listdir(root))[0]))[0]
    _truncate_bodies([broken])
    code, _, err = run_main(capsys, "evaluate", root, "--model", tiny_model, "--num-pairs", "200")
    assert_one_line_error(code, err, "damaged or truncated")
    assert broken.name in err


def test_evaluate_num_pairs_absurd(tmp_path, shapes_dir, tiny_model, capsys):
    """--num-pairs 10^9 would sample for hours: refused at once."""
    import time

    t0 = time.perf_counter()
    code, _, err = run_main(capsys, "evaluate", shapes_dir, "--model", tiny_model, "--num-pairs", "1000000000")
    assert_one_line_error(code, err, "at most")
    assert time.perf_counter() - t0 < 5

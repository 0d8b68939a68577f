"""Batch verification: ``compare --pairs ... --out`` and ``gallery identify ... --out`` (in this process)."""

import csv
import shutil
from pathlib import Path

import pytest

from siamgui.core import batch as batch_mod
from siamgui.core.batch import IDENTIFY_COLUMNS, PAIR_COLUMNS
from tests._faults_helpers import assert_one_line_error, run_main


@pytest.fixture
def photos(tmp_path, shapes_dir):
    """Six good images in ``tmp_path/imgs`` (two classes) and a text file named ``.jpg``."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    classes = sorted(p for p in Path(shapes_dir).iterdir() if p.is_dir())[:2]
    names = []
    for c in classes:
        for f in sorted(c.iterdir())[:3]:
            shutil.copy(f, imgs / f"{c.name}_{f.name}")
            names.append(f"imgs/{c.name}_{f.name}")
    (imgs / "notes.jpg").write_text("not a picture\n")
    return names, "imgs/notes.jpg"


def _pairs(names, bad):
    """Ten pairs in a fixed order, images repeated, the unreadable one in the middle."""
    n = names
    return [(n[0], n[1]), (n[0], n[3]), (n[2], n[1]), (n[4], n[5]), (n[1], bad),
            (n[3], n[0]), (n[5], n[2]), (n[0], n[1]), (n[4], n[3]), (n[2], n[5])]


def _write_pairs(path, pairs, header=True):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        if header:
            w.writerow(["a", "b"])
        w.writerows(pairs)
    return path


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _compare(capsys, tiny_model, *args):
    return run_main(capsys, "compare", *args, "--model", tiny_model, "--precision", "float32", "--device", "cpu")


class _Count:
    """Counts what ``siamgui.core.batch`` reads and what the model embeds."""

    def __init__(self, monkeypatch):
        from siamgui.core.verifier import Verifier

        self.loads: list[str] = []
        self.embedded = 0
        load, embed = batch_mod.load_image, Verifier.embed_prepared

        def counting_load(src, *a, **k):
            self.loads.append(Path(src).name)
            return load(src, *a, **k)

        def counting_embed(verifier, arrays, *a, **k):
            self.embedded += len(arrays)
            return embed(verifier, arrays, *a, **k)

        monkeypatch.setattr(batch_mod, "load_image", counting_load)
        monkeypatch.setattr(Verifier, "embed_prepared", counting_embed)


def test_pairs_round_trip_with_a_bad_image(tmp_path, photos, tiny_model, capsys):
    import json

    from siamgui.core.verifier import Verifier

    names, bad = photos
    pairs = _pairs(names, bad)
    code, out, err = _compare(capsys, tiny_model, "--pairs", _write_pairs(tmp_path / "pairs.csv", pairs),
                              "--out", tmp_path / "results.csv", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["written"] == 10 and summary["errors"] == 1 and summary["resumed"] == 0
    rows = _rows(tmp_path / "results.csv")
    assert tuple(rows[0]) == PAIR_COLUMNS
    assert [tuple(r[:2]) for r in rows[1:]] == pairs  # one row per pair, input order, paths as written
    v = Verifier(str(tiny_model), device="cpu", precision="float32", cache_size=0)
    for (a, b), row in zip(pairs, rows[1:]):
        rec = dict(zip(PAIR_COLUMNS, row))
        if b == bad:
            assert rec["distance"] == rec["same"] == ""
            assert rec["error"].startswith("b: ") and "not an image file" in rec["error"]
            continue
        single = v.compare(str(tmp_path / a), str(tmp_path / b))  # the single `compare`'s code path
        assert float(rec["distance"]) == pytest.approx(single.distance, rel=1e-4, abs=1e-5)
        assert rec["same"] == str(int(single.same)) and rec["error"] == ""
        assert rec["faces"] == rec["quality"] == ""  # not a face model


def test_plain_two_column_file_and_absolute_paths(tmp_path, photos, tiny_model, capsys):
    names, bad = photos
    pairs = _pairs(names, bad)
    _write_pairs(tmp_path / "with_header.csv", pairs)
    plain = [(str(tmp_path / a), str(tmp_path / b)) for a, b in pairs]
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    _write_pairs(sub / "plain.csv", plain, header=False)
    for src, out in ((tmp_path / "with_header.csv", tmp_path / "r1.csv"), (sub / "plain.csv", tmp_path / "r2.csv")):
        code, _, err = _compare(capsys, tiny_model, "--pairs", src, "--out", out)
        assert code == 0, err
    r1, r2 = _rows(tmp_path / "r1.csv"), _rows(tmp_path / "r2.csv")
    assert [r[:2] for r in r2[1:]] == [list(p) for p in plain]
    assert [r[2:4] for r in r1] == [r[2:4] for r in r2]  # the same distances and verdicts


def test_each_image_is_read_and_embedded_once(tmp_path, photos, tiny_model, capsys, monkeypatch):
    names, bad = photos
    count = _Count(monkeypatch)
    code, _, err = _compare(capsys, tiny_model, "--pairs", _write_pairs(tmp_path / "p.csv", _pairs(names, bad)),
                            "--out", tmp_path / "r.csv")
    assert code == 0, err
    assert sorted(count.loads) == sorted(Path(p).name for p in [*names, bad])  # 7 distinct images, 20 uses
    assert count.embedded == len(names)  # the unreadable one is never embedded


def test_resume_after_a_cut_file_computes_only_the_rest(tmp_path, photos, tiny_model, capsys, monkeypatch):
    names, bad = photos
    pairs = _pairs(names, bad)
    src = _write_pairs(tmp_path / "p.csv", pairs)
    code, _, err = _compare(capsys, tiny_model, "--pairs", src, "--out", tmp_path / "full.csv")
    assert code == 0, err
    full = (tmp_path / "full.csv").read_text()
    lines = full.splitlines(keepends=True)
    (tmp_path / "part.csv").write_text("".join(lines[:7]) + lines[7][:12])  # 6 rows and half a row (a kill)
    count = _Count(monkeypatch)
    code, out, err = _compare(capsys, tiny_model, "--pairs", src, "--out", tmp_path / "part.csv", "--resume")
    assert code == 0, err
    assert "6 kept from before" in out
    rest = {Path(p).name for pair in pairs[6:] for p in pair}
    assert sorted(count.loads) == sorted(rest)  # pairs 1-6 were not recomputed
    assert (tmp_path / "part.csv").read_text() == full


def test_ctrl_c_keeps_finished_rows_and_resume_completes(tmp_path, photos, tiny_model, capsys, monkeypatch):
    from siamgui.core.verifier import Verifier

    names, bad = photos
    src = _write_pairs(tmp_path / "p.csv", _pairs(names, bad))
    code, _, err = _compare(capsys, tiny_model, "--pairs", src, "--out", tmp_path / "full.csv")
    assert code == 0, err
    monkeypatch.setattr(batch_mod, "CHUNK", 2)
    distances, calls = Verifier.distances, []

    def interrupted(verifier, *a, **k):  # once per chunk of 2 pairs: Ctrl-C in the third
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return distances(verifier, *a, **k)

    monkeypatch.setattr(Verifier, "distances", interrupted)
    code, out, err = _compare(capsys, tiny_model, "--pairs", src, "--out", tmp_path / "r.csv")
    assert code == 130
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "4 of 10 rows" in lines[0] and "--resume" in lines[0], err
    assert len(_rows(tmp_path / "r.csv")) == 1 + 4  # header and the two finished chunks
    monkeypatch.setattr(Verifier, "distances", distances)
    code, _, err = _compare(capsys, tiny_model, "--pairs", src, "--out", tmp_path / "r.csv", "--resume")
    assert code == 0, err
    assert (tmp_path / "r.csv").read_text() == (tmp_path / "full.csv").read_text()


def test_existing_results_file_is_refused_not_overwritten(tmp_path, photos, tiny_model, capsys):
    names, bad = photos
    src = _write_pairs(tmp_path / "p.csv", _pairs(names, bad))
    out = tmp_path / "r.csv"
    out.write_text("my own notes\n")
    code, _, err = _compare(capsys, tiny_model, "--pairs", src, "--out", out)
    line = assert_one_line_error(code, err, "already exists")
    assert "--resume" in line and "--overwrite" in line
    assert out.read_text() == "my own notes\n"
    code, _, err = _compare(capsys, tiny_model, "--pairs", src, "--out", out, "--resume")
    assert_one_line_error(code, err, "not a results file")
    assert out.read_text() == "my own notes\n"
    code, _, err = _compare(capsys, tiny_model, "--pairs", src, "--out", out, "--overwrite")
    assert code == 0, err
    assert len(_rows(out)) == 11
    other = _write_pairs(tmp_path / "other.csv", list(reversed(_pairs(names, bad))))
    code, _, err = _compare(capsys, tiny_model, "--pairs", other, "--out", out, "--resume")
    assert_one_line_error(code, err, "another run")
    assert len(_rows(out)) == 11
    code, _, err = _compare(capsys, tiny_model, "--pairs", src, "--out", src, "--overwrite")
    assert_one_line_error(code, err, "is an input")


@pytest.mark.parametrize("content, expect", [
    (None, "no such pairs file"),
    ("", "holds no pairs"),
    ("a,b\nx.png,y.png\nonly-one.png\n", "line 3"),
    (b"a,b\n\xff\xfe.png,y.png\n", "not a utf-8"),
], ids=["missing", "empty", "one-column-row", "not-utf8"])
def test_bad_pairs_file_exit_2_before_any_work(tmp_path, tiny_model, capsys, content, expect):
    src = tmp_path / "p.csv"
    if isinstance(content, bytes):
        src.write_bytes(content)
    elif content is not None:
        src.write_text(content)
    code, _, err = _compare(capsys, tiny_model, "--pairs", src, "--out", tmp_path / "r.csv")
    assert_one_line_error(code, err, expect)
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("args, expect", [
    (["--pairs", "P"], "go together"),
    (["A", "B", "--pairs", "P", "--out", "R"], "not both"),
    (["--pairs", "P", "--out", "R", "--face", "best"], "not best"),
    (["--pairs", "P", "--out", "R", "--resume", "--overwrite"], "not allowed with"),
    (["A"], "two images"),
])
def test_batch_usage_errors(tmp_path, tiny_model, capsys, args, expect):
    sub = {"P": str(tmp_path / "p.csv"), "R": str(tmp_path / "r.csv"), "A": "a.png", "B": "b.png"}
    code, _, err = _compare(capsys, tiny_model, *[sub.get(a, a) for a in args])
    assert_one_line_error(code, err, expect)


def test_gallery_identify_out_round_trip(tmp_path, photos, tiny_model, capsys, monkeypatch):
    import json

    names, bad = photos
    gal = ["--gallery", tmp_path / "g.sqlite", "--model", tiny_model, "--precision", "float32", "--device", "cpu"]
    for person, files in (("first", names[:2]), ("second", names[3:5])):
        code, _, err = run_main(capsys, "gallery", "add", person, *[tmp_path / f for f in files], *gal)
        assert code == 0, err
    missing = tmp_path / "gone.png"
    code, out, err = run_main(capsys, "gallery", "identify", tmp_path / "imgs", missing, "--out",
                              tmp_path / "who.csv", "--top", "2", *gal, "--json")
    assert code == 0, err
    assert json.loads(out)["errors"] == 2
    rows = _rows(tmp_path / "who.csv")
    assert tuple(rows[0]) == IDENTIFY_COLUMNS
    listed = sorted((tmp_path / "imgs").iterdir())
    assert [r[0] for r in rows[1:]] == [str(p) for p in listed] + [str(missing)]  # folder sorted, then the file
    for row in rows[1:]:
        rec = dict(zip(IDENTIFY_COLUMNS, row))
        if rec["image"].endswith(("notes.jpg", "gone.png")):
            assert rec["best"] == rec["distance"] == "" and rec["error"]
            continue
        code, out, err = run_main(capsys, "gallery", "identify", rec["image"], "--top", "2", *gal, "--json")
        single = json.loads(out)
        assert rec["best"] == (single["best"] or "") and rec["known"] == str(int(single["best"] is not None))
        assert float(rec["distance"]) == pytest.approx(single["distance"], rel=1e-4, abs=1e-5)
        got = [c.rsplit(":", 1) for c in rec["candidates"].split(";")]
        assert [n for n, _ in got] == [c["name"] for c in single["candidates"]]
    full = (tmp_path / "who.csv").read_text()
    (tmp_path / "who.csv").write_text("".join(full.splitlines(keepends=True)[:4]))
    count = _Count(monkeypatch)
    code, _, err = run_main(capsys, "gallery", "identify", tmp_path / "imgs", missing, "--out",
                            tmp_path / "who.csv", "--resume", "--top", "2", *gal)
    assert code == 0, err
    assert len(count.loads) == len(listed) + 1 - 3
    assert (tmp_path / "who.csv").read_text() == full
    code, _, err = run_main(capsys, "gallery", "identify", tmp_path / "imgs", *gal)
    assert_one_line_error(code, err, "need --out")


def test_batch_bench_runs_both_sides(tmp_path, photos, tiny_model):
    """bench/batch_bench.py's figures: both sides run, and they compute the same distances."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import batch_bench

    names, _ = photos
    pairs = [(str(tmp_path / a), str(tmp_path / b)) for a, b in _pairs(names, names[0])]
    res = batch_bench.measure_batch(tiny_model, pairs, rounds=1, work=tmp_path / "bench", precision="float32")
    assert res["batch_pairs_per_s"] > 0 and res["baseline_batch_pairs_per_s"] > 0
    assert res["batch_max_distance_diff"] < 1e-3

"""Untrusted paths: nothing is written outside the chosen outputs and the app's own folders.

One fresh process runs train / compare / evaluate / info / gallery (and some
failing commands) with HOME, TMPDIR, the XDG folders and the working folder
pointed at empty temporary folders; every folder is listed before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from _faults_helpers import tree
from siamgui.core.synthetic import make_shapes_dataset

SCRIPT = r"""
import json, sys
from siamgui.cli import main
data, out, img, other, empty, bad = sys.argv[1:7]
model = out + "/model.safetensors"
tiny = ["--arch", "compact-cnn", "--image-size", "16", "--embedding-dim", "8", "--batch-size", "16",
        "--pairs-per-epoch", "32", "--val-split", "0", "--device", "cpu", "--epochs", "1"]
runs = {
    "train": ["train", data, "--out", model, "--log-json", out + "/log.jsonl", *tiny],
    "train-face": ["train", data, "--out", out + "/face.safetensors", "--preset", "face", *tiny],
    "compare": ["compare", img, other, "--model", model],
    "evaluate": ["evaluate", data, "--model", model, "--num-pairs", "20"],
    "info": ["info", model],
    "gallery-add": ["gallery", "add", "alice", img, other, "--model", model],
    "gallery-identify": ["gallery", "identify", img, "--model", model],
    "cluster": ["cluster", img.rsplit("/", 1)[0], "--out", out + "/clusters.json", "--model", model],
    "bad-compare": ["compare", img, bad, "--model", model],
    "bad-train": ["train", empty, "--out", out + "/never.safetensors", *tiny],
    "bad-model": ["compare", img, img, "--model", bad],
}
codes = {name: main(argv) for name, argv in runs.items()}
print(json.dumps(codes))
"""


def test_commands_write_only_their_outputs_and_the_app_folders(tmp_path):
    root = tmp_path
    home, tmp, cwd, out = root / "home", root / "tmp", root / "cwd", root / "out"
    for d in (home, tmp, cwd, out):
        d.mkdir()
    data = make_shapes_dataset(root / "data", n_classes=4, per_class=4, size=24, seed=0)
    inputs = root / "inputs"
    inputs.mkdir()
    classes = sorted(data.iterdir())
    shutil.copy(sorted(classes[0].iterdir())[0], inputs / "a.png")
    shutil.copy(sorted(classes[1].iterdir())[0], inputs / "b.png")
    (inputs / "bad.jpg").write_text("not an image")
    (inputs / "empty").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "SIAMGUI_"))}
    env.update(HOME=str(home), TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_STATE_HOME=str(home / ".local" / "state"), PYTHONDONTWRITEBYTECODE="1")
    watched = {name: root / name for name in ("home", "tmp", "cwd", "data", "inputs", "out")}
    before = {name: tree(path) for name, path in watched.items()}

    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(data), str(out), str(inputs / "a.png"),
                           str(inputs / "b.png"), str(inputs / "empty"), str(inputs / "bad.jpg")],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=240)
    assert proc.returncode == 0, proc.stderr
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert codes == {"train": 0, "train-face": 0, "compare": 0, "evaluate": 0, "info": 0, "gallery-add": 0, "gallery-identify": 0,
                     "cluster": 0, "bad-compare": 2, "bad-train": 2, "bad-model": 2}, (codes, proc.stderr)

    after = {name: tree(path) for name, path in watched.items()}
    for name in ("tmp", "cwd", "data", "inputs"):
        assert after[name] == before[name], (name, set(after[name]) ^ set(before[name]))
    assert set(after["out"]) == {"model.safetensors", "face.safetensors", "log.jsonl", "clusters.json"}
    app_data = os.path.join(".local", "share", "siamgui")
    app_cache = os.path.join(".cache", "siamgui")  # the app's own cache (prepared face chips, the face cache)
    new_in_home = set(after["home"]) - set(before["home"])
    outside = {p for p in new_in_home
               if not any(p == d or p.startswith(d + os.sep) or d.startswith(p + os.sep) for d in (app_data, app_cache))}
    assert outside == set(), outside
    assert any(p.startswith(app_data + os.sep) for p in new_in_home)  # the gallery went where it should


def test_output_symlink_is_replaced_not_written_through(tmp_path, tiny_model):
    """--out pointing at a link to another file: the link is replaced, the file it named is untouched."""
    from siamgui.core.modelfile import load_model, save_model

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "model.safetensors"
    link.symlink_to(victim)
    m = load_model(tiny_model)
    save_model(link, m.network, m.meta)
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and load_model(link).threshold == m.threshold
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "victim.txt"]


def test_paths_inside_pairs_files_are_only_read(tmp_path, tiny_model, capsys):
    """A pairs CSV naming files elsewhere (../, absolute) reads them and writes nothing anywhere."""
    from PIL import Image

    from _faults_helpers import run_main

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16), (60 * i, 0, 0)).save(elsewhere / f"{i}.png")
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    (csv_dir / "pairs.csv").write_text(f"a,b,same\n../elsewhere/0.png,{elsewhere / '1.png'},0\n"
                                       f"../elsewhere/0.png,../elsewhere/0.png,1\n")
    before = tree(tmp_path)
    code, out, err = run_main(capsys, "evaluate", "--pairs", csv_dir / "pairs.csv", "--model", tiny_model, "--json")
    assert code == 0, err
    assert json.loads(out)["pairs"] == 2
    assert tree(tmp_path) == before

"""``make dist-check``: run the frozen one-folder app the way a user would, headless.

    QT_QPA_PLATFORM=offscreen .venv/bin/python .ci/dist_check.py dist/siamgui

Runs the executable in ``dist/siamgui/`` (never the source tree) from an empty
working folder, with ``$SIAMGUI_RESOURCES`` and ``$PYTHONPATH`` removed and the
settings/data folders in a temporary directory, and checks:

1. the bundle holds the resources it needs (icons, the bundled model when the
   checkout has one, OpenCV's Haar cascades);
2. ``siamgui compare A B --json`` on two drawn faces exits 0 with a verdict, and the
   JSON names a model file inside the bundle (the bundled model was found there) and
   counts one face in each image (the face detector runs in the frozen app);
3. ``siamgui cluster`` on the folder of those two pictures writes ``clusters.json``
   (scikit-learn made it into the bundle);
4. ``siamgui gui A B --screenshot OUT.png`` exits 0 and writes a PNG.

Fallbacks, each announced on a line starting ``FALLBACK`` / ``SKIP``:
- no ``resources/models/face.safetensors`` in the checkout (so none in the
  bundle): the frozen app trains a tiny face-preset model itself with
  ``siamgui train`` and the checks use it. A checkout that has the model but a
  bundle without it fails.
- no ``siamgui/gui/app.py`` in the checkout: the gui check is skipped. A
  checkout that has it but a bundle that says "not available" fails.

Prints the timings (``bench/window_time.py`` times the first window alone)
and exits 1 on any failure. Uses only the standard library and Pillow (to draw the two images).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600

failures: list[str] = []


def say(msg: str) -> None:
    print(f"dist-check: {msg}", flush=True)


def fail(msg: str) -> None:
    failures.append(msg)
    say(f"FAIL {msg}")


def executable(bundle: Path) -> Path:
    if sys.platform == "win32":
        return bundle / "siamgui-cli.exe"  # the console executable (siamgui.exe is windowed)
    return bundle / "siamgui"


def internal_dir(bundle: Path) -> Path:
    """Where PyInstaller puts everything but the executables (sys._MEIPASS)."""
    inner = bundle / "_internal"
    return inner if inner.is_dir() else bundle


def run(exe: Path, args: list[str], env: dict, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([str(exe), *args], env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        proc = subprocess.CompletedProcess(exc.cmd, 124, exc.stdout or "", f"timed out after {TIMEOUT_S} s")
    return proc, time.perf_counter() - t0


def show(proc: subprocess.CompletedProcess) -> None:
    for stream in (proc.stdout, proc.stderr):
        for line in (stream or "").strip().splitlines()[-15:]:
            print(f"    | {line}")


def commands(help_text: str) -> set[str]:
    """Command names from ``siamgui --help`` (the indented lines under COMMAND)."""
    names, inside = set(), False
    for line in help_text.splitlines():
        if line.strip() == "COMMAND":
            inside = True
        elif inside and not line.strip():
            break
        elif inside and line.startswith("    ") and not line.startswith("      "):
            names.add(line.split()[0])
    return names


def draw_face(size: int, skin: tuple[int, int, int], eye: float, mouth: float) -> "Image.Image":
    """A blurred cartoon face (RGB) that the bundled model's detector finds (as tests/_gui_helpers.draw_face)."""
    from PIL import Image, ImageDraw, ImageFilter

    img = Image.new("RGB", (size, size), (235, 235, 235))
    d = ImageDraw.Draw(img)
    c = size // 2

    def ellipse(cx, cy, rx, ry, fill):
        d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)

    ellipse(c, c + 5, int(size * 0.32), int(size * 0.42), skin)
    for dx in (-1, 1):
        ex, ey = c + dx * int(size * 0.13), c - int(size * 0.08)
        ellipse(ex, ey, int(size * eye), int(size * 0.035), (60, 60, 60))
        d.line((ex - int(size * 0.08), ey - int(size * 0.08), ex + int(size * 0.08), ey - int(size * 0.08)),
               fill=(50, 50, 50), width=max(2, size // 40))
    ellipse(c, c + int(size * 0.07), int(size * 0.03), int(size * 0.08), (190, 150, 120))
    ellipse(c, c + int(size * 0.22), int(size * mouth), int(size * 0.03), (140, 70, 70))
    return img.filter(ImageFilter.GaussianBlur(size / 60))


def make_images(folder: Path) -> tuple[Path, Path]:
    """Two drawn faces of different "people" on 240 px canvases: a face model finds a face in
    each and gives a verdict (it gives none without a face)."""
    from PIL import Image

    pa, pb = folder / "a.png", folder / "b.png"
    for path, face in ((pa, draw_face(180, (215, 180, 150), 0.07, 0.10)),
                       (pb, draw_face(180, (160, 120, 90), 0.05, 0.14))):
        canvas = Image.new("RGB", (240, 240), (235, 235, 235))
        canvas.paste(face, (30, 30))
        canvas.save(path)
    return pa, pb


def fallback_model(exe: Path, env: dict, work: Path) -> Path | None:
    """Train a tiny face-preset model with the frozen app (face preset: exercises the Haar cascade)."""
    sys.path.insert(0, str(ROOT))
    from siamgui.core.synthetic import make_shapes_dataset

    data = make_shapes_dataset(work / "shapes", n_classes=8, per_class=6, size=64, seed=1)
    out = work / "fallback.safetensors"
    proc, secs = run(exe, ["train", str(data), "--out", str(out), "--preset", "face", "--arch", "compact-cnn",
                           "--epochs", "1", "--image-size", "32", "--embedding-dim", "16",
                           "--pairs-per-epoch", "64", "--batch-size", "16", "--val-split", "0.3",
                           "--device", "cpu"], env, work)
    if proc.returncode != 0 or not out.is_file():
        fail(f"frozen 'siamgui train' (fallback model) exited {proc.returncode}")
        show(proc)
        return None
    say(f"ok   frozen 'siamgui train' wrote the fallback model in {secs:.1f} s")
    return out


def main() -> int:
    bundle = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "dist" / "siamgui").resolve()
    exe = executable(bundle)
    if not exe.is_file():
        say(f"FAIL no executable at {exe}; run `make dist` first")
        return 1
    inner = internal_dir(bundle)

    # 1. contents
    model_in_checkout = (ROOT / "resources" / "models" / "face.safetensors").is_file()
    gui_in_checkout = (ROOT / "siamgui" / "gui" / "app.py").is_file()
    expected = ["resources/icons/siamgui.png", "cv2/data/haarcascade_frontalface_default.xml"]
    if model_in_checkout:  # the network, its face detector and its landmark model
        expected += ["resources/models/face.safetensors", "resources/models/yunet_s_640_640.onnx",
                     "resources/models/mtcnn.safetensors", "resources/models/shape_predictor_5.safetensors",
                     "resources/models/liveness.safetensors"]
    for rel in expected:
        if (inner / rel).is_file():
            say(f"ok   bundle has {rel}")
        else:
            fail(f"bundle lacks {rel} (looked in {inner})")
    for rel in ("triton", "torch/utils/tensorboard"):
        if (inner / rel).exists():
            fail(f"bundle has {rel}, which siamgui.spec excludes")

    with tempfile.TemporaryDirectory(prefix="siamgui-dist-check-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("SIAMGUI_RESOURCES", "PYTHONPATH", "PYTHONHOME")}
        env.update(QT_QPA_PLATFORM="offscreen", OPENCV_LOG_LEVEL="ERROR",
                   XDG_CONFIG_HOME=str(work / "config"), XDG_DATA_HOME=str(work / "data"),
                   XDG_CACHE_HOME=str(work / "cache"), SIAMGUI_DATA_DIR=str(work / "siamgui-data"),
                   HOME=str(work / "home"))
        (work / "home").mkdir()
        a, b = make_images(work)

        # Start-up of the frozen interpreter alone (bootloader + Python, no torch).
        proc, secs = run(exe, ["--version"], env, work)
        if proc.returncode != 0:
            fail(f"'siamgui --version' exited {proc.returncode}")
            show(proc)
        else:
            say(f"ok   'siamgui --version' -> {proc.stdout.strip()} in {secs:.2f} s")

        # Commands: siamgui registers some by importing modules by name (gallery,
        # import-dlib); the frozen app must list the same ones as the checkout.
        frozen_help, _ = run(exe, ["--help"], env, work)
        source_help = subprocess.run([sys.executable, "-m", "siamgui", "--help"], env={**env, "PYTHONPATH": str(ROOT)},
                                     cwd=work, capture_output=True, text=True, timeout=TIMEOUT_S)
        frozen_cmds, source_cmds = commands(frozen_help.stdout), commands(source_help.stdout)
        if not source_cmds or frozen_cmds != source_cmds:
            fail(f"the frozen app's commands {sorted(frozen_cmds)} differ from the checkout's {sorted(source_cmds)}")
        else:
            say(f"ok   the frozen app has the checkout's commands: {' '.join(sorted(frozen_cmds))}")

        model_args: list[str] = []
        if not model_in_checkout:
            say("FALLBACK the checkout has no resources/models/face.safetensors, so the bundle has no model; "
                "the checks use a tiny model trained by the frozen app instead")
            model = fallback_model(exe, env, work)
            if model is None:
                return report()
            model_args = ["--model", str(model)]
            expected_dir = work
        else:
            expected_dir = bundle

        # 2. compare
        proc, secs = run(exe, ["compare", str(a), str(b), "--json", *model_args], env, work)
        if proc.returncode != 0:
            fail(f"'siamgui compare --json' exited {proc.returncode}")
            show(proc)
        else:
            try:
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                model_path = Path(out["model"]).resolve()
            except (ValueError, KeyError, IndexError) as exc:
                fail(f"'siamgui compare --json' printed no usable JSON ({exc})")
                show(proc)
            else:
                if not model_path.is_relative_to(expected_dir):
                    fail(f"compare used {model_path}, not a model inside {expected_dir}")
                elif out.get("faces") != [1, 1] or out.get("same") not in (True, False):
                    fail(f"compare did not find one face in each drawn face picture, or gave no verdict: {out}")
                else:
                    say(f"ok   'siamgui compare --json' in {secs:.1f} s: distance {out['distance']:.4f}, "
                        f"same={out['same']}, faces={out['faces']}, model {model_path}")

        # 2b. cluster (scikit-learn must be in the bundle)
        out_json = work / "clusters.json"
        proc, secs = run(exe, ["cluster", str(a.parent), "--out", str(out_json), *model_args], env, work)
        try:
            found = json.loads(out_json.read_text()) if proc.returncode == 0 else None
        except (OSError, ValueError):
            found = None
        if found is None or "clusters" not in found:
            fail(f"'siamgui cluster' exited {proc.returncode} or wrote no clusters.json")
            show(proc)
        else:
            faces = sum(len(c["faces"]) for c in found["clusters"]) + len(found["unsorted"])
            say(f"ok   'siamgui cluster' in {secs:.1f} s: {len(found['clusters'])} cluster(s), {faces} face(s)")

        # 3. gui --screenshot
        shot = work / "shot.png"
        proc, secs = run(exe, ["gui", str(a), str(b), "--screenshot", str(shot), *model_args], env, work)
        unavailable = "not available in this build" in (proc.stderr or "")
        if unavailable and not gui_in_checkout:
            say("SKIP gui --screenshot: the checkout has no siamgui/gui/app.py yet, so the bundle has no "
                "desktop window to check")
        elif proc.returncode != 0:
            fail(f"'siamgui gui --screenshot' exited {proc.returncode}")
            show(proc)
        elif not shot.is_file() or shot.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            fail(f"'siamgui gui --screenshot' exited 0 but wrote no PNG at {shot}")
        else:
            from PIL import Image

            with Image.open(shot) as im:
                size = im.size
            say(f"ok   'siamgui gui --screenshot' wrote a {size[0]}x{size[1]} PNG; start to exit "
                f"(window, model loaded, images compared, picture saved) {secs:.1f} s")
            keep = ROOT / "dist" / "dist-check-screenshot.png"
            if keep.parent.is_dir():
                keep.write_bytes(shot.read_bytes())
                say(f"     screenshot kept at {keep.relative_to(ROOT)}")
    return report()


def report() -> int:
    if failures:
        say(f"{len(failures)} check(s) failed")
        return 1
    say("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Seconds from starting the app to its main window on screen, seen from outside.

    .venv/bin/python bench/window_time.py dist/siamgui/siamgui        # the frozen app
    .venv/bin/python bench/window_time.py .venv/bin/siamgui           # from source, to compare

Runs ``APP gui`` on a private Xvfb display (``QT_QPA_PLATFORM=xcb``) and polls
``xwininfo`` until a window titled "siamgui" is viewable; prints one line per
run and the median. Nothing is added to the app: the offscreen platform has no
window anyone else can see, so the frozen app (which runs no outside code) is
timed from the X server's side. Needs ``Xvfb`` and ``xwininfo`` (apt packages
``xvfb`` and ``x11-utils``); Linux only.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TITLE = "siamgui"
TIMEOUT_S = 120.0


def first_window_s(app: str, display: str, env: dict) -> float | None:
    t0 = time.perf_counter()
    proc = subprocess.Popen([app, "gui"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < TIMEOUT_S:
            info = subprocess.run(["xwininfo", "-display", display, "-name", TITLE], capture_output=True, text=True)
            if "IsViewable" in info.stdout:
                return time.perf_counter() - t0
            if proc.poll() is not None:
                return None
            time.sleep(0.02)
        return None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    app, runs = os.path.abspath(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3
    if not (shutil.which("Xvfb") and shutil.which("xwininfo")):
        print("window_time: needs Xvfb and xwininfo (apt-get install xvfb x11-utils)")
        return 2
    display = f":{90 + os.getpid() % 100}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # wait until the X server answers
            if subprocess.run(["xwininfo", "-display", display, "-root"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        with tempfile.TemporaryDirectory(prefix="siamgui-window-time-") as tmp:
            env = {k: v for k, v in os.environ.items() if k not in ("SIAMGUI_RESOURCES", "PYTHONPATH")}
            env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", OPENCV_LOG_LEVEL="ERROR",
                       XDG_CONFIG_HOME=f"{tmp}/config", XDG_DATA_HOME=f"{tmp}/data",
                       XDG_CACHE_HOME=f"{tmp}/cache", SIAMGUI_DATA_DIR=f"{tmp}/siamgui-data")
            times = []
            for i in range(runs):
                s = first_window_s(app, display, env)
                print(f"window_time: run {i + 1}: " + ("no window" if s is None else f"{s:.2f} s"), flush=True)
                if s is not None:
                    times.append(s)
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
    if not times:
        return 1
    print(f"window_time: {app}: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, {len(times)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

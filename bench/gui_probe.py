"""Run in a fresh process by bench/run.py: when is the window up, when is the model ready?

``python bench/gui_probe.py app T0 [MODEL]`` starts the real app (``siamgui gui``)
offscreen and prints one JSON line: seconds from ``T0`` (the parent's
``time.time()`` just before it started this process) to the first turn of the
event loop with the main window visible (``window_s``), and to the moment the
app's :class:`~siamgui.gui.state.AppState` reports the model loaded
(``model_ready_s``). Then it quits.

``python bench/gui_probe.py bare T0`` does the same for an empty ``QMainWindow``:
the floor that Python + Qt alone cost.

``python bench/gui_probe.py gaps T0 DATA_DIR SECONDS`` shows the main window, records
the gaps between the ticks of a 10 ms ``QTimer`` on the GUI thread, first idle
(the baseline), then while the Train tab trains on DATA_DIR (face preset: the
decode-once loading, then training steps; at least SECONDS and 3 steps), in
windows of 2 s (idle: 1 s); prints the p99 and largest gap of each window.

Hooks, not edits: ``QApplication.exec`` is wrapped to learn when the loop starts,
and ``AppState.__init__`` to find the state object.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

# When started by bench/launch.py, T0 is the launcher's clock just before it started us.
T0 = float(os.environ.get("SIAMGUI_BENCH_T0") or (sys.argv[2] if len(sys.argv) > 2 else time.time()))
RESULT: dict = {}
TIMEOUT_S = 90.0


def _emit_and_quit():
    from PySide6.QtWidgets import QApplication

    if not RESULT.get("_printed"):
        RESULT["_printed"] = True
        print(json.dumps({k: v for k, v in RESULT.items() if not k.startswith("_")}), flush=True)
    QApplication.quit()


def _visible_window():
    from PySide6.QtWidgets import QApplication

    return any(w.isWindow() and w.isVisible() for w in QApplication.topLevelWidgets())


def _install_exec_hook(want_model: bool):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    orig_exec = QApplication.exec

    def on_loop():
        if "window_s" not in RESULT and _visible_window():
            RESULT["window_s"] = time.time() - T0
        if not want_model:
            _emit_and_quit()
            return
        if RESULT.get("_model_ready_at"):
            RESULT["model_ready_s"] = RESULT["_model_ready_at"] - T0
            _emit_and_quit()
            return
        if time.time() - T0 > TIMEOUT_S:
            RESULT["error"] = "timed out waiting for the model"
            _emit_and_quit()
            return
        QTimer.singleShot(10, on_loop)

    def exec_(*_a, **_k):
        QTimer.singleShot(0, on_loop)
        return orig_exec()

    QApplication.exec = exec_


def _install_state_hook():
    from siamgui.gui import state as state_mod

    orig_init = state_mod.AppState.__init__

    def init(self, *a, **k):
        orig_init(self, *a, **k)
        RESULT["_state_found"] = True

        def ready(*_):
            RESULT.setdefault("_model_ready_at", time.time())

        def failed(msg):
            RESULT.setdefault("model_error", str(msg))
            RESULT.setdefault("_model_ready_at", None)

        self.model_changed.connect(ready)
        self.model_failed.connect(failed)

    state_mod.AppState.__init__ = init


def _gap_stats(stamps: list[float]) -> dict:
    gaps = sorted((b - a) * 1000.0 for a, b in zip(stamps, stamps[1:]))
    if not gaps:
        return {}
    k = (len(gaps) - 1) * 0.99
    lo = int(k)
    p99 = gaps[lo] + (gaps[min(lo + 1, len(gaps) - 1)] - gaps[lo]) * (k - lo)
    return {"p99": p99, "max": gaps[-1], "ticks": len(gaps)}


def gaps(data_dir: str, seconds: float) -> int:
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    from siamgui.gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1240, 780)
    window.show()
    tab = window.train_tab
    if tab is None:
        print(json.dumps({"error": "the main window has no Train tab"}), flush=True)
        return 0
    stamps: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    out = {"idle": [], "training": [], "steps": 0}
    phase = {"name": "idle", "start": 0.0, "window_start": 0}

    def close_window(kind: str):
        seg = stamps[phase["window_start"]:]
        phase["window_start"] = len(stamps)
        st = _gap_stats(seg)
        if st:
            out[kind].append(st)

    def start_training():
        close_window("idle")
        phase["name"] = "training"
        tab.settings_form.preset.setCurrentText("face")
        tab.extra_config = {"pairs_per_epoch": 64 * 200, "val_pairs": 200}
        tab.start_scripted(data_dir, 1)
        phase["start"] = time.perf_counter()
        tick_training()

    def tick_training():
        if phase["name"] != "training":
            return
        close_window("training")
        thread = tab.train_thread
        last = getattr(tab, "_last_step", None)
        if last is not None:
            out["steps"] = last.global_step
        elapsed = time.perf_counter() - phase["start"]
        if (elapsed >= seconds and out["steps"] >= 3) or elapsed >= seconds + 60:
            phase["name"] = "stopping"
            tab.stop()
            QTimer.singleShot(50, wait_stopped)
            return
        if thread is None and time.perf_counter() - phase["start"] > 5 and not tab.scanning:
            out["note"] = "training ended before the measuring time was over"
        QTimer.singleShot(2000, tick_training)

    def wait_stopped():
        if tab.busy and time.perf_counter() - phase["start"] < seconds + 120:
            QTimer.singleShot(50, wait_stopped)
            return
        timer.stop()
        print(json.dumps(out), flush=True)
        window.shutdown() if hasattr(window, "shutdown") else None
        app.quit()

    timer.start()
    QTimer.singleShot(1000, lambda: close_window("idle"))
    QTimer.singleShot(2000, start_training)
    app.exec()
    return 0


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "app"
    if mode == "gaps":
        return gaps(sys.argv[3], float(sys.argv[4]))
    if mode == "bare":
        from PySide6.QtWidgets import QApplication, QMainWindow

        _install_exec_hook(want_model=False)
        app = QApplication(sys.argv[:1])
        w = QMainWindow()
        w.resize(1000, 700)
        w.show()
        app.exec()
        return 0
    model = sys.argv[3] if len(sys.argv) > 3 else None
    _install_exec_hook(want_model=True)
    _install_state_hook()
    from siamgui.cli import main as cli_main

    argv = ["gui"] + (["--model", model] if model else [])
    rc = cli_main(argv)
    if not RESULT.get("_printed"):
        print(json.dumps({"error": f"the app exited ({rc}) before the probe could measure"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Soak, concurrency and crash tests: ``make soak`` or ``python bench/soak.py [--only ...]``.

Three parts, each also importable by the test suite (which runs small versions):

- **kill**: a process doing an operation on a file (gallery enrolment,
  re-embedding after a model change, model saving, report writing, cluster
  saving, settings) is killed with
  SIGKILL at random points; the file must be as before or as after, and the next
  start must open it and continue. An operation is one :class:`KillOp` in
  :data:`KILL_OPS` (a preparation, a child's run, a checker).
- **gallery**: processes enrolling and identifying on one gallery file at once,
  and a reader that must never see half an enrolment (:func:`shared_gallery`).
- **memory**: one app process doing the same thing many times (comparisons with
  both slots replaced, camera preview with detection on a looped video, training
  started and stopped, gallery identifications), RSS sampled over time and
  Python objects, Qt widgets, workers and threads counted before and after
  (:data:`MEMORY_SCENARIOS`, each run in a fresh process).

Writes ``bench/results/soak.json`` and prints a summary; bench/README.md ("Soak")
says what the figures mean. The defaults are the issue's sizes (about an hour in
all on 2 cores); ``--scale 0.1`` runs a tenth of each.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: What the forked children find already imported (a fork costs milliseconds, a fresh start seconds).
PRELOAD = ["torch", "numpy", "PIL.Image", "siamgui.core.verifier", "siamgui.core.gallery", "siamgui.core.modelfile",
           "PySide6.QtCore", "siamgui.gui.settings", "bench.soak"]

_CONTEXT = None


def fork_context():
    """A forkserver context whose server has imported :data:`PRELOAD` (started once per process).

    The server never runs a torch operation, so its forks start with a clean OpenMP state.
    """
    global _CONTEXT
    if _CONTEXT is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _CONTEXT = ctx
    return _CONTEXT


def _child_setup() -> None:
    import torch

    torch.set_num_threads(1)  # several children share the cores with the parent


def rss_mb(pid: int | None = None) -> float:
    """Resident set size in MB (Linux /proc; 0.0 where unavailable)."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


# =========================================================================================
# Killed at any moment
# =========================================================================================
@dataclass
class KillOp:
    """One operation for the kill harness.

    - ``prepare(base, fixtures) -> ctx``: once, in the parent: build the "before"
      template under ``base`` and return a picklable dict for the other two;
    - ``reset(work, ctx)``: before each kill, put the "before" files into ``work``;
    - ``run(work, ctx, mark)``: in a forked child (a module-level function, passed
      by reference): set up, ``mark("start")``, do the operation
      (``mark("w+")``/``mark("w-")`` around its writes), ``mark("end")``;
    - ``check(work, ctx) -> str``: in the parent, as the next start: "before",
      "after", "partial" (a consistent step of a resumable operation), or
      "inconsistent: why"; it also shows that work continues on the file.
    """

    name: str
    prepare: Callable[[Path, dict], dict]
    reset: Callable[[Path, dict], None]
    run: Callable[[Path, dict, Callable[[str], None]], None]
    check: Callable[[Path, dict], str]
    #: Files left beside the operation's file after the next start (orphaned temporary files).
    debris: Callable[[Path], list[str]] = lambda work: []
    #: Check in a freshly forked process (Qt caches a settings file's contents per process).
    fresh_process: bool = False


@dataclass
class KillReport:
    operation: str
    kills: int = 0
    #: Kills that landed between the operation's start and end (the others came after it finished).
    inside: int = 0
    #: Of those, inside a write (a transaction, the file being written).
    inside_write: int = 0
    states: dict = field(default_factory=dict)
    inconsistent: list = field(default_factory=list)
    debris: int = 0
    op_ms: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"operation": self.operation, "kills": self.kills, "inside": self.inside,
                "inside_write": self.inside_write, "states": self.states, "inconsistent": len(self.inconsistent),
                "inconsistencies": self.inconsistent[:10], "debris_files": self.debris,
                "op_ms": round(self.op_ms, 1), "seconds": round(self.seconds, 1)}


def _kill_child(run, work: str, ctx: dict, conn) -> None:
    """The child: runs one operation, reporting marks (name, CLOCK_MONOTONIC time) through ``conn``.

    It first waits for the parent's "go", so the parent can take a pidfd of it while it surely
    runs: a kill through the pidfd can never hit another process that reused the pid.
    """
    try:
        _child_setup()
        conn.send(("ready", time.monotonic()))
        conn.recv()

        def mark(what: str) -> None:
            conn.send((what, time.monotonic()))

        run(Path(work), ctx, mark)
    except BaseException:  # noqa: BLE001 - the parent reports it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _run_op_child(op: KillOp, work: Path, ctx: dict, kill: tuple[str, int, float] | None = None,
                  timeout: float = 120.0) -> list[tuple]:
    """Run ``op`` in a forked child and return its marks. ``kill = (mark, n, delay)``: SIGKILL the
    child ``delay`` seconds after the ``n``-th (from 0) ``mark`` it sends; None lets it finish."""
    mp = fork_context()
    recv, send = mp.Pipe(duplex=True)
    proc = mp.Process(target=_kill_child, args=(op.run, str(work), ctx, send), daemon=True)
    proc.start()
    send.close()
    marks: list[tuple] = []
    deadline = time.monotonic() + timeout
    pidfd = None

    def until(names: tuple[str, ...], count: int = 1) -> bool:
        """Read marks until ``count`` of ``names`` came; False when the child ended first."""
        while sum(m[0] in names for m in marks) < count:
            if any(m[0] in ("end", "error") for m in marks):
                return False
            if not recv.poll(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"{op.name}: the child sent nothing for {timeout:.0f} s")
            try:
                marks.append(recv.recv())
            except EOFError:
                return False
        return True

    def sigkill() -> None:
        with contextlib.suppress(ProcessLookupError):  # it has ended already
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)

    try:
        if not until(("ready", "error")) or marks[-1][0] != "ready":
            proc.join(5)
            raise RuntimeError(f"{op.name}: the child ended before starting (exit code {proc.exitcode})")
        pidfd = os.pidfd_open(proc.pid)  # the child waits for "go": this is surely its pid
        recv.send("go")
        if not until(("start", "error")):
            proc.join(5)
            raise RuntimeError(f"{op.name}: the child ended before starting (exit code {proc.exitcode})")
        if kill is not None and marks[-1][0] == "start":
            name, n, delay = kill
            if until((name,), n + 1):
                when = [t for m, t in marks if m == name][n] + delay
                while (left := when - time.monotonic()) > 0:
                    time.sleep(min(left, 0.05))
                sigkill()
        proc.join(max(1.0, deadline - time.monotonic()))
        if proc.is_alive():
            sigkill()
            proc.join(5)
            raise RuntimeError(f"{op.name}: the child did not finish within {timeout:.0f} s")
        with contextlib.suppress(EOFError, OSError):
            while recv.poll(0):
                marks.append(recv.recv())
    finally:
        recv.close()
        if pidfd is not None:
            os.close(pidfd)
    for what, detail in marks:
        if what == "error":
            raise RuntimeError(f"{op.name}: the operation failed in the child:\n{detail}")
    return marks


def _result_child(fn, args, conn) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except BaseException:  # noqa: BLE001
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _call_in_child(fn, *args, timeout: float = 120.0):
    """``fn(*args)`` in a forked child (a fresh start); its result, or RuntimeError with its traceback."""
    mp = fork_context()
    recv, send = mp.Pipe(duplex=False)
    proc = mp.Process(target=_result_child, args=(fn, args, send), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout):
            raise RuntimeError(f"{fn.__name__} took over {timeout:.0f} s in a child")
        kind, value = recv.recv()
    except EOFError:
        kind, value = "error", "the child died"
    finally:
        recv.close()
        proc.join(10)
    if kind != "ok":
        raise RuntimeError(f"{fn.__name__} failed in a child:\n{value}")
    return value


def _windows(marks: list[tuple]) -> tuple[float, float | None, list[tuple[float, float]]]:
    """(start, end or None, [(write start, write end)]) of a child's marks, in seconds after start."""
    start = next(t for m, t in marks if m == "start")
    end = next((t - start for m, t in marks if m == "end"), None)
    opened, wins = None, []
    for m, t in marks:
        if m == "w+":
            opened = t - start
        elif m == "w-" and opened is not None:
            wins.append((opened, t - start))
            opened = None
    if opened is not None:
        wins.append((opened, float("inf")))
    return start, end, wins


def kill_test(op: KillOp, kills: int, fixtures: dict, root: Path, seed: int = 0,
              calibrations: int = 2) -> KillReport:
    """Kill ``op``'s child ``kills`` times at random points; check the files after each.

    Half the kill points are uniform over the whole operation and a little past
    its end (its duration measured by ``calibrations`` uninterrupted runs, which
    must end "after"), half uniform over one of its writes (a transaction, the
    file being written), timed from that write's start, where a kill can do harm.
    """
    rng = random.Random(seed)
    report = KillReport(op.name)
    t0 = time.monotonic()
    base, work = root / "base", root / "work"
    for d in (base, work):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    ctx = op.prepare(base, fixtures)
    durations, windows = [], []
    for _ in range(calibrations):
        op.reset(work, ctx)
        _, end, wins = _windows(_run_op_child(op, work, ctx))
        state = _call_in_child(op.check, work, ctx) if op.fresh_process else op.check(work, ctx)
        if state != "after":
            raise RuntimeError(f"{op.name}: an uninterrupted run left the state {state!r}, not 'after'")
        durations.append(end)
        windows.append(wins)
    duration = max(durations)
    report.op_ms = 1000 * sorted(durations)[len(durations) // 2]
    wins = [w for w in windows[-1] if w[1] > w[0]]

    for i in range(kills):
        op.reset(work, ctx)
        if i % 2 == 0 or not wins:  # anywhere, including just after the end
            j = None
            kill = ("start", 0, rng.uniform(0.0, 1.1 * duration))
        else:  # inside the j-th write, timed from that write's own start
            j = rng.randrange(len(wins))
            kill = ("w+", j, rng.uniform(0.0, 1.1 * (wins[j][1] - wins[j][0])))
        marks = _run_op_child(op, work, ctx, kill=kill)
        _, end, got = _windows(marks)
        report.kills += 1
        if end is None:
            report.inside += 1
            if got and got[-1][1] == float("inf"):
                report.inside_write += 1
        state = _call_in_child(op.check, work, ctx) if op.fresh_process else op.check(work, ctx)
        report.debris += len(op.debris(work))
        if state.startswith("inconsistent"):
            where = "anywhere" if j is None else f"in write {j}"
            report.inconsistent.append(f"kill {i} ({where}, {1000 * kill[2]:.1f} ms): {state}")
            state = "inconsistent"
        report.states[state] = report.states.get(state, 0) + 1
    report.seconds = time.monotonic() - t0
    return report


# -- the operations -------------------------------------------------------------------------
def _marking_transactions(mark) -> None:
    """Mark every gallery write transaction ("w+" on BEGIN, "w-" after COMMIT) in this child."""
    from siamgui.core.gallery.store import GalleryStore

    tx = GalleryStore._Tx
    enter, exit_ = tx.__enter__, tx.__exit__

    def marked_enter(self):
        con = enter(self)
        mark("w+")
        return con

    def marked_exit(self, *exc):
        try:
            return exit_(self, *exc)
        finally:
            mark("w-")

    tx.__enter__, tx.__exit__ = marked_enter, marked_exit


def _gallery_state(path: Path, fingerprints: list[str]) -> dict:
    """Names, examples per identity and embeddings per fingerprint, read as the next start would."""
    from siamgui.core.gallery import GalleryStore

    with GalleryStore(path, create=False) as g:
        if not g.integrity_ok():
            raise ValueError("PRAGMA integrity_check is not ok")
        return {"identities": {i.name: i.examples for i in g.identities()},
                "embedded": {fp: g.fingerprints().get(fp, 0) for fp in fingerprints}}


def _continue_gallery(path: Path, fingerprint: str) -> None:
    """The next start: the file takes a write and gives a search snapshot."""
    from siamgui.core.gallery import GalleryStore

    with GalleryStore(path, create=False) as g:
        names = g.names()
        if names:
            g.set_notes(names[0], "opened after a kill")
        g.index(fingerprint)


def _enrol_prepare(base: Path, fx: dict) -> dict:
    from siamgui.core.gallery import Gallery, model_fingerprint
    from siamgui.core.verifier import Verifier

    images = list(map(str, fx["images"]))
    verifier = Verifier(fx["model_a"], device="cpu")
    path = base / "gallery.sqlite"
    with Gallery(path) as g:
        for k in range(4):
            g.enroll(verifier, f"person {k}", images[k * 3:k * 3 + 3])
    fp = model_fingerprint(verifier)
    new = images[12:12 + fx.get("enrol_images", 8)]
    ctx = {"template": str(path), "model": str(fx["model_a"]), "new": new, "fp": fp}
    ctx["before"] = _gallery_state(path, [fp])
    after = json.loads(json.dumps(ctx["before"]))
    after["identities"]["newcomer"] = len(new)
    after["embedded"][fp] += len(new)
    ctx["after"] = after
    return ctx


def _copy_gallery(work: Path, ctx: dict) -> None:
    for f in work.glob("gallery.sqlite*"):
        f.unlink()
    shutil.copyfile(ctx["template"], work / "gallery.sqlite")


def _enrol_run(work: Path, ctx: dict, mark) -> None:
    from siamgui.core.gallery import Gallery
    from siamgui.core.verifier import Verifier

    verifier = Verifier(ctx["model"], device="cpu")
    _marking_transactions(mark)
    with Gallery(work / "gallery.sqlite") as g:
        mark("start")
        g.enroll(verifier, "newcomer", ctx["new"])
    mark("end")


def _enrol_check(work: Path, ctx: dict) -> str:
    path = work / "gallery.sqlite"
    try:
        state = _gallery_state(path, [ctx["fp"]])
        _continue_gallery(path, ctx["fp"])
    except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
        return f"inconsistent: {type(exc).__name__}: {exc}"
    for name in ("before", "after"):
        if state == ctx[name]:
            return name
    return f"inconsistent: {state}"


def _reembed_prepare(base: Path, fx: dict) -> dict:
    import numpy as np

    from siamgui.core.gallery import Gallery, model_fingerprint
    from siamgui.core.verifier import Verifier

    images = list(map(str, fx["images"]))
    per = 4
    va, vb = Verifier(fx["model_a"], device="cpu"), Verifier(fx["model_b"], device="cpu")
    path = base / "gallery.sqlite"
    n = fx.get("reembed_identities", 6)
    with Gallery(path) as g:
        for k in range(n):
            g.enroll(va, f"person {k}", images[k * per:(k + 1) * per])
    expected_path = base / "expected.sqlite"
    shutil.copyfile(path, expected_path)
    with Gallery(expected_path) as g:
        g.sync(vb)
        idx = g.index(model_fingerprint(vb))
        expected = {int(e): np.asarray(v) for e, v in zip(idx.example_ids, idx.vectors)}
    np.savez(base / "expected.npz", ids=np.array(sorted(expected)), vectors=np.stack(
        [expected[k] for k in sorted(expected)]))
    fa, fb = model_fingerprint(va), model_fingerprint(vb)
    return {"template": str(path), "model_b": str(fx["model_b"]), "fa": fa, "fb": fb, "examples": n * per,
            "batch": fx.get("reembed_batch", 4), "expected": str(base / "expected.npz"),
            "before": _gallery_state(path, [fa, fb])}


def _reembed_run(work: Path, ctx: dict, mark) -> None:
    from siamgui.core.gallery import Gallery
    from siamgui.core.verifier import Verifier

    verifier = Verifier(ctx["model_b"], device="cpu")
    _marking_transactions(mark)
    with Gallery(work / "gallery.sqlite") as g:
        mark("start")
        g.sync(verifier, batch_size=ctx["batch"])
    mark("end")


def _reembed_vectors_ok(g, ctx: dict) -> str | None:
    import numpy as np

    data = np.load(ctx["expected"])
    expected = dict(zip(data["ids"].tolist(), data["vectors"]))
    idx = g.index(ctx["fb"])
    for e, v in zip(idx.example_ids, idx.vectors):
        if int(e) not in expected or not np.allclose(v, expected[int(e)], atol=1e-3):
            return f"example {e} has a wrong embedding"
    old = g.index(ctx["fa"])
    if len(old) != ctx["examples"]:
        return f"{len(old)} of {ctx['examples']} old embeddings left"
    return None


def _reembed_check(work: Path, ctx: dict) -> str:
    from siamgui.core.gallery import Gallery
    from siamgui.core.verifier import Verifier

    path = work / "gallery.sqlite"
    try:
        state = _gallery_state(path, [ctx["fa"], ctx["fb"]])
        if state["identities"] != ctx["before"]["identities"]:
            return f"inconsistent: identities changed: {state['identities']}"
        with Gallery(path, create=False) as g:
            wrong = _reembed_vectors_ok(g, ctx)
            if wrong:
                return f"inconsistent: {wrong}"
            done = state["embedded"][ctx["fb"]]
            if done not in (0, ctx["examples"]) and done % ctx["batch"]:
                return f"inconsistent: {done} embedded, not a whole number of batches of {ctx['batch']}"
            # the next start resumes: everything ends up embedded, and correctly
            g.sync(_reembed_check.verifiers.setdefault(ctx["model_b"], Verifier(ctx["model_b"], device="cpu")))
            if g.unembedded_count(ctx["fb"]):
                return "inconsistent: resuming left examples unembedded"
            wrong = _reembed_vectors_ok(g, ctx)
            if wrong:
                return f"inconsistent after resuming: {wrong}"
    except Exception as exc:  # noqa: BLE001
        return f"inconsistent: {type(exc).__name__}: {exc}"
    return "before" if done == 0 else "after" if done == ctx["examples"] else "partial"


_reembed_check.verifiers = {}


def _model_prepare(base: Path, fx: dict) -> dict:
    from siamgui.core.modelfile import load_model

    fps = {k: load_model(fx[k]).fingerprint() for k in ("model_a", "model_save")}
    return {"before_file": str(fx["model_a"]), "new": str(fx["model_save"]), "before": fps["model_a"],
            "after": fps["model_save"]}


def _model_reset(work: Path, ctx: dict) -> None:
    for f in work.iterdir():
        f.unlink()
    shutil.copyfile(ctx["before_file"], work / "model.safetensors")


def _model_run(work: Path, ctx: dict, mark) -> None:
    from siamgui.core.modelfile import load_model, save_model

    m = load_model(ctx["new"])
    mark("start")
    mark("w+")
    save_model(work / "model.safetensors", m.network, m.meta)
    mark("w-")
    mark("end")


def _model_check(work: Path, ctx: dict) -> str:
    from siamgui.core.modelfile import load_model, save_model

    path = work / "model.safetensors"
    try:
        m = load_model(path)
        fp = m.fingerprint()
        save_model(path, m.network, m.meta)  # the next save to it goes through (and tidies up)
    except Exception as exc:  # noqa: BLE001
        return f"inconsistent: {type(exc).__name__}: {exc}"
    return "before" if fp == ctx["before"] else "after" if fp == ctx["after"] else "inconsistent: another model"


def _model_debris(work: Path) -> list[str]:
    return [f.name for f in work.iterdir() if f.name.endswith(".tmp")]


#: The keys the settings operation checks, and their "before" values.
_SETTINGS_BEFORE = {"models/recent": [f"/models/m{i}.safetensors" for i in range(8)], "device": "cpu",
                    "exact_float32": "true", "window/version": "1",
                    "paths/last_image_dir": "/pictures", "train/preset": "face"}


def _settings_env(work: Path) -> None:
    os.environ["XDG_CONFIG_HOME"] = str(work / "config")


def _settings_read(work: Path) -> dict:
    from PySide6.QtCore import QSettings

    from siamgui.gui import settings as gs

    _settings_env(work)
    s = QSettings(str(gs.settings_path()), QSettings.Format.IniFormat)
    out = {k: s.value(k) for k in _SETTINGS_BEFORE}
    out["models/recent"] = gs.recent_models()
    if s.status() != QSettings.Status.NoError:
        out["status"] = int(s.status().value)
    return out


def _settings_prepare(base: Path, fx: dict) -> dict:
    after = dict(_SETTINGS_BEFORE, device="auto")
    after["models/recent"] = ["/models/new.safetensors"] + _SETTINGS_BEFORE["models/recent"][:7]
    return {"before": _SETTINGS_BEFORE, "after": after, "template": str(base / "siamgui.ini")}


def _settings_reset(work: Path, ctx: dict) -> None:
    from PySide6.QtCore import QSettings

    shutil.rmtree(work / "config", ignore_errors=True)
    _settings_env(work)
    from siamgui.gui import settings as gs

    path = gs.settings_path()
    if not Path(ctx["template"]).is_file():
        s = QSettings(ctx["template"], QSettings.Format.IniFormat)
        for k, v in ctx["before"].items():
            s.setValue(k, v)
        s.sync()
        del s
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ctx["template"], path)


def _settings_run(work: Path, ctx: dict, mark) -> None:
    from siamgui.gui import settings as gs

    _settings_env(work)
    items = [p for p in gs.recent_models() if p != "/models/new.safetensors"]
    mark("start")
    mark("w+")
    s = gs.app_settings()
    s.setValue("device", "auto")  # kept in memory until the sync below writes both
    s.setValue("models/recent", ["/models/new.safetensors"] + items[:gs.MAX_RECENT - 1])
    gs.save_settings(s)
    mark("w-")
    mark("end")


def _settings_check(work: Path, ctx: dict) -> str:
    from siamgui.gui import settings as gs

    try:
        state = _settings_read(work)
        s = gs.app_settings()
        s.setValue("paths/last_model_dir", "/after-kill")
        if gs.save_settings(s) is not None:
            return "inconsistent: the settings could not be written after the kill"
        if _settings_read(work) != state:
            return "inconsistent: writing after the kill changed other settings"
    except Exception as exc:  # noqa: BLE001
        return f"inconsistent: {type(exc).__name__}: {exc}"
    for name in ("before", "after"):
        if state == ctx[name]:
            return name
    return f"inconsistent: {state}"


def _settings_debris(work: Path) -> list[str]:
    folder = work / "config" / "siamgui"
    return [f.name for f in folder.iterdir() if f.name != "siamgui.ini"] if folder.is_dir() else []


def _report_prepare(base: Path, fx: dict) -> dict:
    from siamgui.core.evaluation.report import render_report
    from siamgui.core.evaluation.run import pairs_from_folder, run_evaluation
    from siamgui.core.verifier import Verifier

    pairs = pairs_from_folder(Path(fx["images"][0]).parent.parent, 60, 0)
    results = {k: run_evaluation(Verifier(fx[m], device="cpu"), pairs, worst=2, workers=0)
               for k, m in (("before", "model_a"), ("after", "model_b"))}
    pages = {k: _report_normalised(render_report(r)) for k, r in results.items()}
    if pages["before"] == pages["after"]:
        raise RuntimeError("report: the two models' reports are the same; the check could not tell them apart")
    return {"results": results, "pages": pages, "template": str(base / "report.html")}


def _report_normalised(page: str) -> str:
    """The page without its time of writing (the one part that differs between two renderings)."""
    import re

    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", "WHEN", page)


def _report_reset(work: Path, ctx: dict) -> None:
    from siamgui.core.evaluation.report import write_report

    for f in work.iterdir():
        f.unlink()
    if not Path(ctx["template"]).is_file():
        write_report(ctx["results"]["before"], ctx["template"])
    shutil.copyfile(ctx["template"], work / "report.html")


def _report_run(work: Path, ctx: dict, mark) -> None:
    from siamgui.core.evaluation import report

    result = ctx["results"]["after"]
    page = report.render_report(result)
    report.render_report = lambda r: page  # the kill windows then time the write alone
    mark("start")
    mark("w+")
    report.write_report(result, work / "report.html")
    mark("w-")
    mark("end")


def _report_check(work: Path, ctx: dict) -> str:
    from siamgui.core.evaluation.report import write_report

    path = work / "report.html"
    try:
        page = _report_normalised(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return f"inconsistent: the report cannot be read: {exc}"
    state = next((k for k in ("before", "after") if page == ctx["pages"][k]), None)
    if state is None:
        return f"inconsistent: the report is neither the old nor the new one ({len(page)} characters)"
    try:  # the next write to the same path goes on (and removes what a killed writer left)
        write_report(ctx["results"][state], path)
    except Exception as exc:  # noqa: BLE001
        return f"inconsistent: writing the report again failed: {type(exc).__name__}: {exc}"
    return state


def _synthetic_clusters(people: int, faces: int, seed: int):
    """A :class:`ClusterResult` of ``people`` clusters over ``faces`` made-up faces (no model needed)."""
    from siamgui.core.people.cluster import ClusterResult, FaceItem

    rng = random.Random(seed)
    items = [FaceItem(f"/photos/p{k // 3:05d}.jpg", (rng.randrange(500), rng.randrange(500), 60, 60))
             for k in range(faces)]
    clusters = [items[i::people] for i in range(people)]
    return ClusterResult("model.safetensors", 0.6, "euclidean", clusters[1:], clusters[0], [("/photos/bad.jpg", "x")])


def _cluster_prepare(base: Path, fx: dict) -> dict:
    return {"results": {"before": _synthetic_clusters(40, 3000, 1), "after": _synthetic_clusters(55, 3300, 2)},
            "folder": "/photos"}


def _cluster_reset(work: Path, ctx: dict) -> None:
    from siamgui.core.people.cluster import write_json
    from siamgui.core.people.store import PeopleStore

    for f in work.iterdir():
        f.unlink()
    before = ctx["results"]["before"]
    write_json(before, work / "clusters.json")
    with PeopleStore(work / "people.sqlite") as store:
        store.save(ctx["folder"], before)


def _cluster_run(work: Path, ctx: dict, mark) -> None:
    from siamgui.core.people.cluster import write_json
    from siamgui.core.people.store import PeopleStore

    after = ctx["results"]["after"]
    mark("start")
    mark("w+")
    write_json(after, work / "clusters.json")
    mark("w-")
    with PeopleStore(work / "people.sqlite") as store:
        mark("w+")
        store.save(ctx["folder"], after)
        mark("w-")
    mark("end")


def _cluster_check(work: Path, ctx: dict) -> str:
    """``clusters.json`` and the People store each as before or after (the JSON is written first,
    so "partial" is a new JSON beside the old album); the next run writes both again."""
    from siamgui.core.people.cluster import write_json
    from siamgui.core.people.store import PeopleStore

    results = ctx["results"]
    try:
        data = json.loads((work / "clusters.json").read_text(encoding="utf-8"))
        js = next((k for k, r in results.items() if data == r.to_dict()), None)
        with PeopleStore(work / "people.sqlite") as store:
            albums = [a for a in store.albums() if a.folder == ctx["folder"]]
            if len(albums) != 1:
                return f"inconsistent: {len(albums)} albums of the folder"
            people = store.people(albums[0].id)
            shape = (sorted(len(p.faces) for p in people), len(store.unsorted(albums[0].id)))
            db = next((k for k, r in results.items()
                       if shape == (sorted(len(c) for c in r.clusters), len(r.unsorted))), None)
            if js is None or db is None:
                return f"inconsistent: clusters.json is {js or 'neither'}, the People store {db or 'neither'}"
            write_json(results[js], work / "clusters.json")  # removes a killed writer's temporary file
            store.save(ctx["folder"], results[db])
    except Exception as exc:  # noqa: BLE001
        return f"inconsistent: {type(exc).__name__}: {exc}"
    if js == db:
        return js
    return "partial" if (js, db) == ("after", "before") else f"inconsistent: JSON {js}, store {db}"


#: The operations of the kill harness, by name.
KILL_OPS: dict[str, KillOp] = {op.name: op for op in (
    KillOp("enrol", _enrol_prepare, _copy_gallery, _enrol_run, _enrol_check,
           lambda work: [f.name for f in work.glob("gallery.sqlite-*")]),
    KillOp("re-embed", _reembed_prepare, _copy_gallery, _reembed_run, _reembed_check,
           lambda work: [f.name for f in work.glob("gallery.sqlite-*")]),
    KillOp("model-save", _model_prepare, _model_reset, _model_run, _model_check, _model_debris),
    KillOp("report", _report_prepare, _report_reset, _report_run, _report_check, _model_debris),
    KillOp("cluster-save", _cluster_prepare, _cluster_reset, _cluster_run, _cluster_check, _model_debris),
    KillOp("settings", _settings_prepare, _settings_reset, _settings_run, _settings_check, _settings_debris,
           fresh_process=True),
)}


def kill_fixtures(root: Path, model_a=None, model_b=None, model_save=None) -> dict:
    """Models and images for :data:`KILL_OPS`: a dataset of shapes and two small models (trained
    here unless given); ``model_save`` (the model saved over ``model_a``) defaults to ``model_b``."""
    from siamgui.core.synthetic import make_shapes_dataset

    data = make_shapes_dataset(root / "shapes", n_classes=6, per_class=6, size=64, seed=1)
    images = sorted(p for c in sorted(data.iterdir()) if c.is_dir() for p in sorted(c.iterdir()))
    if model_a is None:
        model_a, model_b = small_models(root, data)
    return {"model_a": Path(model_a), "model_b": Path(model_b), "model_save": Path(model_save or model_b),
            "images": images}


def small_models(root: Path, data: Path) -> tuple[Path, Path]:
    """A quickly trained compact model and a perturbed copy (same architecture, another fingerprint)."""
    import torch

    from siamgui.core.modelfile import load_model, save_model
    from siamgui.core.training import Finished, TrainConfig, train

    cfg = TrainConfig(str(data), preset="generic", arch="compact-cnn", arch_kwargs={"width": 8}, image_size=32,
                      embedding_dim=16, epochs=1, pairs_per_epoch=32, batch_size=16, val_split=0.3, seed=0,
                      device="cpu", val_pairs=100)
    result = next(ev.result for ev in train(cfg) if isinstance(ev, Finished))
    a = result.save(root / "a.safetensors") or root / "a.safetensors"
    loaded = load_model(a)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in loaded.network.encoder.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    b = save_model(root / "b.safetensors", loaded.network, loaded.meta)
    return Path(a), b


# =========================================================================================
# Two processes, one gallery
# =========================================================================================
#: Examples per enrolment in :func:`shared_gallery` (a reader seeing another count saw half of one).
PER_ENROLMENT = 3


def _gallery_writer(k: int, path: str, model: str, images: list[str], seconds: float, conn) -> None:
    """Enrol new names (each with PER_ENROLMENT images) and identify in turn until ``seconds`` pass."""
    from siamgui.core.errors import SiamguiError
    from siamgui.core.gallery import Gallery
    from siamgui.core.verifier import Verifier

    try:
        _child_setup()
        verifier = Verifier(model, device="cpu")
        deadline = time.monotonic() + seconds
        i = identified = 0
        with Gallery(path) as g:
            conn.send(("ready", k))
            while time.monotonic() < deadline:
                name = f"writer {k} #{i}"
                pick = [images[(i * PER_ENROLMENT + j + k * 7) % len(images)] for j in range(PER_ENROLMENT)]
                try:
                    g.enroll(verifier, name, pick)
                    conn.send(("enrolled", name))
                except SiamguiError as exc:
                    conn.send(("refused", f"{name}: {exc}"))
                i += 1
                try:
                    g.identify(verifier, images[i % len(images)])
                    identified += 1
                except SiamguiError as exc:
                    if "empty" not in str(exc):
                        conn.send(("refused", f"identify: {exc}"))
        conn.send(("identified", identified))
    except BaseException:  # noqa: BLE001 - the parent reports it
        conn.send(("crash", traceback.format_exc()))
    finally:
        conn.close()


def _gallery_reader(path: str, fingerprint: str, seconds: float, conn) -> None:
    """Read search snapshots and identity lists until ``seconds`` pass; report any half enrolment."""
    from siamgui.core.errors import SiamguiError
    from siamgui.core.gallery import GalleryStore

    try:
        deadline = time.monotonic() + seconds
        reads = 0
        with GalleryStore(path) as g:
            conn.send(("ready", "reader"))
            while time.monotonic() < deadline:
                try:
                    index = g.index(fingerprint)
                    infos = g.identities(fingerprint)
                except SiamguiError as exc:
                    conn.send(("refused", f"read: {exc}"))
                    continue
                counts: dict[int, int] = {}
                for owner in index.owner.tolist():
                    counts[owner] = counts.get(owner, 0) + 1
                for pos, name in enumerate(index.names):
                    if counts.get(pos, 0) != PER_ENROLMENT:
                        conn.send(("half", f"snapshot: {name} with {counts.get(pos, 0)} embeddings"))
                for info in infos:
                    if info.examples != PER_ENROLMENT or info.embedded != PER_ENROLMENT:
                        conn.send(("half", f"list: {info.name} with {info.examples} examples, "
                                           f"{info.embedded} embedded"))
                reads += 1
        conn.send(("reads", reads))
    except BaseException:  # noqa: BLE001
        conn.send(("crash", traceback.format_exc()))
    finally:
        conn.close()


def shared_gallery(path: Path, model, images, seconds: float, writers: int = 2, readers: int = 1) -> dict:
    """``writers`` processes enrolling distinct names and identifying, ``readers`` reading, all on
    one gallery file for ``seconds``; then every reported enrolment must be there, whole.

    Returns counts: ``enrolled`` (reported by the writers), ``found`` (of those in the file
    afterwards, whole), ``lost``, ``extra`` (in the file but not reported), ``refused`` messages
    (e.g. "busy"), ``half_seen`` (a reader saw part of an enrolment), ``crashes``,
    ``integrity`` ("ok" or SQLite's complaint), ``reads`` and ``identified``.
    """
    from siamgui.core.gallery import GalleryStore
    from siamgui.core.modelfile import load_model

    mp = fork_context()
    fingerprint = load_model(model).fingerprint()
    GalleryStore(path).close()  # created (and migrated) before the race
    procs, conns = [], []
    for k in range(writers + readers):
        recv, send = mp.Pipe(duplex=False)
        if k < writers:
            args = (_gallery_writer, (k, str(path), str(model), [str(p) for p in images], seconds, send))
        else:
            args = (_gallery_reader, (str(path), fingerprint, seconds, send))
        p = mp.Process(target=args[0], args=args[1], daemon=True)
        p.start()
        send.close()
        procs.append(p)
        conns.append(recv)
    out = {"seconds": seconds, "writers": writers, "readers": readers, "enrolled": 0, "refused": [],
           "half_seen": [], "crashes": [], "reads": 0, "identified": 0}
    names: set[str] = set()
    deadline = time.monotonic() + seconds + 120
    for p, conn in zip(procs, conns):
        while True:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                out["crashes"].append("a child did not finish in time")
                break
            try:
                kind, value = conn.recv()
            except EOFError:
                break
            if kind == "enrolled":
                names.add(value)
            elif kind in ("refused", "crashes"):
                out["refused"].append(value)
            elif kind == "half":
                out["half_seen"].append(value)
            elif kind == "crash":
                out["crashes"].append(value)
            elif kind in ("reads", "identified"):
                out[kind] += int(value)
        p.join(10)
        if p.is_alive():
            p.kill()
    out["enrolled"] = len(names)
    with GalleryStore(path, create=False) as g:
        out["integrity"] = g._query("PRAGMA integrity_check")[0][0]
        stored = {i.name: (i.examples, i.embedded) for i in g.identities(fingerprint)}
    whole = (PER_ENROLMENT, PER_ENROLMENT)
    out["found"] = sum(1 for n in names if stored.get(n) == whole)
    out["lost"] = sorted(n for n in names if stored.get(n) != whole)
    out["extra"] = sorted(set(stored) - names)
    out["refused"] = out["refused"][:20] + ([f"... {len(out['refused']) - 20} more"] if len(out["refused"]) > 20
                                             else [])
    return out


# =========================================================================================
# Memory stays flat
# =========================================================================================
def _app():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([])


def wait_until(cond: Callable[[], bool], timeout: float = 60.0, what: str = "a condition") -> None:
    """Run the Qt event loop until ``cond()`` holds (TimeoutError after ``timeout`` s)."""
    app = _app()
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        app.processEvents()
        time.sleep(0.002)


def _python_threads() -> int:
    """Threads Python started. Not its "Dummy" entries: a Qt pool thread that once asked for
    threading.current_thread() stays listed after it ends (Python 3.11), which is not a leak of ours;
    a Qt thread that stays is counted by ``qthreads_running``."""
    return sum(not isinstance(t, threading._DummyThread) for t in threading.enumerate())


def census(root=None, primed: bool = False) -> dict:
    """What the process holds: Python objects (all, and of the kinds that leak in a GUI), Qt
    widgets, Qt objects under ``root``, threads and running QThreads. ``primed``: count twice and
    keep the second, so what the first count itself creates once is not taken for a leak."""
    from collections import Counter

    from PySide6.QtCore import QObject, QThread
    from PySide6.QtWidgets import QApplication

    if primed:
        census(root)

    _app().processEvents()
    gc.collect()
    objects = gc.get_objects()
    kinds = Counter(type(o).__name__ for o in objects)
    running = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance on some lazy modules warns
        for o in objects:
            if isinstance(o, QThread):
                with contextlib.suppress(RuntimeError):  # a wrapper whose C++ thread is gone
                    running += bool(o.isRunning())
    out = {"python_objects": len(objects), "widgets": len(QApplication.allWidgets()),
           "threads": _python_threads(), "qthreads_running": running}
    for name in ("Worker", "QPixmap", "QImage", "Tensor", "ndarray", "Comparison", "Identification", "Image"):
        out[name] = kinds.get(name, 0)
    if root is not None:
        out["qt_children"] = len(root.findChildren(QObject))
    del objects
    return out


class RssLog:
    """RSS over time: (seconds since start, operations done, RSS MB), sampled every ``every`` ops."""

    def __init__(self, total: int, samples: int = 60):
        self.every = max(1, total // samples)
        self.t0 = time.monotonic()
        self.points: list[tuple[float, int, float]] = []

    def tick(self, ops: int, force: bool = False) -> None:
        if force or ops % self.every == 0:
            self.points.append((round(time.monotonic() - self.t0, 2), ops, round(rss_mb(), 1)))


def growth_per_1000(points: list[tuple[float, int, float]], warmup: float = 0.2) -> float | None:
    """Least-squares slope of RSS (MB) per 1,000 operations, after the first ``warmup`` of them."""
    if not points:
        return None
    last = points[-1][1]
    xs = [(o, r) for _, o, r in points if o >= warmup * last]
    if len(xs) < 3:
        return None
    mx = sum(o for o, _ in xs) / len(xs)
    my = sum(r for _, r in xs) / len(xs)
    var = sum((o - mx) ** 2 for o, _ in xs)
    if var == 0:
        return None
    return round(1000 * sum((o - mx) * (r - my) for o, r in xs) / var, 3)


def _diff(before: dict, after: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after}


def _finish(name: str, log: RssLog, ops: int, before: dict, after: dict, unit: str, extra: dict | None = None) -> dict:
    rss = [r for _, _, r in log.points]
    out = {"scenario": name, "operations": ops, "unit": unit, "seconds": round(time.monotonic() - log.t0, 1),
           "rss_start_mb": rss[0] if rss else None, "rss_end_mb": rss[-1] if rss else None,
           "rss_max_mb": max(rss) if rss else None, "growth_mb_per_1000": growth_per_1000(log.points),
           "objects_per_op": round((after["python_objects"] - before["python_objects"]) / max(1, ops), 2),
           "before": before, "after": after, "leaked": _diff(before, after), "rss": log.points}
    out.update(extra or {})
    return out


def image_pool(n: int = 200) -> list[Path]:
    """LFW photos when the shared data is there, else generated shapes (in a temporary folder)."""
    from bench.common import LFW_ROOT

    if LFW_ROOT.is_dir():
        files = sorted(p for d in sorted(LFW_ROOT.iterdir())[:400] if d.is_dir() for p in sorted(d.iterdir()))
        if len(files) >= 10:
            return files[:n]
    from siamgui.core.synthetic import make_shapes_dataset

    data = make_shapes_dataset(Path(tempfile.mkdtemp(prefix="soak-images-")), n_classes=10, per_class=max(2, n // 10),
                               size=96, seed=5)
    return sorted(data.rglob("*.png"))[:n]


def _window(model):
    """The app's main window with every tab, shown, with ``model`` loaded (None: the bundled one)."""
    from siamgui.gui.main_window import MainWindow
    from siamgui.gui.state import AppState

    _app()
    state = AppState(device="cpu")
    win = MainWindow(state)
    win.resize(1240, 780)
    win.show()
    loaded = []
    state.model_changed.connect(loaded.append)
    state.load_model(None if model is None else str(model))
    wait_until(lambda: bool(loaded), 120, "the model")
    return win


def _repeat(win, n: int, signal, act: Callable[[int], None], what: str, good=bool) -> tuple:
    """``act(i)`` ``n`` times, each time until ``signal`` fires; RSS logged, a census after the warm-up
    and at the end. Returns (log, before, after, how many signal values were ``good``)."""
    seen = [0, 0]  # counted, not kept: a list of results would be a leak of our own

    def on_signal(value) -> None:
        seen[0] += 1
        seen[1] += bool(good(value))

    signal.connect(on_signal)
    warm = max(10, n // 20)
    log = RssLog(n)
    before = None
    for i in range(n):
        if i == warm:
            before = census(win, primed=True)
        k = seen[0]
        act(i)
        wait_until(lambda: seen[0] > k, 120, f"{what} {i}")
        log.tick(i + 1)
    log.tick(n, force=True)
    if before is not None:  # a thread of the last operation may still be ending: a leak is one that stays
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: _python_threads() <= before["threads"], 5.0, "threads to end")
    after = census(win)
    return log, before or after, after, seen[1]


def soak_compare(n: int, model=None, images=None) -> dict:
    """``n`` comparisons in the Compare tab, both slots replaced each time (new images, as a user does)."""
    win = _window(model)
    tab = win.compare_tab
    pool = [str(p) for p in (images or image_pool())]

    def compare(i: int) -> None:
        tab.slot_a.set_image_path(pool[(2 * i) % len(pool)])
        tab.slot_b.set_image_path(pool[(2 * i + 1) % len(pool)])

    try:
        log, before, after, ok = _repeat(win, n, tab.comparison_finished, compare, "comparison")
    finally:
        win.close_now()
    return _finish("compare", log, n, before, after, "comparisons", {"succeeded": ok})


class LoopedVideo:
    """A video file played in a loop, paced at its frame rate like a camera (never ends)."""

    def __init__(self, path: str):
        from siamgui.capture.camera import open_source

        self._path, self._open = path, open_source
        self._src = open_source(path)
        self.description, self.is_file, self.loops = f"{Path(path).name} (looped)", False, 0
        self._due = time.monotonic()

    @property
    def fps(self) -> float:
        return self._src.fps

    def read(self):
        self._due += 1.0 / self._src.fps
        delay = self._due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            self._due = time.monotonic()
        frame = self._src.read()
        if frame is None:
            self._src.release()
            self._src = self._open(self._path)
            self.loops += 1
            frame = self._src.read()
        return frame

    def release(self) -> None:
        self._src.release()

    def end_message(self) -> str:
        return "The looped video stopped."


def face_video(path: Path, frames: int = 60, size=(640, 480), fps: float = 15.0) -> Path | None:
    """An MJPG video of LFW faces (or generated shapes) on a grey 640x480 frame; None if OpenCV cannot write it."""
    import cv2
    import numpy as np

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        return None
    pool = image_pool(frames)
    for i in range(frames):
        frame = np.full((h, w, 3), 90, np.uint8)
        img = cv2.imread(str(pool[i % len(pool)]))
        if img is not None:
            img = cv2.resize(img, (min(250, w), min(250, h)))
            x, y = (i * 7) % (w - img.shape[1]), (h - img.shape[0]) // 2
            frame[y:y + img.shape[0], x:x + img.shape[1]] = img
        writer.write(frame)
    writer.release()
    return path


def soak_camera(seconds: float, model=None, video: Path | None = None) -> dict:
    """The Compare tab's camera preview for ``seconds`` on a looped face video (detection on with a face model)."""
    win = _window(model)
    tab = win.compare_tab
    video = video or face_video(Path(tempfile.mkdtemp(prefix="soak-video-")) / "faces.avi")
    if video is None:
        win.close_now()
        return {"scenario": "camera", "skipped": "OpenCV could not write the test video"}
    frames = [0]
    tab.camera_view.frame_ready.connect(lambda _f: frames.__setitem__(0, frames[0] + 1))
    sources: list[LoopedVideo] = []

    def source():
        sources.append(LoopedVideo(str(video)))
        return sources[-1]

    log = RssLog(1)
    before = None
    try:
        tab.show_camera_panel(True)
        tab.camera_view.start(source)  # what Start does, with the looped video as the camera
        wait_until(lambda: frames[0] >= 5, 60, "the first frames")
        t0 = time.monotonic()
        warm_until = t0 + min(60.0, seconds * 0.1)
        next_sample = t0
        while time.monotonic() - t0 < seconds:
            wait_until(lambda: time.monotonic() >= next_sample, 120, "the sampling time")
            if before is None and time.monotonic() >= warm_until:
                before = census(win, primed=True)
            log.tick(frames[0], force=True)
            next_sample += max(1.0, seconds / 60)
        detecting = bool(tab.camera_view._detect_faces)
        tab.stop_camera()
        wait_until(lambda: not tab.camera_view.running, 30, "the camera to stop")
        after = census(win)
    finally:
        win.close_now()
    return _finish("camera", log, frames[0], before or after, after, "frames",
                   {"detection": detecting, "video_loops": sum(s.loops for s in sources),
                    "minutes": round(seconds / 60, 2)})


def soak_training(runs: int, steps: int = 5) -> dict:
    """``runs`` trainings in the Train tab, each started, run for ``steps`` batches and stopped."""
    from siamgui.core.synthetic import make_shapes_dataset

    win = _window(None)
    wait_until(lambda: win.train_tab is not None, 120, "the Train tab")
    tab = win.train_tab
    tab.extra_config = {"arch_kwargs": {"width": 8}, "val_pairs": 100}
    tab.show_message = lambda title, text: None
    tab.ask_question = lambda title, text: True
    data = make_shapes_dataset(Path(tempfile.mkdtemp(prefix="soak-train-")), n_classes=8, per_class=8, size=40, seed=3)
    scanned = []
    tab.dataset_scanned.connect(scanned.append)
    tab.choose_folder(str(data))
    wait_until(lambda: bool(scanned), 60, "the dataset scan")
    f = tab.settings_form
    f.arch.setCurrentIndex(f.arch.findData("compact-cnn"))
    f.image_size.setValue(32)
    f.embedding_dim.setValue(16)
    f.epochs.setValue(50)
    f.batch_size.setValue(16)
    f.pairs_per_epoch.setValue(640)
    f.device.setCurrentIndex(f.device.findData("cpu"))
    ended = [0]
    tab.training_ended.connect(lambda _kept: ended.__setitem__(0, ended[0] + 1))
    log = RssLog(runs, samples=runs)
    before = None
    try:
        for i in range(runs):
            if i == 1:
                before = census(win, primed=True)
            if not tab.start():
                raise RuntimeError(f"training run {i} did not start")
            wait_until(lambda: tab._last_step is not None and tab._last_step.global_step >= steps, 120,
                       f"{steps} steps of run {i}")
            k = ended[0]
            tab.stop()
            wait_until(lambda: ended[0] > k and not tab.is_training, 120, f"run {i} to stop")
            log.tick(i + 1, force=True)
        wait_until(lambda: not tab.busy, 60, "the Train tab's threads")
        after = census(win)
    finally:
        win.close_now()
    return _finish("training", log, runs, before or after, after, "training runs")


def soak_identify(n: int, model=None, images=None) -> dict:
    """``n`` identifications of probe images in the Gallery tab against an enrolled gallery."""
    from siamgui.core.gallery import Gallery
    from siamgui.core.verifier import Verifier

    pool = [str(p) for p in (images or image_pool())]
    with Gallery() as g:  # the app's default gallery (in the soak's own data folder)
        v = Verifier(None if model is None else str(model), device="cpu")
        for k in range(min(20, len(pool) // 4)):
            g.enroll(v, f"person {k}", pool[4 * k:4 * k + 3], skip_bad=True)
        del v
    win = _window(model)
    wait_until(lambda: win.gallery_tab is not None, 120, "the Gallery tab")
    tab = win.gallery_tab
    wait_until(lambda: not tab.busy(), 300, "the gallery's embeddings")
    try:
        log, before, after, named = _repeat(win, n, tab.identification_shown,
                                            lambda i: tab.identify_file(pool[(4 * i + 3) % len(pool)]),
                                            "identification", good=lambda r: getattr(r, "best", None))
    finally:
        win.close_now()
    return _finish("identify", log, n, before, after, "identifications", {"identified": named})


MEMORY_SCENARIOS = {"compare": soak_compare, "camera": soak_camera, "training": soak_training,
                    "identify": soak_identify}


# =========================================================================================
# The runner
# =========================================================================================
def _isolate(root: Path) -> None:
    """Settings, app data and caches of this run under ``root``: a soak never touches the user's."""
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_CACHE_HOME", "cache"),
                     ("SIAMGUI_DATA_DIR", "siamgui-data")):
        os.environ[var] = str(root / sub)


def _run_scenario(args) -> int:
    """``--scenario NAME``: one memory scenario in this (fresh) process; JSON to ``--json-out``."""
    with tempfile.TemporaryDirectory(prefix="soak-app-") as tmp:
        _isolate(Path(tmp))
        model = None if args.model == "bundled" else args.model
        if args.scenario == "compare":
            out = soak_compare(args.count, model)
        elif args.scenario == "identify":
            out = soak_identify(args.count, model)
        elif args.scenario == "training":
            out = soak_training(args.count)
        else:
            out = soak_camera(args.count, model)
    Path(args.json_out).write_text(json.dumps(out))
    return 0


def _memory(args, notes: list[str]) -> list[dict]:
    sizes = {"compare": max(20, int(args.comparisons * args.scale)),
             "camera": max(10, int(args.camera_minutes * 60 * args.scale)),
             "training": max(3, int(args.train_runs * args.scale)),
             "identify": max(20, int(args.identifications * args.scale))}
    out = []
    for name in MEMORY_SCENARIOS:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "out.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--scenario", name, "--count", str(sizes[name]),
                   "--model", args.model, "--json-out", str(target)]
            print(f"memory: {name} x {sizes[name]} ...", flush=True)
            proc = __import__("subprocess").run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or not target.is_file():
                notes.append(f"memory {name} failed: {proc.stderr.strip()[-2000:]}")
                continue
            out.append(json.loads(target.read_text()))
    return out


def _kills(args, root: Path, notes: list[str]) -> list[dict]:
    kills = max(4, int(args.kills * min(1.0, args.scale * 10)))
    fx = kill_fixtures(root / "fixtures", model_save=_bundled_model() if args.model == "bundled" else None)
    out = []
    for name, op in KILL_OPS.items():
        print(f"kill: {name} x {kills} ...", flush=True)
        try:
            out.append(kill_test(op, kills, fx, root / name, seed=args.seed).as_dict())
        except Exception as exc:  # noqa: BLE001 - report and go on with the next operation
            notes.append(f"kill {name} failed: {exc}")
    return out


def _bundled_model() -> Path | None:
    path = REPO / "resources" / "models" / "face.safetensors"
    return path if path.is_file() else None


def _gallery(args, root: Path) -> list[dict]:
    fx = kill_fixtures(root / "fixtures")
    seconds = max(5.0, args.gallery_seconds * args.scale)
    out = []
    for writers, readers in ((2, 1), (3, 2)):
        print(f"gallery: {writers} writers, {readers} readers, {seconds:.0f} s ...", flush=True)
        res = shared_gallery(root / f"g{writers}{readers}.sqlite", fx["model_a"], fx["images"], seconds, writers,
                             readers)
        res["crashes"] = [c[-800:] for c in res["crashes"]]
        out.append(res)
    return out


def _summary(result: dict) -> None:
    for m in result.get("memory", []):
        if "skipped" in m:
            print(f"memory {m['scenario']}: skipped ({m['skipped']})")
            continue
        leaks = {k: v for k, v in m["leaked"].items() if k not in ("python_objects",) and v}
        print(f"memory {m['scenario']}: {m['operations']} {m['unit']} in {m['seconds']:.0f} s, RSS "
              f"{m['rss_start_mb']:.0f} -> {m['rss_end_mb']:.0f} MB (max {m['rss_max_mb']:.0f}), growth "
              f"{m['growth_mb_per_1000']} MB per 1,000; Python objects {m['leaked']['python_objects']:+d}; "
              f"other changes {leaks or 'none'}")
    for k in result.get("kill", []):
        print(f"kill {k['operation']}: {k['kills']} kills ({k['inside']} during it, {k['inside_write']} while "
              f"writing), states {k['states']}, inconsistent {k['inconsistent']}, orphaned files "
              f"{k['debris_files']}, operation {k['op_ms']} ms")
    for g in result.get("gallery", []):
        print(f"gallery {g['writers']} writers + {g['readers']} readers, {g['seconds']:.0f} s: {g['enrolled']} "
              f"enrolled, {g['found']} found whole, {len(g['lost'])} lost, {len(g['extra'])} extra, "
              f"{len(g['half_seen'])} half seen in {g['reads']} reads, {len(g['refused'])} refused, "
              f"{len(g['crashes'])} crashes, integrity {g['integrity']}")
    for n in result.get("notes", []):
        print("note:", n)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=("memory", "kill", "gallery"), default=["memory", "kill", "gallery"])
    p.add_argument("--scale", type=float, default=1.0, help="fraction of each size below (0.1: a tenth)")
    p.add_argument("--comparisons", type=int, default=10000)
    p.add_argument("--camera-minutes", type=float, default=30.0)
    p.add_argument("--train-runs", type=int, default=20)
    p.add_argument("--identifications", type=int, default=1000)
    p.add_argument("--kills", type=int, default=50, help="kill points per operation")
    p.add_argument("--gallery-seconds", type=float, default=120.0, help="how long the processes share a gallery")
    p.add_argument("--model", default="bundled", help="model file for the app scenarios (default: the bundled one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "soak.json"))
    p.add_argument("--scenario", choices=tuple(MEMORY_SCENARIOS), help=argparse.SUPPRESS)
    p.add_argument("--count", type=float, help=argparse.SUPPRESS)
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.scenario:
        args.count = int(args.count) if args.scenario != "camera" else args.count
        return _run_scenario(args)
    result: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args),
                    "load_avg_start": os.getloadavg()[0], "notes": []}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = Path(tmp)
        _isolate(root / "home")
        if "kill" in args.only:
            result["kill"] = _kills(args, root / "kill", result["notes"])
        if "gallery" in args.only:
            result["gallery"] = _gallery(args, root / "gallery")
        if "memory" in args.only:
            result["memory"] = _memory(args, result["notes"])
    result["seconds"] = round(time.monotonic() - t0, 1)
    result["load_avg_end"] = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    _summary(result)
    print(f"wrote {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    from bench.soak import main as _main  # children pickle bench.soak's functions, not __main__'s

    sys.exit(_main())

"""The GUI's worker layer (siamgui.gui.workers): signals, abort, the one error formatter, the runners."""

from __future__ import annotations

import threading

import pytest
from _gui_helpers import no_thread_leaks  # noqa: F401

pytest.importorskip("pytestqt")

from siamgui.core.errors import ImageError  # noqa: E402
from siamgui.gui.workers import JobRunner, LatestOnlyRunner, Worker, WorkerGroup, error_text  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("no_thread_leaks")]
WAIT = 10000


def test_function_and_generator_report_on_the_gui_thread(qtbot):
    gui = threading.get_ident()
    seen = []

    def numbers(n):
        for i in range(n):
            yield i
        return "done"

    w = Worker(numbers, 3)
    w.yielded.connect(lambda v: seen.append((v, threading.get_ident() == gui)))
    with qtbot.waitSignal(w.returned, timeout=WAIT) as ret:
        w.start()
    assert ret.args == ["done"] and seen == [(0, True), (1, True), (2, True)]
    w.wait()

    f = Worker(lambda a, b: a + b, 2, 3)
    with qtbot.waitSignal(f.returned, timeout=WAIT) as ret:
        f.start()
    assert ret.args == [5]
    f.wait()


def test_abort_stops_a_generator_between_yields(qtbot):
    gate, closed = threading.Event(), []

    def endless():
        try:
            while True:
                gate.wait(5)
                yield 1
        finally:
            closed.append(True)

    w = Worker(endless)
    returned = []
    w.returned.connect(returned.append)
    with qtbot.waitSignal(w.yielded, timeout=WAIT):
        w.start()
    with qtbot.waitSignal(w.aborted, timeout=WAIT):
        w.abort()
        gate.set()
    w.wait()
    assert closed == [True] and returned == [] and w.abort_requested


def test_errors_become_one_line_messages(qtbot):
    def fail(exc):
        raise exc

    cases = [(ImageError("bad.png is not an image"), "bad.png is not an image", False),
             (ValueError("first line\nsecond line"), "Could not do it: ValueError: first line", True),
             (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"),
              "The device ran out of memory; try a smaller batch size or image size.", True)]
    for exc, message, has_details in cases:
        w = Worker(fail, exc, failure="Could not do it")
        with qtbot.waitSignal(w.errored, timeout=WAIT) as err:
            w.start()
        w.wait()
        assert err.args[0] == message and bool(err.args[1]) == has_details
        assert "\n" not in err.args[0]
    assert error_text(KeyError("k")) == "Unexpected error: KeyError: 'k'"


def test_task_progress_is_sent_when_the_shown_value_changes(qtbot):
    def count(task, n):
        for i in range(n + 1):
            task.progress(i, n)
        return task.cancelled()

    w = Worker(count, 1000, pass_task=True)
    steps = []
    w.progress.connect(lambda done, total: steps.append(done))
    with qtbot.waitSignal(w.returned, timeout=WAIT) as ret:
        w.start()
    w.wait()
    assert ret.args == [False] and len(steps) == 101 and steps[-1] == 1000


def test_worker_group_releases_finished_workers_and_waits(qtbot):
    group = WorkerGroup()
    gate = threading.Event()
    group.start(Worker(gate.wait, 5))
    assert group.busy
    gate.set()
    assert group.wait(WAIT)
    qtbot.waitUntil(lambda: not group, timeout=WAIT)


def test_latest_only_runner_replaces_the_waiting_request(qtbot):
    started, gate = [], threading.Event()

    def job(x):
        started.append(x)
        if x == 1:
            gate.wait(5)
        return x * 10

    runner = LatestOnlyRunner(job, name="test")
    results = []
    runner.succeeded.connect(lambda req, value: results.append((req, value)))
    runner.submit(1, 1)
    qtbot.waitUntil(lambda: started == [1], timeout=WAIT)
    runner.submit(2, 2)  # waits...
    runner.submit(3, 3)  # ...and is replaced
    gate.set()
    qtbot.waitUntil(lambda: len(results) == 2, timeout=WAIT)
    assert started == [1, 3] and results == [(1, 10), (3, 30)]  # the running one still reports, with its id
    assert runner.stop() and not runner.isRunning()


def test_job_runner_runs_jobs_one_after_another_and_cancels(qtbot):
    order = []

    def job(task, name):
        order.append(name)
        while name == "long" and not task.cancelled():
            task.sleep(0.01)
        return f"{name} {'cancelled' if task.cancelled() else 'done'}"

    runner = JobRunner(name="test-jobs")
    done, started = [], []
    runner.started_job.connect(lambda kind, label: started.append(label))
    runner.done.connect(lambda kind, result: done.append(result))
    runner.submit("a", "long job", job, "long")
    runner.submit("b", "short job", job, "short")
    assert runner.pending_kinds() == ["b", "a"]
    qtbot.waitUntil(lambda: order == ["long"], timeout=WAIT)
    runner.cancel_current()
    qtbot.waitUntil(lambda: len(done) == 2 and not runner.pending_kinds(), timeout=WAIT)
    assert done == ["long cancelled", "short done"] and started == ["long job", "short job"]
    assert runner.stop() and not runner.isRunning()

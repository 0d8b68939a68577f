"""The GUI's one worker layer: the GUI thread never waits on inference, files or cameras.

Work runs in a :class:`Worker` (one QThread each) and reports through signals
only; widgets connect to them (queued onto the GUI thread) and are never touched
from a worker thread.

- :class:`Worker` runs a function once, or a generator function whose values are
  reported as they are yielded; ``abort()`` is checked between yields.
- :class:`Task` is what a function asks for (``pass_task=True``) to report
  progress, notice an abort request or sleep until one.
- :class:`WorkerGroup` keeps an owner's workers alive while they run and waits
  for them on close.
- :class:`LatestOnlyRunner` serves a stream of requests where only the newest
  matters (comparisons, identification): a new request replaces one still waiting.
- :class:`JobRunner` runs queued jobs one after another with progress and cancel.
- :func:`error_text` turns any exception into the one-line message the GUI shows.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import deque
from functools import partial
from inspect import isgenerator
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal

from siamgui.core.errors import SiamguiError

log = logging.getLogger(__name__)

_ABORTED = object()


def error_text(exc: BaseException, failure: str = "Unexpected error") -> str:
    """The one-line message for ``exc``: a SiamguiError's own sentence, else ``failure``, type and text.

    Unexpected errors are logged with their traceback.
    """
    if isinstance(exc, SiamguiError):
        return str(exc)
    log.error("%s:\n%s", failure, "".join(traceback.format_exception(exc)))
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    low = text.lower()
    if "out of memory" in low:
        return "The device ran out of memory; try a smaller batch size or image size."
    if "cuda" in low:
        return f"{failure}: a CUDA error ({text}); try a smaller batch size or the CPU device."
    return f"{failure}: {type(exc).__name__}: {text}"


def error_details(exc: BaseException) -> str:
    """The traceback of an unexpected error, "" for a SiamguiError (its message says it all)."""
    return "" if isinstance(exc, SiamguiError) else "".join(traceback.format_exception(exc))


class Task:
    """Handed to a worker's function (``pass_task=True``): progress, abort requests, interruptible sleep."""

    def __init__(self, abort: threading.Event, emit_progress: Callable[[int, int], None]):
        self._abort, self._emit = abort, emit_progress
        self._last: int | None = None

    def progress(self, done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if pct != self._last:  # only when the shown value changes
            self._last = pct
            self._emit(int(done), int(total))

    def cancelled(self) -> bool:
        return self._abort.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True (at once) when an abort was requested."""
        return self._abort.wait(seconds)


class Worker(QThread):
    """Run ``fn(*args)`` (``fn(task, *args)`` with ``pass_task``) once, in its own thread.

    Signals, besides QThread's ``started`` and ``finished``: ``yielded(value)`` for
    each value of a generator, ``progress(done, total)`` from :meth:`Task.progress`,
    ``returned(result)`` (a generator's return value), ``errored(message, details)``
    (:func:`error_text` with ``failure`` as the lead for unexpected errors, and
    :func:`error_details`), ``aborted()`` when :meth:`abort` stopped a generator
    between yields. A plain function's result is always delivered; it may have
    stopped early because :meth:`Task.cancelled` said so.
    """

    yielded = Signal(object)
    progress = Signal(int, int)
    returned = Signal(object)
    errored = Signal(str, str)
    aborted = Signal()

    def __init__(self, fn: Callable[..., Any], *args, parent=None, name: str = "worker",
                 failure: str = "Unexpected error", pass_task: bool = False):
        super().__init__(parent)
        self.setObjectName(name)
        self._fn, self._args, self._failure = fn, args, failure
        self._abort = threading.Event()
        self._task = Task(self._abort, self.progress.emit) if pass_task else None

    def abort(self) -> None:
        """Ask the work to stop: checked between yields and by :meth:`Task.cancelled`."""
        self._abort.set()
        self.requestInterruption()

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    def run(self):
        try:
            args = self._args if self._task is None else (self._task, *self._args)
            result = self._fn(*args)
            if isgenerator(result):
                result = self._iterate(result)
        except Exception as exc:  # noqa: BLE001 - reported to the owner, the app keeps working
            self.errored.emit(error_text(exc, self._failure), error_details(exc))
            return
        if result is _ABORTED:
            self.aborted.emit()
        else:
            self.returned.emit(result)

    def _iterate(self, gen):
        while True:
            if self._abort.is_set():
                gen.close()
                return _ABORTED
            try:
                value = next(gen)
            except StopIteration as stop:
                return stop.value
            self.yielded.emit(value)


class WorkerGroup(QObject):
    """The workers of one owner: started here, kept until they finish, waited for on close."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._workers: list[Worker] = []

    def start(self, worker: Worker) -> Worker:
        self._workers.append(worker)
        worker.finished.connect(partial(self._release, worker))
        worker.start()
        return worker

    def _release(self, worker: Worker) -> None:
        if worker in self._workers:
            worker.wait()  # ``finished`` comes just before the thread ends
            self._workers.remove(worker)
            worker.deleteLater()

    def __len__(self) -> int:
        """Workers not yet released (running, or finished with the release still queued)."""
        return len(self._workers)

    @property
    def busy(self) -> bool:
        return any(w.isRunning() for w in self._workers)

    def wait(self, msecs: int | None = 30000) -> bool:
        """Wait for every worker (``None``: as long as it takes); True when all have ended."""
        return all([w.wait() if msecs is None else w.wait(msecs) for w in list(self._workers)])


class _Runner(QObject):
    """What both runners share: the worker running now (if any)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._worker: Worker | None = None

    def isRunning(self) -> bool:  # noqa: N802 - QThread's name: owners treat runners and threads alike
        return self._worker is not None and self._worker.isRunning()

    def _abort_and_wait(self, wait_ms: int) -> bool:
        if self._worker is None:
            return True
        self._worker.abort()
        return self._worker.wait(wait_ms)


class LatestOnlyRunner(_Runner):
    """One long-lived worker serving requests; only the newest waiting request is run.

    ``submit(request_id, *args)`` queues ``fn(*args)``, replacing a request not yet
    started. A request already running finishes, and its result is still emitted
    with its id (``succeeded(id, result)`` or ``failed(id, message)``): the receiver
    compares ids and ignores stale results. One thread for all requests, so the
    inference libraries' per-thread pools are made once.
    """

    succeeded = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self, fn: Callable[..., Any], parent=None, name: str = "worker"):
        super().__init__(parent)
        self._fn, self._name = fn, name
        self._cond = threading.Condition()
        self._pending: tuple[int, tuple] | None = None
        self._stopping = False
        self.busy = False

    def submit(self, request_id: int, *args) -> None:
        with self._cond:
            if self._stopping:
                return
            self._pending = (request_id, args)
            self._cond.notify()
        if self._worker is None:
            self._worker = Worker(self._serve, parent=self, name=self._name)
            self._worker.yielded.connect(self._on_outcome)
            self._worker.start()

    def cancel_pending(self) -> None:
        with self._cond:
            self._pending = None

    def stop(self, wait_ms: int = 10000) -> bool:
        """Stop after the current request (if any); True when the thread has ended."""
        with self._cond:
            self._stopping = True
            self._pending = None
            self._cond.notify()
        return self._abort_and_wait(wait_ms)

    def _serve(self):
        """The worker thread's loop: yields ``(request_id, ok, result or message)`` per request."""
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                request_id, args = self._pending
                self._pending = None
                self.busy = True
            try:
                outcome = (request_id, True, self._fn(*args))
            except Exception as exc:  # noqa: BLE001 - reported to the caller; the loop keeps serving
                outcome = (request_id, False, error_text(exc))
            self.busy = False
            yield outcome

    def _on_outcome(self, outcome) -> None:
        request_id, ok, value = outcome
        if ok:
            self.succeeded.emit(request_id, value)
        else:
            self.failed.emit(request_id, value)


class JobRunner(_Runner):
    """Runs ``fn(task, *args)`` jobs one after another, each in a :class:`Worker`; signals only.

    ``started_job(kind, label)``, ``progress(kind, done, total)``, ``done(kind, result)``,
    ``failed(kind, message)``. Cancelling is cooperative (:meth:`Task.cancelled`).
    """

    started_job = Signal(str, str)
    progress = Signal(str, int, int)
    done = Signal(str, object)
    failed = Signal(str, str)

    def __init__(self, parent=None, name: str = "jobs"):
        super().__init__(parent)
        self._name = name
        self._queue: deque = deque()
        self._stopping = False
        self.current: str | None = None

    def submit(self, kind: str, label: str, fn: Callable[..., Any], *args) -> None:
        if self._stopping:
            return
        self._queue.append((kind, label, fn, args))
        if self._worker is None:
            self._start_next()

    def pending_kinds(self) -> list[str]:
        return [j[0] for j in self._queue] + ([self.current] if self.current else [])

    def drop_pending(self, kind: str) -> None:
        self._queue = deque(j for j in self._queue if j[0] != kind)

    def cancel_current(self) -> None:
        if self._worker is not None:
            self._worker.abort()

    def stop(self, wait_ms: int = 15000) -> bool:
        """Drop the queue, cancel the current job and wait for it; True when nothing runs any more."""
        self._stopping = True
        self._queue.clear()
        return self._abort_and_wait(wait_ms)

    def _start_next(self) -> None:
        if not self._queue or self._stopping:
            return
        kind, label, fn, args = self._queue.popleft()
        self.current = kind
        w = Worker(fn, *args, parent=self, name=self._name, pass_task=True)
        w.started.connect(partial(self.started_job.emit, kind, label))
        w.progress.connect(partial(self.progress.emit, kind))
        w.returned.connect(partial(self._on_returned, kind))
        w.errored.connect(partial(self._on_errored, kind))
        w.finished.connect(partial(self._on_finished, w))
        self._worker = w
        w.start()

    def _on_returned(self, kind: str, result) -> None:
        self.current = None
        self.done.emit(kind, result)

    def _on_errored(self, kind: str, message: str, _details: str) -> None:
        self.current = None
        self.failed.emit(kind, message)

    def _on_finished(self, w: Worker) -> None:
        w.wait()
        w.deleteLater()
        if self._worker is w:
            self._worker = None
            self.current = None
            self._start_next()

"""Background workers: the GUI thread never waits on inference, files or cameras.

Workers only emit signals; widgets connect to them (queued onto the GUI thread)
and never get touched from a worker thread.

- :class:`FunctionWorker` runs one function once (``returned`` / ``errored``).
- :class:`LatestOnlyWorker` runs a function for a stream of requests where only
  the newest matters (the comparison): a request replaces any still waiting,
  and every result carries its request id so the caller drops stale ones.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QThread, Signal

log = logging.getLogger(__name__)


def error_text(exc: BaseException) -> str:
    """A message for the user: a SiamguiError's own sentence, else type and text (and log the traceback)."""
    from siamgui.core.errors import SiamguiError

    if isinstance(exc, SiamguiError):
        return str(exc)
    log.error("unexpected error in a worker:\n%s", "".join(traceback.format_exception(exc)))
    return f"Unexpected error: {type(exc).__name__}: {exc}"


class FunctionWorker(QThread):
    """Run ``fn(*args)`` once in a thread; emits ``returned(result)`` or ``errored(message)``."""

    returned = Signal(object)
    errored = Signal(str)

    def __init__(self, fn: Callable[..., Any], *args, parent=None):
        super().__init__(parent)
        self._fn, self._args = fn, args

    def run(self):
        try:
            result = self._fn(*self._args)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            self.errored.emit(error_text(exc))
        else:
            self.returned.emit(result)


class LatestOnlyWorker(QThread):
    """One long-lived thread serving requests; only the newest waiting request is run.

    ``submit(request_id, *args)`` queues ``fn(*args)``, replacing a request not yet
    started. A request already running finishes, and its result is still emitted
    with its id: the receiver compares ids and ignores stale results.
    """

    succeeded = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self, fn: Callable[..., Any], parent=None, name: str = "worker"):
        super().__init__(parent)
        self.setObjectName(name)
        self._fn = fn
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
        if not self.isRunning():
            self.start()

    def cancel_pending(self) -> None:
        with self._cond:
            self._pending = None

    def stop(self, wait_ms: int = 10000) -> bool:
        """Stop after the current request (if any); True when the thread has ended."""
        with self._cond:
            self._stopping = True
            self._pending = None
            self._cond.notify()
        return self.wait(wait_ms)

    def run(self):
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
                result = self._fn(*args)
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                self.failed.emit(request_id, error_text(exc))
            else:
                self.succeeded.emit(request_id, result)
            finally:
                self.busy = False

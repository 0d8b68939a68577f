"""Guard against Qt bindings that unbalance Python's reference to None.

PySide6 6.12.0 on Python 3.11 returned None without a reference from every
method returning void; each call (setText, show, processEvents, QTest.qWait)
dropped one reference, and a long session aborted with "none_dealloc". The
pin in pyproject.toml avoids it; this test fails if such a build comes back.
"""

import sys

import pytest


def test_void_calls_keep_none_balanced(qapp):
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QLabel

    label = QLabel("x")
    calls = [lambda: label.setText("y"), label.show, label.update, QCoreApplication.processEvents,
             lambda: QTest.qWait(0)]
    # Objects left by earlier tests (deferred deletes, queued signals) would free their
    # references to None during the loop and look like a leak: flush them first.
    import gc

    from PySide6.QtCore import QEvent

    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()
        gc.collect()
    before = sys.getrefcount(None)
    for _ in range(400):
        for call in calls:
            call()
    drift = sys.getrefcount(None) - before
    label.close()
    # 2,000 void calls: a leaking build loses ~2,000 references; allow small noise
    assert drift > -50, f"None lost {-drift} references over 2,000 Qt calls (a PySide6 refcount bug)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))

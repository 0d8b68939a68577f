"""Entry script of the PyInstaller bundle (``siamgui.spec``); pip installs use ``siamgui.__main__``.

The same script backs every executable in the bundle: with no command it opens
the desktop window, with a command it is the command line (``siamgui.cli``).
"""

from __future__ import annotations

import multiprocessing
import os
import sys


def _give_streams_a_home() -> None:
    """A windowed Windows executable starts with ``sys.stdout``/``sys.stderr`` = None.

    The CLI prints (notes, errors, results); writing to None would turn a normal
    run into an internal error, so send such output to the null device instead.
    Use the console executable (``siamgui-cli.exe``) to see it.
    """
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))


def main() -> int:
    # Spawned worker processes (DataLoader workers on Windows/macOS) re-run this
    # executable; freeze_support() turns them into workers instead of new apps.
    multiprocessing.freeze_support()
    _give_streams_a_home()
    from siamgui.__main__ import main as siamgui_main

    return siamgui_main()


if __name__ == "__main__":
    sys.exit(main())

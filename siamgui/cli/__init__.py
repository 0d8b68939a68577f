"""Command line: the same engine as the GUI, scriptable.

Exit codes: 0 success, 2 bad input or usage (one line on stderr, no
traceback), 1 unexpected internal error. One module per command, each with
``add_parser(sub, shared)`` and the function it runs; heavy modules (torch,
the engine, Qt) are imported inside those functions, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys

from siamgui.cli import cluster, compare, evaluate, export, gallery, gui, import_dlib, info, train
from siamgui.cli.common import (DEVICES, EXIT_INTERNAL, EXIT_USAGE, PRECISIONS, Parser, SharedOptions,
                                UsageError, err)

__all__ = ["DEVICES", "PRECISIONS", "UsageError", "build_parser", "main"]

#: The commands in the order ``siamgui --help`` lists them.
COMMANDS = (compare, train, evaluate, info, gui, import_dlib, gallery, cluster, export)


def build_parser() -> argparse.ArgumentParser:
    from siamgui import __version__

    p = Parser(prog="siamgui", description="Image verification with Siamese networks. "
               "With no command, opens the desktop app.")
    p.add_argument("--version", action="version", version=f"siamgui {__version__}")
    p.add_argument("--camera", help="camera source for the app: device index, video file or URL")
    p.add_argument("--model", help="model file for the app (default: the bundled model)")
    sub = p.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    shared = SharedOptions()
    for command in COMMANDS:
        command.add_parser(sub, shared)
    return p


def _keep_torch_cache_in_app_folder() -> None:
    """torch creates its compiler cache folder ($TMPDIR/torchinductor_<user>) whenever an optimizer is
    built; keep it in the app's own cache folder instead, so nothing is left in the temporary folder."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        base = os.environ.get("SIAMGUI_CACHE_DIR")
        if not base:
            import platformdirs

            base = platformdirs.user_cache_dir("siamgui", appauthor=False)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(base, "torch")


def _tolerant_stdout() -> None:
    """File names that are not valid UTF-8 (POSIX allows them) reach us as surrogates; a strict stdout
    (the usual en_US.UTF-8 desktop) would fail on printing one *after* the work was done. stdout writes
    them back as the original bytes, stderr escapes them (as Python's own stderr does)."""
    for stream, errors in ((sys.stdout, "surrogateescape"), (sys.stderr, "backslashreplace")):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors=errors)
            except (ValueError, OSError):  # a stream that cannot change: leave it
                pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    _keep_torch_cache_in_app_folder()
    _tolerant_stdout()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            args.images, args.train, args.epochs, args.screenshot = [], None, None, None
            return gui.run(args)
        return int(args.func(args) or 0)
    except UsageError as exc:
        err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001
        from siamgui.core.errors import SiamguiError

        if isinstance(exc, SiamguiError):
            err(str(exc))
            return EXIT_USAGE
        if os.environ.get("SIAMGUI_DEBUG"):
            raise
        err(f"internal error: {type(exc).__name__}: {exc} (set SIAMGUI_DEBUG=1 for a traceback)")
        return EXIT_INTERNAL

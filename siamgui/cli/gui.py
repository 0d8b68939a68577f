"""``siamgui gui`` (and ``siamgui`` with no command): the desktop app."""

from __future__ import annotations

from siamgui.cli.common import UsageError, positive_int


def add_parser(sub, shared) -> None:
    g = sub.add_parser("gui", help="open the desktop app (scriptable for screenshots)", parents=shared("model"))
    g.add_argument("images", nargs="*", metavar="IMAGE", help="up to two images for slots A and B")
    g.add_argument("--camera", help="camera source: device index, video file or URL")
    g.add_argument("--train", metavar="DATA_DIR", help="open the Train tab on this folder and start training")
    g.add_argument("--epochs", type=positive_int, help="epochs for --train")
    g.add_argument("--screenshot", metavar="OUT.png", help="save a picture of the window when ready, then exit")
    g.set_defaults(func=run)


def run(args) -> int:
    try:
        from siamgui.gui.app import run_gui
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("siamgui.gui"):
            raise UsageError("the desktop window is not available in this build yet; use the commands "
                             "(siamgui --help)") from None
        raise
    return run_gui(args)

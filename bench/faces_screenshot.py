"""The Gallery tab labelling every face of a group picture: the screenshot docs/gallery_faces.png.

    QT_QPA_PLATFORM=xcb xvfb-run -s "-screen 0 1280x800x24" .venv/bin/python bench/faces_screenshot.py \
        ASTRONAUT.png docs/gallery_faces.png

ASTRONAUT.png is NASA's public-domain portrait of Eileen Collins (scikit-image's
``skimage/data/astronaut.png``). The group is that photo, mirrored and darker, beside drawn
faces (``tests/_gui_helpers.py``): two enrolled, one stranger and one too small to judge.
Drawn faces are all much alike to a model trained on photographs (distances 0.28-0.47), so
the threshold is set to 0.25 for the picture. Nothing here touches the user's settings or gallery.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def group_photo(astronaut: np.ndarray) -> np.ndarray:
    """BGR: the astronaut's head and shoulders (mirrored, darker) and four drawn faces."""
    import cv2
    from _gui_helpers import FACE_VARIANTS, draw_face

    canvas = np.full((540, 780, 3), 225, np.uint8)
    head = cv2.resize(astronaut[0:300, 80:380][:, ::-1], (380, 380), interpolation=cv2.INTER_AREA)
    canvas[80:460, 20:400] = (head.astype(np.float32) * 0.8).astype(np.uint8)
    for variant, x, y, side in ((0, 420, 40, 170), (1, 610, 60, 150), (3, 440, 300, 140), (0, 600, 430, 60)):
        canvas[y:y + side, x:x + side] = draw_face(side, **FACE_VARIANTS[variant])
    return canvas


def wait(signal, timeout_s: float = 300.0):
    """Run Qt's event loop until ``signal`` fires; its arguments (SystemExit after ``timeout_s``)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop, got = QEventLoop(), []
    signal.connect(lambda *a: (got.append(a), loop.quit()))
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    if not got:
        raise SystemExit(f"timed out waiting for {signal}")
    return got[0]


def bundled_window():
    """The app's main window, shown at the screenshots' size, with the bundled model loaded."""
    from siamgui.core.resources import bundled_model_path
    from siamgui.gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1240, 780)
    window.show()
    window.state.load_model(str(bundled_model_path()))
    wait(window.state.model_changed)
    return window


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    astronaut_path, out = Path(argv[0]), Path(argv[1])
    work = Path(tempfile.mkdtemp(prefix="siamgui-shot-"))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "SIAMGUI_DATA_DIR"):
        os.environ[var] = str(work / var.lower())

    import cv2
    from _gui_helpers import FACE_VARIANTS, draw_face
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    astronaut = cv2.imread(str(astronaut_path))
    people = {"Eileen Collins": astronaut}
    for variant, name in ((0, "Ann"), (1, "Bob")):
        people[name] = draw_face(220, **FACE_VARIANTS[variant])
    for name, img in people.items():
        cv2.imwrite(str(work / f"{name}.png"), img)
    cv2.imwrite(str(work / "group.png"), group_photo(astronaut))

    window = bundled_window()
    tab = window.gallery_tab
    window.tabs.setCurrentWidget(tab)
    tab.open_gallery(str(work / "gallery.sqlite"))
    for name in people:
        tab.enroll(name, [str(work / f"{name}.png")])
        while True:
            kind, ok = wait(tab.job_finished)
            if kind == "enroll":
                break
    tab.threshold_spin.setValue(0.25)
    tab.identify_file(str(work / "group.png"))
    wait(tab.faces_shown)
    for _ in range(20):
        app.processEvents()
    window.grab().save(str(out))
    print(f"wrote {out}")
    window.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

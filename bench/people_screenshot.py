"""The People tab after sorting a folder of drawn faces: the screenshot docs/people.png.

    QT_QPA_PLATFORM=xcb xvfb-run -s "-screen 0 1280x800x24" .venv/bin/python bench/people_screenshot.py docs/people.png

The folder holds photos of the four drawn "people" of ``tests/_gui_helpers.py`` (each at a few
sizes, places and brightnesses), two group photos, one stranger seen once and one plain
photo with no face; no
real photograph. Drawn faces are much alike to a model trained on photographs (distances
0.28-0.47 between them), so the threshold is set to 0.2 for the picture. Two people are
then named. Nothing here touches the user's settings, gallery or people file.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
THRESHOLD = 0.2


def make_folder(folder: Path) -> None:
    import cv2
    from _gui_helpers import FACE_VARIANTS, draw_face

    rng = np.random.default_rng(7)
    for variant in range(len(FACE_VARIANTS)):
        for k in range(3 + variant % 2):
            canvas = np.full((320, 420, 3), int(rng.integers(200, 245)), np.uint8)
            side = int(rng.integers(150, 230))
            x, y = int(rng.integers(0, 420 - side)), int(rng.integers(0, 320 - side))
            face = draw_face(side, **FACE_VARIANTS[variant]).astype(np.float32) * float(rng.uniform(0.85, 1.1))
            canvas[y:y + side, x:x + side] = np.clip(face, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"photo_{variant}{k}.jpg"), canvas)
    for g, pair in enumerate(((0, 1), (2, 3))):
        canvas = np.full((300, 520, 3), 230, np.uint8)
        for n, variant in enumerate(pair):
            canvas[50:250, 30 + 260 * n:230 + 260 * n] = draw_face(200, **FACE_VARIANTS[variant])
        cv2.imwrite(str(folder / f"group_{g}.jpg"), canvas)
    stranger = draw_face(180, skin=(140, 170, 120), eye=0.11, brow=0.13, nose=0.05, mouth=0.04)
    canvas = np.full((300, 380, 3), 215, np.uint8)
    canvas[60:240, 100:280] = stranger
    cv2.imwrite(str(folder / "stranger.jpg"), canvas)
    cv2.imwrite(str(folder / "landscape.jpg"), np.tile(np.linspace(80, 220, 420, dtype=np.uint8)[None, :, None],
                                                        (320, 1, 3)))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    work = Path(tempfile.mkdtemp(prefix="siamgui-shot-"))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "SIAMGUI_DATA_DIR"):
        os.environ[var] = str(work / var.lower())
    folder = work / "Holiday photos"
    folder.mkdir()
    make_folder(folder)

    from PySide6.QtWidgets import QApplication

    from bench.faces_screenshot import bundled_window, wait

    app = QApplication.instance() or QApplication([])
    window = bundled_window()
    window.state.verifier.threshold = THRESHOLD
    tab = window.people_tab
    window.tabs.setCurrentWidget(tab)
    tab.sort_folder(str(folder))
    kind, ok = wait(tab.job_finished)
    if not ok:
        raise SystemExit(tab.status_label.text())
    summary = tab.status_label.text()
    people = tab.people()
    for person, name in zip(people, ("Ada", "Ben")):
        tab.store.rename(person.id, name)
    tab.refresh(people[0].id)
    wanted = {f.id for p in tab.people() for f in p.faces[:1]} | {f.id for f in people[0].faces}
    deadline = time.monotonic() + 60
    while not wanted <= set(tab._icons) and time.monotonic() < deadline:  # thumbnails are cut in a worker
        app.processEvents()
        time.sleep(0.05)
    tab.faces_list.item(0).setSelected(True)
    tab.show_info(summary)
    app.processEvents()
    window.grab().save(str(out))
    print(f"wrote {out}: {summary}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

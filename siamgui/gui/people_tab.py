"""The People tab: sort a photo folder by person, then fix the result (merge, split, move, name, enrol).

The sorting and the edits live in :mod:`siamgui.core.people`; this tab only shows. A
:class:`~siamgui.gui.workers.JobRunner` runs the sorting (progress, Cancel), each edit (one
SQLite transaction) and enrolment; a :class:`~siamgui.gui.workers.LatestOnlyRunner` cuts
the face thumbnails out of the photos. The edits are kept in the People file
(:func:`~siamgui.core.people.store.default_people_path`), so a new window shows them.
Dialogs go through ``_ask_*`` methods (tests replace them).
"""

from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QLineEdit,
                               QListView, QListWidget, QListWidgetItem, QMessageBox, QPushButton, QSplitter,
                               QVBoxLayout, QWidget)

from siamgui.gui.gallery_identities import GalleryBar
from siamgui.gui.image_view import VERMILLION
from siamgui.gui.workers import JobRunner, LatestOnlyRunner, error_text

#: Side of a face thumbnail, in pixels.
THUMB = 96
#: Faces of one person shown at most (the rest are counted).
MAX_SHOWN = 300
UNSORTED = -1
#: An item's face whose thumbnail is its icon (a person's first face in the people list).
FACE_ROLE = Qt.ItemDataRole.UserRole + 2


# -- work done in workers (no widgets) -------------------------------------------------------------
def sort_job(task, verifier, folder, store):
    from siamgui.core.people.cache import FaceCache
    from siamgui.core.people.cluster import sort_folder

    with FaceCache() as cache:
        result = sort_folder(verifier, folder, cache=cache, progress=task.progress, cancel=task.cancelled)
    return store.save(folder, result), result


def enrol_job(task, store, person_id, gallery, verifier):
    return store.enrol(person_id, gallery, verifier, progress=task.progress, cancel=task.cancelled)


def edit_job(_task, fn, *args):
    return fn(*args)


def thumbnails(store, faces) -> dict[int, np.ndarray]:
    """Face id -> an RGB thumbnail (uint8, at most THUMB px); faces whose photo cannot be read are left out."""
    from siamgui.core.errors import ImageError

    out = {}
    for f in faces:
        try:
            crop = store.face_crop(f, margin=0.15)
        except ImageError:
            continue
        crop.thumbnail((THUMB, THUMB))
        out[f.id] = np.ascontiguousarray(np.asarray(crop.convert("RGB")))
    return out


def _icon(arr: np.ndarray | None) -> QIcon:
    if arr is None:
        pix = QPixmap(THUMB, THUMB)
        pix.fill(QColor("#d9d9d9"))
        return QIcon(pix)
    h, w, _ = arr.shape
    return QIcon(QPixmap.fromImage(QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()))


def _icon_list(multi: bool) -> QListWidget:
    lst = QListWidget()
    lst.setViewMode(QListView.ViewMode.IconMode)
    lst.setIconSize(QSize(THUMB, THUMB))
    lst.setResizeMode(QListView.ResizeMode.Adjust)
    lst.setMovement(QListView.Movement.Static)
    lst.setSpacing(6)
    lst.setWordWrap(True)
    lst.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if multi
                         else QAbstractItemView.SelectionMode.SingleSelection)
    return lst


class PeopleTab(QWidget):
    """Clusters as thumbnail rows with counts; merge / split / move / name / enrol.

    Signals: ``message(str)``, ``job_finished(str kind, bool ok)``, ``enrolled(str name)``
    (the gallery changed), ``thumbnails_shown()``.
    """

    message = Signal(str)
    job_finished = Signal(str, bool)
    enrolled = Signal(str)
    thumbnails_shown = Signal()

    def __init__(self, state, parent=None, people_path=None):
        super().__init__(parent)
        self.state = state
        self.store = None
        self.album = None
        #: Returns the gallery to enrol into (the Gallery tab's); None opens the default gallery.
        self.gallery_source = lambda: None
        self._own_gallery = None
        self._icons: dict[int, QIcon] = {}
        self._firsts: list = []  # each person's first face: their icon in the people list
        self._shut_down = False
        self.jobs = JobRunner(self, name="people-jobs")
        self.thumbs = LatestOnlyRunner(thumbnails, self, name="people-thumbs")
        self._thumb_request = 0
        self._build()
        self._connect()
        state.model_changed.connect(lambda _v: self._update_buttons())
        self.open_store(people_path)

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.bar = GalleryBar(title="Folder:", button="Sort a folder…", cancellable=("sort", "enrol"))
        self.people_list = _icon_list(multi=True)
        self.faces_list = _icon_list(multi=True)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("Join the selected people (select two or more)")
        self.name_button = QPushButton("Name…")
        self.enrol_button = QPushButton("Enrol into gallery")
        self.split_button = QPushButton("Split off")
        self.split_button.setToolTip("The selected faces become a new person")
        self.not_button = QPushButton("Not this person")
        self.not_button.setToolTip("Move the selected faces to Unsorted")
        self.move_button = QPushButton("Move to…")
        self.faces_label = QLabel("")
        self.status_label = QLabel("Sort a folder of photos: every face of every photo is grouped by person.")
        self.status_label.setWordWrap(True)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(QLabel("People"))
        lv.addWidget(self.people_list, 1)
        row = QHBoxLayout()
        for b in (self.merge_button, self.name_button, self.enrol_button):
            row.addWidget(b)
        lv.addLayout(row)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.faces_label)
        rv.addWidget(self.faces_list, 1)
        row = QHBoxLayout()
        for b in (self.split_button, self.not_button, self.move_button):
            row.addWidget(b)
        rv.addLayout(row)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([420, 560])
        lay = QVBoxLayout(self)
        lay.addWidget(self.bar)
        lay.addWidget(split, 1)
        lay.addWidget(self.status_label)

    def _connect(self) -> None:
        self.bar.open_button.clicked.connect(self._on_sort_clicked)
        self.bar.cancel_button.clicked.connect(self.jobs.cancel_current)
        self.jobs.started_job.connect(self._on_job_started)
        self.jobs.progress.connect(self.bar.show_progress)
        self.jobs.done.connect(self._on_job_done)
        self.jobs.failed.connect(self._on_job_failed)
        self.thumbs.succeeded.connect(self._on_thumbnails)
        self.people_list.itemSelectionChanged.connect(self._show_faces)
        self.faces_list.itemSelectionChanged.connect(self._update_buttons)
        self.merge_button.clicked.connect(self._on_merge_clicked)
        self.name_button.clicked.connect(self._on_name_clicked)
        self.enrol_button.clicked.connect(self._on_enrol_clicked)
        self.split_button.clicked.connect(lambda: self._edit("split", self.store.split, self.selected_faces()))
        self.not_button.clicked.connect(lambda: self._edit("move", self.store.move, self.selected_faces(), None))
        self.move_button.clicked.connect(self._on_move_clicked)

    # -- dialogs (replaced in tests) ------------------------------------------------------------
    def _ask_folder(self) -> str:
        return QFileDialog.getExistingDirectory(self, "Sort a folder of photos by person")

    def _ask_text(self, title: str, label: str, text: str = "") -> str | None:
        value, ok = QInputDialog.getText(self, title, label, QLineEdit.EchoMode.Normal, text)
        return value if ok else None

    def _confirm(self, text: str) -> bool:
        return QMessageBox.question(self, "People", text) == QMessageBox.StandardButton.Yes

    def _ask_person(self, labels: list[str]) -> int | None:
        """The index of the chosen person, or None."""
        value, ok = QInputDialog.getItem(self, "Move faces", "Move the selected faces to:", labels, 0, False)
        return labels.index(value) if ok and value in labels else None

    # -- messages -----------------------------------------------------------------------------------
    def _show(self, text: str, colour: str = "") -> None:
        self.status_label.setStyleSheet(f"color: {colour}" if colour else "")
        self.status_label.setText(text)
        self.message.emit(text)

    def show_error(self, text: str) -> None:
        self._show(text, VERMILLION)

    def show_info(self, text: str) -> None:
        self._show(text)

    # -- the people file --------------------------------------------------------------------------------
    def open_store(self, path=None) -> bool:
        from siamgui.core.errors import SiamguiError
        from siamgui.core.people.store import PeopleStore

        try:
            self.store = PeopleStore(path)
            latest = self.store.latest()
        except SiamguiError as exc:
            self.store = None
            self.show_error(str(exc))
            self._update_buttons()
            return False
        self.album = latest.id if latest is not None else None
        self.bar.path_label.setText(latest.folder if latest is not None else "")
        self.refresh()
        return True

    # -- showing ----------------------------------------------------------------------------------------
    def people(self) -> list:
        return self.store.people(self.album) if self.store is not None and self.album is not None else []

    def refresh(self, keep: int | None = None) -> None:
        """Re-read the album; select the person ``keep`` (an id) or the first."""
        self.people_list.blockSignals(True)
        self.people_list.clear()
        people = self.people()
        unsorted = self.store.unsorted(self.album) if self.album is not None else []
        for n, p in enumerate(people):
            item = QListWidgetItem(self._face_icon(p.faces[0]), f"{p.label(n + 1)}\n{len(p.faces)} face(s)")
            item.setData(Qt.ItemDataRole.UserRole, p.id)
            item.setData(Qt.ItemDataRole.UserRole + 1, p.label(n + 1))
            item.setData(FACE_ROLE, p.faces[0].id)
            self.people_list.addItem(item)
        if self.album is not None:
            item = QListWidgetItem(self._face_icon(unsorted[0] if unsorted else None),
                                   f"Unsorted\n{len(unsorted)} face(s)")
            item.setData(Qt.ItemDataRole.UserRole, UNSORTED)
            item.setData(Qt.ItemDataRole.UserRole + 1, "Unsorted")
            item.setData(FACE_ROLE, unsorted[0].id if unsorted else None)
            self.people_list.addItem(item)
        self.people_list.blockSignals(False)
        ids = [self.people_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.people_list.count())]
        if ids:
            self.people_list.setCurrentRow(ids.index(keep) if keep in ids else 0)
        self._firsts = [p.faces[0] for p in people] + unsorted[:1]
        self._show_faces()

    def _face_icon(self, face) -> QIcon:
        return self._icons.get(face.id) if face is not None and face.id in self._icons else _icon(None)

    def selected_people(self) -> list[int]:
        return [it.data(Qt.ItemDataRole.UserRole) for it in self.people_list.selectedItems()]

    def selected_faces(self) -> list[int]:
        return [it.data(Qt.ItemDataRole.UserRole) for it in self.faces_list.selectedItems()]

    def _current_faces(self) -> list:
        chosen = self.selected_people()
        if len(chosen) != 1 or self.store is None or self.album is None:
            return []
        if chosen[0] == UNSORTED:
            return self.store.unsorted(self.album)
        return self.store.person(chosen[0]).faces

    def _show_faces(self) -> None:
        from siamgui.core.errors import SiamguiError

        self.faces_list.clear()
        try:
            faces = self._current_faces()
        except SiamguiError as exc:
            self.show_error(str(exc))
            faces = []
        for f in faces[:MAX_SHOWN]:
            item = QListWidgetItem(self._face_icon(f), os.path.basename(f.image))
            item.setData(Qt.ItemDataRole.UserRole, f.id)
            item.setData(FACE_ROLE, f.id)
            item.setToolTip(f"{f.image}\nbox {list(f.box)}")
            self.faces_list.addItem(item)
        more = f" (the first {MAX_SHOWN} shown)" if len(faces) > MAX_SHOWN else ""
        self.faces_label.setText(f"{len(faces)} face(s){more}" if faces else "")
        self._request_thumbnails(faces[:MAX_SHOWN])
        self._update_buttons()

    def _request_thumbnails(self, faces) -> None:
        """Thumbnails of ``faces`` and of each person's first face (a new request replaces a waiting one)."""
        missing = list({f.id: f for f in self._firsts + list(faces) if f.id not in self._icons}.values())
        if missing and self.store is not None and not self._shut_down:
            self._thumb_request += 1
            self.thumbs.submit(self._thumb_request, self.store, missing)

    def _on_thumbnails(self, _request: int, arrays: dict) -> None:
        if self._shut_down:
            return
        for face_id, arr in arrays.items():
            self._icons[face_id] = _icon(arr)
        for lst in (self.people_list, self.faces_list):
            for i in range(lst.count()):
                item = lst.item(i)
                if item.data(FACE_ROLE) in arrays:
                    item.setIcon(self._icons[item.data(FACE_ROLE)])
        self.thumbnails_shown.emit()

    def _update_buttons(self) -> None:
        idle = not self.jobs.pending_kinds() and self.store is not None
        people = [p for p in self.selected_people() if p != UNSORTED]
        faces = bool(self.selected_faces())
        one = len(self.selected_people()) == 1
        self.bar.open_button.setEnabled(idle)
        self.merge_button.setEnabled(idle and len(people) >= 2)
        self.name_button.setEnabled(idle and len(people) == 1 and one)
        self.enrol_button.setEnabled(idle and len(people) == 1 and one and self.state.verifier is not None)
        self.split_button.setEnabled(idle and faces)
        self.not_button.setEnabled(idle and faces and self.selected_people() != [UNSORTED])
        self.move_button.setEnabled(idle and faces)

    # -- actions ------------------------------------------------------------------------------------------
    def sort_folder(self, folder: str) -> None:
        if not folder:
            return
        if self.state.verifier is None:
            self.show_error("Load a model first (Model menu).")
            return
        again = os.path.abspath(folder) in {a.folder for a in self.store.albums()} if self.store is not None else False
        if again and not self._confirm("This folder was sorted before. Sort it again? Its people, names and "
                                       "edits are replaced (photos already seen are not embedded again)."):
            return
        self.bar.path_label.setText(folder)
        self.jobs.submit("sort", f"Sorting {os.path.basename(folder.rstrip(os.sep)) or folder}", sort_job,
                         self.state.verifier, folder, self.store)

    def _on_sort_clicked(self) -> None:
        self.sort_folder(self._ask_folder())

    def _edit(self, kind: str, fn, *args) -> None:
        self.jobs.submit(kind, "Saving", edit_job, fn, *args)
        self._update_buttons()

    def merge(self, person_ids: list[int]) -> None:
        keep, *others = person_ids
        for other in others:
            self._edit("merge", self.store.merge, keep, other)

    def _on_merge_clicked(self) -> None:
        self.merge([p for p in self.selected_people() if p != UNSORTED])

    def _on_name_clicked(self) -> None:
        (pid,) = self.selected_people()
        current = self.store.person(pid).name or ""
        name = self._ask_text("Name this person", "Name:", current)
        if name is not None:
            self._edit("name", self.store.rename, pid, name)

    def _on_move_clicked(self) -> None:
        people = self.people()
        labels = [p.label(n + 1) for n, p in enumerate(people)] + ["Unsorted"]
        k = self._ask_person(labels)
        if k is not None:
            self._edit("move", self.store.move, self.selected_faces(), people[k].id if k < len(people) else None)

    def enrol(self, person_id: int) -> None:
        from siamgui.core.errors import SiamguiError

        gallery = self.gallery_source()
        if gallery is None:
            if self._own_gallery is None:
                from siamgui.core.gallery import Gallery

                try:
                    self._own_gallery = Gallery()
                except SiamguiError as exc:
                    self.show_error(str(exc))
                    return
            gallery = self._own_gallery
        self.jobs.submit("enrol", "Enrolling into the gallery", enrol_job, self.store, person_id, gallery,
                         self.state.verifier)

    def _on_enrol_clicked(self) -> None:
        (pid,) = self.selected_people()
        self.enrol(pid)

    # -- jobs ------------------------------------------------------------------------------------------------
    def _on_job_started(self, kind: str, label: str) -> None:
        self.bar.show_job(kind, label)
        if kind in ("sort", "enrol"):
            self.show_info(label + "…")
        self._update_buttons()

    def _on_job_done(self, kind: str, result) -> None:
        if not self.jobs.pending_kinds():
            self.bar.show_idle()
        keep = self.selected_people()[0] if self.selected_people() else None
        if kind == "sort":
            self.album, summary = result[0], result[1].summary()
            self._icons.clear()
            self.show_info(summary)
            keep = None
        elif kind == "split":
            keep = result
        elif kind == "enrol":
            self.show_info(f"Enrolled {result.added} photo(s) of {result.name} into the gallery"
                           + (f"; {len(result.skipped)} skipped." if result.skipped else "."))
            self.enrolled.emit(result.name)
        self.refresh(keep)
        self.job_finished.emit(kind, True)

    def _on_job_failed(self, kind: str, message: str) -> None:
        if not self.jobs.pending_kinds():
            self.bar.show_idle()
        self.show_error(message)
        if kind == "sort":
            self.bar.path_label.setText(next((a.folder for a in self.store.albums() if a.id == self.album), ""))
        self.refresh(self.selected_people()[0] if self.selected_people() else None)
        self.job_finished.emit(kind, False)

    # -- closing -----------------------------------------------------------------------------------------------
    def busy(self) -> bool:
        return bool(self.jobs.pending_kinds()) or self.thumbs.busy

    def shutdown(self) -> None:
        """Cancel the sorting, wait for the workers, close the files (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.thumbs.stop()
        self.jobs.stop()
        for f in (self.store, self._own_gallery):
            if f is not None:
                try:
                    f.close()
                except Exception as exc:  # noqa: BLE001 - keep closing
                    error_text(exc, "Closing the people file failed")

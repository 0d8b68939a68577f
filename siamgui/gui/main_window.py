"""The main window: Compare / Train / Gallery / People / Evaluate tabs, Model and Device menus, status bar."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox, QTabWidget

from siamgui.gui import settings as gsettings
from siamgui.gui.compare_tab import CompareTab
from siamgui.gui.dialogs import ModelInfoDialog, show_message
from siamgui.gui.state import AppState
from siamgui.gui.workers import Worker, WorkerGroup

log = logging.getLogger(__name__)

MODEL_FILTER = "Model files (*.safetensors);;Legacy PyTorch weights (*.pt *.pth);;All files (*)"
DEVICE_LABELS = {"auto": "Auto", "cpu": "CPU", "cuda": "CUDA", "mps": "MPS (Apple)"}

#: The tabs built by default_tab_classes(), in order (their placeholders are shown first).
DEFAULT_TAB_TITLES = ("Train", "Gallery", "People", "Evaluate")


def default_tab_classes() -> list[tuple[str, type]]:
    """The Train, Gallery, People and Evaluate tabs as (title, class). Imported here, not at the top: their
    modules import torch (seconds), and the window shows before they exist."""
    from siamgui.gui.evaluate_tab import EvaluateTab
    from siamgui.gui.gallery_tab import GalleryTab
    from siamgui.gui.people_tab import PeopleTab
    from siamgui.gui.train_tab import TrainTab

    return [("Train", TrainTab), ("Gallery", GalleryTab), ("People", PeopleTab), ("Evaluate", EvaluateTab)]


def _probe_devices() -> dict[str, bool]:
    from siamgui.core.device import available_devices

    return available_devices()


class MainWindow(QMainWindow):
    """The app window. ``tab_classes`` (title, class) defaults to :func:`default_tab_classes`;
    with ``defer_tabs`` those are built once a worker has imported them, after the window shows."""

    closed = Signal()

    def __init__(self, state: AppState | None = None, *, camera_source=None, tab_classes=None,
                 defer_tabs: bool = False, parent=None):
        super().__init__(parent)
        self.setWindowTitle("siamgui")
        settings = gsettings.app_settings()
        device = gsettings.as_text(settings.value("device", "auto"), "auto")
        self.state = state or AppState(device=device if device in DEVICE_LABELS else "auto",
                                       precision="float32" if gsettings.as_bool(settings.value("exact_float32"))
                                       else "auto")
        self._force_close = False
        self._shut_down = False
        self._user_load = False
        self._workers = WorkerGroup(self)
        self.devices_available: dict[str, bool] | None = None

        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.compare_tab = CompareTab(self.state, self, camera_source=camera_source)
        self.tabs.addTab(self.compare_tab, "Compare")
        self.train_tab = self.gallery_tab = self.people_tab = self.evaluate_tab = None
        self._placeholders: dict[str, QLabel] = {}
        if defer_tabs and tab_classes is None:
            self._add_placeholders()
        else:
            for title, cls in (default_tab_classes() if tab_classes is None else tab_classes):
                self._add_tab(title, cls)
        self.setCentralWidget(self.tabs)

        self.model_label = QLabel("No model")
        self.device_label = QLabel("")
        self.settings_label = QLabel("")  # a damaged settings file, or settings that could not be saved
        self.settings_label.setVisible(False)
        self.statusBar().addPermanentWidget(self.settings_label)
        self.statusBar().addPermanentWidget(self.model_label)
        self.statusBar().addPermanentWidget(self.device_label)
        gsettings.notifier().problem.connect(self._on_settings_problem)
        for note in gsettings.settings_notes():
            self._on_settings_problem(note)

        self._build_menus()
        self.compare_tab.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.compare_tab.open_model_requested.connect(self.open_model_dialog)
        self.state.model_loading.connect(self._on_model_loading)
        self.state.model_changed.connect(self._on_model_changed)
        self.state.model_failed.connect(self._on_model_failed)
        self._update_device_label()
        self._probe_devices()

    def _add_tab(self, title: str, cls, index: int = -1):
        tab = cls(self.state, self)
        self.tabs.insertTab(index, tab, title)
        if title == "Train":
            self.train_tab = tab
            if hasattr(tab, "compare_requested"):  # "Use in Compare" shows the Compare tab
                tab.compare_requested.connect(lambda: self.tabs.setCurrentWidget(self.compare_tab))
        elif title == "Gallery":
            self.gallery_tab = tab
        elif title == "People":
            self.people_tab = tab
            if hasattr(tab, "enrolled"):  # enrol into the Gallery tab's open gallery, which then shows it
                tab.gallery_source = lambda: getattr(self.gallery_tab, "gallery", None)
                tab.enrolled.connect(lambda _name: self.gallery_tab is not None and self.gallery_tab.refresh())
        elif title == "Evaluate":
            self.evaluate_tab = tab
            if hasattr(tab, "compare_requested"):  # a worst pair, double-clicked, opens in Compare
                tab.compare_requested.connect(self._open_in_compare)
        return tab

    def _open_in_compare(self, a: str, b: str) -> None:
        self.tabs.setCurrentWidget(self.compare_tab)
        self.compare_tab.load_images([a, b])

    def _add_placeholders(self) -> None:
        """Disabled "Loading…" tabs now; a worker imports the real ones (torch: seconds), then they replace these."""
        for title in DEFAULT_TAB_TITLES:
            ph = QLabel("Loading…")
            ph.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self._placeholders[title] = ph
            self.tabs.setTabEnabled(self.tabs.addTab(ph, title), False)
        w = Worker(default_tab_classes, parent=self, name="import-tabs")
        w.returned.connect(self._build_deferred_tabs)
        w.errored.connect(self._on_tab_import_failed)
        self._workers.start(w)

    def _build_deferred_tabs(self, classes) -> None:
        """Replace the placeholder tabs by the real ones (GUI thread; their modules are imported by now)."""
        if self._shut_down:
            return
        for title, cls in classes:
            ph = self._placeholders.pop(title, None)
            if ph is None:
                continue
            index = self.tabs.indexOf(ph)
            self.tabs.removeTab(index)
            ph.deleteLater()
            self._add_tab(title, cls, index)

    def _on_tab_import_failed(self, message: str, _details: str) -> None:
        for ph in self._placeholders.values():
            ph.setText(message)
        self.statusBar().showMessage(message)

    # -- menus -----------------------------------------------------------------------------
    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        for slot in (self.compare_tab.slot_a, self.compare_tab.slot_b):
            act = file_menu.addAction(f"Open image {slot.name}…")
            act.triggered.connect(slot.open_dialog)
        file_menu.addSeparator()
        quit_act = file_menu.addAction("Quit")
        quit_act.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        quit_act.triggered.connect(self.close)

        self.model_menu = mb.addMenu("&Model")
        self.model_menu.setToolTipsVisible(True)
        self.bundled_action = self.model_menu.addAction("Use bundled model")
        self.bundled_action.triggered.connect(self.use_bundled_model)
        self.open_model_action = self.model_menu.addAction("Open model file…")
        self.open_model_action.setShortcut(QKeySequence("Ctrl+M"))
        self.open_model_action.triggered.connect(self.open_model_dialog)
        self.recent_menu = self.model_menu.addMenu("Recent models")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.model_menu.addSeparator()
        self.info_action = self.model_menu.addAction("Model info…")
        self.info_action.setShortcut(QKeySequence("Ctrl+I"))
        self.info_action.triggered.connect(self.show_model_info)
        self.model_menu.aboutToShow.connect(self._refresh_model_menu)
        self._refresh_model_menu()
        self._fill_recent_menu()

        self._build_device_menu(mb)
        help_menu = mb.addMenu("&Help")
        about = help_menu.addAction("About siamgui")
        about.triggered.connect(self._about)

    def _build_device_menu(self, mb) -> None:
        self.device_menu = mb.addMenu("&Device")
        self.device_menu.setToolTipsVisible(True)
        self.device_group = QActionGroup(self)
        self.device_group.setExclusive(True)
        self.device_actions: dict[str, QAction] = {}
        for name, label in DEVICE_LABELS.items():
            act = self.device_menu.addAction(label)
            act.setCheckable(True)
            act.setData(name)
            self.device_group.addAction(act)
            self.device_actions[name] = act
            if name in ("cuda", "mps"):
                act.setEnabled(False)
                act.setToolTip("Checking…")
        self.device_actions["auto"].setToolTip("CUDA if available, then Apple MPS, then the CPU")
        self.device_actions["cpu"].setToolTip("Always available")
        current = self.device_actions.get(self.state.device, self.device_actions["auto"])
        current.setChecked(True)
        self.device_group.triggered.connect(lambda act: self.set_device(act.data()))
        self.device_menu.addSeparator()
        self.exact_action = self.device_menu.addAction("Exact float32 arithmetic")
        self.exact_action.setCheckable(True)
        self.exact_action.setChecked(self.state.precision == "float32")
        self.exact_action.setToolTip(
            "Off (default): on CPUs that compute bfloat16 natively (AVX-512 BF16, AMX) the network runs in "
            "bfloat16, about 40 % faster, with the same LFW accuracy; distances can differ from float32's "
            "in the third decimal. On: float32 everywhere, the same distances on every computer.")
        self.exact_action.toggled.connect(self.set_exact_float32)

    def _refresh_model_menu(self) -> None:
        from siamgui.core.resources import bundled_model_path, has_bundled_model

        ok = has_bundled_model()
        self.bundled_action.setEnabled(ok)
        self.bundled_action.setToolTip("" if ok else f"This build has no bundled model ({bundled_model_path()}).")
        self.info_action.setEnabled(self.state.verifier is not None)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = [p for p in gsettings.recent_models() if Path(p).is_file()]
        for p in paths:
            act = self.recent_menu.addAction(Path(p).name)
            act.setToolTip(p)
            act.setData(p)
            act.triggered.connect(lambda _c=False, p=p: self.load_model(p))
        if paths:
            self.recent_menu.addSeparator()
            clear = self.recent_menu.addAction("Clear list")
            clear.triggered.connect(gsettings.clear_recent_models)
        else:
            none = self.recent_menu.addAction("No recent models")
            none.setEnabled(False)
        self.recent_menu.setToolTipsVisible(True)

    # -- models ------------------------------------------------------------------------------
    def start_initial_model(self, model: str | None = None) -> None:
        """Load ``model`` or the bundled model in the background, or show the no-model state."""
        from siamgui.core.resources import has_bundled_model

        if model:
            self.state.load_model(model)
        elif has_bundled_model():
            self.state.load_model(None)
        else:
            self.compare_tab.set_no_model()
            self.model_label.setText("No model loaded")
            self.statusBar().showMessage("No model loaded — open a model file (Model ▸ Open model file…)")

    def load_model(self, source) -> None:
        """A user-chosen model: failures are shown in a message box."""
        self._user_load = True
        self.state.load_model(source)

    def use_bundled_model(self) -> None:
        self.load_model(None)

    def open_model_dialog(self) -> None:
        settings = gsettings.app_settings()
        start = str(settings.value("paths/last_model_dir", "") or "")
        path, _ = QFileDialog.getOpenFileName(self, "Open model file", start, MODEL_FILTER)
        if path:
            settings.setValue("paths/last_model_dir", str(Path(path).parent))
            self.load_model(path)

    def show_model_info(self) -> ModelInfoDialog | None:
        v = self.state.verifier
        if v is None:
            return None
        dlg = ModelInfoDialog(v.meta, v.path, self._device_text(v), self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        return dlg

    def _on_model_loading(self, label: str) -> None:
        self.model_label.setText(f"Loading {label}…")
        self.statusBar().showMessage("Loading model…")

    def _on_model_changed(self, verifier) -> None:
        from siamgui.core.resources import bundled_model_path

        self._user_load = False
        self.model_label.setText(f"Model: {self._model_text(verifier)}")
        self.model_label.setToolTip(str(verifier.path) if verifier.path else "")
        self._update_device_label()
        note = verifier.device_choice.reason
        self.statusBar().showMessage(note or f"Model ready: {self._model_text(verifier)}", 8000)
        self.info_action.setEnabled(True)
        if verifier.path is not None:
            try:
                bundled = Path(verifier.path).resolve() == bundled_model_path().resolve()
            except OSError:
                bundled = False
            if not bundled:
                gsettings.add_recent_model(str(Path(verifier.path).resolve()))

    def _on_model_failed(self, message: str) -> None:
        v = self.state.verifier
        self.model_label.setText(f"Model: {self._model_text(v)}" if v else "No model loaded")
        self.statusBar().showMessage(f"Model not loaded: {message}", 10000)
        if self._user_load and not self._force_close:
            show_message(self, "Model not loaded", message)
        self._user_load = False

    @staticmethod
    def _model_text(v) -> str:
        spec = v.loaded.spec
        name = Path(v.path).name if v.path else v.loaded.name
        return f"{name} ({spec.preset}, {spec.image_size} px)"

    # -- devices -----------------------------------------------------------------------------
    def _probe_devices(self) -> None:
        w = Worker(_probe_devices, parent=self, name="device-probe")
        w.returned.connect(self._on_devices_probed)
        w.errored.connect(lambda m, _details: log.warning("device probe failed: %s", m))
        self._workers.start(w)

    def _on_devices_probed(self, available: dict) -> None:
        self.devices_available = dict(available)
        why = {"cuda": "No CUDA GPU is available to PyTorch on this computer.",
               "mps": "Apple MPS is only available on Apple-silicon Macs."}
        for name in ("cuda", "mps"):
            act = self.device_actions[name]
            ok = bool(available.get(name))
            act.setEnabled(ok)
            act.setToolTip("Available" if ok else why[name])
            act.setText(DEVICE_LABELS[name] + ("" if ok else " (not available)"))

    def set_device(self, name: str) -> None:
        if name not in DEVICE_LABELS:
            raise ValueError(f"unknown device {name!r}")
        act = self.device_actions[name]
        if not act.isChecked():
            act.setChecked(True)
        gsettings.app_settings().setValue("device", name)
        self.state.set_device(name)
        self._update_device_label()

    def set_exact_float32(self, on: bool) -> None:
        """float32 everywhere (on) or bfloat16 where the CPU computes it natively (off, the default)."""
        if self.exact_action.isChecked() != bool(on):
            self.exact_action.setChecked(bool(on))  # re-enters through toggled
            return
        gsettings.app_settings().setValue("exact_float32", bool(on))
        self.state.set_precision("float32" if on else "auto")
        self._update_device_label()

    @staticmethod
    def _device_text(v) -> str:
        device = v.device_choice.name.upper() if v.device_choice.name != "mps" else "MPS"
        return f"{device} · {v.precision_choice.name}"

    def _update_device_label(self) -> None:
        v = self.state.verifier
        requested = DEVICE_LABELS.get(self.state.device, self.state.device)
        if v is None:
            self.device_label.setText(f"Device: {requested}")
            self.device_label.setToolTip("")
        else:
            running = self._device_text(v)
            self.device_label.setText(f"Device: {running}" + (f" ({requested})" if self.state.device == "auto" else ""))
            self.device_label.setToolTip("\n".join(r for r in (v.device_choice.reason, v.precision_choice.reason) if r))

    def _on_settings_problem(self, message: str) -> None:
        """Shown until the app closes: the settings were reset, or changes cannot be saved."""
        self.settings_label.setText("⚠ Settings reset" if "reset" in message else "⚠ Settings not saved")
        self.settings_label.setToolTip(message)
        self.settings_label.setVisible(True)
        self.statusBar().showMessage(message, 15000)

    # -- misc ----------------------------------------------------------------------------------
    def _about(self) -> None:
        from siamgui import __version__

        show_message(self, "About siamgui", f"siamgui {__version__}\nImage verification with Siamese networks.",
                     QMessageBox.Icon.Information)

    def all_tabs(self) -> list:
        return [self.tabs.widget(i) for i in range(self.tabs.count())]

    def select_tab(self, tab) -> None:
        self.tabs.setCurrentWidget(tab)

    # -- closing -------------------------------------------------------------------------------
    def close_now(self) -> None:
        """Close without asking the tabs (scripted runs)."""
        self._force_close = True
        self.close()

    def closeEvent(self, event):  # noqa: N802
        if not self._force_close:
            for tab in self.all_tabs():
                confirm = getattr(tab, "confirm_close", None)
                if confirm is not None and not confirm():
                    event.ignore()
                    return
        self.shutdown()
        event.accept()
        self.closed.emit()

    def shutdown(self) -> None:
        """Stop every tab's threads, pending model loads and our own workers (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        try:
            s = gsettings.app_settings()
            s.setValue("window/version", gsettings.SETTINGS_VERSION)
            s.setValue("window/geometry", self.saveGeometry())
        except Exception:  # noqa: BLE001 - never block closing on settings
            log.exception("could not save the window geometry")
        for tab in self.all_tabs():
            stop = getattr(tab, "shutdown", None)
            if stop is not None:
                try:
                    stop()
                except Exception:  # noqa: BLE001 - keep closing the others
                    log.exception("shutting down a tab failed")
        self._workers.wait(10000)
        self.state.wait()

    def restore_geometry(self) -> bool:
        s = gsettings.app_settings()
        if gsettings.as_int(s.value("window/version", 0)) != gsettings.SETTINGS_VERSION:
            return False
        geo = s.value("window/geometry")
        return isinstance(geo, QByteArray) and self.restoreGeometry(geo)

"""The Train tab's settings form: preset defaults, persisted with QSettings.

Defaults come from the engine (``TrainConfig(...).resolved()``), so the form
never repeats the recipe; the form only turns widget values into a
:class:`~siamgui.core.training.TrainConfig`.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit,
                               QPushButton, QSpinBox, QToolButton, QWidget)

from siamgui.core.device import available_devices
from siamgui.core.models import architecture_description, architecture_names
from siamgui.core.preprocess import PRESETS
from siamgui.core.resources import has_bundled_model
from siamgui.core.training import LOSSES, TrainConfig
from siamgui.core.training.config import AUTO_BUDGET_MIN, AUTO_HOLDOUT_MIN_CLASSES, AUTO_MIN_STEPS, AUTO_VAL_SPLIT

SETTINGS_GROUP = "train"
#: Bump when the stored keys change meaning; older stored settings are then ignored.
SETTINGS_VERSION = 4  # 2: epochs 0 = automatic, max_minutes added; 3: validation split auto; 4: generic encoder
INIT_CHOICES = (("scratch", "From scratch"), ("bundled", "Bundled model"), ("file", "Model file"))


def open_settings() -> QSettings:
    """The app's settings file (siamgui.gui.settings; an INI file resolved on every call)."""
    from siamgui.gui.settings import app_settings

    return app_settings()


class _FloatSpinBox(QDoubleSpinBox):
    """A spin box that shows floats compactly (``0.002``, ``1e-05``)."""

    def __init__(self, lo: float, hi: float, parent=None):
        super().__init__(parent)
        self.setDecimals(8)
        self.setRange(lo, hi)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return f"{value:g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt override
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text, pos):  # noqa: D102 - Qt override
        from PySide6.QtGui import QValidator

        t = text.strip()
        if not t or t in ("-", ".", "e", "1e", "1e-") or t.endswith(("e", "e-", "e+")):
            return QValidator.State.Intermediate, text, pos
        try:
            v = float(t)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        ok = math.isfinite(v) and self.minimum() <= v <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos


class TrainSettingsForm(QWidget):
    """Training options. ``config(data_dir)`` builds the TrainConfig.

    Changing the preset, the loss or "Start from" refills the values that
    depend on them with that choice's defaults.
    """

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._make_fields()
        self._make_start_from()
        self._lay_out()
        self._select_preset_loss()
        self.apply_defaults()
        self.preset.currentIndexChanged.connect(self._on_preset_changed)
        self.loss.currentIndexChanged.connect(self._on_loss_changed)
        self.init.currentIndexChanged.connect(self._on_init_changed)
        self.init_browse.clicked.connect(self._on_init_browse_clicked)
        self.reset_button.clicked.connect(self.apply_defaults)
        self._update_enabled()

    def _make_fields(self) -> None:
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.preset.setCurrentText(TrainConfig(data_dir="").preset)  # the engine's default (generic)
        self.preset.setToolTip("face: face crop, colour; signature: grey, ink crop; generic: whole image")
        self.reset_button = QPushButton("Defaults")
        self.reset_button.setToolTip("Reset every value to the preset's defaults")
        self.arch = QComboBox()
        for name in architecture_names():
            self.arch.addItem(name, name)
            self.arch.setItemData(self.arch.count() - 1, architecture_description(name),
                                  Qt.ItemDataRole.ToolTipRole)
        self.image_size = _spin(8, 512)
        self.image_size.setSuffix(" px")
        self.embedding_dim = _spin(2, 2048)
        self.loss = QComboBox()
        self.loss.addItems(list(LOSSES))
        self.margin = _double_spin(0.01, 100.0, 0.05)
        self.epochs = _spin(0, 10000)
        self.epochs.setSpecialValueText("auto")
        self.epochs.setToolTip(f"auto: at least {AUTO_MIN_STEPS:,} steps, an early stop when validation stops "
                               "improving, and the time budget (docs/training.md)")
        self.max_minutes = _double_spin(0.0, 10000.0, 1.0)
        self.max_minutes.setSpecialValueText("default")
        self.max_minutes.setSuffix(" min")
        self.max_minutes.setToolTip("Training stops after the batch that spends this time, then calibrates. "
                                    f"default: {AUTO_BUDGET_MIN:g} min when Epochs is auto, no limit otherwise")
        self.batch_size = _spin(2, 4096)
        self.lr = _FloatSpinBox(1e-7, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setToolTip("Learning rate (AdamW, cosine schedule)")
        self.val_split = _double_spin(-0.05, 0.9, 0.05)  # the minimum is "auto"
        self.val_split.setSpecialValueText("auto")
        self.val_split.setToolTip("Fraction of the classes held out for validation and calibration "
                                  "(whole classes, never images of one class on both sides); auto: "
                                  f"{AUTO_VAL_SPLIT:g} with {AUTO_HOLDOUT_MIN_CLASSES}+ classes, else none")
        self.pairs_per_epoch = _spin(0, 1_000_000)
        self.pairs_per_epoch.setSingleStep(256)
        self.pairs_per_epoch.setSpecialValueText("auto")
        self.pairs_per_epoch.setToolTip("auto: twice the training images (512 to 20,000)")
        self.seed = _spin(0, 2**31 - 1)
        self.device = QComboBox()
        avail = available_devices()
        self.device.addItem("auto", "auto")
        for name in ("cpu", "cuda", "mps"):
            if avail.get(name):
                self.device.addItem(name, name)

    def _make_start_from(self) -> None:
        """"Start from": scratch, the bundled model or a model file (with its path field and browse button)."""
        self.init = QComboBox()
        for key, label in INIT_CHOICES:
            self.init.addItem(label, key)
        if not has_bundled_model():
            item = self.init.model().item(1)
            item.setEnabled(False)
            item.setToolTip("No bundled model in this installation")
        self.init_file = QLineEdit()
        self.init_file.setPlaceholderText("model file to fine-tune (.safetensors)")
        self.init_browse = QToolButton()
        self.init_browse.setText("...")
        self.init_browse.setToolTip("Choose a model file")
        self._init_file_row = QWidget()
        file_row = QHBoxLayout(self._init_file_row)
        file_row.setContentsMargins(0, 0, 0, 0)
        file_row.addWidget(self.init_file, 1)
        file_row.addWidget(self.init_browse)

    def _lay_out(self) -> None:
        form = self._form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(4)
        preset_row = QHBoxLayout()
        preset_row.setContentsMargins(0, 0, 0, 0)
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(self.reset_button)
        init_row = QHBoxLayout()
        init_row.setContentsMargins(0, 0, 0, 0)
        init_row.addWidget(self.init, 1)
        form.addRow("Preset", preset_row)
        form.addRow("Start from", init_row)
        form.addRow("", self._init_file_row)
        for label, field in (("Architecture", self.arch), ("Image size", self.image_size),
                             ("Embedding dim", self.embedding_dim), ("Loss", self.loss), ("Margin", self.margin),
                             ("Epochs", self.epochs), ("Max minutes", self.max_minutes),
                             ("Batch size", self.batch_size), ("Learning rate", self.lr),
                             ("Validation split", self.val_split), ("Pairs per epoch", self.pairs_per_epoch),
                             ("Seed", self.seed), ("Device", self.device)):
            form.addRow(label, field)

    # -- defaults --------------------------------------------------------------------
    def init_value(self) -> str | None:
        key = self.init.currentData()
        if key == "bundled":
            return "bundled"
        if key == "file":
            return self.init_file.text().strip() or None
        return None

    def defaults(self) -> TrainConfig:
        """The engine's defaults for the current preset, loss and starting point."""
        init = "bundled" if self.init.currentData() in ("bundled", "file") else None
        return TrainConfig(data_dir="", preset=self.preset.currentText(), loss=self.loss.currentText(),
                           init=init).resolved()

    def apply_defaults(self) -> None:
        """Fill every preset-dependent field with the defaults (keeps preset, loss, start, device)."""
        d = self.defaults()
        base = TrainConfig(data_dir="")
        self._set_arch(d.arch)
        self.image_size.setValue(int(d.image_size))
        self.embedding_dim.setValue(int(d.embedding_dim))
        self.margin.setValue(float(d.margin))
        self.epochs.setValue(0 if d.automatic_plan else int(d.epochs))
        self.max_minutes.setValue(0.0)
        self.batch_size.setValue(int(d.batch_size))
        self.lr.setValue(float(d.lr))
        self.val_split.setValue(self.val_split.minimum() if base.val_split is None else base.val_split)
        self.pairs_per_epoch.setValue(0)
        self.seed.setValue(base.seed)
        self.changed.emit()

    def _set_arch(self, name: str) -> None:
        i = self.arch.findData(name)
        if i >= 0:
            self.arch.setCurrentIndex(i)

    def _select_preset_loss(self) -> None:
        """Select the preset's own default loss (e.g. batch-hard triplet for faces)."""
        loss = TrainConfig(data_dir="", preset=self.preset.currentText()).resolved().loss
        self.loss.blockSignals(True)
        _select_text(self.loss, loss)
        self.loss.blockSignals(False)

    def _on_preset_changed(self, _index: int) -> None:
        self._select_preset_loss()
        self.apply_defaults()

    def _on_loss_changed(self, _index: int) -> None:
        self.margin.setValue(float(self.defaults().margin))
        self.changed.emit()

    def _on_init_changed(self, _index: int) -> None:
        d = self.defaults()
        self.epochs.setValue(0 if d.automatic_plan else int(d.epochs))
        self.lr.setValue(float(d.lr))
        self._update_enabled()
        self.changed.emit()

    def _on_init_browse_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model to fine-tune", self.init_file.text(),
                                              "Model files (*.safetensors *.pt *.pth)")
        if path:
            self.init_file.setText(path)

    def _update_enabled(self) -> None:
        from_model = self.init.currentData() != "scratch"
        self._form.setRowVisible(self._init_file_row, self.init.currentData() == "file")
        for w in (self.arch, self.image_size, self.embedding_dim):
            w.setEnabled(not from_model)
            w.setToolTip("Taken from the model being fine-tuned" if from_model else "")

    # -- config ----------------------------------------------------------------------
    def config(self, data_dir: str) -> TrainConfig:
        """A TrainConfig from the form (the engine validates it)."""
        return TrainConfig(
            data_dir=str(data_dir), preset=self.preset.currentText(), arch=self.arch.currentData(),
            image_size=self.image_size.value(), embedding_dim=self.embedding_dim.value(),
            loss=self.loss.currentText(), margin=self.margin.value(), epochs=self.epochs.value() or None,
            time_budget_s=self.max_minutes.value() * 60.0 or None,
            batch_size=self.batch_size.value(), lr=self.lr.value(), val_split=self._val_split(),
            seed=self.seed.value(), device=self.device.currentData(),
            pairs_per_epoch=self.pairs_per_epoch.value() or None, init=self.init_value(),
        )

    def _val_split(self) -> float | None:
        """The validation split, None for "auto" (the spin box's minimum)."""
        value = self.val_split.value()
        return None if value <= self.val_split.minimum() else value

    # -- persistence -----------------------------------------------------------------
    _SPIN_KEYS = ("image_size", "embedding_dim", "margin", "epochs", "max_minutes", "batch_size", "lr", "val_split",
                  "pairs_per_epoch", "seed")

    def save(self, settings: QSettings) -> None:
        settings.beginGroup(SETTINGS_GROUP)
        settings.setValue("version", SETTINGS_VERSION)
        settings.setValue("preset", self.preset.currentText())
        settings.setValue("arch", self.arch.currentData())
        settings.setValue("loss", self.loss.currentText())
        settings.setValue("device", self.device.currentData())
        settings.setValue("init", self.init.currentData())
        settings.setValue("init_file", self.init_file.text())
        for key in self._SPIN_KEYS:
            settings.setValue(key, getattr(self, key).value())
        settings.endGroup()
        settings.sync()

    def restore(self, settings: QSettings) -> None:
        settings.beginGroup(SETTINGS_GROUP)
        try:
            if _int(settings.value("version"), 0) != SETTINGS_VERSION:
                return
            widgets = [self.preset, self.loss, self.init]
            for w in widgets:
                w.blockSignals(True)
            try:
                _select_text(self.preset, settings.value("preset"))
                _select_text(self.loss, settings.value("loss"))
                _select_data(self.init, settings.value("init"))
            finally:
                for w in widgets:
                    w.blockSignals(False)
            self.init_file.setText(str(settings.value("init_file") or ""))
            _select_data(self.arch, settings.value("arch"))
            _select_data(self.device, settings.value("device"))
            for key in self._SPIN_KEYS:
                box = getattr(self, key)
                value = settings.value(key)
                if value is None:
                    continue
                try:
                    number = float(value)
                    if math.isfinite(number):  # a hand-edited "nan" or "1e400" keeps the default
                        box.setValue(type(box.value())(number))
                except (TypeError, ValueError, OverflowError):
                    pass
        finally:
            settings.endGroup()
            self._update_enabled()


def _spin(lo: int, hi: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    return spin


def _double_spin(lo: float, hi: float, step: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setDecimals(2)
    spin.setSingleStep(step)
    return spin


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _select_text(combo: QComboBox, text) -> None:
    i = combo.findText(str(text)) if text is not None else -1
    if i >= 0 and combo.model().item(i) is not None and combo.model().item(i).isEnabled():
        combo.setCurrentIndex(i)


def _select_data(combo: QComboBox, data) -> None:
    i = combo.findData(str(data)) if data is not None else -1
    if i >= 0 and combo.model().item(i) is not None and combo.model().item(i).isEnabled():
        combo.setCurrentIndex(i)

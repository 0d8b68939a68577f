"""The Evaluate tab's results: curves, tables and the worst pairs of an EvaluationResult."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from siamgui.core.evaluation.explain import display_input, overlay
from siamgui.gui.image_view import array_to_qimage
from siamgui.gui.train_plots import make_plot

GENUINE, IMPOSTOR, THRESH = QColor(31, 111, 180), QColor(208, 84, 44), QColor(51, 51, 51)
TILE = 112  # px: the height of each image in a worst-pair row


class CurvesPanel(QWidget):
    """ROC (log FAR), DET (log-log) and the two distance histograms with the threshold line."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.roc = make_plot("ROC", "false accept rate (log)", "true accept rate")
        self.det = make_plot("DET", "false accept rate (log)", "false reject rate (log)")
        self.hist = make_plot("Distances", "distance", "pairs")
        self.roc.getPlotItem().setLogMode(x=True, y=False)
        self.det.getPlotItem().setLogMode(x=True, y=True)
        self.hist.getPlotItem().addLegend(offset=(-10, 10))
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.roc, 0, 0)
        lay.addWidget(self.det, 0, 1)
        lay.addWidget(self.hist, 1, 0, 1, 2)

    def show_result(self, result) -> None:
        for w in (self.roc, self.det, self.hist):
            w.getPlotItem().clear()
        far, tar, _ = result.roc()
        keep = far > 0  # a log axis has no place for FAR = 0
        self.roc.plot(far[keep], tar[keep], pen=pg.mkPen(GENUINE, width=2))
        dfar, frr, _ = result.det()
        keep = (dfar > 0) & (frr > 0)
        self.det.plot(dfar[keep], frr[keep], pen=pg.mkPen(IMPOSTOR, width=2))
        h = result.histograms()
        edges = np.asarray(h["edges"])
        for key, name, colour in (("same", "genuine (same)", GENUINE), ("different", "impostor", IMPOSTOR)):
            fill = QColor(colour)
            fill.setAlpha(90)
            self.hist.plot(edges, np.asarray(h[key]), stepMode="center", fillLevel=0, brush=fill,
                           pen=pg.mkPen(colour, width=1.5), name=name)
        line = pg.InfiniteLine(result.threshold, angle=90, pen=pg.mkPen(THRESH, width=2, style=Qt.PenStyle.DashLine),
                               label=f"threshold {result.threshold:.3f}", labelOpts={"color": "#222", "position": 0.9})
        self.hist.addItem(line)


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.horizontalHeader().setStretchLastSection(True)
    return t


def _fill(table: QTableWidget, rows: list[list[str]], grey: set[int] = frozenset()) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter if c < len(row) - 1
                                  else Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            if r in grey:
                item.setForeground(QColor(140, 140, 140))
            table.setItem(r, c, item)
    table.resizeColumnsToContents()


class TablesPanel(QWidget):
    """TAR at FAR and the threshold table; "Use this threshold…" acts on the selected row."""

    use_threshold = Signal(dict)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tar_table = _table(["FAR", "TAR", "threshold", "impostor pairs", "note"])
        self.threshold_table = _table(["threshold", "FAR", "FRR", "accuracy", "false accepts", "false rejects",
                                       "label"])
        self.use_button = QPushButton("Use this threshold…")
        self.use_button.setToolTip("Save a copy of the model file with the selected threshold (the original is kept)")
        self.use_button.setEnabled(False)
        self.threshold_table.itemSelectionChanged.connect(
            lambda: self.use_button.setEnabled(bool(self.threshold_table.selectedItems())))
        self.use_button.clicked.connect(self._on_use)
        self._rows: list[dict] = []
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        left = QVBoxLayout()
        left.addWidget(QLabel("True accept rate at a false accept rate"))
        left.addWidget(self.tar_table)
        right = QVBoxLayout()
        right.addWidget(QLabel("Thresholds (a pair is \"same\" when its distance is below the threshold)"))
        right.addWidget(self.threshold_table)
        right.addWidget(self.use_button, 0, Qt.AlignmentFlag.AlignRight)
        lay.addLayout(left, 2)
        lay.addLayout(right, 3)

    def show_result(self, result) -> None:
        rows, grey = [], set()
        for i, r in enumerate(result.tar_at_far):
            if r.supported:
                note = f"{r.false_accepts} accepted" + (", rough" if r.rough else "")
                rows.append([f"{r.far:g}", f"{r.tar:.4f}", f"{r.threshold:.4f}", str(r.impostor_pairs), note])
            else:
                grey.add(i)
                rows.append([f"{r.far:g}", "-", "-", str(r.impostor_pairs),
                             f"not supported (needs {r.impostors_needed} impostor pairs)"])
        _fill(self.tar_table, rows, grey)
        self._rows = list(result.threshold_table)
        _fill(self.threshold_table, [[f"{r['threshold']:.4f}", f"{r['far']:.4f}", f"{r['frr']:.4f}",
                                      f"{r['accuracy']:.4f}", str(r["false_accepts"]), str(r["false_rejects"]),
                                      r["label"]] for r in self._rows])
        model = [i for i, r in enumerate(self._rows) if "model" in r["label"]]
        for i in model:
            for c in range(self.threshold_table.columnCount()):
                self.threshold_table.item(i, c).setBackground(QColor(255, 246, 214))
        self.use_button.setEnabled(False)

    def select_row(self, index: int) -> None:
        self.threshold_table.selectRow(index)

    def selected_row(self) -> dict | None:
        rows = self.threshold_table.selectionModel().selectedRows()
        return self._rows[rows[0].row()] if rows else None

    def _on_use(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.use_threshold.emit(row)


def pair_strip(example, invert: bool = False) -> np.ndarray:
    """One row image: the two originals, then the two crops the model saw (with their maps when explained)."""
    tiles = []
    for thumb in example.thumbs:
        tiles.append(thumb if thumb is not None else np.full((TILE, TILE, 3), 200, np.uint8))
    for k, arr in enumerate(example.inputs):
        rgb = display_input(arr, invert)
        if example.explanation is not None:
            rgb = overlay(rgb, example.explanation.maps[k], example.explanation.scale)
        tiles.append(rgb)
    return _hstack([_to_height(t, TILE) for t in tiles], gap=6)


def _to_height(rgb: np.ndarray, h: int) -> np.ndarray:
    from PIL import Image

    w = max(1, round(rgb.shape[1] * h / rgb.shape[0]))
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))


def _hstack(tiles: list[np.ndarray], gap: int) -> np.ndarray:
    h = tiles[0].shape[0]
    sep = np.full((h, gap, 3), 255, np.uint8)
    parts = []
    for t in tiles:
        parts += [t, sep]
    return np.concatenate(parts[:-1], axis=1)


class WorstPairsPanel(QWidget):
    """The worst false accepts and rejects; double-click opens a pair in the Compare tab."""

    open_pair = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setIconSize(QSize(4 * TILE + 40, TILE))
        self.list.setSpacing(2)
        self.list.itemDoubleClicked.connect(self._on_double_click)
        key = QLabel("Each row: the two images, then the crops the model saw. Green regions pull the pair "
                     "together, red ones push it apart. Double-click a row to open it in Compare.")
        key.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(key)
        lay.addWidget(self.list)

    def show_result(self, result, invert: bool = False) -> None:
        self.list.clear()
        for title, examples in (("impostor", result.worst_accepts), ("genuine", result.worst_rejects)):
            for e in examples:
                verdict = ("false accept" if not e.same else "false reject") if e.error else "correct"
                text = (f"{title} pair, distance {e.distance:.4f} ({verdict})\n{e.a}\n{e.b}"
                        + "".join(f"\n{n}" for n in e.notes if n))
                item = QListWidgetItem(QIcon(QPixmap.fromImage(array_to_qimage(pair_strip(e, invert)))), text)
                item.setData(Qt.ItemDataRole.UserRole, (e.a, e.b))
                if e.error:
                    item.setForeground(QColor(179, 38, 30))
                self.list.addItem(item)

    def _on_double_click(self, item: QListWidgetItem) -> None:
        a, b = item.data(Qt.ItemDataRole.UserRole)
        self.open_pair.emit(a, b)


class ResultsView(QTabWidget):
    """Curves, tables and worst pairs, one page each."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.curves = CurvesPanel()
        self.tables = TablesPanel()
        self.worst = WorstPairsPanel()
        self.addTab(self.curves, "Curves")
        self.addTab(self.tables, "Thresholds")
        self.addTab(self.worst, "Worst pairs")

    def show_result(self, result, invert: bool = False) -> None:
        self.curves.show_result(result)
        self.tables.show_result(result)
        self.worst.show_result(result, invert)

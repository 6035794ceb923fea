"""The widget's Qt controls: their layout, and how they show what the widget tells them (no behaviour: that lives
in :mod:`napari_pge_sam._widget`)."""

from __future__ import annotations

from qtpy.QtCore import QSignalBlocker, Qt
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QProgressBar, QPushButton, QVBoxLayout, QWidget,
)

from pge_sam.normalize import DEFAULT_ARGS

AXIS_NAMES = ("Z", "Y", "X")
DEVICES = ("auto", "cuda", "mps", "cpu")
NORMALIZATIONS = ("percentile", "window")

SHORTCUTS = [
    ("Click", "positive point (points layer in add mode)"),
    ("Ctrl+Click", "negative point (Cmd+Click on macOS)"),
    ("T", "toggle positive / negative clicks"),
    ("M", "another mask for the first click on a slice (whole / part / sub-part)"),
    ("R", "draw a box prompt (on the box layer)"),
    ("Ctrl+Z", "undo the last prompt (points / box layer)"),
    ("N", "next object (new label id)"),
    ("Enter", "accept the object (points layer)"),
]


def shortcuts_html() -> str:
    rows = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in SHORTCUTS)
    return f"<table>{rows}</table>"


class Panel:
    """Builds every control into ``parent``, keeps references to them as attributes, and shows what it is told."""

    def __init__(self, parent: QWidget) -> None:
        root = QVBoxLayout(parent)

        data = QGroupBox("Data")
        form = QFormLayout(data)
        self.image = QComboBox()
        self.image.setToolTip("Image layer to segment (2D or 3D, greyscale)")
        form.addRow("Image", self.image)
        self.axis = QComboBox()
        self.axis.setToolTip("Slicing axis; follows the viewer (changing it rolls the viewer's dimensions)")
        form.addRow("Slicing axis", self.axis)
        norm_row = QHBoxLayout()
        self.norm_mode = QComboBox()
        self.norm_mode.addItems(NORMALIZATIONS)
        self.norm_low, self.norm_high = QDoubleSpinBox(), QDoubleSpinBox()
        for spin in (self.norm_low, self.norm_high):
            spin.setRange(-1e7, 1e7)
            spin.setDecimals(2)
            spin.setKeyboardTracking(False)
        self.norm_low.setValue(0.5)
        self.norm_high.setValue(99.5)
        self.norm_mode.setToolTip("percentile: low/high percentiles of the volume; window: level/width in image units")
        norm_row.addWidget(self.norm_mode)
        norm_row.addWidget(self.norm_low)
        norm_row.addWidget(self.norm_high)
        form.addRow("Normalisation", norm_row)
        root.addWidget(data)

        model = QGroupBox("Model")
        mform = QFormLayout(model)
        self.model = QComboBox()
        self.load = QPushButton("Load model")
        row = QHBoxLayout()
        row.addWidget(self.model, 1)
        row.addWidget(self.load)
        mform.addRow("Model", row)
        self.checkpoint = QLineEdit()
        self.checkpoint.setPlaceholderText("default weights (optional: a custom checkpoint file)")
        mform.addRow("Checkpoint", self.checkpoint)
        self.cache_dir = QLineEdit()
        self.download = QPushButton("Download")
        self.download.setToolTip("Download the official checkpoint into the cache folder (sha256 checked)")
        row = QHBoxLayout()
        row.addWidget(self.cache_dir, 1)
        row.addWidget(self.download)
        mform.addRow("Cache folder", row)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        mform.addRow("Device", self.device)
        self.device_note = QLabel("")
        self.device_note.setWordWrap(True)
        self.device_note.setStyleSheet("color: #e0a030;")
        mform.addRow(self.device_note)
        root.addWidget(model)

        actions = QGroupBox("Segment")
        grid = QGridLayout(actions)
        self.precompute = QPushButton("Precompute")
        self.precompute.setToolTip("Encode every slice along the slicing axis in the background")
        self.propagate = QPushButton("Propagate")
        self.propagate.setToolTip("Propagate the current object to the neighbouring slices")
        self.cancel = QPushButton("Cancel")
        self.next_object = QPushButton("Next object")
        self.accept = QPushButton("Accept")
        self.accept.setToolTip("Finish the current object: its prompts are cleared and undo no longer reaches it")
        self.undo = QPushButton("Undo")
        self.clear = QPushButton("Clear")
        self.clear.setToolTip("Remove the current object's voxels and prompts (undoable)")
        self.polarity = QPushButton("Clicks: positive")
        self.polarity.setCheckable(True)
        self.other_mask = QPushButton("Other mask")
        self.other_mask.setToolTip("A first click may mean the whole, a part or a sub-part: show the model's next "
                                   "mask for it (M; Undo goes back)")
        self.save = QPushButton("Save labels…")
        self.save.setToolTip("Write the labels with the image's geometry (NIfTI, NRRD, MHA); atomic, verified")
        for i, button in enumerate((self.precompute, self.propagate, self.cancel, self.polarity,
                                    self.next_object, self.accept, self.undo, self.clear, self.other_mask)):
            grid.addWidget(button, i // 4, i % 4)
        self.overwrite = QCheckBox("Paint over other objects")
        self.overwrite.setToolTip("Off (default): a new object never takes voxels of another object")
        grid.addWidget(self.overwrite, 2, 1, 1, 2)
        grid.addWidget(self.save, 2, 3)
        self.save_embeddings = QPushButton("Save embeddings…")
        self.save_embeddings.setToolTip("Encode every slice along the slicing axis into a folder (carry it to "
                                        "another machine; cached slices are copied, not encoded again)")
        self.load_embeddings = QPushButton("Load embeddings…")
        self.load_embeddings.setToolTip("Use embeddings saved for this image, model and normalisation "
                                        "(e.g. by `pge-sam precompute`): their slices are not encoded again")
        grid.addWidget(self.save_embeddings, 3, 0, 1, 2)
        grid.addWidget(self.load_embeddings, 3, 2, 1, 2)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("no background job yet")
        grid.addWidget(self.progress, 4, 0, 1, 4)
        root.addWidget(actions)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        root.addWidget(self.status)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        root.addWidget(self.message)

        keys = QGroupBox("Shortcuts")
        klay = QVBoxLayout(keys)
        self.shortcuts = QLabel(shortcuts_html())
        self.shortcuts.setWordWrap(True)
        klay.addWidget(self.shortcuts)
        root.addWidget(keys)
        root.addStretch(1)

    # -- what the controls show ------------------------------------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        """Show ``text`` in the message line (in red when ``error``)."""
        self.message.setStyleSheet("color: #ff6060;" if error else "")
        self.message.setText(text)

    def show_progress(self, kind: str, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))
        self.progress.setFormat(f"{kind} %v/%m")

    def show_images(self, layers: list, chosen) -> None:
        """List the image ``layers`` in the picker (item data: the layer), ``chosen`` selected (else the first)."""
        with QSignalBlocker(self.image):
            self.image.clear()
            for layer in layers:
                self.image.addItem(layer.name, layer)
            self.image.setCurrentIndex(layers.index(chosen) if chosen in layers else 0)

    def show_axes(self, volume: bool) -> None:
        """Offer the three slicing axes of a volume, or the one of a 2D image."""
        self.axis.clear()
        self.axis.addItems([f"{a} ({AXIS_NAMES[a]})" for a in range(3)] if volume else ["0 (2D image)"])
        self.axis.setEnabled(volume)

    def show_polarity(self, positive: bool) -> None:
        self.polarity.setChecked(not positive)
        self.polarity.setText(f"Clicks: {'positive' if positive else 'negative'}")

    def normalization_text(self, mode: str | None = None) -> str:
        """The normalisation the controls set, as ``mode:low,high``; a new ``mode`` first shows its default numbers."""
        for spin, value in zip((self.norm_low, self.norm_high), DEFAULT_ARGS[mode] if mode else ()):
            with QSignalBlocker(spin):
                spin.setValue(value)
        return f"{self.norm_mode.currentText()}:{self.norm_low.value()},{self.norm_high.value()}"

    def show_normalization(self, normalization) -> None:
        """Show ``normalization`` (a ``pge_sam.Normalization``) without signalling a change."""
        low, high = normalization.args()
        with QSignalBlocker(self.norm_mode), QSignalBlocker(self.norm_low), QSignalBlocker(self.norm_high):
            self.norm_mode.setCurrentText(normalization.mode)
            self.norm_low.setValue(low)
            self.norm_high.setValue(high)

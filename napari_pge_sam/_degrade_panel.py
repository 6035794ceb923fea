"""The degradation preview group of the widget: a copy of the chosen image under one of the core's degradations.

The user picks a degradation (``pge_sam.degrade``; general ones first, then
MRI- and CT-specific ones, the group shown in the picker and the parameters in
its tooltip), a severity and a seed, and presses **Add degraded copy**. The
core (:func:`pge_sam.degrade.volume.apply_with_progress`) degrades the image in
a worker (:mod:`._workers`: progress bar, Cancel); the new Image layer
``"<image> [<degradation> s<severity>]"`` is inserted right above its source
with the source's transform, contrast limits, colormap and metadata. The
source layer's data is only read.
"""

from __future__ import annotations

from typing import Callable

import napari.layers
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QPushButton, QSpinBox

from pge_sam.degrade import MAX_SEVERITY, describe, get_degradation, list_degradations
from pge_sam.degrade.volume import apply_with_progress, preview_label
from pge_sam.errors import InputError, PgeSamError
from pge_sam.interaction import describe_error

from ._layers import image_array, transform_kwargs

KIND = "degrade"  # the job kind (the widget's Cancel button stops it)


class DegradePanel:
    """Builds the group into the widget's root layout (above the status line) and drives it.

    ``source()``: the Image layer chosen in the widget's picker (``None``: none); ``report(text, error)``
    shows a message the way the widget does.
    """

    def __init__(self, ui, viewer, jobs, source: Callable[[], object], report: Callable[[str, bool], None]) -> None:
        self.viewer, self.jobs, self.source, self.report = viewer, jobs, source, report
        self.box = QGroupBox("Degradation preview")
        form = QFormLayout(self.box)
        self.name = QComboBox()
        for i, name in enumerate(list_degradations()):
            self.name.addItem(f"{name} ({get_degradation(name).group})", name)
            self.name.setItemData(i, describe(name), Qt.ToolTipRole)
        self.name.setToolTip("A degradation of pge_sam.degrade: general ones, then MRI- and CT-specific ones")
        form.addRow("Degradation", self.name)
        self.severity, self.seed = QSpinBox(), QSpinBox()
        self.severity.setRange(1, MAX_SEVERITY)
        self.severity.setValue(2)
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("The same image, degradation, severity and seed always give the same copy")
        self.run = QPushButton("Add degraded copy")
        self.run.setToolTip("Add the chosen image, degraded, as a new layer above it (the image itself is unchanged)")
        row = QHBoxLayout()
        for label, spin in (("severity", self.severity), ("seed", self.seed)):
            spin.setPrefix(f"{label} ")
            row.addWidget(spin)
        row.addWidget(self.run, 1)
        form.addRow(row)
        root = ui.status.parentWidget().layout()
        root.insertWidget(root.indexOf(ui.status), self.box)
        self.run.clicked.connect(lambda _=False: self.start())

    def start(self, name: str | None = None, severity: int | None = None, seed: int | None = None) -> bool:
        """Degrade the chosen image in a worker (the picker's values unless given); ``False`` if refused."""
        name = name or self.name.currentData()
        severity = self.severity.value() if severity is None else severity
        seed = self.seed.value() if seed is None else seed
        layer = self.source()
        try:
            if self.jobs.busy(KIND):
                raise InputError("a degraded copy is being made: wait for it or press Cancel")
            if layer is None:
                raise InputError("no image layer: open an image, then choose it in 'Image'")
            if layer.multiscale:
                raise InputError(f"{layer.name} is a multiscale image; the preview degrades single-scale images "
                                 "(add its full-resolution level as a layer first)")
            data = image_array(layer.data, rgb=layer.rgb)
            tag = preview_label(name, severity, seed)
        except PgeSamError as err:
            self.report(f"degradation preview: {err}", True)
            return False
        self.jobs.start(KIND, lambda progress: apply_with_progress(data, name, severity, seed, progress),
                        lambda out: self._add(layer, out, tag, (name, severity, seed)), self._failed,
                        with_progress=True, description=f"pge-sam: {tag}", keep=True)
        self.report(f"degrading {layer.name} with {tag} in the background ...", False)
        return True

    def _add(self, source, data, tag: str, recipe: tuple) -> None:
        """GUI thread: insert the degraded copy above ``source`` (or on top if it was removed meanwhile)."""
        active = self.viewer.layers.selection.active
        metadata = {**source.metadata, "pge_sam_degradation": dict(zip(("name", "severity", "seed"), recipe),
                                                                   source=source.name)}
        layer = napari.layers.Image(data, name=f"{source.name} [{tag}]", contrast_limits=source.contrast_limits,
                                    colormap=source.colormap, gamma=source.gamma, metadata=metadata,
                                    **transform_kwargs(source))
        layers = self.viewer.layers
        layers.insert(layers.index(source) + 1 if source in layers else len(layers), layer)
        if active is not None and active in layers:
            layers.selection.active = active  # the widget's points layer stays the one clicks go to
        self.report(f"added {layer.name!r} {tuple(data.shape)}; choose it in 'Image' to segment it", False)

    def _failed(self, err: Exception) -> None:
        text, error = describe_error(err)
        self.report(f"degradation preview: {text}", error)

"""The dock widget: turns layer edits and button presses into controller verbs, and changes into redraws.

It keeps no interactive state of its own beyond the clicks waiting for an
encode: prompts, objects and undo are the session's, and every redraw reads
them back (``controller.prompts()``, the returned ``Change``).

Threading: clicks on an already-encoded slice are decoded synchronously (a
few milliseconds); encoding a slice, loading a model, precomputing and
propagating run in ``napari.qt.threading`` workers that never touch a layer.
Keys are bound on the plugin's own Points/Shapes layers only, never on the
viewer, so napari's global shortcuts are untouched.
"""

from __future__ import annotations

import napari.viewer
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QWidget

from pge_sam.errors import Cancelled, InputError, PgeSamError

from ._controller import Controller, image_array
from ._layers import PromptLayers, current_index, slicing_axis, voxel_size
from ._model_panel import ModelPanel
from ._panel import Panel
from ._prompting import PromptingMixin
from ._workers import Jobs

AXIS_NAMES = ("Z", "Y", "X")


class PgeSamWidget(PromptingMixin, QWidget):
    """Interactive segmentation of the chosen image layer with a (PGE-)SAM model.

    ``model``: an already built model or ``Predictor`` to use instead of
    loading one from the picker (tests, scripts); ``sessions``: a session
    factory to use instead of a model (tests); ``prefetch``: neighbouring
    slices encoded in the background when the slice changes.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, model=None, *, prefetch: int = 2, sessions=None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.controller = Controller(model, sessions=sessions, prefetch=prefetch)
        self.jobs = Jobs(on_progress=self._on_progress)
        self.ui = Panel(self)
        self.models = ModelPanel(self.ui, self.jobs, self.controller, self._report, self.set_model, self._job_failed,
                                 given=model if model is not None else sessions)
        self.layers: PromptLayers | None = None
        self.image_layer = None
        self.positive = True
        self.last_latency: float | None = None  # seconds from prompt to redrawn labels, last click
        self.last_decode: float | None = None  # seconds of that spent in the session (decode + label write)
        self.last_progress: tuple[str, int, int] | None = None  # (job kind, done, total)
        self.closed = False
        self._queue: list = []  # pending _prompting._Click items
        self._index = 0
        self._parented = False
        self._connections: list[tuple[object, object]] = []
        self._detaching = False
        self._wire()
        self._refresh_image_choices()
        if self.ui.image.count():
            self.set_image_layer(self._layer_by_name(self.ui.image.currentText()))
        else:
            self.set_image_layer(None)

    # -- wiring ------------------------------------------------------------------------------------------
    def _wire(self) -> None:
        ui = self.ui
        ui.image.activated.connect(lambda _: self.set_image_layer(self._layer_by_name(ui.image.currentText())))
        ui.axis.activated.connect(self._axis_chosen)
        ui.norm_mode.currentTextChanged.connect(self._normalization_mode_changed)
        ui.norm_low.valueChanged.connect(lambda _: self._normalization_changed())
        ui.norm_high.valueChanged.connect(lambda _: self._normalization_changed())
        ui.overwrite.toggled.connect(self.controller.set_overwrite)
        for button, action in ((ui.precompute, self.precompute), (ui.propagate, self.propagate),
                               (ui.cancel, self.cancel), (ui.next_object, self.next_object),
                               (ui.accept, self.accept), (ui.undo, self.undo), (ui.clear, self.clear),
                               (ui.polarity, self.toggle_polarity), (ui.save, self.save_labels)):
            button.clicked.connect(lambda _=False, a=action: a())
        for emitter, handler in ((self.viewer.layers.events.inserted, self._layers_changed),
                                 (self.viewer.layers.events.removed, self._layer_removed),
                                 (self.viewer.dims.events.order, self._view_changed),
                                 (self.viewer.dims.events.ndisplay, self._view_changed),
                                 (self.viewer.dims.events.current_step, self._step_changed)):
            emitter.connect(handler)
            self._connections.append((emitter, handler))

    def _layer_by_name(self, name: str):
        for layer in self.viewer.layers:
            if layer.name == name and isinstance(layer, napari.layers.Image):
                return layer
        return None

    def _refresh_image_choices(self) -> None:
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, napari.layers.Image)]
        current = self.image_layer.name if self.image_layer is not None else None
        self.ui.image.blockSignals(True)
        self.ui.image.clear()
        self.ui.image.addItems(names)
        if current in names:
            self.ui.image.setCurrentText(current)
        self.ui.image.blockSignals(False)

    def _layers_changed(self, event=None) -> None:
        self._refresh_image_choices()
        if self.image_layer is None and self.ui.image.count():
            self.set_image_layer(self._layer_by_name(self.ui.image.currentText()))

    def _layer_removed(self, event) -> None:
        layer = event.value
        if self._detaching:
            return
        if layer is self.image_layer and layer is not None:
            self._detach()
            self._error("the image layer was removed; choose another image")
        elif self.layers is not None and layer in (self.layers.points, self.layers.shapes, self.layers.labels):
            self._detach()
            self._error(f"the layer {layer.name!r} was removed; choose the image again to continue")
        self._refresh_image_choices()

    # -- image -------------------------------------------------------------------------------------------------------
    def _detach(self) -> None:
        """Forget the current image: stop its jobs, take our prompt layers away (labels stay), drop the session."""
        self._detaching = True
        try:
            self.jobs.invalidate()  # results of jobs started before are ignored
            self.jobs.cancel("propagate", "precompute", "encode")
            self._queue.clear()
            if self.layers is not None:
                self.layers.remove_prompt_layers()
                self.layers = None
            self.controller.detach()
            self.image_layer = None
            self._update_status()
        finally:
            self._detaching = False

    def set_image_layer(self, layer) -> None:
        """Segment ``layer`` from now on (``None``: none). The session restarts; earlier labels stay in their layer."""
        self._detach()
        if layer is None:
            self._error("no image layer: open an image, or File > Open Sample > PGE-SAM")
            self._update_axis_choices()
            return
        try:
            array = image_array(layer.data, multiscale=layer.multiscale, rgb=layer.rgb)
        except InputError as err:
            self._error(f"{layer.name}: {err}")
            self._update_axis_choices()
            return
        self.image_layer = layer
        self.layers = PromptLayers(self.viewer, layer, tuple(array.shape))
        try:
            self.controller.set_image(array, self.layers.labels.data, voxel_size(layer))
        except PgeSamError as err:
            self._detach()
            self._error(f"{layer.name}: {err}")
            return
        self.layers.connect(self._on_points_data, self._on_shapes_data, self._on_labels_data)
        keys = {"Control-Z": self.undo, "N": self.next_object}
        self.layers.bind_keys({**keys, "T": self.toggle_polarity, "Enter": self.accept}, keys)
        self.ui.image.setCurrentText(layer.name)
        self._update_axis_choices()
        self._view_changed()
        self._info(f"segmenting {layer.name} {tuple(array.shape)}; click on it to add prompts")

    def _on_labels_data(self, event=None) -> None:
        data = self.layers.labels.data
        if data is self.controller.display:
            return
        try:
            self.controller.set_display(data)
            self._info("the labels layer got new data: the session restarted with those labels")
        except PgeSamError as err:
            self._error(f"cannot use the new labels data ({err}); choose the image again")
        self._render()

    # -- slicing axis and current slice -------------------------------------------------------------------------
    def _update_axis_choices(self) -> None:
        ui = self.ui
        ui.axis.clear()
        if self.controller.ndim == 3:
            ui.axis.addItems([f"{a} ({AXIS_NAMES[a]})" for a in range(3)])
        else:
            ui.axis.addItem("0 (2D image)")
        ui.axis.setEnabled(self.controller.ndim == 3)

    def _axis_chosen(self, axis: int) -> None:
        """Roll the viewer so that data axis ``axis`` of the image is the sliced one (the session follows)."""
        if self.controller.ndim != 3:
            return
        world = axis + self.viewer.dims.ndim - 3
        others = [d for d in range(self.viewer.dims.ndim) if d != world]
        self.viewer.dims.order = tuple(others[:-2] + [world] + others[-2:])

    def _view_changed(self, event=None) -> None:
        if self.image_layer is None:
            return
        axis = slicing_axis(self.viewer.dims, self.controller.ndim)
        if axis is not None and not self.jobs.busy("propagate"):
            self.controller.set_axis(axis)
            self.ui.axis.setCurrentIndex(axis if self.controller.ndim == 3 else 0)
        self._step_changed()

    def _step_changed(self, event=None) -> None:
        if self.image_layer is None or self.controller.ndim != 3 or self.viewer.dims.ndisplay != 2:
            self._update_status()
            return
        index = current_index(self.viewer.dims, self.image_layer, self.controller.axis)
        if index != self._index:
            self._index = index
            if not self.jobs.busy("propagate"):
                self.controller.focus(index)
        self._update_status()

    # -- feedback ------------------------------------------------------------------------------------------
    def _on_progress(self, kind: str, done: int, total: int) -> None:
        self.last_progress = (kind, done, total)
        self.ui.progress.setRange(0, max(total, 1))
        self.ui.progress.setValue(min(done, max(total, 1)))
        self.ui.progress.setFormat(f"{kind} %v/%m")

    def _job_failed(self, err: Exception) -> None:
        self._queue.clear()
        self._render()
        if isinstance(err, Cancelled):
            return self._info(str(err))
        known = isinstance(err, (PgeSamError, FileNotFoundError, ValueError))
        text = str(err) if known else f"{type(err).__name__}: {err}"
        self._error(text)

    def _update_status(self) -> None:
        c = self.controller
        if c.image is None:
            text = "no image"
        else:
            where = f"axis {c.axis} slice {self._index}" if c.ndim == 3 else "2D image"
            latency = f" · last click {self.last_latency * 1000:.0f} ms" if self.last_latency is not None else ""
            text = f"object {c.label} · {where}{latency}"
        self.ui.status.setText(text)

    @property
    def busy(self) -> bool:
        """True while a click waits to be applied or a worker (model, encode, precompute, ...) runs."""
        return bool(self._queue) or self.jobs.busy()

    def set_model(self, model) -> None:
        """Segment with ``model`` (a built model or a ``Predictor``) from now on; waiting clicks are then applied."""
        self.jobs.invalidate()  # results of jobs started with the previous model are ignored
        self.controller.set_model(model)
        device = getattr(model, "device", "cpu")
        self.models.device_note(device)
        self._info(f"model {getattr(model, 'name', type(model).__name__)} ready on {device}")
        self._render()
        self._drain()

    @property
    def status_text(self) -> str:
        return self.ui.status.text()

    @property
    def message_text(self) -> str:
        return self.ui.message.text()

    def save_labels(self, path: str | None = None) -> str | None:
        """Write the labels layer through the plugin's writer (the image's geometry, atomic and verified);
        ``path`` ``None`` asks with a file dialog. Returns the path written, or ``None``."""
        if self.layers is None:
            self._error("no labels yet: choose an image layer first")
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            source = self.layers.labels.metadata.get("pge_sam_source", "")
            start = str(source).rsplit(".nii", 1)[0] + "_labels.nii.gz" if source else "labels.nii.gz"
            path, _ = QFileDialog.getSaveFileName(self, "Save labels", start,
                                                  "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)")
            if not path:
                return None
        try:
            written = self.layers.labels.save(str(path), plugin="pge-sam")
        except (PgeSamError, OSError, ValueError) as err:
            self._error(f"labels not saved: {err}")
            return None
        if not written:
            self._error(f"labels not saved: no writer for {path}; use .nii.gz, .nii, .nrrd or .mha")
            return None
        self._info(f"labels saved to {written[0]}")
        return written[0]

    def _report(self, text: str, error: bool = False) -> None:
        self.ui.message.setStyleSheet("color: #ff6060;" if error else "")
        self.ui.message.setText(text)

    def _info(self, text: str) -> None:
        self._report(text)

    def _error(self, text: str) -> None:
        self._report(text, error=True)

    def _normalization_mode_changed(self, mode: str) -> None:
        defaults = (0.5, 99.5) if mode == "percentile" else (40.0, 400.0)
        for spin, value in zip((self.ui.norm_low, self.ui.norm_high), defaults):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self._normalization_changed()

    def _normalization_changed(self) -> None:
        from pge_sam.normalize import Normalization

        a, b = self.ui.norm_low.value(), self.ui.norm_high.value()
        try:
            norm = Normalization.percentile(a, b) if self.ui.norm_mode.currentText() == "percentile" \
                else Normalization.window(a, b)
        except PgeSamError as err:
            return self._error(str(err))
        if self._guard():
            return
        self._queue.clear()
        self.jobs.invalidate()
        self.controller.set_normalization(norm)
        self._render()
        self._info(f"normalisation {norm.key()}: prompts cleared, labels kept")

    # -- lifetime ------------------------------------------------------------------------------------------
    def event(self, event) -> bool:
        if event.type() == QEvent.ParentChange:
            if self.parent() is not None:
                self._parented = True
            elif self._parented:
                self.release()  # napari removed the dock widget
        return super().event(event)

    def closeEvent(self, event) -> None:
        self.release()
        super().closeEvent(event)

    def release(self) -> None:
        """Stop workers, unbind keys and events, drop the session (idempotent). Layers and labels stay."""
        if self.closed:
            return
        self.closed = True
        self.jobs.close()
        for emitter, handler in self._connections:
            emitter.disconnect(handler)
        self._connections = []
        if self.layers is not None:
            self.layers.disconnect()
        self.controller.release()

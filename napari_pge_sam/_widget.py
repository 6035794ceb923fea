"""The dock widget: napari layer events and buttons in, redraws out; the rest is :mod:`pge_sam.interaction`.

Prompts, objects, undo and the clicks waiting for an encode are the ``controller``'s (an
:class:`~pge_sam.interaction.Interaction` over the image layer's data and the Labels layer's array); every redraw
reads them back. Clicks on an encoded slice are decoded on the GUI thread; encoding a slice, loading a model,
precomputing, saving embeddings and planning a propagation run in workers (:mod:`._workers`) that never touch a
layer. Keys are bound on the plugin's own Points/Shapes layers only, so napari's global shortcuts are untouched.
"""

from __future__ import annotations

import time
from functools import partialmethod

import napari.viewer
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QFileDialog, QWidget

from pge_sam.errors import PgeSamError
from pge_sam.interaction import Interaction, Update, describe_error

from ._degrade_panel import DegradePanel
from ._io import SAVE_FILTER, save_labels_layer, suggested_labels_path
from ._layers import PromptLayers, current_index, image_array, slicing_axis, voxel_size
from ._model_panel import ModelPanel
from ._panel import Panel
from ._workers import Jobs


class PgeSamWidget(QWidget):
    """Interactive segmentation of the chosen image layer. ``model``: a built model or ``Predictor`` to use
    instead of the picker's (tests, scripts); ``sessions``: a session factory instead of a model (tests);
    ``prefetch``: neighbouring slices encoded in the background when the slice changes."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, model=None, *, prefetch: int = 2, sessions=None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.controller = Interaction(model, sessions=sessions, prefetch=prefetch)
        self.ui = ui = Panel(self)
        self.jobs = Jobs(ui.show_progress, lambda: self.controller.generation)
        self.models = ModelPanel(ui, self.jobs, self.controller, ui.say, self.set_model, self._job_failed,
                                 given=model if model is not None else sessions)
        self.degrade = DegradePanel(ui, napari_viewer, self.jobs, ui.image.currentData, ui.say)
        self.layers: PromptLayers | None = None
        self.image_layer = None
        self.positive, self.closed, self._parented, self._index = True, False, False, 0
        self.last_latency: float | None = None  # seconds from the last click's turn to its labels redrawn
        self.last_decode: float | None = None  # seconds of that spent in the session (decode + label write)
        ui.image.activated.connect(lambda _: self.set_image_layer(ui.image.currentData()))
        ui.axis.activated.connect(self._axis_chosen)
        ui.norm_mode.currentTextChanged.connect(self._normalization_changed)
        ui.norm_low.valueChanged.connect(lambda _: self._normalization_changed())
        ui.norm_high.valueChanged.connect(lambda _: self._normalization_changed())
        ui.overwrite.toggled.connect(self.controller.set_overwrite)
        for button, action in ((ui.precompute, self.precompute), (ui.propagate, self.propagate),
                               (ui.cancel, self.cancel), (ui.next_object, self.next_object),
                               (ui.accept, self.accept), (ui.undo, self.undo), (ui.clear, self.clear),
                               (ui.polarity, self.toggle_polarity), (ui.save, self.save_labels),
                               (ui.other_mask, self.other_mask),
                               (ui.save_embeddings, self.save_embeddings), (ui.load_embeddings, self.load_embeddings)):
            button.clicked.connect(lambda _=False, a=action: a())
        layers, dims = self.viewer.layers.events, self.viewer.dims.events
        self._connections = [(layers.inserted, self._layers_changed), (layers.removed, self._layer_removed),
                             (dims.order, self._view_changed), (dims.ndisplay, self._view_changed),
                             (dims.current_step, self._view_changed)]
        for emitter, handler in self._connections:
            emitter.connect(handler)
        self._refresh_image_choices()
        self.set_image_layer(ui.image.currentData())

    # -- image layer --------------------------------------------------------------------------------------------
    def _refresh_image_choices(self) -> None:
        images = [layer for layer in self.viewer.layers if isinstance(layer, napari.layers.Image)]
        self.ui.show_images(images, self.image_layer)

    def _layers_changed(self, event=None) -> None:
        self._refresh_image_choices()
        if self.image_layer is None and self.ui.image.count():
            self.set_image_layer(self.ui.image.currentData())

    def _layer_removed(self, event) -> None:
        layer = event.value
        if self.layers is not None and (layer is self.image_layer or layer in self.layers.own):
            image = layer is self.image_layer
            self._detach()
            self.ui.say("the image layer was removed; choose another image" if image else
                         f"the layer {layer.name!r} was removed; choose the image again to continue", True)
        self._refresh_image_choices()

    def _detach(self) -> None:
        """Forget the image: stop its jobs, take our prompt layers away (labels stay), end the session."""
        self.jobs.cancel("propagate", "precompute", "encode", "embeddings")
        self.controller.detach()  # results of jobs started before are now stale
        layers, self.layers, self.image_layer = self.layers, None, None  # their removal is then not ours to handle
        if layers is not None:
            layers.remove_prompt_layers()
        self._update_status()

    def set_image_layer(self, layer) -> None:
        """Segment ``layer`` from now on (``None``: none). The session restarts; earlier labels stay in their layer."""
        self._detach()
        if layer is None:
            self.ui.say("no image layer: open an image, or File > Open Sample > PGE-SAM", True)
            return self.ui.show_axes(False)
        try:
            array = image_array(layer.data, multiscale=layer.multiscale, rgb=layer.rgb)
            self.image_layer = layer  # before our layers are added: their insertion events see it
            self.layers = PromptLayers(self.viewer, layer, tuple(array.shape))
            self.controller.set_image(array, self.layers.labels.data, voxel_size(layer))
        except PgeSamError as err:
            self._detach()
            self.ui.say(f"{layer.name}: {err}", True)
            return self.ui.show_axes(False)
        self.layers.connect(self._submit, self._refused, self._on_labels_data)
        keys = {"Control-Z": self.undo, "N": self.next_object, "M": self.other_mask}
        self.layers.bind_keys({**keys, "T": self.toggle_polarity, "Enter": self.accept}, keys)
        self._refresh_image_choices()
        self.ui.show_axes(self.controller.ndim == 3)
        self._view_changed()
        self.ui.say(f"segmenting {layer.name} {tuple(array.shape)}; click on it to add prompts")

    def _on_labels_data(self, event=None) -> None:
        if self.layers.labels.data is self.controller.labels:
            return
        try:
            self.controller.set_labels(self.layers.labels.data)
            self.ui.say("the labels layer got new data: the session restarted with those labels")
        except PgeSamError as err:
            self.ui.say(f"cannot use the new labels data ({err}); choose the image again", True)
        self._render()

    # -- slicing axis and current slice ----------------------------------------------------------------------------
    def _axis_chosen(self, axis: int) -> None:
        """Roll the viewer so that data axis ``axis`` of the image is the sliced one (the session follows)."""
        if self.controller.ndim == 3:
            world = axis + self.viewer.dims.ndim - 3
            others = [d for d in range(self.viewer.dims.ndim) if d != world]
            self.viewer.dims.order = tuple(others[:-2] + [world] + others[-2:])

    def _view_changed(self, event=None) -> None:
        """Follow the viewer's slicing axis and slice (whose neighbours get encoded), except during a propagation."""
        c, dims, free = self.controller, self.viewer.dims, not self.jobs.busy("propagate")
        axis = slicing_axis(dims, c.ndim) if self.image_layer is not None else None
        if axis is not None and free:
            c.set_axis(axis)
            self.ui.axis.setCurrentIndex(c.axis)
        if self.image_layer is not None and c.ndim == 3 and dims.ndisplay == 2:
            index = current_index(dims, self.image_layer, c.axis)
            if index != self._index and free:
                c.focus(index)
            self._index = index
        self._update_status()

    # -- prompts -------------------------------------------------------------------------------------------------
    def _submit(self, kind: str, coords, negative: bool) -> None:
        """Queue a prompt (refused during propagation and in a 3D view); it is applied once its slice is encoded.
        A point is negative when the widget's polarity or the click (``negative``) says so."""
        if self.viewer.dims.ndisplay != 2:
            return self._refused("prompts need a 2D view: switch off 3D display (Ctrl+Y)", True)
        positive = kind == "box" or (self.positive and not negative)
        if self._try("prompt", lambda: self.controller.submit(kind, coords, positive)) is not None:
            if not self.controller.has_model:
                self.models.load()  # the click waits for the model
            self._drain()

    def _refused(self, message: str, error: bool) -> None:
        """An edit of the prompt layers that is not a prompt: show the session's prompts again, and why."""
        self._render()
        if message:
            self.ui.say(message, error)

    def _drain(self) -> None:
        """Apply the waiting clicks in order; one on a slice not encoded yet waits for an encode job."""
        c = self.controller
        while c.pending and c.has_model and not self.jobs.busy("encode", "model"):
            index = self._try(None, c.waiting_for)  # an error drops every waiting click: none is applied below
            if index is not None:
                self.ui.say(f"encoding slice {index} ...")
                axis = c.pending[0].axis
                self.jobs.start("encode", lambda: c.encode(index, axis), lambda _: self._drain(), self._job_failed,
                                on_stale=self._drain)  # stale: carry on with the current queue
                return self._render()
            started = time.perf_counter()
            self._show(self._try(None, c.apply_pending), started)

    def _try(self, action: str | None, work):
        """``work()`` unless a running job refuses ``action``; a refusal or a ``PgeSamError`` is shown (``None``)."""
        problem = action and self.controller.refusal(action, self.jobs.running)
        if not problem:
            try:
                return work()
            except PgeSamError as err:
                problem = str(err)
        self._render()
        self.ui.say(problem, True)

    def _show(self, result: Update | str | None, started: float | None = None):
        """Redraw after a verb (``result``: its update or message; ``None``: it failed) and say what it did.
        ``started``: when the click's turn came (``time.perf_counter``), for the latency shown."""
        if isinstance(result, Update):
            self.layers.refresh_labels(result.change, self.controller.axis)
            if started is not None:
                self.last_latency, self.last_decode = time.perf_counter() - started, result.change.seconds
        if result is not None:
            self._render()
            self.ui.say(getattr(result, "message", result))
        return result

    def _render(self) -> None:
        if self.layers is not None:
            self.layers.render(self.controller.prompts(), self.controller.label)
            self.layers.labels.selected_label = self.controller.label
        self._update_status()

    # -- verbs ----------------------------------------------------------------------------------------------------
    def toggle_polarity(self) -> None:
        """Switch plain clicks between positive and negative points."""
        self.positive = not self.positive
        self.ui.show_polarity(self.positive)
        self.ui.say(f"clicks add {'positive' if self.positive else 'negative'} points")

    def _edit(self, verb: str) -> None:
        """Run the controller's ``verb`` (an edit of the labels or the prompts) and redraw what it changed."""
        self._show(self._try("edit", getattr(self.controller, verb)))

    undo = partialmethod(_edit, "undo")  # the last waiting click, else the last prompt, propagation or clear
    next_object = partialmethod(_edit, "next_object")  # a new object with a new label id
    accept = partialmethod(_edit, "accept")  # commit the object, start the next (other objects' voxels are kept)
    clear = partialmethod(_edit, "clear")  # remove the current object's voxels and prompts (Ctrl+Z brings them back)

    def other_mask(self) -> None:
        """Show the model's next mask for the first click on a slice (whole, part, sub-part; Undo goes back)."""
        self._show(self._try("other mask", self.controller.other_mask))

    def precompute(self) -> None:
        """Encode every slice along the slicing axis in a worker (progress bar, cancellable)."""
        self._start("precompute", self.controller.precompute, self._precomputed, "encoding every slice")

    def _precomputed(self, n: int) -> None:
        self.ui.say(f"precompute done: {n} slices encoded (the others were cached)")
        self._drain()

    def propagate(self) -> None:
        """Propagate the current object through the volume in a worker (progress bar, cancellable, undoable)."""
        self._start("propagate", self.controller.plan_propagation, self._propagated, "propagating")

    def _propagated(self, plan) -> None:
        """The worker planned the propagation; write it (labels painted meanwhile are kept) and redraw."""
        update = self._try(None, lambda: self.controller.apply(plan))
        self._view_changed()  # the viewer may have been re-oriented meanwhile
        self._show(update)

    def save_embeddings(self, path: str | None = None) -> None:
        """Write every slice's embedding (slicing axis) into a folder, in a worker with progress; ``None`` asks."""
        if self._try("embeddings", self.controller.ensure_session) is not None:
            path = path or QFileDialog.getExistingDirectory(self, "Save embeddings into a new or empty folder")
            if path:
                self._start("embeddings", lambda progress: self.controller.save_embeddings(path, progress),
                            self.ui.say, f"saving embeddings to {path}")

    def load_embeddings(self, path: str | None = None) -> bool:
        """Use saved embeddings from now on (checked against this image, model and normalisation); ``None`` asks."""
        def load():
            folder = path or QFileDialog.getExistingDirectory(self, "Load embeddings from a folder")
            return self.controller.load_embeddings(folder) if folder else None
        return self._show(self._try("embeddings", load)) is not None

    def _start(self, kind: str, work, on_done, doing: str) -> None:
        """Run ``work(progress)`` in a worker with a progress bar, once the session exists."""
        if self._try(kind, self.controller.ensure_session) is not None:
            self.jobs.start(kind, work, on_done, self._job_failed, with_progress=True, description=f"pge-sam: {doing}")
            self.ui.say(f"{doing} in the background ...")

    def cancel(self) -> None:
        """Ask the running precompute, save, propagation, degradation preview or download to stop (what is done is
        kept; a download keeps nothing)."""
        asked = self.jobs.cancel("precompute", "propagate", "embeddings", "degrade", "download")
        self.ui.say("cancelling ..." if asked else "nothing to cancel")

    def save_labels(self, path: str | None = None) -> str | None:
        """Write the labels layer through the plugin's writer (the image's geometry, atomic and verified);
        ``path`` ``None`` asks with a file dialog. Returns the path written, or ``None``."""
        if self.layers is None:
            return self.ui.say("no labels yet: choose an image layer first", True)
        start = suggested_labels_path(str(self.layers.labels.metadata.get("pge_sam_source", "")))
        path = path or QFileDialog.getSaveFileName(self, "Save labels", start, SAVE_FILTER)[0]
        try:
            written = save_labels_layer(self.layers.labels, path) if path else None
        except PgeSamError as err:
            return self.ui.say(f"labels not saved: {err}", True)
        if written:
            self.ui.say(f"labels saved to {written}")
        return written

    def set_model(self, model) -> None:
        """Segment with ``model`` (a built model or a ``Predictor``) from now on; waiting clicks are then applied."""
        self.models.device_note(getattr(model, "device", "cpu"))
        self._show(self.controller.set_model(model))  # results of jobs started with the previous model are stale
        self._drain()

    def _normalization_changed(self, mode: str | None = None) -> None:
        """New numbers, or a new ``mode`` whose default numbers are then shown: the session restarts with them."""
        text = self.ui.normalization_text(mode)
        if self._show(self._try("normalize", lambda: self.controller.set_normalization(text))) is None:
            self.ui.show_normalization(self.controller.normalization)  # refused: show what the session still uses

    # -- feedback -------------------------------------------------------------------------------------------------
    def _job_failed(self, err: Exception) -> None:
        self.controller.pending.clear()
        self._render()
        self.ui.say(*describe_error(err))

    def _update_status(self) -> None:
        self.ui.status.setText(self.controller.status(self._index, self.last_latency))

    @property
    def busy(self) -> bool:
        """True while a click waits to be applied or a worker (model, encode, precompute, ...) runs."""
        return bool(self.controller.pending) or self.jobs.busy()

    @property
    def message_text(self) -> str:
        """The message line: what the last action did, or why it was refused."""
        return self.ui.message.text()

    # -- lifetime -------------------------------------------------------------------------------------------------
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
        if not self.closed:
            self.closed = True
            self.jobs.close()
            for emitter, handler in self._connections:
                emitter.disconnect(handler)
            if self.layers is not None:
                self.layers.disconnect()
            self.controller.release()

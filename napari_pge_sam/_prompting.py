"""Prompts and verbs of the dock widget (mixed into :class:`napari_pge_sam._widget.PgeSamWidget`).

A click on a slice that is already encoded is decoded synchronously on the GUI
thread; a click on a slice that is not waits in a queue while a worker encodes
that slice. Precompute and propagation run in workers that never touch a
layer: a propagation is planned in the worker and written into the Labels
layer on the GUI thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pge_sam.errors import PgeSamError
from pge_sam.session_protocol import PromptMark


@dataclass
class _Click:
    """A prompt waiting to be applied: kind ("point"/"box"), image data coordinates, polarity, slice index."""

    kind: str
    coords: tuple
    positive: bool
    index: int


class PromptingMixin:
    """Layer-event handlers, the click queue and the verbs.

    Uses the widget's ``controller``, ``layers``, ``jobs``, ``viewer``, ``ui``,
    ``_queue``, ``positive`` and its feedback methods (``_info``, ``_error``,
    ``_update_status``, ``_job_failed``).
    """

    # -- prompts ------------------------------------------------------------------------------------------
    def _on_points_data(self, event) -> None:
        action = str(getattr(event, "action", ""))
        if action == "added":
            added = self.layers.points.data[self.layers.rendered_points:]  # napari reports index -1 for a click
            coords = self.layers.points_to_image(added) if len(added) else []
            positive = self.positive and not self.layers.negative_click
            self.layers.negative_click = False
            for c in coords:
                self._submit("point", tuple(float(v) for v in c), positive)
        elif action in ("removed", "changed"):
            self._render()
            self._info("prompts are removed with Ctrl+Z (undo) and cannot be moved; add a new click instead")

    def _on_shapes_data(self, event) -> None:
        if str(getattr(event, "action", "")) != "added" or not len(self.layers.shapes.data):
            if str(getattr(event, "action", "")) in ("removed", "changed"):
                self._render()
            return
        if self.layers.shapes.shape_type[-1] != "rectangle":
            self._render()
            self._error("box prompts are rectangles: press R on the box layer and drag a rectangle")
            return
        vertices = self.layers.shape_to_image(self.layers.shapes.data[-1])
        self._submit("box", (tuple(vertices.min(axis=0)), tuple(vertices.max(axis=0))), True)

    def _submit(self, kind: str, coords: tuple, positive: bool) -> None:
        if self.jobs.busy("propagate"):
            self._render()
            return self._error("propagation is running: wait for it or press Cancel, then click again")
        if self.viewer.dims.ndisplay != 2:
            self._render()
            return self._error("prompts need a 2D view: switch off 3D display (Ctrl+Y)")
        if self.controller.image is None:
            return self._error("no image layer chosen")
        try:
            first = coords[0] if kind == "box" else coords
            index = self.controller.slice_of(first)
        except PgeSamError as err:
            self._render()
            return self._error(str(err))
        self._queue.append(_Click(kind, coords, positive, index))
        if not self.controller.has_model:
            self.models.load()  # the prompt waits for the model
        self._drain()

    def _drain(self) -> None:
        """Apply the queued prompts in order; a prompt on a slice not yet encoded waits for an encode job."""
        while self._queue and self.controller.has_model and not self.jobs.busy("encode", "model"):
            click = self._queue[0]
            try:
                encoded = self.controller.is_encoded(click.index)
            except PgeSamError as err:
                self._queue.clear()
                self._render()
                return self._error(str(err))
            if not encoded:
                self._info(f"encoding slice {click.index} ...")
                self.jobs.start("encode", lambda i=click.index: self.controller.encode(i), lambda _: self._drain(),
                                self._job_failed, on_stale=self._drain)  # stale: carry on with the current queue
                self._render()
                return
            self._queue.pop(0)
            self._apply(click)

    def _apply(self, click: _Click) -> None:
        t0 = time.perf_counter()
        try:
            if click.kind == "point":
                change = self.controller.add_point(click.coords, click.positive)
            else:
                change = self.controller.add_box(*click.coords)
        except PgeSamError as err:
            self._render()
            return self._error(str(err))
        self.layers.refresh_labels(change, self.controller.axis)
        self._render()
        self.last_latency = time.perf_counter() - t0
        self.last_decode = change.seconds
        self._update_status()
        self._info(f"object {change.label}: {change.voxels} voxels changed on slice {click.index}")

    def _render(self) -> None:
        if self.layers is None:
            return
        waiting = [PromptMark(c.kind, self.controller.label, self.controller.axis, c.index,
                              (c.coords,) if c.kind == "point" else c.coords, c.positive) for c in self._queue]
        self.layers.render(self.controller.prompts() + waiting, self.controller.label)
        self.layers.labels.selected_label = self.controller.label
        self._update_status()

    # -- verbs ------------------------------------------------------------------------------------------
    def toggle_polarity(self) -> None:
        """Switch plain clicks between positive and negative points."""
        self.positive = not self.positive
        self.ui.polarity.setChecked(not self.positive)
        self.ui.polarity.setText("Clicks: positive" if self.positive else "Clicks: negative")
        self._info("clicks add " + ("positive" if self.positive else "negative") + " points")

    def undo(self) -> None:
        """Remove the last prompt (or the last waiting click) and restore the mask it changed."""
        if self._guard():
            return
        if self._queue:
            self._queue.pop()
            return self._render()
        change = self.controller.undo()
        if change is None:
            return self._info("nothing to undo")
        self.layers.refresh_labels(change, self.controller.axis)
        self._render()
        self._info(f"undone (object {change.label})")

    def next_object(self) -> None:
        """Start a new object with a new label id."""
        if not self._guard():
            self._verb(lambda: self._info(f"now segmenting object {self.controller.next_object()}"))

    def accept(self) -> None:
        """Commit the current object and start the next one (other objects' voxels are never overwritten)."""
        if not self._guard():
            self._verb(lambda: self._info(f"object accepted; now segmenting object {self.controller.accept()}"))

    def clear(self) -> None:
        """Remove the current object's voxels and prompts (Ctrl+Z brings them back)."""
        if not self._guard():
            self._verb(lambda: self.layers.refresh_labels(self.controller.clear(), self.controller.axis))

    def _verb(self, fn) -> None:
        try:
            fn()
        except PgeSamError as err:
            self._error(str(err))
        self._render()

    def _guard(self) -> bool:
        if self.layers is None:
            self._error("no image layer chosen")
            return True
        if self.jobs.busy("propagate"):
            self._error("propagation is running: wait for it or press Cancel")
            return True
        return False

    def precompute(self) -> None:
        """Encode every slice along the slicing axis in a worker (progress bar, cancellable)."""
        if self._guard() or self.jobs.busy("precompute"):
            return
        if not self.controller.has_model:
            return self._error("load a model first ('Load model')")
        try:
            self.controller.ensure_session()
        except PgeSamError as err:
            return self._error(str(err))
        self.jobs.start("precompute", self.controller.precompute, self._precomputed, self._job_failed,
                        with_progress=True, description="pge-sam: encoding slices")
        self._info("encoding every slice in the background ...")

    def _precomputed(self, n: int) -> None:
        self._info(f"precompute done: {n} slices encoded (the others were cached)")
        self._drain()

    def propagate(self) -> None:
        """Propagate the current object through the volume in a worker (progress bar, cancellable, undoable)."""
        if self._guard():
            return
        if self._queue or self.jobs.busy("encode", "model"):
            return self._error("wait until the pending clicks are applied, then propagate")
        self.jobs.start("propagate", self.controller.plan_propagation, self._propagated, self._job_failed,
                        with_progress=True, description="pge-sam: propagating")
        self._info("propagating ...")

    def _propagated(self, plan) -> None:
        """The worker planned the propagation; write it (labels painted meanwhile are kept) and redraw."""
        try:
            change = self.controller.apply(plan)
        except PgeSamError as err:
            return self._job_failed(err)
        self.layers.labels.refresh()
        self._view_changed()  # the viewer may have been re-oriented meanwhile
        self._render()
        state = "cancelled; kept" if change.cancelled else "done:"
        notes = "".join(f"\n{note}" for note in change.notes)  # where and why each direction stopped
        self._info(f"propagation {state} {len(change.slices)} slices of object {change.label}{notes}")

    def cancel(self) -> None:
        """Ask the running precompute / propagation to stop (what is done is kept)."""
        n = self.jobs.cancel("precompute", "propagate")
        self._info("cancelling ..." if n else "nothing to cancel")

"""The napari layers the widget drives for one image layer: prompts (Points, Shapes) and the result (Labels).

GUI thread only; no Qt import. Every layer is created with the image layer's
``scale``, ``translate``, ``rotate``, ``shear`` and ``affine``, and every
coordinate crosses layers through world coordinates (``layer.data_to_world``
then ``image.world_to_data``), so prompts land on the right voxel for any
anisotropic spacing, origin or affine.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np

from pge_sam.errors import InputError
from pge_sam.session_protocol import PromptMark
from pge_sam.validate import check_image

POSITIVE = np.array([0.20, 1.00, 0.45, 1.0])  # green
NEGATIVE = np.array([1.00, 0.22, 0.38, 1.0])  # red
BOX_COLOR = np.array([1.00, 0.82, 0.40, 1.0])  # amber
OTHER_ALPHA = 0.4  # prompts of objects other than the current one
POINTS_NAME = "pge-sam points"
SHAPES_NAME = "pge-sam box"
NEGATIVE_MODIFIERS = ("Control",)  # Ctrl+click (Cmd+click on macOS) adds a negative point


def image_array(data, *, multiscale: bool = False, rgb: bool = False):
    """The array to segment from an Image layer's ``data`` (level 0 of a multiscale image), never read whole.

    :class:`InputError` for RGB(A) layers, other than 2D/3D data and empty arrays.
    """
    if rgb:
        raise InputError("this is an RGB(A) image layer; pge-sam segments greyscale images — "
                         "convert it (e.g. skimage.color.rgb2gray) or split its channels first")
    array = data[0] if multiscale else data
    check_image(array, allow_rgb_shape=True)
    return array


def transform_kwargs(layer) -> dict:
    """The data-to-world transform of ``layer`` as keyword arguments for ``viewer.add_*``."""
    return {"scale": np.array(layer.scale), "translate": np.array(layer.translate),
            "rotate": np.array(layer.rotate), "shear": np.array(layer.shear),
            "affine": np.array(layer.affine.affine_matrix)}


def convert(coords, source, target) -> np.ndarray:
    """(N, source.ndim) data coordinates of ``source`` -> (N, target.ndim) data coordinates of ``target``."""
    coords = np.asarray(coords, dtype=float).reshape(-1, source.ndim)
    out = [np.asarray(target.world_to_data(source.data_to_world(c)), dtype=float) for c in coords]
    return np.array(out).reshape(-1, target.ndim)


def voxel_size(layer) -> tuple[float, ...]:
    """World length of one voxel step along each data axis of ``layer`` (scale, rotate, shear and affine included)."""
    origin = np.asarray(layer.data_to_world(np.zeros(layer.ndim)), dtype=float)
    steps = []
    for d in range(layer.ndim):
        unit = np.zeros(layer.ndim)
        unit[d] = 1.0
        steps.append(float(np.linalg.norm(np.asarray(layer.data_to_world(unit), dtype=float) - origin)))
    return tuple(steps)


def slicing_axis(dims, layer_ndim: int) -> int | None:
    """Data axis of a ``layer_ndim``-D layer that the viewer slices through (``None`` in a 3D view).

    The displayed world axes are the last ``dims.ndisplay`` of ``dims.order``;
    the sliced one is the last non-displayed axis the layer has
    (``dims.order[-3]`` for a 3D layer in a 3D world).
    """
    if layer_ndim == 2:
        return 0
    if dims.ndisplay != 2:
        return None
    offset = dims.ndim - layer_ndim
    candidates = [a - offset for a in list(dims.order)[:-2] if a - offset >= 0]
    return candidates[-1] if candidates else None


def current_index(dims, image, axis: int) -> int:
    """Index along data ``axis`` of ``image`` of the slice the viewer shows (nearest voxel)."""
    data_point = np.asarray(image.world_to_data(np.asarray(dims.point)), dtype=float)
    return int(np.floor(data_point[axis] + 0.5))


class PromptLayers:
    """Points (prompts), Shapes (boxes) and Labels (result) layers for ``image`` in ``viewer``.

    ``shape``: the image array's shape; the Labels layer named
    ``"<image> [pge-sam]"`` is reused when it exists with that shape (its
    labels are kept), otherwise created with uint16 zeros.
    """

    def __init__(self, viewer, image, shape: tuple[int, ...]) -> None:
        self.viewer = viewer
        self.image = image
        self.ndim = len(shape)
        tf = transform_kwargs(image)
        self.labels = self._existing_labels(f"{image.name} [pge-sam]", shape)
        if self.labels is None:
            self.labels = viewer.add_labels(np.zeros(shape, np.uint16), name=f"{image.name} [pge-sam]",
                                            metadata=dict(image.metadata), **tf)  # the source geometry, for saving
        size = max(3.0, float(min(shape[-2:])) / 40.0)
        self.points = viewer.add_points(np.empty((0, self.ndim)), ndim=self.ndim, name=POINTS_NAME, size=size,
                                        face_color=POSITIVE, border_color="white", border_width=0.1,
                                        out_of_slice_display=False, **tf)
        self.shapes = viewer.add_shapes(ndim=self.ndim, name=SHAPES_NAME, edge_color=BOX_COLOR,
                                        face_color="transparent", edge_width=max(1.0, size / 4), **tf)
        self.points.mode = "add"
        viewer.layers.selection.active = self.points
        self.negative_click = False
        self.rendered_points = 0  # points shown by the last render (a click adds points after them)
        self._shown_points: tuple | None = None
        self._shown_boxes: tuple | None = ((), None)
        self._syncing = False
        self._bound: list[tuple[object, str]] = []
        self._connections: list[tuple[object, Callable]] = []

    @property
    def own(self) -> tuple:
        """The three layers made or taken for the image."""
        return self.points, self.shapes, self.labels

    def _existing_labels(self, name: str, shape):
        for layer in self.viewer.layers:
            if layer.name == name and layer.__class__.__name__ == "Labels":
                data = layer.data
                if isinstance(data, np.ndarray) and data.shape == tuple(shape) and data.flags.writeable:
                    return layer
        return None

    # -- events ------------------------------------------------------------------------------------------
    def connect(self, on_prompt: Callable, on_refused: Callable, on_labels_data: Callable) -> None:
        """Turn the user's edits of our layers into calls (our own edits are muted): ``on_prompt(kind, coords,
        negative)`` per added point (``negative``: the click held the modifier) or rectangle (``(low, high)``),
        in image data coordinates; ``on_refused(message, error)`` for an edit that is not a prompt (the caller
        redraws; ``message`` may be empty); ``on_labels_data(event)`` when the Labels layer gets new data."""
        self._on_prompt, self._on_refused = on_prompt, on_refused

        def guard(handler):
            def run(event):
                if not self._syncing:
                    handler(event)
            return run

        for emitter, handler in ((self.points.events.data, self._points_edited),
                                 (self.shapes.events.data, self._shapes_edited),
                                 (self.labels.events.data, on_labels_data)):
            wrapped = guard(handler)
            emitter.connect(wrapped)
            self._connections.append((emitter, wrapped))
        self.points.mouse_drag_callbacks.insert(0, self._on_press)

    def _points_edited(self, event) -> None:
        action = str(getattr(event, "action", ""))
        if action == "added":
            added = self.points.data[self.rendered_points:]  # napari reports index -1 for a click
            negative, self.negative_click = self.negative_click, False
            for point in self.points_to_image(added):
                self._on_prompt("point", point, negative)
        elif action in ("removed", "changed"):
            self._on_refused("prompts are removed with Ctrl+Z (undo) and cannot be moved; add a new click instead",
                             False)

    def _shapes_edited(self, event) -> None:
        action = str(getattr(event, "action", ""))
        if action == "added" and len(self.shapes.data) and self.shapes.shape_type[-1] != "rectangle":
            self._on_refused("box prompts are rectangles: press R on the box layer and drag a rectangle", True)
        elif action == "added" and len(self.shapes.data):
            vertices = self.shape_to_image(self.shapes.data[-1])
            self._on_prompt("box", (vertices.min(axis=0), vertices.max(axis=0)), False)
        elif action in ("removed", "changed"):
            self._on_refused("", False)

    def _on_press(self, layer, event) -> None:
        """Remember whether the click that is about to add a point held the negative modifier."""
        self.negative_click = any(m in NEGATIVE_MODIFIERS for m in getattr(event, "modifiers", ()))

    def bind_keys(self, on_points: dict[str, Callable], on_shapes: dict[str, Callable]) -> None:
        """Bind keys on our two layers only (napari's global shortcuts stay as they are)."""
        for layer, keys in ((self.points, on_points), (self.shapes, on_shapes)):
            for key, action in keys.items():
                layer.bind_key(key, _call_without_layer(action), overwrite=True)
                self._bound.append((layer, key))

    def disconnect(self) -> None:
        """Undo :meth:`connect` and :meth:`bind_keys` (the layers and their data stay)."""
        for layer, key in self._bound:
            layer.bind_key(key, None)
        self._bound = []
        for emitter, handler in self._connections:
            emitter.disconnect(handler)
        self._connections = []
        if self._on_press in self.points.mouse_drag_callbacks:
            self.points.mouse_drag_callbacks.remove(self._on_press)

    def remove_prompt_layers(self) -> None:
        """Take the Points and Shapes layers out of the viewer (the Labels layer stays: it holds results)."""
        self.disconnect()
        for layer in (self.points, self.shapes):
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)

    @contextlib.contextmanager
    def syncing(self):
        self._syncing, before = True, self._syncing
        try:
            yield
        finally:
            self._syncing = before

    # -- coordinates ------------------------------------------------------------------------------------------
    def points_to_image(self, coords) -> np.ndarray:
        """Points-layer data coordinates (N, D) -> image data coordinates (N, D)."""
        return convert(coords, self.points, self.image)

    def shape_to_image(self, vertices) -> np.ndarray:
        """Shapes-layer vertices (V, D) -> image data coordinates (V, D)."""
        return convert(vertices, self.shapes, self.image)

    # -- drawing ------------------------------------------------------------------------------------------
    def render(self, marks: list[PromptMark], current_label: int) -> None:
        """Show ``marks`` (image data coordinates) in the Points and Shapes layers; colours by polarity/object.

        Setting a layer's data makes napari recompute the viewer's dimensions
        (tens of milliseconds), so a layer is rewritten only when the voxels it
        shows differ from the marks' (a point napari has just added for a click
        stays where it was clicked).
        """
        points = [m for m in marks if m.kind == "point"]
        boxes = [m for m in marks if m.kind == "box"]
        with self.syncing():
            self._render_points(points, current_label)
            box_state = (tuple(boxes), current_label)
            if box_state != self._shown_boxes:
                self._shown_boxes = box_state
                self.shapes.selected_data = set()
                self.shapes.data = []
                if boxes:
                    rects = [convert(self._box_vertices(m), self.image, self.shapes) for m in boxes]
                    edges = np.array([_color(BOX_COLOR, m.label == current_label) for m in boxes])
                    self.shapes.add_rectangles(rects, edge_color=edges, face_color=np.zeros((len(boxes), 4)))
            elif len(self.shapes.data) != len(boxes):  # a drawn rectangle that was not taken as a prompt
                self._shown_boxes = None
                self.render(marks, current_label)

    def _render_points(self, points: list[PromptMark], current_label: int) -> None:
        import pandas as pd

        order = self._layer_order(points)
        if order is None:
            self.points.selected_data = set()
            self.points.data = (convert([m.coords[0] for m in points], self.image, self.points) if points
                                else np.empty((0, self.ndim)))
            order = list(range(len(points)))
        shown = (tuple(points[i] for i in order), current_label)
        self.rendered_points = len(points)
        if shown == self._shown_points:
            return
        self._shown_points = shown
        marks = shown[0]
        self.points.features = pd.DataFrame({"positive": [m.positive for m in marks],
                                             "object": [m.label for m in marks]})
        if marks:
            self.points.face_color = np.array([_color(POSITIVE if m.positive else NEGATIVE, m.label == current_label)
                                               for m in marks])

    def _layer_order(self, points: list[PromptMark]) -> list[int] | None:
        """For each point of the layer, the index of the mark on its voxel; ``None`` when they do not match."""
        if len(self.points.data) != len(points):
            return None
        if not points:
            return []
        voxels = np.floor(convert(self.points.data, self.points, self.image) + 0.5).astype(int)
        free: dict[tuple, list[int]] = {}
        for i, m in enumerate(points):
            free.setdefault(tuple(int(np.floor(v + 0.5)) for v in m.coords[0]), []).append(i)
        order = []
        for voxel in map(tuple, voxels.tolist()):
            if not free.get(voxel):
                return None
            order.append(free[voxel].pop(0))
        return order

    def _box_vertices(self, mark: PromptMark) -> np.ndarray:
        lo, hi = np.asarray(mark.coords[0], float), np.asarray(mark.coords[1], float)
        r, c = (0, 1) if self.ndim == 2 else tuple(d for d in range(3) if d != mark.axis)
        out = np.repeat(lo[None], 4, axis=0)
        for i, (rv, cv) in enumerate(((lo[r], lo[c]), (lo[r], hi[c]), (hi[r], hi[c]), (hi[r], lo[c]))):
            out[i, r], out[i, c] = rv, cv
        return out

    def refresh_labels(self, change, axis: int) -> bool:
        """Redraw the Labels layer if ``change`` touched the slice on screen (``axis``: slicing axis); True if so."""
        if change is None or change.bbox is None:
            return False
        if self.ndim == 3 and self.viewer.dims.ndisplay == 2:
            index = current_index(self.viewer.dims, self.labels, axis)
            box = change.bbox[axis]
            if not box.start <= index < box.stop:
                return False  # off screen: napari re-slices the (already updated) array when the user gets there
        self.labels.refresh(extent=False, highlight=False)
        return True


def _color(rgba: np.ndarray, current: bool) -> np.ndarray:
    out = np.array(rgba, dtype=float)
    out[3] = 1.0 if current else OTHER_ALPHA
    return out


def _call_without_layer(action: Callable) -> Callable:
    def key_handler(layer):
        action()
    key_handler.__name__ = getattr(action, "__name__", "pge_sam_action")
    return key_handler

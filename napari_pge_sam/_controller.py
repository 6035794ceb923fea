"""Qt-free controller between napari layers and a :class:`pge_sam.session.Session`.

The controller holds one image, the session over it and two label arrays of
the image's shape, both integer numpy arrays indexed like the image ((Z, Y, X)
or (rows, cols)):

* ``buffer``: the session's own label buffer. Only the session writes into it
  (possibly from a worker thread, during propagation);
* ``display``: the array the napari Labels layer shows. It is written only on
  the GUI thread: before a verb the slices the verb works on are copied from
  ``display`` into ``buffer`` (so the user's own painting is respected), and
  after it only the changed box (``Change.bbox``) is copied back.

Prompts are kept as :class:`PromptMark` values in *image data coordinates*
(floats, (z, y, x) or (row, col)); the widget converts layer/world coordinates
with ``layer.world_to_data`` before calling the verbs. ``marks`` is what the
prompt layers show; an undo history parallel to the session's restores it.
Nothing here imports Qt or napari.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from pge_sam.errors import InputError, PromptError
from pge_sam.geometry import slice_index, to_slice_point
from pge_sam.normalize import Normalization
from pge_sam.session import Change, Session
from pge_sam.validate import check_image


class NotReadyError(InputError):
    """A verb was used before an image and a model were chosen."""


@dataclass(frozen=True)
class PromptMark:
    """One prompt as displayed. ``coords``: one point, or two opposite box corners, in image data coordinates."""

    kind: str  # "point" or "box"
    label: int
    axis: int
    index: int
    coords: tuple[tuple[float, ...], ...]
    positive: bool = True


def image_array(data, *, multiscale: bool = False, rgb: bool = False):
    """The array to segment from a napari Image layer's ``data`` (level 0 of a multiscale image).

    Raises :class:`InputError` for RGB(A) layers, other than 2D/3D data and
    empty arrays; never reads the data (dask/zarr arrays stay lazy).
    """
    if rgb:
        raise InputError("this is an RGB(A) image layer; pge-sam segments greyscale images — "
                         "convert it (e.g. skimage.color.rgb2gray) or split its channels first")
    array = data[0] if multiscale else data
    check_image(array, allow_rgb_shape=True)
    return array


class Controller:
    """See the module docstring. ``model``: a model or a shared ``Predictor`` (``None``: set it later)."""

    def __init__(self, model=None, *, prefetch: int = 2, normalization: Normalization | None = None,
                 overwrite: bool = False) -> None:
        self.model = model
        self.prefetch = prefetch
        self.normalization = normalization or Normalization.percentile()
        self.overwrite = bool(overwrite)
        self.image = None
        self.spacing: tuple[float, ...] | None = None
        self.buffer: np.ndarray | None = None
        self.display: np.ndarray | None = None
        self.session: Session | None = None
        self.axis = 0
        self.marks: list[PromptMark] = []
        self._history: list[list[PromptMark]] = []
        self._first_label = 1
        self._propagation_step = None  # undo step of the last propagate(), for push_propagation()

    # -- configuration ------------------------------------------------------------------------------------------
    def set_model(self, model) -> None:
        """Use ``model`` (or a ``Predictor``) from now on; the session restarts, labels are kept."""
        self._drop_session()
        self.model = model

    def set_image(self, image, display: np.ndarray, spacing: tuple[float, ...] | None = None) -> None:
        """Segment ``image`` ((Z, Y, X) or (H, W), any array-like) into the caller's ``display`` array.

        ``display``: writeable integer numpy array of the image's shape (the
        Labels layer's data); its labels are kept and new ids start above them.
        ``spacing``: voxel size per image axis (non-square pixels are resampled
        for the model); ``None`` means isotropic.
        """
        check_image(image, allow_rgb_shape=True)
        self._check_display(display, tuple(image.shape))
        if spacing is not None:
            spacing = tuple(float(v) for v in spacing)
            if len(spacing) != len(image.shape) or not all(np.isfinite(v) and v > 0 for v in spacing):
                raise InputError(f"spacing must be {len(image.shape)} positive numbers, got {spacing}")
        self._drop_session()
        self.spacing = spacing
        self.image = image
        self.display = display
        self.buffer = display.copy()
        self._first_label = int(display.max()) + 1 if display.size else 1
        self.axis = min(self.axis, self.ndim - 1) if self.ndim == 3 else 0

    def set_display(self, display: np.ndarray) -> None:
        """The Labels layer got new data: take it as the labels (the session restarts)."""
        if self.image is None:
            raise NotReadyError("choose an image layer first")
        self.set_image(self.image, display, self.spacing)

    def set_axis(self, axis: int) -> None:
        """Slicing axis of the image (0, 1 or 2 for a volume; always 0 for a 2D image)."""
        axis = 0 if self.ndim == 2 else int(axis)
        if axis not in (0, 1, 2):
            raise InputError(f"slicing axis must be 0, 1 or 2 (got {axis})")
        self.axis = axis
        if self.session is not None:
            self.session.set_axis(axis)

    def set_normalization(self, normalization: Normalization) -> None:
        """New intensity normalisation: the session restarts (prompts are dropped, labels are kept)."""
        self.normalization = normalization
        self._drop_session()

    def set_overwrite(self, overwrite: bool) -> None:
        """Whether the current object may paint over voxels of other objects (default: never)."""
        self.overwrite = bool(overwrite)
        if self.session is not None:
            self.session.overwrite = self.overwrite

    # -- state ------------------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return 0 if self.image is None else len(self.image.shape)

    @property
    def ready(self) -> bool:
        return self.image is not None and self.model is not None

    @property
    def label(self) -> int:
        """Label id of the object being edited."""
        return self.session.label if self.session is not None else self._first_label

    @property
    def can_undo(self) -> bool:
        return self.session is not None and bool(self.session.state.undo)

    def ensure_session(self) -> Session:
        """The session, created on first use (reads a strided sample of the image for the normalisation)."""
        if self.image is None:
            raise NotReadyError("no image: choose an image layer in the widget")
        if self.model is None:
            raise NotReadyError("no model loaded yet: wait for it, or press 'Load model'")
        if self.session is None:
            self.session = Session(self.model, self.image, self.buffer, axis=self.axis if self.ndim == 3 else 0,
                                   spacing=self.spacing, normalization=self.normalization,
                                   overwrite=self.overwrite, prefetch=self.prefetch,
                                   allow_rgb_shape=True)  # set_image accepted it: a volume with 3 or 4 columns
            if self._first_label > self.session.label:
                self.session.select_object(self._first_label)
        return self.session

    def slice_of(self, point) -> int:
        """Slice number (along the slicing axis) of image data point ``point``; :class:`PromptError` if outside."""
        p = tuple(float(v) for v in point)
        if self.ndim == 2:
            to_slice_point((0.0,) + p, (1,) + tuple(self.image.shape), 0)
            return 0
        return to_slice_point(p, tuple(self.image.shape), self.axis).index

    def is_cached(self, index: int) -> bool:
        """Whether slice ``index`` (slicing axis) is already encoded, so a click on it only decodes."""
        s = self.ensure_session()
        axis = s.axis
        pred = s.predictor
        return pred.cache.contains(pred.key(s.slice_u8(index, axis), axis, index, s.aspect(axis)), s.disk)

    # -- verbs (GUI thread) ------------------------------------------------------------------------------
    def add_point(self, point, positive: bool = True) -> Change:
        """Click at image data point ``point``; segments that slice and copies the change to ``display``."""
        s = self.ensure_session()
        index = self.slice_of(point)
        coords = tuple(float(v) for v in point)
        self._pull(self._slice_region(index))
        with self._recording():
            change = s.add_point(coords, positive=bool(positive))
        self.marks.append(PromptMark("point", s.label, s.axis, index, (coords,), bool(positive)))
        self._push(change)
        return change

    def add_box(self, corner_a, corner_b) -> Change:
        """Box prompt from two opposite corners (image data points on one slice), clipped in-plane to the image."""
        s = self.ensure_session()
        a, b = self._clip_box(corner_a, corner_b)
        index = self.slice_of(a)
        self._pull(self._slice_region(index))
        with self._recording():
            change = s.add_box(a, b)
        self.marks = [m for m in self.marks
                      if not (m.kind == "box" and m.label == s.label and m.axis == s.axis and m.index == index)]
        self.marks.append(PromptMark("box", s.label, s.axis, index, (a, b)))
        self._push(change)
        return change

    def undo(self) -> Change | None:
        """Undo the last prompt, propagation or clear (voxels and displayed prompts); ``None`` if nothing to undo."""
        s = self.session
        if s is None or not s.state.undo:
            return None
        step = s.state.undo[-1]
        for edit in step.edits:
            if edit.before is not None:
                self._pull(self._slice_region(edit.index, edit.axis))
        change = s.undo()
        if self._history:
            self.marks = self._history.pop()
        current = s.state.objects.get(s.label)
        if step.label != s.label and current is not None and not current.prompts:
            s.select_object(step.label)  # back to the object the undo edited
        self._push(change)
        return change

    def next_object(self) -> int:
        """Start a new object (a fresh label id, unused in the layer, kept if the current object is still empty)."""
        s = self.ensure_session()
        self._pull(None)  # ids the user painted meanwhile are taken
        return s.next_object()

    def accept(self) -> int:
        """Commit the current object (prompts leave the display, undo no longer reaches it); a new object starts."""
        s = self.ensure_session()
        label = s.label
        keep = [i for i, step in enumerate(s.state.undo) if step.label != label]
        history = self._history if len(self._history) == len(s.state.undo) else [list(self.marks)] * len(s.state.undo)
        s.state.undo = [s.state.undo[i] for i in keep]
        self._history = [[m for m in history[i] if m.label != label] for i in keep]
        self.marks = [m for m in self.marks if m.label != label]
        self._pull(None)  # ids the user painted meanwhile are taken
        return s.next_object()

    def clear(self) -> Change:
        """Remove the current object's voxels and prompts (undoable)."""
        s = self.ensure_session()
        self._pull(None)
        with self._recording():
            change = s.reset_object()
        self.marks = [m for m in self.marks if m.label != s.label]
        self._push(change)
        return change

    def begin_propagation(self) -> None:
        """GUI-thread part of :meth:`propagate`: checks there is a prompt, copies ``display`` into ``buffer``."""
        s = self.ensure_session()
        if self.ndim != 3:
            raise InputError("propagation needs a 3D volume; this image is 2D")
        obj = s.state.objects.get(s.label)
        if obj is None or not any(ax == s.axis for (ax, _) in obj.prompts):
            raise InputError(f"object {s.label} has no prompt along axis {s.axis}: click on a slice first")
        self._pull(None)

    def push(self, change: Change | None) -> None:
        """Copy the changed box of ``change`` from ``buffer`` to ``display`` (GUI thread)."""
        self._push(change)

    def push_propagation(self) -> int:
        """Copy what the last :meth:`propagate` wrote into ``display``, keeping voxels painted meanwhile.

        A voxel is written only where ``display`` still holds the value it had
        when propagation read it; returns the number of voxels written.
        """
        step, self._propagation_step = self._propagation_step, None
        written = 0
        for edit in step.edits if step is not None else ():
            if edit.before is None:
                continue
            region = self.display[self._slice_region(edit.index, edit.axis)][edit.rows, edit.cols]
            mine = (edit.before != edit.after) & (region == edit.before)
            region[mine] = edit.after[mine]
            written += int(mine.sum())
        return written

    # -- worker-safe verbs (read the image, write the cache and ``buffer`` only) -------------------------
    def propagate(self, progress=None) -> Change:
        """Propagate the current object through the volume into ``buffer``; then call :meth:`push_propagation`."""
        s = self.ensure_session()
        steps = len(s.state.undo)
        with self._recording():
            change = s.propagate(progress)
        if self.session is s:
            self._propagation_step = s.state.undo[-1] if len(s.state.undo) > steps else None
        return change

    def precompute(self, progress=None) -> int:
        """Encode every slice along the slicing axis (cached ones are skipped); returns how many were encoded."""
        return self.ensure_session().precompute(progress=progress)

    def encode_slice(self, index: int) -> None:
        """Encode slice ``index`` of the slicing axis into the cache (so the next click on it is fast)."""
        s = self.ensure_session()
        s.predictor.features(s.slice_u8(index, s.axis), s.axis, index, s.disk, s.aspect(s.axis))

    def focus(self, index: int) -> None:
        """The user looks at slice ``index``: its neighbours are encoded in the background."""
        if self.session is not None and 0 <= index < self.session.n_slices:
            self.session.focus(index)

    def close(self) -> None:
        """Drop the session and its pending prefetches (the labels stay in ``display``)."""
        self._drop_session()

    # -- helpers ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _recording(self):
        """Keep one snapshot of ``marks`` per undo step the session adds, even when the verb fails midway."""
        s = self.session
        before, steps = list(self.marks), len(s.state.undo)
        try:
            yield
        finally:
            if self.session is s:  # a worker may finish after the session was replaced
                self._history.extend([before] * (len(s.state.undo) - steps))

    def _drop_session(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None
        self.marks = []
        self._history = []
        self._propagation_step = None
        if self.display is not None:
            self._first_label = max(self._first_label, int(self.display.max()) + 1 if self.display.size else 1)

    def _slice_region(self, index: int, axis: int | None = None) -> tuple:
        if self.ndim == 2:
            return (slice(None), slice(None))
        return slice_index(self.axis if axis is None else axis, index)

    def _pull(self, region) -> None:
        if region is None:
            np.copyto(self.buffer, self.display)
        else:
            self.buffer[region] = self.display[region]

    def _push(self, change: Change | None) -> None:
        if change is not None and change.bbox is not None:
            self.display[change.bbox] = self.buffer[change.bbox]

    def _clip_box(self, a, b) -> tuple[tuple[float, ...], tuple[float, ...]]:
        a = np.asarray(a, dtype=float).reshape(-1)
        b = np.asarray(b, dtype=float).reshape(-1)
        if a.shape != (self.ndim,) or b.shape != (self.ndim,) or not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise PromptError(f"a box needs two finite corners with {self.ndim} coordinates each")
        shape = np.asarray(self.image.shape, dtype=float)
        in_plane = [d for d in range(self.ndim) if self.ndim == 2 or d != self.axis]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        for d in in_plane:
            if hi[d] < -0.5 or lo[d] > shape[d] - 0.5:
                raise PromptError("the box lies outside the image; draw it over the image")
            lo[d], hi[d] = max(lo[d], 0.0), min(hi[d], shape[d] - 1)
        return tuple(lo.tolist()), tuple(hi.tolist())

    @staticmethod
    def _check_display(display, shape: tuple[int, ...]) -> None:
        if not isinstance(display, np.ndarray):
            raise InputError(f"the labels must be a numpy array (got {type(display).__name__}); "
                             "convert the Labels layer's data with numpy.asarray")
        if display.shape != shape:
            raise InputError(f"labels shape {display.shape} does not match the image shape {shape}")
        if not np.issubdtype(display.dtype, np.integer):
            raise InputError(f"labels dtype {display.dtype} is not an integer type")
        if not display.flags.writeable:
            raise InputError("the labels array is read-only")

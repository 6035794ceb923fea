"""Test helpers: the one stand-in session, a Slicer markup store, a synthetic volume, the shipped tiny model.

:class:`FakeSession` implements :class:`pge_sam.session_protocol.SessionLike`
without a network, so front-end tests whose assertions need an exact rule
(a small box inside an object, a click on the background, a slowed-down
propagation to cancel) hold. It keeps state the way the core does (it reuses
the core's write rule, undo records, prompt display and propagation walk):

* a click or a box segments its slice by region growing: pixels whose
  normalised uint8 value is within ``tolerance`` of a seed's value and
  4-connected to it, inside the box when there is one (seeds: the positive
  points, else the box centre); a negative point removes the pixels nearer to
  it than to every seed;
* propagation grows from the previous slice's most interior pixel, taking
  ``delay`` seconds per slice;
* ``calls`` records every verb with its arguments (the Slicer logic's mapping
  tests read it); ``encoded`` holds the (axis, index) of encoded slices.
"""

from __future__ import annotations

import functools
import time
from types import SimpleNamespace

import numpy as np
from scipy import ndimage

from pge_sam import edits
from pge_sam.errors import Cancelled, InputError, PromptError
from pge_sam.geometry import check_axis, from_slice, locate, slice_index, union_bbox
from pge_sam.normalize import Normalization, to_uint8
from pge_sam.progress import ensure
from pge_sam.prompts import Box, Point, SlicePrompts
from pge_sam.propagate import PropagationConfig, walk
from pge_sam.session_protocol import Change, PromptMark
from pge_sam.session_state import ObjectState, UndoStep, lone_click, prompt_marks
from pge_sam.validate import check_image, check_labels, check_spacing


class FakeSession:
    """See the module docstring; the constructor takes :class:`pge_sam.session.Session`'s arguments (no model)."""

    def __init__(self, image, labels: np.ndarray | None = None, *, axis: int = 0, spacing=None,
                 normalization: Normalization | None = None, overwrite: bool = False, prefetch: int = 0,
                 allow_rgb_shape: bool = False, tolerance: int = 40, delay: float = 0.0) -> None:
        self.is2d = check_image(image, allow_rgb_shape)
        self.image = image
        self.labels = np.zeros(image.shape, np.uint16) if labels is None else labels
        check_labels(self.labels, image.shape)
        self.spacing = check_spacing(spacing, 2 if self.is2d else 3)
        self._volume = image[None] if self.is2d else image
        self._labels = self.labels[None] if self.is2d else self.labels
        self.value_range = (normalization or Normalization.percentile()).value_range(self._volume)
        self.overwrite, self.prefetch, self.tolerance, self.delay = overwrite, prefetch, int(tolerance), delay
        self.propagation = PropagationConfig()
        self.calls: list[tuple] = []
        self.encoded: set[tuple[int, int]] = set()
        self.closed = False
        self._axis = 0 if self.is2d else check_axis(axis)
        self._label = int(self.labels.max()) + 1
        self._objects = {self._label: ObjectState(self._label)}
        self._undo: list[UndoStep] = []

    @classmethod
    def factory(cls, **options) -> functools.partial:
        """A :data:`~pge_sam.session_protocol.SessionFactory` making fake sessions with these options."""
        return functools.partial(cls, **options)

    # -- state ---------------------------------------------------------------------------------------------------
    label = property(lambda self: self._label)
    axis = property(lambda self: self._axis)
    n_slices = property(lambda self: self._volume.shape[self._axis])
    can_undo = property(lambda self: bool(self._undo))

    def set_axis(self, axis: int) -> None:
        self.calls.append(("set_axis", axis))
        if self.is2d and axis != 0:
            raise InputError("a 2D image has only one slicing axis (0)")
        self._axis = check_axis(axis)

    def prompts(self) -> list[PromptMark]:
        return prompt_marks(self._objects, self.is2d)

    # -- prompt verbs --------------------------------------------------------------------------------------------
    def add_point(self, point, positive: bool = True, axis: int | None = None) -> Change:
        self.calls.append(("add_point", tuple(point), positive, axis))
        axis = self._axis if axis is None else axis
        p = locate(point, self.image.shape, axis)
        return self._segment(axis, p.index, self._current(axis, p.index).with_point(Point(p.row, p.col, positive)))

    def add_box(self, corner_a, corner_b, axis: int | None = None) -> Change:
        self.calls.append(("add_box", tuple(corner_a), tuple(corner_b), axis))
        axis = self._axis if axis is None else axis
        a, b = locate(corner_a, self.image.shape, axis), locate(corner_b, self.image.shape, axis)
        if a.index != b.index:
            raise PromptError(f"box corners lie on different slices ({a.index} and {b.index})")
        box = Box.from_corners((a.row, a.col), (b.row, b.col))
        return self._segment(axis, a.index, self._current(axis, a.index).with_box(box))

    def _segment(self, axis: int, index: int, prompts: SlicePrompts) -> Change:
        mask = self._grow(self._u8(axis, index), prompts)
        edit = self._write(axis, index, mask, self.overwrite)
        self._objects[self._label].prompts[(axis, index)] = prompts
        self._undo.append(UndoStep(self._label, "box" if prompts.box is not None else "point", [edit]))
        return self._change(self._label, axis, [edit])

    def other_mask(self) -> Change:
        """The core's rule for which click qualifies (``lone_click``); the proposals: the grown region eroded 0, 1,
        2 times."""
        self.calls.append(("other_mask",))
        (axis, index), prompts, shown = lone_click(self._undo, self._objects[self._label])
        mask = self._grow(self._u8(axis, index), prompts)
        erosions = (shown + 1) % 3
        mask = ndimage.binary_erosion(mask, iterations=erosions) if erosions else mask
        step = [self._write(axis, index, mask, self.overwrite)]
        self._undo.append(UndoStep(self._label, "other mask", step))
        return self._change(self._label, axis, step)

    # -- object verbs --------------------------------------------------------------------------------------------
    def undo(self) -> Change | None:
        self.calls.append(("undo",))
        if not self._undo:
            return None
        popped = self._undo.pop()
        label, step = popped.label, popped.edits
        obj = self._objects.setdefault(label, ObjectState(label))
        for edit in reversed(step):
            edits.revert(self._view(edit.axis, edit.index), edit)
            if edit.prompts_before is None:
                obj.prompts.pop((edit.axis, edit.index), None)
            else:
                obj.prompts[(edit.axis, edit.index)] = edit.prompts_before
        if label != self._label and not self._objects[self._label].prompts:
            self.select_object(label)
        return self._change(label, step[0].axis if step else self._axis, step)

    def reset_object(self) -> Change:
        self.calls.append(("reset_object",))
        obj, axis = self._objects[self._label], self._axis
        other = tuple(a for a in range(3) if a != axis)
        touched = {i for (ax, i) in obj.prompts if ax == axis}
        touched |= set(np.flatnonzero((self._labels == self._label).any(axis=other)).tolist())
        step = [self._write(axis, i, np.zeros(self._view(axis, i).shape, bool), False) for i in sorted(touched)]
        step += [edits.SliceEdit(ax, i, None, None, None, None, p, None) for (ax, i), p in obj.prompts.items()
                 if ax != axis]
        obj.prompts.clear()
        self._undo.append(UndoStep(self._label, "reset", step))
        return self._change(self._label, axis, step)

    def next_object(self) -> int:
        self.calls.append(("next_object",))
        if not self._objects[self._label].prompts and not (self._labels == self._label).any():
            return self._label
        self.select_object(max(int(self._labels.max()), max(self._objects)) + 1)
        return self._label

    def select_object(self, label: int) -> None:
        self._label = int(label)
        self._objects.setdefault(self._label, ObjectState(self._label))

    def commit_object(self) -> int:
        self.calls.append(("commit_object",))
        self._undo = [entry for entry in self._undo if entry.label != self._label]
        self._objects[self._label].prompts.clear()
        return self.next_object()

    # -- volume verbs --------------------------------------------------------------------------------------------
    def plan_propagation(self, progress=None, config: PropagationConfig | None = None):
        self.calls.append(("propagate", progress))
        config, progress, axis = config or self.propagation, ensure(progress), self._axis
        if self.is2d:
            raise InputError("propagation needs a 3D volume; this image is 2D")
        prompted = [i for (ax, i) in self._objects[self._label].prompts if ax == axis]
        if not prompted:
            raise InputError(f"nothing to propagate: object {self._label} has no prompt along axis {axis}")
        seeds = {i: self._view(axis, i) == self._label for i in prompted}
        plan = SimpleNamespace(owner=self, label=self._label, axis=axis, edits=[], cancelled=False, notes=[])

        def predict(index, prev_mask, prev_logits):
            time.sleep(self.delay)
            dist = ndimage.distance_transform_edt(np.pad(prev_mask, 1))[1:-1, 1:-1]
            row, col = np.unravel_index(int(np.argmax(dist)), dist.shape)
            return self._grow(self._u8(axis, index), SlicePrompts((Point(int(row), int(col)),))), None

        progress.start(self.n_slices - len(seeds))
        for index, mask, _ in walk(self.n_slices, seeds, {}, set(), predict, config, None, plan.notes):
            plan.edits.append(edits.diff(self._view(axis, index), mask, self._label, self.overwrite, axis, index,
                                         None, None))
            progress.update(1)
            if progress.cancelled():
                plan.cancelled = True
                break
        return plan

    def apply(self, plan) -> Change:
        if plan.owner is not self:
            raise InputError("this propagation was planned by another session; propagate again")
        for edit in plan.edits:
            edits.apply(self._view(edit.axis, edit.index), edit)
        self._undo.append(UndoStep(plan.label, "propagate", plan.edits))
        change = self._change(plan.label, plan.axis, plan.edits)
        change.cancelled, change.notes = plan.cancelled, tuple(plan.notes)
        return change

    def propagate(self, progress=None, config: PropagationConfig | None = None) -> Change:
        return self.apply(self.plan_propagation(progress, config))

    def precompute(self, start=None, stop=None, axis=None, progress=None) -> int:
        self.calls.append(("precompute", progress))
        axis, progress = self._axis if axis is None else axis, ensure(progress)
        indices = range(*slice(start, stop).indices(self._volume.shape[axis]))
        progress.start(len(indices))
        done = 0
        for index in indices:
            if progress.cancelled():
                raise Cancelled("precompute was cancelled; results computed so far are kept")
            done += (axis, index) not in self.encoded
            self.encode(index, axis)
            progress.update(1)
        return done

    def is_encoded(self, index: int, axis: int | None = None) -> bool:
        return (self._axis if axis is None else axis, int(index)) in self.encoded

    def encode(self, index: int, axis: int | None = None) -> None:
        axis = self._axis if axis is None else axis
        self._u8(axis, index)  # NaN slices fail here, as the model's encoder would
        self.encoded.add((axis, int(index)))

    def focus(self, index: int, axis: int | None = None) -> None:
        self.calls.append(("focus", index))

    def close(self) -> None:
        self.closed = True

    # -- helpers -------------------------------------------------------------------------------------------------
    def _current(self, axis: int, index: int) -> SlicePrompts:
        return self._objects[self._label].prompts.get((axis, index), SlicePrompts())

    def _view(self, axis: int, index: int) -> np.ndarray:
        return self._labels[slice_index(axis, index)]

    def _u8(self, axis: int, index: int) -> np.ndarray:
        raw = np.asarray(self._volume[slice_index(axis, index)])
        if not np.isfinite(raw).all():
            raise InputError(f"slice {index} along axis {axis} contains NaN or infinite values")
        return to_uint8(raw, *self.value_range)

    def _write(self, axis: int, index: int, mask: np.ndarray, overwrite: bool) -> edits.SliceEdit:
        obj = self._objects[self._label]
        edit = edits.diff(self._view(axis, index), mask, self._label, overwrite, axis, index,
                          obj.prompts.get((axis, index)), None)
        edits.apply(self._view(axis, index), edit)
        return edit

    def _grow(self, image_u8: np.ndarray, prompts: SlicePrompts) -> np.ndarray:
        image, (h, w), b = image_u8.astype(np.int16), image_u8.shape, prompts.box
        positives = [(p.row, p.col) for p in prompts.points if p.positive]
        negatives = [(p.row, p.col) for p in prompts.points if not p.positive]
        region = np.ones((h, w), bool)
        if b is not None:
            region = np.zeros((h, w), bool)
            region[b.row0:b.row1 + 1, b.col0:b.col1 + 1] = True
        seeds = positives or ([((b.row0 + b.row1) // 2, (b.col0 + b.col1) // 2)] if b is not None else [])
        mask = np.zeros((h, w), bool)
        for r, c in seeds:
            parts, _ = ndimage.label((np.abs(image - image[r, c]) <= self.tolerance) & region)
            if parts[r, c]:
                mask |= parts == parts[r, c]
        if negatives and seeds:
            rows, cols = np.mgrid[0:h, 0:w]
            d_pos = np.min([(rows - r) ** 2 + (cols - c) ** 2 for r, c in seeds], axis=0)
            d_neg = np.min([(rows - r) ** 2 + (cols - c) ** 2 for r, c in negatives], axis=0)
            mask &= d_pos <= d_neg
        return mask

    def _change(self, label: int, axis: int, step: list[edits.SliceEdit]) -> Change:
        bbox = None
        for e in step:
            if e.rows is not None:
                bbox = union_bbox(bbox, from_slice(slice(e.index, e.index + 1), e.rows, e.cols, e.axis))
        if self.is2d and bbox is not None:
            bbox = bbox[1:]
        return Change(label, axis, tuple(sorted({e.index for e in step})), bbox, sum(e.voxels for e in step))


def ellipsoid(shape, centre, radii) -> np.ndarray:
    """(shape) bool: the voxels inside the axis-aligned ellipsoid (volume indices)."""
    grid = np.mgrid[tuple(slice(0, n) for n in shape)].astype(np.float32)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1


def ellipsoid_volume(shape=(12, 48, 56), value: float = 0.8, background: float = 0.1) -> np.ndarray:
    """(Z, Y, X) float32 volume: an ellipsoid of ``value`` centred at (5.5, 24, 26) with radii (4.5, 14, 12)."""
    return np.where(ellipsoid(shape, (5.5, 24, 26), (4.5, 14, 12)), value, background).astype(np.float32)


def tiny_model(seed: int = 0):
    """The offline default model (:func:`pge_sam.default_model`: ``pge_sam_tiny``, else ``sam_tiny``) on the CPU.

    Random ``sam_tiny`` weights seeded with ``seed`` only when the package ships
    no tiny weights at all (a broken install; the shipped-weights tests fail then).
    """
    import torch

    from napari_pge_sam._compat import avoid_triton_llvm_clash
    from pge_sam.model_files import build_model
    from pge_sam.models.registry import default_model, shipped_path

    avoid_triton_llvm_clash()  # a napari viewer may already have loaded Mesa's LLVM
    if shipped_path("sam_tiny").is_file():
        return build_model(default_model(), device="cpu")
    torch.manual_seed(seed)
    return build_model("sam_tiny", pretrained=False, device="cpu")


def segmenting_model():
    """The model behind the tests' geometric assertions: the shipped default model (see :func:`tiny_model`)."""
    return tiny_model()

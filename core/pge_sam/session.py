"""Interactive session over a 2D image or a 3D volume, writing into a caller-owned label buffer.

    model = build_model("pge_sam_tiny")
    labels = np.zeros(volume.shape, np.uint16)          # owned by the caller
    s = Session(model, volume, labels, axis=0)
    change = s.add_point((z, y, x), positive=True)      # -> Change(label, axis, slices, bbox)
    s.add_point((z, y, x2), positive=False); s.undo(); s.next_object(); s.propagate()

Every verb validates its input before touching the buffer and returns a
:class:`Change` naming the region the front-end must redraw. Points are
volume indices (z, y, x) — or (row, col) for a 2D image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import edits
from .disk_cache import DiskStore
from .errors import InputError, PromptError
from .geometry import check_axis, format_point, from_slice, in_plane_axes, slice_index, slice_shape, to_slice_point, union_bbox
from .normalize import Normalization, to_uint8
from .predictor import Predictor, predictor_for
from .progress import Progress, ensure
from .prompts import Box, Point, SlicePrompts
from .propagate import IntensityModel, PropagationConfig, background_value, prompts_from_mask, walk
from .validate import check_image, check_labels


@dataclass
class Change:
    """What a verb changed. ``bbox``: half-open volume-index slices (z, y, x) — (row, col) for 2D — or ``None``."""

    label: int
    axis: int
    slices: tuple[int, ...]
    bbox: tuple[slice, ...] | None
    voxels: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    notes: tuple[str, ...] = ()  # e.g. where and why propagation stopped


@dataclass
class ObjectState:
    """Prompts and previous low-res logits of one object, keyed by (axis, slice index)."""

    label: int
    prompts: dict[tuple[int, int], SlicePrompts] = field(default_factory=dict)
    logits: dict[tuple[int, int], object] = field(default_factory=dict)


@dataclass
class UndoStep:
    label: int
    kind: str
    edits: list[edits.SliceEdit]


@dataclass
class SessionState:
    axis: int
    label: int
    objects: dict[int, ObjectState] = field(default_factory=dict)
    undo: list[UndoStep] = field(default_factory=list)
    next_label: int = 1


class Session:
    """See the module docstring. ``model`` may be a model or a shared :class:`Predictor`."""

    def __init__(self, model, image, labels: np.ndarray | None = None, axis: int = 0,
                 spacing: tuple[float, ...] | None = None, normalization: Normalization | None = None,
                 overwrite: bool = False, prefetch: int = 2, disk_cache: str | Path | None = None,
                 allow_rgb_shape: bool = False) -> None:
        self.predictor: Predictor = predictor_for(model)
        self.is2d = check_image(image, allow_rgb_shape)
        self.image = image
        self._volume = image[None] if self.is2d else image
        self.shape = tuple(int(s) for s in self._volume.shape)
        if labels is None:
            labels = np.zeros(image.shape, np.uint16)
        check_labels(labels, image.shape)
        self.labels = labels
        self._labels = labels[None] if self.is2d else labels
        self.spacing = tuple(float(v) for v in spacing) if spacing is not None else (1.0,) * (2 if self.is2d else 3)
        if len(self.spacing) != (2 if self.is2d else 3) or not all(np.isfinite(v) and v > 0 for v in self.spacing):
            raise InputError(f"spacing must be {2 if self.is2d else 3} positive numbers in the image's axis order, got {spacing!r}")
        self.normalization = normalization or Normalization.percentile()
        self.value_range = self.normalization.value_range(self._volume)
        self.overwrite = overwrite
        self.prefetch = prefetch
        self.state = SessionState(axis=0 if self.is2d else check_axis(axis), label=0,
                                  next_label=int(labels.max()) + 1 if labels.size else 1)
        start = self._unused_label()
        self.state.label, self.state.next_label = start, start + 1
        self.state.objects[start] = ObjectState(start)
        self.disk = None
        if disk_cache is not None:
            model_ = self.predictor.model
            self.disk = DiskStore(Path(disk_cache), {
                "model": model_.name, "weights": model_.fingerprint(), "shape": list(self.shape),
                "normalization": self.normalization.key(), "range": list(self.value_range)})
        self.propagation = PropagationConfig()

    # -- properties ----------------------------------------------------------------------------------
    @property
    def axis(self) -> int:
        return self.state.axis

    def set_axis(self, axis: int) -> None:
        if self.is2d and axis != 0:
            raise InputError("a 2D image has only one slicing axis (0)")
        self.state.axis = check_axis(axis)

    @property
    def label(self) -> int:
        """Label id of the object being edited."""
        return self.state.label

    @property
    def n_slices(self) -> int:
        return self.shape[self.axis]

    def slice_u8(self, index: int, axis: int | None = None, raw: np.ndarray | None = None) -> np.ndarray:
        """Normalised (H, W) uint8 slice; NaN/inf in it is an :class:`InputError`. ``raw``: the slice's
        values when the caller has read them already (a lazy volume is then not read twice)."""
        axis = self.axis if axis is None else axis
        raw = np.asarray(self._volume[slice_index(axis, index)]) if raw is None else raw
        if not np.isfinite(raw).all():
            raise InputError(f"slice {index} along axis {axis} contains NaN or infinite values; "
                             "replace them (e.g. numpy.nan_to_num) before segmenting")
        return to_uint8(raw, *self.value_range)

    def aspect(self, axis: int | None = None) -> float:
        """Pixel aspect (row spacing / column spacing) of slices along ``axis``; non-square pixels are resampled for the model."""
        axis = self.axis if axis is None else axis
        if self.is2d:
            return float(self.spacing[0]) / float(self.spacing[1])
        r, c = in_plane_axes(axis)
        return float(self.spacing[r]) / float(self.spacing[c])

    # -- prompt verbs ------------------------------------------------------------------------------------
    def add_point(self, point, positive: bool = True, axis: int | None = None) -> Change:
        """Add a positive/negative click at volume index (z, y, x) (or (row, col) in 2D) and re-segment that slice."""
        axis = self._axis(axis)
        sp = to_slice_point(self._point3(point), self.shape, axis)
        prompts = self._obj.prompts.get((axis, sp.index), SlicePrompts()).with_point(Point(sp.row, sp.col, bool(positive)))
        return self._segment_slice(axis, sp.index, prompts, "point")

    def add_box(self, corner_a, corner_b, axis: int | None = None) -> Change:
        """Set the box prompt from two opposite corners (volume indices on the same slice) and re-segment."""
        axis = self._axis(axis)
        a = to_slice_point(self._point3(corner_a), self.shape, axis)
        b = to_slice_point(self._point3(corner_b), self.shape, axis)
        if a.index != b.index:
            raise PromptError(f"box corners lie on different slices ({a.index} and {b.index}) along axis {axis}")
        box = Box.from_corners((a.row, a.col), (b.row, b.col))
        prompts = self._obj.prompts.get((axis, a.index), SlicePrompts()).with_box(box)
        return self._segment_slice(axis, a.index, prompts, "box")

    def _segment_slice(self, axis: int, index: int, prompts: SlicePrompts, kind: str) -> Change:
        t0 = time.perf_counter()
        obj, key = self._obj, (axis, index)
        shape2d = slice_shape(self.shape, axis)
        if prompts.is_stop_marker:
            mask, low_res = np.zeros(shape2d, bool), None
        else:
            u8, aspect = self.slice_u8(index, axis), self.aspect(axis)
            feats = self.predictor.features(u8, axis, index, self.disk, aspect)
            pred = self.predictor.decode(feats, prompts, shape2d, mask_input=obj.logits.get(key), aspect=aspect)
            mask, low_res = pred.mask, pred.low_res
        edit = edits.record(self._view(axis, index), mask, obj.label, self.overwrite, axis, index,
                            obj.prompts.get(key), obj.logits.get(key))
        obj.prompts[key] = prompts
        self._set_logits(obj, key, low_res)
        self.state.undo.append(UndoStep(obj.label, kind, [edit]))
        self._prefetch_around(axis, index)
        return self._change(obj.label, axis, [edit], t0)

    # -- object verbs ----------------------------------------------------------------------------------------
    def undo(self) -> Change | None:
        """Undo the last prompt, box, propagation or reset (its voxels and its prompts); ``None`` if nothing to undo."""
        if not self.state.undo:
            return None
        t0 = time.perf_counter()
        step = self.state.undo.pop()
        self._rollback(step)
        return self._change(step.label, step.edits[0].axis if step.edits else self.axis, step.edits, t0)

    def _rollback(self, step: UndoStep) -> None:
        obj = self.state.objects.setdefault(step.label, ObjectState(step.label))
        for edit in reversed(step.edits):
            edits.revert(self._view(edit.axis, edit.index), edit)
            key = (edit.axis, edit.index)
            if edit.prompts_before is None:
                obj.prompts.pop(key, None)
            else:
                obj.prompts[key] = edit.prompts_before
            self._set_logits(obj, key, edit.logits_before)

    def reset_object(self) -> Change:
        """Remove the current object's prompts and voxels everywhere (undoable)."""
        t0 = time.perf_counter()
        obj = self._obj
        all_edits = []
        touched = {i for (ax, i) in obj.prompts if ax == self.axis} | set(self._slices_with_label(obj.label))
        for index in sorted(touched):
            key = (self.axis, index)
            view = self._view(self.axis, index)
            all_edits.append(edits.record(view, np.zeros(view.shape, bool), obj.label, False, self.axis, index,
                                          obj.prompts.get(key), obj.logits.get(key)))
        for ax, index in [k for k in obj.prompts if k[0] != self.axis]:
            all_edits.append(edits.SliceEdit(ax, index, None, None, None, None, obj.prompts[(ax, index)], obj.logits.get((ax, index))))
        obj.prompts.clear()
        obj.logits.clear()
        self.state.undo.append(UndoStep(obj.label, "reset", all_edits))
        return self._change(obj.label, self.axis, all_edits, t0)

    def next_object(self) -> int:
        """Start a new object with a fresh label id (kept if the current object is still empty)."""
        obj = self._obj
        if not obj.prompts and not self._slices_with_label(obj.label):
            return obj.label
        label = self._unused_label()
        self.state.next_label = label + 1
        self.state.label = label
        self.state.objects[label] = ObjectState(label)
        return label

    def _unused_label(self) -> int:
        """The smallest id >= ``next_label`` that neither the buffer (painted by the user meanwhile) nor a session
        object uses; else the smallest free id; :class:`InputError` when the dtype has none left."""
        top = np.iinfo(self.labels.dtype).max
        label = self.state.next_label
        highest = max(int(self._labels.max()) if self._labels.size else 0, max(self.state.objects, default=0))
        if highest < label <= top:  # the common case: above everything in use, no sort of the buffer needed
            return label
        used = np.union1d(np.unique(self._labels), np.fromiter(self.state.objects, np.int64))
        run = np.concatenate([[label - 1], used[used >= label]])  # the first gap in this run is free
        gaps = np.flatnonzero(np.diff(run) > 1)
        candidate = int(run[gaps[0] if gaps.size else -1]) + 1
        if candidate <= top:
            return candidate
        free = np.setdiff1d(np.arange(1, min(top, used.size + 1) + 1), used)
        if free.size == 0:
            raise InputError(f"every label id of the buffer's dtype {self.labels.dtype} is in use; "
                             "use a wider integer type (e.g. numpy.uint32)")
        return int(free[0])

    def select_object(self, label: int) -> None:
        """Continue editing an existing object (e.g. one loaded with the labels)."""
        if label <= 0 or label > np.iinfo(self.labels.dtype).max:
            raise InputError(f"label id must be in 1..{np.iinfo(self.labels.dtype).max}, got {label}")
        self.state.label = int(label)
        self.state.objects.setdefault(int(label), ObjectState(int(label)))
        self.state.next_label = max(self.state.next_label, int(label) + 1)

    # -- volume verbs ------------------------------------------------------------------------------------------
    def propagate(self, progress: Progress | None = None, config: PropagationConfig | None = None) -> Change:
        """Propagate the current object from its prompted slices through the volume (both directions).

        Cancelling through ``progress`` keeps the slices done so far (``Change.cancelled``). Undoable as one step.
        """
        t0 = time.perf_counter()
        config = config or self.propagation
        progress = ensure(progress)
        obj, axis = self._obj, self.axis
        prompted = {i: p for (ax, i), p in obj.prompts.items() if ax == axis}
        stops = {i for i, p in prompted.items() if p.is_stop_marker}
        seeds = {i: self._view(axis, i) == obj.label for i in prompted if i not in stops}
        seed_logits = {i: obj.logits[(axis, i)] for i in seeds if (axis, i) in obj.logits}
        shape2d = slice_shape(self.shape, axis)

        aspect = self.aspect(axis)
        scores: dict[int, float] = {}
        raw = {i: np.asarray(self._volume[slice_index(axis, i)]) for i in seeds}
        pixels = np.concatenate([raw[i][m] for i, m in seeds.items()]) if seeds else np.zeros(0)
        looks = IntensityModel.from_seeds(pixels) if pixels.size and config.min_content_match > 0 else None
        background = background_value(self._volume) if config.trim_background and pixels.size else None
        if background is not None and np.mean(pixels == background) >= 0.01:
            background = None  # the object itself holds background-valued voxels: keep them

        def predict(index, prev_mask, prev_logits):
            raw[index] = np.asarray(self._volume[slice_index(axis, index)])  # read once: encoder, trim, stop rule
            feats = self.predictor.features(self.slice_u8(index, axis, raw[index]), axis, index, self.disk, aspect)
            use_logits = prev_logits if "mask" in config.prompt else None
            pred = self.predictor.decode(feats, prompts_from_mask(prev_mask, config), shape2d, mask_input=use_logits,
                                         aspect=aspect)
            scores[index] = pred.iou
            if background is None:
                return pred.mask, pred.low_res
            return pred.mask & (raw[index] != background), pred.low_res

        def stop(index, mask):
            values = raw.pop(index)
            if config.min_predicted_iou > 0 and scores.get(index, 1.0) < config.min_predicted_iou:
                return f"the model's IoU estimate {scores[index]:.2f} is below {config.min_predicted_iou:.2f}"
            if looks is not None:
                match = looks.match(values, mask)
                if match < config.min_content_match:
                    return (f"only {match:.0%} of the mask has the object's intensities "
                            f"({looks.low:.4g}..{looks.high:.4g}); the object ends here")
            return None

        step = UndoStep(obj.label, "propagate", [])
        progress.start(max(0, self.n_slices - len(seeds)))
        cancelled = False
        reasons: list[str] = []
        try:
            for index, mask, logits in walk(self.n_slices, seeds, seed_logits, stops, predict, config, stop, reasons):
                key = (axis, index)
                step.edits.append(edits.record(self._view(axis, index), mask, obj.label, self.overwrite, axis, index,
                                               obj.prompts.get(key), obj.logits.get(key)))
                self._set_logits(obj, key, logits)
                progress.update(1)
                if progress.cancelled():
                    cancelled = True
                    break
            if not cancelled and config.direction == "both" and config.max_slices is None:
                self._clear_unreached(obj, axis, set(prompted) | {e.index for e in step.edits}, step, reasons)
        except BaseException:
            self._rollback(step)  # an error part-way leaves the buffer and the state as they were
            raise
        self.state.undo.append(step)  # even when nothing changed: the next undo undoes this propagation
        change = self._change(obj.label, axis, step.edits, t0)
        change.cancelled = cancelled
        change.notes = tuple(reasons)
        return change

    def _clear_unreached(self, obj: ObjectState, axis: int, reached: set[int], step: UndoStep,
                         reasons: list[str]) -> None:
        """A re-propagation replaces the last one: the object's voxels on slices it no longer reaches (beyond a
        new stop marker, or where the walk now stops earlier) are cleared, as part of the same undo step."""
        stale = [i for i in self._slices_with_label(obj.label) if i not in reached]
        for index in stale:
            key = (axis, index)
            view = self._view(axis, index)
            step.edits.append(edits.record(view, np.zeros(view.shape, bool), obj.label, False, axis, index,
                                           obj.prompts.get(key), obj.logits.get(key)))
            obj.logits.pop(key, None)
        if stale:
            reasons.append(f"cleared the object from {len(stale)} slice(s) an earlier propagation reached "
                           f"({stale[0]}..{stale[-1]})")

    def precompute(self, start: int | None = None, stop: int | None = None, axis: int | None = None,
                   progress: Progress | None = None) -> int:
        """Encode slices ``start:stop`` along ``axis`` in batches (cached ones are skipped); returns how many were encoded."""
        axis = self._axis(axis)
        indices = range(*slice(start, stop).indices(self.shape[axis]))
        jobs = [self._job(axis, i) for i in indices]
        return self.predictor.encode_many(jobs, progress, self.disk)

    def focus(self, index: int, axis: int | None = None) -> None:
        """Tell the session the user looks at slice ``index``: it and its neighbours are encoded in the background."""
        self._prefetch_around(self._axis(axis), index, include_self=True)

    def close(self) -> None:
        """Drop pending background prefetches of this session."""
        self.predictor._prefetch_generation += 1

    # -- helpers ---------------------------------------------------------------------------------------------------
    @property
    def _obj(self) -> ObjectState:
        return self.state.objects[self.state.label]

    def _axis(self, axis: int | None) -> int:
        if axis is None:
            return self.axis
        if self.is2d and axis != 0:
            raise InputError("a 2D image has only one slicing axis (0)")
        return check_axis(axis)

    def _point3(self, point) -> tuple:
        p = tuple(point)
        if self.is2d:
            if len(p) != 2:
                raise PromptError(f"a point on a 2D image is (row, col); got {format_point(point)}")
            return (0,) + p
        if len(p) != 3:
            raise PromptError(f"a point in a volume is (z, y, x); got {format_point(point)}")
        return p

    def _view(self, axis: int, index: int) -> np.ndarray:
        return self._labels[slice_index(axis, index)]

    def _set_logits(self, obj: ObjectState, key, logits) -> None:
        if logits is None:
            obj.logits.pop(key, None)
        else:
            obj.logits[key] = logits

    def _slices_with_label(self, label: int) -> list[int]:
        other = tuple(a for a in range(3) if a != self.axis)
        return np.flatnonzero((self._labels == label).any(axis=other)).tolist()

    def _job(self, axis: int, index: int):
        return lambda: (self.slice_u8(index, axis), axis, index, self.aspect(axis))

    def _prefetch_around(self, axis: int, index: int, include_self: bool = False) -> None:
        if self.prefetch <= 0:
            return
        order = [index] if include_self else []
        for d in range(1, self.prefetch + 1):
            order += [i for i in (index + d, index - d) if 0 <= i < self.shape[axis]]
        self.predictor.prefetch([self._job(axis, i) for i in order], self.disk)

    def _change(self, label: int, axis: int, slice_edits: list, t0: float) -> Change:
        bbox = None
        for e in slice_edits:
            if e.rows is not None:
                bbox = union_bbox(bbox, from_slice(slice(e.index, e.index + 1), e.rows, e.cols, e.axis))
        slices = tuple(sorted({e.index for e in slice_edits}))
        if self.is2d and bbox is not None:
            bbox = bbox[1:]
        return Change(label, axis, slices, bbox, sum(e.voxels for e in slice_edits), seconds=time.perf_counter() - t0)

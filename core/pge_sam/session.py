"""Interactive session over a 2D image or a 3D volume, writing into a caller-owned label buffer.

    model = build_model("pge_sam_tiny")
    labels = np.zeros(volume.shape, np.uint16)          # owned by the caller
    s = Session(model, volume, labels, axis=0)
    change = s.add_point((z, y, x), positive=True)      # -> Change(label, axis, slices, bbox)
    s.add_point((z, y, x2), positive=False); s.undo(); s.next_object(); s.propagate()

The session owns every piece of interactive state: prompts and previous
logits per (axis, slice) and object, the objects, the undo history. Every
verb validates its input before touching the buffer and returns a
:class:`Change` naming the region the front-end must redraw; :meth:`Session.prompts`
lists the prompts to show. The verbs are those of
:class:`pge_sam.session_protocol.SessionLike`. Points are volume indices
(z, y, x) — or (row, col) for a 2D image.

Threads: a GUI calls every verb on its main thread, except
:meth:`Session.plan_propagation`, :meth:`Session.precompute` and
:meth:`Session.encode`, which only read the image and the buffer and may run
in a worker; the plan is then written with :meth:`Session.apply`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import edits
from .disk_cache import DiskStore
from .errors import InputError, PromptError
from .geometry import check_axis, from_slice, in_plane_axes, locate, slice_index, slice_shape, union_bbox
from .normalize import Normalization, to_uint8
from .predictor import Predictor, as_predictor, mask_channel
from .progress import Progress, ensure
from .prompts import Box, Point, SlicePrompts
from .propagate import PropagationConfig, content_rules, content_stop, prompts_from_mask, walk
from .session_protocol import Change, PromptMark
from .session_state import (ObjectState, PropagationPlan, SessionState, UndoStep, lone_click, prompt_marks,
                            unused_label)
from .validate import check_image, check_labels, check_spacing

__all__ = ["Change", "PromptMark", "PropagationPlan", "Session"]


class Session:
    """See the module docstring. ``model`` may be a model or a shared :class:`Predictor`."""

    def __init__(self, model, image, labels: np.ndarray | None = None, axis: int = 0,
                 spacing: tuple[float, ...] | None = None, normalization: Normalization | None = None,
                 overwrite: bool = False, prefetch: int = 2, disk_cache: str | Path | None = None,
                 allow_rgb_shape: bool = False) -> None:
        self.is2d = check_image(image, allow_rgb_shape)
        self.image = image
        self._volume = image[None] if self.is2d else image
        self.shape = tuple(int(s) for s in self._volume.shape)
        if labels is None:
            labels = np.zeros(image.shape, np.uint16)
        check_labels(labels, image.shape)
        self.labels = labels
        self._labels = labels[None] if self.is2d else labels
        self.spacing = check_spacing(spacing, 2 if self.is2d else 3)
        self.normalization = normalization or Normalization.percentile()
        self.value_range = self.normalization.value_range(self._volume)
        self.overwrite = overwrite
        self.prefetch = prefetch
        self.state = SessionState(axis=0 if self.is2d else check_axis(axis), label=0,
                                  next_label=int(labels.max()) + 1 if labels.size else 1)
        start = unused_label(self._labels, self.state.objects, self.state.next_label)
        self.state.label, self.state.next_label = start, start + 1
        self.state.objects[start] = ObjectState(start)
        self._owns_predictor = not isinstance(model, Predictor)
        self.predictor: Predictor = as_predictor(model)
        self._prefetching = None  # this session's background prefetch (a Prefetch handle)
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

    @property
    def can_undo(self) -> bool:
        return bool(self.state.undo)

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
        """Pixel aspect (row spacing / column spacing) of slices along ``axis``; non-square pixels are resampled for
        the model."""
        axis = self.axis if axis is None else axis
        if self.is2d:
            return float(self.spacing[0]) / float(self.spacing[1])
        r, c = in_plane_axes(axis)
        return float(self.spacing[r]) / float(self.spacing[c])

    # -- prompt verbs ------------------------------------------------------------------------------------
    def add_point(self, point, positive: bool = True, axis: int | None = None) -> Change:
        """Add a positive/negative click at volume index (z, y, x) (or (row, col) in 2D) and re-segment that slice."""
        axis = self._axis(axis)
        sp = locate(point, self.image.shape, axis)
        prompts = self._obj.prompts.get((axis, sp.index), SlicePrompts()).with_point(
            Point(sp.row, sp.col, bool(positive)))
        return self._segment_slice(axis, sp.index, prompts, "point")

    def add_box(self, corner_a, corner_b, axis: int | None = None) -> Change:
        """Set the box prompt from two opposite corners (volume indices on the same slice) and re-segment."""
        axis = self._axis(axis)
        a, b = locate(corner_a, self.image.shape, axis), locate(corner_b, self.image.shape, axis)
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
        edit = self._record(obj, axis, index, mask, self.overwrite)
        obj.prompts[key] = prompts
        self._set_logits(obj, key, low_res)
        self.state.undo.append(UndoStep(obj.label, kind, [edit]))
        self._prefetch_around(axis, index)
        return self._change(obj.label, axis, [edit], t0)

    def other_mask(self) -> Change:
        """Show the next of the masks the model proposed for the current object's last click (whole, part,
        sub-part: the model's choice first, then by its IoU estimate, cycling). Only for a click that was its
        slice's only prompt, with no mask there before; undoable like a click."""
        t0, obj = time.perf_counter(), self._obj
        key, prompts, shown = lone_click(self.state.undo, obj)
        u8, aspect = self.slice_u8(key[1], key[0]), self.aspect(key[0])
        feats = self.predictor.features(u8, key[0], key[1], self.disk, aspect)
        pred = self.predictor.decode(feats, prompts, slice_shape(self.shape, key[0]), aspect=aspect,
                                     candidate=shown + 1)
        if pred.candidates < 2:
            raise PromptError(f"{self.predictor.model.name} proposes one mask per click: there is no other to show")
        edit = self._record(obj, key[0], key[1], pred.mask, self.overwrite)
        self._set_logits(obj, key, pred.low_res)
        self.state.undo.append(UndoStep(obj.label, "other mask", [edit]))
        return self._change(obj.label, key[0], [edit], t0)

    # -- object verbs ----------------------------------------------------------------------------------------
    def undo(self) -> Change | None:
        """Undo the last prompt, box, propagation or reset (its voxels and its prompts); ``None`` if nothing to undo.

        When the step belongs to another object and the current one has no prompt yet (just started with
        :meth:`next_object`), editing goes back to the step's object.
        """
        if not self.state.undo:
            return None
        t0 = time.perf_counter()
        step = self.state.undo.pop()
        self._rollback(step)
        if step.label != self.state.label and not self._obj.prompts:
            self.select_object(step.label)
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
        t0, obj = time.perf_counter(), self._obj
        touched = {i for (ax, i) in obj.prompts if ax == self.axis} | set(self._slices_with_label(obj.label))
        all_edits = [self._record(obj, self.axis, index, None, False) for index in sorted(touched)]
        for ax, index in [k for k in obj.prompts if k[0] != self.axis]:  # prompts on other axes: undo restores them
            all_edits.append(edits.SliceEdit(ax, index, None, None, None, None, obj.prompts[(ax, index)],
                                             obj.logits.get((ax, index))))
        obj.prompts.clear()
        obj.logits.clear()
        self.state.undo.append(UndoStep(obj.label, "reset", all_edits))
        return self._change(obj.label, self.axis, all_edits, t0)

    def next_object(self) -> int:
        """Start a new object with a fresh label id (kept if the current object is still empty)."""
        obj = self._obj
        if not obj.prompts and not self._slices_with_label(obj.label):
            return obj.label
        label = unused_label(self._labels, self.state.objects, self.state.next_label)
        self.state.next_label = label + 1
        self.state.label = label
        self.state.objects[label] = ObjectState(label)
        return label

    def select_object(self, label: int) -> None:
        """Continue editing an existing object (e.g. one loaded with the labels)."""
        if label <= 0 or label > np.iinfo(self.labels.dtype).max:
            raise InputError(f"label id must be in 1..{np.iinfo(self.labels.dtype).max}, got {label}")
        self.state.label = int(label)
        self.state.objects.setdefault(int(label), ObjectState(int(label)))
        self.state.next_label = max(self.state.next_label, int(label) + 1)

    def commit_object(self) -> int:
        """Finish the current object: its voxels stay, its prompts and undo steps go; returns the next object's
        label."""
        label = self.state.label
        self.state.undo = [step for step in self.state.undo if step.label != label]
        self._obj.prompts.clear()
        self._obj.logits.clear()
        return self.next_object()

    def prompts(self) -> list[PromptMark]:
        """Every object's prompts for display, from the per-slice prompts (so always what undo left): per slice
        its box (two inclusive corners), then its points in click order; volume indices (row, col in 2D)."""
        return prompt_marks(self.state.objects, self.is2d)

    # -- volume verbs ------------------------------------------------------------------------------------------
    def propagate(self, progress: Progress | None = None, config: PropagationConfig | None = None) -> Change:
        """Propagate the current object from its prompted slices through the volume (both directions).

        Cancelling through ``progress`` keeps the slices done so far (``Change.cancelled``). Undoable as one step.
        """
        return self.apply(self.plan_propagation(progress, config))

    def plan_propagation(self, progress: Progress | None = None,
                         config: PropagationConfig | None = None) -> PropagationPlan:
        """The masks :meth:`propagate` would write, computed without writing the buffer or the state (a worker
        may run this; :meth:`apply` then writes the plan on the buffer's thread). Errors leave nothing behind."""
        t0 = time.perf_counter()
        config = config or self.propagation
        progress = ensure(progress)
        obj, axis = self._obj, self.axis
        if self.is2d:
            raise InputError("propagation needs a 3D volume; this image is 2D")
        prompted = {i: p for (ax, i), p in obj.prompts.items() if ax == axis}
        if not prompted:
            raise InputError(f"nothing to propagate: object {obj.label} has no prompt along axis {axis}; "
                             "click on a slice first")
        stops = {i for i, p in prompted.items() if p.is_stop_marker}
        seeds = {i: self._view(axis, i) == obj.label for i in prompted if i not in stops}
        seed_logits = {i: obj.logits[(axis, i)] for i in seeds if (axis, i) in obj.logits}
        shape2d, aspect = slice_shape(self.shape, axis), self.aspect(axis)
        scores: dict[int, float] = {}
        raw = {i: np.asarray(self._volume[slice_index(axis, i)]) for i in seeds}
        pixels = np.concatenate([raw[i][m] for i, m in seeds.items()]) if seeds else np.zeros(0)
        looks, background = content_rules(pixels, self._volume, config)

        def predict(index, prev_mask, prev_logits):
            raw[index] = np.asarray(self._volume[slice_index(axis, index)])  # read once: encoder, trim, stop rule
            feats = self.predictor.features(self.slice_u8(index, axis, raw[index]), axis, index, self.disk, aspect)
            use_logits = mask_channel(prev_logits) if "mask" in config.prompt else None
            pred = self.predictor.decode(feats, prompts_from_mask(prev_mask, config), shape2d, mask_input=use_logits,
                                         aspect=aspect)
            scores[index] = pred.iou
            if background is None:
                return pred.mask, pred.low_res
            return pred.mask & (raw[index] != background), pred.low_res

        def stop(index, mask):
            return content_stop(raw.pop(index), mask, scores.get(index, 1.0), looks, config)

        plan = PropagationPlan(self, obj.label, axis, [], {}, False, (), 0.0)
        progress.start(max(0, self.n_slices - len(seeds)))
        reasons: list[str] = []
        for index, mask, logits in walk(self.n_slices, seeds, seed_logits, stops, predict, config, stop, reasons):
            plan.edits.append(self._diff(obj, axis, index, mask, self.overwrite))
            plan.logits[(axis, index)] = logits
            progress.update(1)
            if progress.cancelled():
                plan.cancelled = True
                break
        if not plan.cancelled and config.direction == "both" and config.max_slices is None:
            # A re-propagation replaces the last one: the object's voxels on slices it no longer reaches (beyond
            # a new stop marker, or where the walk now stops earlier) are cleared, in the same undo step.
            reached = set(prompted) | {e.index for e in plan.edits}
            stale = [i for i in self._slices_with_label(obj.label) if i not in reached]
            for index in stale:
                plan.edits.append(self._diff(obj, axis, index, None, False))
                plan.logits[(axis, index)] = None
            if stale:
                reasons.append(f"cleared the object from {len(stale)} slice(s) an earlier propagation reached "
                               f"({stale[0]}..{stale[-1]})")
        plan.notes, plan.seconds = tuple(reasons), time.perf_counter() - t0
        return plan

    def apply(self, plan: PropagationPlan) -> Change:
        """Write a :meth:`plan_propagation` result (one undo step, even when nothing changed). A voxel is written
        only where the buffer still holds what the plan found, so labels painted meanwhile are kept."""
        if plan.owner is not self:
            raise InputError("this propagation was planned by another session; propagate again")
        t0 = time.perf_counter()
        obj = self.state.objects.setdefault(plan.label, ObjectState(plan.label))
        for edit in plan.edits:
            edits.apply(self._view(edit.axis, edit.index), edit)
        for key, logits in plan.logits.items():
            self._set_logits(obj, key, logits)
        self.state.undo.append(UndoStep(plan.label, "propagate", plan.edits))
        change = self._change(plan.label, plan.axis, plan.edits, t0)
        change.cancelled, change.notes = plan.cancelled, plan.notes
        change.seconds += plan.seconds
        return change

    def precompute(self, start: int | None = None, stop: int | None = None, axis: int | None = None,
                   progress: Progress | None = None) -> int:
        """Encode slices ``start:stop`` along ``axis`` in batches (cached ones are skipped); returns how many were
        encoded."""
        axis = self._axis(axis)
        indices = range(*slice(start, stop).indices(self.shape[axis]))
        jobs = [self._job(axis, i) for i in indices]
        return self.predictor.encode_many(jobs, progress, self.disk)

    def focus(self, index: int, axis: int | None = None) -> None:
        """Tell the session the user looks at slice ``index``: it and its neighbours are encoded in the background."""
        self._prefetch_around(self._axis(axis), index, include_self=True)

    def is_encoded(self, index: int, axis: int | None = None) -> bool:
        """Whether slice ``index`` along ``axis`` is cached, so a click on it only decodes."""
        axis = self._axis(axis)
        self._check_index(index, axis)
        return self.predictor.is_cached(self.slice_u8(index, axis), axis, index, self.disk, self.aspect(axis))

    def encode(self, index: int, axis: int | None = None) -> None:
        """Encode slice ``index`` along ``axis`` into the cache (a worker may run this)."""
        axis = self._axis(axis)
        self._check_index(index, axis)
        self.predictor.features(self.slice_u8(index, axis), axis, index, self.disk, self.aspect(axis))

    def close(self) -> None:
        """Drop this session's pending background prefetches (other sessions sharing the predictor keep theirs);
        a predictor the session made itself (it was given a bare model) is closed too."""
        if self._prefetching is not None:
            self._prefetching.cancel()
        if self._owns_predictor:
            self.predictor.close()

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

    def _check_index(self, index: int, axis: int) -> None:
        if not 0 <= int(index) < self.shape[axis]:
            raise InputError(f"slice {index} is outside 0..{self.shape[axis] - 1} along axis {axis}")

    def _view(self, axis: int, index: int) -> np.ndarray:
        return self._labels[slice_index(axis, index)]

    def _diff(self, obj: ObjectState, axis: int, index: int, mask: np.ndarray | None, overwrite: bool):
        """The edit writing ``mask`` (``None``: nothing) for ``obj`` on a slice, without writing it."""
        key, view = (axis, index), self._view(axis, index)
        mask = np.zeros(view.shape, bool) if mask is None else mask
        return edits.diff(view, mask, obj.label, overwrite, axis, index, obj.prompts.get(key), obj.logits.get(key))

    def _record(self, obj: ObjectState, axis: int, index: int, mask: np.ndarray | None, overwrite: bool):
        """:meth:`_diff`, written."""
        edit = self._diff(obj, axis, index, mask, overwrite)
        edits.apply(self._view(axis, index), edit)
        return edit

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
        if self._prefetching is not None:
            self._prefetching.cancel()  # the user moved on: this session's older prefetch is superseded
        self._prefetching = self.predictor.prefetch([self._job(axis, i) for i in order], self.disk)

    def _change(self, label: int, axis: int, slice_edits: list, t0: float) -> Change:
        bbox = None
        for e in slice_edits:
            if e.rows is not None:
                bbox = union_bbox(bbox, from_slice(slice(e.index, e.index + 1), e.rows, e.cols, e.axis))
        slices = tuple(sorted({e.index for e in slice_edits}))
        if self.is2d and bbox is not None:
            bbox = bbox[1:]
        return Change(label, axis, slices, bbox, sum(e.voxels for e in slice_edits), seconds=time.perf_counter() - t0)

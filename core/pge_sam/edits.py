"""Writing one object's mask into the caller's label buffer, and undoing it, without losing labels.

Write rule for object ``label`` on a slice: voxels in the new mask become
``label``; voxels that were ``label`` but are no longer in the mask become 0;
voxels of *other* labels are never changed unless ``overwrite`` is true.
Undo (:func:`revert`) restores a voxel only if it still holds the value this
edit wrote, and a write computed earlier (:func:`diff`, e.g. by a propagation
in a worker thread) is written by :func:`apply` only where the voxel still
holds what the edit found; either way, edits made to the buffer in between
are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import mask_bbox
from .prompts import SlicePrompts


@dataclass
class SliceEdit:
    """What one write changed on slice ``index`` along ``axis``.

    ``rows``/``cols``: the slice-pixel box of changed voxels; ``before`` and
    ``after``: label values in that box (same shape). ``prompts_before`` and
    ``logits_before``: the object's prompts and previous logits on that slice
    before the write (restored by undo).
    """

    axis: int
    index: int
    rows: slice | None
    cols: slice | None
    before: np.ndarray | None
    after: np.ndarray | None
    prompts_before: SlicePrompts | None
    logits_before: object

    @property
    def voxels(self) -> int:
        return 0 if self.before is None else int((self.before != self.after).sum())


def _target(view: np.ndarray, mask: np.ndarray, label: int, overwrite: bool) -> np.ndarray:
    current = view == label
    target = np.where(current & ~mask, 0, view)
    paint = mask if overwrite else (mask & ((view == 0) | current))
    return np.where(paint, label, target).astype(view.dtype, copy=False)


def write_mask(view: np.ndarray, mask: np.ndarray, label: int, overwrite: bool) -> tuple[slice, slice] | None:
    """Apply the write rule to a 2D label ``view`` (modified in place); returns the changed box or ``None``.

    ``view``: (H, W) integer array (a view into the caller's buffer);
    ``mask``: (H, W) bool.
    """
    target = _target(view, mask, label, overwrite)
    box = mask_bbox(target != view)
    if box is not None:
        view[box] = target[box]
    return box


def diff(view: np.ndarray, mask: np.ndarray, label: int, overwrite: bool, axis: int, index: int,
         prompts_before: SlicePrompts | None, logits_before) -> SliceEdit:
    """The :class:`SliceEdit` that writing ``mask`` into ``view`` would make, without writing (see :func:`apply`)."""
    target = _target(view, mask, label, overwrite)
    box = mask_bbox(target != view)
    if box is None:
        return SliceEdit(axis, index, None, None, None, None, prompts_before, logits_before)
    return SliceEdit(axis, index, box[0], box[1], view[box].copy(), target[box].copy(), prompts_before, logits_before)


def record(view: np.ndarray, mask: np.ndarray, label: int, overwrite: bool, axis: int, index: int,
           prompts_before: SlicePrompts | None, logits_before) -> SliceEdit:
    """:func:`write_mask` plus what undo needs."""
    edit = diff(view, mask, label, overwrite, axis, index, prompts_before, logits_before)
    if edit.before is not None:
        view[edit.rows, edit.cols] = edit.after
    return edit


def apply(view: np.ndarray, edit: SliceEdit) -> int:
    """Write ``edit`` on its slice ``view`` where the buffer still holds what the edit found (voxels changed since
    :func:`diff` made it are kept); the reverse of :func:`revert`. Returns voxels written."""
    return _swap(view, edit, edit.before, edit.after)


def revert(view: np.ndarray, edit: SliceEdit) -> int:
    """Undo ``edit`` on its slice ``view`` where the buffer still holds what the edit wrote; returns voxels restored."""
    return _swap(view, edit, edit.after, edit.before)


def _swap(view: np.ndarray, edit: SliceEdit, found: np.ndarray | None, written: np.ndarray | None) -> int:
    """Write ``written`` in ``edit``'s box where the slice still holds ``found`` and the two differ."""
    if edit.before is None:
        return 0
    region = view[edit.rows, edit.cols]
    mine = (region == found) & (found != written)
    region[mine] = written[mine]
    return int(mine.sum())

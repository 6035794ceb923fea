"""Slicing geometry: volume index (z, y, x) <-> slice (row, col) for a slicing axis.

A volume is indexed (Z, Y, X). Slicing along ``axis``:

======  =================  ==========  ==========
axis    slice              rows        cols
======  =================  ==========  ==========
0       ``vol[i, :, :]``   Y           X
1       ``vol[:, i, :]``   Z           X
2       ``vol[:, :, i]``   Z           Y
======  =================  ==========  ==========

SAM itself takes points as (x, y) = (col, row) in its resized input frame; that
last step is done by :class:`pge_sam.predictor.InputTransform`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError, PromptError

_IN_PLANE = {0: (1, 2), 1: (0, 2), 2: (0, 1)}


def check_axis(axis: int) -> int:
    if axis not in (0, 1, 2):
        raise InputError(f"slicing axis must be 0, 1 or 2 (got {axis!r})")
    return int(axis)


def in_plane_axes(axis: int) -> tuple[int, int]:
    """Volume axes that become (rows, cols) of a slice along ``axis``."""
    return _IN_PLANE[check_axis(axis)]


def slice_index(axis: int, i: int) -> tuple:
    """Index tuple selecting slice ``i`` along ``axis`` of a (Z, Y, X) volume."""
    index: list = [slice(None)] * 3
    index[check_axis(axis)] = int(i)
    return tuple(index)


def slice_shape(shape: tuple[int, int, int], axis: int) -> tuple[int, int]:
    """(rows, cols) of a slice along ``axis`` of a volume of ``shape`` (Z, Y, X)."""
    r, c = in_plane_axes(axis)
    return int(shape[r]), int(shape[c])


@dataclass(frozen=True)
class SlicePoint:
    """A point on one slice: slice number along the axis, row and column."""

    index: int
    row: int
    col: int


def format_point(point) -> str:
    """``(6, 7.5)`` for any sequence of numbers (numpy scalars included); ``repr`` for anything else."""
    try:
        return "(" + ", ".join(f"{float(v):g}" for v in point) + ")"
    except (TypeError, ValueError):
        return repr(point)


def to_slice_point(point_zyx, shape: tuple[int, int, int], axis: int) -> SlicePoint:
    """Convert a volume index (z, y, x) to a :class:`SlicePoint`, checking bounds.

    Coordinates are rounded to the nearest voxel (``floor(v + 0.5)``).
    """
    p = np.asarray(point_zyx, dtype=np.float64).reshape(-1)
    if p.shape != (3,) or not np.isfinite(p).all():
        raise PromptError(f"a point must be three finite numbers (z, y, x); got {format_point(point_zyx)}")
    q = np.floor(p + 0.5).astype(int)
    for name, v, n in zip("zyx", q, shape):
        if not 0 <= v < n:
            raise PromptError(
                f"point {format_point(p)} is outside the volume of shape {tuple(shape)} ({name}={v} not in [0, {n - 1}]); "
                "click inside the image"
            )
    r, c = in_plane_axes(axis)
    return SlicePoint(int(q[axis]), int(q[r]), int(q[c]))


def from_slice(index: int, rows: slice | int, cols: slice | int, axis: int) -> tuple:
    """Volume index tuple (z, y, x) from a slice number and in-plane row/col indices or slices."""
    out: list = [None, None, None]
    r, c = in_plane_axes(axis)
    out[axis], out[r], out[c] = index, rows, cols
    return tuple(out)


def mask_bbox(mask: np.ndarray) -> tuple[slice, slice] | None:
    """Tight (rows, cols) bounding box of a 2D boolean mask as half-open slices; ``None`` if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def union_bbox(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    """Smallest box (tuple of half-open slices) containing both ``a`` and ``b``."""
    if a is None:
        return b
    if b is None:
        return a
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))

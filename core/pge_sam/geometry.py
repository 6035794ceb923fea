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
                f"point {format_point(p)} is outside the volume of shape {tuple(shape)} "
                f"({name}={v} not in [0, {n - 1}]); "
                "click inside the image"
            )
    r, c = in_plane_axes(axis)
    return SlicePoint(int(q[axis]), int(q[r]), int(q[c]))


def locate(point, image_shape: tuple[int, ...], axis: int = 0) -> SlicePoint:
    """:class:`SlicePoint` of an image point: (z, y, x) in a (Z, Y, X) volume, (row, col) in an (H, W) image.

    The one bounds check of every prompt (:class:`PromptError` when outside or malformed).
    """
    shape = tuple(int(s) for s in image_shape)
    try:
        p = tuple(point)
    except TypeError:
        p = ()
    if len(shape) == 2:
        if len(p) != 2:
            raise PromptError(f"a point on a 2D image is (row, col); got {format_point(point)}")
        return to_slice_point((0,) + p, (1,) + shape, 0)
    if len(p) != 3:
        raise PromptError(f"a point in a volume is (z, y, x); got {format_point(point)}")
    return to_slice_point(p, shape, axis)


def clip_box(corner_a, corner_b, image_shape: tuple[int, ...], axis: int = 0) -> tuple[tuple[float, ...], ...]:
    """(low, high) corners of a box drawn from ``corner_a`` to ``corner_b`` (image points on one slice along
    ``axis``), clipped in-plane to the image, as front-ends take rectangles dragged past the image's edge.

    :class:`PromptError` when a corner is malformed or the box lies wholly outside the image.
    """
    nd = len(image_shape)
    a = np.asarray(corner_a, dtype=float).reshape(-1)
    b = np.asarray(corner_b, dtype=float).reshape(-1)
    if a.shape != (nd,) or b.shape != (nd,) or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise PromptError(f"a box needs two finite corners with {nd} coordinates each")
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    for d in [d for d in range(nd) if nd == 2 or d != axis]:
        size = float(image_shape[d])
        if hi[d] < -0.5 or lo[d] > size - 0.5:
            raise PromptError("the box lies outside the image; draw it over the image")
        lo[d], hi[d] = max(lo[d], 0.0), min(hi[d], size - 1)
    return tuple(lo.tolist()), tuple(hi.tolist())


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

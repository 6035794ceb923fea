"""Click simulator for interactive segmentation (RITM / SimpleClick convention).

Rules (all arrays are ``(H, W)`` = (rows, cols)):

* **First click** (``pred is None``): positive, at the pixel of the ground
  truth farthest from its boundary, i.e. the maximum of the Euclidean distance
  transform of the mask padded by one background pixel, so the image border
  counts as boundary.
* **Later clicks**: the errors of the current prediction are split into
  4-connected components of false negatives (``gt & ~pred``) and of false
  positives (``pred & ~gt``). The click goes into the largest component (by
  pixel count), at its pixel farthest from the component's boundary (same
  padded distance transform); positive for a false-negative component,
  negative for a false-positive one. An empty prediction is therefore answered
  like a first click when the ground truth is one component.
* A perfect prediction has no error: :func:`next_click` returns ``None``.

Ties are broken deterministically: between components of equal area a false
negative wins, then the component whose first pixel comes first in row-major
order; between pixels of equal distance the first in row-major order wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Click:
    """A simulated click at pixel ``(row, col)``; ``positive`` adds to the object, negative removes."""

    row: int
    col: int
    positive: bool


def _as_mask(array, what: str) -> np.ndarray:
    mask = np.asarray(array)
    if mask.ndim != 2:
        raise InputError(f"{what} must be a 2D (H, W) mask (got shape {mask.shape})")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise InputError(f"{what} must be boolean or 0/1 (got values outside {{0, 1}})")
        mask = mask.astype(bool)
    return mask


def farthest_point(region: np.ndarray) -> tuple[int, int]:
    """``(row, col)`` of the pixel of bool ``region`` (H, W) farthest from its boundary (image border included).

    Distances are Euclidean (``scipy.ndimage.distance_transform_edt`` on the
    region padded with one background pixel); ties go to the first pixel in
    row-major order. ``region`` must not be empty.
    """
    from scipy import ndimage as ndi

    if not region.any():
        raise InputError("cannot place a click in an empty region")
    distance = ndi.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(distance)), region.shape)
    return int(row), int(col)


def _largest_component(mask: np.ndarray) -> tuple[int, np.ndarray | None]:
    """(area, mask) of the largest 4-connected component of bool ``mask``; ``(0, None)`` when empty.

    ``ndi.label`` numbers components in row-major order of their first pixel,
    so ``argmax`` picks the earliest of equally large components.
    """
    from scipy import ndimage as ndi

    labels, count = ndi.label(mask)
    if count == 0:
        return 0, None
    areas = np.bincount(labels.ravel())[1:]
    best = int(np.argmax(areas))
    return int(areas[best]), labels == best + 1


def next_click(gt, pred=None) -> Click | None:
    """The next simulated click for ground truth ``gt`` given the current prediction ``pred``.

    ``gt``: bool (or 0/1) ``(H, W)``, not empty. ``pred``: bool ``(H, W)`` or
    ``None`` for the first click. Returns a :class:`Click`, or ``None`` when
    ``pred`` equals ``gt`` (nothing left to correct). Raises
    :class:`~pge_sam.errors.InputError` on empty ground truth or shape mismatch.
    """
    gt = _as_mask(gt, "ground truth")
    if not gt.any():
        raise InputError("the ground-truth mask is empty; a target needs at least one foreground pixel")
    if pred is None:
        row, col = farthest_point(gt)
        return Click(row, col, True)
    pred = _as_mask(pred, "prediction")
    if pred.shape != gt.shape:
        raise InputError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    fn_area, fn_region = _largest_component(gt & ~pred)
    fp_area, fp_region = _largest_component(pred & ~gt)
    if fn_region is None and fp_region is None:
        return None
    positive = fn_region is not None and fn_area >= fp_area
    row, col = farthest_point(fn_region if positive else fp_region)
    return Click(row, col, positive)

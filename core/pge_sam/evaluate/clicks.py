"""Click simulator for interactive segmentation, after the convention of RITM (Sofiiuk et al. 2022).

Rules (all arrays are ``(H, W)`` = (rows, cols)):

* **First click** (``pred is None``): positive, at the pixel of the ground
  truth farthest from its boundary, i.e. the maximum of the Euclidean distance
  transform of the mask padded by one background pixel, so the image border
  counts as boundary.
* **Later clicks**: over *all* false negatives (``gt & ~pred``) and over
  *all* false positives (``pred & ~gt``), the Euclidean distance of each error
  pixel to the nearest non-error pixel of its kind (same padded transform).
  The click goes to the error pixel with the largest distance: positive if it
  is a false negative, negative if it is a false positive (a false negative
  wins a tie). So a click lands deep inside the largest error *region*, not in
  the error component with the most pixels (a long thin sliver loses to a
  compact blob of the same area).
* **Never twice on one pixel**: pixels in ``clicked`` (the clicks so far) are
  excluded; when every error pixel has been clicked already, the simulator
  gives up (``None``), as a user would.
* A perfect prediction has no error: :func:`next_click` returns ``None``.

Ties between pixels of equal distance go to the first in row-major order.
Each method in the benchmark gets its clicks from its own errors (the usual
closed loop); only the first click is shared by all methods.
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


def _depth(region: np.ndarray) -> np.ndarray:
    """Distance of each pixel of bool ``region`` (H, W) to the nearest pixel outside it (border counts as outside)."""
    from scipy import ndimage as ndi

    return ndi.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def next_click(gt, pred=None, clicked=None) -> Click | None:
    """The next simulated click for ground truth ``gt`` given the current prediction ``pred``.

    ``gt``: bool (or 0/1) ``(H, W)``, not empty. ``pred``: bool ``(H, W)`` or
    ``None`` for the first click. ``clicked``: the ``(row, col)`` pixels
    clicked so far (never clicked again). Returns a :class:`Click`, or
    ``None`` when ``pred`` equals ``gt`` or every error pixel was clicked.
    Raises :class:`~pge_sam.errors.InputError` on empty ground truth or shape mismatch.
    """
    gt = _as_mask(gt, "ground truth")
    if not gt.any():
        raise InputError("the ground-truth mask is empty; a target needs at least one foreground pixel")
    taken = np.zeros(gt.shape, bool)
    for row, col in clicked or ():
        taken[int(row), int(col)] = True
    if pred is None:
        depth = np.where(taken, 0.0, _depth(gt))
        if depth.max() <= 0:
            return None
        row, col = np.unravel_index(int(np.argmax(depth)), gt.shape)
        return Click(int(row), int(col), True)
    pred = _as_mask(pred, "prediction")
    if pred.shape != gt.shape:
        raise InputError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    fn = np.where(taken, 0.0, _depth(gt & ~pred))
    fp = np.where(taken, 0.0, _depth(pred & ~gt))
    best_fn, best_fp = fn.max(), fp.max()
    if best_fn <= 0 and best_fp <= 0:
        return None
    positive = best_fn >= best_fp
    row, col = np.unravel_index(int(np.argmax(fn if positive else fp)), gt.shape)
    return Click(int(row), int(col), positive)

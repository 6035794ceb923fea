"""Changed-region arithmetic for writing session labels into Slicer segments (pure numpy).

The core session writes into a caller-owned label buffer ``labels`` of shape
(K, J, I) == (Z, Y, X), dtype uint16 (0 = background, n = object n), and
returns a bounding box of the voxels it changed: a tuple of three half-open
Python slices in (K, J, I) order.

How the module writes only that region into a ``vtkMRMLSegmentationNode``
(the Slicer-bound half is ``writeRegion`` in ``PGESAMSlicerLib/nodes.py``):

1. :func:`plan_region_update` cuts, for every segment the session owns, the
   binary sub-array ``labels[bbox] == label`` (uint8, shape (dk, dj, di),
   C-contiguous) and the VTK extent of the box.
2. A ``vtkOrientedImageData`` is allocated with exactly that extent
   (``SetExtent(i0, i1, j0, j1, k0, k1)``, inclusive bounds) and the volume's
   IJK->RAS matrix (``SetImageToWorldMatrix``). VTK stores voxels with I
   fastest, then J, then K, which is the memory order of a C-contiguous
   (K, J, I) numpy array, so the sub-array is copied in with one flat write.
3. ``vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(image,
   segmentationNode, segmentId, MODE_REPLACE, extent)`` replaces the segment
   inside ``extent`` only; voxels outside it are left untouched. Because the
   image's geometry equals the segmentation's reference geometry (the volume),
   no resampling happens.

``slicer.util.updateSegmentBinaryLabelmapFromArray`` is not used: it takes the
whole volume and re-imports every voxel on each click.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

Bbox = tuple[slice, slice, slice]
"""Half-open box in (K, J, I) == (Z, Y, X) order, e.g. ``(slice(3, 4), slice(10, 40), slice(5, 60))``."""


class RegionError(ValueError):
    """Invalid bounding box, extent or label array."""


def _shape3(shape_kji: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape_kji)
    if len(shape) != 3 or min(shape) < 1:
        raise RegionError(f"a volume shape needs 3 positive sizes (K, J, I), got {tuple(shape_kji)}.")
    return shape  # type: ignore[return-value]


def normalize_bbox(bbox: Sequence[slice], shape_kji: Sequence[int]) -> Bbox:
    """Validate a (K, J, I) box against a volume shape and fill ``None`` bounds.

    Returns:
        three slices with integer ``start <= stop`` inside ``[0, size]`` and step ``None``.

    Raises:
        RegionError: wrong length, a step other than 1, negative or reversed
            bounds, or bounds beyond the volume.
    """
    shape = _shape3(shape_kji)
    if len(bbox) != 3 or not all(isinstance(s, slice) for s in bbox):
        raise RegionError(f"a bounding box must be 3 slices in (K, J, I) order, got {bbox!r}.")
    out = []
    for axis, (s, size) in enumerate(zip(bbox, shape)):
        if s.step not in (None, 1):
            raise RegionError(f"bounding-box slices must have step 1; axis {axis} has step {s.step}.")
        start = 0 if s.start is None else int(s.start)
        stop = size if s.stop is None else int(s.stop)
        if not 0 <= start <= stop <= size:
            raise RegionError(f"bounding box {bbox!r} does not fit a volume of shape (K, J, I) = {shape} "
                              f"on axis {axis}; the core must return half-open bounds inside the volume.")
        out.append(slice(start, stop))
    return tuple(out)  # type: ignore[return-value]


def bbox_is_empty(bbox: Sequence[slice]) -> bool:
    """True when any axis of a normalized box has no voxels."""
    return any(s.stop <= s.start for s in bbox)


def bbox_to_vtk_extent(bbox: Sequence[slice]) -> tuple[int, int, int, int, int, int]:
    """(K, J, I) half-open box -> VTK extent ``(i0, i1, j0, j1, k0, k1)`` with inclusive bounds."""
    if len(bbox) != 3 or bbox_is_empty(bbox):
        raise RegionError(f"cannot make a VTK extent from an empty or malformed box {bbox!r}.")
    k, j, i = bbox
    return (int(i.start), int(i.stop) - 1, int(j.start), int(j.stop) - 1, int(k.start), int(k.stop) - 1)


def vtk_extent_to_bbox(extent: Sequence[int]) -> Bbox:
    """VTK extent ``(i0, i1, j0, j1, k0, k1)`` (inclusive) -> (K, J, I) half-open box."""
    e = [int(v) for v in extent]
    if len(e) != 6 or e[1] < e[0] or e[3] < e[2] or e[5] < e[4]:
        raise RegionError(f"a VTK extent needs 6 values with min <= max on each axis, got {tuple(extent)}.")
    return slice(e[4], e[5] + 1), slice(e[2], e[3] + 1), slice(e[0], e[1] + 1)


def bbox_from_change(change: object, shape_kji: Sequence[int]) -> Bbox | None:
    """The box a core ``Change`` reports, normalized; ``None`` when the object carries no ``bbox``.

    ``change`` may be a core ``Change`` (attribute ``bbox``), a bare tuple of 3
    slices, or anything else (e.g. ``None`` from a verb that returns nothing).
    """
    bbox = getattr(change, "bbox", None)
    if bbox is None and isinstance(change, tuple) and len(change) == 3 and all(isinstance(s, slice) for s in change):
        bbox = change
    return None if bbox is None else normalize_bbox(bbox, shape_kji)


def segment_region(labels: np.ndarray, bbox: Sequence[slice], label_id: int) -> np.ndarray:
    """Binary mask ``labels[bbox] == label_id``: uint8 (dk, dj, di), C-contiguous, values 0/1."""
    if labels.ndim != 3:
        raise RegionError(f"labels must be a 3D (K, J, I) array, got shape {labels.shape}.")
    box = normalize_bbox(bbox, labels.shape)
    return np.ascontiguousarray(labels[box] == label_id, dtype=np.uint8)


@dataclass(frozen=True)
class RegionUpdate:
    """What to write into the segmentation for one changed box.

    Attributes:
        bbox: normalized (K, J, I) half-open box.
        extent: VTK extent ``(i0, i1, j0, j1, k0, k1)`` of ``bbox`` (inclusive).
        masks: label id -> uint8 (dk, dj, di) 0/1 mask of that label inside ``bbox``.
    """

    bbox: Bbox
    extent: tuple[int, int, int, int, int, int]
    masks: dict[int, np.ndarray]


def plan_region_update(labels: np.ndarray, bbox: Sequence[slice], label_ids: Iterable[int]) -> RegionUpdate | None:
    """Masks of every listed label inside ``bbox``; ``None`` when the box is empty.

    All labels are cut, not only the one being edited: a new object may take
    voxels from an earlier one, and that segment must lose them too.
    """
    box = normalize_bbox(bbox, labels.shape)
    if bbox_is_empty(box):
        return None
    ids = sorted({int(v) for v in label_ids})
    if any(v <= 0 for v in ids):
        raise RegionError(f"label ids must be positive (0 is background), got {ids}.")
    masks = {v: segment_region(labels, box, v) for v in ids}
    return RegionUpdate(bbox=box, extent=bbox_to_vtk_extent(box), masks=masks)

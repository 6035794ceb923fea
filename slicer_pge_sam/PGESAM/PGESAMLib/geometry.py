"""Voxel geometry for the PGESAM Slicer module (pure numpy, no Slicer import).

Conventions
-----------
* **RAS** is Slicer's patient coordinate system (Right, Anterior, Superior), in
  millimetres. ITK/SimpleITK/DICOM use **LPS**; ``RAS = diag(-1, -1, 1) @ LPS``.
* **IJK** is a continuous voxel coordinate ``(i, j, k)`` = (column, row, slice)
  of a volume node; voxel *centres* sit at integer IJK values.
* ``slicer.util.arrayFromVolume`` returns arrays in **(K, J, I)** order. The
  pge-sam core uses **(Z, Y, X)** for volumes. These are the *same* order:
  Z == K (slowest axis), Y == J, X == I (fastest axis), so a KJI index is passed
  to the core unchanged (see :func:`kji_to_zyx`).
* ``ijk_to_ras`` is the volume node's 4x4 IJK->RAS matrix (direction, spacing
  and origin; ``vtkMRMLVolumeNode.GetIJKToRASMatrix``). ``parent_to_world`` is
  the 4x4 matrix of the volume's parent transform (local RAS -> world RAS), or
  ``None`` when the volume is not transformed. Markups and slice views live in
  world RAS, so world -> IJK uses ``inv(parent_to_world @ ijk_to_ras)``.

Rounding rule: a continuous coordinate ``x`` belongs to voxel ``floor(x + 0.5)``
(nearest voxel centre, ties upward), so voxel ``v`` covers ``[v - 0.5, v + 0.5)``
on every axis. Every conversion in this module uses this one rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_VIEW_TOLERANCE_DEG = 0.5
"""Largest angle (degrees) between a volume axis and a view plane that still
counts as "in the plane" in :func:`slice_axis_for_view`. Slicer's standard
Axial/Sagittal/Coronal views and "Rotate to volume plane" are exact up to
floating-point error, so half a degree only absorbs rounding in stored
direction matrices; a deliberately tilted view is refused."""

DEFAULT_PLANE_TOLERANCE_MM = 0.01
"""Distance (mm) under which a point counts as lying on a slice view's plane."""

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
"""3x3 matrix turning an LPS vector into RAS (it is its own inverse)."""

KJI_AXIS_NAMES = ("K", "J", "I")


class GeometryError(ValueError):
    """Invalid geometry input (matrix, point array, view)."""


class PointOutsideVolumeError(GeometryError):
    """A prompt point (or box) falls outside the volume's voxel grid."""


class ObliqueViewError(GeometryError):
    """A slice view does not show one array slice of the volume."""


def _as_matrix4(matrix: object, name: str) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise GeometryError(f"{name} must be a 4x4 matrix, got shape {m.shape}.")
    if not np.all(np.isfinite(m)):
        raise GeometryError(f"{name} contains NaN or infinite values.")
    if not np.allclose(m[3], (0.0, 0.0, 0.0, 1.0), atol=1e-9):
        raise GeometryError(f"{name} must be affine (last row 0 0 0 1), got last row {m[3].tolist()}.")
    if abs(np.linalg.det(m[:3, :3])) < 1e-12:
        raise GeometryError(f"{name} is singular; check the volume spacing and direction.")
    return m


def _as_points(points: object, name: str) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != 3:
        raise GeometryError(f"{name} must have shape (N, 3) or (3,), got {np.shape(points)}.")
    if not np.all(np.isfinite(p)):
        raise GeometryError(f"{name} contains NaN or infinite values.")
    return p


def ijk_to_ras_matrix(origin_ras: Sequence[float], spacing: Sequence[float],
                      direction_ras: object) -> np.ndarray:
    """Build the 4x4 IJK->RAS matrix of a volume.

    Args:
        origin_ras: (3,) RAS position (mm) of the centre of voxel IJK = (0, 0, 0).
        spacing: (3,) voxel size (mm) along I, J, K; all > 0.
        direction_ras: (3, 3) matrix whose columns are the unit RAS directions of
            the I, J and K axes (Slicer's ``GetIJKToRASDirections``).

    Returns:
        (4, 4) float64 matrix ``M`` with ``M @ [i, j, k, 1] = [r, a, s, 1]``.
    """
    origin = np.asarray(origin_ras, dtype=np.float64).reshape(-1)
    sp = np.asarray(spacing, dtype=np.float64).reshape(-1)
    d = np.asarray(direction_ras, dtype=np.float64)
    if origin.shape != (3,) or sp.shape != (3,) or d.shape != (3, 3):
        raise GeometryError("origin and spacing need 3 values and direction a 3x3 matrix; got shapes "
                            f"{origin.shape}, {sp.shape}, {d.shape}.")
    if not np.all(sp > 0) or not np.all(np.isfinite(sp)):
        raise GeometryError(f"spacing must be positive and finite, got {sp.tolist()}.")
    norms = np.linalg.norm(d, axis=0)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise GeometryError("direction columns must be unit vectors (pass the voxel size as spacing); "
                            f"column lengths are {norms.tolist()}.")
    m = np.eye(4)
    m[:3, :3] = d * sp[None, :]
    m[:3, 3] = origin
    return _as_matrix4(m, "IJK-to-RAS matrix")


def ijk_to_ras_matrix_from_lps(origin_lps: Sequence[float], spacing: Sequence[float],
                               direction_lps: object) -> np.ndarray:
    """Build the 4x4 IJK->RAS matrix from ITK/SimpleITK/DICOM geometry, which is in LPS.

    Args:
        origin_lps: (3,) LPS position (mm) of voxel (0, 0, 0) (``image.GetOrigin()``).
        spacing: (3,) voxel size (mm) along I, J, K (``image.GetSpacing()``).
        direction_lps: (9,) row-major or (3, 3) direction matrix whose columns
            are the LPS directions of I, J, K (``image.GetDirection()``).

    Returns:
        (4, 4) float64 IJK->RAS matrix: ``RAS = diag(-1, -1, 1) @ LPS`` applied
        to the origin and to each direction column.
    """
    d = np.asarray(direction_lps, dtype=np.float64)
    if d.size != 9:
        raise GeometryError(f"direction_lps needs 9 values (a 3x3 matrix), got {d.size}.")
    o = np.asarray(origin_lps, dtype=np.float64).reshape(-1)
    if o.shape != (3,):
        raise GeometryError(f"origin_lps needs 3 values, got {o.shape[0]}.")
    return ijk_to_ras_matrix(LPS_TO_RAS @ o, spacing, LPS_TO_RAS @ d.reshape(3, 3))


def ijk_to_world_matrix(ijk_to_ras: object, parent_to_world: object | None = None) -> np.ndarray:
    """Compose ``parent_to_world @ ijk_to_ras``: (4, 4) float64 IJK -> world RAS."""
    m = _as_matrix4(ijk_to_ras, "ijk_to_ras")
    if parent_to_world is None:
        return m
    return _as_matrix4(parent_to_world, "parent_to_world") @ m


def ijk_to_ras(points_ijk: object, ijk_to_ras: object, parent_to_world: object | None = None) -> np.ndarray:
    """Map continuous IJK coordinates (N, 3) (i, j, k order) to world RAS (N, 3) float64."""
    p = _as_points(points_ijk, "points_ijk")
    w = ijk_to_world_matrix(ijk_to_ras, parent_to_world)
    return p @ w[:3, :3].T + w[:3, 3]


def ras_to_ijk(points_ras: object, ijk_to_ras: object, parent_to_world: object | None = None) -> np.ndarray:
    """Map world RAS points to continuous IJK coordinates.

    Args:
        points_ras: (N, 3) or (3,) world RAS positions in mm (e.g. markups
            ``GetNthControlPointPositionWorld``).
        ijk_to_ras: (4, 4) IJK->RAS matrix of the volume (local frame).
        parent_to_world: (4, 4) parent transform of the volume (local RAS ->
            world RAS) or ``None``.

    Returns:
        (N, 3) float64 continuous (i, j, k); voxel centres are integers.
    """
    p = _as_points(points_ras, "points_ras")
    w_inv = np.linalg.inv(ijk_to_world_matrix(ijk_to_ras, parent_to_world))
    return p @ w_inv[:3, :3].T + w_inv[:3, 3]


def nearest_voxel(coords: object) -> np.ndarray:
    """Round continuous voxel coordinates with the module's rule ``floor(x + 0.5)``; same shape, int64."""
    c = np.asarray(coords, dtype=np.float64)
    return np.floor(c + 0.5).astype(np.int64)


def check_kji_in_bounds(kji: object, shape_kji: Sequence[int]) -> np.ndarray:
    """``kji`` as an (N, 3) int64 array; ``PointOutsideVolumeError`` if an index is outside ``shape_kji``."""
    idx = np.asarray(kji, dtype=np.int64).reshape(-1, 3)
    shape = tuple(int(s) for s in shape_kji)
    if len(shape) != 3:
        raise GeometryError(f"shape_kji must have 3 entries (K, J, I), got {shape}.")
    outside = np.any((idx < 0) | (idx >= np.asarray(shape)), axis=1)
    if np.any(outside):
        n = int(np.flatnonzero(outside)[0])
        raise PointOutsideVolumeError(
            f"Point {n} falls at voxel (K, J, I) = {tuple(int(v) for v in idx[n])}, outside the volume of shape "
            f"(K, J, I) = {shape}. Place the point inside the volume (check that the right volume is selected).")
    return idx


def ijk_to_kji_index(ijk: object, shape_kji: Sequence[int] | None = None) -> np.ndarray:
    """Nearest-voxel (N, 3) int64 (k, j, i) == core (z, y, x) index (``floor(x + 0.5)``) of continuous (N, 3) or
    (3,) (i, j, k) coordinates; with ``shape_kji`` (K, J, I), an index outside it raises ``PointOutsideVolumeError``."""
    c = _as_points(ijk, "ijk")
    idx = nearest_voxel(c[:, ::-1])
    if shape_kji is not None:
        check_kji_in_bounds(idx, shape_kji)
    return idx


def kji_to_zyx(index: Sequence[int]) -> tuple[int, int, int]:
    """Slicer array index (k, j, i) -> core index (z, y, x): the same numbers, as Python ints."""
    vals = tuple(int(v) for v in np.asarray(index).reshape(-1))
    if len(vals) != 3:
        raise GeometryError(f"an array index needs 3 values (k, j, i), got {len(vals)}.")
    return vals  # type: ignore[return-value]


def zyx_to_kji(index: Sequence[int]) -> tuple[int, int, int]:
    """Core index (z, y, x) -> Slicer array index (k, j, i): the same numbers, as Python ints."""
    return kji_to_zyx(index)


def kji_spacing(ijk_to_ras: object, parent_to_world: object | None = None) -> tuple[float, float, float]:
    """World voxel size (mm) along K, J, I (core spacing order (sz, sy, sx))."""
    w = ijk_to_world_matrix(ijk_to_ras, parent_to_world)
    si, sj, sk = np.linalg.norm(w[:3, :3], axis=0)
    return float(sk), float(sj), float(si)


def slice_axis_for_view(slice_to_ras: object, ijk_to_ras: object, parent_to_world: object | None = None,
                        tolerance_deg: float = DEFAULT_VIEW_TOLERANCE_DEG) -> int:
    """Array axis (0 = K, 1 = J, 2 = I) whose slices a slice view displays.

    The answer comes from geometry, not from the view's name: a view shows one
    array slice exactly when its plane contains two of the volume's IJK axes
    (in world RAS). The remaining axis is the slicing axis; KJI axis = 2 - IJK axis.

    Args:
        slice_to_ras: (4, 4) ``vtkMRMLSliceNode.GetSliceToRAS()``; column 2 is the
            view normal in world RAS.
        ijk_to_ras: (4, 4) volume IJK->RAS matrix.
        parent_to_world: (4, 4) volume parent transform or ``None``.
        tolerance_deg: largest angle between an in-plane volume axis and the
            view plane (see :data:`DEFAULT_VIEW_TOLERANCE_DEG`).

    Raises:
        ObliqueViewError: if no IJK axis pair lies in the view plane within tolerance.
    """
    s = _as_matrix4(slice_to_ras, "slice_to_ras")
    normal = s[:3, 2] / np.linalg.norm(s[:3, 2])
    w = ijk_to_world_matrix(ijk_to_ras, parent_to_world)[:3, :3]
    axes = w / np.linalg.norm(w, axis=0, keepdims=True)
    cos = np.abs(axes.T @ normal)  # |cos| of angle between the normal and the I, J, K axes
    off_plane = np.array([max(cos[b] for b in range(3) if b != a) for a in range(3)])
    best = int(np.argmin(off_plane))
    worst_deg = math.degrees(math.asin(min(1.0, float(off_plane[best]))))
    if worst_deg > tolerance_deg:
        raise ObliqueViewError(
            f"This slice view is oblique to the volume: its plane is {worst_deg:.2f} degrees away from the "
            f"nearest volume slice (tolerance {tolerance_deg} degrees). Reset the view to Axial, Sagittal or "
            "Coronal, or use 'Rotate to volume plane' in the view's controller, then place the prompt again.")
    return 2 - best


def distance_to_slice_plane(points_ras: object, slice_to_ras: object) -> np.ndarray:
    """Unsigned distance (mm) of world RAS points (N, 3) to a slice view's plane; (N,) float64."""
    p = _as_points(points_ras, "points_ras")
    s = _as_matrix4(slice_to_ras, "slice_to_ras")
    normal = s[:3, 2] / np.linalg.norm(s[:3, 2])
    return np.abs((p - s[:3, 3]) @ normal)


def views_containing_point(point_ras: object, views: Mapping[str, object],
                           tolerance_mm: float = DEFAULT_PLANE_TOLERANCE_MM) -> list[str]:
    """Names of the views (name -> (4, 4) SliceToRAS) whose plane passes within ``tolerance_mm`` of one world RAS point.

    A point placed by clicking in a slice view lies exactly on that view's plane;
    the result keeps the mapping's order.
    """
    p = _as_points(point_ras, "point_ras")
    if p.shape[0] != 1:
        raise GeometryError(f"point_ras must be a single point, got {p.shape[0]}.")
    return [name for name, m in views.items() if float(distance_to_slice_plane(p, m)[0]) <= tolerance_mm]


def box_corners(center: Sequence[float], axes: object, size: Sequence[float]) -> np.ndarray:
    """The 8 corners (8, 3) of an oriented box.

    Args:
        center: (3,) box centre.
        axes: (3, 3) matrix whose columns are the box's unit axis directions
            (an ROI's ``GetAxisWorld(0..2)``).
        size: (3,) side lengths along those axes (an ROI's ``GetSizeWorld``).
    """
    c = np.asarray(center, dtype=np.float64).reshape(3)
    a = np.asarray(axes, dtype=np.float64).reshape(3, 3)
    half = np.asarray(size, dtype=np.float64).reshape(3) / 2.0
    if np.any(half < 0):
        raise GeometryError(f"box size must be >= 0, got {list(size)}.")
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    return c + (signs * half) @ a.T


def thinnest_axis(corners_kji: object) -> int:
    """KJI axis along which continuous KJI corner points (N, 3) span the fewest voxels."""
    c = _as_points(corners_kji, "corners_kji")
    return int(np.argmin(np.ptp(c, axis=0)))


def box_from_kji_corners(corners_kji: object, axis: int, shape_kji: Sequence[int],
                         slice_index: int | None = None) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Turn a 3D box (e.g. the 8 corners of an ROI) into a 2D box prompt on one slice.

    Args:
        corners_kji: (N, 3) continuous (k, j, i) coordinates of the box corners.
        axis: slicing axis in KJI order (0, 1 or 2).
        shape_kji: volume shape (K, J, I).
        slice_index: slice along ``axis``; default: nearest voxel of the corners' mean.

    Returns:
        ``(start, stop)`` inclusive (k, j, i) voxel corners with
        ``start[axis] == stop[axis] == slice_index``; in-plane bounds are rounded
        with ``floor(x + 0.5)`` and clipped to the volume.

    Raises:
        PointOutsideVolumeError: if the box does not overlap the volume in-plane
            or the slice is outside the volume.
    """
    c = _as_points(corners_kji, "corners_kji")
    if axis not in (0, 1, 2):
        raise GeometryError(f"axis must be 0, 1 or 2 (K, J, I), got {axis!r}.")
    shape = np.asarray([int(v) for v in shape_kji], dtype=np.int64)
    lo = nearest_voxel(c.min(axis=0))
    hi = nearest_voxel(c.max(axis=0))
    in_plane = [a for a in range(3) if a != axis]
    if np.any(hi[in_plane] < 0) or np.any(lo[in_plane] >= shape[in_plane]):
        raise PointOutsideVolumeError("The box does not overlap the volume; draw it over the image.")
    lo = np.clip(lo, 0, shape - 1)
    hi = np.clip(hi, 0, shape - 1)
    s = int(nearest_voxel(c[:, axis].mean())) if slice_index is None else int(slice_index)
    if not 0 <= s < shape[axis]:
        raise PointOutsideVolumeError(
            f"Slice {s} along {KJI_AXIS_NAMES[axis]} is outside the volume ({int(shape[axis])} slices).")
    lo[axis] = hi[axis] = s
    return kji_to_zyx(lo), kji_to_zyx(hi)


@dataclass(frozen=True, eq=False)
class VolumeGeometry:
    """Where a (K, J, I) voxel array sits in world RAS: ``ijk_to_ras`` (4, 4) (direction, spacing, origin; e.g.
    ``vtkMRMLVolumeNode.GetIJKToRASMatrix``), ``shape_kji`` == core (Z, Y, X) and the linear parent transform
    ``parent_to_world`` (4, 4) (local RAS -> world RAS) or ``None``. Invalid matrices raise ``GeometryError``."""

    ijk_to_ras: np.ndarray
    shape_kji: tuple[int, int, int]
    parent_to_world: np.ndarray | None = None

    def __post_init__(self) -> None:
        m = ijk_to_world_matrix(self.ijk_to_ras)  # validates: 4x4, affine, finite, invertible
        p = None if self.parent_to_world is None else ijk_to_world_matrix(self.parent_to_world)
        shape = tuple(int(s) for s in self.shape_kji)
        if len(shape) != 3 or min(shape) < 1:
            raise GeometryError(f"shape_kji needs 3 positive sizes (K, J, I), got {tuple(self.shape_kji)}.")
        object.__setattr__(self, "ijk_to_ras", m)
        object.__setattr__(self, "parent_to_world", p)
        object.__setattr__(self, "shape_kji", shape)

    @classmethod
    def from_lps(cls, origin_lps: Sequence[float], spacing: Sequence[float], direction_lps: object,
                 shape_kji: Sequence[int], parent_to_world: object | None = None) -> VolumeGeometry:
        """Geometry from ITK/SimpleITK values (LPS origin, (I, J, K) spacing, 9 direction values)."""
        m = ijk_to_ras_matrix_from_lps(origin_lps, spacing, direction_lps)
        return cls(m, tuple(shape_kji), parent_to_world)  # type: ignore[arg-type]

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """World voxel size (mm) in core order (z, y, x) == (K, J, I): what ``Session(spacing=...)`` takes."""
        return kji_spacing(self.ijk_to_ras, self.parent_to_world)

    def world_to_index(self, points_ras: object, check: bool = True) -> np.ndarray:
        """Nearest voxel (N, 3) int64 (k, j, i) of world RAS points (N, 3) or (3,); ``PointOutsideVolumeError``
        for a point outside the grid when ``check``."""
        return ijk_to_kji_index(ras_to_ijk(points_ras, self.ijk_to_ras, self.parent_to_world),
                                self.shape_kji if check else None)

    def index_to_world(self, index_kji: object) -> np.ndarray:
        """World RAS (N, 3) float64 of voxel centres given as (N, 3) or (3,) (k, j, i) indices."""
        kji = np.asarray(index_kji, dtype=np.float64).reshape(-1, 3)
        return ijk_to_ras(kji[:, ::-1], self.ijk_to_ras, self.parent_to_world)

    def view_axis(self, slice_to_ras: object) -> int:
        """Array axis (0 = K, 1 = J, 2 = I) a slice view shows; oblique views raise ``ObliqueViewError``."""
        return slice_axis_for_view(slice_to_ras, self.ijk_to_ras, self.parent_to_world)

    def moved_to(self, other: VolumeGeometry) -> VolumeGeometry:
        """``other`` when it is this grid moved rigidly (same shape and voxel size), else ``GeometryError``."""
        if other.shape_kji != self.shape_kji or not np.allclose(other.spacing_zyx, self.spacing_zyx, rtol=1e-6, atol=0):
            raise GeometryError(
                f"the volume's shape or voxel size changed ({other.shape_kji}, {other.spacing_zyx} mm, was "
                f"{self.shape_kji}, {self.spacing_zyx} mm), e.g. a scaling transform was applied; start a new session.")
        return other

    def box_in_view(self, corners_ras: object, slice_to_ras: object | None = None) -> tuple[int, tuple, tuple]:
        """(axis, lo, hi): a box from world RAS corners (N, 3) (e.g. an ROI's 8) on the slice through their centre
        along the axis the view shows (no view: the axis along which the box is thinnest), clipped to the volume."""
        kji = ras_to_ijk(corners_ras, self.ijk_to_ras, self.parent_to_world)[:, ::-1]
        axis = self.view_axis(slice_to_ras) if slice_to_ras is not None else thinnest_axis(kji)
        return (axis, *box_from_kji_corners(kji, axis, self.shape_kji))

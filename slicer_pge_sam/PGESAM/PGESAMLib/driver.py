"""Turn Slicer-side prompts into pge-sam core session calls (pure numpy, no Slicer, no torch).

What the module's logic and the plain-Python round-trip test share:

* :class:`VolumeGeometry`: a volume's IJK->RAS matrix, optional parent
  transform and array shape (K, J, I), with world RAS <-> voxel index, the
  spacing in core (Z, Y, X) order and the array axis a slice view shows.
* :func:`point_prompts` / :func:`box_prompt`: (world RAS points, include
  flags, volume geometry, view orientation) -> core prompts (volume index
  (z, y, x), polarity, slicing axis).
* :class:`SessionDriver`: applies those prompts and the other verbs (undo,
  clear, propagate, precompute, next object) to a core ``Session`` and, for
  every call, plans the write-back of only the region the core reports as
  changed (:func:`PGESAMLib.regions.plan_region_update`).

The core session is passed in, never imported here, so this module loads
without torch. It needs the ``pge_sam.Session`` interface: ``labels`` (uint16
(Z, Y, X) buffer), ``label``, ``axis``, ``spacing`` ((z, y, x) mm),
``set_axis``, ``add_point(point, positive=, axis=)``, ``add_box(a, b, axis=)``,
``undo()``, ``reset_object()``, ``propagate(progress=)``,
``precompute(progress=)`` and ``next_object()``; each verb returns a core
``Change`` (``bbox`` may be ``None``: nothing changed) or, for ``undo`` with
nothing to undo, ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import geometry, regions

NORMALIZATION_PERCENTILES = (0.5, 99.5)
"""Intensity window of the module's sessions: ``pge_sam.Normalization.percentile(*NORMALIZATION_PERCENTILES)``."""


@dataclass(frozen=True, eq=False)
class VolumeGeometry:
    """Where a (K, J, I) voxel array sits in world RAS.

    Attributes:
        ijk_to_ras: (4, 4) float64 IJK->RAS matrix (local frame; direction,
            spacing and origin), e.g. ``vtkMRMLVolumeNode.GetIJKToRASMatrix``.
        shape_kji: array shape (K, J, I) == core (Z, Y, X).
        parent_to_world: (4, 4) float64 linear parent transform (local RAS ->
            world RAS) or ``None``.
    """

    ijk_to_ras: np.ndarray
    shape_kji: tuple[int, int, int]
    parent_to_world: np.ndarray | None = None

    def __post_init__(self) -> None:
        m = geometry.ijk_to_world_matrix(self.ijk_to_ras)  # validates: 4x4, affine, finite, invertible
        p = None if self.parent_to_world is None else geometry.ijk_to_world_matrix(self.parent_to_world)
        shape = tuple(int(s) for s in self.shape_kji)
        if len(shape) != 3 or min(shape) < 1:
            raise geometry.GeometryError(f"shape_kji needs 3 positive sizes (K, J, I), got {tuple(self.shape_kji)}.")
        object.__setattr__(self, "ijk_to_ras", m)
        object.__setattr__(self, "parent_to_world", p)
        object.__setattr__(self, "shape_kji", shape)

    @classmethod
    def from_lps(cls, origin_lps: Sequence[float], spacing: Sequence[float], direction_lps: object,
                 shape_kji: Sequence[int], parent_to_world: object | None = None) -> VolumeGeometry:
        """Geometry from ITK/SimpleITK values (LPS origin, (I, J, K) spacing, 9 direction values)."""
        m = geometry.ijk_to_ras_matrix_from_lps(origin_lps, spacing, direction_lps)
        return cls(m, tuple(shape_kji), parent_to_world)  # type: ignore[arg-type]

    @property
    def ijk_to_world(self) -> np.ndarray:
        """(4, 4) float64 ``parent_to_world @ ijk_to_ras``."""
        return geometry.ijk_to_world_matrix(self.ijk_to_ras, self.parent_to_world)

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """World voxel size (mm) in core order (z, y, x) == (K, J, I): what ``Session(spacing=...)`` takes."""
        return geometry.kji_spacing(self.ijk_to_ras, self.parent_to_world)

    def world_to_index(self, points_ras: object) -> np.ndarray:
        """Nearest voxel of world RAS points (N, 3) or (3,): (N, 3) int64 (k, j, i) == (z, y, x).

        Raises:
            PointOutsideVolumeError: a point falls outside the voxel grid.
        """
        ijk = geometry.ras_to_ijk(points_ras, self.ijk_to_ras, self.parent_to_world)
        return geometry.ijk_to_kji_index(ijk, self.shape_kji)

    def index_to_world(self, index_kji: object) -> np.ndarray:
        """World RAS (N, 3) float64 of voxel centres given as (N, 3) or (3,) (k, j, i) indices."""
        kji = np.asarray(index_kji, dtype=np.float64).reshape(-1, 3)
        return geometry.ijk_to_ras(kji[:, ::-1], self.ijk_to_ras, self.parent_to_world)

    def view_axis(self, slice_to_ras: object) -> int:
        """Array axis (0 = K, 1 = J, 2 = I) a slice view shows; oblique views raise ``ObliqueViewError``."""
        return geometry.slice_axis_for_view(slice_to_ras, self.ijk_to_ras, self.parent_to_world)


@dataclass(frozen=True)
class PointPrompt:
    """One core point prompt: volume index (z, y, x), polarity, slicing axis (0, 1, 2)."""

    index: tuple[int, int, int]
    positive: bool
    axis: int


@dataclass(frozen=True)
class BoxPrompt:
    """One core box prompt: inclusive corners (z, y, x) on one slice along ``axis``."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    axis: int


def point_prompts(points_ras: object, include: bool | Sequence[bool], volume: VolumeGeometry,
                  slice_to_ras: object) -> list[PointPrompt]:
    """Core point prompts for world RAS points clicked in one slice view.

    Args:
        points_ras: (N, 3) or (3,) world RAS positions (mm).
        include: one flag for all points, or N flags; True = include (positive).
        volume: geometry of the segmented volume.
        slice_to_ras: (4, 4) SliceToRAS of the view the points were placed in;
            it decides the slicing axis (from geometry, not from the view's name).

    Raises:
        ObliqueViewError: the view does not show one array slice.
        PointOutsideVolumeError: a point is outside the volume.
        GeometryError: ``include`` has the wrong length.
    """
    axis = volume.view_axis(slice_to_ras)
    kji = volume.world_to_index(points_ras)
    flags = [bool(include)] * len(kji) if isinstance(include, (bool, np.bool_)) else [bool(f) for f in include]
    if len(flags) != len(kji):
        raise geometry.GeometryError(f"got {len(kji)} points but {len(flags)} include flags; give one flag per point.")
    return [PointPrompt(geometry.kji_to_zyx(k), f, axis) for k, f in zip(kji, flags)]


def box_prompt(corners_ras: object, volume: VolumeGeometry, slice_to_ras: object | None = None) -> BoxPrompt:
    """Core box prompt from the corners (N, 3) world RAS of a box (e.g. an ROI's 8 corners).

    The slicing axis is the one ``slice_to_ras`` shows, or (no view) the axis
    along which the box is thinnest; the box is applied on the slice through its
    centre (see :func:`PGESAMLib.geometry.box_from_kji_corners`).
    """
    kji = geometry.ras_to_ijk(corners_ras, volume.ijk_to_ras, volume.parent_to_world)[:, ::-1]
    axis = volume.view_axis(slice_to_ras) if slice_to_ras is not None else geometry.thinnest_axis(kji)
    start, stop = geometry.box_from_kji_corners(kji, axis, volume.shape_kji)
    return BoxPrompt(start, stop, axis)


@dataclass(frozen=True)
class Edit:
    """Result of one driver call.

    Attributes:
        change: the core ``Change`` (``None`` when ``undo`` had nothing to undo).
        update: what to write back: masks of every affected label inside the
            changed box only; ``None`` when nothing changed (``Change.bbox`` is None).
        prompt: the :class:`PointPrompt` / :class:`BoxPrompt` sent to the core, if any.
    """

    change: object | None
    update: regions.RegionUpdate | None
    prompt: PointPrompt | BoxPrompt | None = None


class SessionDriver:
    """A core session on one volume, fed with world RAS prompts; every call returns an :class:`Edit`.

    Args:
        session: a ``pge_sam.Session`` over the volume's (K, J, I) array whose
            ``spacing`` is ``volume.spacing_zyx``.
        volume: the volume's geometry.

    Raises:
        GeometryError: the session's label buffer does not have the volume's
            shape, or its spacing is not the volume's spacing in (z, y, x) order
            (a spacing in (x, y, z) order would resample non-square pixels wrongly).
    """

    def __init__(self, session, volume: VolumeGeometry) -> None:
        self.session = session
        self._owned: set[int] = set()
        self.volume = self._checked(volume)

    def _checked(self, volume: VolumeGeometry) -> VolumeGeometry:
        shape = tuple(int(s) for s in self.session.labels.shape)
        if shape != volume.shape_kji:
            raise geometry.GeometryError(f"the session's label buffer has shape {shape} but the volume is "
                                         f"(K, J, I) = {volume.shape_kji}; start a new session for this volume.")
        if not np.allclose(self.session.spacing, volume.spacing_zyx, rtol=1e-6, atol=0.0):
            raise geometry.GeometryError(
                f"the session's spacing {tuple(self.session.spacing)} is not the volume's voxel size "
                f"{volume.spacing_zyx} in (z, y, x) order; create the Session with spacing=volume.spacing_zyx "
                "(start a new session if a scaling transform was applied to the volume).")
        return volume

    def set_volume(self, volume: VolumeGeometry) -> None:
        """Use updated geometry (e.g. the volume was moved by a rigid parent transform); shape and spacing must not change."""
        self.volume = self._checked(volume)

    @property
    def labels(self) -> np.ndarray:
        """The session's uint16 (K, J, I) label buffer (0 = background, n = object n)."""
        return self.session.labels

    @property
    def label(self) -> int:
        """Label id of the object being edited."""
        return int(self.session.label)

    @property
    def owned_labels(self) -> frozenset[int]:
        """Labels this driver has written voxels of (every one is re-cut inside each changed box)."""
        return frozenset(self._owned)

    # -- prompts -------------------------------------------------------------------------------------
    def _use_axis(self, axis: int) -> None:
        """Propagation and precompute follow the axis of the latest prompt's view."""
        if int(self.session.axis) != axis:
            self.session.set_axis(axis)

    def add_point(self, point_ras: object, include: bool, slice_to_ras: object) -> Edit:
        """One include (positive) or exclude (negative) point, world RAS, clicked in the view ``slice_to_ras``."""
        (prompt,) = point_prompts(point_ras, include, self.volume, slice_to_ras)
        return self.apply_point(prompt)

    def add_points(self, points_ras: object, include: bool | Sequence[bool], slice_to_ras: object) -> list[Edit]:
        """Several points of one view, in order (each is one undo step); returns one Edit per point."""
        return [self.apply_point(p) for p in point_prompts(points_ras, include, self.volume, slice_to_ras)]

    def apply_point(self, prompt: PointPrompt) -> Edit:
        """Send one :class:`PointPrompt` to the core."""
        self._use_axis(prompt.axis)
        change = self.session.add_point(prompt.index, positive=prompt.positive, axis=prompt.axis)
        return self._edit(change, prompt)

    def add_box(self, corners_ras: object, slice_to_ras: object | None = None) -> Edit:
        """A box prompt from world RAS corners (N, 3) (see :func:`box_prompt`)."""
        prompt = box_prompt(corners_ras, self.volume, slice_to_ras)
        self._use_axis(prompt.axis)
        return self._edit(self.session.add_box(prompt.start, prompt.stop, axis=prompt.axis), prompt)

    # -- other verbs ---------------------------------------------------------------------------------
    def undo(self) -> Edit:
        """Undo the last prompt, box, propagation or clear (core ``undo``); ``change`` is None if nothing to undo."""
        change = self.session.undo()
        return Edit(None, None) if change is None else self._edit(change)

    def clear(self) -> Edit:
        """Remove the current object's prompts and voxels (core ``reset_object``; undoable)."""
        return self._edit(self.session.reset_object())

    def propagate(self, progress=None) -> Edit:
        """Propagate the current object along the session axis (core ``propagate(progress=...)``).

        A cancel through ``progress`` keeps the slices done so far (``edit.change.cancelled``).
        """
        return self._edit(self.session.propagate(progress=progress))

    def precompute(self, progress=None, slice_to_ras: object | None = None) -> int:
        """Encode every slice along the axis ``slice_to_ras`` shows (default: the session axis); returns the count.

        A cancel through ``progress`` raises the core's ``Cancelled``; slices already encoded stay cached.
        """
        if slice_to_ras is not None:
            self._use_axis(self.volume.view_axis(slice_to_ras))
        return int(self.session.precompute(progress=progress))

    def next_object(self) -> int:
        """Start a new object (core ``next_object``); returns its label id (unchanged if the current one is empty)."""
        return int(self.session.next_object())

    # -- write-back plan -----------------------------------------------------------------------------
    def _edit(self, change, prompt: PointPrompt | BoxPrompt | None = None) -> Edit:
        bbox = regions.bbox_from_change(change, self.volume.shape_kji)
        if bbox is None or regions.bbox_is_empty(bbox):
            return Edit(change, None, prompt)
        self._owned.add(int(change.label))
        ids = self._owned | {self.label}
        return Edit(change, regions.plan_region_update(self.labels, bbox, ids), prompt)

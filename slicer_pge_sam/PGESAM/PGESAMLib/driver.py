"""The Slicer module's adapter to a pge-sam session (pure numpy: no Slicer, no torch, no ``pge_sam`` import).

It translates markup events into session verbs and redraws from the session:

* :class:`VolumeGeometry`: a volume's IJK->RAS matrix, optional parent
  transform and array shape (K, J, I), with world RAS <-> voxel index, the
  spacing in core (Z, Y, X) order and the array axis a slice view shows.
* :class:`SessionDriver`: opens a session (``pge_sam.session_protocol.SessionLike``)
  on the volume, turns world RAS points and boxes into its verbs, and after
  every verb (a refused one too) returns what to write back (only the changed
  region, :func:`PGESAMLib.regions.plan_region_update`) and rewrites the
  include/exclude point lists (a :class:`MarkupStore`) to show the current
  object's prompts as the session holds them, so undo, clear and next
  segment redraw them, and a refused point disappears. No prompt history is
  kept here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import geometry, regions

NORMALIZATION_PERCENTILES = (0.5, 99.5)
"""Intensity window of the module's sessions: ``pge_sam.Normalization.percentile(*NORMALIZATION_PERCENTILES)``."""


@dataclass(frozen=True, eq=False)
class VolumeGeometry:
    """Where a (K, J, I) voxel array sits in world RAS: ``ijk_to_ras`` (4, 4) (direction, spacing, origin; e.g.
    ``vtkMRMLVolumeNode.GetIJKToRASMatrix``), ``shape_kji`` == core (Z, Y, X) and the linear parent transform
    ``parent_to_world`` (4, 4) (local RAS -> world RAS) or ``None``. Invalid matrices raise ``GeometryError``."""

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
    def spacing_zyx(self) -> tuple[float, float, float]:
        """World voxel size (mm) in core order (z, y, x) == (K, J, I): what ``Session(spacing=...)`` takes."""
        return geometry.kji_spacing(self.ijk_to_ras, self.parent_to_world)

    def world_to_index(self, points_ras: object, check: bool = True) -> np.ndarray:
        """Nearest voxel (N, 3) int64 (k, j, i) of world RAS points (N, 3) or (3,); ``PointOutsideVolumeError``
        for a point outside the grid when ``check``."""
        ijk = geometry.ras_to_ijk(points_ras, self.ijk_to_ras, self.parent_to_world)
        return geometry.ijk_to_kji_index(ijk, self.shape_kji if check else None)

    def index_to_world(self, index_kji: object) -> np.ndarray:
        """World RAS (N, 3) float64 of voxel centres given as (N, 3) or (3,) (k, j, i) indices."""
        kji = np.asarray(index_kji, dtype=np.float64).reshape(-1, 3)
        return geometry.ijk_to_ras(kji[:, ::-1], self.ijk_to_ras, self.parent_to_world)

    def view_axis(self, slice_to_ras: object) -> int:
        """Array axis (0 = K, 1 = J, 2 = I) a slice view shows; oblique views raise ``ObliqueViewError``."""
        return geometry.slice_axis_for_view(slice_to_ras, self.ijk_to_ras, self.parent_to_world)


class MarkupStore(Protocol):
    """The include (``True``) and exclude (``False``) point lists, in world RAS (mm)."""

    def positions(self, include: bool) -> list[tuple[float, float, float]]: ...

    def replace(self, include: bool, positions: Sequence[Sequence[float]]) -> None: ...


@dataclass(frozen=True)
class Edit:
    """Result of one verb: the core ``Change`` (``None``: nothing to undo) and the write-back plan for the
    segments (masks of every label the driver wrote, inside the changed box only; ``None``: nothing changed)."""

    change: object | None
    update: regions.RegionUpdate | None


class SessionDriver:
    """A session on one volume, fed with world RAS prompts; see the module docstring.

    Args:
        open_session: ``open_session(image, labels, *, axis, spacing)`` -> a session, e.g.
            ``functools.partial(pge_sam.Session, predictor, normalization=...)``.
        image: the volume's voxels, (K, J, I) == core (Z, Y, X).
        volume: its geometry; the session gets ``spacing=volume.spacing_zyx`` (non-square pixels are resampled).
        markups: the point lists to keep in step with the session (``None``: none).
    """

    def __init__(self, open_session: Callable, image: np.ndarray, volume: VolumeGeometry,
                 markups: MarkupStore | None = None) -> None:
        if tuple(image.shape) != volume.shape_kji:
            raise geometry.GeometryError(f"the voxel array has shape {tuple(image.shape)} but the geometry "
                                         f"(K, J, I) = {volume.shape_kji}; read both from the same volume.")
        self.volume = volume
        self.session = open_session(image, np.zeros(volume.shape_kji, np.uint16), axis=0, spacing=volume.spacing_zyx)
        self.markups = markups
        self._owned: set[int] = set()  # labels written so far: each is re-cut inside every changed box

    def set_volume(self, volume: VolumeGeometry) -> None:
        """Use updated geometry (the volume was moved by a rigid parent transform); shape and voxel size stay."""
        if volume.shape_kji != self.volume.shape_kji or not np.allclose(volume.spacing_zyx, self.volume.spacing_zyx,
                                                                        rtol=1e-6, atol=0.0):
            raise geometry.GeometryError(
                f"the volume's shape or voxel size changed ({volume.shape_kji}, {volume.spacing_zyx} mm, was "
                f"{self.volume.shape_kji}, {self.volume.spacing_zyx} mm), e.g. a scaling transform was applied; "
                "start a new session.")
        self.volume = volume

    @property
    def labels(self) -> np.ndarray:
        """The session's uint16 (K, J, I) label buffer (0 = background, n = object n)."""
        return self.session.labels

    @property
    def label(self) -> int:
        """Label id of the object being edited."""
        return int(self.session.label)

    @property
    def has_prompts(self) -> bool:
        return bool(self.session.prompts())

    # -- verbs ---------------------------------------------------------------------------------------------------
    def add_point(self, point_ras: object, include: bool, slice_to_ras: object) -> Edit:
        """An include (positive) or exclude point, world RAS, placed in the view ``slice_to_ras`` (whose
        orientation, not name, gives the slicing axis)."""
        def verb():
            axis = self._use_axis(self.volume.view_axis(slice_to_ras))
            index = tuple(int(v) for v in self.volume.world_to_index(point_ras)[0])
            return self.session.add_point(index, positive=bool(include), axis=axis)
        return self._run(verb)

    def add_box(self, corners_ras: object, slice_to_ras: object | None = None) -> Edit:
        """A box prompt from world RAS corners (N, 3) (e.g. an ROI's 8): on the slice through their centre, along
        the axis the view shows (no view: the axis along which the box is thinnest), clipped to the volume."""
        def verb():
            kji = geometry.ras_to_ijk(corners_ras, self.volume.ijk_to_ras, self.volume.parent_to_world)[:, ::-1]
            axis = self.volume.view_axis(slice_to_ras) if slice_to_ras is not None else geometry.thinnest_axis(kji)
            start, stop = geometry.box_from_kji_corners(kji, axis, self.volume.shape_kji)
            return self.session.add_box(start, stop, axis=self._use_axis(axis))
        return self._run(verb)

    def undo(self) -> Edit:
        """Undo the last prompt, box, propagation or clear; ``change`` is ``None`` when there is nothing to undo."""
        return self._run(self.session.undo)

    def clear(self) -> Edit:
        """Remove the current object's prompts and voxels (undoable)."""
        return self._run(self.session.reset_object)

    def propagate(self, progress=None) -> Edit:
        """Propagate the current object along the session axis; a cancel keeps the slices done (``cancelled``)."""
        return self._run(lambda: self.session.propagate(progress=progress))

    def precompute(self, progress=None, slice_to_ras: object | None = None) -> int:
        """Encode every slice along the axis ``slice_to_ras`` shows (default: the session axis); returns the count.
        A cancel raises the core's ``Cancelled``; slices already encoded stay cached."""
        if slice_to_ras is not None:
            self._use_axis(self.volume.view_axis(slice_to_ras))
        return int(self.session.precompute(progress=progress))

    def next_object(self) -> int:
        """Start a new object (its point lists start empty); returns its label id."""
        try:
            return int(self.session.next_object())
        finally:
            self.sync_markups()

    def sync_markups(self) -> None:
        """Make the point lists show the current object's points (a list is rewritten only when its voxels differ)."""
        if self.markups is None:
            return
        marks = [m for m in self.session.prompts() if m.kind == "point" and m.label == self.session.label]
        for include in (True, False):
            want = sorted(tuple(int(v) for v in m.coords[0]) for m in marks if m.positive == include)
            have = self.markups.positions(include)
            shown = sorted(map(tuple, self.volume.world_to_index(have, check=False).tolist())) if have else []
            if shown != want:
                self.markups.replace(include, [tuple(p) for p in self.volume.index_to_world(want)] if want else [])

    # -- helpers -------------------------------------------------------------------------------------------------
    def _use_axis(self, axis: int) -> int:
        """Propagation and precompute follow the axis of the latest prompt's view."""
        if int(self.session.axis) != axis:
            self.session.set_axis(axis)
        return axis

    def _run(self, verb: Callable) -> Edit:
        try:
            change = verb()
        finally:
            self.sync_markups()  # a refused prompt's point goes too
        bbox = regions.bbox_from_change(change, self.volume.shape_kji)
        if bbox is None or regions.bbox_is_empty(bbox):
            return Edit(change, None)
        self._owned.add(int(change.label))
        return Edit(change, regions.plan_region_update(self.labels, bbox, self._owned | {self.label}))

"""World RAS prompts -> verbs of the core's ``pge_sam.interaction.Interaction`` (shared with napari) -> the changed
region to write into the segments. Pure: numpy only, tested outside Slicer.

:class:`SessionDriver` puts a volume into an interaction and maps world RAS points and boxes to voxels; the axis
the prompt's view shows becomes the slicing axis, so propagation and precompute follow the latest prompt's view.
After every verb (a refused one too) it redraws the point lists (a :class:`MarkupStore`) from the current object's
points as the session holds them, and plans the write-back of the changed box only
(:func:`PGESAMLib.regions.plan_region_update`). It keeps no prompt history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import geometry, regions
from .geometry import VolumeGeometry  # noqa: F401  (the driver's input, defined with the maths it uses)


class MarkupStore(Protocol):
    """The include (``True``) and exclude (``False``) point lists, in world RAS (mm)."""

    def positions(self, include: bool) -> list[tuple[float, float, float]]: ...

    def replace(self, include: bool, positions: Sequence[Sequence[float]]) -> None: ...


@dataclass(frozen=True)
class Edit:
    """A verb's result: the core ``Change`` (``None``: nothing changed), the write-back plan (``None``: nothing to
    write), the core's message and the object edited now."""

    change: object | None
    update: regions.RegionUpdate | None
    message: str = ""
    label: int = 0


class SessionDriver:
    """A session on one volume fed with world RAS prompts. ``image``: voxels (K, J, I) == core (Z, Y, X);
    ``volume``: its geometry (its spacing goes to the session); ``markups``: the point lists, or ``None``.
    ``notice``: why embeddings loaded for an earlier volume are not used for this one (``None``: they are)."""

    def __init__(self, interaction, image: np.ndarray, volume: VolumeGeometry, markups: MarkupStore | None = None):
        if tuple(image.shape) != volume.shape_kji:
            raise geometry.GeometryError(f"the voxel array has shape {tuple(image.shape)} but the geometry "
                                         f"(K, J, I) = {volume.shape_kji}; read both from the same volume.")
        self.interaction, self.volume, self.markups = interaction, volume, markups
        interaction.set_image(image, np.zeros(volume.shape_kji, np.uint16), spacing=volume.spacing_zyx)
        interaction.set_axis(0)
        store = interaction.embeddings
        interaction.ensure_session()  # attaches the embeddings loaded for earlier volumes, if they fit
        self.notice = None if store is None or interaction.embeddings is not None else (
            f"The embeddings in {store} were made for another volume, model or normalisation: not used.")

    def set_volume(self, volume: VolumeGeometry) -> None:
        """Use updated geometry (a rigid parent transform moved the volume); shape and voxel size must stay."""
        if volume.shape_kji != self.volume.shape_kji or not np.allclose(volume.spacing_zyx, self.volume.spacing_zyx,
                                                                        rtol=1e-6, atol=0.0):
            raise geometry.GeometryError(
                f"the volume's shape or voxel size changed ({volume.shape_kji}, {volume.spacing_zyx} mm, was "
                f"{self.volume.shape_kji}, {self.volume.spacing_zyx} mm), e.g. a scaling transform was applied; "
                "start a new session.")
        self.volume = volume

    session = property(lambda self: self.interaction.session, doc="The core session (``SessionLike``).")
    labels = property(lambda self: self.interaction.labels, doc="The uint16 (K, J, I) labels (n = object n).")
    label = property(lambda self: self.interaction.label, doc="Label id of the object being edited.")
    has_prompts = property(lambda self: bool(self.interaction.prompts()))

    # -- verbs: each returns an Edit, except precompute and save_embeddings ----------------------------------------
    def add_point(self, point_ras: object, include: bool, slice_to_ras: object) -> Edit:
        """An include (positive) or exclude point, world RAS, placed in the view ``slice_to_ras``."""
        return self._run(lambda: self._follow(slice_to_ras).add_point(
            tuple(self.volume.world_to_index(point_ras)[0]), bool(include)))

    def add_box(self, corners_ras: object, slice_to_ras: object | None = None) -> Edit:
        """A box from world RAS corners (N, 3) (e.g. an ROI's 8), on the slice through their centre along the axis
        the view shows (no view: the axis along which the box is thinnest), clipped to the volume."""
        def verb():
            kji = geometry.ras_to_ijk(corners_ras, self.volume.ijk_to_ras, self.volume.parent_to_world)[:, ::-1]
            axis = self.volume.view_axis(slice_to_ras) if slice_to_ras is not None else geometry.thinnest_axis(kji)
            self.interaction.set_axis(axis)
            return self.interaction.add_box(*geometry.box_from_kji_corners(kji, axis, self.volume.shape_kji))
        return self._run(verb)

    def undo(self) -> Edit:
        """Undo the last prompt, box, propagation or clear (``change`` ``None``: nothing to undo)."""
        return self._run(self.interaction.undo)

    def clear(self) -> Edit:
        """Remove the current object's prompts and voxels (undoable)."""
        return self._run(self.interaction.clear)

    def next_object(self) -> Edit:
        """Start a new object (its point lists start empty); ``label`` is its id."""
        return self._run(self.interaction.next_object)

    def propagate(self, progress=None) -> Edit:
        """Propagate the current object along the slicing axis; a cancel keeps the slices done."""
        return self._run(lambda: self.interaction.propagate(progress))

    def precompute(self, progress=None, slice_to_ras: object | None = None) -> int:
        """Encode every slice along the axis ``slice_to_ras`` shows (default: the slicing axis); returns the count.
        A cancel raises the core's ``Cancelled``; slices already encoded stay cached."""
        return self._follow(slice_to_ras).precompute(progress)

    def save_embeddings(self, path, progress=None, slice_to_ras: object | None = None) -> str:
        """Save every slice's embedding along that axis into the folder ``path``; returns the core's message."""
        return self._follow(slice_to_ras).save_embeddings(path, progress)

    def sync_markups(self) -> None:
        """Make the point lists show the current object's points (a list is rewritten only when its voxels differ)."""
        for include in (True, False) if self.markups is not None else ():
            want, have = self.interaction.current_points(include), self.markups.positions(include)
            if sorted(map(tuple, self.volume.world_to_index(have, check=False).tolist()) if have else []) != want:
                self.markups.replace(include, [tuple(p) for p in self.volume.index_to_world(want)] if want else [])

    def _follow(self, slice_to_ras: object | None):
        """Slice along the axis the view ``slice_to_ras`` shows (``None``: keep the axis); returns the interaction."""
        if slice_to_ras is not None:
            self.interaction.set_axis(self.volume.view_axis(slice_to_ras))
        return self.interaction

    def _run(self, verb: Callable) -> Edit:
        try:
            update = verb()
        finally:
            self.sync_markups()  # a refused prompt's point goes too
        bbox = regions.bbox_from_change(update.change, self.volume.shape_kji)
        plan = None if bbox is None else regions.plan_region_update(self.labels, bbox, update.labels)
        return Edit(update.change, plan, update.message, update.label)

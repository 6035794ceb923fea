"""Qt-free adapter between the napari layers and a session (:class:`pge_sam.session_protocol.SessionLike`).

The controller holds one image and ``display``, the Labels layer's data
(integer numpy array indexed like the image: (Z, Y, X) or (rows, cols)). That
array *is* the session's label buffer: every verb writes it on the GUI
thread; a propagation is planned in a worker, which only reads, and applied
on the GUI thread (voxels painted meanwhile are kept). Prompts are the
session's (:meth:`Controller.prompts`); points are image data coordinates,
which the widget gets from layer coordinates with ``layer.world_to_data``.
Nothing here imports Qt, napari or (until a model is set) torch.
"""

from __future__ import annotations

import functools

import numpy as np

from pge_sam.errors import InputError
from pge_sam.geometry import check_axis, clip_box, locate
from pge_sam.normalize import Normalization
from pge_sam.session_protocol import Change, PromptMark, SessionFactory, SessionLike
from pge_sam.validate import check_image, check_labels, check_spacing


class NotReadyError(InputError):
    """A verb was used before an image and a model were chosen."""


def image_array(data, *, multiscale: bool = False, rgb: bool = False):
    """The array to segment from a napari Image layer's ``data`` (level 0 of a multiscale image).

    Raises :class:`InputError` for RGB(A) layers, other than 2D/3D data and
    empty arrays; never reads the data (dask/zarr arrays stay lazy).
    """
    if rgb:
        raise InputError("this is an RGB(A) image layer; pge-sam segments greyscale images — "
                         "convert it (e.g. skimage.color.rgb2gray) or split its channels first")
    array = data[0] if multiscale else data
    check_image(array, allow_rgb_shape=True)
    return array


class Controller:
    """See the module docstring. ``model``: a built model or a ``Predictor`` (``None``: set it later);
    ``sessions``: a :data:`~pge_sam.session_protocol.SessionFactory` to use instead (tests)."""

    def __init__(self, model=None, *, sessions: SessionFactory | None = None, prefetch: int = 2,
                 normalization: Normalization | None = None, overwrite: bool = False) -> None:
        self.model = None
        self._predictor = None  # the Predictor made for ``model``: one cache for every session of this widget
        self._open: SessionFactory | None = sessions
        self.prefetch = prefetch
        self.normalization = normalization or Normalization.percentile()
        self.overwrite = bool(overwrite)
        self.image = None
        self.spacing: tuple[float, ...] | None = None
        self.display: np.ndarray | None = None
        self.session: SessionLike | None = None
        self.axis = 0
        if model is not None:
            self.set_model(model)

    # -- configuration ------------------------------------------------------------------------------------------
    def set_model(self, model) -> None:
        """Use ``model`` (or a ``Predictor``) from now on; the session restarts, labels are kept."""
        from pge_sam.predictor import as_predictor
        from pge_sam.session import Session

        self._drop_session()
        if self._predictor is not None and self._predictor is not model:
            self._predictor.close()  # the previous model's prefetch thread
        self.model, self._predictor = model, as_predictor(model)
        self._open = functools.partial(Session, self._predictor)

    def set_image(self, image, display: np.ndarray, spacing: tuple[float, ...] | None = None) -> None:
        """Segment ``image`` ((Z, Y, X) or (H, W), any array-like) into the caller's ``display`` array.

        ``display``: writeable integer numpy array of the image's shape (the
        Labels layer's data); its labels are kept and new ids start above them.
        ``spacing``: voxel size per image axis (non-square pixels are resampled
        for the model); ``None`` means isotropic.
        """
        check_image(image, allow_rgb_shape=True)
        check_labels(display, tuple(image.shape))
        spacing = None if spacing is None else check_spacing(spacing, len(image.shape))
        self._drop_session()
        self.image, self.display, self.spacing = image, display, spacing
        self.axis = self.axis if self.ndim == 3 else 0

    def set_display(self, display: np.ndarray) -> None:
        """The Labels layer got new data: take it as the labels (the session restarts)."""
        if self.image is None:
            raise NotReadyError("choose an image layer first")
        self.set_image(self.image, display, self.spacing)

    def set_axis(self, axis: int) -> None:
        """Slicing axis of the image (0, 1 or 2 for a volume; always 0 for a 2D image)."""
        self.axis = 0 if self.ndim == 2 else check_axis(axis)
        if self.session is not None:
            self.session.set_axis(self.axis)

    def set_normalization(self, normalization: Normalization) -> None:
        """New intensity normalisation: the session restarts (prompts are dropped, labels are kept)."""
        self.normalization = normalization
        self._drop_session()

    def set_overwrite(self, overwrite: bool) -> None:
        """Whether the current object may paint over voxels of other objects (default: never)."""
        self.overwrite = bool(overwrite)
        if self.session is not None:
            self.session.overwrite = self.overwrite

    # -- state ------------------------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return 0 if self.image is None else len(self.image.shape)

    @property
    def has_model(self) -> bool:
        return self._open is not None

    @property
    def label(self) -> int:
        """Label id of the object being edited (before the session starts: the first free id)."""
        if self.session is not None:
            return self.session.label
        return int(self.display.max()) + 1 if self.display is not None and self.display.size else 1

    @property
    def can_undo(self) -> bool:
        return self.session is not None and self.session.can_undo

    def prompts(self) -> list[PromptMark]:
        """The prompts to show (the session's; none before it starts)."""
        return self.session.prompts() if self.session is not None else []

    def ensure_session(self) -> SessionLike:
        """The session, created on first use (reads a strided sample of the image for the normalisation)."""
        if self.image is None:
            raise NotReadyError("no image: choose an image layer in the widget")
        if self._open is None:
            raise NotReadyError("no model loaded yet: wait for it, or press 'Load model'")
        if self.session is None:
            self.session = self._open(self.image, self.display, axis=self.axis, spacing=self.spacing,
                                      normalization=self.normalization, overwrite=self.overwrite,
                                      prefetch=self.prefetch,
                                      allow_rgb_shape=True)  # set_image accepted it: a volume with 3 or 4 columns
        return self.session

    def slice_of(self, point) -> int:
        """Slice number (along the slicing axis) of image data point ``point``; ``PromptError`` if outside."""
        return locate(tuple(float(v) for v in point), tuple(self.image.shape), self.axis).index

    # -- verbs (GUI thread) ------------------------------------------------------------------------------------
    def add_point(self, point, positive: bool = True) -> Change:
        """Click at image data point ``point``: segments that slice into ``display``."""
        return self.ensure_session().add_point(tuple(float(v) for v in point), positive=bool(positive))

    def add_box(self, corner_a, corner_b) -> Change:
        """Box prompt from two opposite corners (image data points on one slice), clipped in-plane to the image."""
        session = self.ensure_session()
        return session.add_box(*clip_box(corner_a, corner_b, tuple(self.image.shape), session.axis))

    def undo(self) -> Change | None:
        """Undo the last prompt, propagation or clear (voxels and prompts); ``None`` if nothing to undo."""
        return self.session.undo() if self.session is not None else None

    def next_object(self) -> int:
        """Start a new object (a fresh label id, unused in the layer, kept if the current object is still empty)."""
        return self.ensure_session().next_object()

    def accept(self) -> int:
        """Commit the current object (its prompts leave, undo no longer reaches it); a new object starts."""
        return self.ensure_session().commit_object()

    def clear(self) -> Change:
        """Remove the current object's voxels and prompts (undoable)."""
        return self.ensure_session().reset_object()

    def apply(self, plan) -> Change:
        """Write a propagation planned by :meth:`plan_propagation` (labels painted meanwhile are kept)."""
        return self.ensure_session().apply(plan)

    def focus(self, index: int) -> None:
        """The user looks at slice ``index``: its neighbours are encoded in the background."""
        if self.session is not None and 0 <= index < self.session.n_slices:
            self.session.focus(index)

    def close(self) -> None:
        """Drop the session and its pending prefetches (the labels stay in ``display``)."""
        self._drop_session()

    def detach(self) -> None:
        """Forget the image and its labels array (the session ends)."""
        self._drop_session()
        self.image = self.display = None

    def release(self) -> None:
        """:meth:`close`, and stop the prefetch thread of the predictor made for the model."""
        self._drop_session()
        if self._predictor is not None:
            self._predictor.close()

    # -- worker-safe verbs (read the image and ``display``, write the embedding cache only) ----------------------
    def plan_propagation(self, progress=None):
        """Propagate the current object through the volume without writing; then :meth:`apply` the plan."""
        if self.session is None:
            raise NotReadyError("nothing to propagate: click on a slice first")
        return self.session.plan_propagation(progress)

    def precompute(self, progress=None) -> int:
        """Encode every slice along the slicing axis (cached ones are skipped); returns how many were encoded."""
        return self.ensure_session().precompute(progress=progress)

    def is_encoded(self, index: int) -> bool:
        """Whether slice ``index`` (slicing axis) is encoded, so a click on it only decodes."""
        return self.ensure_session().is_encoded(index)

    def encode(self, index: int) -> None:
        """Encode slice ``index`` of the slicing axis (so the next click on it is fast)."""
        self.ensure_session().encode(index)

    def _drop_session(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None

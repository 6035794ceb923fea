"""The verbs every interactive session offers, as a :class:`typing.Protocol`.

:class:`pge_sam.session.Session` implements it; the napari and Slicer
front-ends use nothing else of a session, and the tests' one stand-in
(``tests/fakes.py``) implements it too. A front-end translates its events
(layer data changed, markup placed, key pressed) into these verbs and redraws
from what they return: the :class:`Change` (which box of the caller's label
buffer to redraw) and :meth:`SessionLike.prompts` (the prompts to show, which
always agree with undo). Nothing here imports torch.

Coordinates: points are volume indices ``(z, y, x)`` of a ``(Z, Y, X)``
volume, or ``(row, col)`` of an ``(H, W)`` image; they are rounded to the
nearest voxel (``floor(v + 0.5)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np


@dataclass
class Change:
    """What a verb changed. ``bbox``: half-open volume-index slices (z, y, x) — (row, col) for 2D — or ``None``."""

    label: int
    axis: int
    slices: tuple[int, ...]
    bbox: tuple[slice, ...] | None
    voxels: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    notes: tuple[str, ...] = ()  # e.g. where and why propagation stopped


@dataclass(frozen=True)
class PromptMark:
    """One prompt as a front-end shows it.

    ``coords``: one point, or the two inclusive corners (low, high) of a box,
    as volume indices ``(z, y, x)`` — ``(row, col)`` for a 2D image. ``axis``
    and ``index``: the slice it lies on; ``label``: its object.
    """

    kind: str  # "point" or "box"
    label: int
    axis: int
    index: int
    coords: tuple[tuple[float, ...], ...]
    positive: bool = True


@runtime_checkable
class SessionLike(Protocol):
    """An interactive session over one image, writing into the caller's label buffer ``labels``.

    Every verb except :meth:`plan_propagation`, :meth:`precompute` and
    :meth:`encode` writes ``labels`` and must run on the thread that owns it
    (a GUI's main thread); those three only read the image (and ``labels``)
    and may run in a worker.
    """

    labels: np.ndarray  # (Z, Y, X) or (H, W) integer buffer owned by the caller
    is2d: bool
    overwrite: bool

    @property
    def label(self) -> int:
        """Label id of the object being edited."""

    @property
    def axis(self) -> int:
        """Slicing axis (0, 1 or 2; always 0 for a 2D image)."""

    @property
    def n_slices(self) -> int: ...

    @property
    def can_undo(self) -> bool: ...

    def set_axis(self, axis: int) -> None: ...

    def add_point(self, point, positive: bool = True, axis: int | None = None) -> Change: ...

    def add_box(self, corner_a, corner_b, axis: int | None = None) -> Change:
        """Box from two opposite corners on one slice; parts outside the image are clipped in-plane."""

    def other_mask(self) -> Change:
        """The model's next mask for the object's last click, when it was a first lone positive click on its slice
        (cycling; undoable); else :class:`~pge_sam.errors.PromptError`."""

    def undo(self) -> Change | None:
        """Undo the last step; back to the object it edited when the current one has no prompt yet."""

    def reset_object(self) -> Change: ...

    def next_object(self) -> int: ...

    def select_object(self, label: int) -> None: ...

    def commit_object(self) -> int:
        """Finish the current object (its prompts and undo steps go, its voxels stay); returns the next label."""

    def prompts(self) -> list[PromptMark]:
        """Every prompt of every object, derived from the session's own per-slice prompts."""

    def plan_propagation(self, progress=None, config=None) -> Any:
        """Worker-safe half of :meth:`propagate`: computes the masks, writes nothing."""

    def apply(self, plan) -> Change:
        """GUI-thread half: write a plan into ``labels`` (voxels edited since it was made are kept), undoable."""

    def propagate(self, progress=None, config=None) -> Change: ...

    def precompute(self, start: int | None = None, stop: int | None = None, axis: int | None = None,
                   progress=None) -> int: ...

    def is_encoded(self, index: int, axis: int | None = None) -> bool:
        """Whether a click on slice ``index`` only decodes (its embedding is cached)."""

    def encode(self, index: int, axis: int | None = None) -> None: ...

    def focus(self, index: int, axis: int | None = None) -> None: ...

    def close(self) -> None:
        """Drop this session's pending background work (other sessions on the same predictor keep theirs)."""


SessionFactory = Callable[..., SessionLike]
"""``factory(image, labels, *, axis=, spacing=, normalization=, overwrite=, prefetch=, allow_rgb_shape=)``:
opens a session, e.g. ``functools.partial(Session, predictor)``."""

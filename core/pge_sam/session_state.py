"""The typed state a :class:`~pge_sam.session.Session` owns, and pure functions over it.

Per object: prompts and previous low-res logits keyed by (axis, slice index);
per session: the objects, the current label and axis, the undo history. A
front-end never reads these: it uses the session's verbs and
:meth:`~pge_sam.session.Session.prompts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import edits
from .errors import InputError, PromptError
from .geometry import from_slice
from .prompts import SlicePrompts
from .session_protocol import PromptMark


@dataclass
class ObjectState:
    """Prompts and previous low-res logits of one object, keyed by (axis, slice index)."""

    label: int
    prompts: dict[tuple[int, int], SlicePrompts] = field(default_factory=dict)
    logits: dict[tuple[int, int], object] = field(default_factory=dict)


@dataclass
class UndoStep:
    label: int
    kind: str
    edits: list[edits.SliceEdit]


@dataclass
class PropagationPlan:
    """What :meth:`Session.plan_propagation` computed for object ``label`` along ``axis``; nothing written yet.

    ``edits``: the writes (each with the buffer's values when planned);
    ``logits``: (axis, index) -> low-res logits to keep (``None``: drop).
    """

    owner: object
    label: int
    axis: int
    edits: list[edits.SliceEdit]
    logits: dict[tuple[int, int], object]
    cancelled: bool
    notes: tuple[str, ...]
    seconds: float


@dataclass
class SessionState:
    axis: int
    label: int
    objects: dict[int, ObjectState] = field(default_factory=dict)
    undo: list[UndoStep] = field(default_factory=list)
    next_label: int = 1


def prompt_marks(objects: dict[int, ObjectState], is2d: bool) -> list[PromptMark]:
    """Display prompts of ``objects``: per (axis, slice) in order, the box (inclusive corners), then the points."""
    out: list[PromptMark] = []
    for obj in objects.values():
        for (axis, index), sp in sorted(obj.prompts.items()):
            def at(row: int, col: int, axis=axis, index=index) -> tuple[int, ...]:
                return (row, col) if is2d else from_slice(index, row, col, axis)

            if sp.box is not None:
                out.append(PromptMark("box", obj.label, axis, index, (at(sp.box.row0, sp.box.col0),
                                                                      at(sp.box.row1, sp.box.col1))))
            out += [PromptMark("point", obj.label, axis, index, (at(p.row, p.col),), p.positive) for p in sp.points]
    return out


def unused_label(labels: np.ndarray, objects: dict[int, ObjectState], next_label: int) -> int:
    """The smallest id >= ``next_label`` that neither ``labels`` (painted by the user meanwhile) nor an object
    uses; else the smallest free id; :class:`InputError` when the buffer's dtype has none left."""
    top = np.iinfo(labels.dtype).max
    label = next_label
    highest = max(int(labels.max()) if labels.size else 0, max(objects, default=0))
    if highest < label <= top:  # the common case: above everything in use, no sort of the buffer needed
        return label
    used = np.union1d(np.unique(labels), np.fromiter(objects, np.int64))
    run = np.concatenate([[label - 1], used[used >= label]])  # the first gap in this run is free
    gaps = np.flatnonzero(np.diff(run) > 1)
    candidate = int(run[gaps[0] if gaps.size else -1]) + 1
    if candidate <= top:
        return candidate
    free = np.setdiff1d(np.arange(1, min(top, used.size + 1) + 1), used)
    if free.size == 0:
        raise InputError(f"every label id of the buffer's dtype {labels.dtype} is in use; "
                         "use a wider integer type (e.g. numpy.uint32)")
    return int(free[0])


def lone_click(undo: list[UndoStep], obj: ObjectState) -> tuple[tuple[int, int], SlicePrompts, int]:
    """What 'other mask' re-answers: ``(key, prompts, shown)`` of ``obj``'s last click, ``shown`` the other masks
    shown for it since. Only a first positive point on its slice (no prompt or mask there before); else
    :class:`~pge_sam.errors.PromptError` saying what to do."""
    steps = [s for s in reversed(undo) if s.label == obj.label]
    shown = next((i for i, s in enumerate(steps) if s.kind != "other mask"), len(steps))
    edit = steps[shown].edits[0] if shown < len(steps) and steps[shown].kind == "point" else None
    key = None if edit is None else (edit.axis, edit.index)
    prompts = obj.prompts.get(key) if key is not None else None
    if edit is None or edit.prompts_before is not None or edit.logits_before is not None or prompts is None \
            or prompts.box is not None or len(prompts.points) != 1 or not prompts.points[0].positive:
        raise PromptError("'other mask' needs a first positive click on a slice as the object's last prompt; "
                          "click once on a slice where this object has no prompt yet, then ask again")
    return key, prompts, shown

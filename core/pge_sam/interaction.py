"""What both front-ends do with a session, without a GUI: one image, its label buffer and the session over them.

The napari widget and the Slicer module keep only what talks to their toolkit (layers or markups,
events, threads, dialogs) and hand every event to an :class:`Interaction`, which

* opens the session on first use (model, spacing, normalisation, overwrite, prefetch) and attaches
  the embedding store the user loaded (:meth:`Interaction.load_embeddings`) to every new session;
* turns events into session verbs (a click or a box on a slice, undo, next object, accept, clear,
  propagate, precompute, save or load embeddings) and returns an :class:`Update`: the session's
  :class:`~pge_sam.session_protocol.Change`, the labels to redraw inside its box, the message to show;
* keeps clicks on slices that are not encoded yet in :attr:`Interaction.pending` (shown with the
  prompts) while the front-end encodes the slice in a worker (:meth:`Interaction.waiting_for`,
  :meth:`Interaction.apply_pending`);
* holds the rules both share: which action a running job refuses (:meth:`Interaction.refusal`), that
  results of jobs started before the image, model or normalisation changed are stale
  (:attr:`Interaction.generation`), the status line and the messages (:func:`describe_error`).

Threads: every method writes the label buffer or the state and runs on the buffer's (GUI) thread,
except :meth:`~Interaction.plan_propagation`, :meth:`~Interaction.precompute`, :meth:`~Interaction.encode`
and :meth:`~Interaction.save_embeddings`, which a worker may run once :meth:`~Interaction.ensure_session`
has run on the GUI thread. Nothing here imports Qt, napari, slicer or (until a model is set) torch.
Points are volume indices (z, y, x), or (row, col) for a 2D image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import Cancelled, InputError, PgeSamError
from .geometry import check_axis, clip_box, locate
from .normalize import Normalization
from .session_protocol import Change, PromptMark, SessionFactory, SessionLike
from .validate import check_image, check_labels, check_spacing

JOB_KINDS = ("model", "encode", "precompute", "propagate", "embeddings")
"""Kinds of background work a front-end runs (and passes to :meth:`Interaction.refusal` while they run)."""


class NotReadyError(InputError):
    """A verb was used before an image and a model were chosen."""


@dataclass(frozen=True)
class Update:
    """What a verb did. ``change``: the session's (``None``: nothing changed); ``message``: what to tell the user;
    ``label``: the object being edited now; ``labels``: the labels to redraw inside ``change.bbox`` (every label
    written so far and the current one: with overwrite or undo, one box can change several)."""

    change: Change | None
    message: str
    label: int
    labels: frozenset[int] = frozenset()


def describe_error(err: BaseException) -> tuple[str, bool]:
    """The message for a failed verb or job, and whether it is an error (a cancel is not)."""
    if isinstance(err, Cancelled):
        return str(err), False
    known = isinstance(err, (PgeSamError, FileNotFoundError, ValueError))
    return (str(err) if known else f"{type(err).__name__}: {err}"), True


class Interaction:
    """See the module docstring. ``model``: a built model or a ``Predictor`` (``None``: set it later);
    ``sessions``: a :data:`~pge_sam.session_protocol.SessionFactory` to use instead (tests)."""

    def __init__(self, model=None, *, sessions: SessionFactory | None = None, prefetch: int = 2,
                 normalization: Normalization | None = None, overwrite: bool = False) -> None:
        self.model = None
        self._predictor = None  # made for ``model``: one embedding cache for every session of this front-end
        self._built: dict[tuple, object] = {}  # use_model's predictors, kept with their caches
        self._open: SessionFactory | None = sessions
        self.prefetch, self.overwrite = prefetch, bool(overwrite)
        self.normalization = normalization or Normalization.percentile()
        self.image = self.labels = self.spacing = None
        self.session: SessionLike | None = None
        self.axis = 0
        self.generation = 0  # bumped when the image, model or normalisation changes: older job results are stale
        self.pending: list[PromptMark] = []  # clicks waiting for their slice's embedding, in order
        self.embeddings: Path | None = None  # the store attached to every new session
        self.written: set[int] = set()  # labels the sessions changed in the current label buffer
        self._notes: list[str] = []  # said with the next update (e.g. a store that no longer fits)
        if model is not None:
            self.set_model(model)

    # -- configuration (GUI thread) ------------------------------------------------------------------------------
    def set_model(self, model) -> str:
        """Segment with ``model`` (built model or ``Predictor``) from now on; the session restarts, the labels and the
        waiting clicks stay. Returns the message to show."""
        from .predictor import as_predictor
        from .session import Session

        self._restart(keep_pending=True)
        if self._predictor is not None and self._predictor is not model and self._predictor not in self._built.values():
            self._predictor.close()  # the previous model's prefetch thread
        self.model, self._predictor = model, as_predictor(model)
        self._open = functools.partial(Session, self._predictor)
        return f"model {getattr(model, 'name', type(model).__name__)} ready on {getattr(model, 'device', 'cpu')}"

    def use_model(self, name: str, device: str = "auto", cache_dir: str | Path | None = None) -> None:
        """:meth:`set_model` with model ``name`` built on ``device`` from ``cache_dir`` (slow the first time; each
        (name, device, folder) is built once and kept with its embedding cache)."""
        key = (name, str(device), None if cache_dir is None else str(cache_dir))
        if key not in self._built:
            from .model_files import build_model
            from .predictor import Predictor

            self._built[key] = Predictor(build_model(name, device=device, cache_dir=cache_dir))
        if self._predictor is not self._built[key]:
            self.set_model(self._built[key])

    def set_image(self, image, labels: np.ndarray, spacing: tuple[float, ...] | None = None) -> None:
        """Segment ``image`` ((Z, Y, X) or (H, W), any array-like) into the caller's ``labels`` (writeable integer
        numpy array of the image's shape; its labels are kept, new ids start above them). ``spacing``: voxel size
        per image axis (non-square pixels are resampled for the model); ``None``: isotropic."""
        check_image(image, allow_rgb_shape=True)
        check_labels(labels, tuple(image.shape))
        spacing = None if spacing is None else check_spacing(spacing, len(image.shape))
        self._restart()
        self.image, self.labels, self.spacing, self.written = image, labels, spacing, set()
        self.axis = self.axis if self.ndim == 3 else 0

    def set_labels(self, labels: np.ndarray) -> None:
        """The caller's label buffer was replaced: take it as the labels (the session restarts)."""
        if self.image is None:
            raise NotReadyError("choose an image first")
        check_labels(labels, tuple(self.image.shape))
        self._restart(stale=False, keep_pending=True)
        self.labels, self.written = labels, set()

    def set_axis(self, axis: int) -> None:
        """Slicing axis (0, 1 or 2 for a volume; always 0 for a 2D image); propagation and precompute follow it."""
        axis = 0 if self.ndim == 2 else check_axis(axis)
        if axis != self.axis and self.session is not None:
            self.session.set_axis(axis)
        self.axis = axis

    def set_normalization(self, normalization: Normalization | str) -> str:
        """New intensity normalisation (or its text, e.g. ``"window:40,400"``: :meth:`Normalization.parse`): the
        session restarts (prompts go, labels stay). Returns the message."""
        self.normalization = Normalization.parse(normalization) if isinstance(normalization, str) else normalization
        self._restart()
        return f"normalisation {self.normalization.key()}: prompts cleared, labels kept"

    def set_overwrite(self, overwrite: bool) -> None:
        """Whether the current object may paint over voxels of other objects (default: never)."""
        self.overwrite = bool(overwrite)
        if self.session is not None:
            self.session.overwrite = self.overwrite

    # -- state --------------------------------------------------------------------------------------------------
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
            return int(self.session.label)
        return int(self.labels.max()) + 1 if self.labels is not None and self.labels.size else 1

    @property
    def can_undo(self) -> bool:
        return bool(self.pending) or (self.session is not None and self.session.can_undo)

    def prompts(self) -> list[PromptMark]:
        """The prompts to show: the session's (which always agree with undo), then the waiting clicks."""
        return (self.session.prompts() if self.session is not None else []) + list(self.pending)

    def current_points(self, positive: bool) -> list[tuple[int, ...]]:
        """Voxels of the current object's points of one polarity, sorted: what a point list per polarity shows."""
        return sorted(tuple(int(v) for v in m.coords[0]) for m in self.prompts()
                      if m.kind == "point" and m.label == self.label and m.positive == positive)

    def status(self, index: int | None = None, latency: float | None = None) -> str:
        """One status line: the object, the slice shown (``index``) and the last click's ``latency`` (s)."""
        if self.image is None:
            return "no image"
        where = f"axis {self.axis} slice {index}" if self.ndim == 3 else "2D image"
        last = f" · last click {latency * 1000:.0f} ms" if latency is not None else ""
        return f"object {self.label} · {where}{last}"

    def refusal(self, action: str, running=()) -> str | None:
        """Why ``action`` ("prompt", "edit", "other mask", "normalize", "propagate", "precompute", "embeddings" or
        "model") cannot run now while jobs of the kinds ``running`` run (see :data:`JOB_KINDS`); ``None`` when it
        can."""
        running = set(running)
        if self.image is None and action not in ("model", "normalize"):
            return "no image: choose an image to segment first"
        if "propagate" in running:
            then = ", then click again" if action == "prompt" else ""
            return f"propagation is running: wait for it or press Cancel{then}"
        if action in ("propagate", "other mask") and (self.pending or running & {"encode", "model"}):
            then = "propagate" if action == "propagate" else "ask for another mask"
            return f"wait until the pending clicks are applied, then {then}"
        if action in ("precompute", "embeddings", "model") and running & {"precompute", "embeddings"}:
            return "wait for the running job to finish (or Cancel it)"
        if action in ("precompute", "embeddings") and not self.has_model:
            return "load a model first"
        return None

    def ensure_session(self) -> SessionLike:
        """The session, opened on first use (reads a strided sample of the image for the normalisation)."""
        if self.image is None:
            raise NotReadyError("no image: choose an image to segment first")
        if self._open is None:
            raise NotReadyError("no model loaded yet: wait for it, or load one")
        if self.session is None:
            self.session = self._open(self.image, self.labels, axis=self.axis, spacing=self.spacing,
                                      normalization=self.normalization, overwrite=self.overwrite,
                                      prefetch=self.prefetch, allow_rgb_shape=True)  # set_image took (Z, Y, 3)
            if self.embeddings is not None:
                self._reattach(self.embeddings)
        return self.session

    def slice_of(self, point) -> int:
        """Slice number (current axis) of volume index ``point``; ``PromptError`` if it is outside the image."""
        return locate(tuple(float(v) for v in point), tuple(self.image.shape), self.axis).index

    # -- verbs (GUI thread) ---------------------------------------------------------------------------------------
    def add_point(self, point, positive: bool = True, axis: int | None = None) -> Update:
        """Click at volume index ``point`` on its slice along ``axis`` (default: the current axis)."""
        session = self.ensure_session()
        axis = self.axis if axis is None else axis
        change = session.add_point(tuple(float(v) for v in point), positive=bool(positive), axis=axis)
        return self._update(change, f"object {change.label}: {change.voxels} voxels changed on slice "
                                    f"{change.slices[0] if change.slices else '?'}")

    def add_box(self, corner_a, corner_b, axis: int | None = None) -> Update:
        """Box prompt from two opposite corners on one slice along ``axis``, clipped in-plane to the image."""
        session = self.ensure_session()
        axis = self.axis if axis is None else axis
        change = session.add_box(*clip_box(corner_a, corner_b, tuple(self.image.shape), axis), axis=axis)
        return self._update(change, f"object {change.label}: box on slice {change.slices[0] if change.slices else '?'}"
                                    f", {change.voxels} voxels changed")

    def undo(self) -> Update:
        """Drop the last waiting click, else undo the last prompt, propagation or clear (voxels and prompts)."""
        if self.pending:
            self.pending.pop()
            return self._update(None, "the last waiting click was removed")
        change = self.session.undo() if self.session is not None else None
        return self._update(change, "nothing to undo" if change is None else f"undone (object {change.label})")

    def other_mask(self) -> Update:
        """Show the model's next mask for the current object's first click on its slice (whole, part, sub-part;
        cycling; Undo goes back). Raises ``PromptError`` when the last prompt is not such a click."""
        change = self.ensure_session().other_mask()
        return self._update(change, f"object {change.label}: another mask for the click on slice {change.slices[0]} "
                                    "(again for the next; Undo goes back)")

    def next_object(self) -> Update:
        """Start a new object (a fresh label id, unused in the labels; kept while the current object is empty)."""
        return self._update(None, f"now segmenting object {self.ensure_session().next_object()}")

    def accept(self) -> Update:
        """Commit the current object (its prompts leave, undo no longer reaches it); a new object starts."""
        return self._update(None, f"object accepted; now segmenting object {self.ensure_session().commit_object()}")

    def clear(self) -> Update:
        """Remove the current object's voxels and prompts (undoable)."""
        change = self.ensure_session().reset_object()
        return self._update(change, f"object {change.label} cleared (Undo brings it back)")

    def apply(self, plan) -> Update:
        """Write a propagation planned by :meth:`plan_propagation` (labels painted meanwhile are kept)."""
        change = self.ensure_session().apply(plan)
        state = "cancelled; kept" if change.cancelled else "done:"
        notes = "".join(f"\n{note}" for note in change.notes)  # where and why each direction stopped
        return self._update(change, f"propagation {state} {len(change.slices)} slices of object {change.label}{notes}")

    def propagate(self, progress=None) -> Update:
        """:meth:`plan_propagation` then :meth:`apply`, on the calling thread."""
        return self.apply(self.plan_propagation(progress))

    def focus(self, index: int) -> None:
        """The user looks at slice ``index``: its neighbours are encoded in the background."""
        if self.session is not None and 0 <= index < self.session.n_slices:
            self.session.focus(index)

    def load_embeddings(self, path: str | Path) -> str:
        """Use the store ``path`` for this session and every later one (checked by its signature:
        :class:`~pge_sam.embeddings.EmbeddingMismatch` names what differs). Returns the message."""
        from .embeddings import describe, load_embeddings

        load_embeddings(self.ensure_session(), path)
        self.embeddings = Path(path)
        return f"embeddings loaded: {describe(path)}"

    def close(self) -> None:
        """Drop the session and its pending prefetches (the labels stay)."""
        self._restart(stale=False, keep_pending=True)

    def detach(self) -> None:
        """Forget the image and its label buffer (the session ends, waiting clicks go)."""
        self._restart()
        self.image = self.labels = None

    def release(self) -> None:
        """:meth:`close`, and stop the prefetch threads of the predictors made here."""
        self._restart(stale=False, keep_pending=True)
        for predictor in {id(p): p for p in [self._predictor, *self._built.values()] if p is not None}.values():
            predictor.close()

    # -- waiting clicks ---------------------------------------------------------------------------------------------
    def submit(self, kind: str, coords, positive: bool = True) -> PromptMark:
        """Queue a click on the current axis ("point": ``coords`` is a point; "box": two corners), checked to lie on
        the image (``PromptError`` if not); :meth:`apply_pending` applies it."""
        if self.image is None:
            raise NotReadyError("no image: choose an image to segment first")
        points = (coords,) if kind == "point" else tuple(coords)
        points = tuple(tuple(float(v) for v in p) for p in points)
        mark = PromptMark(kind, self.label, self.axis, self.slice_of(points[0]), points, bool(positive))
        self.pending.append(mark)
        return mark

    def waiting_for(self) -> int | None:
        """Slice the first waiting click needs encoded first (``None``: no click waits, or its slice is encoded).
        An error (no model, a NaN slice) drops every waiting click."""
        if not self.pending:
            return None
        mark = self.pending[0]
        try:
            return None if self.ensure_session().is_encoded(mark.index, mark.axis) else mark.index
        except PgeSamError:
            self.pending.clear()
            raise

    def apply_pending(self) -> Update | None:
        """Apply the first waiting click (``None``: none waits); it leaves the queue even when it fails."""
        if not self.pending:
            return None
        mark = self.pending.pop(0)
        if mark.kind == "point":
            return self.add_point(mark.coords[0], mark.positive, axis=mark.axis)
        return self.add_box(*mark.coords, axis=mark.axis)

    # -- worker-safe verbs (read the image and the labels, write the embedding cache only) ----------------------------
    def plan_propagation(self, progress=None):
        """Propagate the current object through the volume without writing; then :meth:`apply` the plan."""
        if self.session is None:
            raise NotReadyError("nothing to propagate: click on a slice first")
        return self.session.plan_propagation(progress)

    def precompute(self, progress=None) -> int:
        """Encode every slice along the current axis (cached ones are skipped); returns how many were encoded."""
        return int(self.ensure_session().precompute(progress=progress))

    def is_encoded(self, index: int) -> bool:
        """Whether slice ``index`` (current axis) is encoded, so a click on it only decodes."""
        return self.ensure_session().is_encoded(index)

    def encode(self, index: int, axis: int | None = None) -> None:
        """Encode slice ``index`` along ``axis`` (default: the current one) so the next click on it is fast."""
        self.ensure_session().encode(index, axis)

    def save_embeddings(self, path: str | Path, progress=None) -> str:
        """Write the embedding of every slice along the current axis into the store ``path`` (new, empty, or
        written for this image and setting); returns the message."""
        from .embeddings import save_embeddings

        return f"embeddings saved: {save_embeddings(self.ensure_session(), path, progress=progress)}"

    # -- helpers ------------------------------------------------------------------------------------------------------
    def _update(self, change: Change | None, message: str) -> Update:
        if change is not None and change.bbox is not None:
            self.written.add(int(change.label))
        notes, self._notes = self._notes, []
        return Update(change, "\n".join(notes + [message]), self.label, frozenset(self.written | {self.label}))

    def _reattach(self, path: Path) -> None:
        from .embeddings import load_embeddings

        try:
            load_embeddings(self.session, path)
        except PgeSamError as err:  # e.g. another model or normalisation now: the store no longer fits
            self.embeddings = None
            self._notes.append(f"the embeddings in {path} are no longer used: {err}")

    def _restart(self, stale: bool = True, keep_pending: bool = False) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None
        if stale:
            self.generation += 1
        if not keep_pending:
            self.pending.clear()

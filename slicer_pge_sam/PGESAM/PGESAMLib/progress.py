"""Progress relay between the pge-sam core and a GUI (pure Python, no Qt import).

The core reports long work (encoding every slice, propagation) through an
object with ``start(total)``, ``update(n)`` and ``cancelled()``. The Slicer
widget runs that work on the main thread (MRML is not thread-safe), so the
relay calls ``process_events`` (``slicer.app.processEvents``) on every update:
the progress bar repaints and a click on Cancel is seen by ``cancelled()``.
"""

from __future__ import annotations

from collections.abc import Callable


class ProgressRelay:
    """Implements the core's progress protocol on top of plain callbacks.

    ``update(n)`` advances by ``n`` steps (tqdm convention); the count is
    clamped to ``[0, total]``.

    Args:
        on_change: called as ``on_change(done, total)`` after ``start`` and
            every ``update``.
        process_events: called after ``on_change`` so a GUI stays responsive.
    """

    def __init__(self, on_change: Callable[[int, int], None] | None = None,
                 process_events: Callable[[], None] | None = None) -> None:
        self.total = 0
        self.done = 0
        self._cancel_requested = False
        self._on_change = on_change
        self._process_events = process_events

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change(self.done, self.total)
        if self._process_events is not None:
            self._process_events()

    def start(self, total: int) -> None:
        """Begin a task of ``total`` steps (``total >= 0``)."""
        total = int(total)
        if total < 0:
            raise ValueError(f"progress total must be >= 0, got {total}.")
        self.total = total
        self.done = 0
        self._notify()

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps (``n >= 0``)."""
        n = int(n)
        if n < 0:
            raise ValueError(f"progress steps must be >= 0, got {n}.")
        self.done = min(self.total, self.done + n)
        self._notify()

    def cancel(self) -> None:
        """Ask the running task to stop at its next ``cancelled()`` check."""
        self._cancel_requested = True

    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called (events are processed first, so a pending click counts)."""
        if self._process_events is not None:
            self._process_events()
        return self._cancel_requested

    @property
    def fraction(self) -> float:
        """Completed fraction in [0, 1] (0 before ``start`` or for an empty task)."""
        return self.done / self.total if self.total else 0.0

    @property
    def cancel_requested(self) -> bool:
        """True once :meth:`cancel` was called (does not process events)."""
        return self._cancel_requested

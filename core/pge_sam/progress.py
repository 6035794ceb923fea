"""Progress reporting as plain callables (never Qt types).

Long work (encoding many slices, propagation) takes an optional ``progress``
object with three methods: ``start(total)``, ``update(n)`` (n items done since
the last call) and ``cancelled() -> bool``. Any object with those methods works;
front-ends wrap their own progress bars in it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .errors import Cancelled


@runtime_checkable
class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def update(self, n: int = 1) -> None: ...

    def cancelled(self) -> bool: ...


class NullProgress:
    """Reports nothing and is never cancelled."""

    def start(self, total: int) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def cancelled(self) -> bool:
        return False


class TqdmProgress:
    """A ``tqdm`` bar on stderr (used by the CLI)."""

    def __init__(self, desc: str = "", disable: bool = False) -> None:
        self.desc = desc
        self.disable = disable
        self._bar = None

    def start(self, total: int) -> None:
        from tqdm.auto import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=self.desc, disable=self.disable, leave=False)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def cancelled(self) -> bool:
        return False

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class RecordingProgress:
    """Records every call; ``cancel_after`` items makes it report cancellation (for tests and scripts)."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.total: int | None = None
        self.done = 0
        self.cancel_after = cancel_after

    def start(self, total: int) -> None:
        self.total = total
        self.done = 0

    def update(self, n: int = 1) -> None:
        self.done += n

    def cancelled(self) -> bool:
        return self.cancel_after is not None and self.done >= self.cancel_after


def ensure(progress: "Progress | None") -> Progress:
    """``progress`` itself, or a :class:`NullProgress` when ``None``."""
    return NullProgress() if progress is None else progress


def check_cancel(progress: Progress, what: str) -> None:
    """Raise :class:`Cancelled` when the progress object asks to stop."""
    if progress.cancelled():
        raise Cancelled(f"{what} was cancelled; results computed so far are kept")

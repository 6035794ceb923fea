"""Background jobs for the widget: ``napari.qt.threading`` workers with a napari progress bar and cancel.

A job's function runs in a worker thread and only computes: it returns a
result that the GUI thread applies to the layers (``on_done``). Progress goes
through :class:`QtProgress`, an object with the ``pge_sam.progress.Progress``
methods whose ``update`` may be called from the worker thread: it emits a Qt
signal, which Qt delivers on the GUI thread.
"""

from __future__ import annotations

import threading
from typing import Callable

from napari.qt.threading import create_worker
from napari.utils.progress import cancelable_progress
from qtpy.QtCore import QObject, Signal


class QtProgress(QObject):
    """``start(total)`` / ``update(n)`` / ``cancelled()`` for pge_sam, safe to call from a worker thread."""

    started = Signal(int)
    advanced = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self._cancel = threading.Event()
        self.total = 0
        self.done = 0

    def start(self, total: int) -> None:
        self.total, self.done = int(total), 0
        self.started.emit(int(total))

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        self.advanced.emit(int(n))

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()


class Job:
    """One running worker: its kind ("model", "encode", "precompute", "propagate", "embeddings", "download", "degrade"),
    progress and bar."""

    def __init__(self, kind: str, progress: QtProgress | None, bar) -> None:
        self.kind = kind
        self.worker = None
        self.progress = progress
        self.bar = bar
        self.done = 0  # GUI-side count of progress updates received
        self.total = 0
        self.ended = threading.Event()  # set by the worker thread when the function returns or raises

    def cancel(self, abort: bool = False) -> None:
        """Ask the function to stop through its progress object; ``abort`` also drops its result."""
        if self.progress is not None:
            self.progress.cancel()
        if abort and self.worker is not None:
            self.worker.quit()  # napari then emits no ``returned``


class Jobs:
    """The widget's running jobs; ``on_progress(kind, done, total)`` sees progress of jobs that report it.

    ``generation()``: a number that changes when the image, model or normalisation changes
    (:attr:`pge_sam.interaction.Interaction.generation`); the result of a job started under another
    number is stale and dropped, unless the job was started with ``keep=True`` (loading a model, a download).
    """

    def __init__(self, on_progress: Callable[[str, int, int], None] | None = None,
                 generation: Callable[[], int] = lambda: 0) -> None:
        self.active: list[Job] = []
        self.on_progress = on_progress
        self.closed = False
        self.generation = generation

    @property
    def running(self) -> set[str]:
        """Kinds of the running jobs."""
        return {job.kind for job in self.active}

    def busy(self, *kinds: str) -> bool:
        return any(job.kind in kinds for job in self.active) if kinds else bool(self.active)

    def start(self, kind: str, fn: Callable, on_done: Callable, on_error: Callable, *,
              with_progress: bool = False, description: str = "", keep: bool = False,
              on_stale: Callable[[], None] | None = None) -> Job:
        """Run ``fn()`` (or ``fn(progress)`` when ``with_progress``) in a worker thread.

        ``on_done(result)`` / ``on_error(exception)`` run on the GUI thread; a
        cancelled job still calls ``on_done`` with what ``fn`` returned. A job
        made stale (see the class docstring) calls ``on_stale()`` instead (unless ``keep``).
        """
        if self.closed:
            raise RuntimeError("the widget was closed; no new jobs")
        generation = self.generation()

        def fresh(callback: Callable) -> Callable:
            def run(value) -> None:
                if keep or generation == self.generation():
                    callback(value)
                elif on_stale is not None:
                    on_stale()
            return run

        on_done, on_error = fresh(on_done), fresh(on_error)
        progress = QtProgress() if with_progress else None
        bar = cancelable_progress(total=0, desc=description) if with_progress else None
        job = Job(kind, progress, bar)
        args = (progress,) if with_progress else ()

        def run():
            try:
                return fn(*args)
            finally:
                job.ended.set()

        if with_progress:
            bar.cancel_callback = progress.cancel
            progress.started.connect(lambda total: self._started(job, total))
            progress.advanced.connect(lambda n: self._advanced(job, n))
        worker = job.worker = create_worker(run, _ignore_errors=True)
        worker.returned.connect(lambda result: self._deliver(job, on_done, result))
        worker.errored.connect(lambda err: self._deliver(job, on_error, err))
        worker.finished.connect(lambda: self._finished(job))
        self.active.append(job)
        worker.start()
        return job

    def cancel(self, *kinds: str) -> int:
        """Ask the jobs of these kinds (all when none given) to stop; returns how many were asked."""
        jobs = [j for j in self.active if not kinds or j.kind in kinds]
        for job in jobs:
            job.cancel()
        return len(jobs)

    def close(self, timeout_ms: int = 10_000) -> None:
        """Cancel every job, stop delivering results and wait for the threads to end."""
        self.closed = True
        for job in list(self.active):
            job.cancel(abort=True)
        for job in list(self.active):
            job.ended.wait(timeout_ms / 1000)
            self._finished(job)

    def _deliver(self, job: Job, callback: Callable, value) -> None:
        """The job is over (no longer ``busy``) before its result or error is handed to the GUI."""
        self._finished(job)
        if not self.closed:
            callback(value)

    def _started(self, job: Job, total: int) -> None:
        job.total, job.done = total, 0
        if job.bar is not None:
            job.bar.total = total
        if self.on_progress is not None and not self.closed:
            self.on_progress(job.kind, 0, total)

    def _advanced(self, job: Job, n: int) -> None:
        job.done += n
        if job.bar is not None:
            job.bar.update(n)
        if self.on_progress is not None and not self.closed:
            self.on_progress(job.kind, job.done, job.total)

    def _finished(self, job: Job) -> None:
        if job in self.active:
            self.active.remove(job)
        if job.bar is not None:
            job.bar.close()
            job.bar = None

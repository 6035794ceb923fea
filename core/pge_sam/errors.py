"""Exceptions raised by pge_sam.

Every error says what is wrong and what to do about it. Input problems are
``ValueError`` subclasses so generic callers can catch them as such.
"""

from __future__ import annotations


class PgeSamError(Exception):
    """Base class of every error raised on purpose by pge_sam."""


class InputError(PgeSamError, ValueError):
    """The image, volume, prompt or option given by the caller is unusable."""


class PromptError(InputError):
    """A point or box is outside the image, degenerate or on the wrong slice."""


class WeightsError(PgeSamError):
    """Model weights are missing, corrupt or do not match the architecture."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """A weights file is not on disk; the message names the file and the command to get it."""


class ChecksumError(WeightsError):
    """A downloaded or supplied file does not have the expected sha256."""


class CacheError(PgeSamError):
    """A cache folder cannot be used (a file, or a folder pge-sam did not make); nothing was written to it."""


class OutputError(PgeSamError):
    """An output path is unusable (the input itself, an existing file, an unknown format, not writable),
    or writing it failed; the previous file, if any, is untouched."""


class PgeSamWarning(UserWarning):
    """Something the user should know that does not stop the job."""


class CacheWarning(PgeSamWarning):
    """The on-disk cache recomputes, runs read-only or was turned off; the job goes on."""


class Cancelled(PgeSamError):
    """Long work (precompute, propagation) was cancelled through its progress callback."""

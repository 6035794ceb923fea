"""Degrade a whole image or volume with progress and cancel, for front-ends (e.g. napari's degradation preview).

:func:`apply_with_progress` returns exactly what :func:`pge_sam.degrade.apply`
returns for the same arguments (same per-slice seeds, same whole-volume
intensity range, same clip and dtype), but reports one progress step per
axis-0 slice of a slice-wise degradation on a volume (one step otherwise) and
stops with :class:`~pge_sam.errors.Cancelled` when the progress object asks.
The input is never modified. :func:`preview_label` is the short tag a
front-end puts in the name of the degraded copy.

>>> from pge_sam.degrade.volume import apply_with_progress, preview_label
>>> preview_label("gaussian_noise", 2)
'gaussian_noise s2'
>>> noisy = apply_with_progress(volume, "gaussian_noise", 2, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from ..errors import Cancelled
from ..progress import Progress, ensure
from . import general


def preview_label(name: str, severity: int, seed: int = 0) -> str:
    """``"<name> s<severity>"`` (plus ``" seed <seed>"`` when the seed is not 0), checked like ``apply``'s arguments."""
    general.get(name)
    severity, seed = general.check_severity(severity), general.check_seed(seed)
    return f"{name} s{severity}" + (f" seed {seed}" if seed else "")


def steps(image_shape: tuple[int, ...], name: str) -> int:
    """How many progress steps :func:`apply_with_progress` reports for an image of ``image_shape``."""
    return int(image_shape[0]) if len(image_shape) == 3 and general.get(name).slicewise else 1


def apply_with_progress(image: object, name: str, severity: int, seed: int = 0,
                        progress: Progress | None = None) -> np.ndarray:
    """:func:`pge_sam.degrade.apply` with progress and cancel (see the module docstring).

    Args:
        image: ``(H, W)`` slice or ``(Z, Y, X)`` volume: a numpy array or an array-like (dask, zarr) that
            ``numpy.asarray`` reads; same rules as ``apply`` (real dtype, finite, H and W >= 8).
        name, severity, seed: as for ``apply``.
        progress: ``start(total)`` / ``update(n)`` / ``cancelled()`` (:mod:`pge_sam.progress`); ``None``: silent.

    Returns:
        A new array of the image's shape and dtype, equal to ``apply(image, name, severity, seed)``.

    Raises:
        DegradationError: bad image, name, severity or seed (before any work).
        Cancelled: the progress object asked to stop; nothing is returned.
    """
    deg = general.get(name)
    severity = general.check_severity(severity)
    seed = general.check_seed(seed)
    if not isinstance(image, np.ndarray) and hasattr(image, "shape") and hasattr(image, "dtype"):
        image = np.asarray(image)  # dask / zarr: read once
    image = general.check_image(image)
    progress = ensure(progress)
    total = steps(image.shape, name)
    progress.start(total)

    def check() -> None:
        if progress.cancelled():
            raise Cancelled(f"degrading with {name} (severity {severity}) was cancelled")

    check()
    lo, hi = float(image.min()), float(image.max())
    if severity == 0 or hi <= lo:  # clean, or a constant image (stays constant under a range-preserving clip)
        progress.update(total)
        return image.copy()
    params = deg.levels[severity]
    if image.ndim == 3 and deg.slicewise:
        slices = []
        for z in range(total):
            slices.append(deg.func(image[z].astype(np.float64), params, general.make_rng(seed, name, z), lo, hi))
            progress.update(1)
            if z + 1 < total:
                check()
        out = np.stack(slices)
    else:
        out = deg.func(image.astype(np.float64), params, general.make_rng(seed, name), lo, hi)
        progress.update(1)
    out = np.clip(out, lo, hi)
    if image.dtype.kind in "iu":
        out = np.rint(out)
    return out.astype(image.dtype)

"""Image degradations for DM-Seg-mini: general, MRI-specific and CT-specific.

Every degradation has severity 0 (clean, an exact copy) and fixed parameter
sets for severities ``1..MAX_SEVERITY`` (see :func:`describe`), and is
deterministic given ``seed``.

>>> from pge_sam import degrade
>>> degrade.list_degradations("ct")[-3:]
['ct_low_dose', 'ct_streak', 'ct_ring']
>>> noisy = degrade.apply(image, "ct_low_dose", severity=2, seed=0)  # doctest: +SKIP

Heavy libraries (scikit-image, TorchIO, Pillow) are imported only when a
degradation runs.
"""

from __future__ import annotations

import numpy as np

from . import ct, general, mri  # noqa: F401  (importing registers the degradations)
from .general import MAX_SEVERITY, MODALITIES, REGISTRY, Degradation, DegradationError

__all__ = [
    "MAX_SEVERITY",
    "MODALITIES",
    "Degradation",
    "DegradationError",
    "apply",
    "describe",
    "get_degradation",
    "list_degradations",
]


def list_degradations(modality: str | None = None) -> list[str]:
    """Names of the degradations for ``modality``.

    Args:
        modality: ``None`` for all names, ``"mri"`` for general + MRI-specific,
            ``"ct"`` for general + CT-specific.

    Returns:
        Names in a fixed order: general ones first, then the modality-specific ones.
    """
    if modality is None:
        return list(REGISTRY)
    if modality not in MODALITIES:
        raise DegradationError(f"modality must be one of {MODALITIES} or None, got {modality!r}")
    return [name for name, deg in REGISTRY.items() if deg.group in ("general", modality)]


def get_degradation(name: str) -> Degradation:
    """The registry entry (summary, per-level parameters, flags) of ``name``."""
    return general.get(name)


def describe(name: str) -> str:
    """One line: what ``name`` does and its parameters at every severity level."""
    return general.get(name).describe()


def apply(image: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Degrade an image.

    Args:
        image: ``(H, W)`` slice (rows, cols) or ``(Z, Y, X)`` volume, any real
            integer or float dtype, finite values, H and W >= 8.
        name: one of :func:`list_degradations`.
        severity: ``0`` (returns an exact copy) to ``MAX_SEVERITY``.
        seed: non-negative int; the output is a deterministic function of
            (image, name, severity, seed).

    Returns:
        Array of the same shape and dtype as ``image``, values clipped to the
        input's ``[min, max]`` (integer dtypes are rounded).  Slice-wise physics
        (FBP, JPEG, 2D blur, noise, k-space undersampling) runs on every axis-0
        slice of a volume with a per-slice seed derived from ``seed``; the
        TorchIO MRI artifacts (bias field, ghosting, motion, spike) run in 3D.

    Raises:
        DegradationError: (an ``InputError``, hence a ``ValueError``) for a bad image, name, severity or seed.
    """
    deg = general.get(name)
    severity = general.check_severity(severity)
    seed = general.check_seed(seed)
    image = general.check_image(image)
    if severity == 0:
        return image.copy()
    lo, hi = float(image.min()), float(image.max())
    if hi <= lo:  # a constant image stays constant under a range-preserving clip
        return image.copy()
    x = image.astype(np.float64)
    params = deg.levels[severity]
    if image.ndim == 3 and deg.slicewise:
        out = np.stack(
            [deg.func(x[z], params, general.make_rng(seed, name, z), lo, hi) for z in range(x.shape[0])]
        )
    else:
        out = deg.func(x, params, general.make_rng(seed, name), lo, hi)
    out = np.clip(out, lo, hi)
    if image.dtype.kind in "iu":
        out = np.rint(out)
    return out.astype(image.dtype)


from . import preview  # noqa: E402,F401  (public submodule; needs apply/list_degradations above)

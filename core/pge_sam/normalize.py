"""Intensity normalisation: volume values -> uint8 slices for SAM.

Normalisation is a property of the session (not of the display) and part of
the embedding cache key. Two modes:

* ``percentile``: the [low, high] percentiles of the *whole volume* (computed
  once on a strided subsample, so dask/zarr volumes are not read whole) map to
  [0, 255];
* ``window``: a CT-style window ``level`` / ``width`` in the volume's units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

_MAX_SAMPLE = 2_000_000  # voxels read to estimate percentiles
DEFAULT_ARGS = {"percentile": (0.5, 99.5), "window": (40.0, 400.0)}
"""The two numbers a front-end shows for each mode (:meth:`Normalization.parse` order: low, high / level, width)."""


@dataclass(frozen=True)
class Normalization:
    """How raw intensities become uint8.

    ``mode`` is ``"percentile"`` (``low``/``high`` are percentiles in [0, 100])
    or ``"window"`` (``low``/``high`` are ``level - width/2`` and
    ``level + width/2`` in image units).
    """

    mode: str = "percentile"
    low: float = 0.5
    high: float = 99.5

    def __post_init__(self) -> None:
        if self.mode not in ("percentile", "window"):
            raise InputError(f"normalisation mode {self.mode!r} is unknown; use 'percentile' or 'window'")
        if not (np.isfinite(self.low) and np.isfinite(self.high)) or self.high <= self.low:
            raise InputError(f"normalisation needs low < high (got low={self.low}, high={self.high})")
        if self.mode == "percentile" and not (0.0 <= self.low and self.high <= 100.0):
            raise InputError("percentiles must lie in [0, 100]")

    @classmethod
    def percentile(cls, low: float = 0.5, high: float = 99.5) -> "Normalization":
        return cls("percentile", float(low), float(high))

    @classmethod
    def window(cls, level: float, width: float) -> "Normalization":
        if width <= 0:
            raise InputError(f"window width must be positive (got {width})")
        return cls("window", float(level) - float(width) / 2, float(level) + float(width) / 2)

    @classmethod
    def parse(cls, text: str) -> "Normalization":
        """Parse ``"percentile:0.5,99.5"`` or ``"window:40,400"`` (level, width)."""
        try:
            mode, _, args = text.partition(":")
            a, b = (float(v) for v in args.split(","))
        except ValueError:
            raise InputError(
                f"cannot parse normalisation {text!r}; write 'percentile:LOW,HIGH' or 'window:LEVEL,WIDTH'"
            ) from None
        if mode == "percentile":
            return cls.percentile(a, b)
        if mode == "window":
            return cls.window(a, b)
        raise InputError(f"normalisation mode {mode!r} is unknown; use 'percentile' or 'window'")

    def args(self) -> tuple[float, float]:
        """The two numbers of :meth:`parse` (low, high percentiles, or window level, width), for display."""
        if self.mode == "window":
            return (self.low + self.high) / 2, self.high - self.low
        return self.low, self.high

    def key(self) -> str:
        """Stable text used in cache keys and signatures."""
        return f"{self.mode}:{self.low:.6g},{self.high:.6g}"

    def value_range(self, volume) -> tuple[float, float]:
        """Intensity range (vmin, vmax) that maps to [0, 255] for ``volume``.

        ``volume``: array-like (numpy, dask, zarr) of any shape. Raises
        :class:`InputError` for NaN/inf in the sample or a constant image.
        """
        if self.mode == "window":
            return self.low, self.high
        sample = strided_sample(volume)
        if not np.isfinite(sample).all():
            raise InputError(
                "the image contains NaN or infinite values; replace them first "
                "(e.g. numpy.nan_to_num) so they are not mistaken for tissue"
            )
        vmin, vmax = np.percentile(sample, [self.low, self.high])
        if vmax <= vmin:
            vmin, vmax = float(sample.min()), float(sample.max())
        if vmax <= vmin:
            raise InputError(
                f"the image is constant (every sampled voxel is {vmin:g}); there is nothing to segment"
            )
        return float(vmin), float(vmax)


def strided_sample(volume) -> np.ndarray:
    """At most ~2 M voxels of ``volume`` taken on a regular grid, as float64 numpy."""
    shape = tuple(int(s) for s in volume.shape)
    total = int(np.prod(shape)) if shape else 1
    step = max(1, int(np.ceil((total / _MAX_SAMPLE) ** (1.0 / max(1, len(shape))))))
    index = tuple(slice(None, None, step) for _ in shape)
    return np.asarray(volume[index], dtype=np.float64)


def to_uint8(image: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Map ``image`` (any shape, real dtype) linearly from [vmin, vmax] to uint8 [0, 255], clipping."""
    scaled = (np.asarray(image, dtype=np.float32) - np.float32(vmin)) * np.float32(255.0 / (vmax - vmin))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

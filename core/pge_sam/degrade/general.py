"""Registry, input checks and the general (all-modality) degradations.

Every degradation is a pure function ``func(x, params, rng, lo, hi) -> y``:

- ``x``: float64 array, ``(H, W)`` (rows, cols) for slice-wise degradations,
  ``(H, W)`` or ``(Z, Y, X)`` for natively 3D ones;
- ``params``: the fixed parameter set of one severity level (a dict);
- ``rng``: a ``numpy.random.Generator`` derived from the caller's seed;
- ``lo, hi``: intensity range of the *whole* input (noise magnitudes are
  fractions of ``hi - lo``, so they mean the same on MRI and CT).

It returns a float64 array of the same shape; :func:`pge_sam.degrade.apply`
clips it to ``[lo, hi]`` and casts it back to the input dtype.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .._optional import require
from ..errors import InputError

MAX_SEVERITY = 3
MODALITIES = ("mri", "ct")
GROUPS = ("general",) + MODALITIES

DegradeFunc = Callable[[np.ndarray, Mapping[str, float], np.random.Generator, float, float], np.ndarray]


class DegradationError(InputError):
    """Bad input to :mod:`pge_sam.degrade` (image, name, severity, seed or modality)."""


@dataclass(frozen=True)
class Degradation:
    """One degradation: its physics function and its fixed per-severity parameters.

    Attributes:
        name: registry key, e.g. ``"gaussian_noise"``.
        group: ``"general"``, ``"mri"`` or ``"ct"``.
        summary: one-line description (what it is, what the parameters mean).
        levels: severity (1..MAX_SEVERITY) -> parameter dict.
        func: the physics, see the module docstring.
        stochastic: True when the output depends on the seed.
        slicewise: True when a ``(Z, Y, X)`` volume is processed per axis-0 slice
            (each slice with its own seed derived from the caller's seed).
    """

    name: str
    group: str
    summary: str
    levels: Mapping[int, Mapping[str, float]]
    func: DegradeFunc
    stochastic: bool
    slicewise: bool

    def describe(self) -> str:
        """One line: name, group, summary and the parameters of every level."""
        parts = []
        for level in sorted(self.levels):
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in self.levels[level].items())
            parts.append(f"{level}: {params}")
        kind = "stochastic" if self.stochastic else "deterministic"
        return f"{self.name} [{self.group}, {kind}]: {self.summary}; levels " + "; ".join(parts)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


REGISTRY: dict[str, Degradation] = {}


def register(
    name: str,
    group: str,
    summary: str,
    levels: Mapping[int, Mapping[str, float]],
    *,
    stochastic: bool,
    slicewise: bool,
) -> Callable[[DegradeFunc], DegradeFunc]:
    """Decorator adding ``func`` to :data:`REGISTRY` under ``name``."""
    if group not in GROUPS:
        raise DegradationError(f"group must be one of {GROUPS}, got {group!r}")
    if sorted(levels) != list(range(1, MAX_SEVERITY + 1)):
        raise DegradationError(f"{name}: levels must be exactly 1..{MAX_SEVERITY}, got {sorted(levels)}")

    def decorator(func: DegradeFunc) -> DegradeFunc:
        if name in REGISTRY:
            raise DegradationError(f"degradation {name!r} is registered twice")
        REGISTRY[name] = Degradation(name, group, summary, dict(levels), func, stochastic, slicewise)
        return func

    return decorator


# ----------------------------------------------------------------------------- checks


def get(name: str) -> Degradation:
    """Registry entry for ``name``; DegradationError listing the valid names otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise DegradationError(
            f"unknown degradation {name!r}; valid names are: {', '.join(REGISTRY)}"
        )
    return REGISTRY[name]


def check_image(image: object) -> np.ndarray:
    """Validate an image: ``(H, W)`` or ``(Z, Y, X)``, real dtype, finite, H and W >= 8."""
    if not isinstance(image, np.ndarray):
        raise DegradationError(f"image must be a numpy.ndarray, got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise DegradationError(
            f"image must be a 2D (H, W) slice or a 3D (Z, Y, X) volume, got shape {image.shape}"
        )
    if image.dtype.kind not in "iuf":
        raise DegradationError(
            f"image dtype must be a real integer or float type, got {image.dtype}; "
            "convert it, e.g. image.astype(np.float32)"
        )
    if min(image.shape[-2:]) < 8 or image.shape[0] < 1:
        raise DegradationError(f"image is too small: shape {image.shape}, need H and W >= 8")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise DegradationError("image contains NaN or inf values; replace them first (e.g. np.nan_to_num)")
    return image


def check_severity(severity: object) -> int:
    """Validate a severity: an int in ``0..MAX_SEVERITY``."""
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
        raise DegradationError(f"severity must be an int in 0..{MAX_SEVERITY}, got {severity!r}")
    if not 0 <= int(severity) <= MAX_SEVERITY:
        raise DegradationError(f"severity must be in 0..{MAX_SEVERITY} (0 = clean), got {severity}")
    return int(severity)


def check_seed(seed: object) -> int:
    """Validate a seed: a non-negative int."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise DegradationError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def make_rng(seed: int, name: str, index: int = 0) -> np.random.Generator:
    """Generator for (seed, degradation name, slice index); stable across processes."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), index])


# ----------------------------------------------------------------------------- general


@register(
    "gaussian_noise", "general",
    "additive white Gaussian noise, sigma as a fraction of the intensity range",
    {1: {"sigma": 0.03}, 2: {"sigma": 0.07}, 3: {"sigma": 0.15}},
    stochastic=True, slicewise=True,
)
def gaussian_noise(x, p, rng, lo, hi):
    return x + rng.standard_normal(x.shape) * p["sigma"] * (hi - lo)


@register(
    "gaussian_blur", "general",
    "isotropic 2D Gaussian blur (scikit-image), sigma in pixels",
    {1: {"sigma_px": 1.0}, 2: {"sigma_px": 2.0}, 3: {"sigma_px": 4.0}},
    stochastic=False, slicewise=True,
)
def gaussian_blur(x, p, rng, lo, hi):
    gaussian = require("skimage.filters", "bench").gaussian

    return gaussian(x, sigma=p["sigma_px"], mode="reflect", preserve_range=True)


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised 2D line PSF of ``length`` pixels at ``angle_deg``; float64 ``(K, K)``, K odd."""
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size))
    centre = size // 2
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, int(4 * length) + 1)
    rows = centre - t * np.sin(np.deg2rad(angle_deg))
    cols = centre + t * np.cos(np.deg2rad(angle_deg))
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (1, 0, fr * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 1, fr * fc)):
        rr, cc = np.clip(r0 + dr, 0, size - 1), np.clip(c0 + dc, 0, size - 1)
        np.add.at(kernel, (rr, cc), w)
    return kernel / kernel.sum()


@register(
    "motion_blur", "general",
    "linear camera/patient motion blur: convolution with a line PSF of the given length "
    "(pixels) at a seed-drawn angle",
    {1: {"length_px": 5}, 2: {"length_px": 11}, 3: {"length_px": 21}},
    stochastic=True, slicewise=True,
)
def motion_blur(x, p, rng, lo, hi):
    from scipy.ndimage import convolve

    kernel = line_kernel(float(p["length_px"]), float(rng.uniform(0.0, 180.0)))
    return convolve(x, kernel, mode="reflect")


@register(
    "downsample", "general",
    "down-sampling by an integer factor (anti-aliased) then bilinear up-sampling to the "
    "original size (scikit-image resize)",
    {1: {"factor": 2}, 2: {"factor": 4}, 3: {"factor": 8}},
    stochastic=False, slicewise=True,
)
def downsample(x, p, rng, lo, hi):
    resize = require("skimage.transform", "bench").resize

    f = int(p["factor"])
    small_shape = tuple(max(1, int(round(n / f))) for n in x.shape)
    small = resize(x, small_shape, order=1, anti_aliasing=True, preserve_range=True)
    return resize(small, x.shape, order=1, anti_aliasing=False, preserve_range=True)


@register(
    "jpeg", "general",
    "JPEG compression (Pillow) of the image mapped to 8 bits over its intensity range, "
    "quality 1..95",
    {1: {"quality": 40}, 2: {"quality": 15}, 3: {"quality": 5}},
    stochastic=False, slicewise=True,
)
def jpeg(x, p, rng, lo, hi):
    from PIL import Image

    scale = 255.0 / (hi - lo)
    as_u8 = np.clip(np.rint((x - lo) * scale), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(as_u8).save(buffer, format="JPEG", quality=int(p["quality"]))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        back = np.asarray(decoded.convert("L"), dtype=np.float64)
    return lo + back / scale


@register(
    "speckle", "general",
    "ultrasound-style multiplicative speckle: (x - min) times Gamma noise of mean 1 with "
    "`looks` degrees of freedom (variance 1/looks)",
    {1: {"looks": 40.0}, 2: {"looks": 10.0}, 3: {"looks": 3.0}},
    stochastic=True, slicewise=True,
)
def speckle(x, p, rng, lo, hi):
    looks = float(p["looks"])
    gain = rng.gamma(shape=looks, scale=1.0 / looks, size=x.shape)
    return lo + (x - lo) * gain

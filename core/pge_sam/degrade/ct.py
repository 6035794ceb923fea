"""CT-specific degradations, simulated in the sinogram and reconstructed by FBP.

Model (per 2D slice ``(H, W)``; volumes are processed per axis-0 slice):

1. the image is read as a relative attenuation map ``mu = (x - min) / (max - min)``
   (the minimum is air), zero-padded to a centred square of side ``S``;
2. ``p = radon(mu)`` (scikit-image; line integrals in pixel units) over
   ``n = clip(ceil(pi/2 * S), 32, 180)`` angles in [0, 180);
3. the line integrals are scaled by ``k = P_MAX / max(p)`` so that the most
   attenuating ray of the slice transmits ``exp(-P_MAX)`` of the beam, and the
   measurement is corrupted in the transmitted-count domain
   ``I = I0 * exp(-k p)``;
4. ``mu`` is reconstructed with filtered back-projection (``iradon``, ramp
   filter), cropped and mapped back to the input's units.

The inscribed-circle fast path (``circle=True``) is used when the attenuation
outside the inscribed circle is zero, the full square otherwise.
"""

from __future__ import annotations

import numpy as np

from .._optional import require
from .general import register

P_MAX = 4.0  # line integral (in units of 1/attenuation length) of the most attenuating ray
MAX_ANGLES = 180


def _square(mu: np.ndarray) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Zero-pad ``(H, W)`` to a centred ``(S, S)`` square; return it and the crop back."""
    h, w = mu.shape
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    out = np.zeros((s, s))
    out[top : top + h, left : left + w] = mu
    return out, (slice(top, top + h), slice(left, left + w))


def _fits_circle(square: np.ndarray) -> bool:
    s = square.shape[0]
    yy, xx = np.mgrid[:s, :s]
    centre = (s - 1) / 2
    outside = (yy - centre) ** 2 + (xx - centre) ** 2 > (s / 2 - 1) ** 2
    return not np.any(square[outside] > 1e-9)


class _Scanner:
    """Forward projection and FBP of one ``(H, W)`` slice with fixed geometry."""

    def __init__(self, x: np.ndarray, lo: float, hi: float):
        self.lo, self.span = lo, hi - lo
        self.mu, self.crop = _square((x - lo) / self.span)
        size = self.mu.shape[0]
        self.theta = np.linspace(0.0, 180.0, int(np.clip(np.ceil(np.pi / 2 * size), 32, MAX_ANGLES)), endpoint=False)
        self.circle = _fits_circle(self.mu)

    def project(self, mu: np.ndarray | None = None) -> np.ndarray:
        """Sinogram ``(n_detectors, n_angles)`` of ``mu`` (default: the slice itself)."""
        radon = require("skimage.transform", "bench").radon

        image = self.mu if mu is None else mu
        return radon(image, theta=self.theta, circle=self.circle, preserve_range=True)

    def reconstruct(self, sinogram: np.ndarray) -> np.ndarray:
        """FBP of a sinogram in ``mu`` units back to the input's ``(H, W)`` intensity units."""
        iradon = require("skimage.transform", "bench").iradon

        mu = iradon(sinogram, theta=self.theta, output_size=self.mu.shape[0], filter_name="ramp", circle=self.circle)
        return self.lo + mu[self.crop] * self.span


def _scale(sinogram: np.ndarray) -> float:
    peak = float(sinogram.max())
    return P_MAX / peak if peak > 0 else 1.0


def _measure(line_integrals: np.ndarray, k: float, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson counts for ``photons`` incident per ray; return measured line integrals (mu units)."""
    counts = rng.poisson(photons * np.exp(-k * line_integrals)).astype(np.float64)
    return -np.log(np.maximum(counts, 1.0) / photons) / k


@register(
    "ct_low_dose", "ct",
    "low-dose CT: Poisson noise on the transmitted counts (I0 photons per ray, most "
    "attenuating ray transmits exp(-4)), then filtered back-projection (skimage radon/iradon)",
    {1: {"photons": 1e4}, 2: {"photons": 2.5e3}, 3: {"photons": 6e2}},
    stochastic=True, slicewise=True,
)
def ct_low_dose(x, p, rng, lo, hi):
    scanner = _Scanner(x, lo, hi)
    sino = scanner.project()
    return scanner.reconstruct(_measure(sino, _scale(sino), float(p["photons"]), rng))


def _metal_points(mu: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``(count, 2)`` (row, col) centres deep inside the object, i.e. at least S/8 pixels
    inside the filled support ``mu > 0.05`` (anywhere central when there is no such place)."""
    from scipy.ndimage import binary_fill_holes, distance_transform_edt

    s = mu.shape[0]
    depth = distance_transform_edt(np.pad(binary_fill_holes(mu > 0.05), 1))[1:-1, 1:-1]
    candidates = np.argwhere(depth >= max(2.0, s / 8))
    if len(candidates) == 0:
        margin = s // 4
        candidates = np.argwhere(np.pad(np.ones((s - 2 * margin, s - 2 * margin), bool), margin))
    return candidates[rng.choice(len(candidates), size=count, replace=len(candidates) < count)]


def _disc_sinogram(centres: np.ndarray, radius: float, size: int, n_det: int, theta: np.ndarray) -> np.ndarray:
    """Exact line integrals ``(n_det, n_angles)`` through unit-attenuation discs.

    Uses scikit-image's radon geometry for an ``(size, size)`` image: a point at
    (row, col) projects to detector ``n_det // 2 + (col - c) cos(t) - (row - c) sin(t)``
    with ``c = size // 2``.  Each detector bin averages 4 sub-rays.
    """
    t = np.deg2rad(theta)
    det = np.arange(n_det) - n_det // 2
    sub = det[:, None, None] + np.array([-0.375, -0.125, 0.125, 0.375])[None, None, :]
    out = np.zeros((n_det, len(theta)))
    for row, col in centres:
        t0 = (col - size // 2) * np.cos(t) - (row - size // 2) * np.sin(t)
        chord = 2.0 * np.sqrt(np.maximum(radius**2 - (sub - t0[None, :, None]) ** 2, 0.0))
        out += chord.mean(axis=2)
    return out


@register(
    "ct_streak", "ct",
    "metal / streak artifact: `points` small discs (radius ~S/100 px) of `metal` times the "
    "maximum attenuation, placed deep inside the object; rays through them are photon-starved (Poisson "
    "counts at I0=1e5, floored at 1 count) and the saturated sinogram is reconstructed by FBP",
    {1: {"points": 1, "metal": 20.0}, 2: {"points": 2, "metal": 20.0}, 3: {"points": 4, "metal": 20.0}},
    stochastic=True, slicewise=True,
)
def ct_streak(x, p, rng, lo, hi):
    scanner = _Scanner(x, lo, hi)
    sino = scanner.project()
    k = _scale(sino)
    s = scanner.mu.shape[0]
    radius = max(1.0, s / 100.0)
    centres = _metal_points(scanner.mu, 4, rng)[: int(p["points"])]  # nested across levels
    sino_total = sino + float(p["metal"]) * _disc_sinogram(centres, radius, s, sino.shape[0], scanner.theta)
    return scanner.reconstruct(_measure(sino_total, k, 1e5, rng))


@register(
    "ct_ring", "ct",
    "ring artifact: per-detector gain errors g = 1 + gain_std * N(0, 1) (an additive offset "
    "-ln(g) on each detector's line integrals), reconstructed by FBP",
    {1: {"gain_std": 0.01}, 2: {"gain_std": 0.025}, 3: {"gain_std": 0.06}},
    stochastic=True, slicewise=True,
)
def ct_ring(x, p, rng, lo, hi):
    scanner = _Scanner(x, lo, hi)
    sino = scanner.project()
    k = _scale(sino)
    gains = np.clip(1.0 + p["gain_std"] * rng.standard_normal(sino.shape[0]), 0.05, None)
    return scanner.reconstruct(sino - np.log(gains)[:, None] / k)

"""MRI-specific degradations.

Rician noise and k-space undersampling are written with numpy (they are a few
lines of textbook physics); ghosting, k-space motion, spike and bias field use
TorchIO's non-random transforms (``torchio.Ghosting``, ``Motion``, ``Spike``,
``BiasField``) with explicit parameters drawn from the seed, so the torch
random state is never touched.

TorchIO layout: a 2D slice ``(H, W)`` is passed as a ``(1, 1, H, W)`` tensor
(channel, singleton, rows, cols), a volume ``(Z, Y, X)`` as ``(1, Z, Y, X)``.
In-plane 2D motion is therefore a rotation about tensor axis 0 and
translations along axes 1 and 2; the phase-encode (ghosting) axis is the
row axis (``H`` in 2D, ``Y`` in 3D); TorchIO splits k-space for motion along
the last axis (``W`` / ``X``).  Images are shifted so that their minimum is 0
before the Fourier-domain artifacts (MR magnitude images are non-negative),
then shifted back.
"""

from __future__ import annotations

import numpy as np

from .._optional import require
from .general import register


def _run_torchio(x: np.ndarray, transform) -> np.ndarray:
    """Apply a TorchIO intensity transform to a float64 ``(H, W)`` or ``(Z, Y, X)`` array."""
    import torch
    tio = require("torchio", "bench")

    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    tensor = tensor[None, None] if x.ndim == 2 else tensor[None]
    out = transform(tio.ScalarImage(tensor=tensor)).data.numpy()
    out = out[0, 0] if x.ndim == 2 else out[0]
    return out.astype(np.float64)


@register(
    "rician_noise", "mri",
    "Rician noise: magnitude of the (min-shifted) image plus complex Gaussian noise, "
    "sigma as a fraction of the intensity range",
    {1: {"sigma": 0.03}, 2: {"sigma": 0.07}, 3: {"sigma": 0.15}},
    stochastic=True, slicewise=True,
)
def rician_noise(x, p, rng, lo, hi):
    sigma = p["sigma"] * (hi - lo)
    real = (x - lo) + sigma * rng.standard_normal(x.shape)
    imag = sigma * rng.standard_normal(x.shape)
    return lo + np.hypot(real, imag)


@register(
    "bias_field", "mri",
    "smooth multiplicative intensity inhomogeneity (TorchIO BiasField): exp of a "
    "polynomial of the given order, non-constant coefficients drawn in [-coef, coef]",
    {1: {"order": 3, "coef": 0.2}, 2: {"order": 3, "coef": 0.4}, 3: {"order": 3, "coef": 0.7}},
    stochastic=True, slicewise=False,
)
def bias_field(x, p, rng, lo, hi):
    tio = require("torchio", "bench")

    order = int(p["order"])
    n_coefficients = (order + 1) * (order + 2) * (order + 3) // 6  # 3D monomials up to `order`
    coefficients = rng.uniform(-1.0, 1.0, n_coefficients) * p["coef"]
    coefficients[0] = 0.0  # the constant term would only rescale the whole image
    transform = tio.BiasField(coefficients=coefficients.tolist(), order=order)
    return lo + _run_torchio(x - lo, transform)


@register(
    "ghosting", "mri",
    "periodic-motion ghosts along the phase-encode (row) axis (TorchIO Ghosting): every "
    "`num_ghosts`-th k-space line scaled by 1 - intensity, k-space centre kept",
    {
        1: {"num_ghosts": 4, "intensity": 0.35},
        2: {"num_ghosts": 4, "intensity": 0.65},
        3: {"num_ghosts": 4, "intensity": 0.95},
    },
    stochastic=False, slicewise=False,
)
def ghosting(x, p, rng, lo, hi):
    tio = require("torchio", "bench")

    transform = tio.Ghosting(
        num_ghosts=int(p["num_ghosts"]), axis=1, intensity=float(p["intensity"]), restore=None
    )
    return lo + _run_torchio(x - lo, transform)


@register(
    "mri_motion", "mri",
    "rigid patient motion during a Cartesian acquisition (TorchIO Motion): the patient lies "
    "in the reference pose while the central `still_fraction` of k-space is read and in two "
    "seed-drawn poses (rotations up to `degrees`, shifts up to `shift_px`, in-plane for 2D) "
    "before and after; the same poses at every level, so higher levels corrupt a superset of k-space",
    {
        1: {"still_fraction": 0.6, "degrees": 4.0, "shift_px": 4.0},
        2: {"still_fraction": 0.35, "degrees": 4.0, "shift_px": 4.0},
        3: {"still_fraction": 0.15, "degrees": 4.0, "shift_px": 4.0},
    },
    stochastic=True, slicewise=False,
)
def mri_motion(x, p, rng, lo, hi):
    tio = require("torchio", "bench")

    signs = rng.choice([-1.0, 1.0], (2, 2, 3))
    degrees = signs[0] * rng.uniform(0.5, 1.0, (2, 3)) * p["degrees"]
    translation = signs[1] * rng.uniform(0.5, 1.0, (2, 3)) * p["shift_px"]
    if x.ndim == 2:  # the tensor is (1, 1, H, W): rotate about axis 0, shift along axes 1, 2
        degrees[:, 1:] = 0.0
        translation[:, 0] = 0.0
    # TorchIO fills k-space (last axis) in time order and gives the segment that holds
    # the k-space centre to the unmoved image: [0, t1) pose 1, [t1, t2) reference, [t2, 1] pose 2.
    half = 0.5 * float(p["still_fraction"])
    times = np.array([0.5 - half, 0.5 + half])
    transform = tio.Motion(
        degrees=degrees, translation=translation, times=times, image_interpolation="linear"
    )
    return lo + _run_torchio(x - lo, transform)


@register(
    "spike", "mri",
    "k-space spike / herringbone artifact (TorchIO Spike): `spikes` single k-space points "
    "at seed-drawn off-centre positions, each of `intensity` times the k-space maximum",
    {1: {"spikes": 1, "intensity": 0.15}, 2: {"spikes": 2, "intensity": 0.25}, 3: {"spikes": 3, "intensity": 0.45}},
    stochastic=True, slicewise=False,
)
def spike(x, p, rng, lo, hi):
    tio = require("torchio", "bench")

    # Relative k-space positions in [0, 1) per tensor axis, 0.5 = centre; draw the
    # largest set and use its first `spikes` rows so that levels are nested.
    offsets = rng.uniform(0.08, 0.4, (3, 3)) * rng.choice([-1.0, 1.0], (3, 3))
    positions = 0.5 + offsets[: int(p["spikes"])]
    if x.ndim == 2:  # axis 0 of the (1, 1, H, W) tensor has a single k-space plane
        positions[:, 0] = 0.5
    transform = tio.Spike(spikes_positions=positions, intensity=float(p["intensity"]))
    return lo + _run_torchio(x - lo, transform)


@register(
    "kspace_undersampling", "mri",
    "Cartesian k-space undersampling with zero-filled magnitude reconstruction (numpy FFT): "
    "phase-encode rows kept at random with acceleration R plus a fully sampled centre "
    "fraction; masks of higher levels are subsets of lower ones",
    {
        1: {"acceleration": 2, "center_fraction": 0.16},
        2: {"acceleration": 4, "center_fraction": 0.08},
        3: {"acceleration": 8, "center_fraction": 0.04},
    },
    stochastic=True, slicewise=True,
)
def kspace_undersampling(x, p, rng, lo, hi):
    n_rows = x.shape[0]
    score = rng.uniform(0.0, 1.0, n_rows)  # same draw at every level -> nested masks
    cf = float(p["center_fraction"])
    keep_prob = max(0.0, (1.0 / p["acceleration"] - cf) / (1.0 - cf))
    mask = score < keep_prob
    n_centre = max(1, int(round(cf * n_rows)))
    start = n_rows // 2 - n_centre // 2
    mask[start : start + n_centre] = True  # rows of the fftshift-ed spectrum
    spectrum = np.fft.fftshift(np.fft.fft2(x - lo))
    spectrum[~mask] = 0.0
    return lo + np.abs(np.fft.ifft2(np.fft.ifftshift(spectrum)))

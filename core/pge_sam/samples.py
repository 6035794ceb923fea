"""Offline sample data: the MNI ICBM152 2009 template and the Shepp-Logan phantom.

Nothing here downloads anything.

* MNI ICBM152 2009c (symmetric, 1 mm) T1 with its grey- and white-matter
  probability maps, read from the files the ``nilearn`` wheel ships in
  ``nilearn/datasets/data/`` (nilearn itself is not imported). The maps are
  stored as uint8; :func:`load_mni` returns them as float32 with their stored
  values (0..255 for the T1; probability maps are 0..255 too, i.e. probability
  x 255).
* The modified Shepp-Logan phantom of ``skimage.data`` (400 x 400, six
  intensity levels), resized with nearest-neighbour interpolation so every
  region keeps its exact intensity and the region masks of
  :func:`shepp_logan_regions` match the image pixel for pixel.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

from ._optional import MissingDependencyError, install_hint, require
from .errors import InputError

MNI_NAMES = ("t1", "gm", "wm")
_MNI_FILE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
SAMPLE_NAMES = ("mni_t1", "phantom")
# A phantom region smaller than this fraction of the image is dropped (at 256 x 256:
# 33 pixels, i.e. a disk of radius ~3 px, too small to click into reliably).
PHANTOM_MIN_AREA_FRACTION = 0.0005


def mni_path(name: str) -> pathlib.Path:
    """Path of the MNI ICBM152 2009 file ``name`` ("t1", "gm" or "wm") inside the installed nilearn.

    Raises :class:`InputError` for another name, :class:`~pge_sam._optional.MissingDependencyError`
    (``pip install "pge-sam[samples]"``) without nilearn and :class:`FileNotFoundError` (with the fix)
    when the file is missing.
    """
    if name not in MNI_NAMES:
        raise InputError(f"unknown MNI image {name!r}; choose one of {', '.join(MNI_NAMES)}")
    try:
        spec = importlib.util.find_spec("nilearn")
    except (ImportError, ValueError):  # a broken nilearn, or an import hook that hides it
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the MNI ICBM152 template ships with nilearn, which is not installed; install it with: "
            f"{install_hint('samples')}", name="nilearn", extra="samples")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / _MNI_FILE.format(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the installed nilearn; reinstall it with `pip install --force-reinstall nilearn`"
        )
    return path


def load_mni(name: str = "t1") -> tuple[np.ndarray, tuple[float, float, float]]:
    """Read MNI image ``name`` as float32 ``(Z, Y, X)`` (SimpleITK array order) and its spacing ``(z, y, x)`` in mm.

    Shape (189, 233, 197) at 1 mm; values as stored (0..255). Axis 0 runs
    inferior -> superior; the arrays of "t1", "gm" and "wm" share one grid.
    """
    import SimpleITK as sitk

    image = sitk.ReadImage(str(mni_path(name)))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    sx, sy, sz = (float(s) for s in image.GetSpacing())
    return array, (sz, sy, sx)


def _phantom_levels(size: int) -> np.ndarray:
    """The phantom at (size, size) by nearest-neighbour resizing, float64 with its exact six levels."""
    if not isinstance(size, (int, np.integer)) or size < 64:
        raise InputError(f"phantom size must be an integer >= 64 (got {size!r})")
    shepp_logan_phantom = require("skimage.data", "samples", "the Shepp-Logan phantom sample").shepp_logan_phantom

    phantom = shepp_logan_phantom()
    if phantom.shape[0] == size:
        return phantom
    # Nearest neighbour on pixel centres: output pixel i samples input pixel floor((i + 0.5) * n / size).
    n = phantom.shape[0]
    index = np.minimum(((np.arange(size) + 0.5) * n / size).astype(np.int64), n - 1)
    return phantom[np.ix_(index, index)]


def shepp_logan(size: int = 256) -> np.ndarray:
    """The modified Shepp-Logan phantom as float32 ``(size, size)`` in [0, 1] (nearest-neighbour resized)."""
    return _phantom_levels(size).astype(np.float32)


def shepp_logan_regions(size: int = 256, min_area_fraction: float = PHANTOM_MIN_AREA_FRACTION) -> list[np.ndarray]:
    """Ground-truth masks of the phantom regions visible as distinct intensity regions.

    Rule: for every distinct intensity level of :func:`shepp_logan` (six
    levels), each 4-connected component of the pixels at exactly that level is
    one region; the background (components touching the image border) and
    components smaller than ``min_area_fraction`` of the image are dropped.
    The head (the outer ellipse, i.e. every non-background pixel with holes
    filled) is added as one more region. A region keeps its holes (the brain
    tissue region has the ventricles as holes), so it is what one intensity
    class looks like. Returns boolean ``(size, size)`` masks, head first, then
    by decreasing area (ties: lower intensity first); deterministic.
    """
    from scipy import ndimage as ndi

    levels = _phantom_levels(size)
    min_area = max(1, int(np.ceil(min_area_fraction * levels.size)))
    found: list[tuple[int, float, np.ndarray]] = []
    background = np.zeros(levels.shape, dtype=bool)
    for value in np.unique(levels):
        labels, count = ndi.label(levels == value)
        for index in range(1, count + 1):
            region = labels == index
            if region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any():
                background |= region
                continue
            if region.sum() >= min_area:
                found.append((int(region.sum()), float(value), region))
    found.sort(key=lambda item: (-item[0], item[1]))
    head = ndi.binary_fill_holes(~background)
    return [head] + [region for _, _, region in found]


def sample_volume(name: str = "mni_t1") -> tuple[np.ndarray, tuple[float, ...]]:
    """A ready-to-use sample image and its spacing in mm.

    ``"mni_t1"``: the MNI T1, float32 ``(Z, Y, X)`` with spacing ``(z, y, x)``;
    ``"phantom"``: the Shepp-Logan phantom, float32 ``(256, 256)`` = (rows,
    cols) with spacing ``(1.0, 1.0)``.
    """
    if name == "mni_t1":
        return load_mni("t1")
    if name == "phantom":
        return shepp_logan(256), (1.0, 1.0)
    raise InputError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLE_NAMES)}")


# The modified 3D Shepp-Logan phantom: (value added, semi-axes a, b, c, centre x0, y0, z0, rotation phi in
# degrees about z), in the unit cube [-1, 1]^3. Numbers from the published 3D extension of the phantom
# (Kak & Slaney's ellipses with Toft's contrast; as tabulated in M. Schabel's phantom3d for MATLAB); the
# small out-of-plane tilt (psi = 10 deg) of the two ventricle ellipsoids is left out.
SHEPP_LOGAN_3D = (
    (1.0, 0.6900, 0.920, 0.810, 0.0, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.780, 0.0, -0.0184, 0.0, 0.0),
    (-0.2, 0.1100, 0.310, 0.220, 0.22, 0.0, 0.0, -18.0),
    (-0.2, 0.1600, 0.410, 0.280, -0.22, 0.0, 0.0, 18.0),
    (0.1, 0.2100, 0.250, 0.410, 0.0, 0.35, -0.15, 0.0),
    (0.1, 0.0460, 0.046, 0.050, 0.0, 0.1, 0.25, 0.0),
    (0.1, 0.0460, 0.046, 0.050, 0.0, -0.1, 0.25, 0.0),
    (0.1, 0.0460, 0.023, 0.050, -0.08, -0.605, 0.0, 0.0),
    (0.1, 0.0230, 0.023, 0.020, 0.0, -0.606, 0.0, 0.0),
    (0.1, 0.0230, 0.046, 0.020, 0.06, -0.605, 0.0, 0.0),
)


def shepp_logan_3d(size: int = 128, min_voxels: int = 200) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """The modified 3D Shepp-Logan phantom on a ``size``^3 grid and its regions.

    Returns ``volume``: float32 ``(Z, Y, X)`` with the phantom's levels (0 outside and in the ventricles,
    1.0 skull, 0.2 brain, 0.1 and 0.3 inner structures; superior = high z, anterior = low row), and
    ``regions``: (name, bool ``(Z, Y, X)`` mask), the same rule as :func:`shepp_logan_regions` in 3D: the
    head (every non-background voxel, holes filled), then each 6-connected component of one intensity level
    that does not touch the border and has at least ``min_voxels`` voxels, by decreasing size. Names say the
    level and rank (``level0.20_1``). Deterministic; no interpolation.
    """
    from scipy import ndimage as ndi

    if not isinstance(size, (int, np.integer)) or size < 32:
        raise InputError(f"phantom size must be an integer >= 32 (got {size!r})")
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    z, y, x = np.meshgrid(axis, -axis, axis, indexing="ij")  # rows run from y = +1 (top) to -1
    volume = np.zeros((size,) * 3, np.float64)
    for value, a, b, c, x0, y0, z0, phi in SHEPP_LOGAN_3D:
        t = np.deg2rad(phi)
        xr = (x - x0) * np.cos(t) + (y - y0) * np.sin(t)
        yr = -(x - x0) * np.sin(t) + (y - y0) * np.cos(t)
        volume[(xr / a) ** 2 + (yr / b) ** 2 + ((z - z0) / c) ** 2 <= 1.0] += value
    volume = np.round(volume, 6) + 0.0  # exact levels, no -0.0
    found, background = [], np.zeros(volume.shape, bool)
    for value in np.unique(volume):
        labels, count = ndi.label(volume == value)
        sizes = np.bincount(labels.ravel())
        border = set(np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(),
                                               labels[:, :, [0, -1]].ravel()])).tolist())
        for index in range(1, count + 1):
            if index in border:
                background |= labels == index
            elif sizes[index] >= min_voxels:
                found.append((int(sizes[index]), float(value), labels == index))
    found.sort(key=lambda item: (-item[0], item[1]))
    regions = [("head", ndi.binary_fill_holes(~background))]
    rank: dict[float, int] = {}
    for _, value, mask in found:
        rank[value] = rank.get(value, 0) + 1
        regions.append((f"level{value:.2f}_{rank[value]}", mask))
    return volume.astype(np.float32), regions

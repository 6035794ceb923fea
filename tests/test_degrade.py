"""Tests for pge_sam.degrade: every degradation, its contract and the preview grid.

Real offline images: the Shepp-Logan phantom (scikit-image) and an axial slice
of the MNI ICBM152 2009 T1 template shipped in nilearn's wheel.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np
import pytest
from PIL import Image
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from pge_sam import degrade
from pge_sam.degrade import preview
from pge_sam.errors import InputError

GENERAL = ["gaussian_noise", "gaussian_blur", "motion_blur", "downsample", "jpeg", "speckle"]
MRI = ["rician_noise", "bias_field", "ghosting", "mri_motion", "spike", "kspace_undersampling"]
CT = ["ct_low_dose", "ct_streak", "ct_ring"]
ALL = degrade.list_degradations()
BLURS = {"gaussian_blur", "motion_blur", "downsample"}  # judged by sharpness, the rest by PSNR


def _stochastic(name: str) -> bool:
    return degrade.get_degradation(name).stochastic


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    """Shepp-Logan phantom, float32 (128, 128), values in [0, 1]."""
    return resize(shepp_logan_phantom(), (128, 128), anti_aliasing=True).astype(np.float32)


@pytest.fixture(scope="module")
def mni_slice() -> np.ndarray:
    """Axial slice of the MNI T1 template, float32 (99, 117), every other voxel (non-square)."""
    import nibabel
    import nilearn

    path = (
        pathlib.Path(nilearn.__file__).parent / "datasets" / "data"
        / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    )
    volume = np.asarray(nibabel.load(path).dataobj, dtype=np.float32)  # (X, Y, Z) = (197, 233, 189)
    return np.ascontiguousarray(volume[::2, ::2, 94])


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    span = float(reference.max() - reference.min())
    mse = float(np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return np.inf if mse == 0 else 10 * np.log10(span**2 / mse)


def sharpness(image: np.ndarray) -> float:
    """Mean gradient magnitude."""
    gy, gx = np.gradient(image.astype(np.float64))
    return float(np.mean(np.hypot(gx, gy)))


def test_names_modalities_and_constants():
    assert degrade.MAX_SEVERITY == 3
    assert degrade.MODALITIES == ("mri", "ct")
    assert sorted(ALL) == sorted(GENERAL + MRI + CT)
    assert degrade.list_degradations("mri") == GENERAL + MRI
    assert degrade.list_degradations("ct") == GENERAL + CT


@pytest.mark.parametrize("name", ALL)
def test_describe_is_one_line_with_every_level(name):
    text = degrade.describe(name)
    assert "\n" not in text and text.startswith(name)
    for level, params in degrade.get_degradation(name).levels.items():
        assert f"{level}: " in text
        for key in params:
            assert f"{key}=" in text


@pytest.mark.parametrize("name", ALL)
def test_deterministic_given_seed(name, phantom):
    first = degrade.apply(phantom, name, 2, seed=3)
    again = degrade.apply(phantom, name, 2, seed=3)
    other = degrade.apply(phantom, name, 2, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, phantom)
    assert np.array_equal(first, other) != _stochastic(name)


@pytest.mark.parametrize("name", ALL)
def test_severity_zero_is_an_exact_copy(name, phantom):
    out = degrade.apply(phantom, name, 0, seed=1)
    np.testing.assert_array_equal(out, phantom)
    assert out.dtype == phantom.dtype and not np.shares_memory(out, phantom)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16])
@pytest.mark.parametrize("name", ALL)
def test_shape_dtype_and_range_kept(name, dtype, phantom):
    base = resize(phantom, (64, 56), anti_aliasing=True)  # non-square on purpose
    scaled = {np.float32: base * 3.0 - 1.0, np.uint8: base * 200 + 20, np.int16: base * 2000 - 1000}[dtype]
    image = np.rint(scaled).astype(dtype) if dtype != np.float32 else scaled.astype(dtype)
    out = degrade.apply(image, name, 3, seed=0)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert out.min() >= image.min() and out.max() <= image.max()
    assert not np.array_equal(out, image)


@pytest.mark.parametrize("name", ALL)
def test_volume(name, phantom):
    slice_ = resize(phantom, (48, 40), anti_aliasing=True).astype(np.float32)
    volume = np.stack([slice_] * 5)  # (Z, Y, X) = (5, 48, 40), identical slices
    out = degrade.apply(volume, name, 2, seed=7)
    assert out.shape == volume.shape and out.dtype == volume.dtype
    assert out.min() >= volume.min() and out.max() <= volume.max()
    np.testing.assert_array_equal(out, degrade.apply(volume, name, 2, seed=7))
    assert not np.array_equal(out, volume)
    if degrade.get_degradation(name).slicewise:
        # slice 0 uses the same derived seed as a 2D call; other slices get their own seeds
        np.testing.assert_array_equal(out[0], degrade.apply(slice_, name, 2, seed=7))
        assert np.array_equal(out[0], out[3]) != _stochastic(name)


def _assert_monotone(image: np.ndarray, name: str, seed: int) -> None:
    outs = [degrade.apply(image, name, s, seed=seed) for s in range(degrade.MAX_SEVERITY + 1)]
    if name in BLURS:
        values = [sharpness(o) for o in outs]
    else:
        values = [psnr(o, image) for o in outs]
        assert values[0] == np.inf and np.isfinite(values[1])
    assert all(a > b for a, b in zip(values, values[1:])), f"{name} not monotone: {values}"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", ALL)
def test_severity_monotone_on_phantom(name, seed, phantom):
    _assert_monotone(phantom, name, seed)


@pytest.mark.parametrize("name", GENERAL + MRI)
def test_severity_monotone_on_mni_t1(name, mni_slice):
    _assert_monotone(mni_slice, name, seed=0)


def test_256_slice_is_fast():
    image = resize(shepp_logan_phantom(), (256, 256)).astype(np.float32)
    for name in ALL:
        start = time.perf_counter()
        degrade.apply(image, name, 3, seed=0)
        # target is well under 1 s; the bound leaves room for a busy 2-core machine
        assert time.perf_counter() - start < 2.5, name


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros(16, np.float32), "2D"),
        (np.zeros((2, 2, 16, 16), np.float32), "2D"),
        (np.full((16, 16), np.nan, np.float32), "NaN"),
        (np.full((16, 16), np.inf), "inf"),
        (np.zeros((16, 16), np.complex64), "dtype"),
        (np.zeros((16, 16), bool), "dtype"),
        (np.zeros((4, 16)), "too small"),
        ([[0.0] * 16] * 16, "numpy"),
    ],
)
def test_bad_image_is_rejected(image, match):
    with pytest.raises(degrade.DegradationError, match=match):
        degrade.apply(image, "gaussian_noise", 1)


def test_bad_name_severity_seed_modality(phantom):
    with pytest.raises(ValueError) as info:
        degrade.apply(phantom, "gaussian_nois", 1)
    assert isinstance(info.value, InputError)
    assert all(name in str(info.value) for name in ALL)  # the message lists the valid names
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade.describe("salt_and_pepper")
    for severity in (-1, 4, 1.0, True, "2"):
        with pytest.raises(ValueError, match="severity"):
            degrade.apply(phantom, "jpeg", severity)
    for seed in (-1, 0.5, None):
        with pytest.raises(ValueError, match="seed"):
            degrade.apply(phantom, "jpeg", 1, seed=seed)
    with pytest.raises(ValueError, match="modality"):
        degrade.list_degradations("ultrasound")


def test_constant_image_stays_constant():
    image = np.full((16, 16), 7, np.int16)
    for name in ALL:
        np.testing.assert_array_equal(degrade.apply(image, name, 3), image)


def test_preview_grid_layout_and_content(phantom, tmp_path):
    names = degrade.list_degradations("ct")
    out = preview.write_preview_grid(phantom, tmp_path / "sub" / "ct.png", "ct", seed=0)
    assert out == tmp_path / "sub" / "ct.png" and out.is_file()
    grid = np.asarray(Image.open(out).convert("L"), dtype=np.float64)
    assert grid.shape == preview.grid_shape_px(len(names))

    def cell(row: int, col: int) -> np.ndarray:
        top, left = preview.HEADER_PX + row * preview.CELL_PX, preview.LABEL_PX + col * preview.CELL_PX
        return grid[top + 4 : top + preview.CELL_PX - 4, left + 4 : left + preview.CELL_PX - 4]

    clean = cell(0, 0)
    expected = resize(phantom, (preview.CELL_PX - 4,) * 2, order=0)[2:-2, 2:-2]
    assert np.corrcoef(clean.ravel(), expected.ravel())[0, 1] > 0.9
    for row in range(len(names)):  # every row starts with the same clean image
        assert np.abs(cell(row, 0) - clean).mean() < 1.0
    blur_row = names.index("gaussian_blur")
    assert sharpness(cell(blur_row, 3)) < 0.6 * sharpness(cell(blur_row, 0))
    noise_row = names.index("gaussian_noise")
    assert np.abs(cell(noise_row, 3) - clean).mean() > 5.0

    two = preview.write_preview_grid(phantom, tmp_path / "two.png", "ct", names=["jpeg", "ct_ring"])
    height, width = Image.open(two).size[::-1]
    assert (height, width) == preview.grid_shape_px(2)
    assert grid.shape[0] - height == (len(names) - 2) * preview.CELL_PX


def test_preview_rejects_bad_input(phantom, tmp_path):
    with pytest.raises(ValueError, match="2D"):
        preview.write_preview_grid(np.stack([phantom] * 2), tmp_path / "a.png", "mri")
    with pytest.raises(ValueError, match="modality"):
        preview.write_preview_grid(phantom, tmp_path / "a.png", "pet")
    with pytest.raises(ValueError, match="ct_ring"):
        preview.write_preview_grid(phantom, tmp_path / "a.png", "mri", names=["ct_ring"])
    assert not (tmp_path / "a.png").exists()

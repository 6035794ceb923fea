"""pge_sam.degrade.volume: ``apply`` with progress and cancel (the napari degradation preview runs it in a worker)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from pge_sam import degrade
from pge_sam.degrade.volume import apply_with_progress, preview_label, steps
from pge_sam.errors import Cancelled, InputError
from pge_sam.progress import RecordingProgress

ALL = degrade.list_degradations()


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    """(Z, Y, X) = (3, 40, 36) float32: the phantom, shifted a little from slice to slice."""
    base = resize(shepp_logan_phantom(), (40, 40), anti_aliasing=True).astype(np.float32)
    return np.stack([base[:, z:z + 36] * (1.0 + 0.1 * z) for z in range(3)])


@pytest.mark.parametrize("name", ALL)
def test_equals_apply_on_volumes_and_slices_and_reports_progress(name, volume):
    before = volume.copy()
    progress = RecordingProgress()
    out = apply_with_progress(volume, name, 2, seed=5, progress=progress)
    np.testing.assert_array_equal(out, degrade.apply(volume, name, 2, seed=5))
    assert out.dtype == volume.dtype and not np.shares_memory(out, volume)
    np.testing.assert_array_equal(volume, before)  # the input is untouched
    expected = 3 if degrade.get_degradation(name).slicewise else 1
    assert progress.total == progress.done == expected == steps(volume.shape, name)
    slice_ = volume[1]
    np.testing.assert_array_equal(apply_with_progress(slice_, name, 2, seed=5), degrade.apply(slice_, name, 2, seed=5))


@pytest.mark.parametrize("name", ["gaussian_noise", "jpeg", "bias_field"])
def test_single_slice_volume_integer_dtype_and_array_likes(name, volume):
    thin = np.rint(volume[:1] * 1000).astype(np.int16)  # (1, Y, X): still a volume, per-slice path
    np.testing.assert_array_equal(apply_with_progress(thin, name, 3, seed=1), degrade.apply(thin, name, 3, seed=1))
    dask_array = pytest.importorskip("dask.array")
    lazy = dask_array.from_array(volume, chunks=(1, 40, 36))
    np.testing.assert_array_equal(apply_with_progress(lazy, name, 1, seed=2), degrade.apply(volume, name, 1, seed=2))


def test_severity_zero_and_constant_images_are_copies(volume):
    progress = RecordingProgress()
    out = apply_with_progress(volume, "gaussian_noise", 0, progress=progress)
    np.testing.assert_array_equal(out, volume)
    assert not np.shares_memory(out, volume) and progress.done == progress.total == 3
    flat = np.full((2, 16, 16), 7, np.uint8)
    np.testing.assert_array_equal(apply_with_progress(flat, "gaussian_noise", 3), flat)


def test_cancel_stops_between_slices(volume):
    with pytest.raises(Cancelled, match="gaussian_noise.*cancelled"):
        apply_with_progress(volume, "gaussian_noise", 2, progress=RecordingProgress(cancel_after=1))
    progress = RecordingProgress(cancel_after=0)  # cancelled before it starts
    with pytest.raises(Cancelled):
        apply_with_progress(volume, "ghosting", 2, progress=progress)
    assert progress.done == 0


@pytest.mark.parametrize("args, match", [
    ((np.zeros((4, 4)), "gaussian_noise", 1), "too small"),
    ((np.zeros((2, 3, 16, 16)), "gaussian_noise", 1), "2D .* or a 3D"),
    ((np.zeros((16, 16), bool), "gaussian_noise", 1), "dtype"),
    ((np.zeros((16, 16)), "no_such", 1), "unknown degradation"),
    ((np.zeros((16, 16)), "jpeg", 4), "severity"),
])
def test_bad_arguments_raise_input_errors(args, match):
    with pytest.raises(InputError, match=match):
        apply_with_progress(*args)


def test_preview_label():
    assert preview_label("gaussian_noise", 2) == "gaussian_noise s2"
    assert preview_label("ct_ring", 1, seed=7) == "ct_ring s1 seed 7"
    with pytest.raises(InputError, match="unknown degradation"):
        preview_label("nope", 1)
    with pytest.raises(InputError, match="seed"):
        preview_label("jpeg", 1, seed=-1)

"""Offline sample data: MNI ICBM152 from nilearn's wheel and the Shepp-Logan phantom."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy import ndimage as ndi

from pge_sam import samples
from pge_sam.errors import InputError


@pytest.mark.parametrize("name", ["t1", "gm", "wm"])
def test_mni_path_points_at_the_shipped_file(name):
    path = samples.mni_path(name)
    assert path.is_file()
    assert path.name == f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
    assert path.parent.parts[-3:] == ("nilearn", "datasets", "data")


def test_mni_path_rejects_unknown_names():
    with pytest.raises(InputError, match="t1, gm, wm"):
        samples.mni_path("csf")


def test_missing_nilearn_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nilearn" else real(name, *a))
    from pge_sam._optional import MissingDependencyError

    with pytest.raises(MissingDependencyError, match=r'pip install "pge-sam\[samples\]"') as info:
        samples.mni_path("t1")
    assert isinstance(info.value, ImportError) and info.value.extra == "samples"


def test_load_mni_gives_zyx_float32_on_one_grid():
    t1, spacing = samples.load_mni("t1")
    wm, wm_spacing = samples.load_mni("wm")
    assert t1.dtype == np.float32 and wm.dtype == np.float32
    # SimpleITK array order (Z, Y, X) of the 197 x 233 x 189 (x, y, z) template
    assert t1.shape == (189, 233, 197) == wm.shape
    assert spacing == (1.0, 1.0, 1.0) == wm_spacing
    assert 0.0 <= wm.min() and wm.max() <= 255.0
    # white matter is bright on T1: its mean T1 value exceeds the whole head's
    assert t1[wm > 127.5].mean() > t1[t1 > 0].mean()


def test_shepp_logan_keeps_exact_levels():
    image = samples.shepp_logan(256)
    assert image.shape == (256, 256) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    native = samples.shepp_logan(400)
    np.testing.assert_array_equal(np.unique(image), np.unique(native))
    assert len(np.unique(image)) == 6  # nearest neighbour: no partial-volume values
    with pytest.raises(InputError):
        samples.shepp_logan(10)


@pytest.mark.parametrize("size", [256, 400])
def test_shepp_logan_regions_follow_the_documented_rule(size):
    image = samples.shepp_logan(size)
    regions = samples.shepp_logan_regions(size)
    head, parts = regions[0], regions[1:]
    min_area = np.ceil(samples.PHANTOM_MIN_AREA_FRACTION * image.size)
    assert len(parts) >= 8
    # head = the filled outer ellipse: every non-zero pixel, not touching the border
    assert head[image > 0].all() and not head[0].any() and not head[:, 0].any()
    areas = [int(p.sum()) for p in parts]
    assert areas == sorted(areas, reverse=True) and min(areas) >= min_area
    covered = np.zeros(image.shape, dtype=int)
    for part in parts:
        assert part.dtype == bool and part.shape == image.shape
        assert len(np.unique(image[part])) == 1  # one intensity level
        assert ndi.label(part)[1] == 1  # one connected component
        assert not (part & ~head).any()
        covered += part
    assert covered.max() == 1  # regions do not overlap
    # the brain tissue (level 0.2, ventricles as holes) is the largest part, two dark ventricles follow
    assert np.isclose(image[parts[0]][0], 0.2)
    assert sum(np.isclose(image[p][0], 0.0) for p in parts) == 2


def test_sample_volume_names():
    volume, spacing = samples.sample_volume("phantom")
    assert volume.shape == (256, 256) and spacing == (1.0, 1.0)
    with pytest.raises(InputError, match="mni_t1, phantom"):
        samples.sample_volume("lena")

"""SynthSeg-style generator: determinism, shapes, mask rules, thin GM ribbons, contrast."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from pge_sam.train.synth_config import SynthConfigError
from pge_sam.train.synthseg import (
    COMPOUND_KINDS,
    generate_synthseg_scene,
    write_synthseg_preview,
)

SEEDS = range(40)


@pytest.fixture(scope="module")
def scenes():
    return [generate_synthseg_scene(s) for s in SEEDS]


def _brain(scenes):
    return [sc for sc in scenes if "gm" in sc.kinds]


def _mask(scene, kind):
    return scene.masks[scene.kinds.index(kind)]


def ribbon_thickness(mask: np.ndarray) -> float:
    """Median width of a ribbon in px: 2 * EDT - 1 on its ridge (local maxima of the EDT)."""
    d = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    ridge = mask & (d >= ndi.maximum_filter(d, 3))
    return float(np.median(2 * d[ridge] - 1))


def test_deterministic_per_seed():
    for size in (128, 256):
        a, b = generate_synthseg_scene(7, size), generate_synthseg_scene(7, size)
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.masks, b.masks)
        assert a.kinds == b.kinds and a.style == b.style == "synthseg"


def test_different_seeds_differ(scenes):
    images = [sc.image for sc in scenes[:6]]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert not np.array_equal(images[i], images[j])


@pytest.mark.parametrize("size", [64, 128, 256])
def test_shapes_dtypes_ranges(size):
    for seed in range(12):
        sc = generate_synthseg_scene(seed, size)
        assert sc.image.shape == (size, size) and sc.image.dtype == np.float32
        assert np.isfinite(sc.image).all() and sc.image.min() >= 0.0 and sc.image.max() <= 1.0
        assert sc.image.max() - sc.image.min() > 0.5  # rescaled, not flat
        assert sc.masks.dtype == bool and sc.masks.ndim == 3 and sc.masks.shape[1:] == (size, size)
        assert sc.masks.shape[0] >= 1 and len(sc.kinds) == sc.masks.shape[0]
        assert all(isinstance(k, str) and k for k in sc.kinds)
        assert sc.style == "synthseg"


def test_every_mask_large_enough(scenes):
    for sc in scenes:
        assert sc.masks.reshape(len(sc.masks), -1).sum(1).min() >= 24


def test_label_masks_disjoint_and_compounds_contain_parts(scenes):
    for sc in scenes:
        prim = np.array([k not in COMPOUND_KINDS for k in sc.kinds])
        assert prim.any()
        assert sc.masks[prim].sum(0).max() <= 1, "label masks must not overlap"
        for c in sc.masks[~prim]:  # compounds are unions of whole label regions
            for m in sc.masks[prim]:
                inter = np.count_nonzero(m & c)
                assert inter == 0 or inter == np.count_nonzero(m)
        if "wm+ventricles" in sc.kinds:
            assert not (_mask(sc, "wm") & ~_mask(sc, "wm+ventricles")).any()
        if "brain" in sc.kinds:
            assert not (_mask(sc, "gm") & ~_mask(sc, "brain")).any()


def test_brain_and_generic_layouts_both_occur(scenes):
    n_brain = len(_brain(scenes))
    assert 0.4 * len(scenes) <= n_brain < len(scenes)


def test_thin_targets_in_brain_scenes(scenes):
    brains = _brain(scenes)
    widths = []
    for sc in brains:
        assert "csf" in sc.kinds and "wm" in sc.kinds
        gm = _mask(sc, "gm")
        widths.append(ribbon_thickness(gm))
        # a ribbon, not a blob: its area is small relative to the brain it wraps
        assert gm.sum() < 0.5 * _mask(sc, "brain").sum()
    assert all(1.0 <= w <= 6.0 for w in widths), widths
    assert len(set(np.round(widths, 2))) > 1, "ribbon thickness should vary between scenes"


def test_ribbon_thickness_metric():
    m = np.zeros((40, 40), bool)
    m[10:30, 5:8] = True
    assert ribbon_thickness(m) == pytest.approx(3.0)
    m[:, :] = False
    m[5:35, 5:35] = True
    assert ribbon_thickness(m) > 6.0


def test_intensities_differ_between_labels(scenes):
    brains = _brain(scenes)
    gm_wm = [abs(sc.image[_mask(sc, "gm")].mean() - sc.image[_mask(sc, "wm")].mean()) for sc in brains]
    assert np.mean(np.array(gm_wm) > 0.03) >= 0.8, gm_wm
    generic = [sc for sc in scenes if "gm" not in sc.kinds]
    spread = [np.ptp([sc.image[m].mean() for m in sc.masks]) for sc in generic]
    assert np.mean(np.array(spread) > 0.05) >= 0.8, spread


def test_contrast_orderings_vary(scenes):
    orders = []
    for sc in _brain(scenes):
        csf, gm, wm = (sc.image[_mask(sc, k)].mean() for k in ("csf", "gm", "wm"))
        orders.append("t1" if csf < gm < wm else "t2" if csf > gm > wm else "other")
    assert orders.count("t1") >= 3 and orders.count("t2") >= 2 and orders.count("other") >= 2, orders


def test_bad_arguments():
    with pytest.raises(SynthConfigError):
        generate_synthseg_scene(-1)
    with pytest.raises(SynthConfigError):
        generate_synthseg_scene(0, size=16)
    with pytest.raises(SynthConfigError):
        generate_synthseg_scene(0, size=100.0)


def test_preview(tmp_path):
    out = write_synthseg_preview(tmp_path / "sub" / "p.png", n=2, seed=3)
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SynthConfigError):
        write_synthseg_preview(tmp_path / "p.jpg", n=1)

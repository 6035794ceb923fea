"""Tests of the procedural training-scene generator pge_sam.train.synth."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image, skeletonize

from pge_sam.errors import InputError
from pge_sam.train import (
    KINDS,
    STYLES,
    Scene,
    SynthConfig,
    SynthConfigError,
    SynthDataset,
    generate_scene,
    write_synth_preview,
)

ALL_KINDS = set(KINDS) | {"body", "compound"}
CLEAN = dict(texture=(0.0, 0.0), noise_std=(0.0, 0.0), bias=(0.0, 0.0), blur_sigma=(0.0, 0.0),
             gamma=(1.0, 1.0), p_invert=0.0, p_negative=0.0, profile_weights={"flat": 1.0})


def _primitive(scene: Scene):
    return [(m, k) for m, k in zip(scene.masks, scene.kinds) if k != "compound"]


def test_same_seed_same_scene_and_different_seeds_differ():
    a, b, c = generate_scene(7), generate_scene(7), generate_scene(8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert a.kinds == b.kinds and a.style == b.style
    assert a.image.shape == c.image.shape
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("seed", range(10))
def test_shapes_dtypes_ranges_and_mask_rules(seed):
    cfg = SynthConfig()
    s = generate_scene(seed, cfg)
    assert s.image.shape == (256, 256) and s.image.dtype == np.float32
    assert np.isfinite(s.image).all() and s.image.min() >= 0.0 and s.image.max() <= 1.0
    assert s.image.max() - s.image.min() > 0.5  # normalised, not a flat picture
    k = len(s.kinds)
    assert k >= 1 and s.masks.shape == (k, 256, 256) and s.masks.dtype == bool
    assert set(s.kinds) <= ALL_KINDS and s.style in STYLES
    assert (s.masks.sum(axis=(1, 2)) >= cfg.min_area).all()
    prim = np.stack([m for m, _ in _primitive(s)])
    assert prim.sum(axis=0).max() <= 1, "visible (primitive) masks must be disjoint"
    for m, kind in zip(s.masks, s.kinds):
        if kind == "compound":  # a union of >= 2 primitive masks
            inside = [p for p in prim if (p & m).any()]
            assert len(inside) >= 2
            np.testing.assert_array_equal(np.logical_or.reduce(inside), m)


def test_small_canvas_and_no_supersampling():
    cfg = SynthConfig(size=64, supersample=1, min_area=8, compound_masks=False)
    for seed in range(4):
        s = generate_scene(seed, cfg)
        assert s.image.shape == (64, 64) and s.masks.shape[1:] == (64, 64)
        assert "compound" not in s.kinds
        assert (s.masks.sum(axis=(1, 2)) >= 8).all()


@pytest.mark.parametrize("kind", KINDS)
def test_requested_kind_appears(kind):
    cfg = SynthConfig(style_weights={"tissue": 1, "field": 1}, kind_weights={kind: 1.0})
    found = [k for seed in range(6) for k in generate_scene(seed, cfg).kinds]
    assert kind in found
    assert set(found) <= {kind, "body", "ring", "compound"}  # ring: the optional body shell


def _width(mask):
    return mask.sum() / max(skeletonize(mask).sum(), 1)


def test_tubes_are_thin_and_blobs_are_not():
    tubes = SynthConfig(style_weights={"tissue": 1}, kind_weights={"tube": 1.0})
    blobs = SynthConfig(style_weights={"tissue": 1}, kind_weights={"blob": 1.0})
    tw = [_width(m) for s in range(8)
          for m, k in _primitive(generate_scene(s, tubes)) if k == "tube"]
    bw = [_width(m) for s in range(8)
          for m, k in _primitive(generate_scene(s, blobs)) if k == "blob"]
    assert len(tw) >= 5 and len(bw) >= 5
    assert np.median(tw) < 5.5, tw  # tube radius 0.7-2.5 px: width of a few pixels
    assert np.median(bw) > 2 * np.median(tw), (bw, tw)


def test_concave_objects_are_concave():
    cfg = SynthConfig(style_weights={"tissue": 1}, kind_weights={"concave": 1.0}, p_nested=0.0)
    sol = [m.sum() / convex_hull_image(m).sum() for s in range(8)
           for m, k in _primitive(generate_scene(s, cfg)) if k == "concave"]
    assert len(sol) >= 5 and np.median(sol) < 0.8, sol


def test_brain_and_phantom_styles_have_their_anatomy():
    brain = [generate_scene(s, SynthConfig(style_weights={"brain": 1})) for s in range(4)]
    for s in brain:
        assert s.style == "brain" and {"body", "folded", "compound"} <= set(s.kinds)
        body = s.masks[s.kinds.index("body")]
        wm = s.masks[s.kinds.index("folded")]
        whole = [m for m, k in zip(s.masks, s.kinds) if k == "compound" and (m & wm).any()]
        assert whole and any((m >= body).all() and (m >= wm).all() for m in whole)
    assert sum("concave" in s.kinds for s in brain) >= 2  # ventricles in most slices
    for seed in range(4):
        s = generate_scene(seed, SynthConfig(style_weights={"phantom": 1}))
        assert s.style == "phantom" and set(s.kinds) <= {"ring", "body", "ellipse", "compound"}
        assert "ellipse" in s.kinds


def test_objects_are_visible_against_their_surroundings():
    diffs = []
    for seed in range(12):
        s = generate_scene(seed)
        for m, _ in _primitive(s):
            ring = ndi.binary_dilation(m, iterations=3) & ~m
            if ring.sum() >= 10:
                diffs.append(abs(s.image[m].mean() - s.image[ring].mean()))
    diffs = np.array(diffs)
    assert diffs.size >= 40
    assert (diffs > 0.02).mean() >= 0.8, np.sort(diffs)[:20]


def test_shells_stay_visible_against_air_when_contrast_is_inverted():
    cfg = SynthConfig(p_invert=1.0, p_negative=0.0, style_weights={"phantom": 1, "brain": 1})
    diffs = []
    for seed in range(10):
        s = generate_scene(seed, cfg)
        anything = s.masks.any(axis=0)
        for m, kind in _primitive(s):
            air = ndi.binary_dilation(m, iterations=2) & ~anything
            if kind == "ring" and air.sum() > 20:
                diffs.append(abs(s.image[m].mean() - s.image[air].mean()))
    assert len(diffs) >= 5 and min(diffs) > 0.05, diffs


def test_masks_match_image_geometry_without_effects():
    """With effects off each object is flat, so its mask interior has one value."""
    cfg = SynthConfig(**CLEAN)
    for seed in range(6):
        s = generate_scene(seed, cfg)
        prim = _primitive(s)
        for m, kind in prim:
            core = ndi.binary_erosion(m)
            if core.sum() < 10:
                continue
            vals = s.image[core]
            assert (np.abs(vals - np.median(vals)) < 1e-4).mean() > 0.9, (seed, kind)
        # partial volume: border pixels mix levels, so far more values than objects
        assert np.unique(np.round(s.image, 5)).size > 2 * (len(prim) + 1)


def test_dataset_indexing():
    cfg = SynthConfig(size=64, min_area=8)
    ds = SynthDataset(3, cfg, base_seed=5)
    assert len(ds) == 3
    np.testing.assert_array_equal(ds[1].image, generate_scene(6, cfg).image)
    np.testing.assert_array_equal(ds[-1].masks, generate_scene(7, cfg).masks)
    assert len(list(ds)) == 3
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(TypeError):
        ds["0"]
    with pytest.raises(SynthConfigError):
        SynthDataset(-1)


def test_preview_writes_png(tmp_path):
    out = write_synth_preview(tmp_path / "sub" / "preview.png", n=3, seed=2)
    assert out == tmp_path / "sub" / "preview.png" and out.is_file()
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
    with pytest.raises(SynthConfigError):
        write_synth_preview(tmp_path / "preview.jpg", n=1)


def test_config_validation_and_normalisation():
    cfg = SynthConfig(kind_weights={"tube": 2, "blob": 1})
    assert cfg.kind_weights == (("blob", 1.0), ("tube", 2.0))
    assert cfg == SynthConfig(kind_weights={"blob": 1, "tube": 2}) and hash(cfg)
    bad = [dict(style_weights={"liver": 1}), dict(kind_weights={"tube": -1}),
           dict(kind_weights={"tube": 0}), dict(size=8), dict(supersample=0),
           dict(contrast=(0.3, 0.1)), dict(gamma=(0.0, 1.0)), dict(p_nested=1.5),
           dict(n_objects=(5, 2)), dict(min_area=0)]
    for kwargs in bad:
        with pytest.raises(SynthConfigError):
            SynthConfig(**kwargs)
    assert issubclass(SynthConfigError, InputError) and issubclass(SynthConfigError, ValueError)
    for seed in (-1, 1.5, True):
        with pytest.raises(SynthConfigError):
            generate_scene(seed)
    with pytest.raises(SynthConfigError):
        generate_scene(0, config={"size": 64})


def test_generation_is_fast_enough_for_on_the_fly_training():
    generate_scene(0)
    start = time.perf_counter()
    for seed in range(10):
        generate_scene(seed)
    per_scene = (time.perf_counter() - start) / 10
    assert per_scene < 0.2, f"{per_scene * 1000:.0f} ms per 256x256 scene"

"""The weights shipped inside the package: present, within budget, documented, and they segment.

Threshold for the one-click phantom test, on the larger of the phantom's two
dark ellipses (3265 px, axis ratio 0.38, clicked at its innermost pixel):
IoU > 0.6. The largest disk around the click that stays inside the ellipse
scores 0.40 and the random walker seeded by the same click 0.10; the shipped
sam_tiny and pge_sam_tiny score 0.704 and 0.712 (v1, when the threshold was
set: 0.650 and 0.654; docs/model_cards.md), robust_sam_tiny 0.680, sam_ref_tiny 0.695 (sam_tiny v6 0.737). 0.6
requires a mask that follows the ellipse's long axis well beyond any disk
around the click, and a retrained model that does worse than the shipped one
on this ellipse fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from pge_sam import Session, build_model
from pge_sam.models.registry import adapter_path, default_model, ref_adapter_path, robust_adapter_path, shipped_path
from pge_sam.models.weights import read_safetensors
from pge_sam.predictor import Predictor
from pge_sam.samples import shepp_logan, shepp_logan_regions
from scipy import ndimage
from skimage.measure import regionprops

TINY = ["sam_tiny", "pge_sam_tiny"]
SHIPPED = {"sam_tiny": shipped_path("sam_tiny"), "pge_sam_tiny": adapter_path("tiny"),
           "robust_sam_tiny": robust_adapter_path("tiny"), "sam_ref_tiny": ref_adapter_path("tiny")}


def test_both_tiny_models_are_shipped_within_12_mb_and_pge_is_the_default():
    files = [shipped_path("sam_tiny"), adapter_path("tiny")]
    assert all(f.is_file() for f in files), files
    assert sum(f.stat().st_size for f in files) <= 12 * 1024 * 1024
    assert default_model() == "pge_sam_tiny"
    robust = robust_adapter_path("tiny")  # the side-by-side RobustSAM modules, fp16, outside the 12 MB budget
    assert robust.is_file() and robust.stat().st_size <= 11 * 1024 * 1024


@pytest.mark.parametrize("path", list(SHIPPED.values()), ids=list(SHIPPED))
def test_shipped_files_carry_their_provenance(path):
    _, info = read_safetensors(path)
    assert info["steps"] > 0 and info["wall_seconds"] > 0 and info["machine"]
    assert "procedural" in info["training_data"]
    assert info["config"]["stage"] in ("base", "pge", "robust", "ref")


def dark_ellipse() -> np.ndarray:
    """The larger dark ellipse of the 256 x 256 phantom (the region of intensity 0 with the most pixels)."""
    image = shepp_logan(256)
    dark = [r for r in shepp_logan_regions(256) if image[r].max() == 0.0 and image[r].size]
    return max(dark, key=lambda r: int(r.sum()))


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_weights_segment_a_phantom_ellipse_from_one_click(name):
    image, ellipse = shepp_logan(256), dark_ellipse()
    props = regionprops(ellipse.astype(int))[0]
    assert props.solidity > 0.95 and 0.3 < props.axis_minor_length / props.axis_major_length < 0.45
    row, col = np.unravel_index(np.argmax(ndimage.distance_transform_edt(ellipse)), ellipse.shape)
    labels = np.zeros(image.shape, np.uint8)
    session = Session(Predictor(build_model(name, device="cpu")), image, labels, prefetch=0)
    session.add_point((int(row), int(col)))
    mask = labels == session.label
    iou = (mask & ellipse).sum() / (mask | ellipse).sum()
    assert iou > 0.6, f"{name}: IoU {iou:.3f} with the phantom's dark ellipse"


@pytest.mark.parametrize("name", TINY)
def test_consistent_positive_clicks_never_shrink_the_mask(name):
    """Three positive clicks, each at the centre of the largest missed part of the phantom's dark ellipse.

    Every click is consistent with the truth (it lies in a false-negative region), so the object may only
    grow: the mask after each click must hold at least as many pixels as before it and still hold every
    positive click. (sam_tiny v5 and v6 grow 2414 -> 2934 -> 4410 -> 5698 and 2678 -> 3431 -> 4888 -> 5832
    pixels here; docs/model_cards.md.)
    """
    image, ellipse = shepp_logan(256), dark_ellipse()
    labels = np.zeros(image.shape, np.uint8)
    session = Session(Predictor(build_model(name, device="cpu")), image, labels, prefetch=0)
    row, col = np.unravel_index(np.argmax(ndimage.distance_transform_edt(ellipse)), ellipse.shape)
    clicks = [(int(row), int(col))]
    session.add_point(clicks[0])
    sizes = [int((labels == session.label).sum())]
    for _ in range(3):
        missed = ellipse & (labels != session.label)
        if missed.sum() < 10:
            break
        depth = ndimage.distance_transform_edt(np.pad(missed, 1))[1:-1, 1:-1]
        clicks.append(tuple(int(v) for v in np.unravel_index(np.argmax(depth), depth.shape)))
        session.add_point(clicks[-1])
        mask = labels == session.label
        sizes.append(int(mask.sum()))
        assert all(mask[r, c] for r, c in clicks), f"{name}: a positive click fell outside the mask ({clicks})"
    assert sizes == sorted(sizes), f"{name}: a consistent positive click shrank the mask: {sizes}"

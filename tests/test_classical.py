"""Classical click baselines: the fixed random walker and region growing, watershed, GrabCut, the large reference."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from pge_sam.errors import InputError
from pge_sam.evaluate.baselines import ClickPredictor, RandomWalkerPredictor
from pge_sam.evaluate.classical import (
    DEFAULT_PARAMS,
    GrabCutPredictor,
    LargeReference,
    RegionGrowPredictor,
    WatershedPredictor,
    classical_predictors,
)
from pge_sam.evaluate.clicks import next_click
from pge_sam.evaluate.metrics import iou

FACTORIES = {
    "random_walker": RandomWalkerPredictor,
    "region_grow": RegionGrowPredictor,
    "region_grow_confidence": lambda: RegionGrowPredictor(mode="confidence"),
    "watershed": WatershedPredictor,
    "grabcut": GrabCutPredictor,
    "reference_large": LargeReference,
}
LEARNING = [name for name in FACTORIES if name != "reference_large"]


def two_blobs(size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 (size, size) image: a bright disk (~0.8, the ground truth) touching a medium one (~0.5) on dark noise."""
    rows, cols = np.mgrid[:size, :size]
    bright = (rows - 0.5 * size) ** 2 + (cols - 0.36 * size) ** 2 < (0.16 * size) ** 2
    medium = (rows - 0.5 * size) ** 2 + (cols - 0.66 * size) ** 2 < (0.16 * size) ** 2
    image = np.full((size, size), 0.1) + np.random.default_rng(seed).normal(0, 0.04, (size, size))
    image[medium] = 0.5 + np.random.default_rng(seed + 1).normal(0, 0.04, medium.sum())
    image[bright] = 0.8 + np.random.default_rng(seed + 2).normal(0, 0.04, bright.sum())
    return image.astype(np.float32), bright


def click(gt, pred, clicked):
    """``next_click`` with the clicks so far when the simulator takes them (its signature is changing)."""
    if "clicked" in inspect.signature(next_click).parameters:
        return next_click(gt, pred, clicked=set(clicked))
    return next_click(gt, pred)


def curve(predictor, image, gt, n_clicks: int) -> list[float]:
    """IoU after each of ``n_clicks`` protocol clicks (the last repeats when the simulator stops)."""
    predictor.set_image(image)
    predictor.reset()
    points, labels, ious, pred = [], [], [], None
    while len(ious) < n_clicks:
        c = click(gt, pred, points)
        if c is None:
            ious.append(ious[-1])
            continue
        points.append((c.row, c.col))
        labels.append(int(c.positive))
        pred = predictor.predict(np.array(points), np.array(labels))
        assert pred.dtype == bool and pred.shape == gt.shape
        ious.append(iou(pred, gt))
    return ious


@pytest.mark.parametrize("name", list(FACTORIES))
def test_more_clicks_never_make_it_worse(name):
    image, gt = two_blobs()
    predictor = FACTORIES[name]()
    assert isinstance(predictor, ClickPredictor)
    ious = curve(predictor, image, gt, 8)
    assert ious[4] >= ious[0], ious
    drops = [a - b for a, b in zip(ious, ious[1:])]
    assert max(drops) <= 0.02, ious
    if name in LEARNING:
        assert ious[4] > 0.9, ious


def test_reference_is_large_and_fixed():
    image, gt = two_blobs()
    ious = curve(LargeReference(), image, gt, 6)
    assert ious[-1] - ious[0] < 0.01  # later clicks only flip their own pixels
    assert ious[0] < 0.8  # the Otsu component takes the touching medium blob too


@pytest.mark.parametrize("name", LEARNING)
def test_negative_click_does_not_flood_the_frame(name):
    """Regression: the random walker used to drop its border seeds after the first negative click."""
    image, gt = two_blobs()
    predictor = FACTORIES[name]()
    predictor.set_image(image)
    predictor.reset()
    size = image.shape[0]
    points = np.array([[size // 2, int(0.36 * size)], [size // 2, int(0.66 * size)]])  # bright centre; medium centre
    mask = predictor.predict(points, np.array([1, 0]))
    assert mask.mean() < 0.5
    assert iou(mask, gt) > 0.8
    # a negative click far out in the background must not flood it either
    mask = predictor.predict(np.array([points[0], [5, 5]]), np.array([1, 0]))
    assert mask.mean() < 0.5


@pytest.mark.parametrize("name", list(FACTORIES))
def test_box_support_shape_and_dtype(name):
    image, gt = two_blobs(size=80)
    rows, cols = np.flatnonzero(gt.any(1)), np.flatnonzero(gt.any(0))
    box = np.array([rows[0], cols[0], rows[-1], cols[-1]])
    predictor = FACTORIES[name]()
    predictor.set_image(image)
    predictor.reset()
    empty = np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
    mask = predictor.predict(*empty, box)
    assert mask.dtype == bool and mask.shape == image.shape
    outside = np.ones_like(mask)
    outside[box[0] : box[2] + 1, box[1] : box[3] + 1] = False
    assert not (mask & outside).any()
    assert mask[(box[0] + box[2]) // 2, (box[1] + box[3]) // 2]  # the centre seeds the box
    if name in LEARNING:
        assert iou(mask, gt) > 0.7
    # clicks with a box: clicked pixels take their labels, nothing leaves the box
    inside = (box[0] + 3, (box[1] + box[3]) // 2)
    mask = predictor.predict(np.array([inside, (box[0] + 1, box[1] + 1)]), np.array([1, 0]), box)
    assert mask[inside] and not mask[box[0] + 1, box[1] + 1] and not (mask & outside).any()
    # no prompt at all: an empty mask of the right shape
    mask = predictor.predict(*empty)
    assert mask.dtype == bool and mask.shape == image.shape and not mask.any()
    # negatives only: nothing
    assert not predictor.predict(np.array([[5, 5]]), np.array([0])).any()


@pytest.mark.parametrize("name", list(FACTORIES))
def test_clicked_pixels_take_their_labels(name):
    image, gt = two_blobs(size=64)
    predictor = FACTORIES[name]()
    predictor.set_image(image)
    centre = (32, int(0.36 * 64))
    near = (centre[0] + 2, centre[1])  # a negative click inside the object
    mask = predictor.predict(np.array([centre, near]), np.array([1, 0]))
    assert mask[centre] and not mask[near]


@pytest.mark.parametrize("name", list(FACTORIES))
def test_bad_input(name):
    predictor = FACTORIES[name]()
    with pytest.raises(InputError, match="set_image"):
        predictor.predict(np.array([[5, 5]]), np.array([1]))
    with pytest.raises(InputError):
        predictor.set_image(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(InputError):
        predictor.set_image(np.zeros((16, 16), np.float32))  # constant: nothing to segment
    predictor.set_image(two_blobs(size=32)[0])
    with pytest.raises(InputError, match="outside"):
        predictor.predict(np.array([[32, 5]]), np.array([1]))


def test_bad_parameters_are_input_errors():
    for make in (lambda: RegionGrowPredictor(mode="fuzzy"), lambda: RegionGrowPredictor(k=0),
                 lambda: WatershedPredictor(sigma=-1), lambda: GrabCutPredictor(iterations=0),
                 lambda: RandomWalkerPredictor(max_side=8)):
        with pytest.raises(InputError):
            make()


def test_random_walker_downsampled_option_still_works():
    image, gt = two_blobs()
    predictor = RandomWalkerPredictor(max_side=48)
    predictor.set_image(image)
    mask = predictor.predict(np.array([[48, 34], [48, 63]]), np.array([1, 0]))
    assert mask.shape == gt.shape and iou(mask, gt) > 0.8


def test_classical_predictors_uses_defaults_and_tuned_params(tmp_path):
    factories = classical_predictors(None)
    assert set(factories) == set(DEFAULT_PARAMS)
    for name, factory in factories.items():
        assert factory().name == name
    tuned = tmp_path / "tuned.json"
    tuned.write_text('{"ct": {"watershed": {"sigma": 2.5}}}', encoding="utf-8")
    assert classical_predictors("ct", tuned)["watershed"]().sigma == 2.5
    assert classical_predictors("mri", tuned)["watershed"]().sigma == DEFAULT_PARAMS["watershed"]["sigma"]
    tuned.write_text('{"ct": {"watershed": {"bogus": 1}}}', encoding="utf-8")
    with pytest.raises(InputError, match="tune_baselines"):
        classical_predictors("ct", tuned)
    tuned.write_text("not json", encoding="utf-8")
    with pytest.raises(InputError, match="tune_baselines"):
        classical_predictors("ct", tuned)


@pytest.mark.parametrize("name", ["random_walker", "region_grow", "watershed", "grabcut", "reference_large"])
def test_a_box_whose_centre_was_clicked_away_gives_an_empty_mask(name):
    from pge_sam.evaluate.classical import classical_predictors

    image = np.zeros((40, 40), np.float32)
    image[10:30, 10:30] = 1.0
    method = classical_predictors("ct")[name]()
    method.set_image(image)
    method.reset()
    box = np.array([5, 5, 34, 34])
    mask = method.predict(np.array([[20, 20]]), np.array([0]), box)  # negative click on the box centre
    assert mask.dtype == bool and mask.shape == image.shape and not mask.any()


def test_grabcut_gives_the_same_mask_for_the_same_clicks():
    from pge_sam.evaluate.classical import classical_predictors

    rng = np.random.default_rng(0)
    image = (rng.normal(0.3, 0.1, (64, 64)) + np.pad(np.full((24, 24), 0.4), 20)).astype(np.float32)
    method = classical_predictors("mri")["grabcut"]()
    method.set_image(image)
    masks = [method.predict(np.array([[32, 32], [5, 5]]), np.array([1, 0])) for _ in range(4)]
    assert all(np.array_equal(masks[0], m) for m in masks[1:])

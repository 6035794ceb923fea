"""Click simulator, metrics, random-walker baseline and DM-Seg-mini targets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from pge_sam.errors import InputError, PromptError
from pge_sam.evaluate import (
    Click,
    ClickPredictor,
    RandomWalkerPredictor,
    Target,
    bounding_box,
    build_targets,
    dice,
    farthest_point,
    iou,
    next_click,
    noc,
    run_target,
    summarize_curve,
)
from pge_sam.evaluate import datasets
from pge_sam.evaluate.metrics import dice_from_iou


def square(shape, r0, r1, c0, c1):
    mask = np.zeros(shape, dtype=bool)
    mask[r0 : r1 + 1, c0 : c1 + 1] = True
    return mask


# ----------------------------------------------------------------------------- clicks


def test_first_click_is_the_centre_of_a_square():
    gt = square((21, 21), 5, 15, 5, 15)
    assert next_click(gt) == Click(10, 10, True)


def test_image_border_counts_as_boundary():
    # square touching the top border: without padding the EDT would peak on row 0
    gt = square((30, 30), 0, 10, 5, 15)
    assert next_click(gt) == Click(5, 10, True)


def test_farthest_point_ties_go_to_the_first_pixel_in_row_major_order():
    bar = square((5, 7), 2, 2, 2, 4)
    assert farthest_point(bar) == (2, 2)


def test_false_negative_region_gets_a_positive_click():
    gt = square((40, 40), 5, 30, 5, 30)
    pred = gt.copy()
    pred[5:31, 20:31] = False  # 26 x 11 missed strip
    pred[35:38, 35:38] = True  # 3 x 3 false positive
    click = next_click(gt, pred)
    assert click.positive and not pred[click.row, click.col] and gt[click.row, click.col]
    # strip rows 5..30, cols 20..30: distance 6 first reached on row 10 of the middle column 25
    assert (click.row, click.col) == (10, 25)


def test_false_positive_region_gets_a_negative_click():
    gt = square((40, 40), 5, 15, 5, 15)
    pred = gt | square((40, 40), 20, 34, 20, 34)
    pred[5, 5] = False  # one missed pixel
    click = next_click(gt, pred)
    assert click == Click(27, 27, False)


def test_the_largest_error_region_wins():
    gt = square((50, 50), 5, 44, 5, 44)
    pred = gt.copy()
    pred[5:10, 5:10] = False  # 25 px FN
    pred[30:44, 30:44] = False  # 196 px FN
    pred[0:3, 46:50] = True  # 12 px FP
    click = next_click(gt, pred)
    assert click.positive and 30 <= click.row < 44 and 30 <= click.col < 44


def test_the_deepest_error_pixel_wins_not_the_component_with_most_pixels():
    gt = np.zeros((60, 60), bool)
    gt[5:55, 5:55] = True
    pred = gt.copy()
    pred[5:55, 5:8] = False  # a 3 x 50 sliver missed: 150 px, depth 2 at most
    pred[30:40, 30:40] = False  # a 10 x 10 hole: 100 px, depth 5
    click = next_click(gt, pred)
    assert click.positive and 30 <= click.row < 40 and 30 <= click.col < 40


def test_a_pixel_is_never_clicked_twice():
    gt = square((21, 21), 5, 15, 5, 15)
    first = next_click(gt)
    again = next_click(gt, np.zeros_like(gt), clicked=[(first.row, first.col)])
    assert again.positive and (again.row, again.col) != (first.row, first.col) and gt[again.row, again.col]
    dot = np.zeros((9, 9), bool)
    dot[4, 4] = True
    assert next_click(dot, np.zeros_like(dot), clicked=[(4, 4)]) is None  # nothing left that was not clicked


def test_an_episode_with_a_stubborn_method_never_repeats_a_click():
    from pge_sam.evaluate.episode import click_ious

    seen = []

    class Stubborn:
        name = "stubborn"

        def predict(self, points, labels, box=None):
            seen.append(tuple(map(tuple, points[-1:])))
            return np.zeros((21, 21), bool)

    click_ious(Stubborn(), square((21, 21), 5, 15, 5, 15), 12)
    assert len(seen) == len(set(seen)) == 12


def test_equal_areas_prefer_the_false_negative():
    gt = square((20, 20), 2, 6, 2, 6)
    pred = square((20, 20), 12, 16, 12, 16)  # FN and FP both 25 px
    assert next_click(gt, pred) == Click(4, 4, True)


def test_empty_prediction_and_perfect_prediction():
    gt = square((21, 21), 5, 15, 5, 15)
    assert next_click(gt, np.zeros_like(gt)) == next_click(gt)
    assert next_click(gt, gt.copy()) is None


def test_click_input_errors():
    gt = square((10, 10), 2, 5, 2, 5)
    with pytest.raises(InputError, match="empty"):
        next_click(np.zeros((10, 10), bool))
    with pytest.raises(InputError, match="shape"):
        next_click(gt, np.zeros((10, 11), bool))
    with pytest.raises(InputError, match="2D"):
        next_click(np.ones((2, 3, 3), bool))
    with pytest.raises(InputError, match="0/1"):
        next_click(gt.astype(float) * 2)


# ----------------------------------------------------------------------------- metrics


def test_iou_and_dice_known_values():
    gt = square((6, 6), 0, 1, 0, 1)  # 4 px
    pred = square((6, 6), 0, 1, 1, 2)  # 4 px, 2 shared
    assert iou(pred, gt) == pytest.approx(2 / 6)
    assert dice(pred, gt) == pytest.approx(0.5)
    empty = np.zeros((6, 6), bool)
    assert iou(empty, empty) == 1.0 and dice(empty, empty) == 1.0
    assert iou(empty, gt) == 0.0
    with pytest.raises(InputError):
        iou(gt, np.zeros((5, 6), bool))


def test_dice_follows_from_iou():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.random((2, 16, 16)) > 0.6
        assert dice_from_iou(iou(a, b)) == pytest.approx(dice(a, b))


def test_noc():
    curve = [0.5, 0.86, 0.95]
    assert noc(curve, 0.85) == 2
    assert noc(curve, 0.90) == 3
    assert noc(curve, 0.86) == 2  # reaching the threshold exactly counts
    assert noc([0.1] * 20, 0.85) == 20
    assert noc([0.1, 0.2, 0.99], 0.9, max_clicks=2) == 2  # later clicks do not count
    with pytest.raises(InputError):
        noc(curve, 1.5)


def test_summarize_curve():
    curve = [0.3, 0.5, 0.7, 0.8, 0.88, 0.91] + [0.91] * 14
    summary = summarize_curve(curve)
    assert (summary.iou_1, summary.iou_3, summary.iou_5) == (0.3, 0.7, 0.88)
    assert (summary.noc85, summary.noc90) == (5, 6)
    assert summary.dice5 == pytest.approx(2 * 0.88 / 1.88)
    short = summarize_curve([0.95, 0.97], max_clicks=2)
    assert np.isnan(short.iou_5) and short.noc90 == 1
    with pytest.raises(InputError):
        summarize_curve([])


# ----------------------------------------------------------------------------- random walker


def disk_target(size=128, radius=30, noise=0.1, seed=0):
    rows, cols = np.mgrid[:size, :size]
    mask = (rows - size * 0.45) ** 2 + (cols - size * 0.55) ** 2 < radius**2
    image = 0.2 + 0.5 * mask + np.random.default_rng(seed).normal(0, noise, mask.shape)
    return Target(image.astype(np.float32), mask, "ct", "synthetic", "disk")


def test_random_walker_follows_the_protocol_on_a_disk():
    target = disk_target()
    predictor = RandomWalkerPredictor()
    assert isinstance(predictor, ClickPredictor)
    predictor.set_image(target.image)
    out = run_target(predictor, target, max_clicks=5)
    assert len(out["ious"]) == 5
    assert max(out["ious"][:3]) > 0.8
    assert out["box_iou"] > 0.8


def test_random_walker_prompt_rules():
    target = disk_target(size=64, radius=12, noise=0.02)
    predictor = RandomWalkerPredictor()
    with pytest.raises(InputError, match="set_image"):
        predictor.predict(np.array([[5, 5]]), np.array([1]))
    predictor.set_image(target.image)
    assert not predictor.predict(np.array([[5, 5]]), np.array([0])).any()  # negatives only: nothing
    with pytest.raises(PromptError, match="outside"):
        predictor.predict(np.array([[64, 5]]), np.array([1]))
    with pytest.raises(PromptError, match="label"):
        predictor.predict(np.array([[5, 5]]), np.array([2]))
    box = bounding_box(target.mask)
    mask = predictor.predict(np.zeros((0, 2)), np.zeros(0), box)
    assert mask.dtype == bool and mask.shape == target.mask.shape
    assert not mask[: box[0]].any() and not mask[:, box[3] + 1 :].any()  # nothing outside the box
    # a negative click inside the object removes the clicked pixel even though the rest stays
    centre = farthest_point(target.mask)
    mask = predictor.predict(np.array([centre, (centre[0] + 3, centre[1])]), np.array([1, 0]))
    assert mask[centre] and not mask[centre[0] + 3, centre[1]]


def test_bounding_box_is_inclusive():
    assert bounding_box(square((10, 10), 2, 5, 3, 7)).tolist() == [2, 3, 5, 7]


# ----------------------------------------------------------------------------- targets


@pytest.fixture(scope="module")
def splits():
    return {(m, sp): build_targets(m, split=sp) for m in ("mri", "ct") for sp in ("dev", "test")}


def test_v2_targets_are_many_well_formed_and_split_by_slice(splits):
    for modality in ("mri", "ct"):
        dev, test = splits[(modality, "dev")], splits[(modality, "test")]
        assert len(test) >= 40 and len(dev) >= 20
        assert not {t.image_id for t in dev} & {t.image_id for t in test}  # no slice in both splits
        for target in dev + test:
            assert target.modality == modality and target.image.dtype == np.float32 and target.mask.dtype == bool
            assert target.image.shape == target.mask.shape and target.image.ndim == 2
            assert 0.0 <= target.image.min() and target.image.max() <= 1.0
            assert target.mask.sum() >= datasets.MIN_AREA[modality]
            assert ndi.label(target.mask)[1] == 1  # one connected piece
            assert target.box_first == (target.structure in ("brain", "head"))
        structures = {t.structure for t in test}
        expected = {"brain", "wm_left", "gm_left", "ventricles", "corpus_callosum"} if modality == "mri" else \
            {"head", "brain", "skull", "ventricle", "superior_structure"}
        assert expected <= structures


def test_v2_targets_have_no_exact_or_mirror_duplicates(splits):
    everything = [t for ts in splits.values() for t in ts]
    assert len({t.name for t in everything}) == len(everything)
    digests = [t.digest() for t in everything]
    assert len(set(digests)) == len(digests)
    assert not set(digests) & {t.digest(mirrored=True) for t in everything if t.digest(mirrored=True) != t.digest()}


def test_targets_of_one_slice_share_one_image(splits):
    by_id = {}
    for target in splits[("mri", "test")]:
        by_id.setdefault(target.image_id, []).append(target)
    for group in by_id.values():
        for target in group[1:]:
            np.testing.assert_array_equal(target.image, group[0].image)


def test_quick_targets_are_a_deterministic_prefix(splits):
    quick = build_targets("mri", quick=True)
    assert [t.name for t in quick] == [t.name for t in splits[("mri", "test")][:2]]
    ct = build_targets("ct", quick=True)
    assert len(ct) == datasets.QUICK_COUNTS["ct"] and ct[0].structure == "head"
    shuffled = [t.name for t in build_targets("ct", seed=3, count=6)]
    assert shuffled == [t.name for t in build_targets("ct", seed=3, count=6)]
    assert set(shuffled) <= {t.name for t in splits[("ct", "test")]}


def test_build_targets_errors():
    with pytest.raises(InputError, match="mri, ct"):
        build_targets("us")
    with pytest.raises(InputError, match="at most"):
        build_targets("ct", count=1000)
    with pytest.raises(InputError, match="split"):
        build_targets("ct", split="train")
    with pytest.raises(InputError):
        Target(np.zeros((4, 4), np.float32), np.zeros((4, 4), bool), "ct", "x", "empty")

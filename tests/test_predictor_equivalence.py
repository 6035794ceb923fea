"""Our Session/Predictor reproduce ``segment_anything.SamPredictor`` exactly, and map coordinates like it.

The reference is fed the same normalised uint8 slice replicated to RGB. The
volume is already uint8 and the session uses the identity window (0..255), so
the slice the session encodes is the raw slice.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from pge_sam.models.registry import drop_detail
from pge_sam.normalize import Normalization
from pge_sam.predictor import Predictor
from pge_sam.prompts import Box, InputTransform, SlicePrompts, to_batch
from pge_sam.session import Session

IDENTITY = Normalization.window(level=127.5, width=255.0)  # maps 0..255 onto itself


@pytest.fixture(scope="module")
def u8_volume(volume) -> np.ndarray:
    """(3, 40, 56) uint8 volume (non-square 40 x 56 slices along axis 0)."""
    return np.clip(np.rint(volume[:3]), 0, 255).astype(np.uint8)


def reference_predictor(model, slice_u8: np.ndarray):
    from segment_anything import SamPredictor

    ref = SamPredictor(model.sam)
    ref.set_image(np.repeat(slice_u8[:, :, None], 3, axis=2), image_format="RGB")
    return ref


def ref_predict(ref, multimask: bool, margin: float = 0.0, **kwargs):
    """(bool masks, logits, iou, low_res) of SamPredictor for the same prompts; when multimask, the best-scored
    mask, or (``margin`` > 0) the smallest non-empty low-res mask scored within ``margin`` of the best."""
    masks, iou, _ = ref.predict(multimask_output=multimask, **kwargs)
    logits, iou2, low_res = ref.predict(multimask_output=multimask, return_logits=True, **kwargs)
    np.testing.assert_array_equal(iou, iou2)
    best = int(np.argmax(iou)) if multimask else 0
    areas = (low_res > 0).sum((1, 2))
    near = [i for i in range(len(iou)) if iou[i] >= iou.max() - margin and areas[i] > 0]
    if multimask and margin > 0 and near:
        best = min(near, key=lambda i: areas[i])
    return masks[best], logits[best], iou[best], low_res[best]


def assert_same(session: Session, index: int, prediction_logits, ref_out, label: int) -> None:
    ref_mask, ref_logits, _, ref_low = ref_out
    obj = session.state.objects[label]
    ours_low = obj.logits[(0, index)][0, 0].numpy()
    np.testing.assert_allclose(ours_low, ref_low, atol=1e-4, rtol=0)
    assert 0 < ref_mask.sum() < ref_mask.size, "degenerate reference mask: the comparison would be vacuous"
    np.testing.assert_array_equal(session.labels[index] == label, ref_mask)
    if prediction_logits is not None:
        np.testing.assert_allclose(prediction_logits, ref_logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("margin", [0.0, 0.5], ids=["sam-rule", "specific-rule"])
@pytest.mark.parametrize("name", ["sam_tiny", "pge_sam_tiny"])
def test_session_matches_sam_predictor(name, margin, request, u8_volume):
    """Points, a second point with the previous low-res logits fed back, a box, box + point; untrained PGE == SAM.

    segment-anything's predictor knows nothing of the tiny backbone's detail path, so the
    comparison is with that path removed (``test_detail.py`` checks the path itself). Of the three masks
    of a lone first click, the one the backbone's ``first_click_margin`` picks is kept: SAM's best-scored
    (0, every shipped backbone) or the smallest non-empty one scored within the margin of the best.
    """
    model = copy.deepcopy(request.getfixturevalue(name))
    drop_detail(model)
    model.spec = dataclasses.replace(model.spec, first_click_margin=margin)
    labels = np.zeros(u8_volume.shape, np.uint16)
    session = Session(Predictor(model), u8_volume, labels, normalization=IDENTITY, prefetch=0)
    label = session.label

    # slice 1: one positive point (as the backbone says), then a negative one with mask input
    np.testing.assert_array_equal(session.slice_u8(1), u8_volume[1])
    ref = reference_predictor(model, u8_volume[1])
    session.add_point((1, 20, 28), positive=True)
    first = ref_predict(ref, True, point_coords=np.array([[28, 20]]), point_labels=np.array([1]), margin=margin)
    assert_same(session, 1, None, first, label)
    session.add_point((1, 8, 45), positive=False)
    second = ref_predict(ref, False, point_coords=np.array([[28, 20], [45, 8]]), point_labels=np.array([1, 0]),
                         mask_input=first[3][None])
    assert_same(session, 1, None, second, label)

    # the same logits straight from the Predictor (slice resolution)
    feats = session.predictor.features(u8_volume[1], 0, 1)
    pred = session.predictor.decode(feats, session.state.objects[label].prompts[(0, 1)], (40, 56),
                                    mask_input=torch.as_tensor(first[3][None, None]))
    np.testing.assert_allclose(pred.logits, second[1], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(pred.mask, second[0])
    assert pred.iou == pytest.approx(float(second[2]), abs=1e-4)

    # slice 2: a box (inclusive corners -> SamPredictor's x0, y0, x1, y1), then a point added to it
    ref = reference_predictor(model, u8_volume[2])
    session.add_box((2, 30, 44), (2, 10, 12))
    box_out = ref_predict(ref, False, box=np.array([12, 10, 44, 30]))
    assert_same(session, 2, None, box_out, label)
    session.add_point((2, 22, 30))
    both = ref_predict(ref, False, point_coords=np.array([[30, 22]]), point_labels=np.array([1]),
                       box=np.array([12, 10, 44, 30]), mask_input=box_out[3][None])
    assert_same(session, 2, None, both, label)


def test_untrained_pge_embedding_is_exactly_sam(pge_sam_tiny, u8_volume):
    """Zero-initialised r_out: F' == F bit for bit, so every decode is SAM's decode."""
    from pge_sam.models.base import PromptBatch

    pred = Predictor(pge_sam_tiny)
    feats = {k: v[None] for k, v in pred.features(u8_volume[0]).items()}
    assert set(feats) == {"embedding", "early_proj", "detail_s4", "detail_s2", "detail_s1"}
    prompts = PromptBatch(coords=torch.tensor([[[100.0, 80.0]]]), labels=torch.tensor([[1]]),
                          box=torch.tensor([[40.0, 30.0, 200.0, 150.0]]))
    with torch.no_grad():
        _, _, enhanced = pge_sam_tiny.decode_with_embedding(feats, prompts, False)
    assert torch.equal(enhanced, feats["embedding"])


@pytest.mark.parametrize("size", [(40, 56), (56, 40), (6, 56), (33, 33)])
def test_input_transform_matches_sam_predictor_transform(sam_tiny, size):
    from segment_anything import SamPredictor

    ref = SamPredictor(sam_tiny.sam).transform
    t = InputTransform(sam_tiny.spec.img_size, size)
    h, w = size
    assert max(t.input_size) == sam_tiny.spec.img_size
    assert tuple(t.input_size) == tuple(ref.get_preprocess_shape(h, w, 256))
    rc = np.array([[0, 0], [h - 1, w - 1], [h // 3, w // 2], [h - 1, 0]])
    xy = rc[:, ::-1].astype(float)
    np.testing.assert_allclose(t.coords(rc), ref.apply_coords(xy, size))
    # the point is scaled per axis: x (col) by input_w / w, y (row) by input_h / h
    ih, iw = t.input_size
    np.testing.assert_allclose(t.coords(rc)[:, 0], rc[:, 1] * iw / w, rtol=1e-6)
    np.testing.assert_allclose(t.coords(rc)[:, 1], rc[:, 0] * ih / h, rtol=1e-6)
    box = Box(1, 2, h - 2, w - 1)
    np.testing.assert_allclose(t.box(box), ref.apply_boxes(np.array([[2, 1, w - 1, h - 2]]), size)[0])
    img = np.arange(h * w, dtype=np.uint8).reshape(h, w)
    np.testing.assert_array_equal(t.image(img), ref.apply_image(np.repeat(img[:, :, None], 3, axis=2)))


def test_non_square_pixels_are_resampled_before_the_model(sam_tiny):
    """aspect = row / column spacing: rows are stretched to square pixels, then SAM's own resize applies."""
    from segment_anything.utils.transforms import ResizeLongestSide

    ref = ResizeLongestSide(256)
    t = InputTransform(256, (6, 56), aspect=3.125)
    assert t.square_size == (19, 56)
    assert tuple(t.input_size) == tuple(ref.get_preprocess_shape(19, 56, 256))
    rc = np.array([[0, 0], [5, 55], [2, 30]])
    square_rows = (rc[:, 0] + 0.5) * 3.125 - 0.5  # pixel centres keep their place
    xy = np.stack([rc[:, 1], square_rows], 1).astype(float)
    np.testing.assert_allclose(t.coords(rc), ref.apply_coords(xy, (19, 56)))
    img = np.random.default_rng(0).integers(0, 256, (6, 56), dtype=np.uint8)
    assert t.image(img).shape == (*t.input_size, 3)
    assert InputTransform(256, (6, 56), aspect=1.02).aspect == 1.0  # near-square pixels are left alone
    pred = Predictor(sam_tiny)
    out = pred.decode(pred.features(img, 1, 3, aspect=3.125), SlicePrompts().with_box(Box(1, 10, 4, 40)), (6, 56),
                      aspect=3.125)
    assert out.mask.shape == out.logits.shape == (6, 56)


def test_to_batch_puts_points_as_xy_in_the_input_frame(sam_tiny):
    t = InputTransform(256, (40, 56))
    prompts = SlicePrompts().with_box(Box(5, 6, 30, 50))
    from pge_sam.prompts import Point

    prompts = prompts.with_point(Point(10, 20, True)).with_point(Point(35, 3, False))
    batch = to_batch(prompts, t, None, torch.device("cpu"))
    sx, sy = 256 / 56, t.input_size[0] / 40  # input frame 183 x 256 (rows x cols)
    assert t.input_size == (183, 256)
    np.testing.assert_allclose(batch.coords[0].numpy(), [[20 * sx, 10 * sy], [3 * sx, 35 * sy]], rtol=1e-5)
    assert batch.labels.tolist() == [[1, 0]]
    np.testing.assert_allclose(batch.box[0].numpy(), [6 * sx, 5 * sy, 50 * sx, 30 * sy], rtol=1e-5)
    assert batch.mask_input is None

"""Session verbs: coordinates on every axis, undo, objects, the overwrite rule, reset, 2D images."""

from __future__ import annotations

import numpy as np
import pytest

from pge_sam.errors import InputError
from pge_sam.geometry import slice_index, slice_shape
from pge_sam.normalize import Normalization
from pge_sam.predictor import Prediction, Predictor
from pge_sam.prompts import Box, Point
from pge_sam.session import Session

IDENTITY = Normalization.window(level=127.5, width=255.0)


@pytest.fixture(scope="module")
def u8_volume(volume):
    return np.clip(np.rint(volume), 0, 255).astype(np.uint8)


def fake_predictor(sam_tiny, monkeypatch, calls: list) -> Predictor:
    """A Predictor whose encode/decode are replaced: the mask is a 3x3 square around the last point."""
    p = Predictor(sam_tiny)

    def features(slice_u8, axis=0, index=0, disk=None, aspect=1.0):
        calls.append(("features", slice_u8.copy(), axis, index, aspect))
        return {}

    def decode(features, prompts, original_size, mask_input=None, multimask=None, aspect=1.0):
        calls.append(("decode", prompts, tuple(original_size), aspect))
        mask = np.zeros(original_size, bool)
        if prompts.points:
            r, c = prompts.points[-1].row, prompts.points[-1].col
            mask[max(0, r - 1): r + 2, max(0, c - 1): c + 2] = True
        else:
            b = prompts.box
            mask[b.row0: b.row1 + 1, b.col0: b.col1 + 1] = True
        return Prediction(mask, mask.astype(np.float32), None, 1.0)

    monkeypatch.setattr(p, "features", features)
    monkeypatch.setattr(p, "decode", decode)
    return p


@pytest.mark.parametrize("spacing", [None, (2.5, 0.9, 0.8)])
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("point", [(3, 25, 11), (1, 7, 50), (5, 39, 0), (0, 0, 55)])
def test_point_lands_on_the_right_slice_row_and_col(sam_tiny, monkeypatch, u8_volume, axis, point, spacing):
    calls: list = []
    labels = np.zeros(u8_volume.shape, np.uint16)
    session = Session(fake_predictor(sam_tiny, monkeypatch, calls), u8_volume, labels, axis=axis,
                      spacing=spacing, normalization=IDENTITY, prefetch=0)
    change = session.add_point(point)
    (_, slice_u8, f_axis, f_index, f_aspect), (_, prompts, size, d_aspect) = calls
    # the pixel aspect (row spacing / column spacing) of the slice goes to both encode and decode
    expected_aspect = 1.0 if spacing is None else {0: 0.9 / 0.8, 1: 2.5 / 0.8, 2: 2.5 / 0.9}[axis]
    assert f_aspect == pytest.approx(expected_aspect) and d_aspect == pytest.approx(expected_aspect)
    rows, cols = [a for a in range(3) if a != axis]
    assert (f_axis, f_index) == (axis, point[axis])
    np.testing.assert_array_equal(slice_u8, u8_volume[slice_index(axis, point[axis])])
    assert size == slice_shape(u8_volume.shape, axis) == (u8_volume.shape[rows], u8_volume.shape[cols])
    assert prompts.points == (Point(point[rows], point[cols], True),)
    assert labels[point] == session.label
    assert change.slices == (point[axis],) and change.voxels == int((labels > 0).sum())
    assert all(s.start <= v < s.stop for s, v in zip(change.bbox, point))
    assert np.array_equal(np.flatnonzero((labels > 0).any(axis=tuple(a for a in range(3) if a != axis))), [point[axis]])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_box_corners_map_to_slice_pixels(sam_tiny, monkeypatch, u8_volume, axis):
    calls: list = []
    labels = np.zeros(u8_volume.shape, np.uint16)
    session = Session(fake_predictor(sam_tiny, monkeypatch, calls), u8_volume, labels, normalization=IDENTITY,
                      prefetch=0)
    a, b = [5, 30, 40], [1, 2, 3]
    for p in (a, b):
        p[axis] = 2
    change = session.add_box(tuple(a), tuple(b), axis=axis)
    rows, cols = [x for x in range(3) if x != axis]
    r0, r1, c0, c1 = sorted((a[rows], b[rows])) + sorted((a[cols], b[cols]))
    assert calls[-1][1].box == Box(r0, c0, r1, c1)
    lo, hi = np.minimum(a, b), np.maximum(a, b) + 1
    assert tuple((s.start, s.stop) for s in change.bbox) == tuple(zip(lo, hi))
    assert (labels[tuple(slice(start, stop) for start, stop in zip(lo, hi))] == session.label).all()


def test_bad_spacing_is_refused(pred, volume):
    labels = np.zeros(volume.shape, np.uint16)
    for spacing in [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, np.nan, 1.0), (-1.0, 1.0, 1.0)]:
        with pytest.raises(InputError, match="spacing"):
            Session(pred, volume, labels, spacing=spacing, prefetch=0)


def test_anisotropic_slices_are_segmented_at_their_own_size(pred, volume):
    """Slices along axis 1 with 2.5 mm rows and 0.8 mm columns: the model sees resampled square pixels."""
    labels = np.zeros(volume.shape, np.uint16)
    session = Session(pred, volume, labels, axis=1, spacing=(2.5, 0.9, 0.8), prefetch=0)
    assert session.aspect() == pytest.approx(3.125)
    change = session.add_point((3, 20, 28))
    assert change.slices == (20,) and labels[:, 20, :].any()
    assert not np.delete(labels, 20, axis=1).any()
    low_res = session.state.objects[session.label].logits[(1, 20)]
    assert low_res.shape == (1, 1, 128, 128)


def test_2d_image_takes_row_col_points(sam_tiny, monkeypatch, u8_volume, pred):
    calls: list = []
    image = u8_volume[2]
    labels = np.zeros(image.shape, np.uint16)
    session = Session(fake_predictor(sam_tiny, monkeypatch, calls), image, labels, normalization=IDENTITY, prefetch=0)
    change = session.add_point((30, 45))
    assert calls[-1][1].points == (Point(30, 45, True),) and calls[-1][2] == (40, 56)
    assert labels[30, 45] == 1 and len(change.bbox) == 2
    assert all(s.start <= v < s.stop for s, v in zip(change.bbox, (30, 45)))
    with pytest.raises(InputError):
        session.add_point((2, 30, 45))
    with pytest.raises(InputError):
        session.set_axis(1)
    # with the real model, a 2D image and the same slice of a volume give the same mask
    labels2d = np.zeros(image.shape, np.uint16)
    Session(pred, image, labels2d, normalization=IDENTITY, prefetch=0).add_point((20, 28))
    labels3d = np.zeros(u8_volume.shape, np.uint16)
    Session(pred, u8_volume, labels3d, normalization=IDENTITY, prefetch=0).add_point((2, 20, 28))
    assert labels2d.any()
    np.testing.assert_array_equal(labels2d, labels3d[2])


def test_undo_restores_the_buffer_and_the_prompts(pred, volume):
    labels = np.zeros(volume.shape, np.uint16)
    session = Session(pred, volume, labels, prefetch=0)
    obj = session.state.objects[session.label]
    session.add_point((1, 20, 28))
    one = labels.copy()
    assert one.any()
    session.add_point((1, 5, 50), positive=False)
    two = labels.copy()
    logits_two = obj.logits[(0, 1)]
    session.add_box((3, 10, 10), (3, 30, 45))
    assert not np.array_equal(labels, two)
    change = session.undo()
    assert change.slices == (3,)
    np.testing.assert_array_equal(labels, two)
    assert (0, 3) not in obj.prompts and (0, 3) not in obj.logits and obj.logits[(0, 1)] is logits_two
    session.undo()
    np.testing.assert_array_equal(labels, one)
    assert obj.prompts[(0, 1)].points == (Point(20, 28, True),)
    session.undo()
    assert not labels.any() and not obj.prompts and not obj.logits
    assert session.undo() is None


def test_objects_get_their_own_label_ids(pred, volume):
    labels = np.zeros(volume.shape, np.uint16)
    session = Session(pred, volume, labels, prefetch=0)
    assert session.label == 1 and session.next_object() == 1  # an empty object is kept
    session.add_point((2, 20, 28))
    assert session.next_object() == 2 and session.label == 2
    session.add_box((2, 5, 5), (2, 35, 50))
    first, second = labels == 1, labels == 2
    assert first.any() and second.any()
    session.select_object(1)
    assert session.label == 1
    session.add_point((3, 20, 28))
    assert (labels[3] == 1).any() and np.array_equal(labels[2] == 1, first[2])
    np.testing.assert_array_equal(labels == 2, second)  # object 2 untouched by editing object 1
    session.select_object(7)
    assert session.next_object() == 7  # 7 is still empty
    session.add_point((4, 20, 28))
    assert session.next_object() == 8
    for bad in (0, -1, 70000):
        with pytest.raises(InputError):
            session.select_object(bad)
    labels_pre = np.zeros(volume.shape, np.uint16)
    labels_pre[0, 0, 0] = 41
    assert Session(pred, volume, labels_pre, prefetch=0).label == 42  # ids continue after loaded labels


@pytest.mark.parametrize("overwrite", [False, True])
def test_other_labels_are_kept_unless_overwrite(pred, volume, overwrite):
    clean = np.zeros(volume.shape, np.uint16)
    Session(pred, volume, clean, prefetch=0).add_point((2, 20, 28))
    mask = clean[2] == 1
    other = np.zeros(volume.shape, np.uint16)
    other[2, :, :28] = 7
    other[3, :, :] = 7
    assert (mask & (other[2] == 7)).any() and (mask & (other[2] == 0)).any()
    labels = other.copy()
    session = Session(pred, volume, labels, prefetch=0, overwrite=overwrite)
    label = session.label
    assert label == 8
    session.add_point((2, 20, 28))
    paint = mask if overwrite else mask & (other[2] == 0)
    np.testing.assert_array_equal(labels[2], np.where(paint, label, other[2]))
    np.testing.assert_array_equal(labels[3], other[3])
    session.undo()
    np.testing.assert_array_equal(labels, other)


def test_undo_keeps_edits_the_caller_made_in_between(pred, volume):
    labels = np.zeros(volume.shape, np.uint16)
    session = Session(pred, volume, labels, prefetch=0)
    session.add_point((2, 20, 28))
    mask = labels[2] == 1
    rows, cols = np.nonzero(mask)
    assert (~mask).any()
    labels[2, rows[:5], cols[:5]] = 9  # the user paints over part of the object ...
    labels[(2, *np.argwhere(~mask)[0])] = 9  # ... next to it ...
    labels[3, 0, 0] = 9  # ... and on another slice
    painted = labels == 9
    session.undo()
    assert (labels[painted] == 9).all()
    assert not (labels == 1).any()
    assert int((labels != 0).sum()) == int(painted.sum())


def test_reset_object_is_undoable(pred, volume):
    labels = np.zeros(volume.shape, np.uint16)
    labels[0, :3, :3] = 4
    session = Session(pred, volume, labels, prefetch=0)
    label = session.label
    session.add_point((1, 20, 28))
    session.add_point((3, 20, 28))
    session.add_point((2, 10, 10), axis=1)  # on another axis too
    before = labels.copy()
    obj = session.state.objects[label]
    prompts, logits = dict(obj.prompts), dict(obj.logits)
    change = session.reset_object()
    assert not (labels == label).any() and (labels[0, :3, :3] == 4).all()
    assert not obj.prompts and not obj.logits
    assert {1, 3} <= set(change.slices)
    session.undo()
    np.testing.assert_array_equal(labels, before)
    assert obj.prompts == prompts and obj.logits.keys() == logits.keys()


def test_failed_propagate_leaves_no_undo_step(pred, volume):
    """A propagate that raises must not push an (empty) undo step that swallows the user's next undo."""
    labels = np.zeros(volume.shape, np.uint16)
    session = Session(pred, volume, labels, prefetch=0)
    session.add_point((2, 20, 28))
    assert labels.any()
    session.next_object()
    depth = len(session.state.undo)
    with pytest.raises(InputError, match="nothing to propagate"):
        session.propagate()
    assert len(session.state.undo) == depth
    session.undo()  # must undo the click of object 1
    assert not labels.any()


def test_other_mask_steps_through_a_lone_clicks_masks_and_undo_steps_back(pred, volume, monkeypatch):
    """A first click is ambiguous (whole, part, sub-part): 'other mask' shows the model's next proposal."""
    from pge_sam.errors import PromptError

    labels = np.zeros(volume.shape, np.uint16)
    session = Session(pred, volume, labels, prefetch=0)
    session.add_point((3, 20, 28))
    label, shown = session.label, []
    shown.append(labels[3] == label)
    for _ in range(3):
        change = session.other_mask()
        assert change.label == label and change.slices == (3,)
        shown.append(labels[3] == label)
    assert len({m.tobytes() for m in shown[:3]}) > 1  # the three proposals are not all the same mask
    np.testing.assert_array_equal(shown[3], shown[0])  # three masks, then the click's own again
    assert [m.kind for m in session.prompts()] == ["point"]  # the prompts are untouched
    session.undo()
    np.testing.assert_array_equal(labels[3] == label, shown[2])
    session.undo()
    session.undo()
    np.testing.assert_array_equal(labels[3] == label, shown[0])
    session.other_mask()  # counted again from the click: its second mask
    np.testing.assert_array_equal(labels[3] == label, shown[1])

    session.add_point((3, 10, 10), positive=False)  # a second prompt on the slice: no longer a lone click
    with pytest.raises(PromptError, match="first positive click"):
        session.other_mask()
    session.next_object()
    with pytest.raises(PromptError, match="first positive click"):  # the new object has no click yet
        session.other_mask()

    decode = pred.decode
    monkeypatch.setattr(pred, "decode", lambda *a, **k: Prediction(**{**vars(decode(*a, **k)), "candidates": 1}))
    session.add_point((4, 20, 28))
    with pytest.raises(PromptError, match="one mask per click"):  # SAM-REF refines one mask: nothing to choose
        session.other_mask()

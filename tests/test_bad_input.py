"""Bad input gives a clear error of the right type, and the caller's label buffer is left as it was."""

from __future__ import annotations

import numpy as np
import pytest

from pge_sam.errors import InputError, PromptError
from pge_sam.normalize import Normalization
from pge_sam.propagate import PropagationConfig
from pge_sam.session import Session


def prefilled(shape) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    labels[..., :3, :3] = 3
    return labels


def assert_fails_cleanly(call, labels, error=InputError, match=None):
    before = labels.copy()
    with pytest.raises(error, match=match) as info:
        call()
    np.testing.assert_array_equal(labels, before)
    assert len(str(info.value)) > 20  # a sentence, not a bare value
    return info.value


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_voxels_refuse_the_session(pred, volume, bad):
    vol = volume.copy()
    vol[3, 10, 10] = bad
    labels = prefilled(vol.shape)
    assert_fails_cleanly(lambda: Session(pred, vol, labels, prefetch=0), labels, match="NaN or infinite")


def test_a_nan_slice_inside_a_valid_volume(pred, volume):
    vol = volume.copy()
    vol[4] = np.nan
    labels = prefilled(vol.shape)
    session = Session(pred, vol, labels, normalization=Normalization.window(100, 300), prefetch=0)
    depth = len(session.state.undo)
    assert_fails_cleanly(lambda: session.add_point((4, 20, 28)), labels, match="slice 4 .*NaN")
    assert_fails_cleanly(lambda: session.add_box((4, 5, 5), (4, 30, 40)), labels, match="NaN")
    assert_fails_cleanly(lambda: session.precompute(3, 5), labels, match="NaN")
    assert len(session.state.undo) == depth and not session.state.objects[session.label].prompts


def test_propagating_into_a_nan_slice_changes_nothing(pred, volume):
    """The walk fails on slice 4 after writing slice 3: the failed call must leave buffer and undo stack as they
    were."""
    vol = volume.copy()
    vol[4] = np.nan
    labels = prefilled(vol.shape)
    session = Session(pred, vol, labels, normalization=Normalization.window(100, 300), prefetch=0)
    session.add_point((2, 20, 28))
    assert (labels[2] == session.label).any()
    depth = len(session.state.undo)
    config = PropagationConfig(iou_threshold=0.0, min_area=1, direction="forward")
    assert_fails_cleanly(lambda: session.propagate(config=config), labels, match="NaN")
    assert len(session.state.undo) == depth


@pytest.mark.parametrize("image, match", [
    (np.zeros((0, 10, 10), np.float32), "empty"),
    (np.zeros((4, 0), np.float32), "empty"),
    (np.full((4, 10, 10), 7.0, np.float32), "constant"),
    (np.zeros((2, 4, 10, 10), np.float32), "4D|multi-channel|3D"),
    (np.zeros(10, np.float32), "2D .* or a 3D"),
    (np.zeros((40, 56, 3), np.uint8), "RGB"),
    (np.zeros((40, 56, 4), np.uint8), "RGB"),
    (np.ones((4, 10, 10), np.complex64), "real number"),
])
def test_unusable_images_are_refused(pred, image, match):
    labels = np.zeros(image.shape, np.uint16)
    labels.flat[:1] = 2
    assert_fails_cleanly(lambda: Session(pred, image, labels, prefetch=0), labels, match=match)


def test_rgb_shaped_volume_is_accepted_when_asked(pred):
    vol = np.random.default_rng(0).normal(size=(40, 56, 3)).astype(np.float32)
    session = Session(pred, vol, allow_rgb_shape=True, prefetch=0)
    assert session.shape == (40, 56, 3) and not session.is2d


@pytest.mark.parametrize("labels, match", [
    (np.zeros((6, 40, 55), np.uint16), "shape"),
    (np.zeros((6, 40, 56), np.float32), "integer"),
    (np.zeros((6, 40, 56), bool), "integer"),
    ([[0]], "numpy array"),
])
def test_wrong_label_buffers_are_refused(pred, volume, labels, match):
    before = np.array(labels, copy=True)
    with pytest.raises(InputError, match=match):
        Session(pred, volume, labels, prefetch=0)
    np.testing.assert_array_equal(np.asarray(labels), before)


def test_read_only_label_buffer_is_refused(pred, volume):
    labels = prefilled(volume.shape)
    labels.setflags(write=False)
    assert_fails_cleanly(lambda: Session(pred, volume, labels, prefetch=0), labels, match="read-only")


def test_label_ids_that_do_not_fit_the_buffer_dtype(pred, volume):
    """A uint8 buffer already holding 255: the next id is a free one (never 256 wrapped to 0); a buffer using
    every id is refused with a message naming its dtype."""
    labels = np.zeros(volume.shape, np.uint8)
    labels[0, 0, 0] = 255
    session = Session(pred, volume, labels, prefetch=0)
    session.add_point((2, 20, 28))
    assert session.label == 1 and labels[0, 0, 0] == 255
    full = (np.arange(labels.size) % 256).astype(np.uint8).reshape(labels.shape)
    assert_fails_cleanly(lambda: Session(pred, volume, full, prefetch=0), full, match="uint8")


OUTSIDE = [(2, 40, 10), (2, 10, 56), (-1, 10, 10), (6, 0, 0), (2, np.nan, 3), (2, 3), (1, 2, 3, 4)]


@pytest.mark.parametrize("point", OUTSIDE)
def test_points_outside_the_volume(pred, volume, point):
    labels = prefilled(volume.shape)
    session = Session(pred, volume, labels, prefetch=0)
    assert_fails_cleanly(lambda: session.add_point(point), labels, error=PromptError)
    assert not session.state.undo and not session.state.objects[session.label].prompts


def test_points_outside_a_2d_image(pred, volume):
    image = volume[0]
    labels = prefilled(image.shape)
    session = Session(pred, image, labels, prefetch=0)
    for point in [(40, 0), (0, 56), (-1, 5), (1, 2, 3)]:
        assert_fails_cleanly(lambda: session.add_point(point), labels, error=PromptError)


def test_bad_boxes(pred, volume):
    labels = prefilled(volume.shape)
    session = Session(pred, volume, labels, prefetch=0)
    assert_fails_cleanly(lambda: session.add_box((2, 5, 5), (2, 5, 30)), labels, error=PromptError, match="zero area")
    assert_fails_cleanly(lambda: session.add_box((2, 5, 5), (2, 30, 5)), labels, error=PromptError, match="zero area")
    assert_fails_cleanly(lambda: session.add_box((1, 5, 5), (2, 30, 30)), labels, error=PromptError,
                         match="different slices")
    assert_fails_cleanly(lambda: session.add_box((2, 5, 5), (2, 30, 60)), labels, error=PromptError, match="outside")
    assert not session.state.undo


def test_bad_axis_and_normalisation(pred, volume):
    labels = prefilled(volume.shape)
    assert_fails_cleanly(lambda: Session(pred, volume, labels, axis=3, prefetch=0), labels, match="axis")
    session = Session(pred, volume, labels, prefetch=0)
    assert_fails_cleanly(lambda: session.add_point((2, 3, 4), axis=-1), labels, match="axis")
    for make in (lambda: Normalization.window(40, 0), lambda: Normalization("percentile", 50, 10),
                 lambda: Normalization.percentile(-1, 99), lambda: Normalization("zscore"),
                 lambda: Normalization.parse("window:40"), lambda: Normalization.parse("gamma:1,2")):
        with pytest.raises(InputError):
            make()
    assert Normalization.parse("window:40,400") == Normalization.window(40, 400)
    for text in ("window:40,400", "percentile:1,98"):  # args() gives back the numbers parse() read
        norm = Normalization.parse(text)
        assert Normalization.parse(f"{norm.mode}:{norm.args()[0]},{norm.args()[1]}") == norm

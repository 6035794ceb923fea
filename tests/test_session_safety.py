"""Session verbs never take the user's labels: fresh object ids, undo after a no-op propagation,
propagation that stops where the object ends (issue 13, defects 6-8)."""

from __future__ import annotations

import numpy as np
import pytest

from pge_sam.predictor import Prediction, Predictor
from pge_sam.propagate import IntensityModel, PropagationConfig, background_value
from pge_sam.session import Session


@pytest.fixture
def pred(sam_tiny):
    """A fresh predictor per test (some tests replace its decode), not the module's shared one."""
    return Predictor(sam_tiny)


def test_next_object_skips_ids_the_user_painted(pred, volume):
    labels = np.zeros(volume.shape, np.uint16)
    s = Session(pred, volume, labels, prefetch=0)
    s.add_point((2, 20, 28))
    labels[5, :3, :3] = 2  # painted in napari after the session started
    labels[5, :3, 5:8] = 3
    new = s.next_object()
    assert new == 4
    s.add_point((3, 20, 28))
    s.reset_object()  # clearing the new object must not touch the painted ones
    assert (labels[5, :3, :3] == 2).all() and (labels[5, :3, 5:8] == 3).all()


def test_new_ids_fill_gaps_when_the_top_id_is_used(pred, volume):
    labels = np.zeros(volume.shape, np.uint8)
    labels[0, 0, 0], labels[0, 0, 1] = 255, 1
    s = Session(pred, volume, labels, prefetch=0)
    assert s.label == 2
    s.add_point((2, 20, 28))
    assert s.next_object() == 3
    labels[:] = np.arange(labels.size).reshape(labels.shape) % 256  # every id painted
    s.add_point((3, 20, 28))
    with pytest.raises(Exception, match="every label id"):
        s.next_object()


def test_a_propagation_that_changes_nothing_is_still_an_undo_step(pred, volume):
    labels = np.zeros(volume.shape, np.uint16)
    s = Session(pred, volume, labels, prefetch=0)
    s.add_point((2, 20, 28))
    after_click = labels.copy()
    change = s.propagate(config=PropagationConfig(max_slices=0))
    assert change.voxels == 0
    s.undo()  # undoes the propagation, not the click
    np.testing.assert_array_equal(labels, after_click)


def blank_topped_volume() -> tuple[np.ndarray, np.ndarray]:
    """(12, 40, 56): a bright disk (200) on noisy tissue (~50) in slices 0-7, all-zero slices 8-11."""
    rng = np.random.default_rng(0)
    vol = (50 + rng.normal(0, 5, (12, 40, 56))).astype(np.float32)
    yy, xx = np.mgrid[:40, :56]
    disk = (yy - 20) ** 2 + (xx - 28) ** 2 < 10 ** 2
    vol[:8][:, disk] = 200 + rng.normal(0, 5, (8, int(disk.sum())))
    vol[8:] = 0
    return vol, disk


def repeat_mask(pred, mask, propagated=None):
    """The decoder's failure mode on blank slices: it repeats the previous mask whatever the image
    (``propagated``: another mask for decodes fed previous logits, i.e. propagation)."""

    def decode(features, prompts, original_size, mask_input=None, multimask=None, aspect=1.0):
        import torch

        out = mask if mask_input is None or propagated is None else propagated
        return Prediction(out.copy(), out.astype(np.float32), torch.zeros(1, 1, 64, 64), 0.9)

    pred.decode = decode


def test_propagation_stops_at_blank_slices(pred):
    vol, disk = blank_topped_volume()
    labels = np.zeros(vol.shape, np.uint16)
    repeat_mask(pred, disk)
    s = Session(pred, vol, labels, prefetch=0)
    s.add_point((4, 20, 28))
    change = s.propagate()
    assert labels[8:].sum() == 0 and (labels[:8][:, disk] == 1).all()
    assert any("slice 8" in note and "intensities" in note for note in change.notes)


def test_propagated_masks_leave_out_background_voxels(pred):
    vol, disk = blank_topped_volume()
    vol[:, :, :6] = 0  # a masked-out band at the edge: the volume's background value is 0
    vol[:, :, 50:] = 0
    vol[:, :4] = 0
    vol[:, 36:] = 0
    spill = disk.copy()
    spill[15:25, 2:20] = True  # the model's mask spills over the masked-out band
    labels = np.zeros(vol.shape, np.uint16)
    repeat_mask(pred, disk, propagated=spill)
    s = Session(pred, vol, labels, prefetch=0)
    s.add_point((4, 20, 28))
    s.propagate()
    assert background_value(vol) == 0.0
    propagated = np.delete(np.arange(8), 4)
    assert not (labels[propagated] & (vol[propagated] == 0)).any()
    assert (labels[propagated][:, spill & (vol[0] != 0)] == 1).all()  # the rest of the spill is the model's call
    assert labels[8:].sum() == 0


def test_intensity_model_and_background_value():
    model = IntensityModel.from_seeds(np.linspace(100, 200, 1001))
    assert model.low < 101 and model.high > 199
    mask = np.ones((2, 2), bool)
    assert model.match(np.array([[150, 150], [0, 0]]), mask) == 0.5
    noisy = np.random.default_rng(0).normal(0, 1, (4, 8, 8))
    assert background_value(noisy) is None
    padded = np.full((4, 8, 8), -1024.0)
    padded[1:3, 2:6, 2:6] = 40
    assert background_value(padded) == -1024.0


def test_re_propagation_clears_slices_beyond_a_new_stop_marker(pred):
    vol, disk = blank_topped_volume()
    vol[8:] = vol[:4]  # no blank slices: the object goes on through the whole volume
    labels = np.zeros(vol.shape, np.uint16)
    repeat_mask(pred, disk)
    s = Session(pred, vol, labels, prefetch=0)
    s.add_point((4, 20, 28))
    s.propagate()
    assert (labels[:, 20, 28] == 1).all()
    s.add_point((7, 20, 28), positive=False)  # a lone negative click: "the object ends here"
    change = s.propagate()
    assert not labels[7:].any() and (labels[:7, 20, 28] == 1).all()
    assert any("cleared the object from" in note for note in change.notes)
    s.undo()  # one step: the cleared slices come back
    assert (labels[8:, 20, 28] == 1).all()

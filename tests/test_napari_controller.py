"""The plugin's Qt-free parts: controller verbs, the label buffer, coordinate conversion (no viewer, no display).

Geometric assertions (mask around the click, negative click shrinks it, a box
segments its object, propagation fills neighbours) run the shipped default
tiny model (``segmenting_model()`` of ``tests/fakes.py``). Bookkeeping tests
whose assertions need an exact rule (a small box inside an object, a click on
the background around it) use the deterministic ``FakeSession``
(``exact_ctrl``). Layer coordinate helpers are tested on napari layer objects
without a viewer.
"""

from __future__ import annotations

import numpy as np
import pytest

from fakes import FakeSession, ellipsoid_volume, segmenting_model, tiny_model

from napari_pge_sam._controller import Controller, NotReadyError, image_array
from pge_sam.errors import InputError, PromptError
from pge_sam.progress import RecordingProgress

CENTRE = (6.0, 24.0, 26.0)  # inside the ellipsoid of ellipsoid_volume()


@pytest.fixture
def ctrl():
    """A controller over the (12, 48, 56) ellipsoid volume with the segmenting model; display is uint16 zeros."""
    c = Controller(segmenting_model(), prefetch=0)
    c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.uint16))
    return c


@pytest.fixture
def exact_ctrl():
    """The same controller with the deterministic :class:`FakeSession`, for bookkeeping whose
    assertions need an exact rule (a box inside an object, a click on the surrounding background)."""
    c = Controller(sessions=FakeSession.factory(), prefetch=0)
    c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.uint16))
    return c


def test_click_writes_a_mask_around_it_on_its_slice_only(ctrl):
    change = ctrl.add_point(CENTRE)
    d = ctrl.display
    assert change.slices == (6,) and change.label == 1
    assert d[6, 24, 26] == 1
    assert (d[6] == 1).sum() == change.voxels > 100
    assert not np.delete(d, 6, axis=0).any()
    # the mask is (almost all) inside the ellipsoid
    assert (ellipsoid_volume()[6][d[6] == 1] > 0.5).mean() > 0.95


def test_negative_click_shrinks_and_undo_restores_mask_and_marks(ctrl):
    ctrl.add_point(CENTRE)
    before = ctrl.display.copy()
    ctrl.add_point((6.0, 24.0, 34.0), positive=False)
    assert 0 < (ctrl.display == 1).sum() < (before == 1).sum()
    assert [m.positive for m in ctrl.prompts()] == [True, False]
    change = ctrl.undo()
    assert change is not None and change.label == 1
    np.testing.assert_array_equal(ctrl.display, before)
    assert [m.positive for m in ctrl.prompts()] == [True]
    ctrl.undo()
    assert not ctrl.display.any() and ctrl.prompts() == []
    assert ctrl.undo() is None


def test_box_prompt_segments_the_boxed_object(ctrl):
    change = ctrl.add_box((6.0, 8.0, 12.0), (6.0, 40.0, 80.0))  # around the ellipse; x beyond the image: clipped to 55
    assert change.voxels > 100 and ctrl.display[6, 24, 26] == 1
    assert ctrl.prompts()[-1].coords[1][2] == 55.0
    assert (ellipsoid_volume()[6][ctrl.display[6] == 1] > 0.5).mean() > 0.9


def test_box_prompt_is_clipped_and_replaces_the_previous_box(exact_ctrl):
    ctrl = exact_ctrl
    change = ctrl.add_box((6.0, 14.0, 16.0), (6.0, 34.0, 80.0))  # x beyond the image: clipped to 55
    assert change.voxels > 0 and ctrl.display[6, 24, 26] == 1
    assert ctrl.prompts()[-1].coords[1][2] == 55.0
    ctrl.add_box((6.0, 20.0, 20.0), (6.0, 28.0, 32.0))
    assert [m.kind for m in ctrl.prompts()] == ["box"]  # one box per slice and object
    inside = np.zeros((48, 56), bool)
    inside[20:29, 20:33] = True
    assert inside[ctrl.display[6] == 1].mean() > 0.95  # the mask keeps to the new box
    with pytest.raises(PromptError, match="outside"):
        ctrl.add_box((6.0, 60.0, 60.0), (6.0, 70.0, 70.0))


def test_next_object_gets_a_new_id_and_never_paints_over_the_first(exact_ctrl):
    ctrl = exact_ctrl
    ctrl.add_point(CENTRE)
    first = ctrl.display.copy()
    assert ctrl.next_object() == 2
    ctrl.add_point((6.0, 5.0, 5.0))  # background: its region surrounds object 1
    assert ctrl.display[6, 5, 5] == 2
    np.testing.assert_array_equal(ctrl.display[first == 1], 1)
    # undo of object 2's only prompt, then once more: back to object 1
    ctrl.undo()
    assert ctrl.label == 2 and not (ctrl.display == 2).any()
    ctrl.undo()
    assert ctrl.label == 1 and not ctrl.display.any()


def test_overwrite_is_opt_in(ctrl):
    ctrl.display[6, 20:28, 20:30] = 9  # another object, painted by the user
    ctrl.add_point(CENTRE)
    assert (ctrl.display[6, 20:28, 20:30] == 9).all()
    ctrl.set_overwrite(True)
    ctrl.add_point((6.0, 24.0, 32.0))
    assert (ctrl.display[6, 20:28, 20:30] == ctrl.label).any()


def test_user_painting_between_clicks_is_kept(ctrl):
    ctrl.add_point(CENTRE)
    ctrl.display[6, 22:27, 28:33] = 7  # painted in napari over object 1, where the next click changes it
    ctrl.add_point((6.0, 24.0, 34.0), positive=False)
    assert (ctrl.display[6, 22:27, 28:33] == 7).all()
    assert ctrl.session.labels is ctrl.display  # one label buffer: the layer's data


def test_accept_commits_the_object(ctrl):
    ctrl.add_point(CENTRE)
    assert ctrl.accept() == 2
    assert ctrl.prompts() == [] and not ctrl.can_undo
    assert ctrl.undo() is None and ctrl.display[6, 24, 26] == 1


def test_clear_removes_object_and_undo_brings_it_back(ctrl):
    ctrl.add_point(CENTRE)
    before = ctrl.display.copy()
    ctrl.clear()
    assert not ctrl.display.any() and ctrl.prompts() == []
    ctrl.undo()
    np.testing.assert_array_equal(ctrl.display, before)
    assert len(ctrl.prompts()) == 1


def test_propagation_is_planned_without_writing_then_applied(ctrl):
    ctrl.add_point(CENTRE)
    plan = ctrl.plan_propagation(RecordingProgress())
    assert not ctrl.display[5].any()  # a worker plans: it writes nothing
    ctrl.display[7, 22:26, 24:28] = 5  # painted in napari while the worker ran
    change = ctrl.apply(plan)
    assert {5, 7, 3, 9} <= set(change.slices)
    for z in (3, 5, 9):
        assert ctrl.display[z, 24, 26] == 1
    assert (ctrl.display[7, 22:26, 24:28] == 5).all() and ctrl.display[7, 24, 30] == 1
    ctrl.undo()
    assert set(np.flatnonzero(ctrl.display.any(axis=(1, 2)))) == {6, 7}
    assert (ctrl.display[7] == 5).sum() == 16 and not (ctrl.display == 1)[7].any()


def test_cancelled_propagation_keeps_what_was_done(ctrl):
    ctrl.add_point(CENTRE)
    change = ctrl.apply(ctrl.plan_propagation(RecordingProgress(cancel_after=2)))
    assert change.cancelled and len(change.slices) == 2


def test_propagation_needs_a_prompt_and_a_volume(exact_ctrl):
    with pytest.raises(InputError, match="click on a slice first"):
        exact_ctrl.plan_propagation()
    exact_ctrl.ensure_session()
    with pytest.raises(InputError, match="no prompt"):
        exact_ctrl.plan_propagation()
    flat = Controller(sessions=FakeSession.factory(), prefetch=0)
    flat.set_image(ellipsoid_volume()[6], np.zeros((48, 56), np.uint16))
    flat.add_point((24.0, 26.0))
    with pytest.raises(InputError, match="3D"):
        flat.plan_propagation()


def test_slicing_axis_changes_where_a_click_lands(ctrl):
    ctrl.set_axis(2)
    change = ctrl.add_point(CENTRE)
    assert change.axis == 2 and change.slices == (26,)
    assert ctrl.display[:, :, 26].any() and not ctrl.display[:, :, 25].any()


def test_off_image_point_is_refused_without_touching_labels(ctrl):
    ctrl.add_point(CENTRE)
    before = ctrl.display.copy()
    with pytest.raises(PromptError, match="outside"):
        ctrl.add_point((6.0, 60.0, 10.0))
    np.testing.assert_array_equal(ctrl.display, before)
    assert len(ctrl.prompts()) == 1


def test_not_ready_errors_say_what_is_missing():
    c = Controller(None)
    with pytest.raises(NotReadyError, match="image"):
        c.ensure_session()
    c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.uint16))
    with pytest.raises(NotReadyError, match="model"):
        c.add_point(CENTRE)


def test_existing_labels_are_kept_and_new_ids_start_above_them():
    display = np.zeros((12, 48, 56), np.uint16)
    display[0, :4, :4] = 5
    c = Controller(segmenting_model(), prefetch=0)
    c.set_image(ellipsoid_volume(), display)
    assert c.label == 6
    c.add_point(CENTRE)
    assert display[6, 24, 26] == 6 and (display[0, :4, :4] == 5).all()


@pytest.mark.parametrize("data, kwargs, match", [
    (np.zeros((8, 8, 3)), {"rgb": True}, "RGB"),
    (np.zeros((2, 3, 8, 8)), {}, "2D"),
    (np.zeros((0, 8, 8)), {}, "empty"),
    (np.zeros((8, 8), complex), {}, "dtype"),
])
def test_unusable_image_layers_are_refused(data, kwargs, match):
    with pytest.raises(InputError, match=match):
        image_array(data, **kwargs)


def test_multiscale_uses_level_zero_without_reading_it():
    class Lazy:
        """An array-like that fails if read as a whole."""

        shape, dtype, ndim = (4, 8, 8), np.dtype(np.float32), 3

        def __array__(self, *a, **k):
            raise AssertionError("the whole array was read")

    level0 = Lazy()
    assert image_array([level0, object()], multiscale=True) is level0


def test_labels_of_wrong_shape_or_type_are_refused():
    c = Controller(segmenting_model())
    with pytest.raises(InputError, match="shape"):
        c.set_image(ellipsoid_volume(), np.zeros((12, 48, 55), np.uint16))
    with pytest.raises(InputError, match="integer"):
        c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.float32))
    with pytest.raises(InputError, match="spacing"):
        c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.uint16), spacing=(1.0, 0.0, 1.0))


def test_real_tiny_model_runs_the_verbs():
    """sam_tiny (shipped or random weights): encoding, caching and bookkeeping, whatever the mask looks like."""
    c = Controller(tiny_model(), prefetch=0)
    display = np.zeros((6, 40, 56), np.uint16)
    c.set_image(ellipsoid_volume((6, 40, 56)), display, spacing=(2.0, 1.0, 1.5))
    assert not c.is_encoded(3)
    c.encode(3)
    assert c.is_encoded(3)
    change = c.add_point((3.0, 20.0, 26.0))
    assert change.slices == (3,) and len(c.prompts()) == 1
    assert c.session.labels is display
    progress = RecordingProgress()
    assert c.precompute(progress) == 5  # slice 3 was cached
    assert progress.total == 6 and progress.done == 6
    c.undo()
    assert not display.any()


class SliceReads:
    """A (Z, Y, X) array-like that fails on any read bigger than ``limit`` elements (as a huge zarr would)."""

    def __init__(self, data: np.ndarray, limit: int) -> None:
        self.data, self.limit = data, limit
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.largest = 0

    def __getitem__(self, index):
        out = self.data[index]
        self.largest = max(self.largest, out.size)
        assert out.size <= self.limit, f"read of {out.size} elements"
        return out

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was converted")


def test_large_lazy_volumes_are_read_slice_by_slice():
    z, y, x = np.mgrid[0:40, 0:256, 0:256].astype(np.float32)
    data = np.where(((z - 20) / 12) ** 2 + ((y - 128) / 60) ** 2 + ((x - 128) / 60) ** 2 <= 1, 0.8, 0.1)
    lazy = SliceReads(data.astype(np.float32), limit=400_000)  # whole volume: 2.6 M elements
    c = Controller(segmenting_model(), prefetch=0)
    c.set_image(image_array(lazy), np.zeros(lazy.shape, np.uint16))
    c.add_point((20.0, 128.0, 128.0))
    c.apply(c.plan_propagation())
    c.precompute()
    assert all(c.is_encoded(z) for z in range(40))
    assert c.display[10, 128, 128] == 1 and c.display[30, 128, 128] == 1
    assert 256 * 256 <= lazy.largest <= 400_000


def test_2d_image_points_and_boxes():
    image = ellipsoid_volume()[6]
    c = Controller(segmenting_model(), prefetch=0)
    c.set_image(image, np.zeros(image.shape, np.uint16))
    c.set_axis(2)  # ignored: a 2D image has one slicing axis
    assert c.axis == 0 and c.slice_of((24.0, 26.0)) == 0
    c.add_box((8.0, 12.0), (40.0, 40.0))
    assert c.display[24, 26] == 1
    before = (c.display == 1).sum()
    c.add_point((24.0, 34.0), positive=False)
    assert 0 < (c.display == 1).sum() < before
    with pytest.raises(PromptError):
        c.add_point((24.0, 26.0, 1.0))


def test_coordinates_cross_layers_through_world_space():
    from napari.layers import Image, Points

    from napari_pge_sam._layers import convert, voxel_size

    image = Image(np.zeros((10, 20, 30)), scale=(2.0, 0.5, 0.75), translate=(10.0, -5.0, 3.0), rotate=30)
    points = Points(np.empty((0, 3)), ndim=3)  # identity transform: its data coordinates are world coordinates
    index = np.array([4.0, 12.0, 7.0])
    world = convert([index], image, points)[0]
    np.testing.assert_allclose(world, image.data_to_world(index))
    assert world[0] == pytest.approx(10.0 + 2.0 * 4)
    np.testing.assert_allclose(convert([world], points, image)[0], index, atol=1e-9)
    np.testing.assert_allclose(voxel_size(image), (2.0, 0.5, 0.75))  # the rotation keeps lengths


def test_slicing_axis_and_current_slice_follow_the_dims():
    from napari.components import Dims
    from napari.layers import Image

    from napari_pge_sam._layers import current_index, slicing_axis

    dims = Dims(ndim=3, ndisplay=2)
    assert slicing_axis(dims, 3) == 0 and slicing_axis(dims, 2) == 0
    dims.order = (2, 0, 1)
    assert slicing_axis(dims, 3) == 2
    dims.ndisplay = 3
    assert slicing_axis(dims, 3) is None
    world4 = Dims(ndim=4, ndisplay=2, order=(0, 2, 1, 3))  # a 3D layer in a 4D world: world axis 2 is data axis 1
    assert slicing_axis(world4, 3) == 1
    image = Image(np.zeros((10, 20, 30)), scale=(2.0, 1.0, 1.0), translate=(10.0, 0.0, 0.0))
    dims = Dims(ndim=3, ndisplay=2, range=((10.0, 28.0, 2.0), (0.0, 19.0, 1.0), (0.0, 29.0, 1.0)))
    dims.set_point(0, 10.0 + 2.0 * 7)
    assert current_index(dims, image, 0) == 7


@pytest.mark.parametrize("verb", ["next_object", "accept"])
def test_a_new_object_never_takes_an_id_painted_in_the_layer(exact_ctrl, verb):
    c = exact_ctrl
    c.add_point(CENTRE)
    c.display[0, :3, :3] = 2  # painted with napari's brush after the first click
    new = getattr(c, verb)()
    assert new == 3
    c.add_point((6.0, 24.0, 30.0))
    c.clear()  # clearing the new object leaves the painted voxels alone
    assert (c.display[0, :3, :3] == 2).all()


def test_a_volume_shaped_like_rgb_that_set_image_took_can_be_clicked(exact_ctrl):
    """(Z, Y, 3): set_image accepts it as a volume, so the session must too (it used to refuse the first click)."""
    c = exact_ctrl
    volume = np.zeros((12, 48, 3), np.float32)
    volume[:, 10:30, :] = 1.0
    c.set_image(volume, np.zeros(volume.shape, np.uint16))
    c.set_axis(2)
    change = c.add_point((6.0, 20.0, 1.0))
    assert change.voxels > 0 and c.display[6, 20, 1] == c.label


def test_a_volume_shaped_like_rgb_is_segmented_by_the_real_session(sam_tiny):
    """The same (Z, Y, 3) volume through a real Session (any tiny model): the first click must not be refused."""
    c = Controller(sam_tiny, prefetch=0)
    volume = np.zeros((12, 48, 3), np.float32)
    volume[:, 10:30, :] = 1.0
    c.set_image(volume, np.zeros(volume.shape, np.uint16))
    c.set_axis(0)
    change = c.add_point((6.0, 20.0, 1.0))
    assert change.slices == (6,) and c.session.labels is c.display and len(c.prompts()) == 1

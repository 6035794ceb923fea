"""The front-end half without a GUI (``pge_sam.interaction``): verbs on the caller's label buffer, the messages
and redraw bookkeeping, the click queue, the rules a running job imposes, embeddings carried across sessions.

Both front-ends drive an ``Interaction`` (napari's widget as ``controller``, Slicer's ``PGESAMLogic``).
Geometric assertions (mask around the click, negative click shrinks it, a box segments its object,
propagation fills neighbours) run the shipped default tiny model (``segmenting_model()`` of
``tests/fakes.py``). Bookkeeping tests whose assertions need an exact rule (a small box inside an object, a
click on the background around it) use the deterministic ``FakeSession`` (``exact_ctrl``).
"""

from __future__ import annotations

import numpy as np
import pytest

from fakes import FakeSession, ellipsoid_volume, segmenting_model, tiny_model

from pge_sam.errors import Cancelled, InputError, PromptError
from pge_sam.embeddings import EmbeddingMismatch
from pge_sam.interaction import Interaction, NotReadyError, describe_error
from pge_sam.model_files import ModelFiles, default_choice, list_model_files
from pge_sam.normalize import Normalization
from pge_sam.predictor import Predictor
from pge_sam.progress import RecordingProgress

CENTRE = (6.0, 24.0, 26.0)  # inside the ellipsoid of ellipsoid_volume()


@pytest.fixture
def ctrl():
    """A controller over the (12, 48, 56) ellipsoid volume with the segmenting model; labels are uint16 zeros."""
    c = Interaction(segmenting_model(), prefetch=0)
    c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.uint16))
    return c


@pytest.fixture
def exact_ctrl():
    """The same controller with the deterministic :class:`FakeSession`, for bookkeeping whose
    assertions need an exact rule (a box inside an object, a click on the surrounding background)."""
    c = Interaction(sessions=FakeSession.factory(), prefetch=0)
    c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.uint16))
    return c


def test_click_writes_a_mask_around_it_on_its_slice_only(ctrl):
    change = ctrl.add_point(CENTRE).change
    d = ctrl.labels
    assert change.slices == (6,) and change.label == 1
    assert d[6, 24, 26] == 1
    assert (d[6] == 1).sum() == change.voxels > 100
    assert not np.delete(d, 6, axis=0).any()
    # the mask is (almost all) inside the ellipsoid
    assert (ellipsoid_volume()[6][d[6] == 1] > 0.5).mean() > 0.95


def test_negative_click_shrinks_and_undo_restores_mask_and_marks(ctrl):
    ctrl.add_point(CENTRE)
    before = ctrl.labels.copy()
    ctrl.add_point((6.0, 24.0, 34.0), positive=False)
    assert 0 < (ctrl.labels == 1).sum() < (before == 1).sum()
    assert [m.positive for m in ctrl.prompts()] == [True, False]
    change = ctrl.undo().change
    assert change is not None and change.label == 1
    np.testing.assert_array_equal(ctrl.labels, before)
    assert [m.positive for m in ctrl.prompts()] == [True]
    ctrl.undo()
    assert not ctrl.labels.any() and ctrl.prompts() == []
    assert ctrl.undo().change is None


def test_box_prompt_segments_the_boxed_object(ctrl):
    change = ctrl.add_box((6.0, 8.0, 12.0), (6.0, 40.0, 80.0)).change  # x beyond the image: clipped to 55
    assert change.voxels > 100 and ctrl.labels[6, 24, 26] == 1
    assert ctrl.prompts()[-1].coords[1][2] == 55.0
    assert (ellipsoid_volume()[6][ctrl.labels[6] == 1] > 0.5).mean() > 0.9


def test_box_prompt_is_clipped_and_replaces_the_previous_box(exact_ctrl):
    ctrl = exact_ctrl
    change = ctrl.add_box((6.0, 14.0, 16.0), (6.0, 34.0, 80.0)).change  # x beyond the image: clipped to 55
    assert change.voxels > 0 and ctrl.labels[6, 24, 26] == 1
    assert ctrl.prompts()[-1].coords[1][2] == 55.0
    ctrl.add_box((6.0, 20.0, 20.0), (6.0, 28.0, 32.0))
    assert [m.kind for m in ctrl.prompts()] == ["box"]  # one box per slice and object
    inside = np.zeros((48, 56), bool)
    inside[20:29, 20:33] = True
    assert inside[ctrl.labels[6] == 1].mean() > 0.95  # the mask keeps to the new box
    with pytest.raises(PromptError, match="outside"):
        ctrl.add_box((6.0, 60.0, 60.0), (6.0, 70.0, 70.0))


def test_next_object_gets_a_new_id_and_never_paints_over_the_first(exact_ctrl):
    ctrl = exact_ctrl
    ctrl.add_point(CENTRE)
    first = ctrl.labels.copy()
    assert ctrl.next_object().label == 2
    ctrl.add_point((6.0, 5.0, 5.0))  # background: its region surrounds object 1
    assert ctrl.labels[6, 5, 5] == 2
    np.testing.assert_array_equal(ctrl.labels[first == 1], 1)
    # undo of object 2's only prompt, then once more: back to object 1
    ctrl.undo()
    assert ctrl.label == 2 and not (ctrl.labels == 2).any()
    ctrl.undo()
    assert ctrl.label == 1 and not ctrl.labels.any()


def test_overwrite_is_opt_in(ctrl):
    ctrl.labels[6, 20:28, 20:30] = 9  # another object, painted by the user
    ctrl.add_point(CENTRE)
    assert (ctrl.labels[6, 20:28, 20:30] == 9).all()
    ctrl.set_overwrite(True)
    ctrl.add_point((6.0, 24.0, 32.0))
    assert (ctrl.labels[6, 20:28, 20:30] == ctrl.label).any()


def test_user_painting_between_clicks_is_kept(ctrl):
    ctrl.add_point(CENTRE)
    ctrl.labels[6, 22:27, 28:33] = 7  # painted in napari over object 1, where the next click changes it
    ctrl.add_point((6.0, 24.0, 34.0), positive=False)
    assert (ctrl.labels[6, 22:27, 28:33] == 7).all()
    assert ctrl.session.labels is ctrl.labels  # one label buffer: the layer's data


def test_accept_commits_the_object(ctrl):
    ctrl.add_point(CENTRE)
    assert ctrl.accept().label == 2
    assert ctrl.prompts() == [] and not ctrl.can_undo
    assert ctrl.undo().change is None and ctrl.labels[6, 24, 26] == 1


def test_clear_removes_object_and_undo_brings_it_back(ctrl):
    ctrl.add_point(CENTRE)
    before = ctrl.labels.copy()
    ctrl.clear()
    assert not ctrl.labels.any() and ctrl.prompts() == []
    ctrl.undo()
    np.testing.assert_array_equal(ctrl.labels, before)
    assert len(ctrl.prompts()) == 1


def test_propagation_is_planned_without_writing_then_applied(ctrl):
    ctrl.add_point(CENTRE)
    plan = ctrl.plan_propagation(RecordingProgress())
    assert not ctrl.labels[5].any()  # a worker plans: it writes nothing
    ctrl.labels[7, 22:26, 24:28] = 5  # painted in napari while the worker ran
    change = ctrl.apply(plan).change
    assert {5, 7, 3, 9} <= set(change.slices)
    for z in (3, 5, 9):
        assert ctrl.labels[z, 24, 26] == 1
    assert (ctrl.labels[7, 22:26, 24:28] == 5).all() and ctrl.labels[7, 24, 30] == 1
    ctrl.undo()
    assert set(np.flatnonzero(ctrl.labels.any(axis=(1, 2)))) == {6, 7}
    assert (ctrl.labels[7] == 5).sum() == 16 and not (ctrl.labels == 1)[7].any()


def test_cancelled_propagation_keeps_what_was_done(ctrl):
    ctrl.add_point(CENTRE)
    change = ctrl.apply(ctrl.plan_propagation(RecordingProgress(cancel_after=2))).change
    assert change.cancelled and len(change.slices) == 2


def test_propagation_needs_a_prompt_and_a_volume(exact_ctrl):
    with pytest.raises(InputError, match="click on a slice first"):
        exact_ctrl.plan_propagation()
    exact_ctrl.ensure_session()
    with pytest.raises(InputError, match="no prompt"):
        exact_ctrl.plan_propagation()
    flat = Interaction(sessions=FakeSession.factory(), prefetch=0)
    flat.set_image(ellipsoid_volume()[6], np.zeros((48, 56), np.uint16))
    flat.add_point((24.0, 26.0))
    with pytest.raises(InputError, match="3D"):
        flat.plan_propagation()


def test_slicing_axis_changes_where_a_click_lands(ctrl):
    ctrl.set_axis(2)
    change = ctrl.add_point(CENTRE).change
    assert change.axis == 2 and change.slices == (26,)
    assert ctrl.labels[:, :, 26].any() and not ctrl.labels[:, :, 25].any()


def test_off_image_point_is_refused_without_touching_labels(ctrl):
    ctrl.add_point(CENTRE)
    before = ctrl.labels.copy()
    with pytest.raises(PromptError, match="outside"):
        ctrl.add_point((6.0, 60.0, 10.0))
    np.testing.assert_array_equal(ctrl.labels, before)
    assert len(ctrl.prompts()) == 1


def test_not_ready_errors_say_what_is_missing():
    c = Interaction(None)
    with pytest.raises(NotReadyError, match="image"):
        c.ensure_session()
    c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.uint16))
    with pytest.raises(NotReadyError, match="model"):
        c.add_point(CENTRE)


def test_existing_labels_are_kept_and_new_ids_start_above_them():
    display = np.zeros((12, 48, 56), np.uint16)
    display[0, :4, :4] = 5
    c = Interaction(segmenting_model(), prefetch=0)
    c.set_image(ellipsoid_volume(), display)
    assert c.label == 6
    c.add_point(CENTRE)
    assert display[6, 24, 26] == 6 and (display[0, :4, :4] == 5).all()


def test_labels_of_wrong_shape_or_type_are_refused():
    c = Interaction(segmenting_model())
    with pytest.raises(InputError, match="shape"):
        c.set_image(ellipsoid_volume(), np.zeros((12, 48, 55), np.uint16))
    with pytest.raises(InputError, match="integer"):
        c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.float32))
    with pytest.raises(InputError, match="spacing"):
        c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.uint16), spacing=(1.0, 0.0, 1.0))


def test_real_tiny_model_runs_the_verbs():
    """sam_tiny (shipped or random weights): encoding, caching and bookkeeping, whatever the mask looks like."""
    c = Interaction(tiny_model(), prefetch=0)
    display = np.zeros((6, 40, 56), np.uint16)
    c.set_image(ellipsoid_volume((6, 40, 56)), display, spacing=(2.0, 1.0, 1.5))
    assert not c.is_encoded(3)
    c.encode(3)
    assert c.is_encoded(3)
    change = c.add_point((3.0, 20.0, 26.0)).change
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
    c = Interaction(segmenting_model(), prefetch=0)
    c.set_image(lazy, np.zeros(lazy.shape, np.uint16))
    c.add_point((20.0, 128.0, 128.0))
    c.apply(c.plan_propagation())
    c.precompute()
    assert all(c.is_encoded(z) for z in range(40))
    assert c.labels[10, 128, 128] == 1 and c.labels[30, 128, 128] == 1
    assert 256 * 256 <= lazy.largest <= 400_000


def test_2d_image_points_and_boxes():
    image = ellipsoid_volume()[6]
    c = Interaction(segmenting_model(), prefetch=0)
    c.set_image(image, np.zeros(image.shape, np.uint16))
    c.set_axis(2)  # ignored: a 2D image has one slicing axis
    assert c.axis == 0 and c.slice_of((24.0, 26.0)) == 0
    c.add_box((8.0, 12.0), (40.0, 40.0))
    assert c.labels[24, 26] == 1
    before = (c.labels == 1).sum()
    c.add_point((24.0, 34.0), positive=False)
    assert 0 < (c.labels == 1).sum() < before
    with pytest.raises(PromptError):
        c.add_point((24.0, 26.0, 1.0))


@pytest.mark.parametrize("verb", ["next_object", "accept"])
def test_a_new_object_never_takes_an_id_painted_in_the_layer(exact_ctrl, verb):
    c = exact_ctrl
    c.add_point(CENTRE)
    c.labels[0, :3, :3] = 2  # painted with napari's brush after the first click
    new = getattr(c, verb)().label
    assert new == 3
    c.add_point((6.0, 24.0, 30.0))
    c.clear()  # clearing the new object leaves the painted voxels alone
    assert (c.labels[0, :3, :3] == 2).all()


def test_a_volume_shaped_like_rgb_that_set_image_took_can_be_clicked(exact_ctrl):
    """(Z, Y, 3): set_image accepts it as a volume, so the session must too (it used to refuse the first click)."""
    c = exact_ctrl
    volume = np.zeros((12, 48, 3), np.float32)
    volume[:, 10:30, :] = 1.0
    c.set_image(volume, np.zeros(volume.shape, np.uint16))
    c.set_axis(2)
    change = c.add_point((6.0, 20.0, 1.0)).change
    assert change.voxels > 0 and c.labels[6, 20, 1] == c.label


def test_a_volume_shaped_like_rgb_is_segmented_by_the_real_session(sam_tiny):
    """The same (Z, Y, 3) volume through a real Session (any tiny model): the first click must not be refused."""
    c = Interaction(sam_tiny, prefetch=0)
    volume = np.zeros((12, 48, 3), np.float32)
    volume[:, 10:30, :] = 1.0
    c.set_image(volume, np.zeros(volume.shape, np.uint16))
    c.set_axis(0)
    change = c.add_point((6.0, 20.0, 1.0)).change
    assert change.slices == (6,) and c.session.labels is c.labels and len(c.prompts()) == 1


# -- what both front-ends share: messages, redraw bookkeeping, waiting clicks, job rules ---------------------------

def test_updates_say_what_changed_and_which_labels_to_redraw(exact_ctrl):
    c = exact_ctrl
    u = c.add_point(CENTRE)
    assert u.message == f"object 1: {u.change.voxels} voxels changed on slice 6" and u.label == 1 and u.labels == {1}
    u = c.next_object()
    assert u.change is None and u.message == "now segmenting object 2" and u.labels == {1, 2}
    u = c.add_point((6.0, 5.0, 5.0))
    assert u.labels == {1, 2}  # one box can cut every label written so far (overwrite, undo)
    assert c.undo().message == "undone (object 2)"
    assert c.clear().message == "object 2 cleared (Undo brings it back)"
    assert c.accept().message == "object accepted; now segmenting object 2"  # object 2 is still empty
    assert c.undo().message == "undone (object 1)" and c.undo().message == "nothing to undo"


def test_waiting_clicks_are_shown_then_applied_in_order_once_encoded(exact_ctrl):
    c = exact_ctrl
    c.submit("point", CENTRE)
    c.submit("box", ((8.0, 14.0, 16.0), (8.0, 34.0, 80.0)))
    assert [(m.kind, m.index) for m in c.prompts()] == [("point", 6), ("box", 8)] and c.can_undo
    assert c.waiting_for() == 6
    c.encode(6)
    assert c.waiting_for() is None
    assert c.apply_pending().change.slices == (6,) and c.waiting_for() == 8
    assert c.undo().message == "the last waiting click was removed" and not c.pending
    assert [m.kind for m in c.prompts()] == ["point"]
    with pytest.raises(PromptError, match="outside"):
        c.submit("point", (6.0, 60.0, 10.0))
    assert not c.pending and c.apply_pending() is None


def test_a_waiting_click_keeps_the_slicing_axis_it_was_made_on(exact_ctrl):
    c = exact_ctrl
    c.submit("point", CENTRE)  # axis 0: slice 6
    c.set_axis(2)
    assert c.waiting_for() == 6
    c.encode(6, 0)
    change = c.apply_pending().change
    assert (change.axis, change.slices, c.axis) == (0, (6,), 2)


def test_running_jobs_refuse_what_would_race_with_them(exact_ctrl):
    c = exact_ctrl
    assert c.refusal("prompt") is None and c.refusal("edit", {"encode", "model"}) is None
    assert c.refusal("prompt", {"propagate"}).endswith("press Cancel, then click again")
    assert "propagation is running" in c.refusal("edit", {"propagate"})
    assert "pending clicks" in c.refusal("propagate", {"encode"})
    c.submit("point", CENTRE)
    assert "pending clicks" in c.refusal("propagate")
    assert "running job" in c.refusal("embeddings", {"precompute"}) and c.refusal("model", {"embeddings"})
    assert c.refusal("model", {"encode"}) is None
    blank = Interaction()
    assert "no image" in blank.refusal("edit") and blank.refusal("model") is None
    assert blank.refusal("normalize") is None and "propagation is running" in blank.refusal("normalize", {"propagate"})
    blank.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.uint16))
    assert "load a model" in blank.refusal("precompute") and "load a model" in blank.refusal("embeddings")


def test_job_results_go_stale_when_the_image_model_or_normalisation_changes(exact_ctrl, sam_tiny):
    c = exact_ctrl
    before = c.generation
    c.add_point(CENTRE)
    c.set_axis(1)
    c.set_overwrite(True)
    c.set_labels(np.zeros((12, 48, 56), np.uint16))
    c.close()
    assert c.generation == before  # none of these makes running work useless
    c.submit("point", CENTRE)
    c.set_model(sam_tiny)
    assert c.generation == before + 1 and len(c.pending) == 1  # the click waits for the new model
    message = c.set_normalization(Normalization.window(0.5, 1.0))
    assert message == "normalisation window:0,1: prompts cleared, labels kept"
    assert c.generation == before + 2 and not c.pending
    assert c.set_normalization("window:40,400") == "normalisation window:-160,240: prompts cleared, labels kept"
    with pytest.raises(InputError, match="width must be positive"):  # the text a front-end's fields make
        c.set_normalization("window:40,-5")
    assert c.normalization.key() == "window:-160,240" and c.generation == before + 3
    c.set_image(ellipsoid_volume(), np.zeros((12, 48, 56), np.uint16))
    c.detach()
    assert c.generation == before + 5 and c.image is None and c.session is None


def test_status_line_point_lists_and_error_texts(exact_ctrl):
    assert Interaction().status() == "no image"
    c = exact_ctrl
    assert c.status(6, 0.0123) == "object 1 · axis 0 slice 6 · last click 12 ms"
    c.add_point(CENTRE)
    c.add_point((6.0, 24.0, 34.0), positive=False)
    assert c.current_points(True) == [(6, 24, 26)] and c.current_points(False) == [(6, 24, 34)]
    c.next_object()
    assert c.current_points(True) == [] and c.status() == "object 2 · axis 0 slice None"
    flat = Interaction(sessions=FakeSession.factory())
    flat.set_image(ellipsoid_volume()[6], np.zeros((48, 56), np.uint16))
    assert flat.status() == "object 1 · 2D image"
    assert describe_error(Cancelled("stopped")) == ("stopped", False)
    assert describe_error(InputError("bad point")) == ("bad point", True)
    assert describe_error(RuntimeError("boom")) == ("RuntimeError: boom", True)


def test_loaded_embeddings_serve_every_later_session_until_they_no_longer_fit(sam_tiny, tmp_path):
    volume = ellipsoid_volume((6, 40, 56))
    source = Interaction(Predictor(sam_tiny), prefetch=0)
    source.set_image(volume, np.zeros(volume.shape, np.uint16))
    assert "6 slice embeddings along axis 0 (6 encoded" in source.save_embeddings(tmp_path / "emb")
    pred = Predictor(sam_tiny)  # its own, empty cache
    c = Interaction(pred, prefetch=0)
    c.set_image(volume, np.zeros(volume.shape, np.uint16))
    c.set_normalization(Normalization.window(0.5, 1.0))
    with pytest.raises(EmbeddingMismatch, match="normalisation"):
        c.load_embeddings(tmp_path / "emb")
    assert c.embeddings is None  # a refused store is not remembered
    c.set_normalization(Normalization.percentile())
    assert "embeddings loaded" in c.load_embeddings(tmp_path / "emb") and c.embeddings == tmp_path / "emb"
    c.add_point((3, 20, 26))
    c.set_image(volume, np.zeros(volume.shape, np.uint16))  # a new session: the store is attached again
    c.add_point((2, 20, 26))
    assert pred.encoder_calls == 0 and c.session.disk is not None
    c.set_normalization(Normalization.window(0.5, 1.0))  # the store was made with another normalisation
    update = c.add_point((1, 20, 26))
    assert update.message.startswith(f"the embeddings in {tmp_path / 'emb'} are no longer used")
    assert c.embeddings is None
    assert pred.encoder_calls > 0


def test_use_model_builds_each_model_once(exact_ctrl):
    c = Interaction(prefetch=0)
    c.use_model("sam_tiny", "cpu")
    first = c.model
    c.set_image(ellipsoid_volume((6, 40, 56)), np.zeros((6, 40, 56), np.uint16))
    session = c.ensure_session()
    c.use_model("sam_tiny", "cpu")
    assert c.model is first and c.session is session  # the same model: the session goes on
    c.release()


def test_model_choices_follow_the_cache_folder(tmp_path):
    by_name = {f.name: f for f in list_model_files(tmp_path)}
    assert not by_name["sam_vit_b"].present and by_name["sam_vit_b"].downloadable
    assert by_name["sam_vit_b"].label().endswith("(weights missing)")
    (tmp_path / "sam_vit_b_01ec64.pth").write_bytes(b"")
    (tmp_path / "pge_sam_vit_b_adapter.safetensors").write_bytes(b"")
    by_name = {f.name: f for f in list_model_files(tmp_path)}
    assert by_name["sam_vit_b"].present and by_name["pge_sam_vit_b"].present
    assert by_name["sam_vit_b"].label() == "sam_vit_b"
    assert not by_name["sam_vit_l"].present and not by_name["sam_tiny"].downloadable
    robust = by_name["robust_sam_vit_b"]  # the release's file: looked up in the cache, never downloaded
    assert not robust.present and not robust.downloadable and robust.checkpoint.name == "robustsam_checkpoint_b.pth"
    (tmp_path / "robustsam_checkpoint_b.pth").write_bytes(b"")
    assert {f.name: f for f in list_model_files(tmp_path)}["robust_sam_vit_b"].present


def test_default_choice_prefers_present_tiny_models(tmp_path):
    def choices(pge: bool, sam: bool):
        folder = tmp_path / f"{pge}{sam}"
        folder.mkdir()
        for name, present in (("pge_sam_tiny", pge), ("sam_tiny", sam)):
            if present:
                (folder / name).write_bytes(b"")
        return [ModelFiles(name, name.rsplit("_", 1)[0], "tiny", folder / name, None, folder)
                for name in ("pge_sam_tiny", "sam_tiny")]

    assert default_choice(choices(True, True)).name == "pge_sam_tiny"
    assert default_choice(choices(False, True)).name == "sam_tiny"
    assert default_choice(choices(False, False)).name == "pge_sam_tiny"


def test_other_mask_shows_the_next_proposal_for_a_first_click_and_waits_for_pending_clicks(exact_ctrl):
    c = exact_ctrl
    c.add_point(CENTRE)
    grown = c.labels[6] == 1
    update = c.other_mask()
    assert update.change.slices == (6,) and "another mask for the click on slice 6" in update.message
    assert (c.labels[6] == 1).sum() < grown.sum() and not ((c.labels[6] == 1) & ~grown).any()  # the fake: eroded
    c.undo()
    np.testing.assert_array_equal(c.labels[6] == 1, grown)
    c.submit("point", (7.0, 24.0, 26.0))  # a click waiting for its slice: 'other mask' would answer the older one
    assert "wait until the pending clicks are applied" in c.refusal("other mask")
    c.pending.clear()
    c.add_point((6.0, 24.0, 30.0))
    with pytest.raises(PromptError, match="first positive click"):
        c.other_mask()

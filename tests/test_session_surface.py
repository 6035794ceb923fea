"""The session's public surface (issue 18): the verbs front-ends need, and no hidden shared state.

Each test here failed on the code before issue 18: the verbs did not exist, or
the state they expose was reached through ``session.state`` / the predictor's
cache by the front-ends.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from pge_sam import edits
from pge_sam.cache import EmbeddingCache
from pge_sam.errors import InputError, MissingWeightsError
from pge_sam.model_files import build_model, model_files
from pge_sam.predictor import Predictor
from pge_sam.progress import RecordingProgress
from pge_sam.propagate import PropagationConfig
from pge_sam.session import Session
from pge_sam.session_protocol import PromptMark, SessionLike


def test_session_implements_the_protocol(pred, volume):
    assert isinstance(Session(pred, volume, prefetch=0), SessionLike)


def test_prompts_for_display_follow_undo_and_clear(pred, volume):
    s = Session(pred, volume, prefetch=0)
    s.add_point((2, 20, 28))
    s.add_point((2, 5, 50), positive=False)
    s.add_box((4, 30, 45), (4, 10, 10))
    label = s.label
    assert s.prompts() == [PromptMark("point", label, 0, 2, ((2, 20, 28),), True),
                           PromptMark("point", label, 0, 2, ((2, 5, 50),), False),
                           PromptMark("box", label, 0, 4, ((4, 10, 10), (4, 30, 45)), True)]
    s.undo()
    assert [m.kind for m in s.prompts()] == ["point", "point"]
    s.reset_object()
    assert s.prompts() == []
    s.undo()  # the clear is undone: the prompts are back
    assert [m.positive for m in s.prompts()] == [True, False]
    flat = Session(pred, volume[2], prefetch=0)
    flat.add_point((20, 28))
    assert flat.prompts() == [PromptMark("point", flat.label, 0, 0, ((20, 28),), True)]


def test_commit_object_keeps_voxels_and_drops_its_prompts_and_undo(pred, volume):
    labels = np.zeros(volume.shape, np.uint16)
    s = Session(pred, volume, labels, prefetch=0)
    s.add_point((2, 20, 28))
    first = labels.copy()
    assert s.can_undo and s.commit_object() == 2
    assert s.label == 2 and s.prompts() == [] and not s.can_undo
    assert s.undo() is None
    np.testing.assert_array_equal(labels, first)


def test_undo_goes_back_to_the_object_it_edits(pred, volume):
    labels = np.zeros(volume.shape, np.uint16)
    s = Session(pred, volume, labels, prefetch=0)
    s.add_point((2, 20, 28))
    assert s.next_object() == 2
    s.undo()  # object 2 has no prompt yet: the undo is object 1's, and editing goes back to object 1
    assert s.label == 1 and not labels.any()


def test_is_encoded_and_encode(pred, volume):
    s = Session(pred, volume.copy(), prefetch=0)
    assert not s.is_encoded(3)
    s.encode(3)
    assert s.is_encoded(3) and not s.is_encoded(3, axis=1)
    with pytest.raises(InputError, match="outside"):
        s.is_encoded(6)


def test_planned_propagation_writes_nothing_until_applied_and_keeps_painting(pred, volume):
    labels = np.zeros(volume.shape, np.uint16)
    s = Session(pred, volume, labels, prefetch=0)
    s.add_point((2, 20, 28))
    s.propagation = PropagationConfig(prompt=("points",), iou_threshold=0.0, min_area=1, min_content_match=0.0)
    after_click = labels.copy()
    plan = s.plan_propagation(RecordingProgress())
    np.testing.assert_array_equal(labels, after_click)  # a worker may plan: the buffer is untouched
    written = [e for e in plan.edits if e.before is not None]
    assert written, "the tiny model labelled no neighbour slice"
    e = written[0]
    painted = np.zeros(labels.shape, bool)
    painted[e.index][e.rows, e.cols] = e.before != e.after
    labels[painted] = 9  # the user paints where the plan would write
    change = s.apply(plan)
    assert (labels[painted] == 9).all() and change.label == s.label
    other = Session(pred, volume, np.zeros(volume.shape, np.uint16), prefetch=0)
    with pytest.raises(InputError, match="another session"):
        other.apply(plan)
    s.undo()
    assert (labels[painted] == 9).all() and ((labels == s.label) == (after_click == s.label)).all()


def test_propagation_needs_a_volume_and_a_prompt(pred, volume):
    with pytest.raises(InputError, match="3D"):
        Session(pred, volume[2], prefetch=0).plan_propagation()
    with pytest.raises(InputError, match="no prompt along axis 0"):
        Session(pred, volume, prefetch=0).plan_propagation()


def test_edits_apply_is_the_reverse_of_revert():
    view = np.zeros((4, 5), np.uint16)
    view[0, 0] = 3
    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:4] = True
    edit = edits.diff(view, mask, 2, False, 0, 0, None, None)
    assert view[0, 0] == 3 and (view != 0).sum() == 1  # diff writes nothing
    view[1, 1] = 7  # painted after the diff: kept by apply
    assert edits.apply(view, edit) == 5 and view[1, 1] == 7 and (view[1:3, 1:4] == 2).sum() == 5
    assert edits.revert(view, edit) == 5 and view[1, 1] == 7 and (view == 2).sum() == 0


def test_no_hidden_predictor_registry(sam_tiny, volume):
    a, b = Session(sam_tiny, volume, prefetch=0), Session(sam_tiny, volume, prefetch=0)
    assert a.predictor is not b.predictor  # a bare model gets its own predictor: nothing global
    shared = Predictor(sam_tiny)
    assert Session(shared, volume, prefetch=0).predictor is shared
    import pge_sam.predictor as P

    assert not hasattr(P, "_SHARED") and not hasattr(P, "predictor_for")


def test_predictor_leaves_the_given_cache_as_it_is(sam_tiny):
    cache = EmbeddingCache("meta")
    with pytest.raises(InputError, match="EmbeddingCache"):
        Predictor(sam_tiny, cache)
    assert cache.device.type == "meta"
    mine = EmbeddingCache("cpu", device_budget=1 << 20)
    assert Predictor(sam_tiny, mine).cache is mine and mine.device.type == "cpu"


def test_closing_one_session_keeps_the_other_sessions_prefetch(sam_tiny, volume):
    pred = Predictor(sam_tiny, batch_size=1)
    try:
        busy = Session(pred, volume, prefetch=2)
        idle = Session(pred, volume + 1.0, prefetch=2)
        busy.focus(2)  # slices 2, 3, 1, 4, 0 in the background
        idle.close()
        deadline = time.monotonic() + 60
        # the encoder counts a slice before its entry reaches the cache: wait for the entries themselves
        while not all(busy.is_encoded(i) for i in range(5)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pred.encoded_slices == 5 and all(busy.is_encoded(i) for i in range(5))
        busy.close()
    finally:
        pred.close()


def test_the_weights_folder_is_an_argument(tmp_path, monkeypatch):
    elsewhere = tmp_path / "env"
    mine = tmp_path / "mine"
    monkeypatch.setenv("PGE_SAM_CACHE_DIR", str(elsewhere))
    files = model_files("pge_sam_vit_b", cache_dir=mine)
    assert files.checkpoint == mine / "sam_vit_b_01ec64.pth" and files.adapter.parent == mine
    assert not files.present and files.downloadable
    with pytest.raises(MissingWeightsError, match=f"cache folder {mine}"):
        build_model("sam_vit_b", cache_dir=mine, device="cpu")
    (mine / "robustsam_checkpoint_b.pth").parent.mkdir()
    (mine / "robustsam_checkpoint_b.pth").write_bytes(b"")
    robust = model_files("robust_sam_vit_b", cache_dir=mine)
    assert robust.present and robust.adapter is None and not robust.downloadable
    assert model_files("sam_tiny").present  # the shipped tiny weights need no folder


def test_the_tests_fake_implements_the_same_protocol():
    from fakes import FakeSession, ellipsoid_volume

    assert isinstance(FakeSession(ellipsoid_volume()), SessionLike)

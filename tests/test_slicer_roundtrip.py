"""The Slicer module's path through the pge-sam core, emulated without Slicer.

A 40-slice crop of the MNI T1 is written with a non-identity geometry
(permuted, flipped and rotated direction, non-zero origin, anisotropic
spacing) and read back with ``pge_sam.io.read_image``. Then the module's own
logic (``PGESAMSlicerLib.logic`` over the stand-ins of ``tests/slicer_fakes.py``)
gets a volume node with the IJK->RAS matrix built from the SimpleITK (LPS)
geometry and include/exclude points in world RAS clicked in an axial view; the
core ``Session`` runs with the shipped tiny model, only the changed region is
written into the segment, and the labels are written with the input's geometry.

The tests assert that the logic's results equal direct core calls on voxels
computed independently with SimpleITK, that changes stay in the reported box,
and that geometry survives the trip. The logic's mapping onto the session's
verbs and its redrawing of the point lists from the session's prompts (undo,
clear, propagate, next segment) are tested with the shared ``FakeSession``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import slicer_fakes as sf
from fakes import FakeSession, ellipsoid_volume

from pge_sam import Normalization, PropagationConfig, Session, build_model
from pge_sam.errors import Cancelled
from pge_sam.interaction import Interaction
from pge_sam.io import read_image, write_labels
from pge_sam.samples import mni_path

MODULE_DIR = Path(__file__).resolve().parents[1] / "slicer_pge_sam" / "PGESAM"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from PGESAMLib import geometry as g  # noqa: E402
from PGESAMLib import regions as r  # noqa: E402
from PGESAMLib.progress import ProgressRelay  # noqa: E402

F = np.diag([-1.0, -1.0, 1.0])  # LPS <-> RAS
AXIAL = np.array([[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)  # Slicer's axial SliceToRAS


def rot_s(deg: float) -> np.ndarray:
    """3x3 rotation about the S axis."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# Columns: RAS directions of I, J, K. I -> A and K -> -R, both rotated 25 degrees about S; J -> S.
# det = -1 (a flip), so NIfTI must store qfac; the axial view slices J, not K.
DIRECTION_RAS = rot_s(25.0) @ np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
ORIGIN_RAS = np.array([31.5, -12.25, 48.0])
SPACING_IJK = (0.8, 1.5, 1.2)
CROP_Y = slice(96, 136)  # 40 coronal MNI slices -> the J axis (40 slices) of the test volume


@pytest.fixture(scope="module")
def model():
    return build_model("sam_tiny", device="cpu")


@pytest.fixture(scope="module", params=[".nii.gz", ".nrrd"])
def loaded(request, tmp_path_factory):
    mni = sitk.GetArrayFromImage(sitk.ReadImage(str(mni_path("t1"))))  # (Z, Y, X) uint8, 1 mm
    image = sitk.GetImageFromArray(np.ascontiguousarray(mni[:, CROP_Y, :]))  # (K, J, I) = (189, 40, 197)
    image.SetSpacing(SPACING_IJK)
    image.SetOrigin((F @ ORIGIN_RAS).tolist())
    image.SetDirection((F @ DIRECTION_RAS).ravel().tolist())
    path = tmp_path_factory.mktemp("slicer_roundtrip") / f"t1_oblique{request.param}"
    sitk.WriteImage(image, str(path))
    return read_image(path)


def ras_of(image: sitk.Image, ijk) -> np.ndarray:
    """World RAS (3,) of a continuous (i, j, k) index, by SimpleITK (the independent reference)."""
    return F @ np.array(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in ijk]))


def sitk_kji(image: sitk.Image, ras) -> tuple[int, int, int]:
    """Nearest voxel (k, j, i) of a RAS point, by SimpleITK."""
    return tuple(int(v) for v in image.TransformPhysicalPointToIndex((F @ np.asarray(ras)).tolist()))[::-1]


def axial_view_through(point_ras) -> np.ndarray:
    view = AXIAL.copy()
    view[:3, 3] = point_ras
    return view


NORMALIZATION = Normalization.percentile()  # the module's (the interaction's default)


def new_session(model, loaded, axis, spacing):
    labels = np.zeros(loaded.array.shape, np.uint16)
    return Session(model, loaded.array, labels, axis=axis, spacing=spacing, prefetch=0, normalization=NORMALIZATION)


@pytest.fixture
def logic_module(monkeypatch):
    yield sf.load(monkeypatch)
    sf.unload()


def cancelling_relay(after: int) -> ProgressRelay:
    """A progress relay that asks to cancel once ``after`` steps are done (as a click on Cancel would)."""
    relay = ProgressRelay(lambda done, total: relay.cancel() if done >= after else None)
    return relay


def candidate_voxels(array: np.ndarray, j: int) -> list[tuple[int, int, int]]:
    """Tissue voxels (k, j, i) on slice j on a 12-voxel grid, nearest the tissue's centre first."""
    tissue = np.argwhere(array[:, j, :] > 40)
    centre = tissue.mean(axis=0)
    grid = [(k, i) for k in range(6, array.shape[0] - 6, 12) for i in range(6, array.shape[2] - 6, 12)
            if array[k, j, i] > 40]
    grid.sort(key=lambda ki: float(np.hypot(ki[0] - centre[0], ki[1] - centre[1])))
    return [(k, j, i) for k, i in grid[:16]]


def labelled_click(model, loaded, axis: int, j: int):
    """A reference session (direct core calls, read_image's spacing) with one include click at the first
    candidate voxel the model labels when clicked directly (the tiny model does not label every click)."""
    reference = new_session(model, loaded, axis, loaded.spacing)
    for candidate in candidate_voxels(loaded.array, j):
        reference.add_point(candidate, positive=True)
        if reference.labels[candidate]:
            return reference, candidate
        reference.undo()
    raise AssertionError("the shipped sam_tiny labels none of 16 clicked brain voxels; check its weights")


def test_geometry_from_simpleitk_matches_simpleitk(loaded):
    ref = loaded.reference
    np.testing.assert_allclose(F @ np.array(ref.GetOrigin()), ORIGIN_RAS, atol=1e-4)  # the file kept it
    np.testing.assert_allclose((F @ np.array(ref.GetDirection()).reshape(3, 3)), DIRECTION_RAS, atol=1e-5)
    vg = g.VolumeGeometry.from_lps(ref.GetOrigin(), ref.GetSpacing(), ref.GetDirection(), loaded.array.shape)
    kji = np.random.default_rng(0).integers(0, loaded.array.shape, size=(10, 3))
    ours = vg.index_to_world(kji)
    expected = np.array([ras_of(ref, p[::-1]) for p in kji])
    np.testing.assert_allclose(ours, expected, atol=1e-9)
    np.testing.assert_array_equal(vg.world_to_index(expected + 0.2), [sitk_kji(ref, p + 0.2) for p in expected])
    # Core spacing order (z, y, x) == (K, J, I), as read_image reports it.
    np.testing.assert_allclose(vg.spacing_zyx, loaded.spacing, rtol=1e-6)
    assert vg.view_axis(AXIAL) == 1 == 2 - int(np.argmax(np.abs(DIRECTION_RAS[2])))


def test_include_exclude_round_trip_through_the_core(model, loaded, tmp_path, logic_module, monkeypatch):
    ref = loaded.reference
    shape = loaded.array.shape
    vg = g.VolumeGeometry.from_lps(ref.GetOrigin(), ref.GetSpacing(), ref.GetDirection(), shape)
    axis = 1
    j = shape[axis] // 2

    # The reference: direct core calls on voxels chosen here.
    reference, include_kji = labelled_click(model, loaded, axis, j)
    exclude_kji = (3, j, 3)  # air in the corner of the same slice

    # RAS points a user would click: off-centre inside the voxel, as SimpleITK places them.
    include_ras = ras_of(ref, np.array(include_kji[::-1]) + (0.3, -0.2, 0.4))
    exclude_ras = ras_of(ref, np.array(exclude_kji[::-1]) + (-0.45, 0.1, 0.2))
    assert sitk_kji(ref, include_ras) == include_kji and sitk_kji(ref, exclude_ras) == exclude_kji
    view = axial_view_through(include_ras)
    assert vg.view_axis(view) == axis
    assert [tuple(v) for v in vg.world_to_index([include_ras, exclude_ras])] == [include_kji, exclude_kji]

    # The module's path: the session starts on axis 0 with the volume's spacing (startSession).
    logic, _, segmentation, _ = sf.start(logic_module, Interaction(model, prefetch=0), loaded.array, vg.ijk_to_ras,
                                         monkeypatch)
    session = logic.interaction.session
    labels = session.labels
    change = sf.place(logic, True, include_ras, view)
    label = logic.interaction.label
    assert session.axis == axis and session.spacing == vg.spacing_zyx
    assert logic.markups.positions(True) == [tuple(include_ras)]  # the clicked position stays: on the prompt's voxel
    assert session.aspect() == pytest.approx(SPACING_IJK[2] / SPACING_IJK[0])  # rows K, cols I: resampled
    assert labels[include_kji] == label, "the include voxel is not labelled"
    np.testing.assert_array_equal(labels, reference.labels)
    bbox = change.bbox
    assert bbox[axis] == slice(j, j + 1) and all(b.start <= v < b.stop for b, v in zip(bbox, include_kji))
    outside = np.ones(shape, bool)
    outside[bbox] = False
    assert not labels[outside].any()
    assert segmentation.writes == [(logic.segmentIds[label], r.bbox_to_vtk_extent(bbox))]  # the changed box only
    np.testing.assert_array_equal(segmentation.segment(f"PGE-SAM {label}"), labels == label)
    after_include = labels.copy()

    # The exclude point is a negative prompt on the same slice: only that slice may change.
    change = sf.place(logic, False, exclude_ras, view)
    reference.add_point(exclude_kji, positive=False)
    np.testing.assert_array_equal(labels, reference.labels)
    assert [(m.coords[0], m.positive) for m in session.prompts()] == [(include_kji, True), (exclude_kji, False)]
    changed = labels != after_include
    if change.bbox is None:
        assert len(segmentation.writes) == 1 and not changed.any()
    else:
        assert change.bbox[axis] == slice(j, j + 1) and segmentation.writes[-1][1] == r.bbox_to_vtk_extent(change.bbox)
        inside = np.zeros(shape, bool)
        inside[change.bbox] = True
        assert not (changed & ~inside).any()
    np.testing.assert_array_equal(segmentation.segment(f"PGE-SAM {label}"), labels == label)
    assert set(np.unique(labels[:, j, :])) <= {0, label}

    # Undo removes the exclude point (from the session and from its point list) and restores the include-only mask.
    logic.undo()
    np.testing.assert_array_equal(labels, after_include)
    np.testing.assert_array_equal(segmentation.segment(f"PGE-SAM {label}"), labels == label)
    assert [m.positive for m in session.prompts()] == [True]
    assert logic.markups.positions(True) == [tuple(include_ras)] and logic.markups.positions(False) == []

    # Write with the input's geometry, read back: same grid, and the labelled voxel is at the clicked point.
    out = write_labels(labels, tmp_path / ("labels" + "".join(Path(loaded.source).suffixes)), reference=ref)
    back = read_image(out)
    np.testing.assert_array_equal(back.array, labels)
    b = back.reference
    np.testing.assert_allclose(b.GetOrigin(), ref.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(b.GetSpacing(), ref.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(b.GetDirection(), ref.GetDirection(), atol=1e-6)
    assert back.array[include_kji] == label
    back_geometry = g.VolumeGeometry.from_lps(b.GetOrigin(), b.GetSpacing(), b.GetDirection(), back.array.shape)
    assert tuple(back_geometry.world_to_index(include_ras)[0]) == include_kji
    np.testing.assert_allclose(ras_of(b, include_kji[::-1]), vg.index_to_world(include_kji)[0], atol=1e-4)
    assert np.linalg.norm(ras_of(b, include_kji[::-1]) - include_ras) < 0.5 * np.linalg.norm(SPACING_IJK)


def test_propagate_and_precompute_through_the_logic_with_progress(model, loaded, logic_module, monkeypatch):
    ref = loaded.reference
    shape = loaded.array.shape
    vg = g.VolumeGeometry.from_lps(ref.GetOrigin(), ref.GetSpacing(), ref.GetDirection(), shape)
    logic, _, segmentation, _ = sf.start(logic_module, Interaction(model, prefetch=0), loaded.array, vg.ijk_to_ras,
                                         monkeypatch)
    session = logic.interaction.session
    j = shape[1] // 2
    reference, seed_kji = labelled_click(model, loaded, 1, j)
    click = ras_of(ref, seed_kji[::-1])
    sf.place(logic, True, click, axial_view_through(click))
    np.testing.assert_array_equal(session.labels, reference.labels)
    before = session.labels.copy()
    # Walk on while the mask is non-empty (the tiny model's masks can change a lot between slices);
    # Cancel after the first slice: the slice done is kept and reported.
    session.propagation = PropagationConfig(prompt=("points",), iou_threshold=0.0, min_area=1, max_slices=3)
    relay = cancelling_relay(after=1)
    change = logic.propagate(relay)
    slices = change.slices
    assert relay.total == shape[1] - 1 and relay.done == len(slices) <= 1
    assert change.cancelled == (len(slices) == 1)  # the walk stops by itself only on an empty mask
    assert set(slices) <= {j - 1, j + 1}
    changed = session.labels != before
    label = logic.interaction.label
    if change.bbox is None:
        assert not changed.any()
    else:
        inside = np.zeros(shape, bool)
        inside[change.bbox] = True
        assert not (changed & ~inside).any() and segmentation.writes[-1][1] == r.bbox_to_vtk_extent(change.bbox)
        assert {int(k) for k in np.nonzero(changed.any(axis=(0, 2)))[0]} <= set(slices)
        np.testing.assert_array_equal(segmentation.segment(f"PGE-SAM {label}"), session.labels == label)
        assert logic.undo().slices == slices
    np.testing.assert_array_equal(session.labels, before)

    # Precompute along the axis of the view; Cancel stops it with the core's Cancelled after one batch.
    relay = cancelling_relay(after=1)
    with pytest.raises(Cancelled):
        logic.precompute(relay, sf.SliceNode(axial_view_through(click)))
    assert relay.total == shape[1] and 1 <= relay.done < shape[1]


# ---- the logic's mapping onto the session's verbs and its point lists, with the shared fake session --------------

SAGITTAL = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
CORONAL = np.array([[-1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
VG = g.VolumeGeometry(g.ijk_to_ras_matrix((10.0, -20.0, 5.0), (0.5, 0.7, 2.0), np.eye(3)), (12, 48, 56))
CENTRE_KJI, EDGE_KJI = (6, 24, 26), (6, 24, 34)  # inside the fake volume's ellipsoid; off-centre on slice 6


def fake_logic(logic_module, monkeypatch, **options):
    """A logic on ``ellipsoid_volume()`` with the shared ``FakeSession``; returns it and its segmentation node."""
    interaction = Interaction(sessions=FakeSession.factory(**options))
    logic, _, segmentation, _ = sf.start(logic_module, interaction, ellipsoid_volume(), VG.ijk_to_ras, monkeypatch)
    return logic, segmentation


def click(logic, kji, include=True, view=AXIAL, nudge=(0.2, -0.3, 0.1)):
    """A click in a slice view, nudged inside voxel ``kji``."""
    return sf.place(logic, include, VG.index_to_world(kji)[0] + nudge, view)


def include_and_exclude(logic_module, monkeypatch):
    """A fake logic after an include click at the centre and an exclude click off-centre: (logic, segmentation
    node, the labels, a copy of them)."""
    logic, segmentation = fake_logic(logic_module, monkeypatch)
    click(logic, CENTRE_KJI)
    click(logic, EDGE_KJI, include=False)
    return logic, segmentation, logic.interaction.labels, logic.interaction.labels.copy()


def session_points(logic, include=True):
    return sorted(m.coords[0] for m in logic.interaction.session.prompts()
                  if m.kind == "point" and m.label == logic.interaction.label and m.positive == include)


def test_logic_maps_prompts_and_verbs_onto_session_calls(logic_module, monkeypatch):
    logic, segmentation = fake_logic(logic_module, monkeypatch)
    session = logic.interaction.session
    assert session.spacing == VG.spacing_zyx == (2.0, 0.7, 0.5)  # core (z, y, x) order
    point = VG.index_to_world((4, 3, 2))[0] + (0.2, -0.3, 0.9)  # still voxel (4, 3, 2)
    change = logic.addPoint(point, True, sf.SliceNode(SAGITTAL))  # a sagittal view slices I (axis 2)
    assert session.calls == [("set_axis", 2), ("add_point", (4, 3, 2), True, 2)]
    assert segmentation.writes == [(logic.segmentIds[1], r.bbox_to_vtk_extent(change.bbox))]
    np.testing.assert_array_equal(segmentation.segment("PGE-SAM 1"), logic.interaction.labels == 1)
    segment2 = logic.nextSegment()
    assert session.calls[-1] == ("next_object",) and logic.segmentIds == {1: logic.segmentIds[1], 2: segment2}
    change = logic.addPoint(VG.index_to_world((4, 30, 50))[0], True, sf.SliceNode(SAGITTAL))
    extent = r.bbox_to_vtk_extent(change.bbox)
    assert segmentation.writes[-2:] == [(logic.segmentIds[1], extent), (segment2, extent)]  # every label re-cut
    relay = ProgressRelay()
    assert logic.precompute(relay, sf.SliceNode(CORONAL)) == 48  # a coronal view slices J (axis 1): 48 slices
    assert session.calls[-2:] == [("set_axis", 1), ("precompute", relay)]
    corners = g.box_corners(VG.index_to_world((2, 2, 1))[0] + (1.0, 1.4, 0.0), np.eye(3), (3.0, 2.8, 0.1))
    logic.addBox(sf.RoiNode(corners.mean(axis=0), (3.0, 2.8, 0.1)))  # no view: the box's thinnest axis (K)
    assert session.calls[-2:] == [("set_axis", 0), ("add_box", (2, 2, 0), (2, 6, 6), 0)]  # i 10..13 mm -> 0..6
    logic.clear()
    assert session.calls[-1] == ("reset_object",)
    assert logic.undo() is not None and session.calls[-1] == ("undo",)


def test_propagate_then_undo_keeps_the_markups_of_the_prompts(logic_module, monkeypatch):
    """The widget used to pop a point of its own prompt stack on every undo: after Propagate, Undo deleted a point."""
    logic, _, labels, before = include_and_exclude(logic_module, monkeypatch)
    change = logic.propagate(ProgressRelay())
    assert change.slices and labels[4, 24, 26] == logic.interaction.label
    logic.undo()  # undoes the propagation: its voxels, not a prompt
    np.testing.assert_array_equal(labels, before)
    assert sf.shown(logic, True) == session_points(logic, True) == [CENTRE_KJI]
    assert sf.shown(logic, False) == session_points(logic, False) == [EDGE_KJI]
    logic.undo()  # now the exclude point goes, from the session and from its list
    assert sf.shown(logic, False) == session_points(logic, False) == [] and sf.shown(logic) == [CENTRE_KJI]


def test_clear_then_undo_brings_the_markups_back(logic_module, monkeypatch):
    """After Clear, Undo used to restore voxels and prompts but not the point lists."""
    logic, segmentation, labels, before = include_and_exclude(logic_module, monkeypatch)
    logic.clear()
    assert sf.shown(logic, True) == sf.shown(logic, False) == [] and not labels.any()
    assert not segmentation.segment("PGE-SAM 1").any()
    logic.undo()
    np.testing.assert_array_equal(labels, before)
    np.testing.assert_array_equal(segmentation.segment("PGE-SAM 1"), before == 1)
    assert sf.shown(logic, True) == session_points(logic, True) == [CENTRE_KJI]
    assert sf.shown(logic, False) == session_points(logic, False) == [EDGE_KJI]


def test_next_segment_starts_empty_lists_and_undo_returns_to_the_last_segment(logic_module, monkeypatch):
    logic, _ = fake_logic(logic_module, monkeypatch)
    rewrites = []
    replace = logic.markups.replace
    monkeypatch.setattr(logic.markups, "replace", lambda *args: rewrites.append(args) or replace(*args))
    click(logic, CENTRE_KJI)
    assert rewrites == []  # a point on the voxel the session took is left where it was placed
    logic.nextSegment()
    assert logic.interaction.label == 2 and sf.shown(logic, True) == sf.shown(logic, False) == []
    logic.undo()  # segment 2 has no prompt: the undo is segment 1's click, and its list is shown again (empty now)
    assert logic.interaction.label == 1 and sf.shown(logic) == [] and not logic.interaction.labels.any()


def test_a_refused_point_disappears_from_its_list(logic_module, monkeypatch):
    logic, _ = fake_logic(logic_module, monkeypatch)
    click(logic, CENTRE_KJI)
    tilted = AXIAL.copy()
    tilted[:3, :3] = np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    with pytest.raises(g.ObliqueViewError):
        sf.place(logic, True, VG.index_to_world((6, 10, 10))[0], tilted)
    assert sf.shown(logic) == [CENTRE_KJI]
    with pytest.raises(g.PointOutsideVolumeError, match="outside the volume"):
        sf.place(logic, True, (1.0, 1.0, 400.0), AXIAL)
    assert sf.shown(logic) == [CENTRE_KJI] and len(logic.interaction.session.prompts()) == 1


def test_volume_geometry_refuses_another_shape_or_voxel_size_and_follows_a_rigid_move(logic_module, monkeypatch):
    with pytest.raises(g.GeometryError, match="shape_kji"):
        g.VolumeGeometry(np.eye(4), (6, 0, 9))
    logic, _ = fake_logic(logic_module, monkeypatch)
    moved = np.eye(4)
    moved[:3, :3], moved[:3, 3] = rot_s(90.0), (100.0, 0.0, 0.0)  # a rigid parent transform is fine
    volume, segmentation = logic.volumeNode, logic.segmentationNode
    volume.transform = segmentation.transform = sf.TransformNode(moved)
    world = moved[:3, :3] @ VG.index_to_world(CENTRE_KJI)[0] + moved[:3, 3]
    logic.addPoint(world, True, sf.SliceNode(AXIAL))
    assert logic.interaction.session.calls[-1] == ("add_point", CENTRE_KJI, True, 0)
    with pytest.raises(g.GeometryError, match="voxel size"):
        VG.moved_to(g.VolumeGeometry(VG.ijk_to_ras, VG.shape_kji, np.diag([2.0, 2.0, 2.0, 1.0])))
    with pytest.raises(g.GeometryError, match="shape"):
        VG.moved_to(g.VolumeGeometry(VG.ijk_to_ras, (12, 48, 55)))


def test_embeddings_saved_through_the_logic_serve_every_later_session(model, tmp_path, logic_module, monkeypatch):
    """Save embeddings on one machine; on another, the logic's interaction loads them once (Load embeddings...)
    and attaches them to every new session (startSession); a volume they were not made for is told so."""
    from pge_sam.predictor import Predictor

    image, store = ellipsoid_volume((6, 40, 56)), tmp_path / "mrhead-emb"
    m = g.ijk_to_ras_matrix((10.0, -20.0, 5.0), (0.5, 0.7, 2.0), np.eye(3))
    relay = ProgressRelay()
    logic, *_ = sf.start(logic_module, Interaction(model, prefetch=0), image, m, monkeypatch)
    message = logic.saveEmbeddings(store, relay, sf.SliceNode(CORONAL))
    assert "40 slice embeddings along axis 1 (40 encoded" in message and relay.total == relay.done == 40
    predictor = Predictor(model)  # the laptop: its own model cache
    laptop = Interaction(predictor, prefetch=0)
    first, *_ = sf.start(logic_module, laptop, image, m, monkeypatch)
    assert "embeddings loaded" in first.loadEmbeddings(store)
    first.addPoint(VG.index_to_world((3, 20, 26))[0], True, sf.SliceNode(CORONAL))
    first.interaction = laptop
    notice = first.startSession(first.volumeNode, first.segmentationNode, "sam_tiny", "cpu")  # a new session
    change = first.addPoint(VG.index_to_world((3, 12, 26))[0], True, sf.SliceNode(CORONAL))
    assert notice is None and change.slices == (12,) and predictor.encoder_calls == 0
    cropped = sf.scene().add(sf.VolumeNode(image[:, :30], m))
    notice = first.startSession(cropped, sf.scene().add(sf.SegmentationNode()), "sam_tiny", "cpu")
    assert f"{store} were made for another volume" in notice and laptop.embeddings is None

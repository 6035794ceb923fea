"""Geometry and region maths of the Slicer module, checked against SimpleITK (no Slicer needed).

SimpleITK works in LPS; Slicer in RAS. RAS = F @ LPS with F = diag(-1, -1, 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

MODULE_DIR = Path(__file__).resolve().parents[1] / "slicer_pge_sam" / "PGESAM"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from PGESAMLib import geometry as g  # noqa: E402
from PGESAMLib import regions as r  # noqa: E402

F = np.diag([-1.0, -1.0, 1.0])
SIZE_IJK = (23, 17, 11)  # (I, J, K) voxels -> array shape (K, J, I) = (11, 17, 23)
SHAPE_KJI = SIZE_IJK[::-1]
# Slicer's standard SliceToRAS orientations (column 2 is the view normal).
AXIAL = np.array([[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
SAGITTAL = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
CORONAL = np.array([[-1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)


def rot(axis: str, deg: float) -> np.ndarray:
    """3x3 right-handed rotation about R (x), A (y) or S (z)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i = "xyz".index(axis)
    a, b = [k for k in range(3) if k != i]
    m = np.eye(3)
    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
    return m


def affine(m3: np.ndarray, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = m3, t
    return m


def with_offset(slice_to_ras: np.ndarray, offset) -> np.ndarray:
    m = slice_to_ras.copy()
    m[:3, 3] = offset
    return m


GEOMETRIES = {
    # direction columns are the RAS directions of I, J, K
    "rotated": (rot("z", 30) @ rot("x", -20) @ rot("y", 12), (-120.5, 33.25, 71.0), (0.7, 1.3, 2.5)),
    "flipped": (np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (10.0, -5.5, 40.0), (0.9, 0.9, 3.0)),
    "rotated_flipped": (rot("y", 35) @ np.diag([1.0, -1.0, 1.0]), (0.0, 200.0, -33.3), (1.1, 0.45, 1.7)),
}


def sitk_image(direction_ras, origin_ras, spacing) -> sitk.Image:
    img = sitk.Image(list(SIZE_IJK), sitk.sitkUInt8)
    img.SetSpacing([float(v) for v in spacing])
    img.SetOrigin((F @ np.asarray(origin_ras, float)).tolist())
    img.SetDirection((F @ np.asarray(direction_ras, float)).ravel().tolist())
    return img


@pytest.fixture(params=sorted(GEOMETRIES))
def case(request):
    d, o, s = GEOMETRIES[request.param]
    return g.ijk_to_ras_matrix(o, s, d), sitk_image(d, o, s)


def test_ijk_to_ras_matches_sitk_index_to_physical_point(case):
    m, img = case
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(0, n, 20) for n in SIZE_IJK], axis=1)
    ours = g.ijk_to_ras(idx, m)
    ref = np.array([F @ np.array(img.TransformIndexToPhysicalPoint([int(v) for v in p])) for p in idx])
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_matrix_from_sitk_lps_geometry_equals_the_ras_one(case):
    m, img = case
    np.testing.assert_allclose(g.ijk_to_ras_matrix_from_lps(img.GetOrigin(), img.GetSpacing(), img.GetDirection()),
                               m, atol=1e-12)
    with pytest.raises(g.GeometryError, match="9 values"):
        g.ijk_to_ras_matrix_from_lps(img.GetOrigin(), img.GetSpacing(), img.GetDirection()[:6])
    with pytest.raises(g.GeometryError, match="3 values"):
        g.ijk_to_ras_matrix_from_lps(img.GetOrigin()[:2], img.GetSpacing(), img.GetDirection())


def test_ras_to_ijk_matches_sitk_continuous_index(case):
    m, img = case
    rng = np.random.default_rng(1)
    ras = rng.uniform(-150, 150, size=(30, 3))
    ours = g.ras_to_ijk(ras, m)
    ref = np.array([img.TransformPhysicalPointToContinuousIndex((F @ p).tolist()) for p in ras])
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    np.testing.assert_allclose(g.ijk_to_ras(ours, m), ras, atol=1e-9)


def test_nearest_voxel_matches_sitk_rounding_inside_volume(case):
    m, img = case
    rng = np.random.default_rng(2)
    ijk = rng.uniform(-0.49, np.array(SIZE_IJK) - 0.51, size=(40, 3))
    ras = g.ijk_to_ras(ijk, m)
    kji = g.ijk_to_kji_index(g.ras_to_ijk(ras, m), SHAPE_KJI)
    ref = np.array([img.TransformPhysicalPointToIndex((F @ p).tolist()) for p in ras])[:, ::-1]
    np.testing.assert_array_equal(kji, ref)


def test_parent_transform_rigid_and_uniform_scale_matches_composed_sitk_geometry(case):
    m, _ = case
    d, o, s = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0), m[:3, 3], np.linalg.norm(m[:3, :3], axis=0)
    scale, rp, t = 1.7, rot("x", 25) @ rot("z", -40), np.array([12.0, -7.5, 30.25])
    parent = affine(scale * rp, t)
    # The parent moves the grid: direction rp @ d, spacing scale * s, origin parent(o).
    composed = sitk_image(rp @ d, scale * rp @ o + t, scale * s)
    world = np.random.default_rng(3).uniform(-200, 200, size=(25, 3))
    ours = g.ras_to_ijk(world, m, parent)
    ref = np.array([composed.TransformPhysicalPointToContinuousIndex((F @ p).tolist()) for p in world])
    np.testing.assert_allclose(ours, ref, atol=1e-8)
    np.testing.assert_allclose(g.kji_spacing(m, parent), (scale * s)[::-1], rtol=1e-12)


def test_parent_transform_anisotropic_scale_matches_sitk_affine_inverse(case):
    m, img = case
    a3, t = rot("y", -30) @ np.diag([1.5, 0.8, 1.2]) @ rot("z", 10), np.array([-3.0, 44.0, 9.5])
    parent = affine(a3, t)
    tx = sitk.AffineTransform((F @ a3 @ F).ravel().tolist(), (F @ t).tolist())  # the parent in LPS
    inverse = tx.GetInverse()
    world = np.random.default_rng(4).uniform(-150, 150, size=(25, 3))
    ours = g.ras_to_ijk(world, m, parent)
    ref = np.array([img.TransformPhysicalPointToContinuousIndex(inverse.TransformPoint((F @ p).tolist()))
                    for p in world])
    np.testing.assert_allclose(ours, ref, atol=1e-8)
    np.testing.assert_allclose(g.ijk_to_ras(ours, m, parent), world, atol=1e-8)


def test_rounding_at_half_voxel_boundaries_is_floor_x_plus_half():
    # Axis-aligned but flipped, power-of-two spacing: every coordinate below is exact in binary.
    m = g.ijk_to_ras_matrix((8.0, -4.0, 2.0), (0.5, 2.0, 4.0), np.diag([-1.0, 1.0, -1.0]))
    img = sitk_image(np.diag([-1.0, 1.0, -1.0]), (8.0, -4.0, 2.0), (0.5, 2.0, 4.0))
    ijk = np.array([[2.5, 3.5, 4.5], [-0.5, -0.5, -0.5], [2.5 - 2**-20, 3.0, 1.5 + 2**-20], [22.25, 16.5, 10.49]])
    ras = g.ijk_to_ras(ijk, m)
    np.testing.assert_array_equal(g.ras_to_ijk(ras, m), ijk)  # exact round trip
    kji = g.ijk_to_kji_index(g.ras_to_ijk(ras, m))
    np.testing.assert_array_equal(kji, [[5, 4, 3], [0, 0, 0], [2, 3, 2], [10, 17, 22]])
    ref = np.array([img.TransformPhysicalPointToIndex((F @ p).tolist()) for p in ras[:3]])[:, ::-1]
    np.testing.assert_array_equal(kji[:3], ref)  # ITK also rounds half-integers up


@pytest.mark.parametrize("ijk", [(-0.5001, 3.0, 3.0), (3.0, 16.5, 3.0), (3.0, 3.0, 10.5), (22.5, 0.0, 0.0)])
def test_points_outside_volume_raise_clear_error(ijk):
    with pytest.raises(g.PointOutsideVolumeError, match=r"outside the volume of shape \(K, J, I\) = \(11, 17, 23\)"):
        g.ijk_to_kji_index(ijk, SHAPE_KJI)


def test_boundary_points_inside_volume_are_accepted():
    kji = g.ijk_to_kji_index([[-0.5, -0.5, -0.5], [22.49, 16.49, 10.49]], SHAPE_KJI)
    np.testing.assert_array_equal(kji, [[0, 0, 0], [10, 16, 22]])
    assert g.kji_to_zyx(kji[1]) == (10, 16, 22) == g.zyx_to_kji((10, 16, 22))
    assert all(type(v) is int for v in g.kji_to_zyx(kji[1]))


def test_invalid_inputs_raise_geometry_errors():
    with pytest.raises(g.GeometryError, match="unit vectors"):
        g.ijk_to_ras_matrix((0, 0, 0), (1, 1, 1), 2 * np.eye(3))
    with pytest.raises(g.GeometryError, match="positive"):
        g.ijk_to_ras_matrix((0, 0, 0), (1, 0, 1), np.eye(3))
    with pytest.raises(g.GeometryError, match="4x4"):
        g.ras_to_ijk([0, 0, 0], np.eye(3))
    with pytest.raises(g.GeometryError, match="singular"):
        g.ras_to_ijk([0, 0, 0], np.eye(4), np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(g.GeometryError, match=r"\(N, 3\)"):
        g.ras_to_ijk([[0, 0]], np.eye(4))


IDENTITY = np.eye(3)
ROT90_S = rot("z", 90)  # I -> A, J -> -R, K -> S
SAGITTAL_ACQ = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # I -> A, J -> -S, K -> -R


@pytest.mark.parametrize(
    ("direction", "expected"),  # expected KJI axis for (axial, coronal, sagittal)
    [(IDENTITY, (0, 1, 2)), (ROT90_S, (0, 2, 1)), (np.diag([-1.0, 1.0, -1.0]), (0, 1, 2)), (SAGITTAL_ACQ, (1, 2, 0))],
)
def test_slice_axis_follows_direction_not_view_name(direction, expected):
    m = g.ijk_to_ras_matrix((5.0, -3.0, 20.0), (0.8, 1.2, 3.0), direction)
    views = (with_offset(AXIAL, (0, 0, 25)), with_offset(CORONAL, (1, 2, 3)), SAGITTAL)
    assert tuple(g.slice_axis_for_view(v, m) for v in views) == expected


def test_slice_axis_accounts_for_parent_transform():
    m = g.ijk_to_ras_matrix((0, 0, 0), (1.0, 1.0, 2.0), IDENTITY)
    parent = affine(1.5 * rot("x", 90), (10, 0, 0))  # world: I -> R, J -> S, K -> -A
    assert [g.slice_axis_for_view(v, m, parent) for v in (AXIAL, CORONAL, SAGITTAL)] == [1, 0, 2]


def test_oblique_views_are_refused_within_documented_tolerance():
    m = g.ijk_to_ras_matrix((0, 0, 0), (1.0, 1.0, 2.5), IDENTITY)
    tilted = affine(rot("x", 10)) @ AXIAL
    with pytest.raises(g.ObliqueViewError, match="oblique.*Rotate to volume plane"):
        g.slice_axis_for_view(tilted, m)
    slightly = affine(rot("x", 0.3)) @ AXIAL
    assert g.slice_axis_for_view(slightly, m) == 0  # within the 0.5 degree default
    with pytest.raises(g.ObliqueViewError):
        g.slice_axis_for_view(slightly, m, tolerance_deg=0.1)
    # An oblique volume under standard views is refused; a view rotated to the volume plane works.
    oblique = g.ijk_to_ras_matrix((0, 0, 0), (1.0, 1.0, 2.5), rot("y", 20))
    with pytest.raises(g.ObliqueViewError):
        g.slice_axis_for_view(AXIAL, oblique)
    assert g.slice_axis_for_view(affine(rot("y", 20)) @ AXIAL, oblique) == 0


def test_views_containing_point_and_plane_distance():
    views = {"Red": with_offset(AXIAL, (0, 0, 10.0)), "Green": with_offset(CORONAL, (0, -4.0, 0)),
             "Yellow": with_offset(SAGITTAL, (7.0, 0, 0))}
    assert g.views_containing_point((7.0, 30.0, 10.0), views) == ["Red", "Yellow"]
    assert g.views_containing_point((1.0, -4.0, 2.0), views) == ["Green"]
    assert g.views_containing_point((1.0, 1.0, 1.0), views) == []
    np.testing.assert_allclose(g.distance_to_slice_plane([[0, 0, 13.5], [0, 0, 8.0]], views["Red"]), [3.5, 2.0])


def test_box_from_roi_corners_on_a_slice():
    corners = np.array([[k, j, i] for k in (3.2, 5.9) for j in (-4.0, 6.6) for i in (2.4, 30.0)])
    start, stop = g.box_from_kji_corners(corners, axis=0, shape_kji=SHAPE_KJI)
    assert (start, stop) == ((5, 0, 2), (5, 7, 22))  # slice round(4.55); j, i rounded then clipped
    assert g.box_from_kji_corners(corners, axis=2, shape_kji=SHAPE_KJI, slice_index=9) == ((3, 0, 9), (6, 7, 9))
    assert g.thinnest_axis(corners) == 0
    with pytest.raises(g.PointOutsideVolumeError):
        g.box_from_kji_corners(corners + [0, 40, 0], axis=0, shape_kji=SHAPE_KJI)
    with pytest.raises(g.PointOutsideVolumeError, match="Slice 11"):
        g.box_from_kji_corners(corners, axis=0, shape_kji=SHAPE_KJI, slice_index=11)


# ---- changed-region arithmetic (regions.py) -------------------------------------------------


def test_bbox_extent_round_trip_and_validation():
    box = (slice(2, 5), slice(0, 17), slice(7, 8))
    assert r.bbox_to_vtk_extent(box) == (7, 7, 0, 16, 2, 4)
    assert r.vtk_extent_to_bbox((7, 7, 0, 16, 2, 4)) == box
    assert r.normalize_bbox((slice(None), slice(3, None), slice(1, 2)), SHAPE_KJI) == (
        slice(0, 11), slice(3, 17), slice(1, 2))
    with pytest.raises(r.RegionError, match="does not fit"):
        r.normalize_bbox((slice(0, 12), slice(0, 1), slice(0, 1)), SHAPE_KJI)
    with pytest.raises(r.RegionError, match="step 1"):
        r.normalize_bbox((slice(0, 4, 2), slice(0, 1), slice(0, 1)), SHAPE_KJI)
    with pytest.raises(r.RegionError, match="empty"):
        r.bbox_to_vtk_extent((slice(3, 3), slice(0, 1), slice(0, 1)))
    with pytest.raises(r.RegionError):
        r.vtk_extent_to_bbox((0, -1, 0, 0, 0, 0))


def test_change_boxes():
    from pge_sam import Change

    change = Change(1, 0, (0,), (slice(0, 1), slice(2, None), slice(None, 4)))
    assert r.bbox_from_change(change, SHAPE_KJI) == (slice(0, 1), slice(2, 17), slice(0, 4))
    assert r.bbox_from_change(None, SHAPE_KJI) is None
    assert r.bbox_from_change((slice(1, 2), slice(0, 3), slice(4, 5)), SHAPE_KJI) == (
        slice(1, 2), slice(0, 3), slice(4, 5))
    with pytest.raises(r.RegionError):
        r.bbox_from_change(change, (1, 1, 23))  # j starts at 2 in a 1-row volume


def test_plan_region_update_cuts_every_owned_label_in_vtk_memory_order():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, size=SHAPE_KJI).astype(np.uint16)
    box = (slice(3, 6), slice(2, 9), slice(10, 14))
    plan = r.plan_region_update(labels, box, [1, 3])
    assert plan.extent == (10, 13, 2, 8, 3, 5) and set(plan.masks) == {1, 3}
    for label, mask in plan.masks.items():
        assert mask.dtype == np.uint8 and mask.flags.c_contiguous and mask.shape == (3, 7, 4)
        np.testing.assert_array_equal(mask, labels[3:6, 2:9, 10:14] == label)
        # VTK point order within the extent: i fastest, then j, then k.
        flat = mask.ravel()
        i, j, k = 12, 5, 4
        n = (i - 10) + 4 * ((j - 2) + 7 * (k - 3))
        assert flat[n] == (labels[k, j, i] == label)
    assert r.plan_region_update(labels, (slice(2, 2), slice(0, 1), slice(0, 1)), [1]) is None
    with pytest.raises(r.RegionError, match="positive"):
        r.plan_region_update(labels, box, [0])


def test_box_corners_of_rotated_roi():
    axes = rot("z", 90)  # box x-axis -> A, y-axis -> -R
    corners = g.box_corners((10.0, 20.0, 30.0), axes, (4.0, 2.0, 6.0))
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners.min(axis=0), (9.0, 18.0, 27.0), atol=1e-12)
    np.testing.assert_allclose(corners.max(axis=0), (11.0, 22.0, 33.0), atol=1e-12)

"""The plugin's npe2 reader and labels writer: NIfTI/NRRD/DICOM open with their geometry, labels save back onto it.

Arrays are (Z, Y, X); SimpleITK origin/spacing/direction are (x, y, z).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest

from dicom_helpers import write_dicom_series

from napari_pge_sam import _io
from pge_sam.errors import InputError, OutputError

PLUGIN = "pge-sam"
SPACING_XYZ = (0.8, 0.9, 2.5)
ORIGIN_XYZ = (-10.0, 20.5, 5.25)
SHAPE = (5, 12, 16)
CORNERS = [(0, 0, 0), (4, 11, 15), (2, 3, 7), (4, 0, 15)]


def rotation_xyz(flip: bool = False) -> tuple[float, ...]:
    """An oblique direction (30 degrees about z, then 20 about x), optionally with x mirrored (det -1)."""
    a, b = np.deg2rad(30), np.deg2rad(20)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    m = rz @ rx @ (np.diag([-1.0, 1, 1]) if flip else np.eye(3))
    return tuple(m.ravel())


def write_image(path: Path, array: np.ndarray, direction=None, spacing=SPACING_XYZ, origin=ORIGIN_XYZ) -> Path:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return path


def volume() -> np.ndarray:
    return np.random.default_rng(0).integers(-500, 1500, SHAPE).astype(np.int16)


def some_labels(shape) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    labels[..., 2:6, 3:9] = 2
    labels.flat[-1] = 7
    return labels


def assert_same_grid(a, b, atol: float = 1e-6) -> None:
    """Two SimpleITK images on the same grid (size, origin, spacing, direction)."""
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=atol)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), rtol=0, atol=atol)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=atol)


def assert_layer_on_image_grid(layer, image, atol: float = 1e-9) -> None:
    """napari's data-to-world of ``layer`` equals SimpleITK's index-to-physical of ``image`` (axes reversed)."""
    for index in CORNERS:
        physical = image.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]])
        np.testing.assert_allclose(layer.data_to_world(index), physical[::-1], rtol=0, atol=atol)


def dicom_series(folder: Path, array: np.ndarray) -> Path:
    """``array`` (Z, Y, X) int16 as a CT DICOM series whose files have no .dcm suffix (GDCM's scan finds them)."""
    return write_dicom_series(folder, array, uid="1.2.826.0.1.3680043.2.1125.9")


# -- without a viewer -------------------------------------------------------------------------------------------
def test_manifest_declares_the_reader_and_the_labels_writer():
    contrib = PluginManifest.from_distribution(PLUGIN).contributions
    commands = {c.id: c.python_name for c in contrib.commands}
    reader, = contrib.readers
    assert commands[reader.command] == "napari_pge_sam._io:get_reader" and reader.accepts_directories
    assert set(reader.filename_patterns) == {"*.nii", "*.nii.gz", "*.nrrd", "*.nhdr", "*.mha", "*.mhd"}
    writer, = contrib.writers
    assert commands[writer.command] == "napari_pge_sam._io:write_labels_layer"
    assert list(writer.layer_types) == ["labels"]
    assert set(writer.filename_extensions) == {".nii.gz", ".nii", ".nrrd", ".mha"}


def test_get_reader_claims_image_files_and_dicom_folders_only(tmp_path):
    for name in ("a.nii", "b.NII.GZ", "c.nrrd", "d.nhdr", "e.mha", "f.mhd"):
        assert _io.get_reader(str(tmp_path / name)) is _io.read_layers, name
    for name in ("a.png", "b.tif", "c.gz", "d.npy"):
        assert _io.get_reader(str(tmp_path / name)) is None, name
    assert _io.get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.png")]) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _io.get_reader(str(empty)) is None
    (empty / "x.DCM").write_bytes(b"")
    assert _io.get_reader(str(empty)) is _io.read_layers  # cheap check; reading would say what is wrong
    series = dicom_series(tmp_path / "series", np.zeros((2, 4, 5), np.int16))
    assert _io.get_reader(str(series)) is _io.read_layers


@pytest.mark.parametrize("direction", [None, rotation_xyz(), rotation_xyz(flip=True)])
def test_geometry_maps_to_napari_and_back(direction):
    import SimpleITK as sitk

    image = sitk.Image([16, 12, 5], sitk.sitkUInt8)
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(ORIGIN_XYZ)
    if direction is not None:
        image.SetDirection(direction)
    geometry = _io.geometry_of(image)
    tf = _io.napari_transform(geometry, 3)
    assert tf["scale"] == SPACING_XYZ[::-1] and tf["translate"] == ORIGIN_XYZ[::-1]
    assert ("affine" in tf) == (direction is not None)
    matrix = _io._geometry_matrix(geometry, 3)
    for index in CORNERS:
        world = matrix @ np.array([*index, 1.0])
        physical = image.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]])
        np.testing.assert_allclose(world[:3], physical[::-1], rtol=0, atol=1e-12)
    back = _io.geometry_from_matrix(matrix)
    for key in ("origin", "spacing", "direction"):
        np.testing.assert_allclose(back[key], geometry[key], rtol=0, atol=1e-12)


def test_writer_uses_the_metadata_geometry_only_while_the_layer_transform_agrees(tmp_path):
    import SimpleITK as sitk

    geometry = {"origin": list(ORIGIN_XYZ), "spacing": list(SPACING_XYZ), "direction": list(rotation_xyz())}
    state = {**_io.napari_transform(geometry, 3), "metadata": {"pge_sam_geometry": geometry}}
    _io.write_labels_layer(str(tmp_path / "same.nrrd"), some_labels(SHAPE), state)
    back = sitk.ReadImage(str(tmp_path / "same.nrrd"))
    for key, value in _io.geometry_of(back).items():
        np.testing.assert_allclose(value, geometry[key], rtol=0, atol=1e-12)
    moved = {**state, "translate": (0.0, 0.0, 0.0)}  # the user moved the layer after opening it
    _io.write_labels_layer(str(tmp_path / "moved.nrrd"), some_labels(SHAPE), moved)
    back = sitk.ReadImage(str(tmp_path / "moved.nrrd"))
    np.testing.assert_allclose(back.GetDirection(), rotation_xyz(), atol=1e-12)
    np.testing.assert_allclose(back.GetOrigin(), (state["affine"][:3, 3])[::-1], atol=1e-12)  # what napari shows


def test_writer_refuses_float_and_sheared_data(tmp_path):
    with pytest.raises(OutputError, match="must be integers: convert"):
        _io.write_labels_layer(str(tmp_path / "f.nii.gz"), np.zeros(SHAPE, np.float32), {"scale": (1, 1, 1)})
    with pytest.raises(OutputError, match="shear"):
        _io.write_labels_layer(str(tmp_path / "s.nii.gz"), np.zeros(SHAPE, np.uint8), {"shear": (0.5, 0, 0)})
    with pytest.raises(OutputError, match="use one of"):  # the core's format check, not a ValueError
        _io.write_labels_layer(str(tmp_path / "x.png"), np.zeros(SHAPE, np.uint8), {})
    assert not any(tmp_path.iterdir())


# -- through napari ---------------------------------------------------------------------------------------------
def labels_like_the_widget(viewer, image, with_metadata: bool = False):
    """A labels layer created the way the widget creates it (the image's transform), optionally with its metadata."""
    from napari_pge_sam._layers import transform_kwargs

    extra = {"metadata": dict(image.metadata)} if with_metadata else {}
    return viewer.add_labels(some_labels(image.data.shape), name=f"{image.name} [pge-sam]",
                             **transform_kwargs(image), **extra)


@pytest.mark.gui
@pytest.mark.filterwarnings("ignore:Non-orthogonal slicing")  # napari shows oblique volumes slice by slice
@pytest.mark.parametrize("suffix, direction, with_metadata", [
    (".nii.gz", None, False),
    (".nii.gz", rotation_xyz(), False),
    (".nii.gz", rotation_xyz(flip=True), True),
    (".nrrd", None, True),
    (".nrrd", rotation_xyz(), False),
    (".mha", rotation_xyz(), True),
])
def test_open_then_save_labels_keeps_the_geometry(make_napari_viewer, tmp_path, suffix, direction, with_metadata):
    import SimpleITK as sitk

    array = volume()
    src = write_image(tmp_path / f"scan{suffix}", array, direction)
    source = sitk.ReadImage(str(src))
    viewer = make_napari_viewer()
    image, = viewer.open(src, plugin=PLUGIN)
    np.testing.assert_array_equal(image.data, array)
    assert image.name == "scan"
    np.testing.assert_allclose(image.scale, source.GetSpacing()[::-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(image.translate, source.GetOrigin()[::-1], rtol=0, atol=1e-12)
    rotation = np.asarray(source.GetDirection()).reshape(3, 3)[::-1, ::-1]
    np.testing.assert_allclose(image.affine.linear_matrix, rotation, rtol=0, atol=1e-12)
    assert_layer_on_image_grid(image, source)
    geometry = image.metadata["pge_sam_geometry"]
    assert image.metadata["pge_sam_source"] == str(src)
    assert geometry["direction"] == list(source.GetDirection()) and geometry["origin"] == list(source.GetOrigin())

    labels = labels_like_the_widget(viewer, image, with_metadata)
    out = tmp_path / f"labels{suffix}"
    assert labels.save(str(out), plugin=PLUGIN) == [str(out)]
    back = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), labels.data)
    assert_same_grid(back, source)
    assert_layer_on_image_grid(labels, back, atol=1e-5)  # NIfTI stores the direction as a float32 quaternion
    reopened, = viewer.open(out, plugin=PLUGIN)  # saved labels open on the image's grid
    np.testing.assert_allclose(reopened.affine.affine_matrix @ np.diag([*reopened.scale, 1]),
                               image.affine.affine_matrix @ np.diag([*image.scale, 1]), rtol=0, atol=1e-6)


@pytest.mark.gui
def test_layers_save_replaces_an_existing_file(make_napari_viewer, tmp_path):
    import SimpleITK as sitk

    src = write_image(tmp_path / "scan.nii.gz", volume())
    viewer = make_napari_viewer()
    image, = viewer.open(src, plugin=PLUGIN)
    labels = labels_like_the_widget(viewer, image)
    out = tmp_path / "labels.nii.gz"
    out.write_bytes(b"old")
    viewer.layers.selection = {labels}
    assert viewer.layers.save(str(out), selected=True, plugin=PLUGIN) == [str(out)]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), labels.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz", "scan.nii.gz"]  # no temp file left


@pytest.mark.gui
def test_single_slice_volume_opens_2d_and_saves_back_on_its_grid(make_napari_viewer, tmp_path):
    import SimpleITK as sitk

    src = write_image(tmp_path / "slice.nrrd", volume()[:1], spacing=(0.5, 0.7, 3.0), origin=(1.0, 2.0, 3.0))
    viewer = make_napari_viewer()
    image, = viewer.open(src, plugin=PLUGIN)
    assert image.data.shape == SHAPE[1:]
    np.testing.assert_allclose(image.scale, (0.7, 0.5))
    np.testing.assert_allclose(image.translate, (2.0, 1.0))
    with_meta = labels_like_the_widget(viewer, image, with_metadata=True)
    with_meta.save(str(tmp_path / "a.nrrd"), plugin=PLUGIN)
    assert_same_grid(sitk.ReadImage(str(tmp_path / "a.nrrd")), sitk.ReadImage(str(src)))  # the one-slice volume
    plain = labels_like_the_widget(viewer, image)
    plain.save(str(tmp_path / "b.nrrd"), plugin=PLUGIN)
    back = sitk.ReadImage(str(tmp_path / "b.nrrd"))  # 2D, in-plane geometry only
    assert back.GetSize() == SHAPE[1:][::-1] and back.GetOrigin() == (1.0, 2.0) and back.GetSpacing() == (0.5, 0.7)


@pytest.mark.gui
def test_dicom_folder_opens_with_its_geometry(make_napari_viewer, tmp_path):
    import SimpleITK as sitk

    array = np.random.default_rng(1).integers(0, 1000, (4, 10, 12)).astype(np.int16)
    folder = dicom_series(tmp_path / "series", array)
    viewer = make_napari_viewer()
    image, = viewer.open(folder, plugin=PLUGIN)
    np.testing.assert_array_equal(image.data, array)
    assert image.name == "series"
    np.testing.assert_allclose(image.scale, (2.0, 0.6, 0.7), rtol=1e-5)
    np.testing.assert_allclose(image.translate, (12.0, 3.0, -5.0), atol=1e-4)
    labels = labels_like_the_widget(viewer, image)
    labels.save(str(tmp_path / "labels.nii.gz"), plugin=PLUGIN)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    assert_same_grid(sitk.ReadImage(str(tmp_path / "labels.nii.gz")), reader.Execute(), atol=1e-4)


@pytest.mark.gui
def test_refused_files_give_the_core_message(make_napari_viewer, tmp_path):
    import SimpleITK as sitk

    rgb = tmp_path / "photo.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 9, 3), np.uint8), isVector=True), str(tmp_path / "p.png"))
    rgb.write_bytes((tmp_path / "p.png").read_bytes())  # a PNG renamed
    nan = np.ones(SHAPE, np.float32)
    nan[1, 2, 3] = np.nan
    write_image(tmp_path / "nan.nii.gz", nan)
    (tmp_path / "junk.nrrd").write_text("not an image")
    viewer = make_napari_viewer()
    for name, message in (("photo.nii.gz", "components per pixel.*convert it to a single-channel"),
                          ("nan.nii.gz", "NaN or infinite.*nan_to_num"),
                          ("junk.nrrd", "SimpleITK could not read")):
        with pytest.raises(InputError, match=message):
            viewer.open(tmp_path / name, plugin=PLUGIN)
    assert len(viewer.layers) == 0


@pytest.mark.gui
def test_saving_float_data_is_refused_through_npe2(make_napari_viewer, tmp_path):
    import npe2

    make_napari_viewer()  # registers the installed plugins
    with pytest.raises(OutputError, match="must be integers"):
        npe2.write(str(tmp_path / "f.nii.gz"), [(np.zeros(SHAPE, np.float32), {}, "labels")], plugin_name=PLUGIN)
    assert not any(tmp_path.iterdir())


@pytest.mark.gui
def test_widget_segments_an_opened_nifti_and_saves_labels_on_its_grid(make_napari_viewer, tmp_path):
    """The user's path: open a scan through the plugin, click in the widget, Save labels, read it back."""
    import SimpleITK as sitk

    from fakes import FakeSession

    from napari_pge_sam._widget import PgeSamWidget

    data = np.zeros((8, 40, 48), np.float32)
    data[:, 10:30, 12:36] = 200.0
    scan = write_image(tmp_path / "scan.nii.gz", data)
    viewer = make_napari_viewer()
    viewer.open(str(scan), plugin="pge-sam")
    widget = PgeSamWidget(viewer, sessions=FakeSession.factory(), prefetch=0)
    widget.controller.add_point((4.0, 20.0, 24.0))
    widget.layers.labels.refresh()
    assert widget.layers.labels.metadata.get("pge_sam_source") == str(scan)
    out = widget.save_labels(str(tmp_path / "scan_labels.nii.gz"))
    assert out and "saved" in widget.message_text
    back = sitk.ReadImage(out)
    assert_same_grid(back, sitk.ReadImage(str(scan)))
    assert (sitk.GetArrayFromImage(back)[4, 15:25, 15:30] == 1).all()
    assert widget.save_labels(str(tmp_path / "labels.png")) is None and "not saved" in widget.message_text


@pytest.mark.gui
@pytest.mark.parametrize("name", ["scan.nrrd", "scan.nii.gz", "scan.mha"])
def test_the_save_dialog_starts_beside_the_scan_with_its_stem(make_napari_viewer, tmp_path, monkeypatch, name):
    """The dialog used to suggest 'scan.nrrd_labels.nii.gz' for an NRRD scan: only '.nii' was cut off."""
    from fakes import FakeSession

    import napari_pge_sam._widget as widget_module

    scan = write_image(tmp_path / name, np.zeros((4, 20, 24), np.float32))
    viewer = make_napari_viewer()
    viewer.open(str(scan), plugin="pge-sam")
    widget = widget_module.PgeSamWidget(viewer, sessions=FakeSession.factory(), prefetch=0)
    asked = []
    monkeypatch.setattr(widget_module.QFileDialog, "getSaveFileName",
                        lambda parent, title, start, filters: asked.append(start) or ("", ""))
    assert widget.save_labels() is None and asked == [str(tmp_path / "scan_labels.nii.gz")]

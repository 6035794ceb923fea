"""Bad input in the viewer: a message in the widget, no exception, no labels lost (Qt, run under Xvfb)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from fakes import ellipsoid_volume, segmenting_model
from napari_helpers import CENTRE, add_click, clicked_widget, wait_idle

from napari_pge_sam._widget import PgeSamWidget

pytestmark = pytest.mark.gui


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # napari on the empty image
@pytest.mark.parametrize("data, kwargs, match", [
    (np.zeros((32, 32, 3), np.uint8), {"rgb": True}, "RGB"),
    (np.zeros((2, 4, 16, 16), np.float32), {}, "4D|multi-channel"),
    (np.zeros((0, 16, 16), np.float32), {"contrast_limits": (0, 1)}, "empty"),
])
def test_unusable_image_layers_give_a_message(make_napari_viewer, data, kwargs, match):
    viewer = make_napari_viewer()
    viewer.add_image(data, name="bad", **kwargs)
    widget = PgeSamWidget(viewer, model=segmenting_model())
    assert widget.image_layer is None and widget.layers is None
    assert "bad" in widget.message_text
    assert re.search(match, widget.message_text)
    assert [layer.name for layer in viewer.layers] == ["bad"]  # no prompt/label layers for it
    for action in (widget.precompute, widget.propagate, widget.undo, widget.next_object, widget.accept, widget.clear):
        action()
        assert "no image" in widget.message_text


def test_no_image_layer_then_one_arrives(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = PgeSamWidget(viewer, model=segmenting_model(), prefetch=0)
    assert "no image layer" in widget.message_text and "no image" in widget.ui.status.text()
    widget.propagate()
    assert "no image" in widget.message_text
    viewer.add_image(ellipsoid_volume(), name="late")
    assert widget.image_layer is viewer.layers["late"] and widget.layers is not None
    add_click(widget, CENTRE)
    wait_idle(qtbot, widget)
    assert widget.layers.labels.data[6, 24, 26] == 1


def test_points_off_the_image_are_refused_and_removed(make_napari_viewer, qtbot):
    widget = clicked_widget(make_napari_viewer(), qtbot, scale=(2.0, 0.5, 0.5))
    before = widget.layers.labels.data.copy()
    add_click(widget, (6, 24, 80))  # x beyond 55
    assert "outside" in widget.message_text
    assert len(widget.layers.points.data) == 1 and len(widget.controller.prompts()) == 1
    np.testing.assert_array_equal(widget.layers.labels.data, before)


def test_clicks_in_3d_view_and_deleting_prompts_are_refused(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = clicked_widget(viewer, qtbot)
    before = widget.layers.labels.data.copy()
    points = widget.layers.points
    points.selected_data = {0}
    points.remove_selected()  # napari's Delete key
    assert len(points.data) == 1 and "Ctrl+Z" in widget.message_text
    viewer.dims.ndisplay = 3
    points.add(np.array([6.0, 30.0, 30.0]))
    assert "2D view" in widget.message_text and len(points.data) == 1
    np.testing.assert_array_equal(widget.layers.labels.data, before)


def test_a_polygon_on_the_box_layer_is_refused_and_taken_away(make_napari_viewer, qtbot):
    widget = clicked_widget(make_napari_viewer(), qtbot)
    before, shapes = widget.layers.labels.data.copy(), widget.layers.shapes
    shapes.add_polygons([np.array([[6.0, 20.0, 20.0], [6.0, 30.0, 22.0], [6.0, 26.0, 34.0]])])
    assert "rectangles" in widget.message_text
    assert len(shapes.data) == 0 and len(widget.controller.prompts()) == 1  # the click stays, no box was taken
    np.testing.assert_array_equal(widget.layers.labels.data, before)


@pytest.mark.parametrize("fill, match", [(np.nan, "NaN"), (None, "constant")])
def test_nan_or_constant_images_give_a_message(make_napari_viewer, qtbot, fill, match):
    viewer = make_napari_viewer()
    data = ellipsoid_volume() if fill is not None else np.full((12, 48, 56), 3.0, np.float32)
    if fill is not None:
        data[6, 0, 0] = fill
    widget = clicked_widget(viewer, qtbot, data, contrast_limits=(0, 4))
    assert match in widget.message_text
    assert not widget.layers.labels.data.any() and len(widget.layers.points.data) == 0


def test_download_fetches_the_missing_checkpoint_with_progress(make_napari_viewer, qtbot, monkeypatch, tmp_path,
                                                                served_vit_b):
    monkeypatch.setenv("PGE_SAM_CACHE_DIR", str(tmp_path / "cache"))
    viewer = make_napari_viewer()
    viewer.add_image(ellipsoid_volume())
    widget = PgeSamWidget(viewer, prefetch=0)
    picker = widget.ui.model
    picker.setCurrentIndex(picker.findData("pge_sam_vit_b"))  # needs the checkpoint and a trained adapter
    widget.ui.download.click()
    wait_idle(qtbot, widget)
    assert (tmp_path / "cache" / "sam_vit_b_01ec64.pth").read_bytes() == served_vit_b
    assert widget.ui.progress.text() == "download 4/4"  # the bar shows the last progress reported
    assert "sha256 verified" in widget.message_text and "PGE adapter" in widget.message_text  # what is still missing
    assert "weights missing" in picker.currentText() and not widget.ui.download.isEnabled()  # nothing to fetch now
    picker.setCurrentIndex(picker.findData("sam_vit_b"))
    assert picker.currentText() == "sam_vit_b" and not widget.ui.download.isEnabled()


def test_missing_weights_are_a_message_and_keep_the_labels(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("PGE_SAM_CACHE_DIR", str(tmp_path))  # an empty cache folder: no official checkpoint
    viewer = make_napari_viewer()
    viewer.add_image(ellipsoid_volume())
    widget = PgeSamWidget(viewer, prefetch=0)
    widget.layers.labels.data[6, :5, :5] = 4  # the user's own labels
    widget.ui.model.setCurrentIndex(widget.ui.model.findData("sam_vit_b"))
    assert "weights missing" in widget.ui.model.currentText() and widget.ui.download.isEnabled()
    widget.ui.load.click()
    wait_idle(qtbot, widget)
    assert "sam_vit_b_01ec64.pth" in widget.message_text and "Download" in widget.message_text
    assert widget.controller.model is None
    widget.ui.checkpoint.setText(str(tmp_path / "nowhere.pth"))
    widget.ui.load.click()
    wait_idle(qtbot, widget)
    assert "nowhere.pth not found" in widget.message_text
    add_click(widget, CENTRE)  # the click waits for a model, whose loading fails again
    wait_idle(qtbot, widget)
    assert "not found" in widget.message_text and len(widget.layers.points.data) == 0
    assert (widget.layers.labels.data[6, :5, :5] == 4).all() and widget.layers.labels.data.sum() == 4 * 25


def test_replaced_labels_data_is_taken_or_refused(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(ellipsoid_volume())
    widget = PgeSamWidget(viewer, model=segmenting_model(), prefetch=0)
    labels = widget.layers.labels
    new = np.zeros((12, 48, 56), np.uint16)
    new[0, 0, 0] = 9
    labels.data = new
    assert widget.controller.labels is new and widget.controller.label == 10
    labels.data = np.zeros((3, 3, 3), np.uint16)
    assert "cannot use the new labels" in widget.message_text


def test_deleting_our_layers_or_the_image_detaches_cleanly(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = clicked_widget(viewer, qtbot, name="img")
    image = viewer.layers["img"]
    labels = widget.layers.labels
    viewer.layers.remove(widget.layers.points)
    assert widget.layers is None and "choose the image again" in widget.message_text
    assert labels in viewer.layers and (labels.data == 1).any()
    widget.set_image_layer(image)  # back again: the labels layer is reused with its labels
    assert widget.layers.labels is labels and widget.controller.label == 2
    viewer.layers.remove(image)
    assert widget.image_layer is None and "image layer was removed" in widget.message_text
    assert labels in viewer.layers


def test_napari_opens_the_contributions_from_the_manifest(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    """The Plugins menu entry and File > Open Sample go through npe2 to our widget and sample functions."""
    monkeypatch.setenv("PGE_SAM_CACHE_DIR", str(tmp_path))
    viewer = make_napari_viewer()
    viewer.open_sample("pge-sam", "phantom")
    assert viewer.layers[-1].data.shape == (256, 256)
    dock, widget = viewer.window.add_plugin_dock_widget("pge-sam", "Interactive segmentation (PGE-SAM)")
    assert isinstance(widget, PgeSamWidget) and widget.viewer.layers is not None  # napari hands over a proxy
    assert widget.image_layer.name == "Shepp-Logan phantom" and widget.controller.model is None
    assert not widget.ui.axis.isEnabled()  # 2D image: one slicing axis
    widget.set_model(segmenting_model())  # everything below goes through napari's public-only proxy
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the proxy warns on private attribute access
        widget.layers.points.add(np.array([128.0, 100.0]))
        qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
        widget.undo()
        widget.layers.points.add(np.array([128.0, 100.0]))
        qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert viewer.layers["Shepp-Logan phantom [pge-sam]"].data[128, 100] == 1  # the left dark ellipse
    viewer.window.remove_dock_widget(dock)
    assert widget.closed


def test_dask_backed_image_stays_lazy(make_napari_viewer, qtbot):
    import dask.array as da

    volume = da.from_array(ellipsoid_volume(), chunks=(1, 48, 56))
    viewer = make_napari_viewer()
    viewer.add_image(volume, contrast_limits=(0, 1), multiscale=False)
    widget = PgeSamWidget(viewer, model=segmenting_model(), prefetch=0)
    assert widget.controller.image is volume  # not converted to numpy
    add_click(widget, CENTRE)
    wait_idle(qtbot, widget)
    assert widget.layers.labels.data[6, 24, 26] == 1

"""The dock widget in a real napari viewer (Qt, run under Xvfb): clicks, keys, workers, geometry.

Clicks go through napari's own mouse bindings (press/release on the Points
layer in add mode, world coordinates in), boxes through the Shapes layer.
Geometric assertions use the deterministic stand-in predictor (see
``napari_pge_sam._testing``); the real ``sam_tiny`` drives the worker tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks
from napari.utils.key_bindings import coerce_keybinding

from napari_pge_sam._controller import Controller
from napari_pge_sam._sample_data import mni_t1
from napari_pge_sam._testing import RegionGrowPredictor, ellipsoid_volume, tiny_model
from napari_pge_sam._widget import PgeSamWidget

pytestmark = pytest.mark.gui

MNI_POINT = (90.0, 120.0, 98.0)  # a data index inside the brain
SCALE, TRANSLATE = (2.0, 0.8, 1.2), (-30.0, 12.0, 5.0)


@dataclass
class _Mouse:
    type: str
    position: tuple
    modifiers: list = field(default_factory=list)
    is_dragging: bool = False
    pos: np.ndarray = field(default_factory=lambda: np.zeros(2))
    view_direction: list | None = None
    up_direction: list | None = None
    dims_displayed: list = field(default_factory=lambda: [1, 2])


def mouse_click(layer, world, modifiers=()) -> None:
    """Press and release the left button at ``world`` on ``layer``, as napari's canvas does."""
    for kind, run in (("mouse_press", mouse_press_callbacks), ("mouse_release", mouse_release_callbacks)):
        run(layer, ReadOnlyWrapper(_Mouse(kind, tuple(world), list(modifiers)), exceptions=("handled",)))


def click_index(widget, index, modifiers=()) -> None:
    """Show the slice of image data index ``index`` and click on it (through world coordinates)."""
    world = widget.image_layer.data_to_world(index)
    widget.viewer.dims.set_point(0, world[0])
    mouse_click(widget.layers.points, world, modifiers)


def press(layer, key: str) -> None:
    layer.keymap[coerce_keybinding(key)](layer)


def wait_idle(qtbot, widget, timeout: int = 30_000) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


@pytest.fixture(scope="module")
def mni():
    return mni_t1()[0][0]


@pytest.fixture
def scaled_mni(make_napari_viewer, mni):
    viewer = make_napari_viewer()
    viewer.add_image(mni, name="t1", scale=SCALE, translate=TRANSLATE)
    widget = PgeSamWidget(viewer, model=RegionGrowPredictor(), prefetch=0)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def test_click_lands_on_the_right_voxel_with_scale_and_translate(scaled_mni, mni, qtbot):
    viewer, widget = scaled_mni
    labels = widget.layers.labels
    np.testing.assert_allclose(labels.scale, SCALE)
    np.testing.assert_allclose(labels.translate, TRANSLATE)
    click_index(widget, MNI_POINT)
    wait_idle(qtbot, widget)
    z, y, x = (int(v) for v in MNI_POINT)
    assert labels.data[z, y, x] == 1
    assert set(np.flatnonzero(labels.data.any(axis=(1, 2)))) == {z}
    # the same click made headless at the data index gives the same mask
    reference = Controller(RegionGrowPredictor(), prefetch=0)
    reference.set_image(mni, np.zeros(mni.shape, np.uint16), spacing=SCALE)
    reference.add_point(MNI_POINT)
    np.testing.assert_array_equal(labels.data, reference.display)
    assert widget.last_latency is not None and "last click" in widget.status_text


def test_negative_click_undo_next_object_and_accept_keys(scaled_mni, qtbot):
    viewer, widget = scaled_mni
    labels, points = widget.layers.labels, widget.layers.points
    click_index(widget, MNI_POINT)
    wait_idle(qtbot, widget)
    first = labels.data.copy()
    z, y, x = (int(v) for v in MNI_POINT)
    click_index(widget, (z, y, x + 12), modifiers=["Control"])  # Ctrl+click: negative
    assert list(points.features["positive"]) == [True, False]
    assert not np.array_equal(points.face_color[0], points.face_color[1])
    assert 0 < (labels.data == 1).sum() < (first == 1).sum()
    press(points, "Control-Z")
    np.testing.assert_array_equal(labels.data, first)
    assert len(points.data) == 1
    press(points, "N")
    assert widget.controller.label == 2 and labels.selected_label == 2
    click_index(widget, (z, 40, 40))  # background: object 2 never takes object 1's voxels
    assert (labels.data == 2).any()
    np.testing.assert_array_equal(labels.data[first == 1], 1)
    press(points, "Enter")  # accept object 2: its prompts leave, undo cannot reach it
    assert widget.controller.label == 3 and all(points.features["object"] == 1)
    press(widget.layers.shapes, "Control-Z")  # undo reaches object 1's click only
    assert not (labels.data == 1).any() and (labels.data == 2).any()


def test_toggle_key_makes_plain_clicks_negative(scaled_mni, qtbot):
    viewer, widget = scaled_mni
    click_index(widget, MNI_POINT)
    wait_idle(qtbot, widget)
    press(widget.layers.points, "T")
    assert not widget.positive and "negative" in widget.ui.polarity.text()
    click_index(widget, (MNI_POINT[0], MNI_POINT[1], MNI_POINT[2] + 12))
    assert list(widget.layers.points.features["positive"]) == [True, False]


def test_box_from_the_shapes_layer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(ellipsoid_volume(), scale=(1.5, 0.7, 0.9), translate=(4.0, -2.0, 1.0))
    widget = PgeSamWidget(viewer, model=RegionGrowPredictor(), prefetch=0)
    shapes = widget.layers.shapes
    corners = np.array([[6, 14, 16], [6, 14, 36], [6, 34, 36], [6, 34, 16]], float)  # image data = layer data here
    viewer.dims.set_point(0, widget.image_layer.data_to_world(corners[0])[0])
    shapes.add_rectangles([corners])
    wait_idle(qtbot, widget)
    mask = widget.layers.labels.data[6] == 1
    assert mask[24, 26] and not widget.layers.labels.data[5].any()
    rows, cols = np.nonzero(mask)
    assert rows.min() >= 14 and rows.max() <= 34 and cols.min() >= 16 and cols.max() <= 36
    assert len(shapes.data) == 1 and [m.kind for m in widget.controller.marks] == ["box"]


class _SlowPredictor(RegionGrowPredictor):
    """The stand-in, with 0.2 s per decode so a cancel arrives while propagation runs."""

    def decode(self, *args, **kwargs):
        time.sleep(0.2)
        return super().decode(*args, **kwargs)


def test_propagation_fills_neighbours_and_can_be_cancelled(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(ellipsoid_volume(), scale=(2.0, 0.5, 0.75))
    widget = PgeSamWidget(viewer, model=_SlowPredictor(), prefetch=0)
    labels = widget.layers.labels
    click_index(widget, (6, 24, 26))
    wait_idle(qtbot, widget)
    widget.propagate()
    assert widget.jobs.busy("propagate") and not labels.editable
    wait_idle(qtbot, widget)
    assert labels.editable and "propagation done" in widget.message_text
    filled = set(np.flatnonzero((labels.data == 1).any(axis=(1, 2))))
    assert {3, 4, 5, 6, 7, 8, 9} <= filled
    widget.undo()
    assert set(np.flatnonzero(labels.data.any(axis=(1, 2)))) == {6}
    cancelled = []
    widget.ui.progress.valueChanged.connect(lambda v: v >= 1 and not cancelled and (cancelled.append(v), widget.cancel()))
    widget.propagate()
    wait_idle(qtbot, widget)
    assert cancelled and "cancelled" in widget.message_text
    kept = set(np.flatnonzero((labels.data == 1).any(axis=(1, 2))))
    assert {6} < kept and len(kept) < len(filled)


def test_precompute_reports_progress_then_clicks_are_synchronous(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(ellipsoid_volume((6, 40, 56)))
    widget = PgeSamWidget(viewer, model=tiny_model(), prefetch=0)
    widget.precompute()
    wait_idle(qtbot, widget, 60_000)
    assert widget.last_progress == ("precompute", 6, 6)
    assert widget.ui.progress.maximum() == 6 and widget.ui.progress.value() == 6
    assert "6 slices encoded" in widget.message_text
    click_index(widget, (3, 20, 26))
    assert not widget.busy  # decoded on the GUI thread, no encode job
    assert len(widget.controller.marks) == 1 and widget.last_latency is not None


def test_switching_the_image_layer_resets_the_session(make_napari_viewer, mni, qtbot):
    viewer = make_napari_viewer()
    a = viewer.add_image(ellipsoid_volume(), name="a", scale=(2.0, 1.0, 1.0))
    b = viewer.add_image(mni[80:100], name="b", scale=(1.0, 0.5, 0.5))
    widget = PgeSamWidget(viewer, model=RegionGrowPredictor(), prefetch=0)
    widget.set_image_layer(a)
    click_index(widget, (6, 24, 26))
    wait_idle(qtbot, widget)
    labels_a = widget.layers.labels
    widget.ui.image.setCurrentText("b")
    widget.ui.image.activated.emit(widget.ui.image.currentIndex())
    assert widget.image_layer is b and widget.controller.image.shape == (20, 233, 197)
    assert widget.controller.marks == [] and widget.controller.session is None
    assert widget.layers.labels is not labels_a and (labels_a.data == 1).any()  # a's labels stay
    np.testing.assert_allclose(widget.layers.points.scale, (1.0, 0.5, 0.5))
    assert [layer.name for layer in viewer.layers].count("pge-sam points") == 1


def test_slicing_axis_follows_the_viewer(scaled_mni, qtbot):
    viewer, widget = scaled_mni
    viewer.dims.order = (2, 0, 1)
    assert widget.controller.axis == 2 and widget.ui.axis.currentIndex() == 2
    world = widget.image_layer.data_to_world(MNI_POINT)
    viewer.dims.set_point(2, world[2])
    mouse_click(widget.layers.points, world)
    wait_idle(qtbot, widget)
    assert widget.layers.labels.data[:, :, 98].any() and not widget.layers.labels.data[:, :, 97].any()
    widget.ui.axis.setCurrentIndex(1)
    widget.ui.axis.activated.emit(1)
    assert viewer.dims.order[-3] == 1 and widget.controller.axis == 1


def test_closing_the_widget_releases_keys_workers_and_events(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(ellipsoid_volume())
    before = {name: len(getattr(viewer.dims.events, name).callbacks) for name in ("order", "current_step")}
    widget = PgeSamWidget(viewer, model=_SlowPredictor(), prefetch=0)
    dock = viewer.window.add_dock_widget(widget)
    points, shapes = widget.layers.points, widget.layers.shapes
    assert coerce_keybinding("Control-Z") in points.keymap
    click_index(widget, (6, 24, 26))
    wait_idle(qtbot, widget)
    widget.propagate()
    job = widget.jobs.active[0]
    viewer.window.remove_dock_widget(dock)
    assert widget.closed and widget.jobs.active == [] and job.ended.is_set()
    for layer, keys in ((points, ("Control-Z", "N", "T", "Enter")), (shapes, ("Control-Z", "N"))):
        assert not any(coerce_keybinding(k) in layer.keymap for k in keys)
    assert widget.layers._on_press not in points.mouse_drag_callbacks
    assert {name: len(getattr(viewer.dims.events, name).callbacks) for name in before} == before
    assert (widget.layers.labels.data == 1).any()  # labels stay in the viewer


def test_model_from_the_picker_loads_in_a_worker(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("PGE_SAM_CACHE_DIR", str(tmp_path))
    viewer = make_napari_viewer()
    viewer.add_image(ellipsoid_volume((6, 40, 56)))
    widget = PgeSamWidget(viewer, prefetch=0)
    assert widget.controller.model is None
    widget.ui.model.setCurrentIndex(widget.ui.model.findData("sam_tiny"))
    widget.ui.device.setCurrentText("cpu")
    assert "CPU" in widget.ui.device_note.text()
    widget.ui.load.click()
    assert widget.jobs.busy("model")
    wait_idle(qtbot, widget, 60_000)
    present = widget.models.current().present
    if present:  # the shipped weights: the model is in use
        assert widget.controller.model is not None and widget.controller.model.name == "sam_tiny"
        assert "ready on cpu" in widget.message_text
    else:  # no shipped weights in this installation: a clear message, nothing loaded
        assert widget.controller.model is None and "missing" in widget.message_text

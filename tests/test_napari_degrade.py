"""The widget's degradation preview (Qt, run under Xvfb): a degraded copy of the chosen image as a new layer.

The widget runs on ``FakeSession`` (no model): the preview never touches the session.
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeSession, ellipsoid_volume
from napari_helpers import wait_idle

from napari_pge_sam._widget import PgeSamWidget
from pge_sam import degrade

pytestmark = pytest.mark.gui

SCALE, TRANSLATE = (2.0, 0.8, 1.2), (-30.0, 12.0, 5.0)
ERROR_STYLE = "ff6060"


def make_widget(viewer) -> PgeSamWidget:
    return PgeSamWidget(viewer, sessions=FakeSession.factory(), prefetch=0)


def choose(widget, name: str, severity: int, seed: int = 0) -> None:
    panel = widget.degrade
    panel.name.setCurrentIndex(panel.name.findData(name))
    panel.severity.setValue(severity)
    panel.seed.setValue(seed)


def press_degrade(widget, qtbot) -> None:
    widget.degrade.run.click()
    wait_idle(qtbot, widget)


def is_error(widget) -> bool:
    return ERROR_STYLE in widget.ui.message.styleSheet()


def test_the_picker_lists_every_degradation_with_its_group(make_napari_viewer):
    widget = make_widget(make_napari_viewer())
    panel = widget.degrade
    names = [panel.name.itemData(i) for i in range(panel.name.count())]
    assert names == degrade.list_degradations()
    texts = [panel.name.itemText(i) for i in range(panel.name.count())]
    assert "gaussian_noise (general)" in texts and "ghosting (mri)" in texts and "ct_low_dose (ct)" in texts
    assert (panel.severity.minimum(), panel.severity.maximum()) == (1, degrade.MAX_SEVERITY)
    assert panel.box.parentWidget() is widget


def test_volume_copy_is_one_new_layer_with_the_source_geometry(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    volume = ellipsoid_volume()
    source = viewer.add_image(volume, name="img", scale=SCALE, translate=TRANSLATE, contrast_limits=(0.0, 1.0),
                              metadata={"pge_sam_source": "/data/img.nii.gz"})
    widget = make_widget(viewer)
    before_data, before_names = volume.copy(), [layer.name for layer in viewer.layers]
    active = viewer.layers.selection.active
    choose(widget, "gaussian_noise", 2, seed=3)
    press_degrade(widget, qtbot)
    assert not is_error(widget), widget.message_text
    new = [layer for layer in viewer.layers if layer.name not in before_names]
    assert [layer.name for layer in new] == ["img [gaussian_noise s2 seed 3]"]
    copy = new[0]
    assert "added 'img [gaussian_noise s2 seed 3]'" in widget.message_text
    assert copy.data.shape == volume.shape and copy.data.dtype == volume.dtype
    np.testing.assert_allclose(copy.scale, SCALE)
    np.testing.assert_allclose(copy.translate, TRANSLATE)
    assert tuple(copy.contrast_limits) == (0.0, 1.0)
    assert copy.metadata["pge_sam_source"] == "/data/img.nii.gz"  # labels made on it save onto the source grid
    assert copy.metadata["pge_sam_degradation"] == {"name": "gaussian_noise", "severity": 2, "seed": 3,
                                                    "source": "img"}
    assert list(viewer.layers).index(copy) == list(viewer.layers).index(source) + 1  # right above its source
    assert viewer.layers.selection.active is active  # clicks still go to the widget's points layer
    np.testing.assert_array_equal(source.data, before_data)  # the source is only read
    assert source.data is volume
    np.testing.assert_array_equal(copy.data, degrade.apply(volume, "gaussian_noise", 2, seed=3))
    assert not np.array_equal(copy.data, volume)
    assert widget.image_layer is source  # the session keeps segmenting the source


def test_same_seed_same_copy_other_seed_other_copy(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(ellipsoid_volume(), name="img")
    widget = make_widget(viewer)
    copies = []
    for seed in (0, 0, 1):
        choose(widget, "speckle", 3, seed)
        press_degrade(widget, qtbot)
        copies.append(_newest_copy(viewer))
    assert sum(layer.name.startswith("img [speckle s3") for layer in viewer.layers) == 3
    np.testing.assert_array_equal(copies[0], copies[1])
    assert not np.array_equal(copies[0], copies[2])


def _newest_copy(viewer) -> np.ndarray:
    """Data of the copy inserted last (each is inserted right above the source, so it is the one just above)."""
    index = [layer.name for layer in viewer.layers].index("img")
    return viewer.layers[index + 1].data


def test_2d_integer_image_with_a_3d_aware_degradation(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image = np.rint(ellipsoid_volume()[6] * 1000).astype(np.int16)
    viewer.add_image(image, name="slice", scale=(0.5, 0.7))
    widget = make_widget(viewer)
    choose(widget, "ghosting", 1)
    press_degrade(widget, qtbot)
    copy = viewer.layers["slice [ghosting s1]"]
    assert copy.data.shape == image.shape and copy.data.dtype == np.int16
    np.testing.assert_allclose(copy.scale, (0.5, 0.7))
    np.testing.assert_array_equal(copy.data, degrade.apply(image, "ghosting", 1))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("data, kwargs, match", [
    (None, {}, "no image layer"),
    (np.zeros((32, 32, 3), np.uint8), {"rgb": True}, "RGB"),
    (np.full((4, 16, 16), np.nan, np.float32), {"contrast_limits": (0, 1)}, "NaN"),  # found by the core, in the worker
    ([np.zeros((32, 32), np.float32), np.zeros((16, 16), np.float32)], {"multiscale": True}, "multiscale"),
])
def test_bad_input_gives_the_widget_error_and_no_layer(make_napari_viewer, qtbot, data, kwargs, match):
    viewer = make_napari_viewer()
    if data is not None:
        viewer.add_image(data, name="bad", **kwargs)
    widget = make_widget(viewer)
    names = [layer.name for layer in viewer.layers]
    press_degrade(widget, qtbot)
    assert match in widget.message_text and widget.message_text.startswith("degradation preview: ")
    assert is_error(widget)
    assert [layer.name for layer in viewer.layers] == names


def test_cancel_stops_a_volume_and_adds_nothing(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.tile(ellipsoid_volume(shape=(8, 64, 64)), (8, 1, 1)), name="big")  # 64 slices of FBP
    widget = make_widget(viewer)
    names = [layer.name for layer in viewer.layers]
    choose(widget, "ct_low_dose", 2)
    assert widget.degrade.start()
    assert widget.jobs.busy("degrade") and widget.jobs.active[-1].bar is not None
    assert not widget.degrade.start() and "being made" in widget.message_text  # one at a time
    widget.cancel()
    wait_idle(qtbot, widget)
    assert "cancelled" in widget.message_text and not is_error(widget)
    assert [layer.name for layer in viewer.layers] == names

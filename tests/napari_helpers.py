"""Helpers shared by the napari GUI tests: simulated clicks, waiting for workers, a widget with one click done."""

from __future__ import annotations

from fakes import ellipsoid_volume, segmenting_model

from napari_pge_sam._widget import PgeSamWidget

CENTRE = (6, 24, 26)  # a data index inside ellipsoid_volume()'s ellipsoid


def add_click(widget, index) -> None:
    """Add a point at image data index ``index`` to the prompt layer (what a click in add mode does)."""
    world = widget.image_layer.data_to_world(index)
    widget.viewer.dims.set_point(0, world[0])
    widget.layers.points.add(widget.layers.points.world_to_data(world))


def wait_idle(qtbot, widget, timeout: int = 30_000) -> None:
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def clicked_widget(viewer, qtbot, data=None, index=CENTRE, prefetch: int = 0, **image_kwargs) -> PgeSamWidget:
    """Add ``data`` (default: the ellipsoid volume) to ``viewer``, dock a widget on the default model, click
    ``index`` once (``None``: no click) and wait until the segmentation is shown."""
    viewer.add_image(ellipsoid_volume() if data is None else data, **image_kwargs)
    widget = PgeSamWidget(viewer, model=segmenting_model(), prefetch=prefetch)
    if index is not None:
        add_click(widget, index)
        wait_idle(qtbot, widget)
    return widget

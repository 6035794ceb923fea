"""``pge-sam napari``: open napari with the plugin and a sample, optionally click and save a screenshot.

    pge-sam napari [--sample mni_t1|phantom] [--point Z,Y,X[:-] ...]
                   [--model NAME] [--device auto] [--screenshot PATH]

Points are image data indices ((z, y, x) for the MNI volume, (row, col) for
the phantom); a ``:-`` suffix makes a negative click, as in ``pge-sam
segment``. Nothing happens that was not asked for: without ``--point`` no
prompt is added and no model is loaded before the user clicks. With
``--screenshot`` the window (widget included) is saved to PATH and the
command exits; without it napari stays open. napari is imported only in
:func:`run`.
"""

from __future__ import annotations

import argparse
import time

SAMPLES = ("mni_t1", "phantom")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sample", choices=SAMPLES, default="mni_t1", help="sample image to open (default: mni_t1)")
    parser.add_argument("--point", action="append", default=[], metavar="Z,Y,X[:-]",
                        help="click at this data index, in order (repeatable; Y,X for the 2D phantom; "
                             "a ':-' suffix makes it negative)")
    parser.add_argument("--model", default=None, help="model name (default: the tiny model whose weights are present)")
    parser.add_argument("--checkpoint", default=None, help="custom base weights file for --model")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (default: auto)")
    parser.add_argument("--screenshot", default=None, metavar="PATH", help="save a screenshot of the window and exit")
    parser.add_argument("--size", default="1500x950", metavar="WxH", help="window size for the screenshot")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the clicks to be applied")


def parse_point(text: str, ndim: int) -> tuple[tuple[float, ...], bool]:
    """``"z,y,x"`` or ``"z,y,x:-"`` (``"y,x"`` for a 2D image) -> (floats, positive); the same syntax as
    ``pge-sam segment``."""
    from pge_sam.cli.segment import parse_point as parse

    return parse(text, ndim)


def wait_until_idle(widget, timeout: float) -> bool:
    """Process Qt events until the widget has no waiting click and no running job; False on timeout."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while widget.busy and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    QApplication.processEvents()
    return not widget.busy


def click(widget, point, positive: bool = True) -> None:
    """Add a click at image data index ``point`` through the Points layer, as a mouse click would."""
    import numpy as np

    from ._layers import convert

    layers = widget.layers
    target = convert([point], layers.image, layers.points)[0]
    layers.negative_click = not positive
    layers.points.add(np.asarray(target))


def show_slice(viewer, image, point) -> None:
    """Move the viewer's sliders to the slice containing image data index ``point``."""
    world = image.data_to_world(point)
    offset = viewer.dims.ndim - len(world)
    for axis in list(viewer.dims.not_displayed):
        if axis - offset >= 0:
            viewer.dims.set_point(axis, world[axis - offset])


def run(args) -> int:
    from pge_sam._optional import require
    from pge_sam.errors import InputError

    napari = require("napari", extra="napari", purpose="pge-sam napari")

    from ._model_panel import load_model
    from ._sample_data import mni_t1, phantom
    from ._widget import PgeSamWidget

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size {args.size!r} must look like 1500x950") from None
    data, kwargs, _ = (mni_t1 if args.sample == "mni_t1" else phantom)()[0]
    clicks = [parse_point(p, data.ndim) for p in args.point]
    model = None
    if clicks:
        from pge_sam.model_files import default_choice, list_model_files

        name = args.model or default_choice(list_model_files()).name
        model = load_model(name, args.device, args.checkpoint)
    viewer = napari.Viewer(title="pge-sam", show=True)
    try:
        image = viewer.add_image(data, **kwargs)
        widget = PgeSamWidget(viewer, model=model)
        viewer.window.add_dock_widget(widget, name="PGE-SAM", area="right")
        viewer.window._qt_window.resize(width, height)
        if clicks:
            show_slice(viewer, image, clicks[0][0])
            for point, positive in clicks:
                click(widget, point, positive)
                if not wait_until_idle(widget, args.timeout):
                    raise InputError(f"the click at {point} was not applied within {args.timeout:.0f} s")
        if args.screenshot is None:
            napari.run()
            return 0
        wait_until_idle(widget, args.timeout)
        time.sleep(0.2)
        wait_until_idle(widget, 1.0)
        viewer.screenshot(args.screenshot, canvas_only=False)
        print(f"{args.screenshot}: {widget.message_text}")
        return 0
    finally:
        if args.screenshot is not None:
            viewer.close()

"""Click-to-labels-refresh latency of the napari plugin on an already encoded slice (tiny model, CPU by default).

    xvfb-run -a python benchmarks/napari_click_latency.py [--clicks 30] [--model sam_tiny] [--device cpu]

Opens a real napari window with the MNI152 T1 sample and the plugin's dock
widget, encodes the axial slice 94 once, then adds ``--clicks`` prompts on it
through the plugin's Points layer (as napari's mouse binding does) and times:

* ``decode``: the session's own work (prompt -> mask -> label buffer);
* ``widget``: from the Points-layer event to the Labels layer refreshed and the
  prompt layers redrawn (the figure shown in the widget's status line);
* ``to screen``: the same plus Qt processing the paint of the canvas.

Each click is undone after being timed so every click sees one prompt on the
slice. Prints the machine, the command and median / p90 / max per figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return f"{name:<10} median {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms   max {ms[-1]:7.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--model", default="sam_tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    parser.add_argument("--slice", type=int, default=94, help="axial slice of the MNI T1 to click on")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from napari_pge_sam._model_panel import load_model

    model = load_model(args.model, args.device)  # before the viewer: see napari_pge_sam._compat

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_pge_sam._cli import click, show_slice
    from napari_pge_sam._sample_data import mni_t1
    from napari_pge_sam._widget import PgeSamWidget

    data, kwargs, _ = mni_t1()[0]
    viewer = napari.Viewer(show=True, title="pge-sam latency")
    try:
        viewer.add_image(data, **kwargs)
        widget = PgeSamWidget(viewer, model=model, prefetch=0)
        viewer.window.add_dock_widget(widget, name="PGE-SAM")
        z = args.slice
        show_slice(viewer, widget.image_layer, (z, 116, 98))
        widget.controller.ensure_session()
        widget.controller.encode(z)
        QApplication.processEvents()
        brain = np.argwhere(data[z] > np.percentile(data[z], 75))
        rng = np.random.default_rng(0)
        picks = brain[rng.choice(len(brain), args.warmup + args.clicks, replace=False)]
        decode, in_widget, to_screen = [], [], []
        for i, (y, x) in enumerate(picks):
            t0 = time.perf_counter()
            click(widget, (z, float(y), float(x)))
            t1 = time.perf_counter()
            QApplication.processEvents()
            t2 = time.perf_counter()
            if widget.busy or widget.controller.session is None or not widget.controller.prompts():
                raise RuntimeError(f"click {i} was not applied synchronously: {widget.message_text}")
            if i >= args.warmup:
                decode.append(widget.last_decode)
                in_widget.append(t1 - t0)
                to_screen.append(t2 - t0)
            widget.undo()
            QApplication.processEvents()
    finally:
        viewer.close()

    print(f"machine   {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({args.threads} threads), napari {napari.__version__}, Python {platform.python_version()}")
    print(f"command   {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(f"setup     MNI152 T1 {data.shape}, slice {args.slice} encoded beforehand, model {args.model} on "
          f"{args.device}, {args.clicks} clicks (+{args.warmup} warm-up), one prompt per click")
    print(summary("decode", decode))
    print(summary("widget", in_widget))
    print(summary("to screen", to_screen))
    return 0


if __name__ == "__main__":
    sys.exit(main())

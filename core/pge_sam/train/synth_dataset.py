"""Index-deterministic scene datasets and preview grids of the procedural generator."""

from __future__ import annotations

import pathlib

import numpy as np

from pge_sam.train.synth import Scene, _check_config, generate_scene
from pge_sam.train.synth_config import SynthConfig, SynthConfigError, _int_in


class SynthDataset:
    """Torch-free sequence of scenes: item ``i`` is ``generate_scene(base_seed + i, config)``.

    Index-deterministic, so data-loader workers and distributed ranks agree on
    every item. Supports ``len``, integer (also negative) indexing and iteration.
    """

    def __init__(self, length: int, config: SynthConfig | None = None, base_seed: int = 0):
        config = SynthConfig() if config is None else config
        _check_config(config)
        self.length = _int_in("length", length, 0)
        self.base_seed = _int_in("base_seed", base_seed, 0)
        self.config = config

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Scene:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"SynthDataset index must be an int, got {type(index).__name__}")
        i = int(index) + (self.length if index < 0 else 0)
        if not 0 <= i < self.length:
            raise IndexError(f"index {index} out of range for SynthDataset of length {self.length}")
        return generate_scene(self.base_seed + i, self.config)


def write_synth_preview(out_png, n: int = 12, config: SynthConfig | None = None,
                        seed: int = 0) -> pathlib.Path:
    """Save a grid of ``n`` scenes (seeds ``seed .. seed+n-1``) with mask contours as PNG.

    Primitive masks are outlined in distinct colours, compound masks dashed in
    white. Uses matplotlib's Agg canvas (no display, no pyplot state).
    Returns the written path; its parent folder is created if missing.
    """
    config = SynthConfig() if config is None else config
    n, seed = _int_in("n", n, 1, 256), _int_in("seed", seed, 0)
    scenes = [(seed + i, generate_scene(seed + i, config)) for i in range(n)]
    return write_scene_grid(out_png, scenes, lambda kind: kind == "compound",
                            lambda scene: f"{scene.style}, {len(scene.kinds)} masks")


def write_scene_grid(out_png, scenes, compound, describe) -> pathlib.Path:
    """Save ``scenes`` ((seed, Scene) pairs) as a PNG grid with mask contours (shared by the preview writers).

    Masks whose kind passes ``compound`` are dashed white, the others outlined in
    distinct colours; ``describe(scene)`` completes each title after the seed.
    Uses matplotlib's Agg canvas (no display, no pyplot state); the parent
    folder is created if missing. Returns the written path.
    """
    from .._optional import require

    matplotlib = require("matplotlib", extra="train")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = pathlib.Path(out_png)
    if path.suffix.lower() != ".png":
        raise SynthConfigError(f"out_png={str(path)!r}: the file name must end in .png")
    cols = min(len(scenes), 4)
    rows = -(-len(scenes) // cols)
    fig = Figure(figsize=(3.2 * cols, 3.4 * rows), dpi=100)
    FigureCanvasAgg(fig)
    palette = matplotlib.colormaps["tab10"]
    for i, (seed, scene) in enumerate(scenes):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(scene.image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        for j, (mask, kind) in enumerate(zip(scene.masks, scene.kinds)):
            dashed = compound(kind)
            ax.contour(mask.astype(np.float32), levels=[0.5], linewidths=0.7,
                       colors=["white" if dashed else palette(j % 10)],
                       linestyles="dashed" if dashed else "solid")
        ax.set_title(f"seed {seed}: {describe(scene)}", fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path

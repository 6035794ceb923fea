"""Preview grid: one 2D image at every degradation (rows) and severity (columns), as a PNG.

The figure has an exact pixel layout (no tight bounding box), so its size is
``(HEADER_PX + n_rows * CELL_PX, LABEL_PX + (MAX_SEVERITY + 1) * CELL_PX)``
pixels (height, width).  It is drawn with matplotlib's object API on an Agg
canvas: no pyplot, no global backend switch.
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

from .._optional import require
from . import MAX_SEVERITY, MODALITIES, apply, list_degradations
from .general import DegradationError, check_image

CELL_PX = 128  # side of one image cell, pixels
LABEL_PX = 168  # width of the row-label column, pixels
HEADER_PX = 28  # height of the column-header row, pixels
DPI = 100


def grid_shape_px(n_rows: int) -> tuple[int, int]:
    """``(height, width)`` in pixels of a preview PNG with ``n_rows`` degradations."""
    return HEADER_PX + n_rows * CELL_PX, LABEL_PX + (MAX_SEVERITY + 1) * CELL_PX


def write_preview_grid(
    image: np.ndarray,
    out_png: str | pathlib.Path,
    modality: str,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> pathlib.Path:
    """Write a labelled PNG grid of ``image`` under every degradation of ``modality``.

    Args:
        image: ``(H, W)`` slice (rows, cols), any real dtype; pass ``volume[z]``
            for a volume.  Every cell is shown in grey levels over the clean
            image's ``[min, max]``.
        out_png: output path; parent folders are created.
        modality: ``"mri"`` or ``"ct"``; rows are ``list_degradations(modality)``.
        seed: seed passed to :func:`pge_sam.degrade.apply`.
        names: optional subset (and order) of the modality's degradations.

    Returns:
        The path of the written PNG.
    """
    FigureCanvasAgg = require("matplotlib.backends.backend_agg", "bench").FigureCanvasAgg
    Figure = require("matplotlib.figure", "bench").Figure

    if modality not in MODALITIES:
        raise DegradationError(f"modality must be one of {MODALITIES}, got {modality!r}")
    image = check_image(image)
    if image.ndim != 2:
        raise DegradationError(
            f"the preview takes one 2D (H, W) image, got shape {image.shape}; pass a slice, e.g. volume[z]"
        )
    allowed = list_degradations(modality)
    rows = list(allowed if names is None else names)
    unknown = [n for n in rows if n not in allowed]
    if unknown or not rows:
        raise DegradationError(
            f"names must be a non-empty subset of the {modality} degradations {allowed}, got unknown {unknown}"
        )

    height, width = grid_shape_px(len(rows))
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    lo, hi = float(image.min()), float(image.max())
    for col in range(MAX_SEVERITY + 1):
        fig.text(
            (LABEL_PX + (col + 0.5) * CELL_PX) / width, 1 - HEADER_PX / 2 / height,
            "clean (0)" if col == 0 else f"severity {col}", ha="center", va="center", fontsize=9,
        )
    for row, name in enumerate(rows):
        top = HEADER_PX + row * CELL_PX
        fig.text(4 / width, 1 - (top + CELL_PX / 2) / height, name, ha="left", va="center", fontsize=9)
        for col in range(MAX_SEVERITY + 1):
            ax = fig.add_axes(
                (
                    (LABEL_PX + col * CELL_PX + 2) / width,
                    1 - (top + CELL_PX - 2) / height,
                    (CELL_PX - 4) / width,
                    (CELL_PX - 4) / height,
                )
            )
            ax.imshow(apply(image, name, col, seed), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_axis_off()
    out = pathlib.Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png", facecolor="white")
    return out

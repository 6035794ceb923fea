"""Propagation of one object through a volume, slice by slice, outward from the prompted slices.

The walk is independent of any model: it calls ``predict(index, prev_mask,
prev_logits)`` for each new slice, so tests can drive it with a stand-in that
returns the true mask. Stop rules: the predicted mask is smaller than
``min_area`` pixels (vanished), its IoU with the previous slice's mask is
below ``iou_threshold``, the volume ends, or a stop marker slice (a slice
whose only prompts are negative points) is reached. Gaps between prompted
slices are filled by walking forward from the lower one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from scipy import ndimage

from .errors import InputError
from .prompts import Box, Point, SlicePrompts

PROMPT_KINDS = ("box", "points", "mask")


@dataclass(frozen=True)
class PropagationConfig:
    """How each new slice is prompted from the previous one, and when to stop.

    ``prompt``: any of ``"box"`` (previous mask's bounding box, grown by
    ``box_margin``), ``"points"`` (one positive point at the previous mask's
    most interior pixel), ``"mask"`` (previous low-res logits as mask input).
    ``direction``: ``"both"``, ``"forward"`` (increasing index) or ``"backward"``.
    """

    prompt: tuple[str, ...] = ("box", "mask")
    iou_threshold: float = 0.25
    min_area: int = 8
    direction: str = "both"
    box_margin: float = 0.1
    max_slices: int | None = None

    def __post_init__(self) -> None:
        bad = [p for p in self.prompt if p not in PROMPT_KINDS]
        if bad or not self.prompt:
            raise InputError(f"propagation prompt must be a non-empty subset of {PROMPT_KINDS}, got {self.prompt}")
        if self.direction not in ("both", "forward", "backward"):
            raise InputError(f"direction must be 'both', 'forward' or 'backward', got {self.direction!r}")
        if self.min_area < 1:
            raise InputError(f"min_area must be at least 1 pixel (an empty mask always stops propagation), got {self.min_area}")
        if not 0.0 <= self.iou_threshold < 1.0:
            raise InputError(f"iou_threshold must be in [0, 1), got {self.iou_threshold}")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def prompts_from_mask(mask: np.ndarray, config: PropagationConfig) -> SlicePrompts:
    """Box and/or interior point derived from a (H, W) bool mask (mask logits are passed separately)."""
    prompts = SlicePrompts()
    rows, cols = np.nonzero(mask)
    if "box" in config.prompt:
        h, w = mask.shape
        mr = max(2, int(round(config.box_margin * (rows.max() - rows.min() + 1))))
        mc = max(2, int(round(config.box_margin * (cols.max() - cols.min() + 1))))
        prompts = prompts.with_box(Box(max(0, rows.min() - mr), max(0, cols.min() - mc),
                                       min(h - 1, rows.max() + mr), min(w - 1, cols.max() + mc)))
    if "points" in config.prompt:
        dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
        prompts = prompts.with_point(Point(int(r), int(c), True))
    return prompts


Predict = Callable[[int, np.ndarray, object], tuple[np.ndarray, object]]


def walk(n_slices: int, seeds: dict[int, np.ndarray], seed_logits: dict[int, object], stops: set[int],
         predict: Predict, config: PropagationConfig = PropagationConfig()) -> Iterator[tuple[int, np.ndarray, object]]:
    """Yield ``(index, mask, logits)`` for every newly segmented slice, in walk order.

    ``seeds``: prompted slice index -> its (H, W) bool mask; ``seed_logits``:
    their low-res logits (or absent); ``stops``: stop-marker slice indices.
    """
    order = sorted(i for i, m in seeds.items() if m.any())
    if not order:
        raise InputError("nothing to propagate: the current object has no mask on any prompted slice of this axis")
    budget = [config.max_slices if config.max_slices is not None else n_slices]
    runs: list[tuple[int, int, int]] = []  # (start seed, step, end exclusive)
    if config.direction in ("both", "forward"):
        runs += [(a, 1, b) for a, b in zip(order, order[1:]) if b - a > 1]
        runs.append((order[-1], 1, n_slices))
    if config.direction in ("both", "backward"):
        runs.append((order[0], -1, -1))
    for start, step, end in runs:
        prev_mask, prev_logits = seeds[start], seed_logits.get(start)
        for index in range(start + step, end, step):
            if index in stops or index in seeds or budget[0] <= 0:
                break
            mask, logits = predict(index, prev_mask, prev_logits)
            if mask.sum() < config.min_area or iou(mask, prev_mask) < config.iou_threshold:
                break
            budget[0] -= 1
            yield index, mask, logits
            prev_mask, prev_logits = mask, logits

"""Propagation of one object through a volume, slice by slice, outward from the prompted slices.

The walk is independent of any model: it calls ``predict(index, prev_mask,
prev_logits)`` for each new slice, so tests can drive it with a stand-in that
returns the true mask. Stop rules: the predicted mask is smaller than
``min_area`` pixels (vanished), its IoU with the previous slice's mask is
below ``iou_threshold``, the caller's ``stop`` check names a reason (the
session's: the image under the mask no longer looks like the object, see
:class:`IntensityModel`, or the model's own IoU estimate is low), the volume
ends, or a stop marker slice (a slice whose only prompts are negative points)
is reached. Gaps between prompted slices are filled by walking forward from
the lower one.
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
    ``min_content_match``: the walk stops at a slice where less than this
    fraction of the mask's pixels has an intensity the object has on its
    prompted slices (0 turns the check off). ``min_predicted_iou``: ... where
    the model's own IoU estimate of the mask is below this (0: off).
    ``trim_background``: propagated masks leave out pixels at the volume's
    background value (:func:`background_value`: padding, masked-out air) when
    the object holds (almost) none of them on its prompted slices.
    """

    prompt: tuple[str, ...] = ("box", "mask")
    iou_threshold: float = 0.25
    min_area: int = 8
    direction: str = "both"
    box_margin: float = 0.1
    max_slices: int | None = None
    min_content_match: float = 0.5
    min_predicted_iou: float = 0.0
    trim_background: bool = True

    def __post_init__(self) -> None:
        bad = [p for p in self.prompt if p not in PROMPT_KINDS]
        if bad or not self.prompt:
            raise InputError(f"propagation prompt must be a non-empty subset of {PROMPT_KINDS}, got {self.prompt}")
        if self.direction not in ("both", "forward", "backward"):
            raise InputError(f"direction must be 'both', 'forward' or 'backward', got {self.direction!r}")
        if self.min_area < 1:
            raise InputError("min_area must be at least 1 pixel (an empty mask always stops propagation), "
                             f"got {self.min_area}")
        for name in ("iou_threshold", "min_content_match", "min_predicted_iou"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class IntensityModel:
    """What the object looks like on its prompted slices: the central range of its raw intensities.

    ``low``/``high``: the ``tail`` and ``1 - tail`` quantiles of the object's
    voxels on the seed slices, widened on both sides by ``margin`` times
    their distance (noise, bias field).
    """

    low: float
    high: float

    @classmethod
    def from_seeds(cls, pixels: np.ndarray, tail: float = 0.01, margin: float = 0.1) -> "IntensityModel":
        """``pixels``: 1D raw intensities of the object's voxels on its prompted slices (not empty)."""
        lo, hi = np.quantile(pixels.astype(np.float64), [tail, 1.0 - tail])
        pad = margin * (hi - lo)
        return cls(float(lo - pad), float(hi + pad))

    def match(self, raw: np.ndarray, mask: np.ndarray) -> float:
        """Fraction of ``mask``'s pixels whose value in the raw (H, W) slice lies in the object's range."""
        values = raw[mask]
        if values.size == 0:
            return 0.0
        return float(np.count_nonzero((values >= self.low) & (values <= self.high)) / values.size)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def background_value(volume: np.ndarray) -> float | None:
    """The constant value of a volume's padding or masked-out background, or ``None`` when there is none.

    ``volume``: (Z, Y, X). It is the most frequent value on the volume's six
    faces when it covers at least half of their voxels (e.g. 0 around a
    skull-stripped MRI, -1024 outside a CT's field of view); noisy
    backgrounds have no such value.
    """
    cuts = [np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1], np.s_[:, :, 0], np.s_[:, :, -1]]
    faces = np.concatenate([np.asarray(volume[c]).ravel() for c in cuts])  # six reads: lazy volumes stay lazy
    values, counts = np.unique(faces, return_counts=True)
    best = int(np.argmax(counts))
    return float(values[best]) if counts[best] >= 0.5 * faces.size else None


def content_rules(pixels: np.ndarray, volume: np.ndarray,
                  config: PropagationConfig) -> tuple[IntensityModel | None, float | None]:
    """(what the object looks like, the background value to trim) from ``pixels``, the 1D raw intensities of the
    object on its prompted slices; either is ``None`` when ``config`` turns it off or it does not apply."""
    looks = IntensityModel.from_seeds(pixels) if pixels.size and config.min_content_match > 0 else None
    background = background_value(volume) if config.trim_background and pixels.size else None
    if background is not None and np.mean(pixels == background) >= 0.01:
        background = None  # the object itself holds background-valued voxels: keep them
    return looks, background


def content_stop(raw: np.ndarray, mask: np.ndarray, score: float, looks: IntensityModel | None,
                 config: PropagationConfig) -> str | None:
    """Why the walk stops at a slice (raw (H, W) values, predicted (H, W) bool mask, the model's IoU estimate)."""
    if config.min_predicted_iou > 0 and score < config.min_predicted_iou:
        return f"the model's IoU estimate {score:.2f} is below {config.min_predicted_iou:.2f}"
    if looks is not None:
        match = looks.match(raw, mask)
        if match < config.min_content_match:
            return (f"only {match:.0%} of the mask has the object's intensities "
                    f"({looks.low:.4g}..{looks.high:.4g}); the object ends here")
    return None


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
         predict: Predict, config: PropagationConfig = PropagationConfig(),
         stop: Callable[[int, np.ndarray], str | None] | None = None,
         reasons: list[str] | None = None) -> Iterator[tuple[int, np.ndarray, object]]:
    """Yield ``(index, mask, logits)`` for every newly segmented slice, in walk order.

    ``seeds``: prompted slice index -> its (H, W) bool mask; ``seed_logits``:
    their low-res logits (or absent); ``stops``: stop-marker slice indices;
    ``stop(index, mask)``: the caller's own check, a reason to stop or ``None``;
    ``reasons``: if given, one line per run that ended before the volume did.
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
            why = _stop_reason(mask, prev_mask, config) or (stop(index, mask) if stop is not None else None)
            if why is not None:
                if reasons is not None:
                    reasons.append(f"stopped at slice {index} ({'forward' if step > 0 else 'backward'}): {why}")
                break
            budget[0] -= 1
            yield index, mask, logits
            prev_mask, prev_logits = mask, logits


def _stop_reason(mask: np.ndarray, prev_mask: np.ndarray, config: PropagationConfig) -> str | None:
    area = int(mask.sum())
    if area < config.min_area:
        return f"the mask vanished ({area} pixels)"
    overlap = iou(mask, prev_mask)
    if overlap < config.iou_threshold:
        return f"the mask jumped (IoU {overlap:.2f} with the previous slice)"
    return None

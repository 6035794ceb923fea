"""Segmentation metrics and the summary of a per-click IoU curve.

Masks are bool ``(H, W)`` arrays (any equal shapes work). By convention two
empty masks agree perfectly (IoU = Dice = 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError

SUMMARY_CLICKS = (1, 3, 5)


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise InputError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    return pred, gt


def iou(pred, gt) -> float:
    """Intersection over union |P & G| / |P | G| of two bool masks of the same shape (1.0 if both are empty)."""
    pred, gt = _pair(pred, gt)
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt) / union


def dice(pred, gt) -> float:
    """Dice coefficient 2|P & G| / (|P| + |G|) of two bool masks of the same shape (1.0 if both are empty)."""
    pred, gt = _pair(pred, gt)
    total = np.count_nonzero(pred) + np.count_nonzero(gt)
    return 1.0 if total == 0 else 2.0 * np.count_nonzero(pred & gt) / total


def dice_from_iou(value: float) -> float:
    """Dice of a mask pair from its IoU J: exactly 2J / (1 + J) (both count the same pixel sets)."""
    return 2.0 * value / (1.0 + value)


def noc(ious: Sequence[float], threshold: float, max_clicks: int = 20) -> int:
    """Number of clicks needed to reach IoU >= ``threshold``.

    ``ious[k]`` is the IoU after click ``k + 1``; only the first
    ``max_clicks`` entries count. Returns ``max_clicks`` when the threshold is
    never reached (the NoC convention of RITM / SimpleClick).
    """
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"NoC threshold must be in (0, 1] (got {threshold})")
    if max_clicks < 1:
        raise InputError(f"max_clicks must be at least 1 (got {max_clicks})")
    for k, value in enumerate(list(ious)[:max_clicks]):
        if value >= threshold:
            return k + 1
    return max_clicks


@dataclass(frozen=True)
class CurveSummary:
    """Summary of one target's IoU-vs-clicks curve. ``iou_k`` is NaN when the curve has fewer than k clicks."""

    iou_1: float
    iou_3: float
    iou_5: float
    noc85: int
    noc90: int
    dice5: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize_curve(ious: Sequence[float], max_clicks: int = 20) -> CurveSummary:
    """IoU@1/3/5, NoC@85, NoC@90 and Dice@5 of a per-click IoU curve (``ious[k]`` after click ``k + 1``).

    Dice@5 follows from IoU@5 exactly (:func:`dice_from_iou`).
    """
    curve = [float(v) for v in ious]
    if not curve:
        raise InputError("the IoU curve is empty; run at least one click")
    if any(not 0.0 <= v <= 1.0 for v in curve):
        raise InputError("IoU values must lie in [0, 1]")
    at = {k: (curve[k - 1] if k <= len(curve) else float("nan")) for k in SUMMARY_CLICKS}
    return CurveSummary(
        iou_1=at[1],
        iou_3=at[3],
        iou_5=at[5],
        noc85=noc(curve, 0.85, max_clicks),
        noc90=noc(curve, 0.90, max_clicks),
        dice5=dice_from_iou(at[5]),
    )

"""Simulated interactive rounds for training: first click or box, then clicks in error regions.

All coordinates produced here are in the model's input frame (x = col, y = row).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F


def first_click(gt: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A random pixel in the interior of ``gt`` (H, W) bool (distance >= 30 % of the max), as (x, y)."""
    dist = ndimage.distance_transform_edt(np.pad(gt, 1))[1:-1, 1:-1]
    rows, cols = np.nonzero(dist >= max(1.0, 0.3 * dist.max()))
    if rows.size == 0:
        rows, cols = np.nonzero(gt)
    i = rng.integers(rows.size)
    return float(cols[i]), float(rows[i])


def jittered_box(gt: np.ndarray, rng: np.random.Generator, jitter: float = 0.1) -> list[float]:
    """GT bounding box with each side moved by up to ``jitter`` of the box size, as x0, y0, x1, y1."""
    rows, cols = np.nonzero(gt)
    h, w = gt.shape
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    dr, dc = jitter * (r1 - r0 + 1), jitter * (c1 - c0 + 1)
    n = rng.uniform(-1, 1, 4)
    x0 = np.clip(c0 + n[0] * dc, 0, w - 1)
    y0 = np.clip(r0 + n[1] * dr, 0, h - 1)
    x1 = np.clip(c1 + n[2] * dc, x0 + 1, w - 1)
    y1 = np.clip(r1 + n[3] * dr, y0 + 1, h - 1)
    return [float(x0), float(y0), float(x1), float(y1)]


def corrective_clicks(pred: torch.Tensor, gt: torch.Tensor, generator: torch.Generator,
                      center_prob: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One click per sample in its errors (false negatives -> positive, false positives -> negative).

    ``pred``/``gt``: (B, H, W) bool. Each sample gets, with probability
    ``center_prob``, the click a careful user (and the benchmark) gives: the
    point farthest from the boundary of the largest error component
    (:func:`pge_sam.evaluate.clicks.next_click`); otherwise a click drawn
    uniformly from the larger error set's pixels that survive a 3x3 erosion
    (or from all its pixels if none do), as in SAM's training. Returns coords
    (B, 1, 2) float (x, y) and labels (B, 1) int64. A sample with no error
    gets a positive click inside the GT. All draws come from ``generator``.
    """
    fn, fp = gt & ~pred, pred & ~gt
    use_fn = fn.flatten(1).sum(1) >= fp.flatten(1).sum(1)
    err = torch.where(use_fn[:, None, None], fn, fp)
    eroded = -F.max_pool2d(-err[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0.5
    choose = torch.where(eroded.flatten(1).any(1)[:, None, None], eroded, err)
    choose = torch.where(choose.flatten(1).any(1)[:, None, None], choose, gt)
    weights = choose.flatten(1).float() + 1e-12
    idx = torch.multinomial(weights, 1, generator=generator)[:, 0]
    w = gt.shape[-1]
    coords = torch.stack([(idx % w).float(), (idx // w).float()], dim=-1)[:, None]
    labels = torch.where(use_fn | ~err.flatten(1).any(1), 1, 0).long()[:, None]
    centred = torch.rand(gt.shape[0], generator=generator, device=generator.device) < center_prob
    if centred.any():
        from ..evaluate.clicks import next_click

        gt_np, pred_np = gt.cpu().numpy(), pred.cpu().numpy()
        for i in torch.nonzero(centred)[:, 0].tolist():
            click = next_click(gt_np[i], pred_np[i]) if gt_np[i].any() else None
            if click is not None:
                coords[i, 0, 0], coords[i, 0, 1] = float(click.col), float(click.row)
                labels[i, 0] = int(click.positive)
    return coords, labels

"""One click episode: the benchmark's protocol (and the training validation's) on one target.

Kept apart from :mod:`.bench` so that code needing only the episode (training
validation, tuning scripts) does not import the benchmark runner and its report.
"""

from __future__ import annotations

import time

import numpy as np

from .baselines import ClickPredictor
from .clicks import next_click
from .metrics import iou


def click_ious(predictor: ClickPredictor, gt: np.ndarray, max_clicks: int, check=None,
               box: np.ndarray | None = None) -> tuple[list[float], float]:
    """IoU after each of ``max_clicks`` interactions on ``gt`` (H, W) bool.

    ``predictor`` must be reset on its image. With ``box`` (inclusive
    ``(row0, col0, row1, col1)``) interaction 1 is the box alone and every
    later ``predict`` gets it too; the other interactions are protocol clicks
    (:func:`next_click`, never twice on one pixel). When nothing is left to
    click the last IoU repeats to ``max_clicks`` values. ``check``: optional
    function applied to every predicted mask before scoring. Returns the IoUs
    and the seconds spent inside ``predictor.predict``.
    """
    points: list[tuple[int, int]] = []
    labels: list[int] = []
    ious: list[float] = []
    pred, seconds = None, 0.0

    def call() -> np.ndarray:
        nonlocal seconds
        start = time.perf_counter()
        out = predictor.predict(np.array(points, dtype=np.int64).reshape(-1, 2), np.array(labels, dtype=np.int64), box)
        seconds += time.perf_counter() - start
        return check(out) if check is not None else out

    if box is not None:
        pred = call()
        ious.append(iou(pred, gt))
    while len(ious) < max_clicks:
        click = next_click(gt, pred, points)
        if click is None:  # perfect prediction (or every error pixel clicked): nothing left to correct
            ious.extend([ious[-1] if ious else 0.0] * (max_clicks - len(ious)))
            break
        points.append((click.row, click.col))
        labels.append(1 if click.positive else 0)
        pred = call()
        ious.append(iou(pred, gt))
    return ious, seconds

"""Recovery: the share of a base model's degradation cost that a method wins back (issue 17's criterion).

For a base (e.g. ``sam_tiny``), a method (e.g. ``pge_sam_tiny``) and a metric, every degraded row
(modality, degradation, severity >= ``min_severity``, target) that both have is paired with the base's clean
row of the same target:

* cost = base clean - base degraded, gain = method degraded - base degraded (both sign-flipped for
  NoC, lower is better, so a positive cost is always a loss and a positive gain always a win);
* rows enter when the cost is at least ``threshold`` (:data:`THRESHOLDS`: 0.03 for IoU metrics, 0.5
  clicks for NoC, whose values are whole clicks, so this means "the degradation cost the base at least
  one click"); ``select="condition"`` keeps instead every row of the conditions (modality, degradation,
  severity) whose *mean* cost reaches it;
* recovery = sum(gain) / sum(cost) over the kept rows, i.e. mean gain / mean cost. A ratio of means,
  not a mean of per-row ratios: a row whose cost sits at the threshold would turn a small gain into a
  large ratio, and one such row would dominate; the ratio of means weighs rows by how much there was to
  win back and is stable. 1 = everything recovered, 0 = no better than the base, < 0 worse.

Caveat: ``select="row"`` keeps rows where the base did *unusually* badly, so a method that merely
differs from the base target by target shows some positive recovery (regression to the mean);
``select="condition"`` is less exposed to it. Report both when the difference matters.

Interval: 95 % percentile bootstrap resampling targets, as :func:`pge_sam.evaluate.paired._paired` does
(per-target sums, targets drawn with replacement, ``numpy.random.default_rng(seed)``: same rows, same
interval); here the ratio of the drawn sums. Rows may carry a ``"run"`` key (the seed of a pooled run):
rows pair within a run, and a target drawn by several runs is one cluster (its clean rows coincide).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .paired import _ordered

LOWER_IS_BETTER = ("noc85", "noc90")
THRESHOLDS = {"noc85": 0.5, "noc90": 0.5}
DEFAULT_THRESHOLD = 0.03
RECOVERY_METRICS = (("miou", "mIoU 1-20"), ("iou_1", "IoU@1"), ("box_iou", "box IoU"), ("noc85", "NoC@85"))


@dataclass(frozen=True)
class Recovery:
    """Recovery of ``method`` over ``base`` on ``key`` in one ``group`` ("pooled", "severity 2", a family).

    ``n`` kept rows of ``targets`` targets (``skipped`` matched rows below the threshold); ``cost`` and
    ``gain`` are means over the kept rows (sign-adjusted: positive = base lost / method won);
    ``recovery = gain / cost`` with its target-resampled 95 % interval ``(low, high)``. With ``n == 0``
    (every matched row below the threshold) the figures are NaN.
    """

    group: str
    key: str
    n: int
    targets: int
    skipped: int
    cost: float
    gain: float
    recovery: float
    low: float
    high: float


def family(degradation: str) -> str:
    """The family of a degradation: ``pge_sam.degrade`` records only general/mri/ct, so its own name."""
    return degradation


def matched(rows: list[dict], base: str, method: str, key: str, min_severity: int = 2,
            modality: str | None = None) -> list[tuple]:
    """``(cost, gain, condition, cluster, severity, degradation)`` per degraded row of both ``base`` and
    ``method`` with a clean ``base`` row of the same run and target (rows with a NaN are left out)."""
    sign = -1.0 if key in LOWER_IS_BETTER else 1.0
    mine = [r for r in rows if modality is None or r["modality"] == modality]
    clean = {(r.get("run"), r["modality"], r["target"]): r.get(key, np.nan)
             for r in mine if r["predictor"] == base and r["severity"] == 0}
    by_key: dict[tuple, dict[str, float]] = {}
    for r in mine:
        if r["predictor"] in (base, method) and r["severity"] >= max(min_severity, 1):
            k = (r.get("run"), r["modality"], r["degradation"], r["severity"], r["target"])
            by_key.setdefault(k, {})[r["predictor"]] = r.get(key, np.nan)
    out = []
    for (run, mod, degradation, severity, target), v in by_key.items():
        if (run, mod, target) not in clean or base not in v or method not in v:
            continue
        cost, gain = sign * (clean[(run, mod, target)] - v[base]), sign * (v[method] - v[base])
        if not (np.isnan(cost) or np.isnan(gain)):
            out.append((cost, gain, (mod, degradation, severity), (mod, target), severity, degradation))
    return out


def _recovery(group: str, key: str, items: list[tuple], threshold: float, select: str,
              resamples: int, seed: int) -> Recovery | None:
    if not items:
        return None
    if select == "row":
        keep = [it[0] >= threshold for it in items]
    elif select == "condition":
        costs: dict[tuple, list[float]] = {}
        for it in items:
            costs.setdefault(it[2], []).append(it[0])
        keep = [np.mean(costs[it[2]]) >= threshold for it in items]
    else:
        raise ValueError(f"select must be 'row' or 'condition', got {select!r}")
    kept = [it for it, k in zip(items, keep) if k]
    if not kept:
        nan = float("nan")
        return Recovery(group, key, 0, 0, len(items), nan, nan, nan, nan, nan)
    cost, gain = np.array([it[0] for it in kept]), np.array([it[1] for it in kept])
    _, cluster = np.unique(np.array([str(it[3]) for it in kept]), return_inverse=True)
    cost_sums, gain_sums = np.bincount(cluster, weights=cost), np.bincount(cluster, weights=gain)
    drawn = np.random.default_rng(seed).integers(len(cost_sums), size=(resamples, len(cost_sums)))
    drawn_cost = cost_sums[drawn].sum(1)
    ratios = np.where(drawn_cost > 0, gain_sums[drawn].sum(1) / np.where(drawn_cost > 0, drawn_cost, 1.0), np.nan)
    low, high = np.nanpercentile(ratios, [2.5, 97.5]) if not np.isnan(ratios).all() else (np.nan, np.nan)
    total = cost.sum()
    return Recovery(group, key, len(kept), len(cost_sums), len(items) - len(kept), float(cost.mean()),
                    float(gain.mean()), float(gain.sum() / total) if total > 0 else float("nan"),
                    float(low), float(high))


def recovery(rows: list[dict], base: str, method: str, key: str = "miou", threshold: float | None = None,
             min_severity: int = 2, modality: str | None = None, select: str = "row", family=family,
             resamples: int = 2000, seed: int = 0) -> list[Recovery]:
    """Recovery of ``method`` over ``base`` on ``key``: pooled, then per severity, then per family.

    ``threshold``: ``None`` for :data:`THRESHOLDS` (0.03, or 0.5 clicks for NoC); ``family``: degradation
    name -> family (default :func:`family`). Groups without any matched row are left out, so rows
    without a matched pair give ``[]``; a group whose rows are all below the threshold gives a record
    with ``n == 0``.
    """
    threshold = THRESHOLDS.get(key, DEFAULT_THRESHOLD) if threshold is None else threshold
    items = matched(rows, base, method, key, min_severity, modality)
    groups = [("pooled", items)]
    groups += [(f"severity {s}", [it for it in items if it[4] == s]) for s in sorted({it[4] for it in items})]
    families = _ordered(family(it[5]) for it in items)
    groups += [(f, [it for it in items if family(it[5]) == f]) for f in families]
    out = [_recovery(name, key, part, threshold, select, resamples, seed) for name, part in groups]
    return [r for r in out if r is not None]

"""Paired statistics over DM-Seg-mini result rows, with 95 % bootstrap intervals.

A benchmark with a few targets per condition has a large spread, so margins
are reported as means of *paired* differences (same target, same condition)
with an interval, never as differences of two means. Two intervals: one that
resamples rows, and one that resamples targets (a cluster bootstrap: all
conditions of a drawn target come together). Rows of one target under
different degradations are correlated, so the second is the honest one when
a target appears in many rows; the first is kept for comparison with earlier
reports.

* :func:`paired_difference`: predictor ``b`` minus predictor ``a`` on the same
  rows (modality, degradation, severity, target);
* :func:`degradation_cost`: one predictor's degraded row minus its clean row
  of the same target (severity >= 2). It says how much room a degradation
  leaves: a restoration method cannot win back more than the degradation
  cost its base in the first place.

Rows are the dicts of :func:`pge_sam.evaluate.report.load_results`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COST_METRICS = (("miou", "mIoU"), ("iou_1", "IoU@1"), ("iou_5", "IoU@5"), ("box_iou", "box IoU"))


@dataclass(frozen=True)
class Paired:
    """Mean of ``b - a`` over ``n`` matched rows of ``targets`` targets, with 95 % bootstrap intervals.

    ``(low, high)`` resamples rows; ``(target_low, target_high)`` resamples targets.
    """

    n: int
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    targets: int = 0
    target_low: float = float("nan")
    target_high: float = float("nan")


def _ordered(values) -> list:
    return list(dict.fromkeys(values))


def _paired(pairs: list[tuple[float, float]], groups: list, resamples: int, seed: int) -> Paired | None:
    """Statistics of ``pairs`` (n, 2) as ``(a, b)`` with one target id per pair in ``groups``.

    Rows with a NaN are dropped; ``None`` when none is left.
    """
    array = np.array(pairs, dtype=float).reshape(-1, 2)
    ok = ~np.isnan(array).any(1)
    array = array[ok]
    if not len(array):
        return None
    d = array[:, 1] - array[:, 0]
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(len(d), size=(resamples, len(d)))].mean(1)
    low, high = np.percentile(boot, [2.5, 97.5])
    _, group = np.unique(np.array([str(g) for g, k in zip(groups, ok) if k]), return_inverse=True)
    sums, counts = np.bincount(group, weights=d), np.bincount(group).astype(float)
    drawn = rng.integers(len(sums), size=(resamples, len(sums)))
    target_low, target_high = np.percentile(sums[drawn].sum(1) / counts[drawn].sum(1), [2.5, 97.5])
    return Paired(len(d), float(array[:, 0].mean()), float(array[:, 1].mean()), float(d.mean()),
                  float(low), float(high), len(sums), float(target_low), float(target_high))


def paired_difference(rows: list[dict], a: str, b: str, key: str = "iou_5", modality: str | None = None,
                      degraded: bool = False, resamples: int = 2000, seed: int = 0) -> Paired | None:
    """Predictor ``b`` minus predictor ``a`` on the rows both have (same modality, degradation, severity, target).

    ``degraded``: severity >= 2 rows, else clean rows; ``modality`` ``None`` pools both. The
    intervals are the 2.5/97.5 percentiles of ``resamples`` bootstrap means of the paired
    differences, resampling rows and resampling targets (``numpy.random.default_rng(seed)``:
    same rows, same intervals). ``None`` when no row matches.
    """
    def keep(r):
        return ((modality is None or r["modality"] == modality)
                and ((r["severity"] >= 2) if degraded else (r["severity"] == 0)))

    by_key: dict[tuple, dict[str, float]] = {}
    for r in rows:
        if r["predictor"] in (a, b) and keep(r):
            by_key.setdefault((r["modality"], r["degradation"], r["severity"], r["target"]), {})[r["predictor"]] = \
                r.get(key, np.nan)
    matched = [(k, v) for k, v in by_key.items() if a in v and b in v]
    return _paired([(v[a], v[b]) for _, v in matched], [(k[0], k[3]) for k, _ in matched], resamples, seed)


def degradation_cost(rows: list[dict], predictor: str, key: str = "iou_5", modality: str | None = None,
                     resamples: int = 2000, seed: int = 0) -> Paired | None:
    """``predictor``'s degraded minus clean ``key`` on the same target (severity >= 2 rows).

    Each degraded row (modality, degradation, severity, target) pairs with the clean row of
    the same modality and target, so ``a`` is clean and ``b`` degraded; a negative ``diff``
    is a loss. ``modality`` ``None`` pools both. ``None`` when the rows have no clean
    counterpart (e.g. a run with ``--severities 2,3`` only).
    """
    mine = [r for r in rows if r["predictor"] == predictor and (modality is None or r["modality"] == modality)]
    clean = {(r["modality"], r["target"]): r.get(key, np.nan) for r in mine if r["severity"] == 0}
    matched = [r for r in mine if r["severity"] >= 2 and (r["modality"], r["target"]) in clean]
    pairs = [(clean[(r["modality"], r["target"])], r.get(key, np.nan)) for r in matched]
    return _paired(pairs, [(r["modality"], r["target"]) for r in matched], resamples, seed)


def paired_markdown(rows: list[dict]) -> list[str]:
    """The summary's paired-difference section (mIoU, or IoU@5 for older results; every two predictors, clean
    and severity >= 2)."""
    predictors = _ordered(r["predictor"] for r in rows)
    key = "miou" if rows and "miou" in rows[0] else "iou_5"
    note = ("Intervals resampling rows, and resampling targets (all conditions of a target together; "
            "the honest one when a target fills many rows).")
    lines = ["", f"## Paired differences ({'mIoU' if key == 'miou' else 'IoU@5'}, b - a on the same targets and "
             "conditions, 95 % bootstrap intervals)", "",
             note, "",
             "| modality | condition | a | b | n | a | b | b - a | interval (rows) | targets | interval (targets) |",
             "|" + "---|" * 11]
    for modality in [*_ordered(r["modality"] for r in rows), None]:
        for degraded in (False, True):
            for i, a in enumerate(predictors):
                for b in predictors[i + 1:]:
                    p = paired_difference(rows, a, b, key, modality=modality, degraded=degraded)
                    if p is not None:
                        lines.append(f"| {modality or 'all'} | {'severity >= 2' if degraded else 'clean'} | "
                                     f"{a} | {b} | "
                                     f"{p.n} | {p.mean_a:.3f} | {p.mean_b:.3f} | {p.diff:+.3f} | "
                                     f"{p.low:+.3f} .. {p.high:+.3f} | {p.targets} | "
                                     f"{p.target_low:+.3f} .. {p.target_high:+.3f} |")
    return lines if len(lines) > 6 else []


def cost_markdown(rows: list[dict]) -> list[str]:
    """The summary's degradation-cost section: per modality and predictor, degraded - clean on the same targets."""
    predictors = _ordered(r["predictor"] for r in rows)
    head = " | ".join(f"{label} clean | {label} degraded - clean" for _, label in COST_METRICS)
    title = "## Cost of degradation (severity >= 2 minus clean, same predictor and target, 95 % bootstrap interval)"
    note = ("A method that restores degraded features can win back at most what the degradation cost; "
            "a cost near zero leaves no room for a margin on that metric.")
    lines = ["", title, "", note, "",
             f"| modality | predictor | n | {head} |", "|" + "---|" * (3 + 2 * len(COST_METRICS))]
    metrics = [(k, label) for k, label in COST_METRICS if rows and k in rows[0]]
    head = " | ".join(f"{label} clean | {label} degraded - clean" for _, label in metrics)
    lines[5], lines[6] = f"| modality | predictor | n | {head} |", "|" + "---|" * (3 + 2 * len(metrics))
    for modality in _ordered(r["modality"] for r in rows):
        for predictor in predictors:
            stats = [degradation_cost(rows, predictor, key, modality) for key, _ in metrics]
            if stats[0] is None:
                continue
            cells = " | ".join("- | -" if p is None
                               else f"{p.mean_a:.3f} | {p.diff:+.3f} ({p.low:+.3f} .. {p.high:+.3f})"
                               for p in stats)
            lines.append(f"| {modality} | {predictor} | {stats[0].n} | {cells} |")
    return lines if len(lines) > 6 else []

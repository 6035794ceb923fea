"""Recovery of a base's degradation cost (issue 17): known answers, threshold, NoC signs, a seeded interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pge_sam.evaluate.recovery import Recovery, matched, recovery


def _row(predictor, severity, target, value, degradation=None, key="miou", modality="mri", **extra):
    degradation = degradation or ("clean" if severity == 0 else "gaussian_noise")
    return {"modality": modality, "degradation": degradation, "severity": severity, "target": target,
            "predictor": predictor, key: float(value), **extra}


def _case(clean, base_deg, method_deg, severity=2, degradation="gaussian_noise", key="miou", start=0, **extra):
    rows = []
    for i, (c, b, m) in enumerate(zip(clean, base_deg, method_deg)):
        t = f"t{start + i}"
        rows += [_row("sam", 0, t, c, key=key, **extra), _row("sam", severity, t, b, degradation, key, **extra),
                 _row("pge", severity, t, m, degradation, key, **extra)]
    return rows


def _group(records, name) -> Recovery:
    return next(r for r in records if r.group == name)


def test_a_method_recovering_half_of_the_cost_gives_one_half():
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.7, 0.9, 20)
    cost = rng.uniform(0.1, 0.3, 20)
    rows = _case(clean, clean - cost, clean - cost / 2)
    pooled = recovery(rows, "sam", "pge")[0]
    assert pooled.group == "pooled" and pooled.n == 20 and pooled.targets == 20 and pooled.skipped == 0
    assert pooled.recovery == pytest.approx(0.5)
    assert pooled.cost == pytest.approx(cost.mean()) and pooled.gain == pytest.approx(cost.mean() / 2)
    assert pooled.low == pytest.approx(0.5) and pooled.high == pytest.approx(0.5)  # exact on every draw


def test_rows_below_the_threshold_are_ignored_and_groups_split_by_severity_and_family():
    rows = _case([0.8] * 4, [0.6] * 4, [0.7] * 4, severity=2, degradation="gaussian_noise")  # cost .2, gain .1
    rows += _case([0.8] * 4, [0.6] * 4, [0.8] * 4, severity=3, degradation="jpeg", start=10)  # cost .2, gain .2
    rows += _case([0.8] * 3, [0.79] * 3, [0.2] * 3, severity=3, degradation="jpeg", start=20)  # cost .01: out
    records = recovery(rows, "sam", "pge")
    assert [r.group for r in records] == ["pooled", "severity 2", "severity 3", "gaussian_noise", "jpeg"]
    pooled = records[0]
    assert pooled.n == 8 and pooled.skipped == 3 and pooled.recovery == pytest.approx(0.75)
    assert _group(records, "severity 2").recovery == pytest.approx(0.5)
    assert _group(records, "jpeg").recovery == pytest.approx(1.0) and _group(records, "jpeg").skipped == 3
    coarse = recovery(rows, "sam", "pge", family=lambda name: "all")
    assert _group(coarse, "all").recovery == pytest.approx(0.75)
    # condition selection: jpeg severity 3 has mean cost (4 * .2 + 3 * .01) / 7 >= 0.03, so all its rows count
    cond = recovery(rows, "sam", "pge", select="condition")[0]
    assert cond.n == 11 and cond.skipped == 0
    assert cond.recovery == pytest.approx((0.4 + 0.8 - 3 * 0.59) / (1.6 + 0.03))


def test_noc_lower_is_better_and_its_threshold_is_half_a_click():
    # clean 2 clicks, degraded base 6 (cost 4), method 3 (gain 3): recovery 0.75; a 0-click cost row is out
    rows = _case([2, 2, 5], [6, 6, 5], [3, 3, 1], key="noc85")
    pooled = recovery(rows, "sam", "pge", "noc85")[0]
    assert pooled.n == 2 and pooled.skipped == 1 and pooled.cost == pytest.approx(4.0)
    assert pooled.gain == pytest.approx(3.0) and pooled.recovery == pytest.approx(0.75)
    worse = recovery(_case([2, 2], [6, 6], [8, 8], key="noc85"), "sam", "pge", "noc85")[0]
    assert worse.recovery == pytest.approx(-0.5)


def test_the_interval_contains_the_estimate_and_is_deterministic():
    rng = np.random.default_rng(5)
    clean = rng.uniform(0.6, 0.95, 30)
    base = clean - rng.uniform(0.05, 0.4, 30)
    rows = _case(clean, base, base + rng.normal(0.05, 0.05, 30))
    first = recovery(rows, "sam", "pge")
    assert first == recovery(rows, "sam", "pge")  # same rows, same interval
    pooled = first[0]
    assert pooled.low < pooled.recovery < pooled.high and pooled.high - pooled.low < 1


def test_runs_pair_within_a_run_and_a_target_is_one_cluster_across_runs():
    rows = [dict(r, run=0) for r in _case([0.8, 0.8], [0.6, 0.6], [0.7, 0.7])]
    rows += [dict(r, run=1) for r in _case([0.8, 0.8], [0.4, 0.4], [0.8, 0.8], severity=3)]
    pooled = recovery(rows, "sam", "pge")[0]
    assert pooled.n == 4 and pooled.targets == 2
    assert pooled.recovery == pytest.approx((0.2 + 0.8) / (0.4 + 0.8))
    run0_clean_only = [r for r in rows if not (r.get("run") == 1 and r["severity"] == 0)]
    assert recovery(run0_clean_only, "sam", "pge")[0].n == 2  # run 1's degraded rows have no clean row


def test_empty_selections_do_not_crash():
    assert recovery([], "sam", "pge") == []
    rows = _case([0.8, 0.8], [0.6, 0.6], [0.7, 0.7])
    assert recovery(rows, "sam", "other") == []  # no method rows: nothing matched
    assert recovery(rows, "sam", "pge", modality="ct") == []
    assert recovery([r for r in rows if r["severity"] != 0], "sam", "pge") == []  # no clean rows
    assert matched(rows, "sam", "pge", "iou_1") == []  # metric absent (NaN)
    none_kept = recovery(_case([0.8, 0.8], [0.79, 0.79], [0.5, 0.5]), "sam", "pge")[0]
    assert none_kept.n == 0 and none_kept.skipped == 2 and math.isnan(none_kept.recovery)
    with pytest.raises(ValueError, match="select"):
        recovery(rows, "sam", "pge", select="median")

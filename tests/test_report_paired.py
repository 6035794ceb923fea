"""Paired differences in the benchmark summary: matched rows only, exact on constant shifts, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from pge_sam.evaluate.report import paired_difference, summary_markdown


def _rows(values, predictor, severity, modality="mri", start=0):
    return [{"modality": modality, "degradation": "clean" if severity == 0 else "gaussian_noise",
             "severity": severity, "target": f"t{start + i}", "predictor": predictor, "iou_5": v,
             "iou_1": v, "noc85": 20.0, "box_iou": v} for i, v in enumerate(values)]


def test_a_constant_shift_has_a_zero_width_interval():
    base = np.linspace(0.2, 0.8, 12)
    rows = _rows(base, "sam", 3) + _rows(base + 0.05, "pge", 3)
    p = paired_difference(rows, "sam", "pge", degraded=True)
    assert p.n == 12 and p.diff == pytest.approx(0.05)
    assert p.low == pytest.approx(0.05) and p.high == pytest.approx(0.05)
    assert p.targets == 12 and p.target_low == pytest.approx(0.05) and p.target_high == pytest.approx(0.05)
    assert paired_difference(rows, "sam", "pge", degraded=False) is None  # no clean rows


def test_only_matched_rows_count_and_the_interval_covers_the_mean():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, 40)
    b = a + rng.normal(0.02, 0.1, 40)
    rows = _rows(a, "sam", 2) + _rows(b, "pge", 2) + _rows([0.9] * 5, "pge", 2, start=100)  # unmatched targets
    rows += _rows(a, "sam", 0) + _rows(a, "pge", 0, modality="ct")  # clean rows in different modalities
    p = paired_difference(rows, "sam", "pge", degraded=True)
    assert p.n == 40 and p.diff == pytest.approx(float(np.mean(b - a)))
    assert p.low < p.diff < p.high and p.high - p.low < 0.1
    assert p == paired_difference(rows, "sam", "pge", degraded=True)  # seeded bootstrap
    assert paired_difference(rows, "sam", "pge", degraded=False) is None  # mri vs ct: nothing matches
    assert "| mri | severity >= 2 | sam | pge | 40 |" in summary_markdown(rows)


def test_pooled_report_pairs_rows_within_each_run(tmp_path):
    import csv

    from pge_sam.cli import main

    for i, shift in enumerate((0.1, 0.3)):
        folder = tmp_path / f"seed{i}"
        folder.mkdir()
        rows = _rows([0.2, 0.4], "sam", 3) + _rows([0.2 + shift, 0.4 + shift], "pge", 3)
        with open(folder / "results.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, ["modality", "degradation", "severity", "target", "predictor", "iou_1",
                                         "iou_5", "noc85", "box_iou"])
            writer.writeheader()
            writer.writerows(rows)
    assert main(["bench", "--pool", str(tmp_path / "seed0"), str(tmp_path / "seed1"), "--out",
                 str(tmp_path / "pooled")]) == 0
    summary = (tmp_path / "pooled" / "summary.md").read_text(encoding="utf-8")
    assert "| mri | severity >= 2 | sam | pge | 4 | 0.300 | 0.500 | +0.200 |" in summary


def test_pooling_runs_with_different_click_budgets_is_refused(tmp_path):
    import csv

    from pge_sam.errors import InputError
    from pge_sam.evaluate.report import write_pooled_report

    for name, columns in (("twenty", ["iou_1", "iou_5", "iou_20"]), ("five", ["iou_1", "iou_5"])):
        (tmp_path / name).mkdir()
        with open(tmp_path / name / "results.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, ["modality", "degradation", "severity", "target", "predictor", *columns,
                                         "noc85", "box_iou"], restval="0.5")
            writer.writeheader()
            writer.writerows(_rows([0.2, 0.4], "sam", 3))
    with pytest.raises(InputError, match="different click budgets"):
        write_pooled_report([tmp_path / "twenty", tmp_path / "five"], tmp_path / "pooled")
    assert not (tmp_path / "pooled").exists()


def test_degradation_cost_pairs_each_degraded_row_with_the_clean_row_of_its_target():
    from pge_sam.evaluate.paired import degradation_cost

    clean = np.linspace(0.5, 0.9, 10)
    rows = _rows(clean, "sam", 0) + _rows(clean - 0.2, "sam", 2) + _rows(clean - 0.1, "sam", 3)
    rows += _rows(clean, "pge", 0) + _rows(clean, "pge", 3)  # pge: no cost at all
    rows += _rows([0.0] * 3, "sam", 3, start=50)  # degraded targets without a clean row are left out
    rows += _rows([0.1] * 10, "sam", 1)  # severity 1 is not counted
    cost = degradation_cost(rows, "sam")
    assert cost.n == 20 and cost.mean_a == pytest.approx(clean.mean())
    assert cost.diff == pytest.approx(-0.15) and cost.low < -0.15 < cost.high
    p = degradation_cost(rows, "pge")
    assert p.diff == 0.0 and p.low == p.high == 0.0
    assert degradation_cost(rows, "sam", modality="ct") is None
    assert degradation_cost(_rows(clean, "sam", 3), "sam") is None  # a run without clean rows
    text = summary_markdown(rows)
    assert "## Cost of degradation" in text
    line = next(x for x in text.splitlines() if x.startswith("| mri | sam | 20 |"))
    assert "-0.150" in line and line.count("|") == 3 + 2 * 3 + 1


def test_a_run_with_fewer_than_five_clicks_summarises_without_iou5():
    rows = [{k: v for k, v in r.items() if k != "iou_5"}
            for r in _rows([0.4, 0.6], "sam", 0) + _rows([0.3, 0.5], "sam", 2)
            + _rows([0.5, 0.7], "pge", 0) + _rows([0.4, 0.6], "pge", 2)]
    text = summary_markdown(rows)  # no KeyError; IoU@5 cells are "-"
    assert "## Cost of degradation" in text and "| mri | sam | 2 | 0.500 | -0.100" in text


def test_resampling_targets_widens_the_interval_when_a_target_fills_many_rows():
    """4 targets x 30 degraded conditions, the difference fixed per target: rows look like 120 samples, they are 4."""
    rows = []
    for t, shift in enumerate([-0.1, 0.0, 0.1, 0.2]):
        for c in range(30):
            for predictor, value in (("sam", 0.5), ("pge", 0.5 + shift)):
                rows.append({"modality": "ct", "degradation": f"d{c}", "severity": 2, "target": f"t{t}",
                             "predictor": predictor, "iou_5": value})
    p = paired_difference(rows, "sam", "pge", degraded=True)
    assert p.n == 120 and p.targets == 4 and p.diff == pytest.approx(0.05)
    assert p.high - p.low < 0.05 < p.target_high - p.target_low
    assert p.target_low <= -0.05 and p.target_high >= 0.15
    text = summary_markdown(rows)
    assert "| ct | severity >= 2 | sam | pge | 120 |" in text and "| 4 |" in text


def test_sanity_checks_flag_a_falling_curve_and_degraded_beating_clean():
    from pge_sam.evaluate.report import best_classical, sanity_markdown

    def row(predictor, target, severity, curve, degradation="clean"):
        r = {"modality": "mri", "degradation": degradation, "severity": severity, "target": target,
             "predictor": predictor, **{f"iou_{k + 1}": v for k, v in enumerate(curve)}}
        r["miou"] = sum(curve) / len(curve)
        return r

    rising = [0.2 + 0.03 * k for k in range(20)]
    falling = rising[:5] + [0.1] * 15
    rows = [row("region_grow", "a", 0, rising), row("region_grow", "a", 3, rising[::-1][:1] * 20, "gaussian_noise"),
            row("watershed", "a", 0, falling)]
    assert best_classical(rows, "mri") == "region_grow"
    text = "\n".join(sanity_markdown(rows))
    assert "PASS: mri: region_grow's mean IoU rises" in text
    assert "FAIL: mri: region_grow clean mIoU" in text  # the degraded row scores higher than clean
    rows[0] = row("region_grow", "a", 0, falling)
    assert "FAIL: mri: watershed's mean IoU rises" in "\n".join(sanity_markdown(rows)) or \
        "FAIL: mri: region_grow's mean IoU rises" in "\n".join(sanity_markdown(rows))

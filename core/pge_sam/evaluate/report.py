"""Summary table and plots of a DM-Seg-mini ``results.csv``.

``summary.md`` holds

* one row per modality x degradation x severity x predictor: number of
  targets and mean IoU@1/3/5, NoC@85, NoC@90, Dice@5, box IoU and seconds
  per target;
* a compact table per modality x predictor: clean vs the mean over every
  degraded row with severity >= 2 (all degradations and targets pooled);
* paired differences between every two predictors on the same rows
  (:func:`~pge_sam.evaluate.paired.paired_difference`): mean IoU@5 difference
  with a 95 % bootstrap interval, clean and severity >= 2, so a margin can be
  told from the spread of a benchmark with few targets;
* the cost of degradation per predictor
  (:func:`~pge_sam.evaluate.paired.degradation_cost`): IoU@1, IoU@5 and box
  IoU at severity >= 2 minus clean on the same targets, i.e. how much room a
  restoration method has on each metric.

Plots (PNG, matplotlib's Agg renderer, no pyplot state):

* ``iou_vs_clicks_<modality>.png``: mean IoU after each click, one panel per
  severity (degradations pooled), one line per predictor;
* ``noc85_<modality>.png``: mean NoC@85 per degradation (severities >= 1
  pooled; "clean" first), one bar per predictor.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._optional import require
from ..errors import InputError
from .paired import Paired, cost_markdown, degradation_cost, paired_difference, paired_markdown

__all__ = ["Paired", "Report", "degradation_cost", "load_results", "paired_difference", "summary_markdown",
           "write_pooled_report", "write_report"]

METRICS = (("miou", "mIoU"), ("iou_1", "IoU@1"), ("iou_3", "IoU@3"), ("iou_5", "IoU@5"), ("noc85", "NoC@85"),
           ("noc90", "NoC@90"), ("dice5", "Dice@5"), ("box_iou", "box IoU"), ("seconds", "s/target"))
CLEAN = "clean"


@dataclass
class Report:
    """Paths written by :func:`write_report`."""

    summary: Path
    plots: list[Path]


def load_results(csv_path) -> list[dict]:
    """Rows of ``results.csv`` as dicts; ``severity`` int, metric columns float, key columns str."""
    path = Path(csv_path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; run the benchmark first")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    text_columns = {"modality", "degradation", "target", "predictor", "structure"}
    for row in rows:
        for key, value in row.items():
            if key == "severity":
                row[key] = int(value)
            elif key not in text_columns:
                row[key] = float(value)
    return rows


def _ordered(values) -> list:
    return list(dict.fromkeys(values))


def _curve_columns(rows: list[dict]) -> list[str]:
    return [k for k in rows[0] if k.startswith("iou_")] if rows else []


def _mean(rows: list[dict], key: str) -> float:
    """Mean of column ``key`` over ``rows`` ignoring NaN; NaN when absent (e.g. iou_5 with fewer clicks)."""
    values = np.array([r.get(key, np.nan) for r in rows], dtype=float)
    return float(np.nanmean(values)) if len(values) and not np.isnan(values).all() else float("nan")


def _fmt(value: float, key: str) -> str:
    if np.isnan(value):
        return "-"
    return f"{value:.1f}" if key.startswith("noc") else f"{value:.2f}" if key == "seconds" else f"{value:.3f}"


def summary_markdown(rows: list[dict]) -> str:
    """The text of ``summary.md`` for parsed ``rows`` (see module docstring)."""
    lines = ["# DM-Seg-mini results", ""]
    if not rows:
        return "\n".join(lines + ["No results yet.", ""])
    predictors = _ordered(r["predictor"] for r in rows)
    lines += [
        f"{len(rows)} rows; predictors: {', '.join(predictors)}; distinct targets: "
        + ", ".join(f"{m} {len({r['target'] for r in rows if r['modality'] == m})}"
                    for m in _ordered(r["modality"] for r in rows))
        + ". Means over targets (n = number of rows, each one target under one condition). mIoU: mean IoU over "
        "all interactions (the area under the click curve).",
    ]
    lines += overview_markdown(rows) + sanity_markdown(rows)
    lines += [
        "",
        "## Per condition",
        "",
        "| modality | degradation | severity | predictor | n | " + " | ".join(label for _, label in METRICS) + " |",
        "|" + "---|" * (5 + len(METRICS)),
    ]
    for modality in _ordered(r["modality"] for r in rows):
        in_modality = [r for r in rows if r["modality"] == modality]
        names = _ordered([CLEAN] + [r["degradation"] for r in in_modality])
        for name in names:
            for severity in sorted({r["severity"] for r in in_modality if r["degradation"] == name}):
                for predictor in predictors:
                    cell = [r for r in in_modality
                            if (r["degradation"], r["severity"], r["predictor"]) == (name, severity, predictor)]
                    if cell:
                        values = " | ".join(_fmt(_mean(cell, key), key) for key, _ in METRICS)
                        lines.append(f"| {modality} | {name} | {severity} | {predictor} | {len(cell)} | {values} |")
    lines += [
        "",
        "## Clean vs degraded (severity >= 2, all degradations pooled)",
        "",
        "| modality | predictor | n clean | n degraded | IoU@5 clean | IoU@5 degr. | NoC@85 clean | NoC@85 degr. "
        "| box IoU clean | box IoU degr. |",
        "|" + "---|" * 10,
    ]
    for modality in _ordered(r["modality"] for r in rows):
        for predictor in predictors:
            mine = [r for r in rows if r["modality"] == modality and r["predictor"] == predictor]
            clean = [r for r in mine if r["severity"] == 0]
            heavy = [r for r in mine if r["severity"] >= 2]
            if not mine:
                continue
            cells = [f"{len(clean)}", f"{len(heavy)}"]
            for key in ("iou_5", "noc85", "box_iou"):
                cells += [_fmt(_mean(clean, key), key), _fmt(_mean(heavy, key), key)]
            lines.append(f"| {modality} | {predictor} | " + " | ".join(cells) + " |")
    lines += paired_markdown(rows)
    lines += cost_markdown(rows)
    return "\n".join(lines + [""])


CLASSICAL = ("random_walker", "region_grow", "watershed", "grabcut")  # the reference answer is not a method


def _target_interval(values_by_target: dict, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of the mean over targets, resampling targets (each target's rows averaged first)."""
    means = np.array([np.mean(v) for v in values_by_target.values()], dtype=float)
    means = means[~np.isnan(means)]
    if len(means) < 2:
        return float("nan"), float("nan")
    boot = means[np.random.default_rng(seed).integers(len(means), size=(resamples, len(means)))].mean(1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return float(low), float(high)


def best_classical(rows: list[dict], modality: str) -> str | None:
    """The classical method with the highest clean mIoU on ``modality`` (``None`` if none ran)."""
    scores = {p: _mean([r for r in rows if r["modality"] == modality and r["predictor"] == p and r["severity"] == 0],
                       "miou") for p in CLASSICAL}
    scores = {p: v for p, v in scores.items() if not np.isnan(v)}
    return max(scores, key=scores.get) if scores else None


def overview_markdown(rows: list[dict]) -> list[str]:
    """Clean results per modality and predictor with target-resampled intervals, and the line to beat."""
    lines = ["", "## Overview (clean)", "",
             "| modality | predictor | targets | mIoU | 95 % interval (targets) | IoU@1 | IoU@5 | NoC@85 | NoC@90 | "
             "box IoU |",
             "|" + "---|" * 10]
    notes = []
    for modality in _ordered(r["modality"] for r in rows):
        for predictor in _ordered(r["predictor"] for r in rows):
            clean = [r for r in rows
                     if r["modality"] == modality and r["predictor"] == predictor and r["severity"] == 0]
            if not clean:
                continue
            by_target: dict[str, list[float]] = {}
            for r in clean:
                by_target.setdefault(r["target"], []).append(r.get("miou", np.nan))
            low, high = _target_interval(by_target)
            cells = [_fmt(_mean(clean, k), k) for k in ("miou",)] + [f"{low:.3f} .. {high:.3f}"]
            cells += [_fmt(_mean(clean, k), k) for k in ("iou_1", "iou_5", "noc85", "noc90", "box_iou")]
            lines.append(f"| {modality} | {predictor} | {len(by_target)} | " + " | ".join(cells) + " |")
        best = best_classical(rows, modality)
        if best:
            best_miou = _mean([r for r in rows
                               if r["modality"] == modality and r["predictor"] == best and r["severity"] == 0], "miou")
            notes.append(f"- {modality}: the line to beat is **{best}** (best classical method, clean mIoU "
                         f"{best_miou:.3f}).")
    return lines + ([""] + notes if notes else [])


def sanity_markdown(rows: list[dict]) -> list[str]:
    """The benchmark's own sanity checks (PASS/FAIL): the best classical method's mean IoU rises with clicks on
    every modality (after clicks 1, 3, 5, 10, 20: never down by more than 0.01, and up overall), and classical
    methods score no better on severity-3 noise or blur than clean on the same targets."""
    checks = []
    curve = _curve_columns(rows)
    for modality in _ordered(r["modality"] for r in rows):
        best = best_classical(rows, modality)
        if best is None or not curve:
            continue
        mine = [r for r in rows if r["modality"] == modality and r["predictor"] == best]
        means = np.nanmean([[r[c] for c in curve] for r in mine], axis=0)
        marks = [k for k in (1, 3, 5, 10, 20) if k <= len(curve)]
        at = [float(means[k - 1]) for k in marks]
        ok = at[-1] > at[0] and all(b >= a - 0.01 for a, b in zip(at, at[1:]))
        shown = ", ".join(f"{v:.3f} at {k}" for k, v in zip(marks, at))
        checks.append((ok, f"{modality}: {best}'s mean IoU rises with clicks ({shown})"))
        for predictor in [p for p in CLASSICAL if any(r["predictor"] == p for r in mine + rows)]:
            theirs = [r for r in rows if r["modality"] == modality and r["predictor"] == predictor]
            clean = {r["target"]: r["miou"] for r in theirs if r["severity"] == 0}
            hit = [(clean[r["target"]], r["miou"]) for r in theirs if r["severity"] == 3 and r["target"] in clean
                   and ("noise" in r["degradation"] or "blur" in r["degradation"])]
            if hit:
                c, d = np.mean(hit, axis=0)
                checks.append((c >= d, f"{modality}: {predictor} clean mIoU {c:.3f} >= severity-3 noise/blur {d:.3f} "
                                       f"(same {len(hit)} target-conditions)"))
    if not checks:
        return []
    return ["", "## Sanity checks", ""] + [f"- {'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]


def per_target_markdown(rows: list[dict]) -> str:
    """``per_target.md``: clean mIoU and IoU@1 of every target for every predictor (one table per modality)."""
    lines = ["# DM-Seg-mini per target (clean)", ""]
    for modality in _ordered(r["modality"] for r in rows):
        predictors = _ordered(r["predictor"] for r in rows if r["modality"] == modality)
        lines += [f"## {modality}", "", "| target | structure | " + " | ".join(f"{p} mIoU / IoU@1" for p in predictors)
                  + " |", "|" + "---|" * (2 + len(predictors))]
        clean = {(r["target"], r["predictor"]): r for r in rows if r["modality"] == modality and r["severity"] == 0}
        for target in _ordered(r["target"] for r in rows if r["modality"] == modality):
            structure = next((r.get("structure", "") for (t, _), r in clean.items() if t == target), "")
            cells = [f"{clean[(target, p)]['miou']:.3f} / {clean[(target, p)]['iou_1']:.3f}" if (target, p) in clean
                     else "-" for p in predictors]
            lines.append(f"| {target} | {structure} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _figure(width: float, height: float):
    FigureCanvasAgg = require("matplotlib.backends.backend_agg", "bench").FigureCanvasAgg
    Figure = require("matplotlib.figure", "bench").Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def plot_iou_curves(rows: list[dict], modality: str, path: Path) -> Path:
    """Mean IoU vs clicks per severity (panels) and predictor (lines) for ``modality``; writes PNG ``path``."""
    mine = [r for r in rows if r["modality"] == modality]
    severities = sorted({r["severity"] for r in mine})
    columns = _curve_columns(rows)
    clicks = np.arange(1, len(columns) + 1)
    figure = _figure(3.2 * len(severities) + 0.6, 3.2)
    axes = figure.subplots(1, len(severities), squeeze=False, sharey=True)[0]
    for axis, severity in zip(axes, severities):
        for predictor in _ordered(r["predictor"] for r in mine):
            cell = [r for r in mine if r["severity"] == severity and r["predictor"] == predictor]
            if cell:
                curve = np.mean([[r[c] for c in columns] for r in cell], axis=0)
                axis.plot(clicks, curve, marker=".", label=f"{predictor} (n={len(cell)})")
        axis.set_title(f"{modality}: " + ("clean" if severity == 0 else f"severity {severity}"))
        axis.set_xlabel("clicks")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("mean IoU")
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_noc_bars(rows: list[dict], modality: str, path: Path) -> Path:
    """Mean NoC@85 per degradation (bars per predictor; severities >= 1 pooled) for ``modality``;
    writes PNG ``path``."""
    mine = [r for r in rows if r["modality"] == modality]
    names = [n for n in _ordered([CLEAN] + [r["degradation"] for r in mine])
             if any(r["degradation"] == n for r in mine)]
    predictors = _ordered(r["predictor"] for r in mine)
    width = 0.8 / len(predictors)
    figure = _figure(max(5.0, 0.7 * len(names) * max(1, len(predictors) / 2) + 1.5), 3.6)
    axis = figure.subplots()
    x = np.arange(len(names))
    tallest = 1.0
    for i, predictor in enumerate(predictors):
        heights = [_mean([r for r in mine if r["degradation"] == n and r["predictor"] == predictor], "noc85")
                   for n in names]
        tallest = max([tallest] + [h for h in heights if not np.isnan(h)])
        axis.bar(x + (i - (len(predictors) - 1) / 2) * width, heights, width, label=predictor)
    axis.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    axis.set_ylim(0, tallest * 1.3)  # headroom for the legend
    axis.set_ylabel("mean NoC@85 (lower is better)")
    axis.set_title(f"{modality}: clicks to IoU 0.85")
    axis.legend(fontsize=7, loc="upper center", ncol=min(4, len(predictors)))
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    return path


def write_pooled_report(bench_dirs, out_dir) -> Report:
    """One report over the ``results.csv`` of several bench folders (e.g. runs with different seeds).

    Each target name gets its folder's position as a prefix (``"0:"``, ``"1:"``, ...), so
    rows pair only with rows of the same run and a target drawn by two seeds counts twice.
    """
    rows, clicks = [], {}
    for i, folder in enumerate(bench_dirs):
        loaded = load_results(Path(folder) / "results.csv")
        clicks[str(folder)] = len(_curve_columns(loaded))
        rows.extend(dict(r, target=f"{i}:{r['target']}") for r in loaded)
    if len(set(clicks.values()) - {0}) > 1:
        runs = ", ".join(f"{folder}: {n}" for folder, n in clicks.items())
        raise InputError(f"these runs used different click budgets ({runs} clicks); NoC and the IoU curves would "
                         "mix protocols. Pool runs made with the same --max-clicks")
    return write_report(None, out_dir, rows)


def write_report(csv_path, out_dir, rows: list[dict] | None = None) -> Report:
    """Write ``summary.md`` and the PNG plots for ``csv_path`` (or parsed ``rows``) into ``out_dir``."""
    rows = load_results(csv_path) if rows is None else rows
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = out_dir / "summary.md"
    summary.write_text(summary_markdown(rows), encoding="utf-8")
    if rows and "miou" in rows[0]:
        (out_dir / "per_target.md").write_text(per_target_markdown(rows), encoding="utf-8")
    plots = []
    for modality in _ordered(r["modality"] for r in rows):
        plots.append(plot_iou_curves(rows, modality, out_dir / f"iou_vs_clicks_{modality}.png"))
        plots.append(plot_noc_bars(rows, modality, out_dir / f"noc85_{modality}.png"))
    return Report(summary, plots)

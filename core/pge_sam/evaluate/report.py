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

from ..errors import InputError
from .paired import Paired, cost_markdown, degradation_cost, paired_difference, paired_markdown

__all__ = ["Paired", "Report", "degradation_cost", "load_results", "paired_difference", "summary_markdown",
           "write_pooled_report", "write_report"]

METRICS = (("iou_1", "IoU@1"), ("iou_3", "IoU@3"), ("iou_5", "IoU@5"), ("noc85", "NoC@85"),
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
    text_columns = {"modality", "degradation", "target", "predictor"}
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
        f"{len(rows)} rows; predictors: {', '.join(predictors)}. Means over targets (n = number of targets).",
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
                    cell = [r for r in in_modality if (r["degradation"], r["severity"], r["predictor"]) == (name, severity, predictor)]
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


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
    """Mean NoC@85 per degradation (bars per predictor; severities >= 1 pooled) for ``modality``; writes PNG ``path``."""
    mine = [r for r in rows if r["modality"] == modality]
    names = [n for n in _ordered([CLEAN] + [r["degradation"] for r in mine]) if any(r["degradation"] == n for r in mine)]
    predictors = _ordered(r["predictor"] for r in mine)
    width = 0.8 / len(predictors)
    figure = _figure(max(5.0, 0.7 * len(names) * max(1, len(predictors) / 2) + 1.5), 3.6)
    axis = figure.subplots()
    x = np.arange(len(names))
    tallest = 1.0
    for i, predictor in enumerate(predictors):
        heights = [_mean([r for r in mine if r["degradation"] == n and r["predictor"] == predictor], "noc85") for n in names]
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
    plots = []
    for modality in _ordered(r["modality"] for r in rows):
        plots.append(plot_iou_curves(rows, modality, out_dir / f"iou_vs_clicks_{modality}.png"))
        plots.append(plot_noc_bars(rows, modality, out_dir / f"noc85_{modality}.png"))
    return Report(summary, plots)

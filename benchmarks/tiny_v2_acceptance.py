"""Issue 15's acceptance figures for a new tiny model, from DM-Seg-mini v2 test-split runs.

Each seed's run of the new model (``pge-sam bench --models sam_tiny --checkpoint NEW --label NAME --seed S
--no-baseline --out NEW_DIR_S``) is merged with the reference run of the same seed (the classical methods and
the old ``sam_tiny``), so rows pair on the same targets and conditions; the merged seeds are then pooled as
``pge-sam bench --pool`` does (targets prefixed per seed). Printed, as markdown:

* 2D, per modality: the new model minus the best classical method (by clean mIoU) on mean IoU over clicks
  1-20 and on NoC@85, clean and at severity >= 2, with target-resampled 95 % intervals;
* clicks help: the share of click steps (click k to k+1, every row) whose IoU drops by more than 0.02, for
  the old and the new model;
* 3D: volume Dice after the first interaction (one prompted slice + propagation) per method.

Usage::

    python benchmarks/tiny_v2_acceptance.py --new sam_tiny_v6 \\
        --ref bench-out/v2_seed0 bench-out/v2_seed1 bench-out/v2_seed2 \\
        --runs bench-out/v6_seed0 bench-out/v6_seed1 bench-out/v6_seed2 --out bench-out/v6_pooled
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from pge_sam.evaluate.paired import paired_difference
from pge_sam.evaluate.report import CLASSICAL, best_classical, load_results, write_pooled_report


def merge(ref: Path, new: Path, out: Path) -> Path:
    """``out/results.csv`` (+ ``results3d.csv``) = the reference run's rows followed by the new run's."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("results.csv", "results3d.csv"):
        parts = [p / name for p in (ref, new) if (p / name).is_file()]
        if not parts:
            continue
        with open(out / name, "w", newline="", encoding="utf-8") as fh:
            writer = None
            for part in parts:
                with open(part, newline="", encoding="utf-8") as src:
                    reader = csv.DictReader(src)
                    if writer is None:
                        writer = csv.DictWriter(fh, reader.fieldnames)
                        writer.writeheader()
                    writer.writerows(reader)
    return out


def pooled_rows(folders: list[Path]) -> list[dict]:
    """The 2D rows of merged seed folders, targets prefixed ``<i>:`` per folder (rows pair within a seed)."""
    rows = []
    for i, folder in enumerate(folders):
        rows.extend(dict(r, target=f"{i}:{r['target']}") for r in load_results(folder / "results.csv"))
    return rows


def drop_rate(rows: list[dict], predictor: str, modality: str, threshold: float = 0.02) -> tuple[float, int]:
    """Share of click steps k -> k+1 whose IoU falls by more than ``threshold`` (and the number of steps)."""
    curves = [[r[f"iou_{k}"] for k in range(1, 21) if f"iou_{k}" in r]
              for r in rows if r["predictor"] == predictor and r["modality"] == modality]
    steps = np.concatenate([np.diff(np.asarray(c, float)) for c in curves]) if curves else np.zeros(0)
    return (float(np.mean(steps < -threshold)) if len(steps) else float("nan")), len(steps)


def dice3d(paths: list[Path]) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for path in paths:
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                out.setdefault((row["modality"], row["method"]), []).append(float(row["dice_1"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", required=True, help="the new model's --label in its runs")
    parser.add_argument("--old", default="sam_tiny", help="the old model's name in the reference runs")
    parser.add_argument("--ref", nargs="+", type=Path, required=True)
    parser.add_argument("--runs", nargs="+", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.ref) != len(args.runs):
        parser.error("one reference run per new run (same seeds, same order)")
    merged = [merge(r, n, args.out / f"merged_{i}") for i, (r, n) in enumerate(zip(args.ref, args.runs))]
    report = write_pooled_report(merged, args.out)
    rows = pooled_rows(merged)
    lines = [f"# Acceptance of {args.new} (pooled over {len(merged)} seeds; report: {report.summary})", "",
             "## 2D: new model minus the best classical method (target-resampled 95 % intervals)", "",
             "| modality | best classical | metric | condition | n | classical | new | new - classical | interval |",
             "|---|---|---|---|---|---|---|---|---|"]
    modalities = list(dict.fromkeys(r["modality"] for r in rows))
    for modality in modalities:
        best = best_classical(rows, modality)
        for key in ("miou", "noc85"):
            for degraded in (False, True):
                p = paired_difference(rows, best, args.new, key, modality=modality, degraded=degraded)
                if p is None:
                    continue
                lines.append(f"| {modality} | {best} | {key} | {'severity >= 2' if degraded else 'clean'} | {p.n} | "
                             f"{p.mean_a:.3f} | {p.mean_b:.3f} | {p.diff:+.3f} | "
                             f"{p.target_low:+.3f} .. {p.target_high:+.3f} |")
    lines += ["", "(NoC@85: lower is better, so a negative difference favours the new model.)", "",
              "## Clicks help: share of click steps whose IoU drops by more than 0.02", "",
              "| modality | model | steps | drop rate | steps without such a drop |", "|---|---|---|---|---|"]
    for modality in modalities:
        for model in (args.old, args.new):
            rate, n = drop_rate(rows, model, modality)
            lines.append(f"| {modality} | {model} | {n} | {rate:.3f} | {1 - rate:.1%} |")
    dice = dice3d([m / "results3d.csv" for m in merged])
    if dice:
        lines += ["", "## 3D: volume Dice after one prompted slice + propagation (mean over targets and seeds)", "",
                  "| modality | method | runs | Dice@1 |", "|---|---|---|---|"]
        for (modality, method), values in sorted(dice.items()):
            lines.append(f"| {modality} | {method} | {len(values)} | {np.mean(values):.3f} |")
    classical = ", ".join(CLASSICAL)
    lines += ["", f"Classical methods considered: {classical}."]
    text = "\n".join(lines) + "\n"
    (args.out / "acceptance.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

"""Issue 17's recovery figures: how much of a base model's degradation cost each method wins back.

Seeds are pooled as ``ref_acceptance.py`` does: each ``--runs`` folder (one seed) is read, optionally merged
with the ``--base-runs`` folder of the same seed (when the base was run separately); its rows carry the
seed's index as ``run``, so rows pair within a seed, and a target drawn by several seeds is one cluster of
the target-resampled interval (see :mod:`pge_sam.evaluate.recovery` for the estimator and thresholds).
Printed and written to ``--out/recovery.md``: pooled over severity >= 2 (row and condition selection),
then per severity and per degradation family (``--select``), for mIoU 1-20, IoU@1, box IoU and NoC@85;
and each method minus the base on clean images (first seed).

Usage::

    python benchmarks/recovery_report.py --base sam_tiny --methods pge_sam_tiny,robust_sam_tiny \\
        --runs bench-out/v2_seed0 bench-out/v2_seed1 bench-out/v2_seed2 --out bench-out/v2_recovery
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tiny_v2_acceptance import merge

from pge_sam.evaluate.paired import paired_difference
from pge_sam.evaluate.recovery import DEFAULT_THRESHOLD, RECOVERY_METRICS, THRESHOLDS, recovery
from pge_sam.evaluate.report import load_results

HEAD = ["| method | metric | group | rows | targets | skipped | mean cost | mean gain | recovery "
        "| interval (targets) |",
        "|---|---|---|---|---|---|---|---|---|---|"]


def line(method: str, label: str, r) -> str:
    if r.n == 0:
        return f"| {method} | {label} | {r.group} | 0 | 0 | {r.skipped} | - | - | - | - |"
    return (f"| {method} | {label} | {r.group} | {r.n} | {r.targets} | {r.skipped} | {r.cost:.3f} | {r.gain:+.3f} | "
            f"{r.recovery:+.2f} | {r.low:+.2f} .. {r.high:+.2f} |")


def tables(rows: list[dict], base: str, methods: list[str], select: str) -> tuple[list[str], list[str]]:
    """(pooled lines, per severity / family lines) for ``select``."""
    pooled, detail = [], []
    for method in methods:
        for key, label in RECOVERY_METRICS:
            for r in recovery(rows, base, method, key, select=select):
                (pooled if r.group == "pooled" else detail).append(line(method, label, r))
    return pooled, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="sam_tiny")
    parser.add_argument("--methods", required=True, help="comma-separated predictor names")
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="one bench folder per seed")
    parser.add_argument("--base-runs", nargs="+", type=Path, help="the base's folders, same seeds and order")
    parser.add_argument("--select", choices=("row", "condition"), default="row",
                        help="threshold on each row's cost or on each condition's mean cost (detail tables)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    if args.base_runs and len(args.base_runs) != len(args.runs):
        parser.error("one base run per run (same seeds, same order)")
    folders = ([merge(b, n, args.out / f"merged_{i}") for i, (b, n) in enumerate(zip(args.base_runs, args.runs))]
               if args.base_runs else args.runs)
    rows = [dict(r, run=i) for i, folder in enumerate(folders) for r in load_results(folder / "results.csv")
            if r["predictor"] in (args.base, *methods)]
    thresholds = ", ".join(f"{k} {THRESHOLDS.get(k, DEFAULT_THRESHOLD)}" for k, _ in RECOVERY_METRICS)
    lines = [f"# Recovery of {args.base}'s degradation cost ({len(folders)} seeds pooled, severity >= 2)", "",
             "cost = base clean - base degraded, gain = method degraded - base degraded (NoC: signs flipped, "
             f"so positive is better); rows kept where the cost reaches the threshold ({thresholds}); recovery "
             "= mean gain / mean cost; 95 % intervals resample targets.", ""]
    for select in ("row", "condition"):
        pooled, _ = tables(rows, args.base, methods, select)
        lines += [f"## Pooled, threshold per {select}", "", *HEAD, *pooled, ""]
    _, detail = tables(rows, args.base, methods, args.select)
    lines += [f"## Per severity and per degradation family, threshold per {args.select}", "", *HEAD, *detail, "",
              "## Clean images: method - base (first seed's clean rows: they repeat across seeds, so pooling "
              "them would only narrow the interval; target-resampled 95 % interval)", "",
              "| method | metric | n | base | method | method - base | interval |", "|---|---|---|---|---|---|---|"]
    first = [r for r in rows if r["run"] == 0]
    for method in methods:
        for key, label in RECOVERY_METRICS:
            p = paired_difference(first, args.base, method, key)
            if p is not None:
                lines.append(f"| {method} | {label} | {p.n} | {p.mean_a:.3f} | {p.mean_b:.3f} | {p.diff:+.3f} | "
                             f"{p.target_low:+.3f} .. {p.target_high:+.3f} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recovery.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

"""Issue 16's acceptance figures: a SAM-REF model against its base, from DM-Seg-mini v2 test-split runs.

Each seed's run of the refined model (``pge-sam bench --models sam_ref_tiny --adapter FILE --label NAME
--no-baseline --protocol 2d --seed S --out NEW_DIR_S``) is merged with the base model's run of the same seed
(e.g. ``bench-out/v6_seed{0,1,2}``, label ``sam_tiny_v6``), so rows pair on the same targets and conditions;
seeds are pooled with targets prefixed per seed. Printed, as markdown, per modality, clean and at severity
>= 2: the refined model minus its base on mean IoU over clicks 1-20, NoC@90, IoU@1 and NoC@85, with
target-resampled 95 % intervals; the same on the thin-structure targets alone (grey-matter ribbons, corpus
callosum, skull); and the share of click steps whose IoU drops by more than 0.02.

Usage::

    python benchmarks/ref_acceptance.py --base sam_tiny_v6 --new sam_ref_tiny \\
        --base-runs bench-out/v6_seed0 bench-out/v6_seed1 bench-out/v6_seed2 \\
        --runs bench-out/ref_seed0 bench-out/ref_seed1 bench-out/ref_seed2 --out bench-out/ref_pooled
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tiny_v2_acceptance import drop_rate, merge, pooled_rows

from pge_sam.evaluate.paired import paired_difference

THIN = ("gm_left", "gm_right", "corpus_callosum", "skull")
METRICS = ("miou", "noc90", "iou_1", "noc85")


def table(rows: list[dict], base: str, new: str, modalities: list[str]) -> list[str]:
    lines = ["| modality | metric | condition | n | base | new | new - base | interval (targets) |",
             "|---|---|---|---|---|---|---|---|"]
    for modality in modalities:
        for key in METRICS:
            for degraded in (False, True):
                p = paired_difference(rows, base, new, key, modality=modality, degraded=degraded)
                if p is None:
                    continue
                lines.append(f"| {modality} | {key} | {'severity >= 2' if degraded else 'clean'} | {p.n} | "
                             f"{p.mean_a:.3f} | {p.mean_b:.3f} | {p.diff:+.3f} | "
                             f"{p.target_low:+.3f} .. {p.target_high:+.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the base model's label in --base-runs")
    parser.add_argument("--new", required=True, help="the refined model's label in --runs")
    parser.add_argument("--base-runs", nargs="+", type=Path, required=True)
    parser.add_argument("--runs", nargs="+", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.base_runs) != len(args.runs):
        parser.error("one base run per new run (same seeds, same order)")
    merged = [merge(b, n, args.out / f"merged_{i}") for i, (b, n) in enumerate(zip(args.base_runs, args.runs))]
    rows = [r for r in pooled_rows(merged) if r["predictor"] in (args.base, args.new)]
    modalities = list(dict.fromkeys(r["modality"] for r in rows))
    lines = [f"# {args.new} minus {args.base} (DM-Seg-mini v2 test split, {len(merged)} seeds pooled)", "",
             "## All targets", "", *table(rows, args.base, args.new, modalities), "",
             "(NoC: lower is better, so a negative difference favours the refined model.)", "",
             f"## Thin structures only ({', '.join(THIN)})", "",
             *table([r for r in rows if r["structure"] in THIN], args.base, args.new, modalities), "",
             "## Clicks help: share of click steps whose IoU drops by more than 0.02", "",
             "| modality | model | steps | drop rate |", "|---|---|---|---|"]
    for modality in modalities:
        for model in (args.base, args.new):
            rate, n = drop_rate(rows, model, modality)
            lines.append(f"| {modality} | {model} | {n} | {rate:.3f} |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "acceptance.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

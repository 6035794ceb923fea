"""Tables for docs/benchmark.md from the v2 runs (seeds 0-2), printed as markdown.

    pge-sam bench --models sam_tiny,pge_sam_tiny,robust_sam_tiny --seed 0 --out bench-out/v2_seed0
    pge-sam bench --models sam_tiny,pge_sam_tiny,robust_sam_tiny --seed 1 --protocol 2d --out bench-out/v2_seed1
    pge-sam bench --models sam_tiny,pge_sam_tiny,robust_sam_tiny --seed 2 --protocol 2d --out bench-out/v2_seed2
    python benchmarks/dmseg_v2_docs.py bench-out/v2_seed0 bench-out/v2_seed1 bench-out/v2_seed2 > tables.md

Clean rows do not depend on the seed (the seed draws the degradations), so the clean tables and paired
clean differences come from the first run; degraded rows and the cost of degradation pool every run
(each run's targets are their own clusters in the target-resampled intervals).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pge_sam.evaluate.paired import degradation_cost, paired_difference
from pge_sam.evaluate.report import best_classical, load_results, overview_markdown, sanity_markdown
from pge_sam.evaluate.targets3d import build_targets3d

MODELS = ("sam_tiny", "pge_sam_tiny", "robust_sam_tiny")


def fmt(p) -> str:
    if p is None:
        return "- | - | - | -"
    return (f"{p.targets} | {p.mean_a:.3f} | {p.mean_b:.3f} | {p.diff:+.3f} "
            f"({p.target_low:+.3f} .. {p.target_high:+.3f})")


def main(folders: list[str]) -> None:
    runs = [load_results(Path(f) / "results.csv") for f in folders]
    pooled = [dict(r, target=f"{i}:{r['target']}") for i, rows in enumerate(runs) for r in rows]
    first = runs[0]
    print("### Clean, seed 0 (identical at every seed)\n")
    print("\n".join(overview_markdown(first)[1:]))
    print("\n### Sanity checks (all seeds pooled)\n")
    print("\n".join(sanity_markdown(pooled)[3:]))
    print("\n### Paired differences in mIoU (b - a on the same targets; 95 % interval resampling targets)\n")
    print("| modality | condition | a | b | targets | a | b | b - a (interval) |")
    print("|---|---|---|---|---|---|---|---|")
    for modality in ("mri", "ct"):
        best = best_classical(first, modality)
        for model in MODELS:
            print(f"| {modality} | clean | {best} | {model} | "
                  + fmt(paired_difference(first, best, model, "miou", modality)) + " |")
        for model in MODELS[1:]:
            print(f"| {modality} | clean | sam_tiny | {model} | "
                  + fmt(paired_difference(first, "sam_tiny", model, "miou", modality)) + " |")
            print(f"| {modality} | severity >= 2, {len(runs)} seeds | sam_tiny | {model} | "
                  + fmt(paired_difference(pooled, "sam_tiny", model, "miou", modality, degraded=True)) + " |")
    print(f"\n### Cost of degradation, {len(runs)} seeds (degraded - clean on the same target, severity >= 2)\n")
    print("| modality | method | rows | mIoU clean | mIoU cost | IoU@1 cost | box IoU cost |")
    print("|---|---|---|---|---|---|---|")
    for modality in ("mri", "ct"):
        for method in sorted({r["predictor"] for r in first}, key=lambda m: (m in MODELS, m)):
            stats = [degradation_cost(pooled, method, key, modality) for key in ("miou", "iou_1", "box_iou")]
            if stats[0] is None:
                continue
            cells = " | ".join(f"{p.diff:+.3f} ({p.target_low:+.3f} .. {p.target_high:+.3f})" for p in stats)
            print(f"| {modality} | {method} | {stats[0].n} | {stats[0].mean_a:.3f} | {cells} |")
    print("\n### Target counts\n")
    print("| modality | 2D test targets (images) | 2D dev targets | 3D test | 3D dev |")
    print("|---|---|---|---|---|")
    from pge_sam.evaluate.datasets import build_targets

    for modality in ("mri", "ct"):
        test, dev = build_targets(modality, split="test"), build_targets(modality, split="dev")
        t3, d3 = build_targets3d(modality, "test"), build_targets3d(modality, "dev")
        print(f"| {modality} | {len(test)} ({len({t.image_id for t in test})}) | {len(dev)} | "
              f"{len(t3)} ({', '.join(t.name for t in t3)}) | {len(d3)} |")


if __name__ == "__main__":
    main(sys.argv[1:])

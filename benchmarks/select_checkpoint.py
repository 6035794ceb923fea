"""Choose a training run's checkpoint on DM-Seg-mini's **dev** split (never the test split).

A run trained with ``snapshots: true`` keeps ``step<NNNNN>_<model>.safetensors`` at every validation. Each is
benchmarked on the dev split (2D click episodes, no classical baselines) and scored by mean IoU over clicks 1-20,
averaged over the modalities with equal weight; the table also gives NoC@85 and the share of click steps whose IoU
drops by more than 0.02. The chosen file is printed last; copy it where it ships.

Usage::

    python benchmarks/select_checkpoint.py --model sam_ref_tiny --run runs/ref_tiny_v1 --out bench-out/select_ref
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from tiny_v2_acceptance import drop_rate

from pge_sam.cli import main as cli
from pge_sam.evaluate.report import load_results

ADAPTER_KINDS = ("pge_sam", "robust_sam", "sam_ref")  # a base (sam_<backbone>) snapshot goes in --checkpoint


def score(results: Path, label: str) -> dict[str, dict[str, float]]:
    """Per modality: mean IoU over clicks, NoC@85 and the drop rate of ``label``'s rows in a bench folder."""
    rows = [r for r in load_results(results / "results.csv") if r["predictor"] == label]
    out = {}
    for modality in sorted({r["modality"] for r in rows}):
        mine = [r for r in rows if r["modality"] == modality]
        out[modality] = {"miou": float(np.mean([r["miou"] for r in mine])),
                         "noc85": float(np.mean([r["noc85"] for r in mine])),
                         "drop": drop_rate(rows, label, modality)[0]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the model name the snapshots are for, e.g. sam_ref_tiny")
    parser.add_argument("--run", type=Path, required=True, help="the run folder holding step*_<model> files")
    parser.add_argument("--out", type=Path, required=True, help="bench folders and selection.md go here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pattern = re.compile(r"step(\d+)_(.+)\.safetensors")
    snapshots = sorted(p for p in args.run.glob("step*_*.safetensors") if pattern.fullmatch(p.name))
    if not snapshots:
        sys.exit(f"no step*_*.safetensors in {args.run}: train with 'snapshots: true'")
    kind = "--adapter" if args.model.startswith(tuple(f"{k}_" for k in ADAPTER_KINDS)) else "--checkpoint"
    lines = ["| snapshot | " + " | ".join(f"{m} mIoU | {m} NoC@85 | {m} drop" for m in ("ct", "mri")) + " | score |",
             "|---|" + "---|" * 7]
    best = None
    for snapshot in snapshots:
        label = f"{args.model}_step{pattern.fullmatch(snapshot.name).group(1)}"
        out = args.out / label
        if not (out / "results.csv").is_file() and cli([
                "bench", "--models", args.model, kind, str(snapshot), "--label", label, "--split", "dev",
                "--protocol", "2d", "--no-baseline", "--seed", str(args.seed), "--out", str(out)]):
            sys.exit(f"the dev-split run of {snapshot} failed")
        per = score(out, label)
        total = float(np.mean([s["miou"] for s in per.values()]))
        lines.append(f"| {snapshot.name} | " + " | ".join(
            f"{per[m]['miou']:.3f} | {per[m]['noc85']:.2f} | {per[m]['drop']:.1%}" for m in ("ct", "mri") if m in per)
            + f" | {total:.4f} |")
        if best is None or total > best[0]:
            best = (total, snapshot)
    lines += ["", f"chosen on the dev split: {best[1]} (score {best[0]:.4f})"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "selection.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Tune the classical click baselines on the DEVELOPMENT split of DM-Seg-mini; pick the best parameters per modality.

For every modality, method and parameter setting of :data:`GRID` (each a few
overrides of :data:`pge_sam.evaluate.classical.DEFAULT_PARAMS`), every dev
target is run through the benchmark's click protocol
(:func:`pge_sam.evaluate.episode.click_ious`, ``--clicks`` interactions; targets
marked ``box_first`` start with their bounding box, as in the benchmark) on
the clean image. Reported per setting: mean IoU over clicks 1..N (the area
under the click curve, the selection criterion), IoU@1, IoU@5 and the mean
seconds per ``predict``. The best setting per (modality, method) is marked
and written, with all its parameters, to ``tuned_params.json``
(``{modality: {method: params}}``), which
:func:`pge_sam.evaluate.classical.classical_predictors` loads.

Default: the first 8 dev targets per modality (the split's order interleaves
structures, so a prefix covers every structure), about 3 minutes on 2 CPU
cores; ``--limit 0`` uses the whole dev split (several times longer).
A run with ``--limit`` other than the default writes no package JSON unless
``--json`` names a file, so a smoke test cannot overwrite the tuned values.

Usage::

    python benchmarks/tune_baselines.py                      # writes bench-out/tuning.md + tuned_params.json
    python benchmarks/tune_baselines.py --limit 2 --md /tmp/t.md   # smoke test, no JSON
    python benchmarks/tune_baselines.py --methods region_grow watershed --modalities mri
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pge_sam.evaluate.bench import bounding_box
from pge_sam.evaluate.episode import click_ious
from pge_sam.evaluate.classical import CLASSES, DEFAULT_PARAMS, TUNED_PATH

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LIMIT = 8

# Small on purpose: the slow methods (random walker, GrabCut) get two or three settings.
GRID: dict[str, list[dict]] = {
    "random_walker": [{"beta": 4000.0}, {"beta": 16000.0}, {"beta": 64000.0}],
    "region_grow": [{"mode": mode, "k": k, "min_halfwidth": w}
                    for mode in ("threshold", "confidence") for k in (1.5, 2.5, 3.5) for w in (0.03, 0.08)],
    "watershed": [{"sigma": s, "marker_radius": r} for s in (0.0, 0.5, 1.0) for r in (0, 1)],
    "grabcut": [{"prior_radius": 0, "iterations": 3}, {"prior_radius": 2, "iterations": 3},
                {"prior_radius": 4, "iterations": 3}],
    "reference_large": [{}],
}


def load_dev_targets(modality: str, limit: int | None) -> list:
    """Dev-split targets of ``modality`` (the first ``limit``, or all when ``limit`` is None)."""
    from pge_sam.evaluate.datasets import build_targets

    try:
        targets = build_targets(modality, split="dev")
    except TypeError:  # an older build_targets without splits
        print(f"warning: build_targets has no split=; tuning on all {modality} targets", file=sys.stderr)
        targets = build_targets(modality)
    return targets if limit is None else targets[:limit]


class _Counted:
    """Wraps a ClickPredictor and counts its ``predict`` calls (for the speed column)."""

    def __init__(self, inner):
        self.inner, self.calls, self.name = inner, 0, inner.name

    def predict(self, points, labels, box=None):
        self.calls += 1
        return self.inner.predict(points, labels, box)


def evaluate(method: str, params: dict, targets: list, max_clicks: int) -> dict:
    """Run ``method`` with ``params`` over ``targets``; mean IoU curve summary and seconds per predict."""
    curves, seconds, calls = [], 0.0, 0
    predictor, current = None, None
    for target in targets:
        if predictor is None or target.image_id != current:
            predictor = CLASSES[method](**params)
            predictor.set_image(target.image)
            current = target.image_id
        predictor.reset()
        box = bounding_box(target.mask) if getattr(target, "box_first", False) else None
        counted = _Counted(predictor)
        ious, spent = click_ious(counted, target.mask, max_clicks, box=box)
        curves.append(ious)
        seconds += spent
        calls += counted.calls
    curve = np.mean(np.asarray(curves, dtype=np.float64), axis=0)
    return {"miou": float(curve.mean()), "iou1": float(curve[0]), "iou5": float(curve[min(4, max_clicks - 1)]),
            "ms_per_predict": 1000 * seconds / max(calls, 1)}


def describe(overrides: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(defaults)"


def tune(modalities, methods, limit, max_clicks) -> tuple[list[dict], dict]:
    """Rows ``{modality, method, overrides, params, miou, iou1, iou5, ms_per_predict, best}`` and the best params."""
    rows, best = [], {}
    for modality in modalities:
        targets = load_dev_targets(modality, limit)
        print(f"{modality}: {len(targets)} dev targets", flush=True)
        for method in methods:
            start = time.perf_counter()
            method_rows = []
            for overrides in GRID[method]:
                params = {**DEFAULT_PARAMS[method], **overrides}
                scores = evaluate(method, params, targets, max_clicks)
                method_rows.append({"modality": modality, "method": method, "overrides": overrides,
                                    "params": params, **scores, "best": False})
                print(f"  {method:16s} {describe(overrides):45s} mIoU {scores['miou']:.3f}", flush=True)
            winner = max(method_rows, key=lambda row: row["miou"])
            winner["best"] = True
            best.setdefault(modality, {})[method] = winner["params"]
            rows.extend(method_rows)
            print(f"  {method}: {time.perf_counter() - start:.0f} s", flush=True)
    return rows, best


def markdown(rows: list[dict], limit, max_clicks: int) -> str:
    scope = "all dev targets" if limit is None else f"the first {limit} dev targets"
    lines = [
        "# Classical baseline tuning (DM-Seg-mini, development split)",
        "",
        f"Clean images, {scope} per modality, {max_clicks} protocol clicks (box first where the target says so). "
        f"mIoU = mean IoU over clicks 1-{max_clicks} (selection criterion); **best** per modality and method "
        "goes to `tuned_params.json`. Parameters not listed are the defaults in `DEFAULT_PARAMS`.",
        "",
        "| modality | method | params | mIoU 1-%d | IoU@1 | IoU@5 | ms/predict | best |" % max_clicks,
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['modality']} | {row['method']} | {describe(row['overrides'])} | {row['miou']:.3f} | "
                     f"{row['iou1']:.3f} | {row['iou5']:.3f} | {row['ms_per_predict']:.1f} | "
                     f"{'**best**' if row['best'] else ''} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modalities", nargs="+", default=["mri", "ct"], choices=["mri", "ct"])
    parser.add_argument("--methods", nargs="+", default=list(GRID), choices=list(GRID))
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                        help=f"dev targets per modality (default {DEFAULT_LIMIT}; 0 = all)")
    parser.add_argument("--clicks", type=int, default=20, help="interactions per target (default 20)")
    parser.add_argument("--md", type=Path, default=ROOT / "bench-out" / "tuning.md", help="markdown table")
    parser.add_argument("--json", type=Path, default=None,
                        help=f"tuned parameters (default {TUNED_PATH.relative_to(ROOT)} when --limit is the default)")
    args = parser.parse_args(argv)
    if args.limit < 0 or args.clicks < 5:
        parser.error("--limit must be >= 0 and --clicks >= 5")
    limit = None if args.limit == 0 else args.limit
    json_path = args.json or (TUNED_PATH if args.limit == DEFAULT_LIMIT else None)

    start = time.perf_counter()
    rows, best = tune(args.modalities, args.methods, limit, args.clicks)
    text = markdown(rows, limit, args.clicks)
    print(text)
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text(text, encoding="utf-8")
    print(f"wrote {args.md}")
    if json_path is not None:
        merged = {}
        if json_path.is_file():  # keep what this run did not re-tune
            merged = json.loads(json_path.read_text(encoding="utf-8"))
        for modality, methods in best.items():
            merged.setdefault(modality, {}).update(methods)
        json_path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {json_path}")
    else:
        print("no --json given with a non-default --limit: tuned parameters not written")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

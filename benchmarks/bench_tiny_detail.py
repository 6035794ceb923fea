"""Cost of the tiny model's detail path: sam_tiny v2 (with it) over v1 (without), same process, same weights.

Prints a markdown table: encode time per slice, decode time per click (through ``Predictor.decode``, as a
session calls it), and the bytes each slice puts in the embedding cache (fp32 and fp16), with the ratios
v2 / v1. Both models share one random initialisation (speed does not depend on the weights' values); v1 is
v2 with the detail path removed (``drop_detail``). Timings interleave the two models so background load
hits both alike.

Usage:  python benchmarks/bench_tiny_detail.py [--slices 24] [--clicks 40] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch

from pge_sam.models.registry import build_model, drop_detail
from pge_sam.predictor import Predictor
from pge_sam.prompts import Point, SlicePrompts


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=24)
    ap.add_argument("--clicks", type=int, default=40)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    v2 = build_model("sam_tiny", pretrained=False, device="cpu")
    v1 = copy.deepcopy(v2)
    drop_detail(v1)
    models = {"v1 (no detail path)": v1, "v2 (detail path)": v2}
    preds = {k: Predictor(m) for k, m in models.items()}
    rng = np.random.default_rng(0)
    slices = [rng.integers(0, 256, (256, 256), dtype=np.uint8) for _ in range(args.slices)]
    enc = {k: [] for k in models}
    dec = {k: [] for k in models}
    feats = {}
    with torch.inference_mode():
        for k, p in preds.items():  # warm-up
            feats[k] = {n: v[0] for n, v in p.model.encode(p.preprocess(slices[:1])).items()}
            p.decode(feats[k], SlicePrompts().with_point(Point(100, 120, True)), (256, 256))
        for s in slices:
            for k, p in preds.items():
                enc[k].append(_time(lambda: p.model.encode(p.preprocess([s]))))
        prompts = SlicePrompts()
        for i in range(args.clicks):
            prompts = prompts.with_point(Point(int(rng.integers(256)), int(rng.integers(256)), bool(i % 3 != 2)))
            if len(prompts.points) > 6:
                prompts = SlicePrompts().with_point(prompts.points[-1])
            for k, p in preds.items():
                dec[k].append(_time(lambda: p.decode(feats[k], prompts, (256, 256))))
    nbytes = {k: sum(v.numel() for v in f.values()) for k, f in feats.items()}
    a, b = models
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.slices} slices, {args.clicks} clicks\n")
    print(f"| measure | {a} | {b} | v2 / v1 |")
    print("|---|---|---|---|")
    for name, series in (("encode per slice (ms, median)", enc), ("decode per click (ms, median)", dec)):
        x, y = (1000 * statistics.median(series[k]) for k in models)
        print(f"| {name} | {x:.1f} | {y:.1f} | {y / x:.2f} |")
    for label, size in (("cached bytes per slice, fp32", 4), ("cached bytes per slice, fp16", 2)):
        x, y = (nbytes[k] * size for k in models)
        print(f"| {label} | {x / 1e6:.2f} MB | {y / 1e6:.2f} MB | {y / x:.2f} |")


if __name__ == "__main__":
    main()

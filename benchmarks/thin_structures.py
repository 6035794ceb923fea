"""Thin structures from clicks: IoU of a tiny model on synthetic bands and ribbons (issue 15's open limit).

Two cases on a 256 x 256 slice, each at widths 2, 3, 4, 6 px: an isolated bright sinusoidal band on a dark
background, and a bright ribbon around a darker disk. One positive click on the structure, then a second on
another part of it (the band) or one benchmark click (the ribbon). Prints IoU with the structure.

Usage:  python benchmarks/thin_structures.py [--checkpoint FILE ...] [--model sam_ref_tiny --adapter FILE]
        (default: the shipped sam_tiny)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from pge_sam import Session
from pge_sam.evaluate.clicks import next_click
from pge_sam.models.registry import build_model, shipped_path
from pge_sam.predictor import Predictor


def band(width: float) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    yy, xx = np.mgrid[:256, :256].astype(float)
    centre = 128 + 30 * np.sin(xx / 25)
    mask = (np.abs(yy - centre) < width / 2) & (xx > 30) & (xx < 226)
    clicks = [(int(round(128 + 30 * np.sin(c / 25))), c) for c in (128, 60)]
    return _image(mask, 0.2, {0.8: mask}), mask, clicks


def ribbon(width: float) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    yy, xx = np.mgrid[:256, :256]
    r = np.hypot(yy - 128, xx - 128 + 10 * np.sin(yy / 20))
    mask = (r >= 60) & (r < 60 + width)
    rows, cols = np.nonzero(mask)
    k = int(np.argmin(np.abs(cols - 128) + 1000 * (rows > 128)))
    return _image(mask, 0.15, {0.55: r < 60, 0.9: mask}), mask, [(int(rows[k]), int(cols[k]))]


def _image(mask, background, levels) -> np.ndarray:
    img = np.full(mask.shape, background, np.float32)
    for value, region in levels.items():
        img[region] = value
    noise = np.random.default_rng(0).normal(0, 0.01, img.shape).astype(np.float32)
    return ndimage.gaussian_filter(img, 0.6) + noise


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def run(model, case) -> tuple[float, float]:
    img, truth, clicks = case
    labels = np.zeros(img.shape, np.uint8)
    session = Session(Predictor(model), img, labels, prefetch=0)
    session.add_point(clicks[0], positive=True)
    first = iou(labels == session.label, truth)
    if len(clicks) > 1:
        session.add_point(clicks[1], positive=True)
    else:
        click = next_click(truth, labels == session.label, clicks)
        session.add_point((click.row, click.col), positive=click.positive)
    return first, iou(labels == session.label, truth)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", nargs="*", default=[str(shipped_path("sam_tiny"))], help="base weights")
    ap.add_argument("--model", default="sam_tiny", help="e.g. sam_ref_tiny (on each --checkpoint)")
    ap.add_argument("--adapter", default=None, help="the model's trained modules (default: its shipped ones)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| model | weights | case | width (px) | IoU, 1 click | IoU, 2 clicks |\n|---|---|---|---|---|---|")
    for path in args.checkpoint:
        model = build_model(args.model, checkpoint=path, adapter=args.adapter, device="cpu")
        for name, make in (("band", band), ("ribbon", ribbon)):
            for width in (2, 3, 4, 6, 8):
                a, b = run(model, make(width))
                print(f"| {args.model} | {Path(path).name} | {name} | {width} | {a:.3f} | {b:.3f} |")


if __name__ == "__main__":
    main()

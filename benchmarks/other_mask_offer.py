"""What 'Other mask' offers on a first click: the mask shown against the best of the model's proposals.

For every clean 2D target of DM-Seg-mini's split whose episode starts with a click (not a box), the
benchmark's first click (:func:`pge_sam.evaluate.clicks.next_click`) goes into a session, then
:meth:`pge_sam.session.Session.other_mask` is asked twice. Prints, per model and modality, the mean IoU of
the mask shown first, of the best of the three (what a user gets with at most two presses of M), and how
many targets needed 0, 1 or 2 presses. The shown mask is SAM's best-scored one, as in the benchmark.

Usage:  python benchmarks/other_mask_offer.py [--split test] [--models sam_tiny,pge_sam_tiny]
"""

from __future__ import annotations

import argparse

import numpy as np


def offer(model_name: str, modality: str, split: str) -> tuple[list[float], list[float], list[int]]:
    """(IoU shown, IoU best of three, presses to the best) per target."""
    from pge_sam.evaluate.clicks import next_click
    from pge_sam.evaluate.datasets import build_targets
    from pge_sam.evaluate.metrics import iou
    from pge_sam.model_files import build_model
    from pge_sam.predictor import Predictor
    from pge_sam.session import Session

    predictor = Predictor(build_model(model_name))
    shown, best, presses = [], [], []
    for target in build_targets(modality, split=split):
        if target.box_first:
            continue
        labels = np.zeros(target.image.shape, np.uint8)
        session = Session(predictor, target.image, labels, prefetch=0)
        click = next_click(target.mask)
        session.add_point((int(click.row), int(click.col)))
        ious = [iou(labels == session.label, target.mask)]
        for _ in range(2):
            session.other_mask()
            ious.append(iou(labels == session.label, target.mask))
        shown.append(ious[0])
        best.append(max(ious))
        presses.append(int(np.argmax(ious)))
    return shown, best, presses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=("test", "dev"))
    parser.add_argument("--models", default="sam_tiny,pge_sam_tiny", help="comma-separated model names")
    args = parser.parse_args(argv)
    print("| model | modality | targets | IoU@1 shown | best of three | presses 0 / 1 / 2 |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        for modality in ("ct", "mri"):
            shown, best, presses = offer(name, modality, args.split)
            counts = " / ".join(str(n) for n in np.bincount(presses, minlength=3))
            print(f"| {name} | {modality} | {len(shown)} | {np.mean(shown):.3f} | {np.mean(best):.3f} | {counts} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where propagation stops: 3D Dice against true masks, and what it labels outside the object.

    .venv/bin/python benchmarks/propagation_stop.py [--model pge_sam_tiny] [--out bench-out/propagation_stop.md]

Targets, one click each on axial slice 100 at the target's most interior pixel:
the MNI ICBM152 white matter (p_wm > 0.5), grey matter (p_gm > 0.5) and brain
(p_gm + p_wm > 0.5, holes filled), plus the README's main job click
(100, 100, 70); and a 3D Shepp-Logan phantom (the 2D phantom shrunk per slice
as an ellipsoid, blank slices above and below) with its head and its largest
inner region. Each runs three times on one shared predictor: with the content stop
rules off (the old behaviour), with the content stop rule alone, and with the
defaults (content rule + background trim). Columns: Dice with the
true mask, labelled voxels on all-zero slices, labelled voxels at the
background intensity (0) and their share of all labelled voxels, slices
labelled, and the stop notes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi


def mni_targets():
    from pge_sam.samples import load_mni

    t1, spacing = load_mni("t1")
    p_gm, p_wm = load_mni("gm")[0] / 255.0, load_mni("wm")[0] / 255.0
    brain = np.stack([ndi.binary_fill_holes(s) for s in (p_gm + p_wm) > 0.5])
    truths = {"wm": p_wm > 0.5, "gm": p_gm > 0.5, "brain": brain}
    return t1, spacing, truths


def phantom_targets(n: int = 96, size: int = 256):
    """(n, size, size) phantom volume: slice z is the 2D phantom scaled by sqrt(1 - ((z - c) / r)^2), centred."""
    from pge_sam.samples import shepp_logan, shepp_logan_regions

    image2d, regions = shepp_logan(size), shepp_logan_regions(size)
    volume = np.zeros((n, size, size), np.float32)
    truths = {"head": np.zeros(volume.shape, bool), "inner": np.zeros(volume.shape, bool)}
    c, r = (n - 1) / 2, 0.4 * n
    for z in range(n):
        scale = np.sqrt(max(0.0, 1 - ((z - c) / r) ** 2))
        if scale < 0.1:
            continue
        index = np.clip(((np.arange(size) - size / 2 + 0.5) / scale + size / 2).astype(int), -1, size)
        valid = (index >= 0) & (index < size)
        rows, cols = np.ix_(np.where(valid, index, 0), np.where(valid, index, 0))
        keep = valid[:, None] & valid[None, :]
        volume[z] = np.where(keep, image2d[rows, cols], 0)
        truths["head"][z] = keep & regions[0][rows, cols]
        truths["inner"][z] = keep & regions[1][rows, cols]
    return volume, (1.0, 1.0, 1.0), truths


def interior_point(mask2d: np.ndarray) -> tuple[int, int]:
    dist = ndi.distance_transform_edt(np.pad(mask2d, 1))[1:-1, 1:-1]
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(dist)), dist.shape))


def run_one(pred, volume, spacing, point, truth, config):
    from pge_sam.session import Session

    labels = np.zeros(volume.shape, np.uint16)
    session = Session(pred, volume, labels, spacing=spacing, prefetch=0)
    session.propagation = config
    session.add_point(point)
    t0 = time.perf_counter()
    change = session.propagate()
    seconds = time.perf_counter() - t0
    got = labels == session.label
    blank = ~(volume != 0).any(axis=(1, 2))
    dice = 2 * np.logical_and(got, truth).sum() / max(1, got.sum() + truth.sum()) if truth is not None else float("nan")
    at_zero = int((got & (volume == 0)).sum())
    return {"dice": dice, "voxels": int(got.sum()), "blank": int(got[blank].sum()), "zero": at_zero,
            "zero_pct": 100 * at_zero / max(1, got.sum()), "slices": int(got.any(axis=(1, 2)).sum()),
            "notes": "; ".join(change.notes), "seconds": seconds, "mask": got}


def figure(volume: np.ndarray, masks: dict[str, np.ndarray], path: Path) -> None:
    """Sagittal and coronal mid-planes of ``volume`` (Z, Y, X), one column per entry of ``masks`` overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = volume.shape[2] // 2, volume.shape[1] // 2
    fig, axes = plt.subplots(2, len(masks), figsize=(4 * len(masks), 8), squeeze=False)
    for col, (name, mask) in enumerate(masks.items()):
        for row, (plane, cut) in enumerate((("sagittal", np.s_[:, :, x]), ("coronal", np.s_[:, y, :]))):
            ax = axes[row, col]
            ax.imshow(volume[cut], cmap="gray", origin="lower")
            ax.imshow(np.ma.masked_where(~mask[cut], mask[cut]), cmap="autumn", alpha=0.45, origin="lower")
            blank = ~(volume != 0).any(axis=(1, 2))
            if blank.any():
                ax.axhline(np.flatnonzero(~blank).max() + 0.5, color="cyan", lw=0.8, ls="--")
            ax.set_title(f"{name}: {plane}", fontsize=10)
            ax.set_axis_off()
    fig.suptitle("README main job (click 100,100,70); dashed: top of the head (all-zero slices above)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


def main() -> None:
    import torch

    from pge_sam.models.registry import build_model, default_model
    from pge_sam.predictor import Predictor
    from pge_sam.propagate import PropagationConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="bench-out/propagation_stop.md")
    ap.add_argument("--figure", default=None, help="PNG of the README job's result before/after (sagittal, coronal)")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_model(args.model or default_model(), device="cpu")
    configs = {"before": PropagationConfig(min_content_match=0.0, trim_background=False),
               "content rule only": PropagationConfig(trim_background=False), "after (defaults)": PropagationConfig()}
    rows = []
    t1, spacing, truths = mni_targets()
    cases = [("mni", t1, spacing, kind, (100,) + interior_point(truth[100]), truth) for kind, truth in truths.items()]
    cases.append(("mni", t1, spacing, "README click", (100, 100, 70), None))
    vol, sp, ptruths = phantom_targets()
    mid = vol.shape[0] // 2
    cases += [("phantom3d", vol, sp, kind, (mid,) + interior_point(truth[mid]), truth)
              for kind, truth in ptruths.items()]
    preds, readme_masks = {}, {}
    for data, volume, spacing_, kind, point, truth in cases:
        pred = preds.setdefault(data, Predictor(model))
        for name, config in configs.items():
            r = run_one(pred, volume, spacing_, point, truth, config)
            mask = r.pop("mask")
            rows.append((data, kind, point, name, r))
            if kind == "README click" and name in ("before", "after (defaults)"):
                readme_masks[name] = mask
            print(data, kind, point, name, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()},
                  flush=True)
    lines = [f"model {model.name}; `python benchmarks/propagation_stop.py`", "",
             "| volume | target | click (z,y,x) | rule | Dice | voxels | on all-zero slices | at intensity 0 | "
             "% at 0 | slices |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for data, kind, point, name, r in rows:
        dice = "n/a" if np.isnan(r["dice"]) else f"{r['dice']:.3f}"
        lines.append(f"| {data} | {kind} | {point} | {name} | {dice} | {r['voxels']:,} | {r['blank']:,} | "
                     f"{r['zero']:,} | {r['zero_pct']:.2f} | {r['slices']} |")
    if args.figure:
        figure(t1, readme_masks, Path(args.figure))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Score the README's main job against the MNI ICBM152 template's own masks.

Runs ``pge-sam segment sample:mni_t1 ...`` (the README's arguments unless given) into a temporary
file, then prints the volume Dice of the labelled voxels against the template's brain mask (grey +
white matter probability > 50 %, largest component, holes filled, as the 3D benchmark's
``mni_brain``) and white-matter mask (probability > 50 %), the voxel count, and how many voxels lie
on slices (along the propagation axis) where the image is empty. Optionally saves axial, coronal and
sagittal pictures of the result (``--png``).

Usage:  python benchmarks/readme_job.py [--checkpoint FILE] [--model sam_tiny] [--png docs/images/main_job.png]
        [-- extra segment arguments replacing the README's prompt]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

README_ARGS = ["--point", "100,100,70", "--propagate"]


def masks() -> dict[str, np.ndarray]:
    from pge_sam.samples import load_mni

    p_gm, p_wm = load_mni("gm")[0], load_mni("wm")[0]
    parenchyma = (p_gm + p_wm) > 127.5
    lab, n = ndi.label(parenchyma)
    largest = lab == (1 + int(np.argmax(np.bincount(lab.ravel())[1:]))) if n else parenchyma
    return {"brain": ndi.binary_fill_holes(largest), "white matter": p_wm > 127.5}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint")
    ap.add_argument("--model")
    ap.add_argument("--png")
    ap.add_argument("prompt", nargs="*", help="segment arguments replacing the README's (after --)")
    args = ap.parse_args()
    from pge_sam.io import read_image
    from pge_sam.samples import load_mni

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "labels.nii.gz"
        cmd = [sys.executable, "-m", "pge_sam", "segment", "sample:mni_t1", *(args.prompt or README_ARGS),
               "--out", str(out)]
        cmd += ["--checkpoint", args.checkpoint] if args.checkpoint else []
        cmd += ["--model", args.model] if args.model else []
        print(" ".join(cmd))
        subprocess.run(cmd, check=True)
        labels = read_image(out).array > 0
    t1 = load_mni("t1")[0]
    if labels.shape != t1.shape:
        raise SystemExit(f"labels {labels.shape} vs template {t1.shape}: the axes differ")
    empty = ~t1.reshape(t1.shape[0], -1).any(1)
    print(f"labelled voxels: {int(labels.sum())}; on empty slices: {int(labels[empty].sum())}")
    for name, mask in masks().items():
        print(f"Dice vs {name}: {dice(labels, mask):.3f} ({int(mask.sum())} voxels)")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        z, y, x = (int(v) for v in ndi.center_of_mass(labels)) if labels.any() else (s // 2 for s in t1.shape)
        fig, axes = plt.subplots(1, 3, figsize=(12, 4))
        for ax, (title, img, lab) in zip(axes, (("axial", t1[z], labels[z]), ("coronal", t1[:, y], labels[:, y]),
                                                 ("sagittal", t1[:, :, x], labels[:, :, x]))):
            ax.imshow(img, cmap="gray", origin="lower")
            ax.contour(lab.astype(float), levels=[0.5], colors="r", linewidths=0.8, origin="lower")
            ax.set_title(title)
            ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(args.png, dpi=90)
        print(f"picture: {args.png}")


if __name__ == "__main__":
    main()

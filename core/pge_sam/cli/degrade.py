"""``pge-sam degrade``: list degradations, or write a preview grid (one image x every degradation x severity)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="degrade_command", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="list degradations and their parameters per severity")
    ls.add_argument("--modality", choices=["mri", "ct"], default=None)
    pv = sub.add_parser("preview", help="write a PNG grid of one slice at every degradation and severity")
    pv.add_argument("--modality", choices=["mri", "ct"], required=True)
    pv.add_argument("--image", default=None,
                    help="image file (default: MNI T1 axial slice for mri, Shepp-Logan for ct)")
    pv.add_argument("--slice", type=int, default=None, help="axial slice of a volume (default: middle)")
    pv.add_argument("--out", required=True, help="output PNG path")
    pv.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from .. import degrade

    if args.degrade_command == "list":
        for name in degrade.list_degradations(args.modality):
            print(degrade.describe(name))
        return 0
    from .._optional import check_extra
    from ..degrade.preview import write_preview_grid

    check_extra("bench", "pge-sam degrade preview")

    if args.image:
        from ..io import read_image

        array = read_image(args.image).array
    elif args.modality == "mri":
        from ..samples import load_mni

        array = load_mni("t1")[0]
    else:
        from ..samples import shepp_logan

        array = shepp_logan(256)
    if array.ndim == 3:
        array = array[array.shape[0] // 2 if args.slice is None else args.slice]
    print(write_preview_grid(array, args.out, args.modality, seed=args.seed))
    return 0

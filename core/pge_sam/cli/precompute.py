"""``pge-sam precompute IMAGE --out STORE``: every slice's embedding into a portable store.

Run it where encoding is fast (a GPU machine); copy the store folder along with
the image; open it in a session on the laptop (``pge_sam.embeddings.load_embeddings``,
or ``pge-sam segment IMAGE --embeddings STORE ...``): no slice it holds is encoded again.
The store only serves the same model, weights, image and normalisation (checked).
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="image file, DICOM folder, or sample:mni_t1 / sample:phantom")
    p.add_argument("--out", required=True, metavar="STORE",
                   help="a new or empty folder (e.g. scan-emb.zarr), or a store made earlier for this image and model")
    p.add_argument("--model", default=None, help="model name (default: the offline default); see `pge-sam models`")
    p.add_argument("--checkpoint", default=None, help="base SAM weights file")
    p.add_argument("--adapter", default=None, help="PGE adapter weights file")
    p.add_argument("--device", default="auto", help="auto (default), cuda, mps or cpu")
    p.add_argument("--axis", type=int, action="append", default=None, metavar="AXIS",
                   help="slicing axis to precompute: 0 (Z, default), 1 (Y) or 2 (X); repeat for several")
    p.add_argument("--all-axes", action="store_true", help="precompute along all three axes")
    p.add_argument("--norm", default="percentile:0.5,99.5",
                   help="percentile:LOW,HIGH or window:LEVEL,WIDTH (the annotating session must use the same)")
    p.add_argument("--force", action="store_true",
                   help="replace the entries of a store that was made for another image, model or normalisation")


def run(args) -> int:
    import time

    from ..embeddings import save_embeddings
    from ..errors import InputError
    from ..models.registry import build_model, default_model
    from ..normalize import Normalization
    from ..progress import TqdmProgress
    from ..session import Session
    from .segment import load_input

    image = load_input(args.image)
    ndim = image.array.ndim
    axes = (0, 1, 2) if args.all_axes else tuple(dict.fromkeys(args.axis or [0]))
    if ndim == 2 and axes != (0,):
        raise InputError("a 2D image has only one slicing axis (0)")
    t0 = time.perf_counter()
    model = build_model(args.model or default_model(), checkpoint=args.checkpoint, adapter=args.adapter,
                        device=args.device)
    session = Session(model, image.array, axis=axes[0], spacing=image.spacing,
                      normalization=Normalization.parse(args.norm), prefetch=0)
    summary = save_embeddings(session, args.out, axes=axes, progress=TqdmProgress("precompute"), force=args.force)
    print(f"wrote {summary.path}: {summary.slices} slice embeddings along axis {', '.join(map(str, axes))} "
          f"({summary.encoded} encoded) with model {model.name} on {model.device}, "
          f"{time.perf_counter() - t0:.1f} s")
    return 0

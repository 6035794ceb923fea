"""``pge-sam segment IMAGE --point z,y,x[:+|-] ... --box ... --out LABELS``: the whole job, headless.

Prompts are applied in the order given; ``--next-object`` starts a new label
and ``--propagate`` propagates the current object through the volume.
IMAGE is a file, a DICOM folder, or ``sample:mni_t1`` / ``sample:phantom``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import InputError


class _Ordered(argparse.Action):
    """Collect prompt actions in command-line order into ``args.actions``."""

    def __call__(self, parser, namespace, values, option_string=None):
        actions = getattr(namespace, "actions", None) or []
        actions.append((self.dest, values))
        namespace.actions = actions


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="image file, DICOM folder, or sample:mni_t1 / sample:phantom")
    p.add_argument("--point", dest="point", action=_Ordered, metavar="Z,Y,X[:+|-]",
                   help="a click at a voxel index (Z,Y,X for volumes, ROW,COL for 2D); ':-' makes it negative")
    p.add_argument("--box", dest="box", action=_Ordered, metavar="Z,Y0,X0:Z,Y1,X1",
                   help="box from two opposite corners on the same slice")
    p.add_argument("--next-object", dest="next", action=_Ordered, nargs=0, help="start a new object (new label id)")
    p.add_argument("--propagate", dest="propagate", action=_Ordered, nargs=0,
                   help="propagate the current object through the volume")
    p.add_argument("--out", required=True, help="output label file (.nii.gz, .nrrd, .mha, .tif; .png for 2D); "
                   "checked before any work, never the input image")
    p.add_argument("--force", action="store_true",
                   help="replace --out if it exists (writing back into --labels-in needs no --force)")
    p.add_argument("--labels-in", default=None,
                   help="existing label file to continue from (never overwritten voxel-wise unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="let new objects overwrite other labels' voxels")
    p.add_argument("--model", default=None,
                   help="model name (default: pge_sam_tiny, or sam_tiny when the adapter is not installed); "
                        "see `pge-sam models`")
    p.add_argument("--checkpoint", default=None, help="base SAM weights file")
    p.add_argument("--adapter", default=None, help="PGE adapter weights file")
    p.add_argument("--device", default="auto", help="auto (default), cuda, mps or cpu")
    p.add_argument("--axis", type=int, default=0, help="slicing axis of the volume: 0 (Z), 1 (Y) or 2 (X)")
    p.add_argument("--norm", default="percentile:0.5,99.5", help="percentile:LOW,HIGH or window:LEVEL,WIDTH")
    p.add_argument("--cache-dir", default=None,
                   help="zarr folder for an on-disk embedding cache that survives restarts")
    p.add_argument("--embeddings", default=None, metavar="STORE",
                   help="embedding store made by `pge-sam precompute` for this image and model (checked; "
                        "its slices are not encoded again)")


def parse_point(text: str, ndim: int) -> tuple[tuple[float, ...], bool]:
    """``"z,y,x"``, ``"z,y,x:+"`` or ``"z,y,x:-"`` (``"y,x"`` = row,col in 2D) -> (floats, positive)."""
    coords, _, sign = text.partition(":")
    form = "Z,Y,X" if ndim == 3 else "Y,X"
    message = (f"point {text!r} must be {ndim} comma-separated numbers ({form}, ':-' suffix for a negative "
               f"click) for this {ndim}D image")
    if sign not in ("", "+", "-"):
        raise InputError(message)
    try:
        values = tuple(float(v) for v in coords.split(","))
    except ValueError:
        raise InputError(message) from None
    if len(values) != ndim:
        raise InputError(message)
    return values, sign != "-"


def parse_box(text: str, ndim: int):
    """``"z,y0,x0:z,y1,x1"`` -> two corners (a box has no sign: ``:+``/``:-`` is an error)."""
    parts = text.split(":")
    if len(parts) != 2 or not all(parts):
        example = "40,10,10:40,60,80" if ndim == 3 else "10,10:60,80"
        raise InputError(f"box {text!r} must be exactly two corners separated by one ':' (e.g. {example}); "
                         "a box has no sign, so ':+' or ':-' is not allowed")
    return parse_point(parts[0], ndim)[0], parse_point(parts[1], ndim)[0]


def load_input(spec: str):
    """(LoadedImage) for a path or a ``sample:`` name (``source`` is the file read, or the sample name)."""
    from ..io import LoadedImage, read_image
    from ..samples import SAMPLE_NAMES, mni_path, sample_volume

    if spec.startswith("sample:"):
        name = spec.split(":", 1)[1]
        if name == "mni_t1":
            return read_image(mni_path("t1"))
        if name in SAMPLE_NAMES:
            array, spacing = sample_volume(name)
            return LoadedImage(array, spacing, None, spec)
        raise InputError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLE_NAMES)}")
    return read_image(Path(spec))


def run(args) -> int:
    import numpy as np

    from ..device import cpu_warning
    from ..io import check_output, read_labels, write_labels
    from ..models.registry import build_model, default_model
    from ..normalize import Normalization
    from ..progress import TqdmProgress
    from ..session import Session

    actions = getattr(args, "actions", None) or []
    if not any(kind in ("point", "box") for kind, _ in actions):
        raise InputError("give at least one --point or --box")
    embeddings = getattr(args, "embeddings", None)
    if embeddings and args.cache_dir:
        raise InputError("give --embeddings or --cache-dir, not both (the embedding store is the disk cache)")
    image = load_input(args.image)
    ndim = image.array.ndim
    inputs = [image.source] if not image.source.startswith("sample:") else []
    out = check_output(args.out, ndim, inputs=inputs, keep=args.labels_in, force=args.force)
    if args.labels_in:
        labels = read_labels(args.labels_in, image)
    else:
        labels = np.zeros(image.array.shape, np.uint16)
    model = build_model(args.model or default_model(), checkpoint=args.checkpoint, adapter=args.adapter,
                        device=args.device)
    warning = cpu_warning(model.device)
    if warning and model.spec.name != "tiny":
        print(f"warning: {warning}")
    session = Session(model, image.array, labels, axis=args.axis if ndim == 3 else 0, spacing=image.spacing,
                      normalization=Normalization.parse(args.norm), overwrite=args.overwrite, prefetch=0,
                      disk_cache=args.cache_dir)
    if embeddings:
        from ..embeddings import load_embeddings

        load_embeddings(session, embeddings)
    t0 = time.perf_counter()
    for kind, value in actions:
        if kind == "point":
            point, positive = parse_point(value, ndim)
            change = session.add_point(point, positive)
        elif kind == "box":
            change = session.add_box(*parse_box(value, ndim))
        elif kind == "next":
            session.next_object()
            continue
        else:
            change = session.propagate(progress=TqdmProgress("propagate"))
        print(f"label {change.label}: {kind} -> {change.voxels} voxels changed on {len(change.slices)} slice(s) "
              f"in {change.seconds * 1000:.0f} ms")
        for note in change.notes:
            print(f"  {note}")
    out = write_labels(labels, out, reference=image.reference, spacing=image.spacing)
    counts = {int(v): int(c) for v, c in zip(*np.unique(labels, return_counts=True)) if v}
    print(f"wrote {out}: {counts or 'no'} voxels per label, model {model.name} on {model.device}, "
          f"{time.perf_counter() - t0:.1f} s")
    return 0

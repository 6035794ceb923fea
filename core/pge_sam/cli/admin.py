"""``pge-sam models`` and ``pge-sam weights fetch NAME``."""

from __future__ import annotations

import argparse


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_models(args) -> int:
    import json

    from ..models.registry import default_model, list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<16} {'backbone':<7} {'weights':<8} where")
    for r in rows:
        where = r["weights"] + (f" + {r['adapter']}" if "adapter" in r else "")
        mark = " (default)" if r["name"] == default_model() else ""
        print(f"{r['name']:<16} {r['backbone']:<7} {'present' if r['present'] else 'missing':<8} {where}{mark}")
    print("\nGet official checkpoints with `pge-sam weights fetch vit_b` (or vit_l, vit_h). RobustSAM's release "
          "publishes no checksums: download robustsam_checkpoint_{b,l,h}.pth by hand (see docs/model.md) into "
          "`pge-sam weights dir`. SAM-REF's refiners (sam_ref_*) have no download: train them with "
          "`pge-sam train ref --backbone vit_b` on the official SAM.")
    return 0


def add_weights_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    fetch = sub.add_parser("fetch", help="download and verify an official SAM checkpoint")
    fetch.add_argument("name", help="vit_b, vit_l or vit_h (or sam_vit_b, pge_sam_vit_b, sam_ref_vit_b, ...: the "
                                    "official SAM under the model; PGE adapters and SAM-REF refiners are trained with "
                                    "`pge-sam train`)")
    fetch.add_argument("--dir", default=None, help="target folder (default: $PGE_SAM_CACHE_DIR or the OS cache)")
    sub.add_parser("dir", help="print the folder where checkpoints are kept")


def run_weights(args) -> int:
    from ..models import weights as W

    if args.weights_command == "dir":
        print(W.cache_dir())
        return 0
    if args.name.startswith("robust_sam_"):
        from ..errors import InputError
        from ..models import robust_weights as RW

        backbone = args.name.removeprefix("robust_sam_")
        raise InputError("no checksummed download exists for RobustSAM, so pge-sam does not fetch it. "
                         + RW.missing_message(RW.official_path(backbone), backbone))
    if args.name.startswith("sam_ref_"):
        return _fetch_ref_base(args.name.removeprefix("sam_ref_"), args.dir)
    backbone = args.name.removeprefix("pge_sam_").removeprefix("sam_")
    path = W.fetch_official(backbone, args.dir)
    print(f"{path} (sha256 verified)")
    return 0


def _fetch_ref_base(backbone: str, directory) -> int:
    """``weights fetch sam_ref_<backbone>``: the official SAM under it; its refiners exist only once trained here."""
    from pathlib import Path

    from ..errors import InputError
    from ..models import weights as W
    from ..models.backbones import get_backbone
    from ..models.registry import ref_adapter_path

    get_backbone(backbone)  # an unknown backbone fails with the list of known ones
    refiners = ref_adapter_path(backbone) if directory is None or backbone not in W.OFFICIAL else \
        Path(directory).expanduser() / ref_adapter_path(backbone).name
    train = (f"train them with `pge-sam train ref --backbone {backbone}` and put the exported "
             f"sam_ref_{backbone}.safetensors at {refiners} (or pass --adapter PATH)")
    if backbone not in W.OFFICIAL:  # tiny: base and refiners ship with pge-sam
        what = f"sam_ref_{backbone} has nothing to download: its base sam_{backbone} ships with pge-sam"
        if not refiners.is_file():
            raise InputError(f"{what}, and its SAM-REF refiners {refiners} are missing from this installation; {train}")
        print(f"{what}, and so do its SAM-REF refiners ({refiners})")
        return 0
    path = W.fetch_official(backbone, directory)
    print(f"{path} (sha256 verified): the base SAM of sam_ref_{backbone}")
    if not refiners.is_file():
        print(f"SAM-REF's refiners have no download (no trained release exists): {train}")
    return 0

"""``pge-sam train base|pge|robust|ref [--config YAML] [overrides]``: run or resume a training run."""

from __future__ import annotations

import argparse

from ..errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", choices=["base", "pge", "robust", "ref", "export", "validate"],
                   help="base: a whole SAM from scratch; pge: PGE adapters on a frozen base; "
                        "robust: RobustSAM's decoder additions on a frozen base; "
                        "ref: SAM-REF's refiners on a frozen base; "
                        "export: write the safetensors of a run's last checkpoint (--out RUN_DIR [--to FILE]); "
                        "validate: score sam_<backbone> and pge_sam_<backbone> (--base-weights, --adapter) on the "
                        "held-out scenes, clean and with each degradation at --severity")
    p.add_argument("--to", default=None, help="with export: where to write the safetensors")
    p.add_argument("--adapter", default=None, help="with validate: the PGE adapter to score (default: the shipped one)")
    p.add_argument("--severity", type=int, default=3, help="with validate: the degradation severity (1-3)")
    p.add_argument("--scenes", type=int, default=16, help="with validate: held-out scenes per condition")
    p.add_argument("--config", default=None, help="YAML file with TrainConfig fields (see configs/)")
    p.add_argument("--backbone", default=None, help="tiny (default), vit_b, vit_l or vit_h")
    p.add_argument("--out", dest="out_dir", default=None,
                   help="run folder (checkpoints, metrics.csv, exported weights)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--frl", choices=["foreground", "global", "none"], default=None,
                   help="reconstruction loss (pge stage)")
    p.add_argument("--base-weights", dest="base_weights", default=None,
                   help="base SAM weights for the pge, robust and ref stages")
    p.add_argument("--init", default=None,
                   help="start from these weights: base safetensors (base stage) or trained modules (pge, robust, ref)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--plot", action="store_true", help="also write loss curves (loss.png) into the run folder")


def run(args) -> int:
    from pathlib import Path

    from .._optional import check_extra

    check_extra("train", "pge-sam train")
    from ..train.config import TrainConfig
    from ..train.loop import export_checkpoint, plot_metrics, train

    if args.stage == "export":
        if not args.out_dir:
            raise InputError("export needs --out RUN_DIR (the folder holding last.pt)")
        print(f"exported {export_checkpoint(args.out_dir, args.to)}")
        return 0
    if args.stage == "validate":
        from ..train.validate import per_degradation_table

        cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
        print(per_degradation_table(args.backbone or cfg.backbone, args.base_weights, args.adapter, args.severity,
                                    args.scenes, device=args.device or "auto"))
        return 0

    overrides = {k: getattr(args, k) for k in ("backbone", "out_dir", "steps", "batch_size", "lr", "frl",
                                               "base_weights", "init", "device", "threads", "seed")}
    overrides["stage"] = args.stage
    if args.config:
        cfg = TrainConfig.from_yaml(args.config, **overrides)
    else:
        cfg = TrainConfig.from_dict({k: v for k, v in overrides.items() if v is not None})
    path = train(cfg)
    print(f"exported {path}")
    if args.plot:
        print(f"wrote {plot_metrics(Path(cfg.out_dir) / 'metrics.csv', Path(cfg.out_dir) / 'loss.png')}")
    return 0

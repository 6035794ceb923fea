"""``pge-sam bench``: DM-Seg-mini (models x degradations x severities) -> CSV, markdown summary, plots."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default=None,
                   help="comma-separated model names (see `pge-sam models`); default: sam_tiny and pge_sam_tiny, "
                        "those whose weights are installed. Side by side with RobustSAM and SAM-REF: "
                        "--models sam_tiny,pge_sam_tiny,robust_sam_tiny,sam_ref_tiny")
    p.add_argument("--no-baseline", action="store_true", help="leave out the classical baselines")
    p.add_argument("--baselines", default=None,
                   help="comma-separated classical baselines (default: all: random_walker, region_grow, watershed, "
                        "grabcut and the reference answer), each with its parameters tuned on the dev split")
    p.add_argument("--quick", action="store_true",
                   help="small subset (about a minute): 2 targets per modality, clean + severity 3")
    p.add_argument("--split", default="test", choices=("test", "dev"),
                   help="targets to run on: test (report) or dev (tune)")
    p.add_argument("--design", default="rotate", choices=("rotate", "grid"),
                   help="rotate (default): every target clean plus --per-image degraded conditions per image in turn; "
                        "grid: every target under every degradation and severity")
    p.add_argument("--per-image", type=int, default=1, help="degraded conditions per image in the rotating design")
    p.add_argument("--protocol", default="both", choices=("2d", "3d", "both"),
                   help="2d: click episodes on slices; 3d: click, propagate, correct the worst slice, re-propagate "
                        "(volume Dice per interaction, results3d.csv, summary3d.md); both (default)")
    p.add_argument("--interactions", type=int, default=8, help="interactions per 3D episode")
    p.add_argument("--out", default="bench-out", help="output folder (results.csv, summary.md, *.png); reruns resume")
    p.add_argument("--fresh", action="store_true", help="start a new results.csv instead of resuming")
    p.add_argument("--modalities", default="mri,ct", help="comma-separated: mri, ct")
    p.add_argument("--degradations", default=None,
                   help="comma-separated degradation names (default: all of each modality)")
    p.add_argument("--severities", default=None, help="comma-separated severities, 0 = clean (default: 0,1,2,3)")
    p.add_argument("--max-clicks", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--checkpoint", default=None, help="base weights for every model (official .pth or our safetensors)")
    p.add_argument("--adapter", default=None,
                   help="trained modules for the models of their kind (read from the file's header): a PGE adapter "
                        "(pge-sam train pge) for pge_sam_*, RobustSAM modules (pge-sam train robust) for robust_sam_*, "
                        "SAM-REF refiners (pge-sam train ref) for sam_ref_*")
    p.add_argument("--label", default=None,
                   help="name of the (single) model in the results, e.g. for an ablation adapter: "
                        "--models pge_sam_tiny --adapter runs/pge_global/pge_sam_tiny.safetensors --label pge_global")
    p.add_argument("--pool", nargs="+", default=None, metavar="DIR",
                   help="run nothing: pool the results.csv of these bench folders (e.g. runs with different --seed) "
                        "into --out's summary.md and plots; rows stay paired within their own folder")


def _csv(text):
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


ADAPTER_PREFIXES = {"pge_adapter": "pge_sam_", "robust_adapter": "robust_sam_", "ref_adapter": "sam_ref_"}
"""Header kind of an ``--adapter`` file -> the prefix of the model names it serves."""


def _adapter_chooser(adapter, names):
    """``name -> adapter path or None``: ``adapter`` goes to the named models of its kind (from its header)."""
    if adapter is None:
        return lambda name: None
    from pathlib import Path

    from ..errors import InputError
    from ..models import weights as W

    kind = W.read_safetensors(Path(adapter).expanduser())[1].get("kind")
    prefix = ADAPTER_PREFIXES.get(kind)
    if prefix is None or not any(n.startswith(prefix) for n in names):
        raise InputError(f"--adapter {adapter} holds {kind!r} weights, which none of the models "
                         f"({', '.join(names) or 'none'}) uses; name a "
                         f"{prefix or '/'.join(ADAPTER_PREFIXES.values())}* model")
    return lambda name: adapter if name.startswith(prefix) else None


def classical_factories(names=None) -> dict:
    """name -> factory(modality=...) of the classical baselines (parameters tuned per modality on the dev split)."""
    from ..errors import InputError
    from ..evaluate.classical import classical_predictors

    available = list(classical_predictors("mri"))
    unknown = [n for n in names or () if n not in available]
    if unknown:
        raise InputError(f"unknown baselines {unknown}; choose from {', '.join(available)}")
    return {name: (lambda modality, name=name: classical_predictors(modality)[name]()) for name in names or available}


def run_3d(args, names, model):
    """The 3D protocol for the classical 3D baselines (unless --no-baseline) and the named models."""
    from ..device import resolve_device
    from ..evaluate.classical3d import RandomWalker3D, RegionGrowing3D
    from ..evaluate.protocol3d import run_3d_benchmark, session_method
    from ..progress import TqdmProgress

    methods = {} if args.no_baseline else {"random_walker_3d": RandomWalker3D, "region_growing_3d": RegionGrowing3D}
    for name in names:
        methods[args.label or name] = session_method(model(name), args.label or name)
    cpu = resolve_device(args.device).type == "cpu"
    return run_3d_benchmark(methods, args.out, modality_list=_csv(args.modalities), split=args.split,
                            quick=args.quick, max_interactions=args.interactions, progress=TqdmProgress("bench 3d"),
                            torch_threads=1 if cpu else None)


def run(args) -> int:
    from .._optional import check_extra

    check_extra("bench", "pge-sam bench")
    from ..errors import InputError
    from ..evaluate.bench import run_benchmark
    from ..evaluate.sam_adapter import SessionClickPredictor
    from ..models.registry import build_model, require_weights
    from ..progress import TqdmProgress

    from ..models.registry import list_models

    if args.pool:
        from ..evaluate.report import write_pooled_report

        report = write_pooled_report(args.pool, args.out)
        print(f"summary: {report.summary}")
        return 0
    if args.models is None:
        # The comparison; RobustSAM and SAM-REF join when named (--models), keeping the default run near
        # 10 minutes.
        names = [r["name"] for r in list_models()
                 if r["backbone"] == "tiny" and r["present"] and r["variant"] in ("sam", "pge_sam")]
    else:
        names = _csv(args.models) or []
    if args.label is not None and len(names) != 1:
        raise InputError(f"--label names one model; got {len(names)} models ({', '.join(names) or 'none'})")
    adapter_for = _adapter_chooser(args.adapter, names)
    for name in names:  # unknown names and missing weights fail before any work
        require_weights(name, args.checkpoint, adapter_for(name))
    factories = {}
    if not args.no_baseline:
        factories.update(classical_factories(_csv(args.baselines)))
    built = {}

    def model(name):
        if name not in built:
            built[name] = build_model(name, checkpoint=args.checkpoint, adapter=adapter_for(name), device=args.device)
        return built[name]

    for name in names:
        factories[args.label or name] = lambda name=name: SessionClickPredictor(model(name), name=args.label or name)
    severities = None if args.severities is None else [int(s) for s in _csv(args.severities)]
    if args.protocol in ("3d", "both"):
        path = run_3d(args, names, model)
        print(f"3D results: {path}\n3D summary: {path.with_name('summary3d.md')}")
    if args.protocol == "3d":
        return 0
    result = run_benchmark(factories, args.out, modalities=_csv(args.modalities), degradations=_csv(args.degradations),
                           severities=severities, max_clicks=args.max_clicks, quick=args.quick, seed=args.seed,
                           resume=not args.fresh, progress=TqdmProgress("bench"), split=args.split, design=args.design,
                           per_image=args.per_image)
    print(f"results: {result.csv_path}\nsummary: {result.summary_path}")
    return 0

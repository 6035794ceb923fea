"""DM-Seg-mini v2 benchmark runner: targets x conditions x predictors -> ``results.csv``.

A *condition* is ``("clean", 0)`` or a degradation at a severity >= 1.
Design (``design=``):

* ``"rotate"`` (default): every target is run clean, and each image (the
  targets sharing one ``image_id``) gets ``per_image`` degraded conditions,
  taken in turn from the list of (degradation, severity) pairs, so over the
  split every degradation family and severity is measured, and every
  degraded row has the clean row of the same target to pair with;
* ``"grid"``: every target under every condition (all degradations of the
  modality x ``severities``): the full cross product, for focused runs.

For every (target, condition, predictor) the runner

1. degrades the target's image with ``pge_sam.degrade.apply`` (the mask stays
   the clean ground truth; the degradation seed is derived from ``seed`` and
   the image id, so every target of one image sees the same degraded image,
   and one ``set_image`` serves them all);
2. runs the interaction protocol: ``reset()``; for ``box_first`` targets
   (nested structures) interaction 1 is the bounding box alone; then clicks
   from :func:`~pge_sam.evaluate.clicks.next_click` on the method's own
   errors (RITM convention, never the same pixel twice), each ``predict``
   receiving all clicks so far (and the box), up to ``max_clicks``
   interactions. When nothing is left to click the last IoU is carried to the
   remaining interactions;
3. after another ``reset()``, one box prompt (the ground truth's bounding
   box, inclusive corners);
4. appends one row to ``results.csv``: modality, degradation, severity,
   target, predictor, structure, iou_1..iou_<max_clicks>, miou (mean IoU
   over all interactions: the area under the click curve), noc85, noc90,
   dice5, box_iou, seconds (wall time of the row's predictor calls plus an
   equal share of the image's ``set_image``).

Rows already in ``results.csv`` are skipped (``resume=True``), so an
interrupted run continues where it stopped. Same seed, same numbers (except
``seconds``). ``quick=True``: :data:`~pge_sam.evaluate.datasets.QUICK_COUNTS`
targets per modality, one degraded condition per image.
"""

from __future__ import annotations

import csv
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .baselines import ClickPredictor
from .episode import click_ious
from .datasets import MODALITIES, Target, build_targets
from .metrics import iou, summarize_curve
from .report import CLEAN, write_report

KEY_COLUMNS = ("modality", "degradation", "severity", "target", "predictor")
DESIGNS = ("rotate", "grid")
DEFAULT_SEVERITIES = {"rotate": (0, 2, 3), "grid": (0, 1, 2, 3)}


def csv_columns(max_clicks: int = 20) -> list[str]:
    """Column names of ``results.csv`` for ``max_clicks`` interactions."""
    return [*KEY_COLUMNS, "structure", *(f"iou_{k}" for k in range(1, max_clicks + 1)), "miou", "noc85", "noc90",
            "dice5", "box_iou", "seconds"]


@dataclass
class BenchResult:
    """What a run produced. ``cancelled``: the progress object stopped it early (rows so far are kept)."""

    out_dir: Path
    csv_path: Path
    summary_path: Path
    plots: list[Path] = field(default_factory=list)
    rows_written: int = 0
    rows_skipped: int = 0
    cancelled: bool = False


def bounding_box(mask: np.ndarray) -> np.ndarray:
    """Inclusive bounding box ``(row0, col0, row1, col1)`` (int64) of non-empty bool ``mask`` (H, W)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        raise InputError("cannot take the bounding box of an empty mask")
    return np.array([rows[0], cols[0], rows[-1], cols[-1]], dtype=np.int64)


def _checked_mask(mask, target: Target, predictor: ClickPredictor) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != target.mask.shape:
        raise InputError(
            f"predictor {predictor.name!r} returned a mask of shape {mask.shape} for a "
            f"{target.mask.shape} image; predict must return a bool (H, W) mask"
        )
    return mask.astype(bool, copy=False)


def run_target(predictor: ClickPredictor, target: Target, max_clicks: int = 20) -> dict:
    """Interaction protocol plus one-shot box prompt for one target on the image already set in ``predictor``.

    Returns ``ious`` (list of ``max_clicks`` floats), ``box_iou`` and
    ``seconds`` (time inside ``reset``/``predict``).
    """
    gt = target.mask
    box = bounding_box(gt)
    start = time.perf_counter()
    predictor.reset()
    elapsed = time.perf_counter() - start
    ious, seconds = click_ious(predictor, gt, max_clicks, lambda mask: _checked_mask(mask, target, predictor),
                               box if getattr(target, "box_first", False) else None)
    start = time.perf_counter()
    predictor.reset()
    box_mask = predictor.predict(np.zeros((0, 2), np.int64), np.zeros(0, np.int64), box)
    elapsed += seconds + time.perf_counter() - start
    return {"ious": ious, "box_iou": iou(_checked_mask(box_mask, target, predictor), gt), "seconds": elapsed}


def _conditions(modality: str, degradations, severities: Sequence[int]) -> list[tuple[str, int]]:
    """Every (degradation, severity >= 1) pair of ``modality`` (``degradations``: a subset, or ``None`` for all)."""
    from .. import degrade

    available = degrade.list_degradations(modality)
    names = available if degradations is None else [n for n in degradations if n in available]
    return [(name, s) for s in severities if s > 0 for name in names]  # neighbours differ in family


def _image_conditions(pairs: list[tuple[str, int]], group: int, per_image: int, design: str,
                      clean: bool) -> list[tuple[str, int]]:
    """The conditions of image number ``group``: clean (if asked) plus its share of ``pairs``."""
    own = pairs if design == "grid" else [pairs[(group * per_image + j) % len(pairs)]
                                          for j in range(min(per_image, len(pairs)))]
    return ([(CLEAN, 0)] if clean else []) + list(dict.fromkeys(own))


def _check_args(predictors, modalities, degradations, severities, max_clicks, seed, design, quick=False):
    from .. import degrade

    if not predictors or not all(callable(f) for f in predictors.values()):
        raise InputError("predictors must be a non-empty dict of name -> zero-argument factory")
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        raise InputError(f"unknown modalities {unknown}; choose from {MODALITIES}")
    if isinstance(max_clicks, bool) or not isinstance(max_clicks, int) or max_clicks < 1:
        raise InputError(f"max_clicks must be a positive integer (got {max_clicks!r})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer (got {seed!r})")
    if design not in DESIGNS:
        raise InputError(f"design must be one of {DESIGNS} (got {design!r})")
    if severities is None:
        severities = (0, degrade.MAX_SEVERITY) if quick else DEFAULT_SEVERITIES[design]
    severities = tuple(sorted(set(int(s) for s in severities)))
    if not severities or any(s < 0 or s > degrade.MAX_SEVERITY for s in severities):
        raise InputError(f"severities must lie in 0..{degrade.MAX_SEVERITY} (got {severities})")
    if isinstance(degradations, str):
        degradations = [degradations]
    if degradations is not None:
        known = set(degrade.list_degradations(None))
        bad = [n for n in degradations if n not in known]
        if bad:
            raise InputError(f"unknown degradations {bad}; see pge_sam.degrade.list_degradations()")
        usable = {n for m in modalities for n in degrade.list_degradations(m)}
        unused = [n for n in degradations if n not in usable]
        if unused:
            raise InputError(f"degradations {unused} apply to none of the modalities {tuple(modalities)}")
    return degradations, severities


def _read_done(csv_path: Path, columns: list[str]) -> set[tuple[str, ...]]:
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return set()
        if header != columns:
            raise InputError(
                f"{csv_path} was written with other columns (another max_clicks?); "
                "use another output folder or resume=False to start over"
            )
        return {tuple(row[: len(KEY_COLUMNS)]) for row in reader if row}


def _instantiate(factory: Callable, modality: str, shared):
    """A factory that takes ``modality`` (e.g. classical methods tuned per modality) is called once per
    modality; any other factory once in all (``shared``: its instance, when it exists)."""
    import inspect

    try:
        takes_modality = "modality" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins and some callables have no signature
        takes_modality = False
    if takes_modality:
        return factory(modality=modality)
    return shared if shared is not None else factory()


def _image_seed(seed: int, image_id: str) -> int:
    return zlib.crc32(f"{seed}|{image_id}".encode()) & 0x7FFFFFFF


def run_benchmark(
    predictors: Mapping[str, Callable[[], ClickPredictor]],
    out_dir,
    modalities: Sequence[str] = ("mri", "ct"),
    degradations: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    max_clicks: int = 20,
    quick: bool = False,
    seed: int = 0,
    resume: bool = True,
    progress=None,
    targets: Mapping[str, Sequence[Target]] | None = None,
    split: str = "test",
    design: str = "rotate",
    per_image: int = 1,
) -> BenchResult:
    """Run DM-Seg-mini and write ``results.csv``, ``summary.md`` and PNG plots into ``out_dir``.

    ``predictors``: name -> factory; each factory is called at most once, when
    its first row is due. ``degradations``: names (each used for the
    modalities it applies to) or ``None`` for all of each modality.
    ``severities``: ``None`` means (0, 2, 3) for ``design="rotate"`` and
    0..3 for ``"grid"``; 0 is the clean condition. ``split``: "test" (report)
    or "dev" (tuning). ``per_image``: degraded conditions per image in the
    rotating design (1 with ``quick``, whose severities default to (0, 3)). ``targets``: modality -> targets,
    replacing :func:`~pge_sam.evaluate.datasets.build_targets` (custom data,
    tests). ``resume=False`` starts a fresh ``results.csv``. ``progress``:
    object with ``start(total)``, ``update(n)``, ``cancelled()``, or ``None``;
    on cancellation the run stops, keeps its rows and reports ``cancelled``.
    """
    from .. import degrade
    from ..progress import ensure

    degradations, severities = _check_args(predictors, modalities, degradations, severities, max_clicks, seed, design,
                                           quick)
    per_image = 1 if quick else per_image
    progress = ensure(progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "results.csv"
    columns = csv_columns(max_clicks)
    done = _read_done(csv_path, columns) if resume and csv_path.exists() else set()
    if not done or not resume:
        with open(csv_path, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(columns)

    plan = []  # (modality, degradation, severity, [targets of one image])
    for modality in modalities:
        chosen = (list(targets[modality]) if targets and modality in targets
                  else build_targets(modality, quick, seed, split=split))
        if any(t.modality != modality for t in chosen) or len({t.name for t in chosen}) != len(chosen):
            raise InputError(f"the {modality} targets must all have modality {modality!r} and unique names")
        groups: dict[str, list[Target]] = {}
        for target in chosen:
            groups.setdefault(target.image_id, []).append(target)
        pairs = _conditions(modality, degradations, severities)
        for number, group in enumerate(groups.values()):
            for name, severity in _image_conditions(pairs, number, per_image, design, 0 in severities):
                plan.append((modality, name, severity, group))

    total = sum(len(group) for *_, group in plan) * len(predictors)
    result = BenchResult(out_dir, csv_path, out_dir / "summary.md")
    progress.start(total)
    instances: dict = {}  # name -> instance, and (name, modality) -> instance
    with open(csv_path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for modality, name, severity, group in plan:
            if result.cancelled:
                break
            pending = {
                p: [t for t in group if (modality, name, str(severity), t.name, p) not in done] for p in predictors
            }
            skipped = sum(len(group) - len(todo) for todo in pending.values())
            result.rows_skipped += skipped
            progress.update(skipped)
            if not any(pending.values()):
                continue
            image = group[0].image
            if severity > 0:
                image = degrade.apply(image, name, severity, seed=_image_seed(seed, group[0].image_id))
            for pname, todo in pending.items():
                if not todo or result.cancelled:
                    continue
                if (pname, modality) not in instances:
                    instances[(pname, modality)] = _instantiate(predictors[pname], modality, instances.get(pname))
                    instances.setdefault(pname, instances[(pname, modality)])
                predictor = instances[(pname, modality)]
                start = time.perf_counter()
                predictor.set_image(image)
                share = (time.perf_counter() - start) / len(todo)
                for target in todo:
                    if progress.cancelled():
                        result.cancelled = True
                        break
                    out = run_target(predictor, target, max_clicks)
                    summary = summarize_curve(out["ious"], max_clicks)
                    values = [*out["ious"], float(np.mean(out["ious"])), summary.noc85, summary.noc90, summary.dice5,
                              out["box_iou"]]
                    writer.writerow(
                        [modality, name, severity, target.name, pname, getattr(target, "structure", "")]
                        + [f"{v:.6f}" if isinstance(v, float) else v for v in values]
                        + [f"{out['seconds'] + share:.4f}"]
                    )
                    handle.flush()
                    result.rows_written += 1
                    progress.update(1)
    report = write_report(csv_path, out_dir)
    result.summary_path, result.plots = report.summary, report.plots
    return result

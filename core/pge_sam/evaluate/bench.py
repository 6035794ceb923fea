"""DM-Seg-mini benchmark runner: targets x conditions x predictors -> ``results.csv``.

A *condition* is ``("clean", 0)`` (run once per modality) or a degradation
at a severity >= 1. For every (target, condition, predictor) the runner

1. degrades the target's image with ``pge_sam.degrade.apply`` (the mask stays
   the clean ground truth; the degradation seed is derived from ``seed`` and
   the image id, so every target of one image sees the same degraded image,
   and one ``set_image`` serves them all);
2. runs the click protocol of :mod:`~pge_sam.evaluate.clicks`: ``reset()``,
   then up to ``max_clicks`` clicks, each ``predict`` receiving all clicks so
   far (a stateful predictor feeds its previous logits back itself). When a
   prediction is perfect there is nothing left to click; its IoU (1.0) is
   carried to the remaining clicks;
3. after another ``reset()``, one box prompt (the ground truth's bounding
   box, inclusive corners);
4. appends one row to ``results.csv``: modality, degradation, severity,
   target, predictor, iou_1..iou_<max_clicks>, noc85, noc90, dice5, box_iou,
   seconds (wall time of the row's predictor calls plus an equal share of the
   image's ``set_image``).

Rows already in ``results.csv`` are skipped (``resume=True``), so an
interrupted run continues where it stopped. Same seed, same numbers (except
``seconds``).

Budget (2-core CPU, random walker at ~30 ms per click plus two SAM-sized
predictors at ~0.15 s per image and ~20 ms per click, so ~1.7 s per target
and condition):

* default: all severities 0..3 and every degradation of the modality
  (MRI 12, CT 9: 37 and 28 conditions) on 6 MRI and 4 CT targets
  (:data:`~pge_sam.evaluate.datasets.DEFAULT_COUNTS`): 334 target-conditions,
  about 10 minutes;
* ``quick=True``: 2 targets per modality, severities 0 and the highest, and
  :data:`QUICK_DEGRADATIONS` (the first general degradation and the first and
  last modality-specific ones): 16 target-conditions, well under a minute.
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
from .clicks import next_click
from .datasets import MODALITIES, Target, build_targets
from .metrics import iou, summarize_curve
from .report import CLEAN, write_report

KEY_COLUMNS = ("modality", "degradation", "severity", "target", "predictor")
QUICK_DEGRADATIONS = 3


def csv_columns(max_clicks: int = 20) -> list[str]:
    """Column names of ``results.csv`` for ``max_clicks`` clicks."""
    return [*KEY_COLUMNS, *(f"iou_{k}" for k in range(1, max_clicks + 1)), "noc85", "noc90", "dice5", "box_iou", "seconds"]


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


def click_ious(predictor: ClickPredictor, gt: np.ndarray, max_clicks: int, check=None) -> tuple[list[float], float]:
    """IoU after each of ``max_clicks`` protocol clicks (:func:`next_click`) on ``gt`` (H, W) bool.

    ``predictor`` must be reset on its image. A perfect prediction ends the
    episode early and its IoU repeats to ``max_clicks`` values. ``check``:
    optional function applied to every predicted mask before scoring.
    Returns the IoUs and the seconds spent inside ``predictor.predict``.
    """
    points: list[tuple[int, int]] = []
    labels: list[int] = []
    ious: list[float] = []
    pred, seconds = None, 0.0
    while len(ious) < max_clicks:
        click = next_click(gt, pred)
        if click is None:  # perfect prediction: nothing left to correct
            ious.extend([ious[-1]] * (max_clicks - len(ious)))
            break
        points.append((click.row, click.col))
        labels.append(1 if click.positive else 0)
        start = time.perf_counter()
        pred = predictor.predict(np.array(points, dtype=np.int64), np.array(labels, dtype=np.int64))
        seconds += time.perf_counter() - start
        pred = check(pred) if check is not None else pred
        ious.append(iou(pred, gt))
    return ious, seconds


def run_target(predictor: ClickPredictor, target: Target, max_clicks: int = 20) -> dict:
    """Click protocol plus box prompt for one target on the image already set in ``predictor``.

    Returns ``ious`` (list of ``max_clicks`` floats), ``box_iou`` and
    ``seconds`` (time inside ``reset``/``predict``).
    """
    gt = target.mask
    start = time.perf_counter()
    predictor.reset()
    elapsed = time.perf_counter() - start
    ious, seconds = click_ious(predictor, gt, max_clicks, lambda mask: _checked_mask(mask, target, predictor))
    start = time.perf_counter()
    predictor.reset()
    box_mask = predictor.predict(np.zeros((0, 2), np.int64), np.zeros(0, np.int64), bounding_box(gt))
    elapsed += seconds + time.perf_counter() - start
    return {"ious": ious, "box_iou": iou(_checked_mask(box_mask, target, predictor), gt), "seconds": elapsed}


def _conditions(modality: str, degradations, severities: Sequence[int], quick: bool) -> list[tuple[str, int]]:
    from .. import degrade

    available = degrade.list_degradations(modality)
    if degradations is None:
        names = available
        if quick:
            general = [n for n in available if n in degrade.list_degradations("ct" if modality == "mri" else "mri")]
            specific = [n for n in available if n not in general]
            names = list(dict.fromkeys(general[:1] + specific[:1] + specific[-1:]))[:QUICK_DEGRADATIONS]
    else:
        names = [n for n in degradations if n in available]
    conditions = [(CLEAN, 0)] if 0 in severities else []
    return conditions + [(name, s) for name in names for s in severities if s > 0]


def _check_args(predictors, modalities, degradations, severities, max_clicks, seed, quick):
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
    if severities is None:
        severities = (0, degrade.MAX_SEVERITY) if quick else tuple(range(degrade.MAX_SEVERITY + 1))
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
) -> BenchResult:
    """Run DM-Seg-mini and write ``results.csv``, ``summary.md`` and PNG plots into ``out_dir``.

    ``predictors``: name -> factory; each factory is called at most once, when
    its first row is due. ``degradations``: names (each used for the
    modalities it applies to) or ``None`` for all of each modality (a subset
    with ``quick``). ``severities``: ``None`` means 0..3, or (0, 3) with
    ``quick``; 0 is the clean condition. ``targets``: modality -> targets,
    replacing :func:`~pge_sam.evaluate.datasets.build_targets` (custom data,
    tests). ``resume=False`` starts a fresh ``results.csv``. ``progress``:
    object with ``start(total)``, ``update(n)``, ``cancelled()``, or ``None``;
    on cancellation the run stops, keeps its rows and reports ``cancelled``.
    """
    from .. import degrade
    from ..progress import ensure

    degradations, severities = _check_args(predictors, modalities, degradations, severities, max_clicks, seed, quick)
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
        chosen = list(targets[modality]) if targets and modality in targets else build_targets(modality, quick, seed)
        if any(t.modality != modality for t in chosen) or len({t.name for t in chosen}) != len(chosen):
            raise InputError(f"the {modality} targets must all have modality {modality!r} and unique names")
        groups: dict[str, list[Target]] = {}
        for target in chosen:
            groups.setdefault(target.image_id, []).append(target)
        for name, severity in _conditions(modality, degradations, severities, quick):
            plan.extend((modality, name, severity, group) for group in groups.values())

    total = sum(len(group) for *_, group in plan) * len(predictors)
    result = BenchResult(out_dir, csv_path, out_dir / "summary.md")
    progress.start(total)
    instances: dict[str, ClickPredictor] = {}
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
                if pname not in instances:
                    instances[pname] = predictors[pname]()
                predictor = instances[pname]
                start = time.perf_counter()
                predictor.set_image(image)
                share = (time.perf_counter() - start) / len(todo)
                for target in todo:
                    if progress.cancelled():
                        result.cancelled = True
                        break
                    out = run_target(predictor, target, max_clicks)
                    summary = summarize_curve(out["ious"], max_clicks)
                    values = [*out["ious"], summary.noc85, summary.noc90, summary.dice5, out["box_iou"]]
                    writer.writerow(
                        [modality, name, severity, target.name, pname]
                        + [f"{v:.6f}" if isinstance(v, float) else v for v in values]
                        + [f"{out['seconds'] + share:.4f}"]
                    )
                    handle.flush()
                    result.rows_written += 1
                    progress.update(1)
    report = write_report(csv_path, out_dir)
    result.summary_path, result.plots = report.summary, report.plots
    return result

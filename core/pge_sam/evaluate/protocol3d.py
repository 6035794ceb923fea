"""3D interaction protocol: click a volume, propagate, correct the worst slice, repeat; score volume Dice.

Volumes and masks are ``(Z, Y, X)``; slices are taken along axis 0; points
are voxel indices ``(z, y, x)``. A *3D method* (:class:`Method3D`) has
``start(volume, spacing)``, ``interact(point_zyx, positive)``,
``propagate()`` and ``labels`` (bool ``(Z, Y, X)``). Our models take part
through :func:`session_method` (a :class:`~pge_sam.session.Session` driven as
a user would); the classical 3D baselines are in
:mod:`pge_sam.evaluate.classical3d`.

Episode (:func:`run_episode`), at most ``max_interactions`` interactions:

1. one positive click on the slice with the largest cross-section of the
   ground truth (first such slice on ties), at its most interior pixel
   (:func:`~pge_sam.evaluate.clicks.farthest_point`), then ``propagate()``;
2. each further interaction: the worst slice (most error voxels, false
   positives + false negatives, over all slices; lowest index on ties) gets
   one corrective click from the 2D click simulator
   (:func:`~pge_sam.evaluate.clicks.next_click` on that slice, never twice on
   one pixel; on a slice without object every error is a false positive and
   the negative click goes to the pixel of the false positives farthest from
   their boundary); when the simulator has nothing left there, the next worst
   slice is used. Then ``propagate()`` again (the session re-propagates from
   all its prompted slices);
3. volume Dice after every interaction; when no error is left to click, the
   last Dice is carried to the remaining interactions.

:func:`run_3d_benchmark` runs every method on every target and writes
``results3d.csv`` (modality, target, method, dice_1..dice_K, noi85, noi90,
seconds) and ``summary3d.md`` (:func:`summary3d_markdown`).
"""

from __future__ import annotations

import csv
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from ..errors import InputError
from .clicks import Click, farthest_point, next_click
from .metrics import dice, noc
from .targets3d import MODALITIES_3D, SPLITS_3D, Target3D, build_targets3d

QUICK_INTERACTIONS = 3


class Method3D(Protocol):
    """What the 3D protocol needs from a method (see the module docstring for shapes)."""

    name: str

    def start(self, volume: np.ndarray, spacing) -> None: ...

    def interact(self, point_zyx, positive: bool) -> None: ...

    def propagate(self) -> None: ...

    @property
    def labels(self) -> np.ndarray: ...


class SessionMethod3D:
    """A model through the real :class:`~pge_sam.session.Session` (axis 0, ``prefetch=0``, the target's spacing).

    ``interact`` is ``Session.add_point``; ``propagate`` is ``Session.propagate``
    (skipped while no clicked slice holds any of the object, where the session
    would have nothing to propagate from); ``labels`` is the session's object
    in its uint16 buffer, as bool ``(Z, Y, X)``.
    """

    def __init__(self, predictor, name: str, config=None) -> None:
        self.predictor, self.name, self.config = predictor, name, config
        self.session = None
        self._buffer: np.ndarray | None = None
        self._clicked: set[int] = set()

    def start(self, volume: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> None:
        from ..session import Session

        self._buffer = np.zeros(np.shape(volume), np.uint16)
        self.session = Session(self.predictor, volume, self._buffer, axis=0, spacing=spacing, prefetch=0)
        self._clicked = set()

    def interact(self, point_zyx, positive: bool = True) -> None:
        if self.session is None:
            raise InputError(f"call {self.name}.start(volume, spacing) before interact")
        point = tuple(int(v) for v in point_zyx)
        self.session.add_point(point, positive=bool(positive))
        self._clicked.add(point[0])

    def propagate(self) -> None:
        if self.session is None:
            raise InputError(f"call {self.name}.start(volume, spacing) before propagate")
        label = self.session.label
        if any((self._buffer[z] == label).any() for z in self._clicked):
            self.session.propagate(config=self.config)

    @property
    def labels(self) -> np.ndarray:
        if self.session is None:
            raise InputError(f"call {self.name}.start(volume, spacing) first")
        return self._buffer == self.session.label


def session_method(model, name: str | None = None, config=None) -> Callable[[], SessionMethod3D]:
    """A factory of :class:`SessionMethod3D` for ``model``; all its methods share one ``Predictor(model)``.

    ``config``: a :class:`~pge_sam.propagate.PropagationConfig` for every
    ``propagate`` (default: the session's). The shared predictor's embedding
    cache serves every target of one volume.
    """
    from ..predictor import Predictor

    predictor = Predictor(model)
    label = name or model.name

    def factory() -> SessionMethod3D:
        return SessionMethod3D(predictor, label, config)

    return factory


@dataclass(frozen=True)
class Click3D:
    """A simulated click at voxel ``(z, row, col)``; ``positive`` adds to the object."""

    z: int
    row: int
    col: int
    positive: bool

    @property
    def point(self) -> tuple[int, int, int]:
        return (self.z, self.row, self.col)


@dataclass
class Episode:
    """One episode: ``dices[k]`` after interaction k + 1, the clicks made, seconds spent inside the method."""

    dices: list[float] = field(default_factory=list)
    clicks: list[Click3D] = field(default_factory=list)
    seconds: float = 0.0


def first_click(gt: np.ndarray) -> Click3D:
    """Positive click at the most interior pixel of the largest cross-section (along axis 0) of bool ``gt``."""
    areas = np.count_nonzero(gt, axis=(1, 2))
    if not areas.any():
        raise InputError("the ground-truth mask is empty; a 3D target needs at least one voxel")
    z = int(np.argmax(areas))
    row, col = farthest_point(gt[z])
    return Click3D(z, row, col, True)


def _false_positive_click(pred: np.ndarray, clicked) -> Click | None:
    """Negative click deepest inside ``pred`` (H, W) bool, on a slice without object; ``clicked`` pixels excluded."""
    from scipy import ndimage as ndi

    depth = ndi.distance_transform_edt(np.pad(pred, 1))[1:-1, 1:-1]
    for row, col in clicked:
        depth[row, col] = 0.0
    if depth.max() <= 0:
        return None
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return Click(int(row), int(col), False)


def corrective_click(gt: np.ndarray, pred: np.ndarray, clicked: Mapping[int, set] | None = None) -> Click3D | None:
    """The next corrective click for bool ``gt`` and ``pred`` (Z, Y, X), or ``None`` when nothing is left to click.

    Slices are tried from the most error voxels down (ties: lowest index);
    ``clicked``: slice index -> the ``(row, col)`` already clicked there.
    """
    clicked = clicked or {}
    errors = np.count_nonzero(gt != pred, axis=(1, 2))
    for z in np.argsort(-errors, kind="stable"):
        if errors[z] == 0:
            break
        taken = clicked.get(int(z), set())
        if gt[z].any():
            click = next_click(gt[z], pred[z], taken)
        else:
            click = _false_positive_click(pred[z], taken)
        if click is not None:
            return Click3D(int(z), int(click.row), int(click.col), bool(click.positive))
    return None


def _labels(method, shape) -> np.ndarray:
    mask = np.asarray(method.labels)
    if mask.shape != tuple(shape):
        raise InputError(f"method {getattr(method, 'name', method)!r} returned labels of shape {mask.shape} "
                         f"for a {tuple(shape)} volume; labels must be a bool (Z, Y, X) mask")
    return mask.astype(bool, copy=False)


def run_episode_detailed(session_factory: Callable[[], Method3D], target: Target3D,
                         max_interactions: int = 8) -> Episode:
    """:func:`run_episode` returning the clicks and the seconds spent in the method as well."""
    if isinstance(max_interactions, bool) or not isinstance(max_interactions, (int, np.integer)) \
            or max_interactions < 1:
        raise InputError(f"max_interactions must be a positive integer (got {max_interactions!r})")
    gt = np.asarray(target.mask, dtype=bool)
    episode = Episode()
    clicked: dict[int, set] = {}
    t0 = time.perf_counter()
    method = session_factory()
    method.start(target.volume, target.spacing)
    episode.seconds += time.perf_counter() - t0
    click: Click3D | None = first_click(gt)
    while len(episode.dices) < max_interactions:
        if click is None:
            episode.dices.extend([episode.dices[-1]] * (max_interactions - len(episode.dices)))
            break
        episode.clicks.append(click)
        clicked.setdefault(click.z, set()).add((click.row, click.col))
        t0 = time.perf_counter()
        method.interact(click.point, click.positive)
        method.propagate()
        pred = _labels(method, gt.shape)
        episode.seconds += time.perf_counter() - t0
        episode.dices.append(float(dice(pred, gt)))
        if len(episode.dices) < max_interactions:
            click = corrective_click(gt, pred, clicked)
    return episode


def run_episode(session_factory: Callable[[], Method3D], target: Target3D, max_interactions: int = 8) -> list[float]:
    """Volume Dice after each of ``max_interactions`` interactions of the 3D protocol (module docstring).

    ``session_factory``: zero-argument callable returning a fresh 3D method
    (e.g. :func:`session_method` ``(model)``); it is called once and the
    method is started on ``target.volume`` with ``target.spacing``.
    """
    return run_episode_detailed(session_factory, target, max_interactions).dices


def noi(dices: Sequence[float], threshold: float, max_interactions: int | None = None) -> int:
    """Number of interactions to reach volume Dice >= ``threshold``; ``max_interactions`` (default
    ``len(dices)``) when it is never reached."""
    limit = len(dices) if max_interactions is None else max_interactions
    if limit < 1:
        raise InputError("noi needs at least one interaction (a non-empty Dice list or max_interactions >= 1)")
    return noc(dices, threshold, limit)


def csv_columns3d(max_interactions: int) -> list[str]:
    """Columns of ``results3d.csv`` for ``max_interactions`` interactions."""
    return ["modality", "target", "method", *(f"dice_{k}" for k in range(1, max_interactions + 1)),
            "noi85", "noi90", "seconds"]


def run_3d_benchmark(methods: Mapping[str, Callable[[], Method3D]], out_dir,
                     modality_list: Sequence[str] = ("mri", "ct"), split: str = "test", quick: bool = False,
                     max_interactions: int = 8, progress=None,
                     targets: Mapping[str, Sequence[Target3D]] | None = None, torch_threads: int | None = None) -> Path:
    """Run the 3D protocol for every method on every target; returns the path of ``results3d.csv``.

    ``methods``: name -> zero-argument factory of a 3D method (called once
    per target). ``quick``: one target per modality and
    :data:`QUICK_INTERACTIONS` interactions. ``targets``: modality -> targets,
    replacing :func:`~pge_sam.evaluate.targets3d.build_targets3d` (tests,
    custom data). ``progress``: ``start(total)``, ``update(n)``,
    ``cancelled()`` (one step per row); cancelling keeps the rows so far.
    ``torch_threads``: torch's intra-op threads during the run (restored
    after); ``None`` leaves them alone. On a 2-core CPU shared with other
    work, 1 thread makes the tiny model's run several times faster
    (oversubscribed threads stall its many small decoder calls).
    Writes ``results3d.csv`` (rewritten on every run) and ``summary3d.md`` into ``out_dir``.
    """
    from ..progress import ensure

    if not methods or not all(callable(f) for f in methods.values()):
        raise InputError("methods must be a non-empty dict of name -> zero-argument factory of a 3D method")
    unknown = [m for m in modality_list if m not in MODALITIES_3D]
    if unknown or not modality_list:
        raise InputError(f"unknown modalities {unknown}; choose from {MODALITIES_3D}")
    if split not in SPLITS_3D:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS_3D)}")
    if isinstance(max_interactions, bool) or not isinstance(max_interactions, int) or max_interactions < 1:
        raise InputError(f"max_interactions must be a positive integer (got {max_interactions!r})")
    k = min(QUICK_INTERACTIONS, max_interactions) if quick else max_interactions
    plan = []
    for modality in modality_list:
        chosen = list(targets[modality]) if targets and modality in targets else build_targets3d(modality, split, quick)
        if targets and modality in targets and quick:
            chosen = chosen[:1]
        if len({t.name for t in chosen}) != len(chosen):
            raise InputError(f"the {modality} targets must have unique names")
        plan += [(modality, t) for t in chosen]
    if torch_threads is not None and (isinstance(torch_threads, bool) or not isinstance(torch_threads, int)
                                      or torch_threads < 1):
        raise InputError(f"torch_threads must be a positive integer or None (got {torch_threads!r})")
    progress = ensure(progress)
    progress.start(len(plan) * len(methods))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "results3d.csv"
    with _threads(torch_threads):
        rows = _run_plan(plan, methods, k, csv_path, progress)
    (out_dir / "summary3d.md").write_text(summary3d_markdown(rows), encoding="utf-8")
    return csv_path


@contextmanager
def _threads(count: int | None):
    """torch's intra-op thread count set to ``count`` inside the block (nothing when ``None``)."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_plan(plan, methods, k: int, csv_path: Path, progress) -> list[dict[str, str]]:
    """Run every (modality, target) x method episode, writing rows to ``csv_path``; returns the rows."""
    rows = []
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(csv_columns3d(k))
        for modality, target in plan:
            for name, factory in methods.items():
                if progress.cancelled():
                    break
                episode = run_episode_detailed(factory, target, k)
                row = [modality, target.name, name, *(f"{d:.6f}" for d in episode.dices),
                       noi(episode.dices, 0.85), noi(episode.dices, 0.90), f"{episode.seconds:.3f}"]
                writer.writerow(row)
                handle.flush()
                rows.append(dict(zip(csv_columns3d(k), (str(v) for v in row))))
                progress.update(1)
    return rows


def load_results3d(csv_path) -> list[dict[str, str]]:
    """The rows of a ``results3d.csv`` as dicts of column -> string."""
    with open(csv_path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def summary3d_markdown(rows: Sequence[Mapping[str, object]]) -> str:
    """Markdown: one table per modality, one line per method (in order of appearance).

    Columns: number of distinct targets, mean volume Dice after interaction
    1, 3 and K (the last ``dice_k`` column), mean NoI@85 and NoI@90, mean
    seconds per target. ``rows``: dicts with the columns of ``results3d.csv``
    (strings or numbers).
    """
    if not rows:
        return "# 3D benchmark\n\nNo results.\n"
    last = max(int(c.split("_")[1]) for c in rows[0] if str(c).startswith("dice_"))
    shown = sorted({1, min(3, last), last})
    lines = ["# 3D benchmark", ""]
    for modality in dict.fromkeys(str(r["modality"]) for r in rows):
        of_modality = [r for r in rows if str(r["modality"]) == modality]
        lines += [f"## {modality}", "",
                  "| method | targets | " + " | ".join(f"Dice@{j}" for j in shown) + " | NoI@85 | NoI@90 | s/target |",
                  "|---|---:|" + "---:|" * (len(shown) + 3)]
        for method in dict.fromkeys(str(r["method"]) for r in of_modality):
            mine = [r for r in of_modality if str(r["method"]) == method]

            def mean(column: str) -> float:
                return float(np.mean([float(r[column]) for r in mine]))

            cells = [method, str(len({str(r["target"]) for r in mine}))]
            cells += [f"{mean(f'dice_{j}'):.3f}" for j in shown]
            cells += [f"{mean('noi85'):.2f}", f"{mean('noi90'):.2f}", f"{mean('seconds'):.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"Volume Dice after interaction k (1 = click + propagate, then one corrective click on the worst "
                 f"slice + re-propagation each); NoI@t = interactions to Dice >= t ({last} if never).")
    return "\n".join(lines) + "\n"

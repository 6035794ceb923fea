"""The 3D protocol: episodes with stand-in methods on a synthetic ball, NoI, the classical 3D baselines, targets."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from pge_sam.errors import InputError
from pge_sam.evaluate.classical3d import RandomWalker3D, RegionGrowing3D
from pge_sam.evaluate.metrics import dice
from pge_sam.evaluate.protocol3d import (
    corrective_click,
    csv_columns3d,
    first_click,
    noi,
    run_3d_benchmark,
    run_episode,
    run_episode_detailed,
    session_method,
    summary3d_markdown,
)
from pge_sam.evaluate.targets3d import ball_target, build_targets3d
from pge_sam.progress import RecordingProgress


class StandIn:
    """A session-like 3D method that knows the truth.

    A positive click on slice z paints ``gt[z]``, a negative one clears the
    slice; ``propagate`` copies ``gt`` onto every slice within ``reach`` of a
    positively clicked slice (``reach=None``: every slice of the object's run
    of non-empty slices, i.e. everything reachable). ``before[k]``: the
    prediction just before click k.
    """

    name = "stand_in"

    def __init__(self, gt: np.ndarray, reach: int | None = None) -> None:
        self.gt, self.reach = gt, reach

    def start(self, volume, spacing) -> None:
        assert volume.shape == self.gt.shape and len(spacing) == 3
        self.pred = np.zeros(self.gt.shape, bool)
        self.prompted: set[int] = set()
        self.clicks: list[tuple[tuple[int, int, int], bool]] = []
        self.before: list[np.ndarray] = []

    def interact(self, point, positive) -> None:
        self.before.append(self.pred.copy())
        self.clicks.append((tuple(point), bool(positive)))
        z = point[0]
        if positive:
            self.prompted.add(z)
            self.pred[z] = self.gt[z]
        else:
            self.pred[z] = False

    def propagate(self) -> None:
        filled = np.flatnonzero(self.gt.any(axis=(1, 2)))
        for z in self.prompted:
            lo, hi = (filled[0], filled[-1]) if self.reach is None else (z - self.reach, z + self.reach)
            for s in range(max(0, lo), min(len(self.gt), hi + 1)):
                self.pred[s] = self.gt[s]

    @property
    def labels(self) -> np.ndarray:
        return self.pred


def _keeper(gt, reach=None):
    """A factory that also keeps the last method it made (to inspect its clicks)."""
    made = []

    def factory():
        made.append(StandIn(gt, reach))
        return made[-1]

    return factory, made


def test_perfect_stand_in_reaches_dice_one_after_the_first_interaction():
    target = ball_target()
    factory, made = _keeper(target.mask)
    dices = run_episode(factory, target, max_interactions=5)
    assert dices == [1.0] * 5  # nothing left to click: the last Dice is carried
    assert len(made[0].clicks) == 1
    (z, row, col), positive = made[0].clicks[0]
    areas = target.mask.sum(axis=(1, 2))
    assert positive and z == int(np.argmax(areas)) and target.mask[z, row, col]
    assert noi(dices, 0.9) == 1


def test_imperfect_stand_in_is_corrected_on_the_worst_slice():
    target = ball_target()
    gt = target.mask
    factory, made = _keeper(gt, reach=2)
    episode = run_episode_detailed(factory, target, max_interactions=6)
    method = made[0]
    first = first_click(gt)
    assert method.clicks[0] == (first.point, True)
    reached = np.zeros(gt.shape, bool)
    reached[first.z - 2: first.z + 3] = gt[first.z - 2: first.z + 3]
    assert episode.dices[0] == pytest.approx(dice(reached, gt))
    for k in range(1, len(method.clicks)):
        pred = method.before[k]  # the prediction the k-th corrective click saw
        assert episode.dices[k - 1] == pytest.approx(dice(pred, gt))
        (z, row, col), positive = method.clicks[k]
        errors = (pred != gt).sum(axis=(1, 2))
        assert errors[z] == errors.max() and z == int(np.argmax(errors))  # the worst slice (first on ties)
        assert pred[z, row, col] != gt[z, row, col] and positive == bool(gt[z, row, col])  # on an error voxel
    assert all(b > a for a, b in zip(episode.dices, episode.dices[1:]) if a < 1.0)
    assert episode.dices[-1] == 1.0
    assert noi(episode.dices, 0.999) == next(i + 1 for i, d in enumerate(episode.dices) if d >= 0.999)


def test_false_positive_slice_without_object_gets_a_negative_click():
    gt = ball_target().mask
    pred = gt.copy()
    pred[0, 10:40, 10:40] = True  # 900 false positives on a slice the object does not reach
    click = corrective_click(gt, pred)
    assert (click.z, click.positive) == (0, False) and pred[0, click.row, click.col]
    assert 20 <= click.row <= 29 and 20 <= click.col <= 29  # deep inside the blob
    # every error pixel of that slice clicked already: the next worst slice is used, or nothing at all
    lone = gt.copy()
    lone[0, 5, 5] = True
    assert corrective_click(gt, lone, {0: {(5, 5)}}) is None
    assert corrective_click(gt, gt) is None


def test_noi():
    assert noi([0.5, 0.86, 0.95], 0.85) == 2
    assert noi([0.5, 0.86, 0.95], 0.90) == 3
    assert noi([0.5, 0.6], 0.9) == 2
    assert noi([0.5, 0.6], 0.9, max_interactions=8) == 8
    assert noi([0.95], 0.9) == 1
    with pytest.raises(InputError):
        noi([], 0.9)
    with pytest.raises(InputError):
        noi([0.5], 1.5)


@pytest.mark.parametrize("factory", [RandomWalker3D, RegionGrowing3D])
def test_classical_3d_baselines_segment_a_bright_ball(factory):
    target = ball_target()
    dices = run_episode(factory, target, max_interactions=3)
    assert len(dices) == 3 and max(dices) > 0.9


def test_classical_methods_check_their_input():
    method = RegionGrowing3D()
    with pytest.raises(InputError):
        method.interact((0, 0, 0), True)  # before start
    method.start(ball_target().volume, (1, 1, 1))
    with pytest.raises(InputError):
        method.interact((99, 0, 0), True)
    method.interact((0, 0, 0), False)  # only a negative click: nothing segmented
    assert not method.labels.any()
    with pytest.raises(InputError):
        RandomWalker3D().start(np.zeros((4, 4)), (1, 1, 1))


def test_session_method_runs_the_protocol(sam_tiny):
    target = ball_target(shape=(6, 32, 32), radius=5.0)
    factory = session_method(sam_tiny)
    a, b = factory(), factory()
    assert a.predictor is b.predictor  # one embedding cache over all targets
    episode = run_episode_detailed(factory, target, max_interactions=2)
    assert len(episode.dices) == 2 and all(0.0 <= d <= 1.0 for d in episode.dices)
    assert episode.clicks[0].point == first_click(target.mask).point


def test_benchmark_writes_csv_and_summary(tmp_path):
    targets = {"ct": [ball_target(name="ball_a"), ball_target(radius=6.0, name="ball_b")],
               "mri": [ball_target(shape=(16, 32, 32), radius=5.0, name="ball_c")]}
    truth = {id(t.volume): t.mask for group in targets.values() for t in group}

    class Oracle(StandIn):
        """StandIn that looks up the truth of the volume it is started on."""

        def __init__(self, reach=None):
            super().__init__(None, reach)

        def start(self, volume, spacing):
            self.gt = truth[id(volume)]
            super().start(volume, spacing)

    methods = {"perfect": Oracle, "reach1": lambda: Oracle(reach=1)}
    progress = RecordingProgress()
    path = run_3d_benchmark(methods, tmp_path, modality_list=("mri", "ct"), max_interactions=4, progress=progress,
                            targets=targets)
    assert path == tmp_path / "results3d.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == csv_columns3d(4)
    assert len(rows) == 6 and progress.done == 6 and progress.total == 6
    perfect = [r for r in rows if r["method"] == "perfect"]
    assert all(float(r["dice_1"]) == 1.0 and r["noi90"] == "1" for r in perfect)
    reach1 = [r for r in rows if r["method"] == "reach1"]
    assert all(float(r["dice_1"]) < float(r["dice_4"]) for r in reach1)
    summary = (tmp_path / "summary3d.md").read_text(encoding="utf-8")
    assert summary == summary3d_markdown(rows)
    assert "## mri" in summary and "## ct" in summary and "| perfect | 2 |" in summary
    assert "Dice@1" in summary and "Dice@3" in summary and "Dice@4" in summary
    quick = run_3d_benchmark(methods, tmp_path / "quick", modality_list=("ct",), quick=True, targets=targets,
                             torch_threads=1)
    with open(quick, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and "dice_3" in rows[0] and "dice_4" not in rows[0]
    with pytest.raises(InputError):
        run_3d_benchmark(methods, tmp_path, modality_list=("xray",), targets=targets)
    with pytest.raises(InputError):
        run_3d_benchmark(methods, tmp_path, targets=targets, torch_threads=0)


def test_targets_are_unique_nonempty_and_splits_are_disjoint():
    names, digests = {}, {}
    for modality in ("mri", "ct"):
        for split in ("test", "dev"):
            targets = build_targets3d(modality, split)
            assert targets and all(t.modality == modality and t.split == split for t in targets)
            for t in targets:
                assert t.mask.any() and t.mask.shape == t.volume.shape and t.volume.dtype == np.float32
                assert t.name not in names and t.digest() not in digests
                names[t.name], digests[t.digest()] = split, split
            quick = build_targets3d(modality, split, quick=True)
            assert len(quick) == 1 and quick[0] in targets
    assert sum(1 for n, s in names.items() if n.startswith("mni_") and s == "test") >= 3
    with pytest.raises(InputError):
        build_targets3d("xray")
    with pytest.raises(InputError):
        build_targets3d("mri", split="train")

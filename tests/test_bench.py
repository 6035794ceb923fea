"""End-to-end DM-Seg-mini runs on tiny synthetic targets with the real degradations."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import ndimage as ndi

from pge_sam.errors import InputError
from pge_sam.evaluate import RandomWalkerPredictor, Target, csv_columns, load_results, run_benchmark
from pge_sam.progress import RecordingProgress

DEGRADATIONS = ["gaussian_noise", "gaussian_blur"]
SEVERITIES = (0, 3)


class IntensityPredictor:
    """Deterministic stand-in: the connected region of pixels within ``tol`` of the first positive click's value,
    minus the regions grown the same way from negative clicks. Records the images it was given."""

    def __init__(self, tol: float = 0.2):
        self.name = "intensity"
        self.tol = tol
        self.images: list[np.ndarray] = []
        self.resets = 0

    def set_image(self, image):
        self.image = np.asarray(image, dtype=np.float32)
        self.images.append(self.image.copy())

    def reset(self):
        self.resets += 1

    def _grow(self, row, col):
        labels, _ = ndi.label(np.abs(self.image - self.image[row, col]) < self.tol)
        return labels == labels[row, col]

    def predict(self, points, labels, box=None):
        mask = np.zeros(self.image.shape, bool)
        if box is not None and not len(points):
            points, labels = np.array([[(box[0] + box[2]) // 2, (box[1] + box[3]) // 2]]), np.array([1])
        for (row, col), label in zip(points, labels):
            if label == 1:
                mask |= self._grow(row, col)
        for (row, col), label in zip(points, labels):
            if label == 0:
                mask &= ~self._grow(row, col)
        return mask


def tiny_targets():
    """Per modality, a disk and a box target sharing one 48x48 image (same image id)."""
    rows, cols = np.mgrid[:48, :48]
    disk = (rows - 20) ** 2 + (cols - 18) ** 2 < 9**2
    box = np.zeros((48, 48), bool)
    box[30:42, 28:44] = True
    image = (0.1 + 0.6 * disk + 0.3 * box).astype(np.float32)
    targets = {}
    for modality in ("mri", "ct"):
        shared = [
            Target(image, disk, modality, "synthetic", f"{modality}_disk", image_id=f"{modality}_img"),
            Target(image, box, modality, "synthetic", f"{modality}_box", image_id=f"{modality}_img"),
        ]
        targets[modality] = shared
    return targets


def run(out_dir, recorder=None, **kwargs):
    recorder = recorder or IntensityPredictor()
    predictors = {"random_walker": RandomWalkerPredictor, "intensity": lambda: recorder}
    options = dict(degradations=DEGRADATIONS, severities=SEVERITIES, targets=tiny_targets(), design="grid")
    options.update(kwargs)
    return run_benchmark(predictors, out_dir, **options), recorder


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_end_to_end_rows_report_and_resume(tmp_path):
    result, recorder = run(tmp_path)
    # 2 modalities x (clean + 2 degradations at severity 3) x 2 targets x 2 predictors
    assert result.rows_written == 24 and result.rows_skipped == 0 and not result.cancelled
    table = read_csv(result.csv_path)
    assert table[0] == csv_columns(20)
    assert "iou_20" in table[0] and "box_iou" in table[0] and "seconds" in table[0]
    rows = load_results(result.csv_path)
    assert len(rows) == 24
    keys = {(r["modality"], r["degradation"], r["severity"], r["target"], r["predictor"]) for r in rows}
    assert len(keys) == 24
    assert {(r["degradation"], r["severity"]) for r in rows} == {("clean", 0), *((d, 3) for d in DEGRADATIONS)}
    for row in rows:
        curve = [row[f"iou_{k}"] for k in range(1, 21)]
        assert all(0.0 <= v <= 1.0 for v in curve) and 0.0 <= row["box_iou"] <= 1.0
        assert 1 <= row["noc85"] <= row["noc90"] <= 20 and row["seconds"] >= 0
        assert row["dice5"] == pytest.approx(2 * row["iou_5"] / (1 + row["iou_5"]), abs=1e-5)
    clean = [r for r in rows if r["predictor"] == "intensity" and r["severity"] == 0]
    assert all(r["iou_1"] == 1.0 and r["noc90"] == 1 and r["box_iou"] == 1.0 for r in clean)
    # one set_image per (modality, condition): both targets share the image; degraded images differ from clean
    assert len(recorder.images) == 6
    clean_image = tiny_targets()["ct"][0].image
    assert sum(np.array_equal(img, clean_image) for img in recorder.images) == 2

    summary = result.summary_path.read_text(encoding="utf-8")
    assert "| ct | gaussian_noise | 3 | random_walker | 2 |" in summary
    assert "Clean vs degraded" in summary
    names = sorted(p.name for p in result.plots)
    assert names == ["iou_vs_clicks_ct.png", "iou_vs_clicks_mri.png", "noc85_ct.png", "noc85_mri.png"]
    for path in result.plots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000

    again, recorder2 = run(tmp_path)
    assert again.rows_written == 0 and again.rows_skipped == 24
    assert recorder2.images == []  # nothing to do: no image is set
    assert len(read_csv(result.csv_path)) == 25


def test_same_seed_same_numbers(tmp_path):
    options = dict(modalities=("ct",), max_clicks=5)
    first, _ = run(tmp_path / "a", seed=5, **options)
    second, _ = run(tmp_path / "b", seed=5, **options)
    other, _ = run(tmp_path / "c", seed=6, **options)
    strip = lambda path: [row[:-1] for row in read_csv(path)]  # noqa: E731  (drop the timing column)
    assert strip(first.csv_path) == strip(second.csv_path)
    assert strip(first.csv_path) != strip(other.csv_path)  # the noise differs with the seed


def test_cancel_then_resume(tmp_path):
    options = dict(modalities=("ct",), degradations=["gaussian_noise"], max_clicks=5)
    stopped, _ = run(tmp_path, progress=RecordingProgress(cancel_after=3), **options)
    assert stopped.cancelled and stopped.rows_written == 3
    assert stopped.summary_path.is_file()
    progress = RecordingProgress()
    finished, _ = run(tmp_path, progress=progress, **options)
    assert finished.rows_skipped == 3 and finished.rows_written == 5
    assert progress.total == 8 and progress.done == 8
    assert read_csv(finished.csv_path)[0] == csv_columns(5)
    with pytest.raises(InputError, match="other columns"):
        run(tmp_path, **{**options, "max_clicks": 6})
    fresh, _ = run(tmp_path, resume=False, **options)
    assert fresh.rows_written == 8 and len(read_csv(fresh.csv_path)) == 9


def test_quick_plan_on_the_real_targets(tmp_path):
    from pge_sam import degrade

    result = run_benchmark({"random_walker": RandomWalkerPredictor}, tmp_path, quick=True, max_clicks=2)
    rows = load_results(result.csv_path)
    for modality in ("mri", "ct"):
        mine = [r for r in rows if r["modality"] == modality]
        targets = {r["target"] for r in mine}
        assert len(targets) == 2
        for target in targets:  # clean plus one degraded condition at the highest severity, paired on the target
            conditions = sorted((r["degradation"], r["severity"]) for r in mine if r["target"] == target)
            assert conditions[0] == ("clean", 0) and len(conditions) == 2
            assert conditions[1][1] == degrade.MAX_SEVERITY
            assert conditions[1][0] in degrade.list_degradations(modality)


def test_rotating_design_covers_every_family_and_pairs_with_clean(tmp_path):
    targets = tiny_targets()
    many = {m: [Target(t.image, t.mask, m, "synthetic", f"{t.name}_{i}", image_id=f"{m}_img{i}")
                for i in range(4) for t in targets[m][:1]] for m in targets}
    result, _ = run(tmp_path, targets=many, design="rotate", severities=(0, 2, 3), max_clicks=2, per_image=1)
    rows = load_results(result.csv_path)
    degraded = {(r["degradation"], r["severity"]) for r in rows if r["severity"] > 0 and r["modality"] == "ct"}
    assert degraded == {(d, s) for d in DEGRADATIONS for s in (2, 3)}
    clean = {(r["modality"], r["target"], r["predictor"]) for r in rows if r["severity"] == 0}
    assert all((r["modality"], r["target"], r["predictor"]) in clean for r in rows)


def test_box_first_targets_start_with_the_box(tmp_path):
    recorder = IntensityPredictor()
    calls = []
    original = recorder.predict

    def spy(points, labels, box=None):
        calls.append((len(points), box is not None))
        return original(points, labels, box)

    recorder.predict = spy
    t = tiny_targets()["ct"][0]
    nested = Target(t.image, t.mask, "ct", "synthetic", "nested", box_first=True)
    run_benchmark({"intensity": lambda: recorder}, tmp_path, modalities=("ct",), targets={"ct": [nested]},
                  severities=(0,), max_clicks=3)
    assert calls[0] == (0, True)  # interaction 1: the box alone


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"modalities": ("us",)}, "modalities"),
        ({"degradations": ["nope"]}, "unknown degradations"),
        ({"degradations": ["ct_ring"], "modalities": ("mri",)}, "none of the modalities"),
        ({"severities": (0, 7)}, "severities"),
        ({"max_clicks": 0}, "max_clicks"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        run(tmp_path, **kwargs)


def test_targets_must_match_their_modality(tmp_path):
    targets = tiny_targets()
    with pytest.raises(InputError, match="unique names"):
        run(tmp_path, targets={"mri": targets["ct"], "ct": targets["ct"]})

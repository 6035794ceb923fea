"""`pge-sam bench --quick` runs end to end with the shipped tiny model and the classical baselines (CI runs it)."""

from __future__ import annotations

import csv

import pytest

from pge_sam.cli import main
from pge_sam.models.registry import shipped_path


@pytest.mark.slow
def test_quick_benchmark_csv_structure_and_ranges(tmp_path, capsys):
    assert shipped_path("sam_tiny").is_file(), "the shipped sam_tiny weights are missing from the package"
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--models", "sam_tiny", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    classical = {"random_walker", "region_grow", "watershed", "grabcut", "reference_large"}
    assert {r["predictor"] for r in rows} == classical | {"sam_tiny"}
    assert {r["modality"] for r in rows} == {"mri", "ct"}
    assert {r["severity"] for r in rows} == {"0", "3"}
    for r in rows:
        ious = [float(r[f"iou_{k}"]) for k in range(1, 21)]
        assert all(0.0 <= v <= 1.0 for v in ious) and float(r["miou"]) == pytest.approx(sum(ious) / 20, abs=1e-5)
        assert 1 <= int(r["noc85"]) <= 20 and 1 <= int(r["noc90"]) <= 20 and int(r["noc85"]) <= int(r["noc90"])
        assert 0.0 <= float(r["dice5"]) <= 1.0 and 0.0 <= float(r["box_iou"]) <= 1.0
        assert float(r["seconds"]) > 0
    # every method gets every target x condition exactly once
    keys = [(r["modality"], r["degradation"], r["severity"], r["target"]) for r in rows]
    per_method = {p: sorted(k for k, r in zip(keys, rows) if r["predictor"] == p) for p in classical | {"sam_tiny"}}
    assert all(v == per_method["sam_tiny"] for v in per_method.values()) and len(per_method["sam_tiny"]) == 8
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "sam_tiny" in summary and "random_walker" in summary and "## Sanity checks" in summary
    assert "line to beat" in summary and (out / "per_target.md").is_file()
    assert list(out.glob("*.png"))
    # a rerun resumes: no new rows
    assert main(["bench", "--quick", "--models", "sam_tiny", "--out", str(out)]) == 0
    assert len(list(csv.DictReader(open(out / "results.csv")))) == len(rows)


def test_unknown_model_and_missing_adapter_fail_before_any_work(tmp_path, capsys, monkeypatch):
    assert main(["bench", "--quick", "--models", "sam_nope", "--out", str(tmp_path / "a")]) == 2
    assert "unknown" in capsys.readouterr().err
    from pge_sam.models import registry

    monkeypatch.setattr(registry, "adapter_path", lambda backbone: tmp_path / "missing.safetensors")
    assert main(["bench", "--quick", "--models", "pge_sam_tiny", "--out", str(tmp_path / "b")]) == 2
    assert "pge-sam train pge" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "results.csv").exists()


def test_label_renames_one_model_and_refuses_several(tmp_path, capsys):
    assert main(["bench", "--quick", "--models", "sam_tiny,sam_tiny", "--label", "x",
                 "--out", str(tmp_path / "a")]) == 2
    assert "--label names one model" in capsys.readouterr().err
    out = tmp_path / "b"
    assert main(["bench", "--quick", "--no-baseline", "--models", "sam_tiny", "--label", "sam_tiny_ablation",
                 "--modalities", "ct", "--degradations", "gaussian_noise", "--severities", "0",
                 "--max-clicks", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert rows and {r["predictor"] for r in rows} == {"sam_tiny_ablation"}


def test_adapter_goes_to_the_models_of_its_kind(tmp_path, capsys):
    """A RobustSAM module file serves robust_sam_* only; a kind no named model uses is refused up front."""
    from conftest import seeded_model

    from pge_sam.models.registry import save_robust_adapter

    modules = save_robust_adapter(seeded_model("robust_sam_tiny"), tmp_path / "robust.safetensors")
    out = tmp_path / "run"
    assert main(["bench", "--quick", "--no-baseline", "--models", "sam_tiny,robust_sam_tiny", "--adapter", str(modules),
                 "--modalities", "ct", "--degradations", "gaussian_noise", "--severities", "3",
                 "--max-clicks", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["predictor"] for r in rows} == {"sam_tiny", "robust_sam_tiny"}
    assert main(["bench", "--quick", "--models", "pge_sam_tiny", "--adapter", str(modules),
                 "--out", str(tmp_path / "refused")]) == 2
    assert "holds 'robust_adapter' weights" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "results.csv").exists()

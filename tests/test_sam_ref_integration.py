"""SAM-REF outside the core model: `pge-sam bench --adapter`, `pge-sam models` / `weights fetch`, and the model
choices of the napari plugin and the Slicer extension."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from pge_sam.cli import main
from pge_sam.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SLICER_MODULE = ROOT / "slicer_pge_sam" / "PGESAM"


@pytest.fixture(scope="module")
def refiners(tmp_path_factory):
    """A SAM-REF refiner file (header kind ``ref_adapter``) for the tiny backbone."""
    from conftest import seeded_model

    from pge_sam.models.registry import save_ref_adapter

    return save_ref_adapter(seeded_model("sam_ref_tiny"), tmp_path_factory.mktemp("ref") / "sam_ref_tiny.safetensors")


# --- pge-sam bench ------------------------------------------------------------------------------------------------

def test_bench_adapter_chooser_sends_refiners_to_sam_ref_models_only(refiners):
    from pge_sam.cli.bench import ADAPTER_PREFIXES, _adapter_chooser

    assert ADAPTER_PREFIXES["ref_adapter"] == "sam_ref_"
    chooser = _adapter_chooser(str(refiners), ["sam_tiny", "pge_sam_tiny", "robust_sam_tiny", "sam_ref_tiny"])
    assert chooser("sam_ref_tiny") == str(refiners)
    assert chooser("sam_tiny") is None and chooser("pge_sam_tiny") is None and chooser("robust_sam_tiny") is None
    with pytest.raises(InputError, match="holds 'ref_adapter' weights.*name a sam_ref_\\* model"):
        _adapter_chooser(str(refiners), ["sam_tiny", "pge_sam_tiny"])


def test_bench_help_names_the_ref_training(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "sam_ref_tiny" in help_text and "(pge-sam train ref) for sam_ref_*" in help_text


@pytest.mark.slow
def test_bench_runs_sam_ref_with_its_refiners(refiners, tmp_path, capsys):
    """`pge-sam bench` end to end on sam_ref_tiny (2D clicks with its 2-channel feedback, and the 3D protocol)."""
    out = tmp_path / "run"
    assert main(["bench", "--quick", "--no-baseline", "--models", "sam_ref_tiny", "--adapter", str(refiners),
                 "--modalities", "ct", "--degradations", "gaussian_noise", "--severities", "3",
                 "--max-clicks", "2", "--interactions", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert rows and {r["predictor"] for r in rows} == {"sam_ref_tiny"}
    assert all(0.0 <= float(r["iou_2"]) <= 1.0 for r in rows)
    assert (out / "results3d.csv").is_file()


# --- pge-sam models / weights fetch ---------------------------------------------------------------------------------

def test_models_lists_sam_ref_and_says_its_refiners_are_trained(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "sam_ref_tiny" in out and "sam_ref_vit_b" in out
    assert "pge-sam train ref" in out


def test_fetch_sam_ref_vit_fetches_the_base_and_says_the_refiners_are_trained(monkeypatch, tmp_path, capsys):
    from pge_sam.models import weights as W

    fetched = []

    def fake_fetch(backbone, directory=None, progress=True):
        fetched.append((backbone, directory))
        return tmp_path / "sam_vit_b_01ec64.pth"

    monkeypatch.setattr(W, "fetch_official", fake_fetch)
    assert main(["weights", "fetch", "sam_ref_vit_b", "--dir", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert fetched == [("vit_b", str(tmp_path))]  # the official SAM under it, nothing else
    assert "no download" in out and "pge-sam train ref --backbone vit_b" in out
    assert str(tmp_path / "sam_ref_vit_b_adapter.safetensors") in out


def test_fetch_sam_ref_tiny_has_nothing_to_download(monkeypatch, tmp_path, capsys, refiners):
    from pge_sam.models import registry
    from pge_sam.models import weights as W

    monkeypatch.setattr(W, "fetch_official", lambda *a, **k: pytest.fail("sam_ref_tiny must not download"))
    monkeypatch.setattr(registry, "ref_adapter_path", lambda backbone: tmp_path / "absent.safetensors")
    assert main(["weights", "fetch", "sam_ref_tiny"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "nothing to download" in err and "pge-sam train ref --backbone tiny" in err
    monkeypatch.setattr(registry, "ref_adapter_path", lambda backbone: refiners)
    assert main(["weights", "fetch", "sam_ref_tiny"]) == 0
    assert "nothing to download" in capsys.readouterr().out


# --- front-ends -----------------------------------------------------------------------------------------------------

def test_slicer_offers_sam_ref_and_every_choice_is_a_registry_name():
    if str(SLICER_MODULE) not in sys.path:
        sys.path.insert(0, str(SLICER_MODULE))
    from PGESAMLib import MODEL_CHOICES

    from pge_sam.models.registry import model_names

    assert "sam_ref_tiny" in MODEL_CHOICES and "sam_ref_vit_b" in MODEL_CHOICES
    assert MODEL_CHOICES[0] == "pge_sam_tiny" and len(set(MODEL_CHOICES)) == len(MODEL_CHOICES)
    assert set(MODEL_CHOICES) <= set(model_names())
    table = (ROOT / "slicer_pge_sam" / "README.md").read_text(encoding="utf-8")
    assert all(f"| `{name}`" in table for name in MODEL_CHOICES)  # the README's model table covers every choice


def test_napari_picker_choices_include_sam_ref(tmp_path):
    """The napari picker lists :func:`pge_sam.model_files.list_model_files` (see ``_model_panel.refresh_choices``)."""
    from napari_pge_sam import _model_panel

    names = [f.name for f in _model_panel.list_model_files(tmp_path)]
    assert "sam_ref_tiny" in names and "sam_ref_vit_b" in names


def test_sam_ref_model_files_name_the_refiners(tmp_path, monkeypatch):
    from pge_sam.model_files import model_files
    from pge_sam.models import registry

    vit = model_files("sam_ref_vit_b", tmp_path)
    assert vit.adapter == tmp_path / "sam_ref_vit_b_adapter.safetensors" and not vit.present
    monkeypatch.setattr(registry, "shipped_path", lambda name: tmp_path / f"{name}.safetensors")
    (tmp_path / "sam_tiny.safetensors").write_bytes(b"")
    tiny = model_files("sam_ref_tiny", tmp_path)
    assert tiny.adapter == tmp_path / "sam_ref_tiny.safetensors"
    assert not tiny.present and tiny.label() == "sam_ref_tiny (weights missing)"
    assert "pge-sam train ref" in tiny.missing()


@pytest.mark.gui
def test_napari_widget_picker_offers_sam_ref(make_napari_viewer, monkeypatch, tmp_path):
    from napari_pge_sam._widget import PgeSamWidget

    monkeypatch.setenv("PGE_SAM_CACHE_DIR", str(tmp_path))
    widget = PgeSamWidget(make_napari_viewer(), prefetch=0)
    picker = widget.ui.model
    assert picker.findData("sam_ref_tiny") >= 0 and picker.findData("sam_ref_vit_b") >= 0
    assert picker.itemText(picker.findData("sam_ref_vit_b")) == "sam_ref_vit_b (weights missing)"

"""Packaging of the napari plugin: npe2 manifest, light import, samples, settings, model choices, demo command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest

from napari_pge_sam import _cli, _compat
from napari_pge_sam import _model_panel as M
from napari_pge_sam._sample_data import mni_t1, phantom
from pge_sam.errors import InputError, MissingWeightsError

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_plugin_loads_neither_torch_nor_qt_nor_napari():
    code = ("import sys, napari_pge_sam, napari_pge_sam._sample_data, napari_pge_sam._cli, napari_pge_sam._compat\n"
            "heavy = [m for m in ('torch', 'torchvision', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'napari', 'vispy') "
            "if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_npe2_validate_passes():
    out = subprocess.run([sys.executable, "-m", "npe2", "validate", "pge-sam", "--imports"],
                         capture_output=True, text=True, encoding="utf-8", errors="replace",
                         env={**os.environ, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_manifest_contributions():
    manifest = PluginManifest.from_distribution("pge-sam")
    assert set(manifest.categories) == {"Segmentation", "Annotation"}
    contrib = manifest.contributions
    commands = {c.id: c.python_name for c in contrib.commands}
    assert commands[contrib.widgets[0].command] == "napari_pge_sam._widget:PgeSamWidget"
    assert {s.key for s in contrib.sample_data} == {"mni_t1", "phantom"}
    setting = contrib.configurations["models"].properties["cache_dir"]
    assert setting.default == "" and setting.type == "string"
    manifest.validate_imports()


def test_sample_data_is_offline_and_has_spacing():
    (t1, kwargs, kind), = mni_t1()
    assert kind == "image" and t1.shape == (189, 233, 197) and t1.dtype == np.float32
    assert kwargs["scale"] == (1.0, 1.0, 1.0) and t1.max() > 0
    (ph, kwargs, kind), = phantom()
    assert ph.shape == (256, 256) and kwargs["scale"] == (1.0, 1.0)


def test_cache_dir_setting_round_trip(plugin_settings, npe2pm):
    npe2pm.register(PluginManifest.from_distribution("pge-sam"))
    assert M.read_cache_dir_setting() == ""
    assert M.write_cache_dir_setting("/data/sam-weights")
    assert M.read_cache_dir_setting() == "/data/sam-weights"


def test_cache_dir_setting_without_the_plugin_registered(plugin_settings, npe2pm):
    assert M.read_cache_dir_setting() == "" and not M.write_cache_dir_setting("/x")


def test_load_model_reports_missing_files(tmp_path):
    with pytest.raises(MissingWeightsError, match="Download"):
        M.load_model("sam_vit_b", "cpu", cache_dir=tmp_path)
    with pytest.raises(MissingWeightsError, match="custom checkpoint .*nope.pth not found"):
        M.load_model("sam_tiny", "cpu", checkpoint=tmp_path / "nope.pth")
    with pytest.raises(MissingWeightsError, match="Download robustsam_checkpoint_l.pth from https://"):
        M.load_model("robust_sam_vit_l", "cpu", cache_dir=tmp_path)


def test_demo_command_arguments():
    parser = argparse.ArgumentParser()
    _cli.add_arguments(parser)
    args = parser.parse_args(["--sample", "phantom", "--point", "10,20", "--point", "30,40:-",
                              "--screenshot", "out.png"])
    assert args.sample == "phantom" and args.point == ["10,20", "30,40:-"] and args.screenshot == "out.png"
    assert parser.parse_args([]).point == [] and parser.parse_args([]).screenshot is None
    assert _cli.parse_point("1,2.5,3", 3) == ((1.0, 2.5, 3.0), True)
    assert _cli.parse_point("30,40:-", 2) == ((30.0, 40.0), False)
    with pytest.raises(InputError, match="Y,X"):
        _cli.parse_point("1,2,3", 2)
    with pytest.raises(InputError, match="Z,Y,X"):
        _cli.parse_point("a,b,c", 3)


def test_triton_is_blocked_only_when_llvm_is_loaded(monkeypatch, tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00 r-xp /usr/lib/x86_64-linux-gnu/libLLVM-15.so.1\n")
    assert _compat.llvm_loaded(maps) and not _compat.llvm_loaded(tmp_path / "absent")
    modules = {k: v for k, v in sys.modules.items() if k != "triton"}
    monkeypatch.setattr(sys, "modules", modules)
    monkeypatch.setattr(_compat, "llvm_loaded", lambda: False)
    assert not _compat.avoid_triton_llvm_clash() and "triton" not in modules
    monkeypatch.setattr(_compat, "llvm_loaded", lambda: True)
    assert _compat.avoid_triton_llvm_clash() and modules["triton"] is None
    assert not _compat.avoid_triton_llvm_clash()  # already decided

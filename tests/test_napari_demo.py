"""The ``pge-sam napari`` demo command in its own process (Qt, run under Xvfb): sample, click, screenshot, exit."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui


def run_demo(*args: str) -> subprocess.CompletedProcess:
    code = ("import argparse, sys\nfrom napari_pge_sam import _cli\np = argparse.ArgumentParser()\n"
            "_cli.add_arguments(p)\nsys.exit(_cli.run(p.parse_args(sys.argv[1:])))")
    return subprocess.run([sys.executable, "-c", code, "--sample", "phantom", "--size", "1100x700", *args],
                          capture_output=True, text=True, timeout=240)


def test_demo_command_clicks_and_saves_a_screenshot(tmp_path):
    shot = tmp_path / "shot.png"
    out = run_demo("--point", "128,128", "--point", "128,150:-", "--device", "cpu", "--screenshot", str(shot))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "voxels changed on slice 0" in out.stdout and shot.stat().st_size > 10_000
    from skimage.io import imread

    picture = imread(shot)
    assert picture.shape[0] >= 600 and picture.shape[1] >= 1000  # the whole window, dock widget included


def test_demo_command_does_nothing_unasked(tmp_path):
    out = run_demo("--screenshot", str(tmp_path / "idle.png"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "click on it to add prompts" in out.stdout and (tmp_path / "idle.png").is_file()


def test_demo_command_refuses_malformed_points(tmp_path):
    out = run_demo("--point", "1,2,3", "--screenshot", str(tmp_path / "never.png"))
    assert out.returncode != 0 and "Y,X" in out.stderr and not (tmp_path / "never.png").exists()

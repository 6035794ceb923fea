"""The sources keep ruff's pyflakes and pycodestyle rules (``[tool.ruff.lint]`` in pyproject.toml: E, F, W at 120
characters a line). ruff comes with the test extra (``pip install -e .[test]``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing_in_the_sources():
    try:
        import ruff  # noqa: F401  (the package only locates the binary)
    except ImportError as err:
        raise AssertionError("ruff is missing: install the test extra, pip install -e '.[test]'") from err
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"

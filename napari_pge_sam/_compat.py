"""Work-arounds for the environment napari runs in (no Qt import here).

Triton (installed with CUDA builds of torch, imported by ``torch._dynamo``,
which torchvision imports) bundles its own LLVM. Importing it into a process
where Mesa's OpenGL driver has already loaded the system ``libLLVM`` (software
rendering, llvmpipe, radeonsi; e.g. under Xvfb) crashes the interpreter with a
segmentation fault. napari creates its OpenGL context before any model is
loaded, so :func:`avoid_triton_llvm_clash` is called before the first import
of torchvision: when ``libLLVM`` is mapped and triton is not imported yet, it
makes ``import triton`` raise ``ImportError``, and torch runs without it
(inference does not need triton; only ``torch.compile`` on CUDA does).
"""

from __future__ import annotations

import sys
from pathlib import Path


def llvm_loaded(maps: Path = Path("/proc/self/maps")) -> bool:
    """Whether a shared ``libLLVM`` is mapped into this process (Linux; ``False`` where /proc is absent)."""
    try:
        return "libLLVM" in maps.read_text(errors="replace")
    except OSError:
        return False


def avoid_triton_llvm_clash() -> bool:
    """Block ``import triton`` if Mesa's LLVM is loaded and triton is not; returns ``True`` when it blocked it."""
    if "triton" in sys.modules or not llvm_loaded():
        return False
    sys.modules["triton"] = None  # ``import triton`` now raises ImportError; torch then reports no triton
    return True

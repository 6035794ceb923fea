"""Pinned Python dependencies of the PGESAM module and how to install them.

Nothing here imports torch (or any dependency): presence is checked with
``importlib.metadata`` / ``importlib.util.find_spec`` and CUDA is detected from
the NVIDIA driver, so the module loads and reports in milliseconds even when
the dependencies are missing. Installing is the widget's job: after the user
agrees it calls ``slicer.util.pip_install(args)`` once per step of
:func:`pip_install_steps`, on Slicer's main thread (pip from a worker thread
crashes Slicer).

Which package index serves torch
--------------------------------
* Linux: the PyPI torch wheels are CUDA builds that bundle several GB of CUDA
  libraries. With an NVIDIA driver they are what we want (default index);
  without one the much smaller CPU wheels come from
  :data:`TORCH_CPU_INDEX`.
* Windows: the PyPI wheels are CPU-only, so with an NVIDIA driver torch comes
  from :data:`TORCH_CUDA_INDEX` (the CUDA build matching the pinned torch);
  otherwise from PyPI.
* macOS: PyPI (CPU and Apple MPS); CUDA does not exist there.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu130"
NVIDIA_PROC_VERSION = "/proc/driver/nvidia/version"


@dataclass(frozen=True)
class Requirement:
    """One dependency.

    Attributes:
        distribution: name pip installs (``segment-anything``).
        import_name: top-level module it provides (``segment_anything``).
        version: exact pinned version, or ``None`` for "any".
        torch_index: True for packages that must come from the same torch index
            (torch and torchvision are installed together).
    """

    distribution: str
    import_name: str
    version: str | None = None
    torch_index: bool = False

    @property
    def specifier(self) -> str:
        """pip requirement string, e.g. ``torch==2.14.1``."""
        return self.distribution if self.version is None else f"{self.distribution}=={self.version}"


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("torch", "torch", "2.14.1", torch_index=True),
    Requirement("torchvision", "torchvision", "0.29.1", torch_index=True),
    Requirement("segment-anything", "segment_anything", "1.0"),
    # The core is released together with this extension; any installed version is accepted.
    Requirement("pge-sam", "pge_sam", None),
)


class MissingDependenciesError(RuntimeError):
    """Raised by the logic when a model is requested before the dependencies are installed."""

    def __init__(self, missing: Sequence[Requirement]):
        self.missing = tuple(missing)
        names = ", ".join(r.specifier for r in self.missing)
        super().__init__(f"Missing Python packages: {names}. Click 'Install dependencies' in the PGE-SAM module "
                         "(or run slicer.util.pip_install with these pins) and try again.")


def cuda_driver_present(platform: str | None = None, proc_version_path: str = NVIDIA_PROC_VERSION,
                        which: Callable[[str], str | None] = shutil.which) -> bool:
    """Whether an NVIDIA driver is installed, judged without importing torch.

    Linux: the kernel driver's ``/proc/driver/nvidia/version`` exists or
    ``nvidia-smi`` is on PATH. Windows: ``nvidia-smi`` is on PATH (the driver
    puts it in System32). macOS: always False.
    """
    plat = sys.platform if platform is None else platform
    if plat == "darwin":
        return False
    if plat.startswith("linux") and os.path.exists(proc_version_path):
        return True
    return which("nvidia-smi") is not None


def installed_version(distribution: str) -> str | None:
    """Installed version of a distribution (``importlib.metadata``), or ``None`` if not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirement_problem(req: Requirement) -> str | None:
    """Why ``req`` is not satisfied (a short sentence), or ``None`` when it is.

    A local version label (``2.14.1+cpu``) matches the pin ``2.14.1``. An
    unpinned requirement is also met by an importable source checkout without
    package metadata (e.g. the core on ``PYTHONPATH`` during development).
    """
    version = installed_version(req.distribution)
    if version is None:
        if req.version is None and importlib.util.find_spec(req.import_name) is not None:
            return None
        return f"{req.distribution} is not installed"
    if req.version is not None and version.split("+", 1)[0] != req.version:
        return f"{req.distribution} {version} is installed but {req.version} is required"
    if importlib.util.find_spec(req.import_name) is None:
        return f"{req.distribution} is installed but module '{req.import_name}' cannot be found"
    return None


def missing_requirements(requirements: Iterable[Requirement] = REQUIREMENTS) -> list[Requirement]:
    """Requirements that are absent, at another version than pinned, or not importable (nothing is imported)."""
    return [r for r in requirements if requirement_problem(r) is not None]


def torch_index_url(cuda: bool, platform: str | None = None) -> str | None:
    """Package index for torch/torchvision (``None`` = default PyPI); see the module docstring."""
    plat = sys.platform if platform is None else platform
    if plat.startswith("linux"):
        return None if cuda else TORCH_CPU_INDEX
    if plat.startswith("win"):
        return TORCH_CUDA_INDEX if cuda else None
    return None


def pip_install_steps(missing: Sequence[Requirement], cuda: bool | None = None,
                      platform: str | None = None) -> list[list[str]]:
    """pip arguments (after ``pip install``) to install ``missing``, one list per pip call.

    Torch-index packages go first in their own call (with ``--index-url`` when
    needed) so that the later packages, which depend on torch, find it already
    satisfied instead of pulling a different build from PyPI. If any torch-index
    package is missing, all pinned torch-index packages are reinstalled together
    so torch and torchvision always match.

    Args:
        missing: output of :func:`missing_requirements`.
        cuda: whether to install CUDA builds; default :func:`cuda_driver_present`.
        platform: ``sys.platform`` value to plan for (default: this machine).

    Returns:
        e.g. ``[["torch==2.14.1", "torchvision==0.29.1", "--index-url", "https://download.pytorch.org/whl/cpu"],
        ["segment-anything==1.0", "pge-sam"]]``; empty when nothing is missing.
    """
    use_cuda = cuda_driver_present(platform) if cuda is None else bool(cuda)
    steps: list[list[str]] = []
    if any(r.torch_index for r in missing):
        torch_step = [r.specifier for r in REQUIREMENTS if r.torch_index]
        torch_step += [r.specifier for r in missing if r.torch_index and r.specifier not in torch_step]
        url = torch_index_url(use_cuda, platform)
        if url is not None:
            torch_step += ["--index-url", url]
        steps.append(torch_step)
    rest = [r.specifier for r in missing if not r.torch_index]
    if rest:
        steps.append(rest)
    return steps


def describe_install(steps: Sequence[Sequence[str]], cuda: bool) -> str:
    """Plain-text summary of an install plan for the confirmation question shown by the widget."""
    if not steps:
        return "All PGE-SAM dependencies are installed."
    lines = ["PGE-SAM needs these Python packages (several GB for torch):"]
    lines += ["  pip install " + " ".join(step) for step in steps]
    lines.append("An NVIDIA driver was found: CUDA builds of torch will be used." if cuda
                 else "No NVIDIA driver was found: CPU builds of torch will be used (slower).")
    lines.append("Slicer may be unresponsive during the download. You are told if Slicer must be restarted "
                 "afterwards (only when one of these packages was already loaded). Install now?")
    return "\n".join(lines)


def restart_required(steps: Sequence[Sequence[str]], loaded_modules: Iterable[str]) -> list[str]:
    """Packages an install plan (re)installs whose module Slicer had already imported before it ran.

    Python keeps the old version of an imported module until Slicer restarts
    (e.g. a torch that another extension loaded). The module never imports its
    dependencies before they are installed, so on a first install this is empty.

    Args:
        steps: the :func:`pip_install_steps` that were run.
        loaded_modules: names in ``sys.modules`` *before* the install ran.

    Returns:
        distribution names (e.g. ``["torch"]``); non-empty means "restart Slicer".
    """
    specifiers = {arg for step in steps for arg in step}
    loaded = {name.split(".", 1)[0] for name in loaded_modules}
    return [r.distribution for r in REQUIREMENTS if r.specifier in specifiers and r.import_name in loaded]


def restart_message(stale: Sequence[str]) -> str:
    """Text shown after an install when :func:`restart_required` is non-empty."""
    return (f"{', '.join(stale)} had already been loaded by Slicer before the new version was installed. "
            "Restart Slicer (File > Exit, then start it again) before using PGE-SAM.")

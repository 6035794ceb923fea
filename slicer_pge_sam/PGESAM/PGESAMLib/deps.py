"""What the PGESAM module needs in Slicer's Python, and the plan to install it (pure, no Slicer).

The ``pge_sam`` core ships inside the extension (see :mod:`PGESAMLib.core`), so
nothing here comes from a project index. What the core needs beyond Slicer:

* **torch, torchvision** through the **PyTorch extension** (``PyTorchUtils``,
  an ``EXTENSION_DEPENDS`` of PGESAM): it picks the build that matches the
  NVIDIA driver (light-the-torch) and is shared with every other extension
  that uses torch. PGE-SAM only states a floor (:data:`TORCH_FLOOR`); any
  newer torch another extension installed is used as is.
* **segment-anything, safetensors, pooch, tqdm** with ``pip install`` and a
  floor, never ``==``: these are small, have no compiled dependencies that
  Slicer ships, and a newer version is accepted.
* **Shared packages Slicer ships** (numpy, scipy, pillow, SimpleITK, requests,
  packaging) are never installed, upgraded or pinned by PGE-SAM
  (:data:`SHARED`).

Slicer 5.10 is the oldest supported release (:data:`MIN_SLICER`): it ships
Python 3.12, Slicer 5.8 shipped Python 3.9 and the core needs 3.10 or later.

:func:`plan` turns (Slicer version, installed distributions) into a
:class:`Plan`; the Slicer side (``PGESAMSlicerLib.install``) asks the user,
then runs it in a worker process with a progress dialog. Nothing here imports
torch: presence is read from package metadata (``importlib.metadata``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

MIN_SLICER = (5, 10)
"""Oldest Slicer release the module supports (first one with Python >= 3.10: it ships 3.12)."""
MIN_PYTHON = (3, 10)
"""The core's ``python_requires``."""
PYTORCH_EXTENSION = "PyTorch"
"""Name of the extension (and of its ``EXTENSION_DEPENDS`` entry) whose ``PyTorchUtils`` module installs torch."""
PYTORCH_MODULE = "PyTorchUtils"
TORCH_FLOOR = ">=2.1"
TORCHVISION_FLOOR = ">=0.16"
NVIDIA_PROC_VERSION = "/proc/driver/nvidia/version"


@dataclass(frozen=True)
class Requirement:
    """One dependency with a version floor (never a pin).

    Attributes:
        distribution: name pip installs (``segment-anything``).
        import_name: top-level module it provides (``segment_anything``).
        minimum: lowest accepted version (``"1.0"``), or ``None`` for any.
        via: ``"pytorch"`` (installed through the PyTorch extension) or ``"pip"``.
    """

    distribution: str
    import_name: str
    minimum: str | None = None
    via: str = "pip"

    @property
    def specifier(self) -> str:
        """pip requirement string, e.g. ``segment-anything>=1.0`` (a floor, never ``==``)."""
        return self.distribution if self.minimum is None else f"{self.distribution}>={self.minimum}"

    @property
    def version(self) -> str | None:  # kept for callers written against the pinned version of this module
        return self.minimum


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("torch", "torch", TORCH_FLOOR[2:], via="pytorch"),
    Requirement("torchvision", "torchvision", TORCHVISION_FLOOR[2:], via="pytorch"),
    Requirement("segment-anything", "segment_anything", "1.0"),
    Requirement("safetensors", "safetensors", "0.4"),
    Requirement("pooch", "pooch", "1.7"),  # `PythonSlicer -m pge_sam weights fetch vit_b`
    Requirement("tqdm", "tqdm", "4.60"),
)
"""What the bundled core needs beyond Slicer, with floors (setup.cfg's install_requires, minus :data:`SHARED`)."""

SHARED: tuple[str, ...] = ("numpy", "scipy", "pillow", "SimpleITK", "requests", "packaging")
"""Distributions Slicer ships (5.10: numpy 2.0, scipy 1.13, pillow 11.2, SimpleITK, requests 2.32): the module
uses them as they are and never installs, upgrades or pins them (other extensions and Slicer rely on them)."""


@dataclass(frozen=True)
class Plan:
    """What to install, and how, for one Slicer.

    Attributes:
        problem: a sentence that stops everything (Slicer too old, PyTorch extension missing), or ``None``.
        torch: requirements to install through the PyTorch extension (torch and torchvision, floors).
        pip: requirements to ``pip install`` (floors).
        shared_missing: shared packages Slicer should have shipped but that are absent (reported, not installed).
        restart: distributions the plan replaces that this Slicer process already imported.
    """

    problem: str | None = None
    torch: tuple[Requirement, ...] = ()
    pip: tuple[Requirement, ...] = ()
    shared_missing: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def ready(self) -> bool:
        """Nothing to install and nothing in the way."""
        return self.problem is None and not self.torch and not self.pip

    def pip_args(self) -> list[str]:
        """Arguments after ``pip install`` for the pip step (empty: no pip step)."""
        return [r.specifier for r in self.pip]

    def torch_kwargs(self) -> dict:
        """Keyword arguments of ``PyTorchUtilsLogic().installTorch`` (besides ``askConfirmation``)."""
        floors = {r.distribution: f">={r.minimum}" for r in self.torch}
        return {"torchVersionRequirement": floors.get("torch", TORCH_FLOOR),
                "torchvisionVersionRequirement": floors.get("torchvision", TORCHVISION_FLOOR)}

    def steps(self) -> list[list[str]]:
        """The plan as requirement lists, torch first (for logs and :func:`restart_required`)."""
        out = []
        if self.torch:
            out.append([r.specifier for r in self.torch])
        if self.pip:
            out.append(self.pip_args())
        return out


def parse_version(text: str | None) -> tuple[int, ...]:
    """Leading release numbers of a version string: ``"2.14.1+cu130"`` -> ``(2, 14, 1)``, ``"5.10"`` -> ``(5, 10)``."""
    numbers = []
    for part in re.split(r"[.+-]", str(text or "").strip()):
        match = re.match(r"\d+", part)
        if not match:
            break
        numbers.append(int(match.group()))
        if match.group() != part:
            break
    return tuple(numbers)


def at_least(version: str | None, minimum: str | None) -> bool:
    """Whether ``version`` (installed) meets the floor ``minimum`` (``None``: any version)."""
    if minimum is None:
        return version is not None
    if version is None:
        return False
    have, want = parse_version(version), parse_version(minimum)
    width = max(len(have), len(want))
    return have + (0,) * (width - len(have)) >= want + (0,) * (width - len(want))


def version_problem(slicer_version: Sequence[int] | str,
                    python_version: Sequence[int] = sys.version_info[:2]) -> str | None:
    """Why this Slicer cannot run PGE-SAM (a sentence for the module panel), or ``None``."""
    slicer = parse_version(slicer_version) if isinstance(slicer_version, str) else tuple(slicer_version)
    python = tuple(python_version)[:2]
    if slicer[:2] < MIN_SLICER or python < MIN_PYTHON:
        return (f"PGE-SAM needs 3D Slicer {MIN_SLICER[0]}.{MIN_SLICER[1]} or later (Python "
                f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}+); this is Slicer {'.'.join(map(str, slicer[:3]))} with Python "
                f"{'.'.join(map(str, python))}. Install a current Slicer from https://download.slicer.org.")
    return None


def plan(slicer_version: Sequence[int] | str, installed: Mapping[str, str], *,
         python_version: Sequence[int] = sys.version_info[:2], pytorch_extension: bool = True,
         loaded: Iterable[str] = (), requirements: Sequence[Requirement] = REQUIREMENTS) -> Plan:
    """The install plan for a Slicer (pure: everything it looks at is an argument).

    Args:
        slicer_version: ``(major, minor)`` or ``"5.10.0"``.
        installed: distribution name -> installed version (:func:`installed_versions`); names are
            compared case-insensitively with ``-``/``_`` folded.
        python_version: Slicer's Python ``(major, minor)``.
        pytorch_extension: whether the PyTorch extension's ``PyTorchUtils`` module is available.
        loaded: names in ``sys.modules`` (for the restart check).

    Returns:
        A :class:`Plan`. torch/torchvision go through the PyTorch extension with a floor; the
        others through pip with a floor; shared packages are never part of it.
    """
    problem = version_problem(slicer_version, python_version)
    if problem:
        return Plan(problem=problem)
    have = {_canonical(k): v for k, v in installed.items()}
    todo = [r for r in requirements if not at_least(have.get(_canonical(r.distribution)), r.minimum)]
    torch = tuple(r for r in todo if r.via == "pytorch")
    pip = tuple(r for r in todo if r.via != "pytorch")
    if torch:  # torch and torchvision are installed together, so they always match
        torch = tuple(r for r in requirements if r.via == "pytorch")
    shared_missing = tuple(name for name in SHARED if _canonical(name) not in have)
    roots = {name.split(".", 1)[0] for name in loaded}
    restart = tuple(r.distribution for r in torch + pip
                    if r.import_name in roots and have.get(_canonical(r.distribution)) is not None)
    problem = None
    if torch and not pytorch_extension:
        problem = (f"PGE-SAM installs PyTorch through the '{PYTORCH_EXTENSION}' extension, which is not installed. "
                   f"Install '{PYTORCH_EXTENSION}' from the Extensions Manager (it comes with PGESAM when PGESAM is "
                   "installed from there), restart Slicer, and try again.")
    notes = ()
    if shared_missing:
        notes = (f"Slicer's own {', '.join(shared_missing)} {'is' if len(shared_missing) == 1 else 'are'} missing; "
                 "PGE-SAM does not install packages Slicer ships: reinstall Slicer if the module fails.",)
    return Plan(problem=problem, torch=torch, pip=pip, shared_missing=shared_missing, restart=restart, notes=notes)


def describe_plan(p: Plan, cuda: bool | None = None, background: bool = True) -> str:
    """Plain text for the confirmation question (what, how, how big, restart). ``background``: the install
    runs in a worker with a progress window (``PGESAMSlicerLib.install``), else on the main thread."""
    if p.problem:
        return p.problem
    if p.ready:
        return "All PGE-SAM dependencies are installed."
    lines = ["PGE-SAM needs these Python packages in Slicer's Python:"]
    if p.torch:
        kind = ("" if cuda is None else " (CUDA build: an NVIDIA driver was found)" if cuda
                else " (CPU build: no NVIDIA driver was found)")
        lines.append(f"  {', '.join(r.specifier for r in p.torch)} through the PyTorch extension{kind}; "
                     "a download of up to several GB")
    if p.pip:
        lines.append("  pip install " + " ".join(p.pip_args()))
    lines.append("Packages Slicer ships (" + ", ".join(SHARED) + ") are used as they are.")
    lines.extend(p.notes)
    if p.restart:
        lines.append(f"{', '.join(p.restart)} {'is' if len(p.restart) == 1 else 'are'} already loaded: "
                     "restart Slicer after the install.")
    lines.append("The install runs in the background with a progress window. Install now?" if background else
                 "Slicer may be unresponsive during the download. Install now?")
    return "\n".join(lines)


_PIP_STATUS = (
    (re.compile(r"^\s*(Collecting|Requirement already satisfied:?)\s+(\S+)"), "Checking {1}"),
    (re.compile(r"^\s*Downloading\s+(\S+?)(?:-\d[^\s]*)?(?:\.whl|\.tar\.gz)?\b.*?(\([^)]*\))?\s*$"),
     "Downloading {0} {1}"),
    (re.compile(r"^\s*Installing collected packages:\s*(.+)$"), "Installing {0}"),
    (re.compile(r"^\s*Successfully installed\s+(.+)$"), "Installed {0}"),
)


def pip_status(line: str) -> str | None:
    """A short status text for one line of pip's output (``None`` for lines not worth showing)."""
    for pattern, text in _PIP_STATUS:
        match = pattern.match(line)
        if match:
            return " ".join(text.format(*(g or "" for g in match.groups())).split())
    if line.startswith("ERROR:"):
        return line.strip()
    return None


# ---- reading this machine ------------------------------------------------------------------------------------------


def installed_versions(names: Iterable[str] | None = None) -> dict[str, str]:
    """Installed distribution -> version (``importlib.metadata``, nothing imported) for ``names``
    (default: every :data:`REQUIREMENTS` and :data:`SHARED` name)."""
    names = [r.distribution for r in REQUIREMENTS] + list(SHARED) if names is None else list(names)
    out = {}
    for name in names:
        version = installed_version(name)
        if version is not None:
            out[name] = version
    return out


def installed_version(distribution: str) -> str | None:
    """Installed version of a distribution (``importlib.metadata``), or ``None`` if not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def pytorch_extension_available() -> bool:
    """Whether the PyTorch extension's ``PyTorchUtils`` module can be imported (found, not imported)."""
    try:
        return importlib.util.find_spec(PYTORCH_MODULE) is not None
    except (ImportError, ValueError):
        return False


def cuda_driver_present(platform: str | None = None, proc_version_path: str = NVIDIA_PROC_VERSION,
                        which: Callable[[str], str | None] = shutil.which) -> bool:
    """Whether an NVIDIA driver is installed, judged without importing torch (for the status line and the
    confirmation text; the PyTorch extension makes the actual choice of build).

    Linux: ``/proc/driver/nvidia/version`` exists or ``nvidia-smi`` is on PATH. Windows:
    ``nvidia-smi`` is on PATH. macOS: always False.
    """
    plat = sys.platform if platform is None else platform
    if plat == "darwin":
        return False
    if plat.startswith("linux") and os.path.exists(proc_version_path):
        return True
    return which("nvidia-smi") is not None


def requirement_problem(req: Requirement, installed: Mapping[str, str] | None = None) -> str | None:
    """Why ``req`` is not satisfied (a short sentence), or ``None`` when it is."""
    version = installed_version(req.distribution) if installed is None else installed.get(req.distribution)
    if version is None:
        return f"{req.distribution} is not installed"
    if not at_least(version, req.minimum):
        return f"{req.distribution} {version} is installed but {req.specifier} is required"
    if installed is None and importlib.util.find_spec(req.import_name) is None:
        return f"{req.distribution} is installed but module '{req.import_name}' cannot be found"
    return None


def missing_requirements(requirements: Iterable[Requirement] = REQUIREMENTS) -> list[Requirement]:
    """Requirements that are absent, below their floor, or not importable (nothing is imported)."""
    return [r for r in requirements if requirement_problem(r) is not None]


class MissingDependenciesError(RuntimeError):
    """Raised by the logic when a model is requested before the dependencies are installed."""

    def __init__(self, missing: Sequence[Requirement]):
        self.missing = tuple(missing)
        names = ", ".join(r.specifier for r in self.missing)
        super().__init__(f"Missing Python packages: {names}. Click 'Install dependencies' in the PGE-SAM module "
                         "and try again (torch comes from the PyTorch extension).")


def restart_required(steps: Sequence[Sequence[str]], loaded_modules: Iterable[str]) -> list[str]:
    """Distributions an executed plan (:meth:`Plan.steps`) (re)installed whose module Slicer had imported before.

    Python keeps the old version of an imported module until Slicer restarts; on a first install
    this is empty because the module imports nothing from these packages before they are installed.
    """
    installed = {_canonical(re.split(r"[<>=!~ ]", arg, maxsplit=1)[0]) for step in steps for arg in step}
    loaded = {name.split(".", 1)[0] for name in loaded_modules}
    return [r.distribution for r in REQUIREMENTS if _canonical(r.distribution) in installed and r.import_name in loaded]


def restart_message(stale: Sequence[str]) -> str:
    """Text shown after an install when :func:`restart_required` is non-empty."""
    return (f"{', '.join(stale)} had already been loaded by Slicer before the new version was installed. "
            "Restart Slicer (File > Exit, then start it again) before using PGE-SAM.")


# ---- the widget's current install button (until it calls PGESAMSlicerLib.install) --------------------------------


def pip_install_steps(missing: Sequence[Requirement], cuda: bool | None = None,
                      platform: str | None = None) -> list[list[str]]:
    """Requirement lists of an install of ``missing``: torch and torchvision together (installed by the
    PyTorch extension, see ``PGESAMSlicerLib.install.installWithoutAsking``), then the pip packages; floors only."""
    wants_torch = any(r.via == "pytorch" for r in missing)
    torch = [r.specifier for r in REQUIREMENTS if r.via == "pytorch"] if wants_torch else []
    pip = [r.specifier for r in missing if r.via != "pytorch"]
    return [step for step in (torch, pip) if step]


def describe_install(steps: Sequence[Sequence[str]], cuda: bool) -> str:
    """Confirmation text for :func:`pip_install_steps` (see :func:`describe_plan`)."""
    specs = {arg for step in steps for arg in step}
    torch = tuple(r for r in REQUIREMENTS if r.via == "pytorch" and r.specifier in specs)
    pip = tuple(r for r in REQUIREMENTS if r.via != "pytorch" and r.specifier in specs)
    return describe_plan(Plan(torch=torch, pip=pip), cuda, background=False)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

"""Where the module finds the ``pge_sam`` core: the copy bundled in the extension first (pure, no Slicer).

The extension's CMake copies ``core/pge_sam`` (code and the tiny weights) next to
``PGESAM.py`` in the built module folder, so an Extension Manager install needs
nothing from a package index but third-party wheels. In a source checkout used in
Developer mode (``slicer_pge_sam/PGESAM`` added to the module paths) the core is
found two folders up, in ``core/``. :func:`prefer_core` puts that folder at the
front of ``sys.path`` so an older ``pge_sam`` pip-installed into Slicer's Python
(by an earlier version of this extension) is not picked instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

PACKAGE = "pge_sam"


def core_candidates(module_dir: str) -> list[str]:
    """Folders that may hold the ``pge_sam`` package, in order of preference: the module folder
    (built extension) and ``<checkout>/core`` (source checkout)."""
    module_dir = os.path.abspath(module_dir)
    return [module_dir, os.path.normpath(os.path.join(module_dir, os.pardir, os.pardir, "core"))]


def find_core(module_dir: str, isfile: Callable[[str], bool] = os.path.isfile) -> str | None:
    """The first folder of :func:`core_candidates` that holds ``pge_sam/__init__.py``, or ``None``."""
    for folder in core_candidates(module_dir):
        if isfile(os.path.join(folder, PACKAGE, "__init__.py")):
            return folder
    return None


def prefer_core(sys_path: Sequence[str], core_dir: str | None) -> list[str]:
    """``sys_path`` with ``core_dir`` first (once); unchanged when there is no bundled core."""
    if core_dir is None:
        return list(sys_path)
    norm = os.path.normcase(os.path.abspath(core_dir))
    rest = [p for p in sys_path if os.path.normcase(os.path.abspath(p or os.curdir)) != norm]
    return [core_dir] + rest


def loaded_elsewhere(module_file: str | None, core_dir: str | None) -> str | None:
    """A message when ``pge_sam`` was already imported from outside ``core_dir`` (``module_file`` is
    ``pge_sam.__file__``): Python keeps that copy until Slicer restarts. ``None`` when all is well."""
    if module_file is None or core_dir is None:
        return None
    package_dir = os.path.normcase(os.path.abspath(os.path.join(core_dir, PACKAGE)))
    if os.path.normcase(os.path.dirname(os.path.abspath(module_file))) == package_dir:
        return None
    return (f"pge_sam was loaded from {os.path.dirname(module_file)}, not from the copy bundled with the extension "
            f"({package_dir}). Restart Slicer; if this persists, uninstall it with "
            "slicer.util.pip_uninstall('pge-sam').")

"""Optional dependencies: import them on first use, or fail with the install line that fixes it.

The core (``pip install pge-sam``) holds only what the interactive path needs
(numpy, scipy, torch, torchvision, segment-anything, safetensors, pillow,
pooch, SimpleITK, tqdm). Everything else belongs to an extra and is imported
through :func:`require` at the point of use::

    zarr = require("zarr", extra="cache", purpose="the on-disk embedding cache")

which raises :class:`MissingDependencyError` (an ``ImportError`` and a
:class:`~pge_sam.errors.PgeSamError`, so the CLI prints it as one ``error:``
line) naming the extra: ``pip install "pge-sam[cache]"``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import PgeSamError

# extra -> (import name, pip distribution) of the packages it adds (setup.cfg [options.extras_require]).
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "cache": (("zarr", "zarr"),),
    "samples": (("nilearn", "nilearn"), ("skimage", "scikit-image")),
    "bench": (("skimage", "scikit-image"), ("cv2", "opencv-python-headless"), ("matplotlib", "matplotlib"),
              ("torchio", "torchio"), ("nilearn", "nilearn")),
    "train": (("yaml", "pyyaml"), ("matplotlib", "matplotlib"), ("torchio", "torchio"), ("skimage", "scikit-image"),
              ("nilearn", "nilearn")),
    "napari": (("napari", "napari"), ("magicgui", "magicgui"), ("npe2", "npe2"), ("qtpy", "qtpy")),
}

_DISTRIBUTIONS = {module: dist for pairs in EXTRAS.values() for module, dist in pairs}


class MissingDependencyError(PgeSamError, ImportError):
    """An optional package is not installed; the message says which extra installs it."""

    def __init__(self, message: str, *, name: str | None = None, extra: str | None = None) -> None:
        super().__init__(message)
        self.name = name  # ImportError's attribute: the missing module
        self.extra = extra


def install_hint(extra: str) -> str:
    """``pip install "pge-sam[EXTRA]"``."""
    return f'pip install "pge-sam[{extra}]"'


def missing_message(module: str, extra: str, purpose: str | None = None) -> str:
    dist = _DISTRIBUTIONS.get(module.split(".")[0], module.split(".")[0])
    what = f" for {purpose}" if purpose else ""
    return f"{dist} is needed{what} but is not installed; install it with: {install_hint(extra)}"


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"skimage.transform"``) or raise :class:`MissingDependencyError` naming ``extra``.

    Only a missing top-level package is translated; an ``ImportError`` raised
    inside an installed package (a broken install) propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        root = module.split(".")[0]
        if err.name is None or err.name.split(".")[0] != root:
            raise
        raise MissingDependencyError(missing_message(module, extra, purpose), name=root, extra=extra) from None


def check_extra(extra: str, purpose: str | None = None) -> None:
    """Raise :class:`MissingDependencyError` listing every package of ``extra`` that is not installed
    (checked without importing them), before any long work starts."""
    missing = [dist for module, dist in EXTRAS[extra] if not _installed(module)]
    if missing:
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} needed{what} "
                                     f"but not installed; install with: {install_hint(extra)}", extra=extra)


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or an import hook that refuses it
        return False

"""Model choices for the widget: which models exist, which weights are present, loading, the cache folder.

Qt-free; importing it is cheap (``pge_sam`` and torch are imported when a
function runs). Which files a model needs is the core's answer
(:func:`pge_sam.model_files.model_files`); this module only passes the
widget's cache folder to it explicitly. The folder comes from the plugin
setting ``models.cache_dir`` (napari Preferences > plugin settings), else
``$PGE_SAM_CACHE_DIR`` or the OS cache folder; it is never written to the
environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PLUGIN_NAME = "pge-sam"  # npe2 requires the manifest name to equal the distribution name
TINY_PREFERENCE = ("pge_sam_tiny", "sam_tiny")  # the default is the first whose weights are present


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker. ``present``: every weights file it needs is on disk; ``official``: an
    official SAM checkpoint the widget can download (never RobustSAM's: its release publishes no checksums)."""

    name: str
    variant: str
    backbone: str
    present: bool
    weights: str
    adapter: str | None = None
    official: bool = False

    def label(self) -> str:
        return self.name if self.present else f"{self.name} (weights missing)"


def default_cache_dir() -> Path:
    """Cache folder used when the plugin setting is empty (``$PGE_SAM_CACHE_DIR`` or the OS cache)."""
    from pge_sam.model_files import resolve_cache_dir

    return resolve_cache_dir(None)


def model_choices(cache_dir: str | Path | None = None) -> list[ModelChoice]:
    """Every named model with the presence of its weights, ViT files looked up in ``cache_dir``."""
    from pge_sam.model_files import list_model_files

    return [ModelChoice(f.name, f.variant, f.backbone, f.present, str(f.checkpoint),
                        None if f.adapter is None else str(f.adapter), f.downloadable)
            for f in list_model_files(cache_dir)]


def default_choice(choices: list[ModelChoice]) -> ModelChoice:
    """The tiny model to preselect: ``pge_sam_tiny`` if present, else ``sam_tiny``, else ``pge_sam_tiny``."""
    by_name = {c.name: c for c in choices}
    for name in TINY_PREFERENCE:
        if name in by_name and by_name[name].present:
            return by_name[name]
    return by_name.get(TINY_PREFERENCE[0], choices[0])


def load_model(name: str, device: str = "auto", checkpoint: str | Path | None = None,
               cache_dir: str | Path | None = None):
    """Build model ``name`` on ``device`` (slow: run it in a worker thread).

    ``checkpoint``: a custom base-weights file replacing the default one;
    ``cache_dir``: where official checkpoints and ViT adapters are looked up.
    Raises :class:`pge_sam.errors.MissingWeightsError` (the message names the
    file and how to get it) or :class:`pge_sam.errors.WeightsError`.
    """
    from ._compat import avoid_triton_llvm_clash

    avoid_triton_llvm_clash()  # before torchvision is imported: see napari_pge_sam._compat
    from pge_sam.model_files import build_model

    return build_model(name, checkpoint=checkpoint, device=device, cache_dir=cache_dir)


def download_official(backbone: str, cache_dir: str | Path | None = None) -> Path:
    """Download and sha256-check the official ``backbone`` checkpoint into the cache folder (explicit request)."""
    from pge_sam.model_files import resolve_cache_dir
    from pge_sam.models import weights as W

    return W.fetch_official(backbone, resolve_cache_dir(cache_dir), progress=False)


def read_cache_dir_setting() -> str:
    """The plugin setting ``models.cache_dir`` ("" when unset or when napari has no plugin settings)."""
    try:
        from napari.settings import get_plugin_settings
    except ImportError:  # napari without plugin settings: the widget field alone holds the folder
        return ""
    try:
        return str(get_plugin_settings(PLUGIN_NAME).models.cache_dir or "")
    except (KeyError, AttributeError):  # plugin not registered with napari's plugin manager
        return ""


def write_cache_dir_setting(value: str) -> bool:
    """Store ``value`` in the plugin setting ``models.cache_dir``; ``False`` when napari cannot store it."""
    try:
        from napari.settings import get_plugin_settings
    except ImportError:
        return False
    try:
        get_plugin_settings(PLUGIN_NAME).models.cache_dir = str(value)
    except (KeyError, AttributeError):
        return False
    return True

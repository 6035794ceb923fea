"""Loading a model for the widget, and the plugin setting that holds the cache folder (Qt-free, cheap to import).

Which models exist and which weight files they need is the core's answer
(:mod:`pge_sam.model_files`); the widget passes its cache folder to it explicitly.
The folder comes from the plugin setting ``models.cache_dir`` (napari Preferences >
plugin settings), else ``$PGE_SAM_CACHE_DIR`` or the OS cache folder; it is never
written to the environment.
"""

from __future__ import annotations

from pathlib import Path

PLUGIN_NAME = "pge-sam"  # npe2 requires the manifest name to equal the distribution name


def load_model(name: str, device: str = "auto", checkpoint: str | Path | None = None,
               cache_dir: str | Path | None = None):
    """:func:`pge_sam.model_files.build_model` once torchvision can be imported next to napari's OpenGL (slow: run
    it in a worker). Raises :class:`pge_sam.errors.MissingWeightsError` naming the file and how to get it."""
    from ._compat import avoid_triton_llvm_clash

    avoid_triton_llvm_clash()  # before torchvision is imported: see napari_pge_sam._compat
    from pge_sam.model_files import build_model

    return build_model(name, checkpoint=checkpoint, device=device, cache_dir=cache_dir)


def _settings():
    try:
        from napari.settings import get_plugin_settings
    except ImportError:  # napari without plugin settings: the widget field alone holds the folder
        return None
    try:
        return get_plugin_settings(PLUGIN_NAME).models
    except (KeyError, AttributeError):  # plugin not registered with napari's plugin manager
        return None


def read_cache_dir_setting() -> str:
    """The plugin setting ``models.cache_dir`` ("" when unset or when napari has no plugin settings)."""
    models = _settings()
    return str(getattr(models, "cache_dir", "") or "")


def write_cache_dir_setting(value: str) -> bool:
    """Store ``value`` in the plugin setting ``models.cache_dir``; ``False`` when napari cannot store it."""
    models = _settings()
    try:
        models.cache_dir = str(value)
    except AttributeError:  # no settings (None) or no such field
        return False
    return True

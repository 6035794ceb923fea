"""Model choices for the widget: which models exist, which weights are present, loading, the cache folder.

Qt-free. Importing this module is cheap; the functions import ``pge_sam.models``
(and so torch) when called. The cache folder holds official SAM checkpoints
and PGE adapters of the ViT backbones; it comes from the plugin setting
``models.cache_dir`` (napari Preferences > plugin settings), falling back to
``$PGE_SAM_CACHE_DIR`` or the OS cache folder. The setting is never written to
the environment: paths derived from it are passed to ``build_model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PLUGIN_NAME = "pge-sam"  # npe2 requires the manifest name to equal the distribution name
TINY_PREFERENCE = ("pge_sam_tiny", "sam_tiny")  # the default is the first whose weights are present


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker. ``present``: every weights file it needs is on disk."""

    name: str
    variant: str
    backbone: str
    present: bool
    weights: str
    adapter: str | None = None

    @property
    def official(self) -> bool:
        """True for a ViT backbone whose official checkpoint can be downloaded on request.

        RobustSAM's release publishes no checksums, so its files are never
        downloaded by pge-sam: the user puts them into the cache folder.
        """
        return self.backbone != "tiny" and self.variant != "robust_sam"

    def label(self) -> str:
        return self.name if self.present else f"{self.name} (weights missing)"


def default_cache_dir() -> Path:
    """Cache folder used when the plugin setting is empty (``$PGE_SAM_CACHE_DIR`` or the OS cache)."""
    from pge_sam.models import weights as W

    return W.cache_dir()


def resolve_cache_dir(cache_dir: str | Path | None) -> Path:
    """``cache_dir`` expanded, or the default folder when it is ``None`` or empty."""
    if cache_dir is None or not str(cache_dir).strip():
        return default_cache_dir()
    return Path(str(cache_dir).strip()).expanduser()


def _adapter_in(cache: Path, backbone: str) -> Path:
    return cache / f"pge_sam_{backbone}_adapter.safetensors"


def model_choices(cache_dir: str | Path | None = None) -> list[ModelChoice]:
    """Every named model with the presence of its weights, ViT files looked up in ``cache_dir``."""
    from pge_sam.models import robust_weights as RW
    from pge_sam.models import weights as W
    from pge_sam.models.registry import list_models

    cache = resolve_cache_dir(cache_dir)
    out = []
    for row in list_models():
        backbone, variant = row["backbone"], row["variant"]
        weights, adapter = Path(row["weights"]), row.get("adapter")
        if backbone != "tiny" and variant == "robust_sam":
            weights, adapter = RW.official_path(backbone, cache), None
        elif backbone != "tiny":
            weights = W.official_path(backbone, cache)
            adapter = str(_adapter_in(cache, backbone)) if variant == "pge_sam" else None
        present = weights.is_file() and (adapter is None or Path(adapter).is_file())
        out.append(ModelChoice(row["name"], variant, backbone, present, str(weights), adapter))
    return out


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

    ``checkpoint``: a custom base-weights file (``.pth`` or project
    safetensors) replacing the default one; ``cache_dir``: where official
    checkpoints and ViT adapters are looked up. Raises
    :class:`pge_sam.errors.MissingWeightsError` (message names the file and
    how to get it) or :class:`pge_sam.errors.WeightsError`.
    """
    from ._compat import avoid_triton_llvm_clash

    avoid_triton_llvm_clash()  # before torchvision is imported: see napari_pge_sam._compat
    from pge_sam.errors import MissingWeightsError
    from pge_sam.models import weights as W
    from pge_sam.models.registry import build_model, parse_name

    info = parse_name(name)
    adapter = None
    if checkpoint is not None and str(checkpoint).strip():
        checkpoint = Path(str(checkpoint).strip()).expanduser()
        if not checkpoint.is_file():
            raise MissingWeightsError(f"custom checkpoint {checkpoint} not found; choose an existing file")
    else:
        checkpoint = None
    if info.backbone != "tiny" and info.variant == "robust_sam":
        from pge_sam.models import robust_weights as RW

        official = checkpoint or RW.official_path(info.backbone, resolve_cache_dir(cache_dir))
        if not official.is_file():
            raise MissingWeightsError(RW.missing_message(official, info.backbone))
        return build_model(name, checkpoint=official, device=device)
    if info.backbone != "tiny":
        cache = resolve_cache_dir(cache_dir)
        if checkpoint is None:
            checkpoint = W.official_path(info.backbone, cache)
            if not checkpoint.is_file():
                raise MissingWeightsError(
                    f"{checkpoint.name} is not in the cache folder {cache}. Press 'Download' in the widget "
                    f"(or run `pge-sam weights fetch {info.backbone} --dir {cache}`), or choose a checkpoint file"
                )
        if info.variant == "pge_sam":
            adapter = _adapter_in(cache, info.backbone)
    return build_model(name, checkpoint=checkpoint, adapter=adapter, device=device)


def download_official(backbone: str, cache_dir: str | Path | None = None) -> Path:
    """Download and sha256-check the official ``backbone`` checkpoint into the cache folder (explicit request)."""
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

"""The weight files a named model needs, looked up in an explicit cache folder, and building it from them.

The cache folder holds official SAM and RobustSAM checkpoints and the ViT
adapters trained with ``pge-sam train``. It is an argument of every function
here; ``$PGE_SAM_CACHE_DIR`` (else the OS cache folder) is only the default
that :func:`resolve_cache_dir` applies, once, at the top of a call. Every path
is resolved here and passed to :func:`pge_sam.models.registry.build_model`
explicitly, so nothing deeper reads the environment. Front-ends pass their own
setting (napari's plugin setting, Slicer's module), and show :func:`model_files`
to say which files are present::

    model = build_model("pge_sam_vit_b", cache_dir="/data/sam-weights", device="auto")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import MissingWeightsError
from .models.registry import DEFAULT_MODEL, model_names, parse_name

TINY_PREFERENCE = ("pge_sam_tiny", "sam_tiny")  # what a model picker preselects: the first whose files are present


@dataclass(frozen=True)
class ModelFiles:
    """What model ``name`` loads: ``checkpoint`` (base SAM weights, or the whole official RobustSAM file when
    ``adapter`` is ``None`` for a ViT ``robust_sam``) and ``adapter`` (PGE adapter or RobustSAM modules)."""

    name: str
    variant: str
    backbone: str
    checkpoint: Path
    adapter: Path | None
    cache_dir: Path
    custom: bool = False  # the checkpoint was chosen by the user

    @property
    def present(self) -> bool:
        return self.checkpoint.is_file() and (self.adapter is None or self.adapter.is_file())

    @property
    def downloadable(self) -> bool:
        """An official SAM checkpoint ``pge-sam weights fetch`` can download (sha256 checked). RobustSAM's release
        publishes no checksums, so pge-sam never downloads it: the user puts it into the cache folder."""
        return self.backbone != "tiny" and self.variant != "robust_sam" and not self.custom

    @property
    def needs_download(self) -> bool:
        """Whether a download would help: the official checkpoint is missing (an adapter is trained, not fetched)."""
        return self.downloadable and not self.checkpoint.is_file()

    def label(self) -> str:
        """The name as a model picker lists it; ``"<name> (weights missing)"`` while a file is missing."""
        return self.name if self.present else f"{self.name} (weights missing)"

    def missing(self) -> str | None:
        """What to do about the first missing file, or ``None`` when every file is present."""
        from .models import robust_weights as RW

        b, cache = self.backbone, self.cache_dir
        if not self.checkpoint.is_file():
            path = self.checkpoint
            if self.custom:
                return f"custom checkpoint {path} not found; choose an existing file"
            if b == "tiny":
                return f"the shipped tiny weights {path} are missing from this installation; reinstall pge-sam"
            if self.variant == "robust_sam" and self.adapter is None:
                return (f"RobustSAM weights {path} not found. Download {path.name} from "
                        f"{RW.OFFICIAL_URL.format(path.name)} (the release publishes no checksum) into the cache "
                        f"folder {cache}, or train RobustSAM modules with `pge-sam train robust --backbone {b}`")
            return (f"{path.name} is not in the cache folder {cache}. Download it ('Download' in napari, "
                    f"'Download weights' in Slicer; command line: `pge-sam weights fetch {b} --dir {cache}`), "
                    "or choose a checkpoint file")
        if self.adapter is not None and not self.adapter.is_file():
            what, command = {"pge_sam": ("PGE adapter", "pge"), "sam_ref": ("SAM-REF refiners", "ref")}.get(
                self.variant, ("RobustSAM modules", "robust"))
            return (f"{what} {self.adapter} not found. Train them with `pge-sam train {command} --backbone {b}` "
                    f"and copy the exported {self.variant}_{b}.safetensors of the run folder to that path, "
                    f"or use sam_{b}")
        return None


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` expanded, or (``None`` / empty) ``$PGE_SAM_CACHE_DIR``, else the OS cache folder."""
    if cache_dir is not None and str(cache_dir).strip():
        return Path(str(cache_dir).strip()).expanduser()
    from .models import weights as W

    return W.cache_dir()


def model_files(name: str, cache_dir: str | Path | None = None, checkpoint: str | Path | None = None,
                adapter: str | Path | None = None) -> ModelFiles:
    """The files ``build_model(name, checkpoint, adapter, cache_dir=cache_dir)`` loads (they may not exist)."""
    from .models import registry as R
    from .models import robust_weights as RW
    from .models import weights as W

    info = parse_name(name)
    b, v = info.backbone, info.variant
    cache = resolve_cache_dir(cache_dir)
    custom = checkpoint is not None and bool(str(checkpoint).strip())
    base = Path(str(checkpoint).strip()).expanduser() if custom else (
        R.shipped_path("sam_tiny") if b == "tiny" else W.official_path(b, cache))
    extra = Path(adapter).expanduser() if adapter is not None else None
    if v == "pge_sam" and extra is None:
        extra = R.shipped_path("pge_sam_tiny") if b == "tiny" else cache / f"pge_sam_{b}_adapter.safetensors"
    elif v == "sam_ref" and extra is None:
        extra = R.shipped_path("sam_ref_tiny") if b == "tiny" else cache / f"sam_ref_{b}_adapter.safetensors"
    elif v == "robust_sam" and extra is None:
        trained = R.shipped_path("robust_sam_tiny") if b == "tiny" else cache / f"robust_sam_{b}_adapter.safetensors"
        if b != "tiny" and not custom:
            official = RW.official_path(b, cache)
            if official.is_file() or not trained.is_file():
                return ModelFiles(name, v, b, official, None, cache)  # the release's whole model
        extra = None if (b != "tiny" and custom) else trained  # a custom ViT file is a whole RobustSAM model
    return ModelFiles(name, v, b, base, extra if v != "sam" else None, cache, custom)


def list_model_files(cache_dir: str | Path | None = None) -> list[ModelFiles]:
    """:func:`model_files` of every named model, ViT files looked up in ``cache_dir``."""
    return [model_files(name, cache_dir) for name in model_names()]


def default_choice(files: list[ModelFiles]) -> ModelFiles:
    """The model a picker preselects: ``pge_sam_tiny`` if its files are present, else ``sam_tiny`` if present,
    else ``pge_sam_tiny`` (which then says what is missing)."""
    by_name = {f.name: f for f in files}
    for name in TINY_PREFERENCE:
        if name in by_name and by_name[name].present:
            return by_name[name]
    return by_name.get(TINY_PREFERENCE[0], files[0])


def download_official(backbone: str, cache_dir: str | Path | None = None, progress=None) -> Path:
    """Download and sha256-check the official SAM ``backbone`` checkpoint into the cache folder (asked for only).
    ``progress``: a pge_sam progress object (MiB; cancelling it stops the download and keeps nothing)."""
    from .models import weights as W

    return W.fetch_official(backbone, resolve_cache_dir(cache_dir), progress=False if progress is None else progress)


def download_missing(name: str, cache_dir: str | Path | None = None, progress=None) -> str:
    """Download the official SAM checkpoint model ``name`` still needs (see :func:`download_official`) and say
    what is then still missing (a trained adapter, say), or that ``name`` is ready. A model a download would not
    help raises :class:`~pge_sam.errors.InputError` saying what to do instead. Both front-ends call this."""
    from .errors import InputError

    files = model_files(name, cache_dir)
    if not files.needs_download:
        raise InputError(files.missing() or f"{name} needs no download: its files are in {files.cache_dir}")
    path = download_official(files.backbone, files.cache_dir, progress)
    still = model_files(name, cache_dir).missing()
    return f"Downloaded {path.name} (sha256 verified). " + (still or f"{name} is ready.")


def build_model(name: str = DEFAULT_MODEL, checkpoint: str | Path | None = None, adapter: str | Path | None = None,
                device: str = "auto", pretrained: bool = True, *, cache_dir: str | Path | None = None):
    """Build model ``name`` on ``device`` in eval mode from the files :func:`model_files` names.

    ``cache_dir``: where official checkpoints and ViT adapters are looked up
    (default: ``$PGE_SAM_CACHE_DIR``, else the OS cache folder); ``checkpoint``:
    a custom base-weights file; ``adapter``: a custom adapter file;
    ``pretrained=False``: random weights, no file read. A missing file raises
    :class:`~pge_sam.errors.MissingWeightsError` naming it and what to do.
    """
    from .models import registry as R

    if not pretrained:
        return R.build_model(name, device=device, pretrained=False)
    files = model_files(name, cache_dir, checkpoint, adapter)
    problem = files.missing()
    if problem is not None:
        raise MissingWeightsError(problem)
    return R.build_model(name, checkpoint=files.checkpoint, adapter=files.adapter, device=device)

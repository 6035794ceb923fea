"""Named models: ``sam_``, ``pge_sam_``, ``robust_sam_`` and ``sam_ref_<backbone>`` for tiny, vit_b, vit_l, vit_h.

``build_model(name)`` composes a model from plain builder functions and loads
its weights:

* ``sam_tiny`` / the base of ``pge_sam_tiny``: the shipped
  ``pge_sam/weights/sam_tiny.safetensors``;
* ``sam_vit_*``: the official checkpoint (``checkpoint=`` or the cache folder,
  see :mod:`pge_sam.models.weights`);
* PGE adapters: ``pge_sam/weights/pge_sam_tiny.safetensors`` (shipped) or
  ``adapter=`` / ``<cache>/pge_sam_<backbone>_adapter.safetensors`` (trained
  with ``pge-sam train``);
* RobustSAM: for vit_* the official ``robustsam_checkpoint_*.pth`` (whole model,
  :mod:`pge_sam.models.robust_weights`), else our trained modules
  (``adapter=`` / ``<cache>/robust_sam_<backbone>_adapter.safetensors``, or the
  shipped ``robust_sam_tiny.safetensors``) on the base SAM.
* SAM-REF: its refiners (``adapter=`` / ``<cache>/sam_ref_<backbone>_adapter.safetensors``,
  or the shipped ``sam_ref_tiny.safetensors``) on the base SAM;
* ``pge_sam_ref_<backbone>``: the PGE adapter and the SAM-REF refiners of that
  backbone (their default files), together on the base SAM.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..device import resolve_device
from ..errors import InputError, MissingWeightsError, WeightsError
from . import robust_weights as RW
from . import weights as W
from .backbones import build_sam, get_backbone
from .base import SegmentationModel
from .pge import PGESamModel, pge_sizes
from .pge_ref import PgeSamRefModel
from .ref import SamRefModel
from .robust import RobustSamModel

VARIANTS = ("sam", "pge_sam", "robust_sam", "sam_ref")
# Buildable by name and benchmarkable, not offered in model lists until it measures better than either part.
EXPERIMENTAL_VARIANTS = ("pge_sam_ref",)
DEFAULT_MODEL = "pge_sam_tiny"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    variant: str
    backbone: str


def default_model() -> str:
    """The default model: ``pge_sam_tiny`` when its shipped adapter is installed, else ``sam_tiny``."""
    return DEFAULT_MODEL if adapter_path("tiny").is_file() else "sam_tiny"


def parse_name(name: str) -> ModelInfo:
    for variant in ("robust_sam", "pge_sam_ref", "pge_sam", "sam_ref", "sam"):
        prefix = variant + "_"
        if name.startswith(prefix):
            backbone = name[len(prefix):]
            get_backbone(backbone)
            return ModelInfo(name, variant, backbone)
    raise InputError(f"unknown model {name!r}; choose one of {model_names()}")


def model_names() -> list[str]:
    return [f"{v}_{b}" for v in VARIANTS for b in ("tiny", "vit_b", "vit_l", "vit_h")]


def shipped_path(name: str) -> Path:
    return W.SHIPPED_DIR / f"{name}.safetensors"


def adapter_path(backbone: str) -> Path:
    if backbone == "tiny":
        return shipped_path("pge_sam_tiny")
    return W.cache_dir() / f"pge_sam_{backbone}_adapter.safetensors"


def robust_adapter_path(backbone: str) -> Path:
    if backbone == "tiny":
        return shipped_path("robust_sam_tiny")
    return W.cache_dir() / f"robust_sam_{backbone}_adapter.safetensors"


def ref_adapter_path(backbone: str) -> Path:
    if backbone == "tiny":
        return shipped_path("sam_ref_tiny")
    return W.cache_dir() / f"sam_ref_{backbone}_adapter.safetensors"


def _robust_sources(backbone: str, checkpoint, adapter) -> tuple[Path | None, Path | None]:
    """(whole official RobustSAM file, None) or (None, our trained modules) for a robust_sam model."""
    if adapter is not None:
        return None, Path(adapter).expanduser()
    if backbone == "tiny":
        return None, robust_adapter_path("tiny")
    official = Path(checkpoint).expanduser() if checkpoint is not None else RW.official_path(backbone)
    if checkpoint is None and not official.is_file() and robust_adapter_path(backbone).is_file():
        return None, robust_adapter_path(backbone)
    return official, None


def base_weights_path(backbone: str, checkpoint: str | Path | None = None) -> Path:
    if checkpoint is not None:
        return Path(checkpoint).expanduser()
    return shipped_path("sam_tiny") if backbone == "tiny" else W.official_path(backbone)


def build_model(
    name: str = DEFAULT_MODEL,
    checkpoint: str | Path | None = None,
    adapter: str | Path | None = None,
    device: str = "auto",
    pretrained: bool = True,
) -> SegmentationModel:
    """Build a named model on ``device`` in eval mode.

    ``checkpoint``: base SAM weights (official ``.pth`` or our safetensors);
    ``adapter``: PGE weights; ``pretrained=False`` leaves everything randomly
    initialised (tests, training from scratch). Missing files raise
    :class:`MissingWeightsError` naming the file and the command to get it.
    """
    info = _checked(name, adapter)
    spec = get_backbone(info.backbone)
    sam = build_sam(spec)
    if info.variant == "sam":
        model: SegmentationModel = SegmentationModel(sam, spec, name)
    elif info.variant == "robust_sam":
        model = RobustSamModel(sam, spec, name)
    elif info.variant == "sam_ref":
        model = SamRefModel(sam, spec, name)
    elif info.variant == "pge_sam_ref":
        model = PgeSamRefModel(sam, spec, name, **pge_sizes(spec))
    else:
        model = PGESamModel(sam, spec, name, **pge_sizes(spec))
    if pretrained and info.variant == "robust_sam":
        official, modules = _robust_sources(info.backbone, checkpoint, adapter)
        if official is not None:
            RW.load_official(model, official)
        else:
            load_base(model, base_weights_path(info.backbone, checkpoint))
            load_robust_adapter(model, modules)
    elif pretrained:
        load_base(model, base_weights_path(info.backbone, checkpoint))
        if info.variant in ("pge_sam", "pge_sam_ref"):
            load_adapter(model, Path(adapter).expanduser() if adapter else adapter_path(info.backbone))
        if info.variant in ("sam_ref", "pge_sam_ref"):
            load_ref_adapter(model, Path(adapter).expanduser() if adapter else ref_adapter_path(info.backbone))
    return model.to(resolve_device(device)).eval()


def _checked(name: str, adapter) -> ModelInfo:
    info = parse_name(name)
    if adapter is not None and info.variant == "pge_sam_ref":
        raise InputError(f"{name} combines two trained files (the PGE adapter and the SAM-REF refiners) from their "
                         f"default places; --adapter cannot name both: install them as {adapter_path(info.backbone)} "
                         f"and {ref_adapter_path(info.backbone)}")
    return info


def require_weights(name: str, checkpoint: str | Path | None = None, adapter: str | Path | None = None) -> None:
    """Raise the error :func:`build_model` would raise for missing weights, without building anything."""
    info = _checked(name, adapter)
    if info.variant == "robust_sam":
        official, modules = _robust_sources(info.backbone, checkpoint, adapter)
        if official is not None and not official.is_file():
            raise MissingWeightsError(RW.missing_message(official, info.backbone))
        if official is not None:
            return
    base = base_weights_path(info.backbone, checkpoint)
    if not base.is_file():
        raise MissingWeightsError(W.missing_message(base, info.backbone) if info.backbone != "tiny" else
                                  f"the tiny weights {base} are missing; reinstall pge-sam or pass --checkpoint")
    if info.variant == "robust_sam" and not modules.is_file():
        raise MissingWeightsError(RW.missing_message(modules, info.backbone, official=False))
    if info.variant in ("sam_ref", "pge_sam_ref"):
        path = Path(adapter).expanduser() if adapter else ref_adapter_path(info.backbone)
        if not path.is_file():
            raise MissingWeightsError(_ref_missing(path, info.backbone))
    if info.variant in ("pge_sam", "pge_sam_ref"):
        path = Path(adapter).expanduser() if adapter else adapter_path(info.backbone)
        if not path.is_file():
            raise MissingWeightsError(f"PGE adapter weights {path} not found. Train them with `pge-sam train pge "
                                      f"--backbone {info.backbone}`, pass --adapter PATH, or use sam_{info.backbone}")


def load_base(model: SegmentationModel, path: Path, new_detail_ok: bool = False) -> None:
    """Load base SAM weights from an official ``.pth`` or a project safetensors file.

    A tiny-backbone file written before the detail path existed (no ``detail.*``
    tensors, e.g. sam_tiny v5) loads as the model it was: the detail path is
    removed. ``new_detail_ok`` (training): the path is kept with its
    initialisation instead (zero contribution: the masks are the file's model's,
    upsampled), to be trained on top.
    """
    backbone = model.spec.name
    if not path.is_file():
        if backbone == "tiny" and path == shipped_path("sam_tiny"):
            raise MissingWeightsError(
                f"the shipped tiny weights {path} are missing from this installation; reinstall pge-sam, "
                "or train them with `pge-sam train base` and pass --checkpoint"
            )
        raise MissingWeightsError(W.missing_message(path, backbone))
    if path.suffix == ".safetensors":
        tensors, meta = W.read_safetensors(path)
        check_meta(meta, path, kind="sam", backbone=backbone)
        if hasattr(model.sam, "detail") and not any(k.startswith("detail.") for k in tensors):
            if new_detail_ok:
                tensors = dict(tensors, **{f"detail.{k}": v for k, v in model.sam.detail.state_dict().items()})
            else:
                drop_detail(model)
        W.load_into(model.sam, tensors, path, f"sam_{backbone}")
    else:
        expected = (W.OFFICIAL[backbone].sha256
                    if (backbone in W.OFFICIAL and path.name == W.OFFICIAL[backbone].filename) else None)
        W.load_sam_checkpoint(model.sam, path, f"sam_{backbone}", expected_sha256=expected)
    model.weights_changed(str(path))


def drop_detail(model: SegmentationModel) -> None:
    """Remove the detail path: ``model`` becomes the plain SAM of its backbone (128x128 masks for tiny)."""
    del model.sam.detail
    model.spec = replace(model.spec, detail=False)
    model.weights_changed()


def load_adapter(model: PGESamModel, path: Path) -> None:
    """Load PGE module weights (safetensors written by :func:`save_adapter`)."""
    if not path.is_file():
        raise MissingWeightsError(
            f"PGE adapter weights {path} not found. Train them with `pge-sam train pge --backbone "
            f"{model.spec.name}` (writes that file), pass --adapter PATH, or use the plain model "
            f"sam_{model.spec.name}"
        )
    tensors, meta = W.read_safetensors(path)
    check_meta(meta, path, kind="pge_adapter", backbone=model.spec.name)
    W.load_into(model.pge, tensors, path, f"pge_sam_{model.spec.name} adapter")
    model.guidance = bool(meta.get("guidance", True))  # False: trained as the no-guidance ablation
    model.weights_changed(f"{model.weights_source} + {path}")


def load_robust_adapter(model: RobustSamModel, path: Path) -> None:
    """Load RobustSAM modules trained by ``pge-sam train robust`` (safetensors from :func:`save_robust_adapter`)."""
    if not path.is_file():
        raise MissingWeightsError(RW.missing_message(path, model.spec.name, official=False))
    tensors, meta = W.read_safetensors(path)
    check_meta(meta, path, kind="robust_adapter", backbone=model.spec.name)
    W.load_into(model.robust, tensors, path, f"robust_sam_{model.spec.name} modules")
    model.weights_changed(f"{model.weights_source} + {path}")


def _ref_missing(path: Path, backbone: str) -> str:
    return (f"SAM-REF refiner weights {path} not found. Train them with `pge-sam train ref --backbone {backbone}` "
            f"and pass the run's sam_ref_{backbone}.safetensors as --adapter (or copy it to that path), or use the "
            f"plain model sam_{backbone}")


def load_ref_adapter(model: SamRefModel, path: Path) -> None:
    """Load SAM-REF's refiners trained by ``pge-sam train ref`` (safetensors from :func:`save_ref_adapter`)."""
    if not path.is_file():
        raise MissingWeightsError(_ref_missing(path, model.spec.name))
    tensors, meta = W.read_safetensors(path)
    check_meta(meta, path, kind="ref_adapter", backbone=model.spec.name)
    W.load_into(model.ref, tensors, path, f"sam_ref_{model.spec.name} refiners")
    model.weights_changed(f"{model.weights_source} + {path}")


def check_meta(meta: dict, path: Path, kind: str, backbone: str) -> None:
    if meta.get("kind") != kind:
        raise WeightsError(f"{path} holds {meta.get('kind')!r} weights, but {kind!r} weights were expected")
    if meta.get("backbone") != backbone:
        raise WeightsError(
            f"{path} was trained for backbone {meta.get('backbone')!r}, not {backbone!r}; "
            "use the matching model name"
        )


def save_base(model: SegmentationModel, path: Path | str, meta: dict | None = None, half: bool = True) -> Path:
    """Save the whole SAM of ``model`` as project safetensors (fp16 by default)."""
    header = dict(meta or {}, kind="sam", backbone=model.spec.name)
    return W.save_safetensors(model.sam.state_dict(), path, header, half=half)


def save_adapter(model: PGESamModel, path: Path | str, meta: dict | None = None, half: bool = False) -> Path:
    """Save only the PGE modules of ``model``."""
    header = dict(meta or {}, kind="pge_adapter", backbone=model.spec.name, guidance=bool(model.guidance))
    return W.save_safetensors(model.pge.state_dict(), path, header, half=half)


def save_robust_adapter(model: RobustSamModel, path: Path | str, meta: dict | None = None, half: bool = False) -> Path:
    """Save only the RobustSAM modules of ``model``."""
    header = dict(meta or {}, kind="robust_adapter", backbone=model.spec.name)
    return W.save_safetensors(model.robust.state_dict(), path, header, half=half)


def save_ref_adapter(model: SamRefModel, path: Path | str, meta: dict | None = None, half: bool = False) -> Path:
    """Save only SAM-REF's refiners."""
    header = dict(meta or {}, kind="ref_adapter", backbone=model.spec.name)
    return W.save_safetensors(model.ref.state_dict(), path, header, half=half)


def list_models() -> list[dict]:
    """One row per model: name, variant, backbone, base weights path + presence, adapter path + presence."""
    rows = []
    for name in model_names():
        info = parse_name(name)
        base = base_weights_path(info.backbone)
        row = {"name": name, "variant": info.variant, "backbone": info.backbone,
               "weights": str(base), "present": base.is_file()}
        if info.variant == "pge_sam":
            ad = adapter_path(info.backbone)
            row.update(adapter=str(ad), present=row["present"] and ad.is_file())
        elif info.variant == "sam_ref":
            ad = ref_adapter_path(info.backbone)
            row.update(adapter=str(ad), present=row["present"] and ad.is_file())
        elif info.variant == "pge_sam_ref":
            pge, ref = adapter_path(info.backbone), ref_adapter_path(info.backbone)
            row.update(adapter=f"{pge} + {ref}", present=row["present"] and pge.is_file() and ref.is_file())
        elif info.variant == "robust_sam":
            official, modules = _robust_sources(info.backbone, None, None)
            if official is not None:
                row.update(weights=str(official), present=official.is_file())
            else:
                row.update(adapter=str(modules), present=row["present"] and modules.is_file())
        rows.append(row)
    return rows

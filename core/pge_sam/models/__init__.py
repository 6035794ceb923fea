"""Models: SAM backbones, the PGE-SAM and RobustSAM variants, the registry and weights I/O."""

from .backbones import BACKBONES, BackboneSpec, build_sam, get_backbone
from .base import PromptBatch, SegmentationModel
from .pge import PGESamModel
from .registry import DEFAULT_MODEL, build_model, default_model, list_models, model_names, save_adapter, save_base
from .robust import RobustSamModel

__all__ = [
    "BACKBONES",
    "DEFAULT_MODEL",
    "BackboneSpec",
    "PGESamModel",
    "PromptBatch",
    "RobustSamModel",
    "SegmentationModel",
    "build_model",
    "build_sam",
    "default_model",
    "get_backbone",
    "list_models",
    "model_names",
    "save_adapter",
    "save_base",
]

"""Models: SAM backbones, the PGE-SAM and RobustSAM variants, the registry and weights I/O."""

from .backbones import BACKBONES, BackboneSpec, build_sam, get_backbone
from .base import PromptBatch, SegmentationModel
from .pge import PGESamModel
from .robust import RobustSamModel
from .registry import DEFAULT_MODEL, build_model, default_model, list_models, model_names, save_adapter, save_base

__all__ = [
    "BACKBONES", "BackboneSpec", "build_sam", "get_backbone", "PromptBatch", "SegmentationModel",
    "PGESamModel", "RobustSamModel", "DEFAULT_MODEL", "build_model", "default_model", "list_models", "model_names", "save_adapter", "save_base",
]

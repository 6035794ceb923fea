"""pge-sam: interactive segmentation of degraded medical images with Segment-Anything models.

Public API (imported lazily, so ``import pge_sam`` is cheap and has no side effects)::

    from pge_sam import build_model, Session, Normalization

``build_model(name, cache_dir=...)`` takes the weights folder explicitly; a
front-end drives a session only through the verbs of :class:`SessionLike`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "build_model": "pge_sam.model_files",
    "model_files": "pge_sam.model_files",
    "list_models": "pge_sam.models.registry",
    "DEFAULT_MODEL": "pge_sam.models.registry",
    "default_model": "pge_sam.models.registry",
    "Session": "pge_sam.session",
    "Change": "pge_sam.session_protocol",
    "PromptMark": "pge_sam.session_protocol",
    "SessionLike": "pge_sam.session_protocol",
    "Interaction": "pge_sam.interaction",
    "Predictor": "pge_sam.predictor",
    "EmbeddingCache": "pge_sam.cache",
    "save_embeddings": "pge_sam.embeddings",
    "load_embeddings": "pge_sam.embeddings",
    "Normalization": "pge_sam.normalize",
    "PropagationConfig": "pge_sam.propagate",
    "PgeSamError": "pge_sam.errors",
    "InputError": "pge_sam.errors",
    "PromptError": "pge_sam.errors",
    "WeightsError": "pge_sam.errors",
    "MissingWeightsError": "pge_sam.errors",
    "ChecksumError": "pge_sam.errors",
    "Cancelled": "pge_sam.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pge_sam' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

"""Training data and training loops for pge_sam models (synthetic scenes with exact masks)."""

from pge_sam.train.synth import (
    KINDS,
    STYLES,
    Scene,
    SynthConfig,
    SynthConfigError,
    generate_scene,
)
from pge_sam.train.synth_dataset import SynthDataset, write_synth_preview

__all__ = [
    "KINDS",
    "STYLES",
    "Scene",
    "SynthConfig",
    "SynthConfigError",
    "SynthDataset",
    "generate_scene",
    "write_synth_preview",
]

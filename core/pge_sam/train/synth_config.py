"""Configuration of the procedural scene generator: :class:`SynthConfig` and its validation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from pge_sam.errors import InputError

KINDS = ("blob", "organ", "ellipse", "tube", "ring", "concave", "folded")
STYLES = ("tissue", "brain", "phantom", "field")
PROFILES = ("flat", "gradient", "rim", "core")
_CONTAINERS = frozenset({"body", "blob", "organ", "ellipse", "folded"})


class SynthConfigError(InputError):
    """A :class:`SynthConfig` value or a generator argument is out of range."""


def _int_in(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo \
            or (hi is not None and value > hi):
        top = "inf" if hi is None else hi
        raise SynthConfigError(f"{name}={value!r}: use an int in [{lo}, {top}]")
    return int(value)


def _weights(value, allowed, name):
    items = value.items() if isinstance(value, Mapping) else value
    out = []
    for key, w in items:
        if key not in allowed:
            raise SynthConfigError(f"{name}: unknown name {key!r}; use some of {allowed}")
        if not (math.isfinite(w) and w >= 0):
            raise SynthConfigError(f"{name}[{key!r}] = {w!r}: weights must be finite and >= 0")
        out.append((str(key), float(w)))
    if sum(w for _, w in out) <= 0:
        raise SynthConfigError(f"{name}: at least one weight must be > 0, got {dict(out)}")
    return tuple(sorted(out))


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of :func:`generate_scene`; ranges are ``(low, high)`` uniform draws.

    Weight fields accept a mapping ``{name: weight}`` and are stored as a
    sorted tuple of ``(name, weight)`` pairs. ``kind_weights`` governs the
    generic objects of the tissue and field styles and the extra lesions of
    the brain style; brain anatomy and phantom ellipses are fixed by the style.
    Intensities (contrast, texture, noise) are in units of the [0, 1] scene
    intensity before final normalisation. ``tube_radius`` and ``min_area`` are
    in output pixels.
    """

    size: int = 256
    supersample: int = 2
    n_objects: tuple[int, int] = (3, 10)
    style_weights: Mapping | tuple = field(
        default_factory=lambda: {"tissue": 0.35, "brain": 0.3, "phantom": 0.15, "field": 0.2})
    kind_weights: Mapping | tuple = field(default_factory=lambda: {
        "blob": 0.22, "organ": 0.16, "ellipse": 0.1, "tube": 0.2, "ring": 0.1,
        "concave": 0.12, "folded": 0.1})
    profile_weights: Mapping | tuple = field(
        default_factory=lambda: {"flat": 0.4, "gradient": 0.2, "rim": 0.25, "core": 0.15})
    p_nested: float = 0.35
    p_low_contrast: float = 0.3
    contrast: tuple[float, float] = (0.1, 0.4)
    low_contrast: tuple[float, float] = (0.035, 0.07)
    texture: tuple[float, float] = (0.0, 0.05)
    tube_radius: tuple[float, float] = (0.7, 2.5)
    noise_std: tuple[float, float] = (0.0, 0.02)
    bias: tuple[float, float] = (0.0, 0.3)
    blur_sigma: tuple[float, float] = (0.0, 0.8)
    gamma: tuple[float, float] = (0.75, 1.35)
    p_invert: float = 0.3
    p_negative: float = 0.05
    min_area: int = 24
    min_visible_fraction: float = 0.3
    compound_masks: bool = True

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "style_weights", _weights(self.style_weights, STYLES, "style_weights"))
        set_(self, "kind_weights", _weights(self.kind_weights, KINDS, "kind_weights"))
        set_(self, "profile_weights", _weights(self.profile_weights, PROFILES, "profile_weights"))
        _int_in("size", self.size, 32, 4096)
        _int_in("supersample", self.supersample, 1, 4)
        _int_in("min_area", self.min_area, 1, self.size ** 2 // 64)
        if not (len(self.n_objects) == 2 and 0 <= self.n_objects[0] <= self.n_objects[1] <= 64):
            raise SynthConfigError(f"n_objects={self.n_objects!r}: need 0 <= low <= high <= 64")
        for name in ("contrast", "low_contrast", "texture", "tube_radius", "noise_std", "bias",
                     "blur_sigma", "gamma"):
            lo, hi = getattr(self, name)
            pos = name in ("contrast", "low_contrast", "tube_radius", "gamma")
            if not (math.isfinite(hi) and (lo > 0 if pos else lo >= 0) and lo <= hi):
                rule = "0 < low" if pos else "0 <= low"
                raise SynthConfigError(f"{name}={(lo, hi)!r}: need finite {rule} <= high")
        for name in ("p_nested", "p_low_contrast", "p_invert", "p_negative",
                     "min_visible_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SynthConfigError(f"{name}={getattr(self, name)!r}: use a value in [0, 1]")

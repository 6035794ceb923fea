"""Training batches from synthetic scenes: normalised model inputs, ground truth and degraded twins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..normalize import Normalization, to_uint8
from .config import TrainConfig
from .synth import SynthConfig, generate_scene


@dataclass
class Sample:
    clean: np.ndarray      # (H, W) uint8, normalised as a session would
    degraded: np.ndarray   # (H, W) uint8 (== clean for the base stage / clean draws)
    gts: np.ndarray        # (K, H, W) bool: K targets of the same scene
    seed: int


def normalise(image: np.ndarray) -> np.ndarray:
    return to_uint8(image, *Normalization.percentile().value_range(image))


def pick_targets(masks: np.ndarray, k: int, min_area: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` targets among ``masks`` (N, H, W) bool, distinct when there are enough.

    Masks under ``min_area`` pixels are left out (unless none is that large: then
    the largest), and the rest drawn with probability proportional to sqrt(area),
    so training time goes to structures of the size users click on, not to
    specks a 8-px-patch encoder cannot resolve.
    """
    areas = masks.reshape(len(masks), -1).sum(1).astype(np.float64)
    ok = areas >= min_area
    if not ok.any():
        ok = areas == areas.max()
    weights = np.sqrt(areas) * ok
    return rng.choice(len(masks), size=k, replace=int(ok.sum()) < k, p=weights / weights.sum())


def make_sample(seed: int, cfg: TrainConfig, synth: SynthConfig, degradations: list[str]) -> Sample:
    """Scene ``seed`` -> ``cfg.targets_per_image`` random objects (distinct when the scene has enough),
    a random flip/rot90, and (pge and robust stages, or ``degrade_base``) a degraded twin."""
    rng = np.random.default_rng(seed)
    if cfg.synthseg_prob and np.random.default_rng(seed + 31).random() < cfg.synthseg_prob:
        from .synthseg import generate_synthseg_scene

        scene = generate_synthseg_scene(seed, synth.size)
    else:
        scene = generate_scene(seed, synth)
    pick = pick_targets(scene.masks, cfg.targets_per_image, cfg.min_target_area, rng)
    image, gts = scene.image, scene.masks[pick]
    turns = int(rng.integers(4))
    image, gts = np.rot90(image, turns), np.rot90(gts, turns, axes=(1, 2))
    if rng.random() < 0.5:
        image, gts = image[:, ::-1], gts[:, :, ::-1]
    image, gt = np.ascontiguousarray(image), np.ascontiguousarray(gts)
    clean = normalise(image)
    degraded = clean
    if (cfg.stage != "base" or cfg.degrade_base) and rng.random() >= cfg.clean_prob:
        from ..degrade import apply

        name = degradations[rng.integers(len(degradations))]
        severity = int(rng.choice(cfg.severities))
        degraded = normalise(apply(image, name, severity, seed=seed))
    return Sample(clean, degraded, gt, seed)


def to_model_input(model, slices: list[np.ndarray]) -> torch.Tensor:
    """(B, 3, S, S) float: resize-longest-side + SAM normalisation + padding (as the predictor does)."""
    from ..prompts import InputTransform

    out = []
    for s in slices:
        img = InputTransform(model.spec.img_size, s.shape).image(s)
        t = torch.as_tensor(img).permute(2, 0, 1)[None].float().to(model.device)
        out.append(model.sam.preprocess(t)[0])
    return torch.stack(out)


def gt_to_input(model, gts: list[np.ndarray]) -> torch.Tensor:
    """(T, S, S) bool ground truth in the model's input frame (nearest resize, zero padding) for T (H, W) masks."""
    from torch.nn import functional as F

    from ..prompts import InputTransform

    size = model.spec.img_size
    out = torch.zeros(len(gts), size, size, dtype=torch.bool)
    for i, g in enumerate(gts):
        h, w = InputTransform(size, g.shape).input_size
        t = torch.as_tensor(g, dtype=torch.float32)[None, None]
        out[i, :h, :w] = F.interpolate(t, (h, w), mode="nearest")[0, 0] > 0.5
    return out.to(model.device)

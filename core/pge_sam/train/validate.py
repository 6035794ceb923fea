"""Held-out validation during training: the benchmark's click protocol on procedural scenes.

The last step of a run is not always its best (the shipped ``sam_tiny`` v1
scored better on the MRI benchmark 550 steps before its end), and picking a
checkpoint by the benchmark would tune on the test set. So a run scores itself
on scenes it never trains on: seeds from :data:`VAL_SEED_BASE` on, far above
any training seed (``seed * 1_000_003 + step * batch + i``), one target per
scene, clicks placed by :func:`pge_sam.evaluate.clicks.next_click` and run
through the same :class:`~pge_sam.session.Session` a user drives. In the pge
and robust stages every validation scene is degraded (the adapter's purpose).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..evaluate.episode import click_ious
from .config import TrainConfig
from .data import make_sample
from .synth import SynthConfig

VAL_SEED_BASE = 900_000_000


def validation_samples(cfg: TrainConfig, synth: SynthConfig, degradations: list[str]) -> list:
    """``cfg.val_scenes`` fixed held-out :class:`~.data.Sample` s with one target each."""
    val_cfg = replace(cfg, targets_per_image=1, clean_prob=0.5 if cfg.stage in ("base", "ref") else 0.0)
    return [make_sample(VAL_SEED_BASE + i, val_cfg, synth, degradations) for i in range(cfg.val_scenes)]


def validate(model, samples: list, clicks: int) -> dict[str, float]:
    """Mean IoU after click 1, after click ``clicks`` and over clicks 1..``clicks`` over ``samples``, and the
    share of click steps whose IoU dropped by more than 0.02 (model left in train mode)."""
    from ..evaluate.sam_adapter import SessionClickPredictor

    was_training = model.training
    model.eval()
    curves = []
    try:
        with torch.no_grad():
            predictor = SessionClickPredictor(model)
            for sample in samples:
                predictor.set_image(sample.degraded.astype(np.float32))
                ious, _ = click_ious(predictor, sample.gts[0], clicks)
                curves.append(np.asarray(ious, dtype=float))
    finally:
        model.train(was_training)
    steps = np.concatenate([np.diff(c) for c in curves]) if clicks > 1 else np.zeros(1)
    return {"val_iou_first": float(np.mean([c[0] for c in curves])),
            "val_iou_last": float(np.mean([c[-1] for c in curves])),
            "val_miou": float(np.mean([c.mean() for c in curves])), "val_drop_rate": float(np.mean(steps < -0.02))}


def per_degradation_table(backbone: str = "tiny", base_weights=None, adapter=None, severity: int = 3,
                          scenes: int = 16, clicks: int = 5, device: str = "auto") -> str:
    """Markdown table: IoU after ``clicks`` clicks of ``sam_<backbone>`` and ``pge_sam_<backbone>``
    on the first ``scenes`` held-out scenes, clean and with each degradation at ``severity``."""
    from ..degrade import list_degradations
    from ..errors import InputError
    from ..models.registry import build_model

    if severity not in (1, 2, 3) or scenes < 1:
        raise InputError(f"severity must be 1, 2 or 3 and scenes >= 1 (got {severity}, {scenes})")
    sam = build_model(f"sam_{backbone}", checkpoint=base_weights, device=device)
    pge = build_model(f"pge_sam_{backbone}", checkpoint=base_weights, adapter=adapter, device=device)
    synth = SynthConfig()
    clean_cfg = TrainConfig(stage="base", val_scenes=scenes)
    lines = [f"| condition (severity {severity}) | sam_{backbone} | pge_sam_{backbone} | difference |",
             "|---|---|---|---|"]
    rows = [("clean", validation_samples(clean_cfg, synth, []))]
    for name in list_degradations():
        cfg = TrainConfig(stage="pge", val_scenes=scenes, severities=(severity,))
        rows.append((name, validation_samples(cfg, synth, [name])))
    diffs = []
    for name, samples in rows:
        a, b = (validate(m, samples, clicks)["val_iou_last"] for m in (sam, pge))
        lines.append(f"| {name} | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
        if name != "clean":
            diffs.append((a, b))
    mean_a, mean_b = np.mean(diffs, axis=0)
    lines.append(f"| mean over degradations | {mean_a:.3f} | {mean_b:.3f} | {mean_b - mean_a:+.3f} |")
    return "\n".join(lines)

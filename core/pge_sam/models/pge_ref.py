"""PGE-SAM + SAM-REF (``pge_sam_ref_<backbone>``): the two fixes for two failures, in series.

PGE-SAM restores the embedding a degraded image spoils; SAM-REF recovers the
detail the 16x (8x for tiny) embedding grid loses. Here PGE's prompt-guided,
restored embedding feeds both SAM's decoder (the coarse mask) and the
refiners (projected per click, since it depends on the prompts); the image
goes to the refiners as in ``sam_ref``. The weights are the two variants' own:
the PGE adapter and the SAM-REF refiners, each trained on the plain base, so
this model needs no training of its own (whether it beats either alone is
measured in ``docs/model_cards.md``).
"""

from __future__ import annotations

import torch
from torch import nn

from .backbones import BackboneSpec
from .base import PromptBatch, first_click_choice
from .pge import PGESamModel
from .ref import RefModules, ref_image, ref_sizes, refine, split_feedback


class PgeSamRefModel(PGESamModel):
    """Frozen SAM + PGE modules (``pge``) + SAM-REF refiners (``ref``)."""

    variant = "pge_sam_ref"

    def __init__(self, sam, spec: BackboneSpec, name: str, **pge_kwargs) -> None:
        super().__init__(sam, spec, name, **pge_kwargs)
        self.ref = RefModules(spec, ref_sizes(spec))

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**super().encode(images), "ref_image": ref_image(images, self.spec)}

    def decode(self, features, prompts: PromptBatch, multimask: bool):
        sam_prompts, previous, previous_error = split_feedback(prompts)
        coarse, iou, enhanced = self.decode_with_embedding(features, sam_prompts, multimask)
        if multimask:  # refine PGE-SAM's chosen guess only
            best = first_click_choice(iou, coarse, self.spec.first_click_margin, self.sam.mask_threshold)
            pick = torch.arange(coarse.shape[0], device=coarse.device)
            coarse, iou = coarse[pick, best][:, None], iou[pick, best][:, None]
        feats = {"ref_image": features["ref_image"], "ref_embedding": self.ref.project(enhanced)}
        final, extras = refine(self.ref, self.spec, feats, prompts, coarse, previous, previous_error)
        return final, iou, extras["memory"]

    def extra_state_names(self) -> tuple[str, ...]:
        return (*super().extra_state_names(), "ref_image")

    def trainable_parameters(self) -> list[nn.Parameter]:
        return []

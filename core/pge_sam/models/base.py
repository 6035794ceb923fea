"""The model contract shared by every variant: an expensive ``encode`` and a cheap ``decode``.

A variant is an ``nn.Module`` that owns a frozen segment-anything ``Sam`` and
optional extra modules:

* ``encode(images)`` runs the image encoder once per slice and returns every
  prompt-independent tensor the variant needs (cached per slice);
* ``decode(features, prompts)`` runs per click.

``forward`` is not used; no method here is decorated with ``no_grad`` so that
training code can call the sub-modules directly (the predictor adds
``inference_mode``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import BackboneSpec
from .detail import DETAIL_KEYS, predict_masks


@dataclass
class PromptBatch:
    """Prompts for one image in the model's input frame (after resize-longest-side).

    ``coords``: (1, N, 2) float, (x, y) = (col, row) pixels; ``labels``: (1, N)
    int (1 positive, 0 negative, -1 padding); ``box``: (1, 4) float x0, y0, x1,
    y1 or ``None``; ``mask_input``: (1, 1, L, L) previous low-res logits with
    L = 4 * embedding side, or ``None``.
    """

    coords: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    box: torch.Tensor | None = None
    mask_input: torch.Tensor | None = None

    @property
    def points(self):
        return None if self.coords is None else (self.coords, self.labels)


def detail_features(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The ``detail_s*`` entries of a feature dict, or ``None`` when the backbone has no detail path."""
    if DETAIL_KEYS[0] not in features:
        return None
    return {k: features[k] for k in DETAIL_KEYS}


def first_click_choice(iou: torch.Tensor, logits: torch.Tensor, margin: float = 0.0,
                       threshold: float = 0.0) -> torch.Tensor:
    """Which of the M masks a lone click keeps, per prompt set: (T,) indices from ``iou`` (T, M) and ``logits``
    (T, M, H, W). ``margin`` 0: the best-scored mask (SAM's rule). ``margin`` > 0: the smallest non-empty mask
    scored within ``margin`` of the best, the most specific object the click may mean (the best-scored when
    every such mask is empty). Callers pass the backbone's ``first_click_margin``; ``threshold``: the mask
    threshold."""
    best = iou.argmax(1)
    if margin <= 0:
        return best
    area = (logits > threshold).flatten(2).sum(2).float()
    near = (iou >= iou.max(1, keepdim=True).values - margin) & (area > 0)
    smallest = torch.where(near, area, torch.full_like(area, float("inf"))).argmin(1)
    return torch.where(near.any(1), smallest, best)


class SegmentationModel(nn.Module):
    """Plain SAM: the base of every variant.

    ``sam``: a ``segment_anything.modeling.Sam``; ``spec``: its sizes;
    ``name``: the registry name (e.g. ``"sam_tiny"``).
    """

    variant = "sam"

    def __init__(self, sam, spec: BackboneSpec, name: str) -> None:
        super().__init__()
        self.sam = sam
        self.spec = spec
        self.name = name
        self._fingerprint: str | None = None
        self.weights_source = "random init"
        for p in self.sam.parameters():
            p.requires_grad_(False)

    # -- per slice ---------------------------------------------------------
    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode a batch of preprocessed images.

        ``images``: (B, 3, S, S) float, already normalised and padded by
        ``sam.preprocess`` (S = ``spec.img_size``). Returns ``{"embedding":
        (B, C, h, w)}`` plus variant extras, each with leading batch dim B.
        """
        return {"embedding": self.sam.image_encoder(images), **self.encode_detail(images)}

    def encode_detail(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The high-resolution detail features (``detail_s4/s2/s1``) of a backbone that has them, else ``{}``."""
        detail = getattr(self.sam, "detail", None)
        return {} if detail is None else detail.encoder(images)

    def encode_backbone(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One encoder pass: the neck embedding (B, D, h, w) and the early feature (B, C, h, w).

        The early feature is the output of the first global-attention block
        (``spec.early_block``), channels first; C = ``spec.embed_dim``.
        """
        captured: list[torch.Tensor] = []
        block = self.sam.image_encoder.blocks[self.spec.early_block]
        handle = block.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            embedding = self.sam.image_encoder(images)
        finally:
            handle.remove()
        return embedding, captured[0].permute(0, 3, 1, 2)  # (B, h, w, C) -> (B, C, h, w)

    # -- per click -----------------------------------------------------------
    def decode(
        self, features: dict[str, torch.Tensor], prompts: PromptBatch, multimask: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits (1, M, m, m) and IoU predictions (1, M); M = 3 if ``multimask`` else 1.

        m = ``spec.mask_size``: the full input side with the detail path, else
        the low-res side L = 4 x the embedding side. A variant with a per-slice
        memory (SAM-REF) returns it as a third item, (1, C, L, L), which the
        predictor appends to the fed-back mask as further channels.
        """
        return self._sam_decode(features["embedding"], prompts, multimask, detail_features(features))

    def _sam_decode(self, embedding: torch.Tensor, prompts: PromptBatch, multimask: bool,
                    detail: dict[str, torch.Tensor] | None = None):
        """SAM's prompt encoder + mask decoder (with the detail path when ``detail`` is given).

        ``embedding``: (B, C, h, w); the prompts hold B * K prompt sets in
        image-major order (K per image). segment-anything's decoder pairs one
        image with many prompt sets, so it runs once per image on that image's K sets.
        ``detail``: the ``detail_s*`` tensors, batch B (or 1 per image).
        """
        prompts = self.lowres_prompts(prompts)
        sparse, dense = self.sam.prompt_encoder(points=prompts.points, boxes=prompts.box, masks=prompts.mask_input)
        pe = self.sam.prompt_encoder.get_dense_pe()
        b = embedding.shape[0]
        k = sparse.shape[0] // b
        if detail:
            pick = slice(1, None) if multimask else slice(0, 1)
            outs = []
            for i in range(b):
                masks, iou = predict_masks(self.sam.mask_decoder, self.sam.detail.head, embedding[i : i + 1], pe,
                                           sparse[i * k : (i + 1) * k], dense[i * k : (i + 1) * k],
                                           {n: v[i : i + 1] for n, v in detail.items()})
                outs.append((masks[:, pick], iou[:, pick]))
        else:
            outs = [
                self.sam.mask_decoder(
                    image_embeddings=embedding[i : i + 1],
                    image_pe=pe,
                    sparse_prompt_embeddings=sparse[i * k : (i + 1) * k],
                    dense_prompt_embeddings=dense[i * k : (i + 1) * k],
                    multimask_output=multimask,
                )
                for i in range(b)
            ]
        if len(outs) == 1:
            return outs[0]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def lowres_prompts(self, prompts: PromptBatch) -> PromptBatch:
        """``prompts`` with ``mask_input`` as SAM's prompt encoder takes it: its first channel, area-resized to L
        when it is the detail path's full-resolution output."""
        lowres = self.spec.lowres_size
        mask = prompts.mask_input
        if mask is None or (mask.shape[-1] == lowres and mask.shape[1] == 1):
            return prompts
        mask = mask[:, :1]  # further channels are a variant's memory (see Prediction.low_res)
        if mask.shape[-1] != lowres:
            mask = F.interpolate(mask, (lowres, lowres), mode="area")
        return PromptBatch(prompts.coords, prompts.labels, prompts.box, mask)

    # -- identity ------------------------------------------------------------
    def extra_state_names(self) -> tuple[str, ...]:
        """Names of the variant's cached per-slice tensors beyond ``embedding``."""
        return DETAIL_KEYS if self.spec.detail else ()

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters a variant trains on top of the frozen SAM (none for plain SAM)."""
        return []

    def fingerprint(self) -> str:
        """Hash of every parameter and buffer (hex, 16 chars), cached until :meth:`weights_changed`."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=8)
            for name, t in sorted(self.state_dict().items()):
                h.update(name.encode())
                h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def weights_changed(self, source: str | None = None) -> None:
        """Call after loading or training weights: the fingerprint (part of cache keys) is recomputed."""
        self._fingerprint = None
        if source is not None:
            self.weights_source = source

    @property
    def device(self) -> torch.device:
        return next(self.sam.parameters()).device

"""The tiny model's high-resolution path: sharp masks from a 32x32 embedding.

The tiny ViT sees the image in 8-px patches, so on its own its masks are
blobs at 8-px detail. As in SAM 2's decoder, high-resolution image features
are computed once per slice (cached with the embedding) and added inside the
decoder's upscaling path; here one more upscaling step takes the masks to the
full input resolution (256x256 for ``tiny``):

* :class:`DetailEncoder` (per slice): a small CNN on the preprocessed image
  with outputs at strides 4, 2 and 1, each projected to the width of the
  decoder stage it joins (C/4, C/8, C/8 for prompt width C) and cached as
  ``detail_s4``, ``detail_s2``, ``detail_s1``.
* :func:`predict_masks` (per click): segment-anything's
  ``MaskDecoder.predict_masks`` with the three features added: stride 4 after
  the first transposed conv, stride 2 after the second, and a final 2x
  upsampling whose residual (a 1x1 fusion of the upsampled decoder feature and
  ``detail_s1``) is learnt. The mask tokens' hypernetworks are SAM's own.

Every projection and the final residual are zero-initialised, so a model
whose detail weights are untrained gives exactly SAM's masks, bilinearly
upsampled: the new path can only be learnt on top of a trained decoder.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

DETAIL_KEYS = ("detail_s4", "detail_s2", "detail_s1")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(1, cout), nn.GELU())


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class DetailEncoder(nn.Module):
    """Per-slice CNN features at strides 4, 2, 1 for a decoder of prompt width ``prompt_dim``.

    ``widths``: channels of the CNN at strides 1, 2, 4. Input: (B, 3, S, S)
    preprocessed image; output: ``{detail_s4: (B, C/4, S/4, S/4), detail_s2:
    (B, C/8, S/2, S/2), detail_s1: (B, C/8, S, S)}``.
    """

    def __init__(self, prompt_dim: int, widths: tuple[int, int, int] = (16, 32, 48)) -> None:
        super().__init__()
        w1, w2, w4 = widths
        self.s1 = nn.Sequential(_conv(3, w1), _conv(w1, w1))
        self.s2 = nn.Sequential(_conv(w1, w2, 2), _conv(w2, w2))
        self.s4 = nn.Sequential(_conv(w2, w4, 2), _conv(w4, w4), _conv(w4, w4))
        self.proj_s1 = nn.Conv2d(w1, prompt_dim // 8, 1)
        self.proj_s2 = _zero(nn.Conv2d(w2, prompt_dim // 8, 1))
        self.proj_s4 = _zero(nn.Conv2d(w4, prompt_dim // 4, 1))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        f1 = self.s1(images)
        f2 = self.s2(f1)
        f4 = self.s4(f2)
        return {"detail_s4": self.proj_s4(f4), "detail_s2": self.proj_s2(f2), "detail_s1": self.proj_s1(f1)}


class DetailHead(nn.Module):
    """The per-click full-resolution step: ``x = up2(x) + W2 GELU(W1 [up2(x), detail_s1])`` (W2 zero-initialised)."""

    def __init__(self, prompt_dim: int, hidden: int = 16) -> None:
        super().__init__()
        c = prompt_dim // 8
        self.fuse = nn.Conv2d(2 * c, hidden, 1)
        self.out = _zero(nn.Conv2d(hidden, c, 1))

    def forward(self, x: torch.Tensor, detail_s1: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return x + self.out(F.gelu(self.fuse(torch.cat([x, detail_s1.expand(x.shape[0], -1, -1, -1)], 1))))


class DetailPath(nn.Module):
    """Both halves of the high-resolution path; lives on the ``Sam`` as ``sam.detail`` (saved with it)."""

    def __init__(self, prompt_dim: int) -> None:
        super().__init__()
        self.encoder = DetailEncoder(prompt_dim)
        self.head = DetailHead(prompt_dim)


def predict_masks(decoder, head: DetailHead, embedding: torch.Tensor, image_pe: torch.Tensor,
                  sparse: torch.Tensor, dense: torch.Tensor, detail: dict[str, torch.Tensor]):
    """segment-anything's mask prediction for one image and T prompt sets, with the detail features added.

    ``decoder``: a ``segment_anything`` ``MaskDecoder``; ``embedding`` (1, C, h, w);
    ``sparse`` (T, N, C), ``dense`` (T, C, h, w); ``detail``: this image's
    ``detail_s*`` tensors with batch 1. Returns masks (T, 4, 4h*2, 4w*2) and IoU (T, 4).
    """
    t = sparse.shape[0]
    tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat([tokens[None].expand(t, -1, -1), sparse], dim=1)
    src = embedding.expand(t, -1, -1, -1) + dense
    pos = image_pe.expand(t, -1, -1, -1)
    c, h, w = src.shape[1:]
    hs, src = decoder.transformer(src, pos, tokens)
    conv1, norm1, act1, conv2, act2 = decoder.output_upscaling
    x = act1(norm1(conv1(src.transpose(1, 2).reshape(t, c, h, w)) + detail["detail_s4"]))
    x = act2(conv2(x) + detail["detail_s2"])
    x = head(x, detail["detail_s1"])
    n = decoder.num_mask_tokens
    weights = torch.stack([decoder.output_hypernetworks_mlps[i](hs[:, 1 + i]) for i in range(n)], dim=1)
    masks = (weights @ x.flatten(2)).view(t, n, *x.shape[-2:])
    return masks, decoder.iou_prediction_head(hs[:, 0])

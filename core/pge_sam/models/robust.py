"""RobustSAM (Chen et al., CVPR 2024): a degradation-robust mask decoder on a frozen SAM.

Our re-implementation from the paper and the facts of its released modules
(``../shared/spec/model.md`` section 3). Every added module lives next to SAM's
mask decoder; the image and prompt encoders stay SAM's.

Per slice (prompt-independent, cached): ``embedding`` F (B, D, h, w) and
``robust_features`` (B, D/8, 4h, 4w) = AMFG(early feature) + AMFG(F): the
anti-degradation mask-feature generation. Each AMFG branch is a
normalisation-selective conv block (batch-norm and instance-norm branches mixed
per channel and 4x4 cell), squeeze-excitation channel attention, a Fourier block
(1x1 conv on the FFT magnitude, phase kept), a 3x3 fuse conv and an upsampling
tail. The release recomputes these on every click; they do not depend on the
prompt, so here they are cached with the embedding.

Per click: SAM's two-way transformer runs with SAM's IoU token and 4 robust
output tokens. SAM's upscaled mask features pass through a third AMFG branch and
are added to ``robust_features``. Each robust token is normalised (AOTG:
instance norm over its D features), its first D/4 features go through a small
MLP back to D, and one shared hypernetwork MLP gives the D/8 mask weights.

Deliberate differences from the release (each noted where it happens):

* batched prompt sets work (the release's AOTG reshape needs one prompt per call);
* ``multimask`` returns 3 masks, those of robust tokens 1-3, with the IoU head's
  outputs 1-3 (the release returns 15 masks and 3 scores; its first three are these);
* batch norm uses its running statistics in eval mode (the release's demo never
  calls ``eval()``, so its batch norms use the statistics of the current image).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import BackboneSpec
from .base import PromptBatch, SegmentationModel

N_ROBUST_TOKENS = 4


def _ln2d(channels: int):
    from segment_anything.modeling.common import LayerNorm2d

    return LayerNorm2d(channels)


class NormSelectiveConv(nn.Module):
    """Batch-norm and instance-norm conv branches mixed by learned weights per channel and 4x4 cell.

    (B, c, H, W) -> (B, c, H, W); H and W divisible by 4. The mixing weights come
    from the 4x4-pooled sum of both branches (squeeze to c, two heads back to
    16c, softmax across the heads) and are upsampled to H x W by repetition.
    """

    CELLS = 4

    def __init__(self, c: int) -> None:
        super().__init__()
        cells = self.CELLS**2
        self.bn = nn.BatchNorm2d(c)
        self.conv_bn = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.conv_in = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.squeeze = nn.Linear(cells * c, c, bias=False)
        self.head_bn = nn.Linear(c, cells * c)
        self.head_in = nn.Linear(c, cells * c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        a = self.conv_bn(F.leaky_relu(self.bn(x), 0.01))
        i = self.conv_in(F.leaky_relu(F.instance_norm(x), 0.01))
        pooled = F.adaptive_avg_pool2d(a + i, self.CELLS).flatten(1)
        z = F.relu(self.squeeze(pooled))
        logits = torch.stack([self.head_bn(z), self.head_in(z)]).view(2, b, c, self.CELLS, self.CELLS)
        weights = torch.softmax(logits, dim=0)
        weights = F.interpolate(weights.flatten(0, 1), size=(h, w), mode="nearest").view(2, b, c, h, w)
        return a * weights[0] + i * weights[1]


class FourierBlock(nn.Module):
    """1x1 conv on the FFT magnitude of (B, c, H, W), phase kept; returns the real inverse FFT."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.fft2(x.float())
        magnitude = self.conv(spectrum.abs())
        rebuilt = torch.polar(torch.ones_like(magnitude), spectrum.angle()) * magnitude
        return torch.fft.ifft2(rebuilt).real.to(x.dtype)


class AMFGBranch(nn.Module):
    """One anti-degradation mask-feature branch: (B, c, H, W) -> ``tail`` output.

    ``x`` -> concat(x, NormSelectiveConv(x)) -> channel attention -> Fourier
    block -> 3x3 fuse conv (2c -> c) -> ``tail``. With ``clean=True`` only the
    tail runs (the target side of the consistency loss, as in the release).
    """

    def __init__(self, c: int, tail: nn.Module) -> None:
        super().__init__()
        hidden = max(1, 2 * c // 16)
        self.select = NormSelectiveConv(c)
        self.attention = nn.Sequential(nn.Linear(2 * c, hidden), nn.ReLU(), nn.Linear(hidden, 2 * c), nn.Sigmoid())
        self.fourier = FourierBlock(2 * c)
        self.fuse = nn.Conv2d(2 * c, c, 3, padding=1)
        self.tail = tail

    def forward(self, x: torch.Tensor, clean: bool = False) -> torch.Tensor:
        if clean:
            return self.tail(x)
        y = torch.cat([x, self.select(x)], dim=1)
        y = y * self.attention(y.mean(dim=(2, 3)))[:, :, None, None]
        return self.tail(self.fuse(self.fourier(y)))


def _upsample_tail(c_in: int, dim: int) -> nn.Sequential:
    """(B, c_in, h, w) -> (B, dim/8, 4h, 4w): two stride-2 transposed convs with LayerNorm2d + GELU between."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, dim, 2, stride=2), _ln2d(dim), nn.GELU(),
                         nn.ConvTranspose2d(dim, dim // 8, 2, stride=2))


def _refine_tail(c: int) -> nn.Sequential:
    """(B, c, H, W) -> (B, c, H, W) through 2c channels (3x3 convs, LayerNorm2d + GELU between)."""
    return nn.Sequential(nn.Conv2d(c, 2 * c, 3, padding=1), _ln2d(2 * c), nn.GELU(), nn.Conv2d(2 * c, c, 3, padding=1))


class RobustModules(nn.Module):
    """Everything RobustSAM adds to a backbone (D = ``spec.prompt_dim``, C = ``spec.embed_dim``).

    ``tokens`` (4, D); ``token_mlp`` D/4 -> D/4 -> D (AOTG); ``hyper`` D -> D -> D -> D/8
    (shared by the 4 tokens); AMFG branches on the early feature (C channels), on
    the image embedding (D) and on SAM's upscaled mask features (D/8).
    """

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        from segment_anything.modeling.mask_decoder import MLP

        d = spec.prompt_dim
        self.tokens = nn.Embedding(N_ROBUST_TOKENS, d)
        self.token_mlp = nn.Sequential(nn.Linear(d // 4, d // 4), nn.ReLU(), nn.Linear(d // 4, d))
        self.hyper = MLP(d, d, d // 8, 3)
        self.early_branch = AMFGBranch(spec.embed_dim, _upsample_tail(spec.embed_dim, d))
        self.final_branch = AMFGBranch(d, _upsample_tail(d, d))
        self.mask_branch = AMFGBranch(d // 8, _refine_tail(d // 8))

    @torch.no_grad()
    def init_from_sam(self, decoder) -> None:
        """Start the robust tokens from SAM's mask tokens and the shared hypernetwork from SAM's first one.

        Our choice for training from scratch (the release does not say how its
        modules were initialised); the AMFG branches and ``token_mlp`` keep
        PyTorch's default initialisation.
        """
        self.tokens.weight.copy_(decoder.mask_tokens.weight)
        self.hyper.load_state_dict(decoder.output_hypernetworks_mlps[0].state_dict())

    def image_features(self, embedding: torch.Tensor, early: torch.Tensor, clean: bool = False) -> torch.Tensor:
        """(B, D, h, w) neck embedding + (B, C, h, w) early feature -> (B, D/8, 4h, 4w)."""
        return self.early_branch(early, clean) + self.final_branch(embedding, clean)

    def mask_weights(self, tokens_out: torch.Tensor) -> torch.Tensor:
        """AOTG + hypernetwork: robust token outputs (T, 4, D) -> mask weights (T, 4, D/8).

        Each token is normalised over its D features (instance norm without
        affine, applied twice as in the release); its first D/4 features, the
        only chunk whose masks the release returns, go through ``token_mlp``.
        """
        t = F.layer_norm(tokens_out, tokens_out.shape[-1:], eps=1e-5)
        t = F.layer_norm(t, t.shape[-1:], eps=1e-5)
        return self.hyper(self.token_mlp(t[..., : t.shape[-1] // 4]))


class RobustSamModel(SegmentationModel):
    """Frozen SAM + RobustSAM's decoder additions (``robust``). See the module docstring."""

    variant = "robust"

    def __init__(self, sam, spec: BackboneSpec, name: str) -> None:
        super().__init__(sam, spec, name)
        self.robust = RobustModules(spec)

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        embedding, early = self.encode_backbone(images)
        return {"embedding": embedding, "robust_features": self.robust.image_features(embedding, early)}

    def decode(self, features, prompts: PromptBatch, multimask: bool):
        low_res, iou, _ = self.decode_robust(features["embedding"], features["robust_features"], prompts, multimask)
        return low_res, iou

    def decode_robust(self, embedding: torch.Tensor, robust_features: torch.Tensor, prompts: PromptBatch,
                      multimask: bool, clean: bool = False):
        """Low-res logits (T, M, L, L), IoU (T, M) and the training terms for T = B * K prompt sets.

        ``embedding`` (B, D, h, w), ``robust_features`` (B, D/8, 4h, 4w), prompt sets
        image-major (K per image). Returns ``(logits, iou, extras)`` with extras
        ``tokens`` (T, 4, D), the transformer outputs at the output-token slots, and
        ``mask_features`` (T, D/8, 4h, 4w), the features the masks are read from.
        ``clean=True`` runs the release's clean path, the target of its
        consistency losses: SAM's own mask tokens and, for the features, only
        the AMFG tails (``robust_features`` must then come from
        ``image_features(..., clean=True)``); the logits are SAM's.
        """
        dec = self.sam.mask_decoder
        prompts = self.lowres_prompts(prompts)
        sparse, dense = self.sam.prompt_encoder(points=prompts.points, boxes=prompts.box, masks=prompts.mask_input)
        b, t = embedding.shape[0], sparse.shape[0]
        k = t // b
        out_tokens = dec.mask_tokens.weight if clean else self.robust.tokens.weight
        tokens = torch.cat([dec.iou_token.weight, out_tokens], dim=0)
        tokens = torch.cat([tokens[None].expand(t, -1, -1), sparse], dim=1)
        src = embedding.repeat_interleave(k, 0) + dense
        pos = self.sam.prompt_encoder.get_dense_pe().expand(t, -1, -1, -1)
        hs, src = dec.transformer(src, pos, tokens)
        d, h, w = src.shape[-1], embedding.shape[2], embedding.shape[3]
        upscaled = dec.output_upscaling(src.transpose(1, 2).reshape(t, d, h, w))
        out = hs[:, 1 : 1 + N_ROBUST_TOKENS]
        # one image: broadcast, no copy
        per_set = robust_features if b == 1 else robust_features.repeat_interleave(k, 0)
        features = self.robust.mask_branch(upscaled, clean) + per_set
        if clean:
            weights = torch.stack([mlp(out[:, i]) for i, mlp in enumerate(dec.output_hypernetworks_mlps)], dim=1)
            source = upscaled
        else:
            weights = self.robust.mask_weights(out)
            source = features
        masks = (weights @ source.flatten(2)).view(t, N_ROBUST_TOKENS, *source.shape[-2:])
        iou = dec.iou_prediction_head(hs[:, 0])
        pick = slice(1, None) if multimask else slice(0, 1)
        return masks[:, pick], iou[:, pick], {"tokens": out, "mask_features": features}

    def extra_state_names(self) -> tuple[str, ...]:
        return ("robust_features",)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.robust.parameters())

"""PGE-SAM: prompt-guided enhancement of SAM's image embedding.

Per slice (prompt-independent, cached): ``embedding`` F (B, C, h, w) and
``early_proj`` L = MSFI(early feature) (B, c_l, h, w).

Per click: the Prompt Guidance Generator (PGG) turns positive/negative click
maps, a box map and ``sigmoid(previous low-res logits)`` — all on the decoder's
(4h, 4w) grid — into guidance ``g`` at (h, w); ``g`` gives a spatial gate A
and FiLM scale/shift for the restoration blocks R over ``concat(F, L)``.
The enhanced embedding ``F' = F + A * R(F, L)`` replaces F in SAM's frozen mask
decoder. R's last conv is zero-initialised, so an untrained PGE-SAM is SAM.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .backbones import BackboneSpec
from .base import PromptBatch, SegmentationModel, detail_features


def _ln2d(channels: int):
    from segment_anything.modeling.common import LayerNorm2d

    return LayerNorm2d(channels)


class PromptGuidanceGenerator(nn.Module):
    """(B, 4, 4h, 4w) guidance maps -> gate (B, 1, h, w) and FiLM terms (B, n_blocks, 2, c_r, h, w)."""

    def __init__(self, guide_dim: int, restore_dim: int, n_blocks: int) -> None:
        super().__init__()
        self.n_blocks, self.restore_dim = n_blocks, restore_dim
        half = guide_dim // 2
        self.stem = nn.Sequential(
            nn.Conv2d(4, half // 2, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(half // 2, half, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(half, guide_dim, 3, stride=2, padding=1),
            nn.GELU(),
        )
        self.gate = nn.Conv2d(guide_dim, 1, 1)
        self.film = nn.Conv2d(guide_dim, n_blocks * 2 * restore_dim, 1)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, maps: torch.Tensor):
        g = self.stem(maps)
        gate = torch.sigmoid(self.gate(g))
        b, _, h, w = g.shape
        film = self.film(g).view(b, self.n_blocks, 2, self.restore_dim, h, w)
        return gate, film


class RestorationBlock(nn.Module):
    """Residual block: LayerNorm2d -> FiLM -> depthwise 3x3 -> GELU -> pointwise 1x1."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = _ln2d(dim)
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.pw = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        scale, shift = film[:, 0], film[:, 1]
        y = self.norm(x) * (1 + scale) + shift
        return x + self.pw(F.gelu(self.dw(y)))


class PGEModules(nn.Module):
    """The modules PGE-SAM adds to a backbone (MSFI projection, PGG, restoration R)."""

    def __init__(self, spec: BackboneSpec, low_dim: int, guide_dim: int, restore_dim: int, n_blocks: int) -> None:
        super().__init__()
        self.msfi = nn.Sequential(nn.Conv2d(spec.embed_dim, low_dim, 1), _ln2d(low_dim), nn.GELU())
        self.pgg = PromptGuidanceGenerator(guide_dim, restore_dim, n_blocks)
        self.r_in = nn.Conv2d(spec.prompt_dim + low_dim, restore_dim, 1)
        self.blocks = nn.ModuleList(RestorationBlock(restore_dim) for _ in range(n_blocks))
        self.r_out = nn.Conv2d(restore_dim, spec.prompt_dim, 1)
        nn.init.zeros_(self.r_out.weight)
        nn.init.zeros_(self.r_out.bias)

    def enhance(self, embedding: torch.Tensor, early_proj: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """F' = F + A * R(F, L). ``embedding`` (B, C, h, w), ``early_proj`` (B, c_l, h, w), ``maps`` (B, 4, 4h, 4w)."""
        gate, film = self.pgg(maps.to(embedding.dtype))
        x = self.r_in(torch.cat([embedding, early_proj.to(embedding.dtype)], dim=1))
        for i, block in enumerate(self.blocks):
            x = block(x, film[:, i])
        return embedding + gate * self.r_out(x)


def guidance_maps(prompts: PromptBatch, img_size: int, grid: int, batch: int, device,
                  sigma: float = 1.5) -> torch.Tensor:
    """PGG input (B, 4, grid, grid): positive clicks, negative clicks, box, sigmoid(previous logits).

    Click maps are Gaussians (``sigma`` in grid cells, peak 1, max over
    clicks; padding points with label -1 are ignored); coordinates are in the
    model's input frame and scaled to the grid. Boxes are filled rectangles.
    """
    maps = torch.zeros(batch, 4, grid, grid, device=device)
    scale = grid / img_size
    axis = torch.arange(grid, device=device, dtype=torch.float32) + 0.5
    if prompts.coords is not None:
        xy = prompts.coords.float() * scale  # (B, N, 2)
        d2 = ((axis[None, None, None, :] - xy[..., 0, None, None]) ** 2
              + (axis[None, None, :, None] - xy[..., 1, None, None]) ** 2)
        g = torch.exp(-d2 / (2 * sigma**2))  # (B, N, grid, grid)
        for channel, want in ((0, 1), (1, 0)):
            sel = (prompts.labels == want).float()[..., None, None]
            maps[:, channel] = (g * sel).amax(dim=1)
    if prompts.box is not None:
        box = prompts.box.float() * scale  # (B, 4)
        inside_x = (axis[None, :] >= box[:, 0, None]) & (axis[None, :] <= box[:, 2, None] + 1)
        inside_y = (axis[None, :] >= box[:, 1, None]) & (axis[None, :] <= box[:, 3, None] + 1)
        maps[:, 2] = (inside_y[:, :, None] & inside_x[:, None, :]).float()
    if prompts.mask_input is not None:
        maps[:, 3] = torch.sigmoid(prompts.mask_input[:, 0].float())
    return maps


class PGESamModel(SegmentationModel):
    """Frozen SAM + PGE modules (``pge``). See the module docstring."""

    variant = "pge"

    def __init__(self, sam, spec: BackboneSpec, name: str, low_dim: int, guide_dim: int, restore_dim: int,
                 n_blocks: int = 3) -> None:
        super().__init__(sam, spec, name)
        self.pge = PGEModules(spec, low_dim, guide_dim, restore_dim, n_blocks)
        # False: the ablation without prompt guidance (zero guidance maps); saved in the adapter's header
        self.guidance = True

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        embedding, early = self.encode_backbone(images)
        return {"embedding": embedding, "early_proj": self.pge.msfi(early), **self.encode_detail(images)}

    def decode(self, features, prompts: PromptBatch, multimask: bool):
        low_res, iou, _ = self.decode_with_embedding(features, prompts, multimask)
        return low_res, iou

    def decode_with_embedding(self, features, prompts: PromptBatch, multimask: bool):
        """Like :meth:`decode`, also returning the enhanced embedding F' (T, C, h, w) (for the FRL).

        With T = B * K prompt sets for B images, each image's features serve its
        K prompt sets; the enhanced embedding is per prompt set.
        """
        prompts = self.lowres_prompts(prompts)
        embedding, early = features["embedding"], features["early_proj"]
        n = (prompts.coords if prompts.coords is not None else prompts.box).shape[0]
        if n != embedding.shape[0]:
            k = n // embedding.shape[0]
            embedding, early = embedding.repeat_interleave(k, 0), early.repeat_interleave(k, 0)
        maps = guidance_maps(prompts, self.spec.img_size, self.spec.lowres_size, n, embedding.device)
        if not self.guidance:
            maps = torch.zeros_like(maps)
        enhanced = self.pge.enhance(embedding, early, maps)
        detail = detail_features(features)
        # one enhanced map per prompt set
        if detail is not None and enhanced.shape[0] != features["embedding"].shape[0]:
            detail = {name: v.repeat_interleave(k, 0) for name, v in detail.items()}
        low_res, iou = self._sam_decode(enhanced, prompts, multimask, detail)
        return low_res, iou, enhanced

    def extra_state_names(self) -> tuple[str, ...]:
        return ("early_proj", *super().extra_state_names())

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.pge.parameters())


def pge_sizes(spec: BackboneSpec) -> dict[str, int]:
    """Channel sizes of the PGE modules for a backbone (c_l, guidance, c_r)."""
    if spec.name == "tiny":
        return {"low_dim": 32, "guide_dim": 32, "restore_dim": 64}
    return {"low_dim": 64, "guide_dim": 64, "restore_dim": 128}

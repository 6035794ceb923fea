"""SAM backbones built from segment-anything's own modules.

``vit_b``/``vit_l``/``vit_h`` are the official architectures (1024 input, 16-px
patches, 256-channel prompt space). ``tiny`` is this project's small SAM built
from the same classes with smaller sizes (256 input, 8-px patches so the
embedding grid stays 32x32, 128-channel prompt space, and the high-resolution
detail path of :mod:`.detail` giving 256x256 masks); it is trained by
``pge_sam.train`` and shipped inside the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ..errors import InputError


@dataclass(frozen=True)
class BackboneSpec:
    """Sizes of a SAM backbone (image encoder, prompt encoder and mask decoder)."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_dim: int = 256
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    decoder_depth: int = 2
    iou_head_hidden_dim: int = 256
    detail: bool = False
    # a lone click (one point, no box, no previous mask) asks for three masks; 0 keeps the best-scored (SAM's
    # rule), > 0 the smallest non-empty one scored within this of the best (models.base.first_click_choice)
    first_click_margin: float = 0.0

    @property
    def mask_size(self) -> int:
        """Side of the decoder's mask output: the full input with the detail path, else :attr:`lowres_size`."""
        return self.img_size if self.detail else self.lowres_size

    @property
    def embed_size(self) -> int:
        """Side of the square image-embedding grid (h = w)."""
        return self.img_size // self.patch_size

    @property
    def lowres_size(self) -> int:
        """Side of the decoder's low-resolution mask grid (4 x the embedding grid)."""
        return 4 * self.embed_size

    @property
    def early_block(self) -> int:
        """Index of the first global-attention block, whose output is the early ("low-level") feature."""
        return self.global_attn_indexes[0]


BACKBONES: dict[str, BackboneSpec] = {
    "vit_b": BackboneSpec("vit_b", 768, 12, 12, (2, 5, 8, 11)),
    "vit_l": BackboneSpec("vit_l", 1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": BackboneSpec("vit_h", 1280, 32, 16, (7, 15, 23, 31)),
    "tiny": BackboneSpec(
        "tiny",
        embed_dim=192,
        depth=6,
        num_heads=6,
        global_attn_indexes=(2, 5),
        img_size=256,
        patch_size=8,
        window_size=8,
        prompt_dim=128,
        decoder_mlp_dim=512,
        decoder_heads=4,
        iou_head_hidden_dim=128,
        detail=True,  # first_click_margin 0.5: better 2D, worse 3D on large objects (docs/benchmark.md, session 12)
    ),
}


def get_backbone(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise InputError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None


def build_sam(spec: BackboneSpec):
    """A randomly initialised ``segment_anything.modeling.Sam`` with the sizes of ``spec``."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    encoder = ImageEncoderViT(
        depth=spec.depth,
        embed_dim=spec.embed_dim,
        img_size=spec.img_size,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=spec.num_heads,
        patch_size=spec.patch_size,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=spec.global_attn_indexes,
        window_size=spec.window_size,
        out_chans=spec.prompt_dim,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=spec.prompt_dim,
        image_embedding_size=(spec.embed_size, spec.embed_size),
        input_image_size=(spec.img_size, spec.img_size),
        mask_in_chans=16,
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(
            depth=spec.decoder_depth,
            embedding_dim=spec.prompt_dim,
            mlp_dim=spec.decoder_mlp_dim,
            num_heads=spec.decoder_heads,
        ),
        transformer_dim=spec.prompt_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=spec.iou_head_hidden_dim,
    )
    sam = Sam(
        image_encoder=encoder,
        prompt_encoder=prompt_encoder,
        mask_decoder=decoder,
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    if spec.detail:  # saved and loaded with the rest of the SAM (``detail.*`` keys)
        from .detail import DetailPath

        with torch.random.fork_rng(devices=[]):  # leaves the global RNG stream of later modules as it was
            sam.detail = DetailPath(spec.prompt_dim)
    return sam

"""SAM-REF (Yu et al. 2024): a two-stage refiner after an unchanged SAM, run on every click.

No code or weights of the paper are public; this is our re-implementation from
its description (``../shared/spec/model.md`` section 4). The choices the paper
leaves open are ours and are argued in ``docs/model.md`` ("SAM-REF").

Per slice (prompt-independent, cached with the embedding):

* ``ref_image`` (B, 1, R_img, R_img): the preprocessed image (one channel: the
  slices are grey, so SAM's three channels are affine copies of each other) at
  ``R_img = min(S, 2 R)`` for refiner side R (tiny: 256 = the input; vit: 512);
* ``ref_embedding`` (B, W, h, w): SAM's embedding projected to the refiner width.
  A 1x1 projection commutes with bilinear upsampling, so projecting before
  caching loses nothing.

Per click, after SAM's decoder gave coarse logits:

1. **Global fusion refiner** at side R (``spec.mask_size``): the image, three
   prompt maps (positive and negative click disks, the box) and the
   probabilities of the coarse and of the previous final mask are fused by
   addition with the upsampled embedding at R/2, refined by residual blocks
   (the embedding re-added after each), and read out at R: a correction of the
   coarse logits and an error map E. Output = coarse + sigmoid(E) * correction,
   i.e. ``sigmoid(E) * refined + (1 - sigmoid(E)) * coarse``: SAM's mask is
   replaced only where E says it is wrong.
2. **Local fusion refiner**: the same network (its own weights) on a square
   crop around the largest connected region whose mask changed since the
   previous round, resampled to a fixed side (R/2), so small regions are seen
   at a higher effective resolution.
3. **Dynamic selector**: the local result is pasted on the global result, or,
   when the global error area grew by more than ``SELECT_RATIO`` since the
   previous round, on the previous final mask (a click then changes only the
   region around it).

In propagation (a neighbour's mask and a box, no click) the refiners sit out and SAM's mask is final.

The final logits are fed back with the error map and SAM's own coarse logits
as further channels: the per-slice memory a session keeps and undoes. The
refiners read the final mask and the error map; SAM's decoder gets its own
coarse logits back, the input it was trained on. The
last convolution of each refiner starts at zero (its error-map bias at
``ERROR_PRIOR``: SAM is presumed right until the refiner learns where it is
not), so an untrained refiner returns SAM's mask exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .backbones import BackboneSpec
from .base import PromptBatch, SegmentationModel, first_click_choice

REF_KEYS = ("ref_image", "ref_embedding")
SELECT_RATIO = 1.1  # the paper's threshold on the ratio of error areas between rounds
ERROR_PRIOR = -4.0  # initial error-map logit: SAM is assumed right until the refiner learns where it is not
FULL_WIDTH = 16  # channels of the refiners' full-resolution read-out
N_INPUTS = 6  # image, positive disks, negative disks, box, coarse probability, previous probability


@dataclass(frozen=True)
class RefSizes:
    """Widths and geometry of the refiners (our choices; ``docs/model.md``)."""

    width: int = 32
    blocks: int = 3
    disk_radius: float = 2.5  # px at the refiner's working side: thin ribbons are 2-6 px wide
    local_side: int = 128  # the local refiner's working side
    min_crop: int = 24  # smallest crop side in the global frame (px)
    margin: float = 0.5  # the crop extends the changed region's box by this share on each side
    gate_offset: float = 2.0  # at inference, error logits minus this: SAM's mask is replaced where E is surer


def ref_sizes(spec: BackboneSpec) -> RefSizes:
    return RefSizes(width=32 if spec.prompt_dim <= 128 else 48, local_side=spec.mask_size // 2)


def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class ResBlock(nn.Module):
    """Depthwise-separable residual block: x + pw(GELU(GN(dw3x3(x))))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.norm = _gn(c)
        self.pw = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw(F.gelu(self.norm(self.dw(x))))


class FusionRefiner(nn.Module):
    """One refiner: inputs (T, 6, P, P) + embedding (T, W, P/2, P/2) + coarse logits (T, 1, P, P).

    Fusion and residual blocks at P/2 (width W); the read-out at P adds a 3x3
    convolution of the inputs to the upsampled features (the full-resolution
    detail), then a 3x3 convolution gives the correction and the error map.

    Returns ``(final, correction, error)``, each (T, 1, P, P) logits.
    """

    def __init__(self, width: int, blocks: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(N_INPUTS, width, 3, stride=2, padding=1), _gn(width), nn.GELU())
        self.blocks = nn.ModuleList(ResBlock(width) for _ in range(blocks))
        self.mix = nn.Conv2d(width, FULL_WIDTH, 1)
        self.full = nn.Conv2d(N_INPUTS, FULL_WIDTH, 3, padding=1)
        self.out = nn.Conv2d(FULL_WIDTH, 2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():  # correction 0; error map sigmoid(-4) = 0.02: a change must be flagged to happen
            self.out.bias.copy_(torch.tensor([0.0, ERROR_PRIOR]))

    def forward(self, inputs: torch.Tensor, embedding: torch.Tensor, coarse: torch.Tensor, offset: float = 0.0):
        """``offset``: subtracted from the error logits before the gate (and in the error map returned)."""
        x = self.stem(inputs) + embedding
        for block in self.blocks:
            x = block(x) + embedding
        x = F.interpolate(self.mix(x), size=inputs.shape[-2:], mode="bilinear", align_corners=False)
        correction, error = self.out(F.gelu(x + self.full(inputs))).split(1, 1)
        error = error - offset
        return coarse + torch.sigmoid(error) * correction, correction, error


class RefModules(nn.Module):
    """Everything SAM-REF adds: the embedding projection and the two refiners."""

    def __init__(self, spec: BackboneSpec, sizes: RefSizes) -> None:
        super().__init__()
        self.sizes = sizes
        self.project = nn.Conv2d(spec.prompt_dim, sizes.width, 1)
        self.glob = FusionRefiner(sizes.width, sizes.blocks)
        self.local = FusionRefiner(sizes.width, sizes.blocks)


def ref_image(images: torch.Tensor, spec: BackboneSpec) -> torch.Tensor:
    """The refiners' cached image: channel 0 of the preprocessed (B, 3, S, S) batch, area-resized to
    ``min(S, 2 * mask side)``."""
    side = min(spec.img_size, 2 * spec.mask_size)
    image = images[:, :1]
    return image if image.shape[-1] == side else F.interpolate(image, (side, side), mode="area")


def prompt_maps(prompts: PromptBatch, t: int, side: int, input_size: int, box_xyxy=None,
                radius: float = RefSizes.disk_radius) -> torch.Tensor:
    """(T, 3, side, side): positive disks, negative disks, box, for the window ``box_xyxy`` of the input frame.

    ``box_xyxy``: (T, 4) window (x0, y0, x1, y1) in input pixels per prompt set,
    default the whole input; disks have ``radius`` in *output* pixels, so a
    zoomed-in crop gets finer disks.
    """
    device = prompts.coords.device if prompts.coords is not None else (
        prompts.box.device if prompts.box is not None else torch.device("cpu"))
    if box_xyxy is None:
        box_xyxy = torch.tensor([[0.0, 0.0, input_size, input_size]], device=device).expand(t, 4)
    scale = side / (box_xyxy[:, 2] - box_xyxy[:, 0])  # (T,) output px per input px
    grid = torch.arange(side, device=device, dtype=torch.float32) + 0.5
    maps = torch.zeros(t, 3, side, side, device=device)
    if prompts.coords is not None:
        x = (prompts.coords[..., 0] - box_xyxy[:, None, 0]) * scale[:, None]  # (T, N)
        y = (prompts.coords[..., 1] - box_xyxy[:, None, 1]) * scale[:, None]
        d2 = ((grid[None, None, :, None] - y[..., None, None]) ** 2
              + (grid[None, None, None, :] - x[..., None, None]) ** 2)
        inside = d2 <= radius**2  # (T, N, side, side)
        for channel, label in ((0, 1), (1, 0)):
            sel = (prompts.labels == label)[..., None, None]
            maps[:, channel] = (inside & sel).any(1).float()
    if prompts.box is not None:
        b = prompts.box.expand(t, 4)
        x0, x1 = ((b[:, 0] - box_xyxy[:, 0]) * scale, (b[:, 2] - box_xyxy[:, 0]) * scale)
        y0, y1 = ((b[:, 1] - box_xyxy[:, 1]) * scale, (b[:, 3] - box_xyxy[:, 1]) * scale)
        rows = (grid[None] >= y0[:, None]) & (grid[None] <= y1[:, None])
        cols = (grid[None] >= x0[:, None]) & (grid[None] <= x1[:, None])
        maps[:, 2] = (rows[:, :, None] & cols[:, None, :]).float()
    return maps


def changed_crop(final: torch.Tensor, previous: torch.Tensor | None, sizes: RefSizes) -> tuple[int, int, int]:
    """Square crop (row0, col0, side) in the (P, P) frame around the largest connected changed region.

    ``final``/``previous``: (P, P) logits. With no previous mask (or no change)
    the region is the whole current mask; with an empty mask, the centre.
    """
    from scipy import ndimage

    side_p = final.shape[-1]
    now = (final > 0).cpu().numpy()
    changed = now ^ (previous > 0).cpu().numpy() if previous is not None else now
    if not changed.any():
        changed = now
    if not changed.any():
        side = min(side_p, sizes.min_crop)
        return (side_p - side) // 2, (side_p - side) // 2, side
    labels, n = ndimage.label(changed)
    largest = 1 + int(np.argmax(ndimage.sum_labels(changed, labels, range(1, n + 1))))
    rows, cols = np.nonzero(labels == largest)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    extent = max(r1 - r0, c1 - c0)
    side = int(min(side_p, max(sizes.min_crop, round(extent * (1 + 2 * sizes.margin)))))
    row0 = int(np.clip((r0 + r1) / 2 - side / 2, 0, side_p - side))
    col0 = int(np.clip((c0 + c1) / 2 - side / 2, 0, side_p - side))
    return row0, col0, side


def select_base(error_area: float, previous_area: float | None, ratio: float = SELECT_RATIO) -> str:
    """The dynamic selector: ``"previous"`` when the error area grew by more than ``ratio`` since the last
    round (the global result got worse), else ``"global"``; the first round (no previous area) is global."""
    if previous_area is None or previous_area <= 0:
        return "global"
    return "previous" if error_area / previous_area > ratio else "global"


class SamRefModel(SegmentationModel):
    """Frozen SAM + SAM-REF's refiners (``ref``). See the module docstring."""

    variant = "sam_ref"

    def __init__(self, sam, spec: BackboneSpec, name: str, sizes: RefSizes | None = None) -> None:
        super().__init__(sam, spec, name)
        self.ref = RefModules(spec, sizes or ref_sizes(spec))

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().encode(images)
        return {**out, **self.ref_features(images, out["embedding"])}

    def ref_features(self, images: torch.Tensor, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ref_image": ref_image(images, self.spec), "ref_embedding": self.ref.project(embedding)}

    def decode(self, features, prompts: PromptBatch, multimask: bool):
        logits, iou, extras = self.decode_ref(features, prompts, multimask)
        return logits, iou, extras["memory"]

    def decode_ref(self, features, prompts: PromptBatch, multimask: bool, coarse: torch.Tensor | None = None):
        """Refined logits (T, 1, P, P), SAM's IoU of the refined mask (T, 1) and the extras.

        ``prompts.mask_input`` may carry the memory channel (the previous error
        map) after the previous logits. ``coarse`` (training): SAM's logits
        already computed. Extras: ``coarse``, ``global`` (final, correction,
        error), ``local`` (final, correction, error at the local side),
        ``crops`` [(row0, col0, side)], ``choice`` per set, ``memory`` (T, 2, L, L): the
        global error map and SAM's coarse logits.
        """
        sam_prompts, previous, previous_error = split_feedback(prompts)
        if coarse is None:
            logits, iou = super().decode(features, sam_prompts, multimask)
            if multimask:  # refine SAM's chosen guess only
                best = first_click_choice(iou, logits, self.spec.first_click_margin, self.sam.mask_threshold)
                pick = torch.arange(logits.shape[0], device=logits.device)
                logits, iou = logits[pick, best][:, None], iou[pick, best][:, None]
        else:
            logits, iou = coarse, None
        final, extras = refine(self.ref, self.spec, features, prompts, logits, previous, previous_error)
        return final, (torch.zeros(final.shape[0], 1, device=final.device) if iou is None else iou), extras

    def extra_state_names(self) -> tuple[str, ...]:
        return super().extra_state_names() + REF_KEYS

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.ref.parameters())


def refine(ref: RefModules, spec: BackboneSpec, features: dict, prompts: PromptBatch, logits: torch.Tensor,
           previous: torch.Tensor | None, previous_error: torch.Tensor | None):
    """The refiners and the selector on coarse ``logits`` (T, 1, m, m): final logits (T, 1, P, P) and the extras
    of :meth:`SamRefModel.decode_ref`. ``features`` holds ``ref_image`` and ``ref_embedding`` (batch B, T = B * K);
    ``previous`` / ``previous_error``: the fed-back mask and error map (1 or T, 1, L, L) or ``None``."""
    side = spec.mask_size
    coarse = logits.float()
    if coarse.shape[-1] != side:
        coarse = F.interpolate(coarse, (side, side), mode="bilinear", align_corners=False)
    if not ref.training and carried_over(prompts, previous, previous_error):
        return coarse, sam_only(spec, coarse)
    t = coarse.shape[0]
    prev = None if previous is None else F.interpolate(previous.float(), (side, side), mode="bilinear",
                                                       align_corners=False).expand(t, -1, -1, -1)
    image, emb = (_per_set(features[name].float(), t) for name in REF_KEYS)
    emb_g = F.interpolate(emb, (side // 2,) * 2, mode="bilinear", align_corners=False)
    img_g = image if image.shape[-1] == side else F.interpolate(image, (side, side), mode="area")
    prev_prob = torch.zeros_like(coarse) if prev is None else torch.sigmoid(prev)
    sizes, q = ref.sizes, ref.sizes.local_side
    maps = prompt_maps(prompts, t, side, spec.img_size, radius=sizes.disk_radius)
    g_inputs = torch.cat([img_g, maps, torch.sigmoid(coarse), prev_prob], 1)
    offset = 0.0 if ref.training else sizes.gate_offset  # training learns E itself; inference gates surer
    g_final, g_corr, g_err = ref.glob(g_inputs, emb_g, coarse, offset)

    # local refiner: per prompt set, on a crop around the region that changed most
    crops = [changed_crop(g_final[i, 0].detach(), None if prev is None else prev[i, 0], sizes) for i in range(t)]
    err_area = (g_err.detach() > 0).flatten(1).sum(1).float() * (spec.lowres_size / side) ** 2
    choice = [select_base(float(err_area[i]), None if previous_error is None else
                          float((previous_error[min(i, previous_error.shape[0] - 1)] > 0).sum())) for i in range(t)]
    l_in, l_emb, l_coarse = [], [], []
    img_scale = image.shape[-1] / side
    for i, (r0, c0, s) in enumerate(crops):
        win = (slice(r0, r0 + s), slice(c0, c0 + s))
        ir0, ic0, i_s = int(r0 * img_scale), int(c0 * img_scale), int(s * img_scale)
        crop_img = image[i : i + 1, :, ir0 : ir0 + i_s, ic0 : ic0 + i_s]
        half = emb_g[i : i + 1, :, r0 // 2 : (r0 + s + 1) // 2, c0 // 2 : (c0 + s + 1) // 2]
        l_coarse.append(_resize(g_final[i : i + 1, :, win[0], win[1]], q))
        base_prev = torch.zeros_like(l_coarse[-1]) if prev is None else torch.sigmoid(
            _resize(prev[i : i + 1, :, win[0], win[1]], q))
        l_in.append((_resize(crop_img, q), base_prev))
        l_emb.append(_resize(half, q // 2))
    scale_in = spec.img_size / side
    windows = torch.tensor([[c0 * scale_in, r0 * scale_in, (c0 + s) * scale_in, (r0 + s) * scale_in]
                            for r0, c0, s in crops], device=coarse.device)
    l_maps = prompt_maps(prompts, t, q, spec.img_size, windows, sizes.disk_radius)
    l_coarse_t = torch.cat(l_coarse)
    l_inputs = torch.cat([torch.cat([a for a, _ in l_in]), l_maps, torch.sigmoid(l_coarse_t),
                          torch.cat([p for _, p in l_in])], 1)
    l_final, l_corr, l_err = ref.local(l_inputs, torch.cat(l_emb), l_coarse_t, offset)

    # dynamic selector + paste: inside the crop the global result plus the local refiner's change
    # (resampled back; zero for an untrained refiner, so nothing is lost to resampling), outside it the
    # base the selector chose
    rows = []
    for i, (r0, c0, s) in enumerate(crops):
        base = g_final[i : i + 1] if choice[i] == "global" or prev is None else prev[i : i + 1]
        local = g_final[i : i + 1, :, r0 : r0 + s, c0 : c0 + s] + _resize(l_final[i : i + 1] - l_coarse_t[i : i + 1], s)
        rows.append(_paste(base, local, r0, c0))
    final = torch.cat(rows)
    low = spec.lowres_size
    # SAM's decoder gets its own coarse logits back next round (the inputs it was trained on; the refined
    # logits' larger magnitudes threw it off), the refiners get the final mask and the error map
    memory = _memory(g_err, coarse, low)
    return final, {"coarse": coarse, "global": (g_final, g_corr, g_err), "local": (l_final, l_corr, l_err),
                        "crops": crops, "choice": choice, "memory": memory}


def carried_over(prompts: PromptBatch, previous: torch.Tensor | None, previous_error: torch.Tensor | None) -> bool:
    """A mask from another slice (fed back without a memory) and no click: propagation, not a click round.

    The refiners learned click rounds on one slice; given a neighbour's mask and the box around it they grow
    the mask a little on every slice, so a propagation never stops (``docs/model.md``, "SAM-REF")."""
    return prompts.coords is None and previous is not None and previous_error is None


def sam_only(spec: BackboneSpec, coarse: torch.Tensor) -> dict:
    """The extras of a round the refiners sit out: SAM's mask is final, the memory's error map says nothing is
    wrong (so the next round's selector starts afresh)."""
    memory = _memory(torch.full_like(coarse, ERROR_PRIOR), coarse, spec.lowres_size)
    return {"coarse": coarse, "choice": ["sam"] * coarse.shape[0], "crops": [], "memory": memory}


def _memory(error: torch.Tensor, coarse: torch.Tensor, low: int) -> torch.Tensor:
    """The per-slice memory fed back: the error map and SAM's coarse logits, area-resized to the low-res side."""
    return F.interpolate(torch.cat([error.detach(), coarse.detach()], 1), (low, low), mode="area")


def _per_set(x: torch.Tensor, t: int) -> torch.Tensor:
    """(B, ...) per-image tensor -> (T, ...) per prompt set (image-major); already per set: unchanged."""
    return x if x.shape[0] == t else x.repeat_interleave(t // x.shape[0], 0)


def split_feedback(prompts: PromptBatch) -> tuple[PromptBatch, torch.Tensor | None, torch.Tensor | None]:
    """(the prompts SAM's decoder gets: its own previous coarse logits as mask input, the previous final mask,
    the previous error map) from prompts whose ``mask_input`` is a fed-back SAM-REF mask with its memory."""
    previous, previous_error, previous_coarse = _split_memory(prompts.mask_input)
    sam_mask = previous if previous_coarse is None else previous_coarse
    return PromptBatch(prompts.coords, prompts.labels, prompts.box, sam_mask), previous, previous_error


def _split_memory(mask_input: torch.Tensor | None):
    """Fed-back (1, C, L, L) -> (final mask, error map, SAM's own coarse logits), absent channels ``None``."""
    if mask_input is None:
        return None, None, None
    channels = [mask_input[:, i : i + 1] for i in range(min(3, mask_input.shape[1]))]
    return tuple(channels + [None] * (3 - len(channels)))


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    mode = "area" if x.shape[-1] > side else "bilinear"
    return F.interpolate(x, (side, side), mode=mode, **({} if mode == "area" else {"align_corners": False}))


def _paste(base: torch.Tensor, patch: torch.Tensor, row0: int, col0: int) -> torch.Tensor:
    """``base`` (1, 1, P, P) with ``patch`` (1, 1, s, s) written at (row0, col0), out of place (autograd-safe)."""
    s = patch.shape[-1]
    pad = (col0, base.shape[-1] - col0 - s, row0, base.shape[-2] - row0 - s)
    inside = F.pad(torch.ones_like(patch), pad)
    return base * (1 - inside) + F.pad(patch, pad)

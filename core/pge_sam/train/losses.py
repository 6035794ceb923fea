"""Training losses: SAM-style segmentation loss, the Foreground Reconstruction Loss (FRL) and RobustSAM's
consistency terms."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss averaged over pixels; ``logits``/``target``: (B, M, H, W) -> (B, M)."""
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss; ``logits``/``target``: (B, M, H, W) -> (B, M)."""
    prob = torch.sigmoid(logits).flatten(2)
    t = target.flatten(2)
    inter = (prob * t).sum(-1)
    return 1 - (2 * inter + eps) / (prob.sum(-1) + t.sum(-1) + eps)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hard IoU of ``logits > 0`` with ``target``: (B, M, H, W) -> (B, M)."""
    pred = (logits > 0).flatten(2)
    t = target.flatten(2) > 0.5
    inter = (pred & t).sum(-1).float()
    union = (pred | t).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


def soft_iou(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft IoU of ``sigmoid(logits)`` with a soft ``target``: (B, H, W) -> (B,)."""
    p, t = torch.sigmoid(logits).flatten(1), target.flatten(1)
    inter = (p * t).sum(-1)
    return (inter + eps) / (p.sum(-1) + t.sum(-1) - inter + eps)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, iou_pred: torch.Tensor):
    """``20 * focal + dice`` per mask, plus MSE of the IoU head; returns (seg (B, M), iou_mse (B, M), iou (B, M))."""
    seg = 20.0 * focal_loss(logits, target) + dice_loss(logits, target)
    with torch.no_grad():
        true_iou = mask_iou(logits, target)
    return seg, (iou_pred - true_iou) ** 2, true_iou


def click_loss(logits: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor, input_size: int) -> torch.Tensor:
    """Click consistency: BCE of the logits under each click against its label, averaged.

    ``logits``: (B, h, w) mask logits covering the (input_size x input_size)
    input frame; ``coords``: (B, N, 2) float (x, y) in that frame;
    ``labels``: (B, N) int, 1 positive, 0 negative, -1 padding (ignored).
    """
    b, h, w = logits.shape
    cols = (coords[..., 0] * w / input_size).long().clamp(0, w - 1)
    rows = (coords[..., 1] * h / input_size).long().clamp(0, h - 1)
    at = logits[torch.arange(b, device=logits.device)[:, None], rows, cols]
    valid = labels >= 0
    if not valid.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(at[valid], labels[valid].float())


def foreground_mask(gt: torch.Tensor, size: int) -> torch.Tensor:
    """GT (B, 1, S, S) -> (B, 1, size, size) area-resized, nonzero cells dilated by one cell."""
    area = F.adaptive_avg_pool2d(gt.float(), size)
    return F.max_pool2d((area > 0).float(), 3, stride=1, padding=1)


def reconstruction_loss(enhanced: torch.Tensor, clean: torch.Tensor, gt: torch.Tensor | None,
                        eps: float = 1e-6) -> torch.Tensor:
    """FRL = sum(M * (F' - F_clean)^2) / (C * sum(M) + eps); ``gt=None`` gives the global-MSE ablation (M = 1).

    ``enhanced``/``clean``: (B, C, h, w); ``gt``: (B, 1, S, S) ground truth at input resolution.
    """
    b, c, h, w = enhanced.shape
    m = torch.ones(b, 1, h, w, device=enhanced.device) if gt is None else foreground_mask(gt, h)
    return (m * (enhanced.float() - clean.float()) ** 2).sum() / (c * m.sum() + eps)


def consistency_losses(degraded: dict, clean: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """RobustSAM's consistency terms between the degraded and the clean run (whole image, as in the release).

    Both dicts come from ``RobustSamModel.decode_robust``: ``tokens`` (T, 4, D)
    output tokens and ``mask_features`` (T, D/8, 4h, 4w). Returns (token MSE,
    feature MSE); nothing is detached, as in the release.
    """
    return (F.mse_loss(degraded["tokens"], clean["tokens"]),
            F.mse_loss(degraded["mask_features"], clean["mask_features"]))


def normalized_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
                          weight: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """RITM's normalized focal loss: the focal weights ``(1 - p_t)^gamma`` (times ``weight``) rescaled to sum
    to one per mask, so easy pixels neither vanish nor dominate; (B, 1, H, W) -> scalar."""
    prob = torch.sigmoid(logits)
    p_t = prob * target + (1 - prob) * (1 - target)
    focal = (1 - p_t) ** gamma
    if weight is not None:
        focal = focal * weight
    norm = focal.flatten(1).sum(-1).detach().clamp(min=eps)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return ((focal * ce).flatten(1).sum(-1) / norm).mean()


def refiner_losses(final: torch.Tensor, coarse: torch.Tensor, correction: torch.Tensor, error: torch.Tensor,
                   target: torch.Tensor, error_weight: float = 4.0) -> dict[str, torch.Tensor]:
    """SAM-REF's losses for one refiner (all (T, 1, P, P); ``target`` soft ground truth at P):

    ``nfl`` + ``dice`` on the final mask; ``error``: BCE of the error map against where
    the coarse mask is wrong; ``weighted``: NFL of the refined mask (coarse + correction)
    with ``1 + error_weight`` times the weight where the coarse mask is wrong.
    """
    wrong = ((coarse.detach() > 0).float() != (target > 0.5).float()).float()
    return {"nfl": normalized_focal_loss(final, target), "dice": dice_loss(final, target).mean(),
            "error": F.binary_cross_entropy_with_logits(error, wrong),
            "weighted": normalized_focal_loss(coarse.detach() + correction, target, weight=1 + error_weight * wrong)}

"""The training loop: the base SAM (``stage="base"``), PGE adapters (``"pge"``), RobustSAM's modules (``"robust"``)
and SAM-REF's refiners (``"ref"``).

Single process on CPU or GPU; under ``torchrun`` (``WORLD_SIZE`` > 1) every
rank draws disjoint scenes and gradients are averaged with
``torch.distributed.all_reduce`` — no code change. Checkpoints (``last.pt``,
tensors and plain values only, loaded with ``weights_only=True``) make runs
resumable; ``metrics.csv`` logs every ``log_every`` steps; the exported
weights are safetensors with a metadata header.
"""

from __future__ import annotations

import csv
import math
from concurrent.futures import ProcessPoolExecutor
from functools import partial
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..models.base import PromptBatch, SegmentationModel
from ..models.registry import build_model, load_base, save_adapter, save_base, save_ref_adapter, save_robust_adapter
from .config import TrainConfig
from .data import gt_to_input, make_sample, to_model_input
from .losses import click_loss, consistency_losses, reconstruction_loss, refiner_losses, segmentation_loss, soft_iou
from .rounds import corrective_clicks, first_click, jittered_box
from .synth import SynthConfig

METRICS = ["step", "loss", "seg", "iou_mse", "frl", "click", "monotone", "token", "feature", "refine", "iou_first",
           "iou_last", "lr", "seconds"]
ADAPTER_MODELS = {"pge": "pge_sam", "robust": "robust_sam", "ref": "sam_ref"}


def _dist():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def build_for(cfg: TrainConfig, rank: int):
    device = cfg.device
    if device == "auto" and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    if cfg.stage == "base":
        model = build_model(f"sam_{cfg.backbone}", pretrained=False, device=device)
        if cfg.init:
            load_base(model, Path(cfg.init), new_detail_ok=True)
        modules = [model.sam] if cfg.train_encoder else [model.sam.prompt_encoder, model.sam.mask_decoder]
        if not cfg.train_encoder and hasattr(model.sam, "detail"):
            modules.append(model.sam.detail)
        params = [p for m in modules for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
    else:
        from ..models.registry import base_weights_path, load_adapter, load_ref_adapter, load_robust_adapter

        model = build_model(f"{ADAPTER_MODELS[cfg.stage]}_{cfg.backbone}", pretrained=False, device=device)
        load_base(model, base_weights_path(cfg.backbone, cfg.base_weights))
        if cfg.init:  # warm start from an adapter (e.g. one trained on an earlier base)
            loader = {"pge": load_adapter, "robust": load_robust_adapter, "ref": load_ref_adapter}[cfg.stage]
            loader(model, Path(cfg.init))
        elif cfg.stage == "robust":
            model.robust.init_from_sam(model.sam.mask_decoder)
        if cfg.stage == "pge":
            model.guidance = cfg.guidance
        params = model.trainable_parameters()
    model.train()
    return model, params


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def run_rounds(model, cfg: TrainConfig, feats: dict, teacher: dict | None, gt: torch.Tensor, gts_np, rng, gen):
    """Interactive rounds on one batch of T = B * K targets (image-major); returns (loss, parts dict).

    ``teacher``: the clean image's tensors for the consistency terms (pge: ``embedding``;
    robust: ``embedding`` and the tails-only ``robust_features``), or ``None``.
    """
    b, size = gt.shape[0], model.spec.img_size
    # Losses at the decoder's output: size / 2 for the official backbones (the GT is
    # area-downsampled to a soft target, 4x cheaper than upsampling the logits), the
    # full input with the detail path (``spec.mask_size``).
    low = size if model.spec.detail else size // 2
    target = F.adaptive_avg_pool2d(gt[:, None].float(), low)
    use_box = rng.random() < cfg.box_prob
    coords = torch.zeros(b, 0, 2, device=gt.device)
    labels = torch.zeros(b, 0, dtype=torch.long, device=gt.device)
    box = torch.tensor([jittered_box(g, rng) for g in gts_np], device=gt.device) if use_box else None
    if not use_box:
        coords = torch.tensor([[first_click(g, rng)] for g in gts_np], device=gt.device)
        labels = torch.ones(b, 1, dtype=torch.long, device=gt.device)
    mask_only = (set(rng.choice(np.arange(1, cfg.rounds), size=cfg.mask_only_rounds, replace=False).tolist())
                 if cfg.rounds > 1 else set())
    graded = _graded_rounds(cfg, rng)
    mask_input, pred = None, None
    total = torch.zeros((), device=gt.device)
    parts = {"seg": 0.0, "iou_mse": 0.0, "frl": 0.0, "click": 0.0, "monotone": 0.0, "token": 0.0, "feature": 0.0,
             "refine": 0.0}
    ious, prev_soft = [], None
    for r in range(cfg.rounds):
        if r > 0 and r not in mask_only:
            c, lab = corrective_clicks(pred, gt, gen, cfg.center_click_prob)
            coords, labels = torch.cat([coords, c], 1), torch.cat([labels, lab], 1)
        prompts = PromptBatch(coords if coords.shape[1] else None, labels if coords.shape[1] else None, box, mask_input)
        multimask = r == 0 and not use_box
        with torch.set_grad_enabled(r in graded and torch.is_grad_enabled()):
            if cfg.stage == "pge":
                low_res, iou_pred, enhanced = model.decode_with_embedding(feats, prompts, multimask)
            elif cfg.stage == "ref":
                low_res, iou_pred, extras = _ref_decode(model, feats, prompts, multimask)
            elif cfg.stage == "robust":
                low_res, iou_pred, extras = model.decode_robust(feats["embedding"], feats["robust_features"], prompts,
                                                                multimask)
            else:
                low_res, iou_pred = model.decode(feats, prompts, multimask)
            logits = low_res.float()
            if logits.shape[-1] != low:
                logits = F.interpolate(logits, (low, low), mode="bilinear", align_corners=False)
            seg, iou_mse, true_iou = segmentation_loss(logits, target.expand_as(logits), iou_pred.float())
            best = seg.argmin(1) if multimask else torch.zeros(b, dtype=torch.long, device=gt.device)
            pick = torch.arange(b, device=gt.device)
            if r in graded:
                loss = seg[pick, best].mean() + (iou_mse.mean() if cfg.stage != "ref" else 0.0)
                if cfg.stage == "ref":
                    refine = _ref_loss(extras, gt)
                    loss = loss + refine
                    parts["refine"] += float(refine.detach()) / len(graded)
                if cfg.click_weight and coords.shape[1]:
                    click = click_loss(logits[pick, best], coords, labels, size)
                    loss = loss + cfg.click_weight * click
                    parts["click"] += float(click.detach()) / len(graded)
                if cfg.monotone_weight and prev_soft is not None and r not in mask_only:
                    drop = torch.relu(prev_soft - soft_iou(logits[pick, best], target[:, 0])).mean()
                    loss = loss + cfg.monotone_weight * drop
                    parts["monotone"] += float(drop.detach()) / len(graded)
                parts["seg"] += float(seg[pick, best].mean().detach()) / len(graded)
                parts["iou_mse"] += float(iou_mse.mean().detach()) / len(graded)
                if cfg.stage == "robust" and teacher is not None:
                    _, _, target_extras = model.decode_robust(teacher["embedding"], teacher["robust_features"], prompts,
                                                              multimask, clean=True)
                    token, feature = consistency_losses(extras, target_extras)
                    loss = loss + cfg.token_weight * token + cfg.feature_weight * feature
                    parts["token"] += float(token.detach()) / len(graded)
                    parts["feature"] += float(feature.detach()) / len(graded)
                if cfg.stage == "pge" and cfg.frl != "none":
                    clean_embedding = teacher["embedding"]
                    clean = clean_embedding.repeat_interleave(b // clean_embedding.shape[0], 0)
                    frl = reconstruction_loss(enhanced, clean, gt[:, None] if cfg.frl == "foreground" else None)
                    loss = loss + cfg.frl_weight * frl
                    parts["frl"] += float(frl.detach()) / len(graded)
                total = total + loss / len(graded)
        ious.append(float(true_iou[pick, best].mean()))
        if cfg.monotone_weight:
            with torch.no_grad():
                prev_soft = soft_iou(logits[pick, best].detach(), target[:, 0])
        mask_input = low_res[pick, best][:, None].detach().float()
        # what the predictor feeds back: the final mask at L and the memory (error map, SAM's logits)
        if cfg.stage == "ref":
            lowres = model.spec.lowres_size
            mask_input = torch.cat([F.interpolate(mask_input, (lowres, lowres), mode="area"), extras["memory"]], 1)
        with torch.no_grad():
            pred = F.interpolate(mask_input, (size, size), mode="bilinear", align_corners=False)[:, 0] > 0
    parts["iou_first"], parts["iou_last"] = ious[0], ious[-1]
    return total, parts


def _ref_decode(model, feats: dict, prompts: PromptBatch, multimask: bool):
    """SAM's frozen decoder (the mask a lone click keeps, as at inference), then the refiners with autograd."""
    from ..models.base import first_click_choice
    from ..models.ref import split_feedback

    with torch.no_grad():
        coarse, iou = SegmentationModel.decode(model, feats, split_feedback(prompts)[0], multimask)
        if multimask:
            best = first_click_choice(iou, coarse, model.spec.first_click_margin, model.sam.mask_threshold)
            pick = torch.arange(coarse.shape[0], device=coarse.device)
            coarse, iou = coarse[pick, best][:, None], iou[pick, best][:, None]
    final, _, extras = model.decode_ref(feats, prompts, False, coarse=coarse.float())
    return final, iou, extras


def _ref_loss(extras: dict, gt: torch.Tensor) -> torch.Tensor:
    """SAM-REF's losses on the global refiner (at P) and the local one (on its crops, ground truth resampled)."""
    g_final, g_corr, g_err = extras["global"]
    side = g_final.shape[-1]
    target = F.adaptive_avg_pool2d(gt[:, None].float(), side) if gt.shape[-1] != side else gt[:, None].float()
    glob = refiner_losses(g_final, extras["coarse"], g_corr, g_err, target)
    l_final, l_corr, l_err = extras["local"]
    q = l_final.shape[-1]
    crops = [F.interpolate(target[i : i + 1, :, r0 : r0 + s, c0 : c0 + s], (q, q), mode="bilinear", align_corners=False)
             for i, (r0, c0, s) in enumerate(extras["crops"])]
    local_coarse = torch.cat([F.interpolate(g_final[i : i + 1, :, r0 : r0 + s, c0 : c0 + s].detach(), (q, q),
                                            mode="bilinear", align_corners=False)
                              for i, (r0, c0, s) in enumerate(extras["crops"])])
    local = refiner_losses(l_final, local_coarse, l_corr, l_err, torch.cat(crops))
    return sum(glob.values()) + sum(local.values())


def _graded_rounds(cfg: TrainConfig, rng) -> set[int]:
    """Rounds whose loss is back-propagated: all, or (``grad_rounds`` > 0) the first plus random later ones.

    The other rounds still run (without autograd) to place the next clicks and
    previous-mask inputs, so long click sequences cost little more than short ones.
    """
    if not cfg.grad_rounds or cfg.grad_rounds >= cfg.rounds:
        return set(range(cfg.rounds))
    later = rng.choice(np.arange(1, cfg.rounds), size=cfg.grad_rounds - 1, replace=False)
    return {0, *later.tolist()}


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Run (or resume) a training run; returns the exported safetensors path."""
    from tqdm.auto import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world = _dist()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed + rank)
    model, params = build_for(cfg, rank)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    synth = SynthConfig(**cfg.synth)
    degradations = list(cfg.degradations) or _all_degradations()
    step, elapsed, best_val = 0, 0.0, -1.0
    ckpt = out / "last.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=model.device, weights_only=True)
        _trainable(model, cfg).load_state_dict(state["weights"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        best_val = float(state.get("best_val", -1.0))
    val_samples = None
    if cfg.val_every and rank == 0:
        from .validate import validation_samples

        val_samples = validation_samples(cfg, synth, degradations)
        if step == 0:  # the starting point is a candidate too (an init that training does not beat is kept)
            best_val = _validate_and_keep(model, cfg, val_samples, 0, 0.0, best_val)
    gen = torch.Generator(device=model.device)
    pool = ProcessPoolExecutor(cfg.workers) if cfg.workers > 0 else None
    log = out / "metrics.csv"
    new_log = not log.is_file()
    columns = METRICS if new_log else _header(log)  # a resumed run keeps its file's columns
    with open(log, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns, extrasaction="ignore")
        if new_log:
            writer.writeheader()
        bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, desc=f"train {cfg.stage}")
        t_last = time.perf_counter()
        while step < cfg.steps:
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            loss, parts = batch_loss(model, cfg, step, synth, degradations, gen, rank, world, pool)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:
                for p in params:
                    if p.grad is not None:
                        torch.distributed.all_reduce(p.grad)
                        p.grad /= world
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            now = time.perf_counter()
            elapsed += now - t_last
            t_last = now
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", iou=f"{parts['iou_last']:.2f}")
            if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
                writer.writerow({"step": step, "loss": round(float(loss.detach()), 5), "lr": lr_at(step - 1, cfg),
                                 "seconds": round(elapsed, 1), **{k: round(v, 5) for k, v in parts.items()}})
                fh.flush()
            if val_samples is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                best_val = _validate_and_keep(model, cfg, val_samples, step, elapsed, best_val)
                t_last = time.perf_counter()  # validation time is not training time
            if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.steps):
                tmp = out / "last.pt.tmp"
                torch.save({"weights": _trainable(model, cfg).state_dict(), "optimizer": opt.state_dict(),
                            "step": step, "elapsed": elapsed, "best_val": best_val, "config": cfg.to_dict()}, tmp)
                os.replace(tmp, ckpt)
        bar.close()
    if pool is not None:
        pool.shutdown()
    return export(model, cfg, step, elapsed) if rank == 0 else out / "unused"


def _header(csv_path: Path) -> list[str]:
    with open(csv_path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), None) or METRICS


def _validate_and_keep(model, cfg: TrainConfig, samples, step: int, elapsed: float, best: float) -> float:
    """Score the model on the held-out scenes, log to ``validation.csv``, export it if it is the best so far."""
    from .validate import validate

    model.weights_changed()
    scores = validate(model, samples, cfg.val_clicks)
    path = Path(cfg.out_dir) / "validation.csv"
    new = not path.is_file()
    score = scores["val_miou" if cfg.val_select == "miou" else "val_iou_last"]
    improved = score > best
    with open(path, "a", newline="", encoding="utf-8") as fh:
        columns = ["step", "val_iou_first", "val_iou_last", "val_miou", "val_drop_rate", "best"]
        writer = csv.DictWriter(fh, columns if new else _header(path), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({"step": step, **{k: round(v, 5) for k, v in scores.items()}, "best": int(improved)})
    if cfg.snapshots:
        export(model, cfg, step, elapsed, prefix=f"step{step:05d}_")
        model.train()
    if improved:
        export(model, cfg, step, elapsed, prefix="best_")
        model.train()
        return score
    return best


def batch_loss(model, cfg: TrainConfig, step: int, synth: SynthConfig, degradations: list[str],
               gen: torch.Generator, rank: int = 0, world: int = 1, pool=None):
    """The loss of training step ``step`` on rank ``rank``: draws its scenes, encodes, runs the rounds.

    Every random draw derives from (``cfg.seed``, ``step``, ``rank``), so a resumed run
    repeats exactly what an uninterrupted one would have done, and calling this twice
    with the same arguments gives the same batch. Returns (loss, parts dict).
    """
    seeds = [cfg.seed * 1_000_003 + (step * world + rank) * cfg.batch_size + i for i in range(cfg.batch_size)]
    if pool is not None:
        samples = list(pool.map(partial(make_sample, cfg=cfg, synth=synth, degradations=degradations), seeds))
    else:
        samples = [make_sample(s, cfg, synth, degradations) for s in seeds]
    rng = np.random.default_rng(seeds[0] + 17)
    gen.manual_seed(cfg.seed * 7919 + step * world + rank)
    gts_np = [g for s in samples for g in s.gts]  # image-major: K targets per image
    gt = gt_to_input(model, gts_np)
    images = to_model_input(model, [s.degraded for s in samples])
    with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
        feats, teacher = _features(model, cfg, images, samples)
    # The decoder's many small matmuls are faster in fp32 than under autocast.
    feats = {k: v.float() for k, v in feats.items()}
    teacher = None if teacher is None else {k: v.float() for k, v in teacher.items()}
    if cfg.stage == "robust":  # the trained AMFG branches, in fp32 with autograd
        feats["robust_features"] = model.robust.image_features(feats["embedding"], feats.pop("early"))
        teacher["robust_features"] = model.robust.image_features(teacher["embedding"], teacher.pop("early"), clean=True)
    return run_rounds(model, cfg, feats, teacher, gt, gts_np, rng, gen)


def _features(model, cfg: TrainConfig, images: torch.Tensor, samples):
    """Per-batch image features and the clean image's tensors for the consistency terms (``None`` in the base stage)."""
    if cfg.stage == "ref":  # SAM (and its detail path) frozen; the refiners' embedding projection trains
        with torch.no_grad():
            feats = SegmentationModel.encode(model, images)
        return {**feats, **model.ref_features(images, feats["embedding"].float())}, None
    if cfg.stage == "base":
        # With train_encoder false the encoder's parameters stay frozen, so no graph is built there
        # (the detail path, trained with the decoder, still builds one).
        return model.encode(images), None
    with torch.no_grad():
        embedding, early = model.encode_backbone(images)
        if cfg.stage == "robust":
            clean_embedding, clean_early = model.encode_backbone(to_model_input(model, [s.clean for s in samples]))
            return {"embedding": embedding, "early": early}, {"embedding": clean_embedding, "early": clean_early}
        teacher = None
        if cfg.frl != "none":  # the clean twin is only encoded when the FRL needs it
            teacher = {"embedding": model.sam.image_encoder(to_model_input(model, [s.clean for s in samples]))}
        detail = model.encode_detail(images)
    return {"embedding": embedding, "early_proj": model.pge.msfi(early), **detail}, teacher


def _trainable(model, cfg: TrainConfig):
    return getattr(model, {"base": "sam", "pge": "pge", "robust": "robust", "ref": "ref"}[cfg.stage])


def _all_degradations() -> list[str]:
    from ..degrade import list_degradations

    return list_degradations()


def export(model, cfg: TrainConfig, step: int, elapsed: float, prefix: str = "") -> Path:
    """Write the run's safetensors (fp16 base SAM, or the fp32 PGE / RobustSAM modules) with a metadata header.

    ``prefix``: ``"best_"`` for the checkpoint chosen by validation (``best_sam_tiny.safetensors``).
    """
    import platform

    meta = {"steps": step, "wall_seconds": round(elapsed),
            "machine": f"{platform.machine()} {platform.processor() or ''} "
                       f"{'cuda' if model.device.type == 'cuda' else 'cpu'} threads={torch.get_num_threads()}".strip(),
            "training_data": "pge_sam.train.synth procedural scenes" + (
                f" + pge_sam.train.synthseg SynthSeg-style scenes ({cfg.synthseg_prob:.0%})"
                if cfg.synthseg_prob else "")
            + (f", {1 - cfg.clean_prob:.0%} degraded" if cfg.degrade_base or cfg.stage != "base" else "")
            + " (no benchmark images)",
            "config": cfg.to_dict(), "version": 1}
    model.eval()
    if cfg.stage == "base":
        return save_base(model, Path(cfg.out_dir) / f"{prefix}sam_{cfg.backbone}.safetensors", meta)
    if cfg.stage == "ref":
        return save_ref_adapter(model, Path(cfg.out_dir) / f"{prefix}sam_ref_{cfg.backbone}.safetensors", meta)
    if cfg.stage == "robust":
        return save_robust_adapter(model, Path(cfg.out_dir) / f"{prefix}robust_sam_{cfg.backbone}.safetensors", meta)
    return save_adapter(model, Path(cfg.out_dir) / f"{prefix}pge_sam_{cfg.backbone}.safetensors", meta)


def export_checkpoint(run_dir: str | Path, to: str | Path | None = None) -> Path:
    """Export a run's ``last.pt`` (possibly mid-training) as safetensors; returns the written path."""
    run_dir = Path(run_dir)
    state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    cfg = TrainConfig.from_dict(dict(state["config"], out_dir=str(run_dir), device="cpu"))
    model, _ = build_for(cfg, 0)
    _trainable(model, cfg).load_state_dict(state["weights"])
    path = export(model, cfg, int(state["step"]), float(state["elapsed"]))
    if to is not None:
        Path(to).parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, to)
        path = Path(to)
    return path


def plot_metrics(csv_path: str | Path, png_path: str | Path) -> Path:
    """Loss and training IoU curves of a run (matplotlib, Agg)."""
    from .._optional import require

    matplotlib = require("matplotlib", extra="train")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # older runs lack new columns
    df = {k: np.array([float(r[k]) for r in rows]) for k in METRICS if rows and k in rows[0]}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for col in ("loss", "seg", "frl", "click", "token", "feature", "refine"):
        if col in df and np.abs(df[col]).sum() > 0:
            axes[0].plot(df["step"], df[col], label=col)
    axes[0].set_xlabel("step")
    axes[0].set_yscale("log")
    axes[0].legend()
    axes[0].set_title("losses")
    axes[1].plot(df["step"], df["iou_first"], label="round 1")
    axes[1].plot(df["step"], df["iou_last"], label="last round")
    axes[1].set_xlabel("step")
    axes[1].set_ylim(0, 1)
    axes[1].legend()
    axes[1].set_title("training IoU")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return Path(png_path)

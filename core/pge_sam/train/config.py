"""Training configuration: a small dataclass, loadable from YAML and overridable from the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import InputError

STAGES = ("base", "pge", "robust", "ref")


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved next to its checkpoints).

    ``stage``: ``"base"`` trains a whole SAM of ``backbone`` (from scratch or
    ``init``, base safetensors) on clean scenes; ``"pge"`` trains only the PGE
    modules on a frozen base (``base_weights``) with clean/degraded pairs,
    from zero-initialised modules or ``init`` (adapter safetensors); ``"robust"``
    trains RobustSAM's decoder additions on the same frozen base and pairs, with
    the release's consistency terms: ``token_weight`` x MSE between the output
    tokens on the degraded image and SAM's mask tokens on the clean one, and
    ``feature_weight`` x MSE between the mask features of both runs. ``"ref"``
    trains SAM-REF's refiners on the same frozen base (clean and degraded
    scenes), with the paper's normalized focal, Dice, error-map BCE and
    error-weighted NFL losses; its optional stage 1, a decoder fine-tune, is the
    base stage with ``train_encoder: false``. ``frl``: ``"foreground"``
    (the paper's FRL), ``"global"`` (whole-image MSE ablation) or ``"none"``.
    ``guidance: false`` (pge stage): the ablation without prompt guidance, zero
    guidance maps in training and, through the adapter's header, at inference.
    ``batch_size`` images per step, each with ``targets_per_image`` objects
    prompted in parallel (one encoder pass serves them all, as in SAM's training),
    drawn among masks of at least ``min_target_area`` pixels with probability
    proportional to sqrt(area). ``center_click_prob``: share of corrective
    clicks placed at the centre of the largest error region (the benchmark's
    and a careful user's click) instead of uniformly in the errors.
    ``grad_rounds`` > 0: back-propagate only the first round and
    ``grad_rounds - 1`` random later ones (the rest run without autograd).
    ``val_every`` > 0: every so many steps, score the model on ``val_scenes``
    held-out procedural scenes with the benchmark's click protocol
    (``val_clicks`` clicks; pge stage: degraded scenes) and export the best
    checkpoint as ``best_<model>.safetensors`` (see :mod:`.validate`).
    ``snapshots``: also export the model at every validation as
    ``step<NNNNN>_<model>.safetensors``, so a checkpoint can be chosen later on
    other data (e.g. the benchmark's dev split: ``benchmarks/select_checkpoint.py``).
    ``train_encoder=False`` (base stage): keep the image encoder of ``init``
    frozen and train only the prompt encoder and mask decoder, where the
    click-by-click behaviour lives. ``click_weight`` > 0 adds a click-consistency
    term: binary cross-entropy of the mask logits at every click so far
    against the click's label (a positive click must end up inside the mask,
    a negative one outside), averaged over clicks.
    ``monotone_weight`` > 0 punishes a corrective click that moves the mask away
    from the truth: ``relu(soft IoU before the click - soft IoU after)``,
    averaged over targets (the round before is detached).
    ``synthseg_prob``: share of scenes drawn from the SynthSeg-style brain
    generator (:mod:`.synthseg`) instead of :mod:`.synth`'s scenes.
    ``degrade_base`` (base stage): feed the model a degraded image (the
    library's degradations, ``severities``) with probability ``1 - clean_prob``,
    so the base itself learns to hold up on degraded scans.
    ``val_select``: the validation score that picks the exported best checkpoint:
    ``"iou_last"`` (IoU after ``val_clicks`` clicks) or ``"miou"`` (mean IoU over
    clicks 1..``val_clicks``, the benchmark's headline).
    ``workers`` > 0: draw each step's scenes in that many worker processes
    (the GPU recipe: the generators are numpy, and a large batch would wait on
    one core); the scenes are the same as with ``workers: 0``.
    ``amp``: bf16 autocast for the image encoder (CUDA, and CPUs with bf16
    support: about 2x faster on this project's AMX CPUs); decoder and losses stay fp32.
    """

    stage: str = "base"
    backbone: str = "tiny"
    out_dir: str = "runs/base"
    steps: int = 2000
    batch_size: int = 4
    targets_per_image: int = 4
    min_target_area: int = 200
    lr: float = 4e-4
    weight_decay: float = 0.01
    warmup: int = 100
    rounds: int = 5
    mask_only_rounds: int = 1
    grad_rounds: int = 0
    box_prob: float = 0.4
    center_click_prob: float = 0.0
    click_weight: float = 0.0
    monotone_weight: float = 0.0
    synthseg_prob: float = 0.0
    degrade_base: bool = False
    val_select: str = "iou_last"
    snapshots: bool = False
    workers: int = 0
    train_encoder: bool = True
    frl: str = "foreground"
    guidance: bool = True
    frl_weight: float = 10.0
    token_weight: float = 2.0
    feature_weight: float = 100.0
    clean_prob: float = 0.2
    severities: tuple[int, ...] = (1, 2, 3)
    degradations: tuple[str, ...] = ()
    base_weights: str | None = None
    init: str | None = None
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    ckpt_every: int = 100
    threads: int | None = None
    amp: bool = True
    val_every: int = 0
    val_scenes: int = 24
    val_clicks: int = 5
    synth: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise InputError(f"stage must be one of {', '.join(repr(s) for s in STAGES)}, got {self.stage!r}")
        if not self.guidance and self.stage != "pge":
            raise InputError("guidance: false is the PGE ablation; it needs stage 'pge'")
        if self.frl not in ("foreground", "global", "none"):
            raise InputError(f"frl must be 'foreground', 'global' or 'none', got {self.frl!r}")
        if self.rounds < 1 or self.mask_only_rounds >= self.rounds:
            raise InputError("rounds must be >= 1 and larger than mask_only_rounds")
        if self.grad_rounds < 0:
            raise InputError(f"grad_rounds must be >= 0 (0: every round), got {self.grad_rounds!r}")
        if not 0.0 <= self.center_click_prob <= 1.0:
            raise InputError(f"center_click_prob must be in [0, 1], got {self.center_click_prob!r}")
        if self.val_select not in ("iou_last", "miou"):
            raise InputError(f"val_select must be 'iou_last' or 'miou', got {self.val_select!r}")
        if not 0.0 <= self.synthseg_prob <= 1.0 or self.monotone_weight < 0:
            raise InputError("synthseg_prob must be in [0, 1] and monotone_weight >= 0")
        if self.click_weight < 0:
            raise InputError(f"click_weight must be >= 0, got {self.click_weight!r}")
        if not self.train_encoder and (self.stage != "base" or not self.init):
            raise InputError("train_encoder: false needs stage 'base' and an init (the encoder to keep frozen)")
        if self.val_every < 0 or self.val_scenes < 1 or self.val_clicks < 1:
            raise InputError("val_every must be >= 0, val_scenes and val_clicks >= 1")
        if self.steps < 1 or self.batch_size < 1 or self.targets_per_image < 1:
            raise InputError("steps, batch_size and targets_per_image must be positive")
        self.severities = tuple(int(s) for s in self.severities)
        self.degradations = tuple(self.degradations)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["severities"], d["degradations"] = list(self.severities), list(self.degradations)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training options {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> TrainConfig:
        from .._optional import require

        yaml = require("yaml", extra="train")

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)

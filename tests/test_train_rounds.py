"""Training episodes: corrective clicks, back-propagated rounds, held-out validation and the best checkpoint."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from pge_sam.evaluate.clicks import next_click
from pge_sam.models.registry import build_model, shipped_path
from pge_sam.train.config import TrainConfig
from pge_sam.train.loop import _graded_rounds, batch_loss, build_for, train
from pge_sam.train.rounds import corrective_clicks
from pge_sam.train.synth import SynthConfig
from pge_sam.train.validate import validate, validation_samples


def _square(r0, r1, c0, c1, size=64):
    m = torch.zeros(size, size, dtype=torch.bool)
    m[r0:r1, c0:c1] = True
    return m


def test_centred_click_is_the_benchmark_click():
    gt = torch.stack([_square(10, 50, 10, 50), _square(10, 30, 10, 30)])
    pred = torch.stack([_square(10, 50, 10, 20), _square(10, 50, 10, 50)])  # missing a slab; too large
    coords, labels = corrective_clicks(pred, gt, torch.Generator().manual_seed(0), center_prob=1.0)
    for i in range(2):
        click = next_click(gt[i].numpy(), pred[i].numpy())
        assert coords[i, 0].tolist() == [click.col, click.row]  # (x, y)
        assert labels[i, 0].item() == int(click.positive)
    assert labels[:, 0].tolist() == [1, 0]


def test_uniform_click_lies_in_the_larger_error_set():
    gt = _square(10, 50, 10, 50)[None]
    pred = _square(10, 50, 10, 20)[None]
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        coords, labels = corrective_clicks(pred, gt, gen, center_prob=0.0)
        x, y = (int(v) for v in coords[0, 0])
        assert labels.item() == 1 and gt[0, y, x] and not pred[0, y, x]


@pytest.mark.parametrize("rounds,grad_rounds,expected", [(10, 3, 3), (5, 0, 5), (4, 9, 4), (6, 1, 1)])
def test_graded_rounds_always_include_the_first(rounds, grad_rounds, expected):
    cfg = TrainConfig(rounds=rounds, mask_only_rounds=1, grad_rounds=grad_rounds)
    graded = _graded_rounds(cfg, np.random.default_rng(0))
    assert 0 in graded and len(graded) == expected and graded <= set(range(rounds))


def test_rounds_without_autograd_leave_the_loss_differentiable(tmp_path):
    cfg = TrainConfig(out_dir=str(tmp_path), batch_size=1, targets_per_image=2, rounds=6, mask_only_rounds=1,
                      grad_rounds=2, center_click_prob=0.5, amp=False, device="cpu")
    torch.manual_seed(0)
    model, _ = build_for(cfg, 0)
    loss, parts = batch_loss(model, cfg, 0, SynthConfig(), [], torch.Generator())
    loss.backward()
    assert torch.isfinite(loss) and parts["seg"] > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.sam.mask_decoder.parameters())


def test_validation_is_deterministic_and_held_out():
    cfg = TrainConfig(val_scenes=3, targets_per_image=3)
    a = validation_samples(cfg, SynthConfig(), [])
    b = validation_samples(cfg, SynthConfig(), [])
    assert len(a) == 3 and all(s.gts.shape[0] == 1 for s in a)
    assert all(np.array_equal(x.clean, y.clean) for x, y in zip(a, b))
    model = build_model("sam_tiny", device="cpu")
    assert validate(model, a, 3) == validate(model, a, 3)


def test_validation_exports_the_best_checkpoint(tmp_path):
    cfg = TrainConfig(stage="base", out_dir=str(tmp_path / "run"), steps=3, batch_size=1, targets_per_image=1,
                      rounds=2, mask_only_rounds=0, amp=False, device="cpu", ckpt_every=1, log_every=1,
                      init=str(shipped_path("sam_tiny")), lr=3e-3, warmup=1,
                      val_every=1, val_scenes=2, val_clicks=2)
    train(cfg, progress=False)
    with open(tmp_path / "run" / "validation.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3]  # step 0: the init is a candidate too
    scores = [float(r["val_iou_last"]) for r in rows]
    best_row = max(range(4), key=lambda i: (scores[i], -i))
    assert rows[best_row]["best"] == "1"
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["best_val"] == pytest.approx(max(scores), abs=1e-5)
    best = build_model("sam_tiny", checkpoint=tmp_path / "run" / "best_sam_tiny.safetensors", device="cpu")
    samples = validation_samples(cfg, SynthConfig(), [])
    assert validate(best, samples, 2)["val_iou_last"] == pytest.approx(max(scores), abs=0.02)


def test_pge_stage_warm_starts_from_an_adapter(tmp_path):
    cfg = TrainConfig(stage="pge", out_dir=str(tmp_path), init=str(shipped_path("pge_sam_tiny")), amp=False,
                      device="cpu")
    model, _ = build_for(cfg, 0)
    shipped = build_model("pge_sam_tiny", device="cpu")
    for (name, p), q in zip(model.pge.state_dict().items(), shipped.pge.state_dict().values()):
        assert torch.equal(p, q), name
    assert any(p.abs().sum() > 0 for p in model.pge.state_dict().values())


def test_cli_init_flag_warm_starts_the_adapter(tmp_path):
    from pge_sam.cli import main
    from pge_sam.models import weights as W

    config = tmp_path / "c.yaml"
    config.write_text("batch_size: 1\ntargets_per_image: 1\nrounds: 2\nmask_only_rounds: 0\namp: false\n"
                      "degradations: [gaussian_noise]\nlog_every: 1\nckpt_every: 1\n")
    out = tmp_path / "run"
    assert main(["train", "pge", "--config", str(config), "--out", str(out), "--steps", "1", "--lr", "1e-12",
                 "--device", "cpu", "--init", str(shipped_path("pge_sam_tiny"))]) == 0
    trained, _ = W.read_safetensors(out / "pge_sam_tiny.safetensors")
    shipped, _ = W.read_safetensors(shipped_path("pge_sam_tiny"))
    assert trained.keys() == shipped.keys()
    for k in shipped:
        torch.testing.assert_close(trained[k], shipped[k], atol=1e-6, rtol=0)


def test_per_degradation_table_scores_both_models_on_every_condition():
    from pge_sam.degrade import list_degradations
    from pge_sam.errors import InputError
    from pge_sam.train.validate import per_degradation_table

    table = per_degradation_table(severity=2, scenes=1, clicks=1, device="cpu")
    lines = table.splitlines()
    assert len(lines) == 2 + 1 + len(list_degradations()) + 1
    assert lines[2].startswith("| clean |") and lines[-1].startswith("| mean over degradations |")
    values = [float(v) for line in lines[2:] for v in line.strip("|").split("|")[1:3]]
    assert all(0.0 <= v <= 1.0 for v in values)
    with pytest.raises(InputError, match="severity"):
        per_degradation_table(severity=4)


def test_click_loss_is_low_when_the_logits_obey_the_clicks_and_ignores_padding():
    from pge_sam.train.losses import click_loss

    logits = torch.full((1, 32, 32), -8.0)
    logits[0, 8:16, 8:16] = 8.0  # input frame 64 -> logits cell = coordinate // 2
    coords = torch.tensor([[[24.0, 24.0], [50.0, 50.0], [0.0, 0.0]]])  # inside, outside, padding
    obeyed = click_loss(logits, coords, torch.tensor([[1, 0, -1]]), 64)
    flipped = click_loss(logits, coords, torch.tensor([[0, 1, -1]]), 64)
    assert float(obeyed) < 1e-3
    assert float(flipped) > 7.0
    assert float(click_loss(logits, coords, torch.full((1, 3), -1), 64)) == 0.0


def test_decoder_only_training_keeps_the_encoder_and_logs_the_click_term(tmp_path):
    init = str(shipped_path("sam_tiny"))
    cfg = TrainConfig(stage="base", out_dir=str(tmp_path / "run"), steps=2, batch_size=1, targets_per_image=2,
                      rounds=3, mask_only_rounds=0, amp=False, device="cpu", ckpt_every=1, log_every=1, lr=1e-3,
                      init=init, train_encoder=False, click_weight=1.0, seed=2)
    model, params = build_for(cfg, 0)
    trained = {id(p) for m in (model.sam.prompt_encoder, model.sam.mask_decoder, model.sam.detail)
               for p in m.parameters()}
    assert {id(p) for p in params} == trained
    encoder_before = {k: v.clone() for k, v in model.sam.image_encoder.state_dict().items()}
    train(cfg, progress=False)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["weights"]
    changed = [k for k, v in encoder_before.items() if not torch.equal(state[f"image_encoder.{k}"], v)]
    assert changed == []
    assert any(not torch.equal(state[k], v) for k, v in model.sam.state_dict().items() if k.startswith("mask_decoder."))
    # the detail path learns from its zero start (its output conv gets gradient through the masks)
    assert state["detail.head.out.weight"].abs().max() > 0
    with open(tmp_path / "run" / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(float(r["click"]) > 0 for r in rows)


def test_decoder_only_training_needs_an_init():
    with pytest.raises(Exception, match="train_encoder"):
        TrainConfig(stage="base", train_encoder=False)


def test_a_resumed_run_keeps_the_columns_of_its_metrics_file(tmp_path):
    cfg = TrainConfig(stage="base", out_dir=str(tmp_path / "run"), steps=1, batch_size=1, targets_per_image=1,
                      rounds=2, mask_only_rounds=0, amp=False, device="cpu", ckpt_every=1, log_every=1, seed=5)
    train(cfg, progress=False)
    log = tmp_path / "run" / "metrics.csv"
    old_columns = ["step", "loss", "seg", "iou_mse", "frl", "iou_first", "iou_last", "lr", "seconds"]
    with open(log, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(log, "w", newline="", encoding="utf-8") as fh:  # a file written before the click column existed
        w = csv.DictWriter(fh, old_columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    cfg.steps = 2
    train(cfg, progress=False)
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines[0].split(",") == old_columns and len(lines) == 3
    assert all(len(line.split(",")) == len(old_columns) for line in lines)


def test_soft_iou_and_the_monotone_term_punish_a_worse_mask():
    from pge_sam.train.losses import soft_iou

    target = torch.zeros(1, 32, 32)
    target[:, 8:24, 8:24] = 1
    good = torch.where(target > 0, 8.0, -8.0)
    worse = good.clone()
    worse[:, 8:24, 8:16] = -8.0  # half the object lost after a click
    assert float(soft_iou(good, target)) > 0.95 > 0.55 > float(soft_iou(worse, target))
    drop = torch.relu(soft_iou(good, target) - soft_iou(worse, target))
    assert float(drop) > 0.4
    assert float(torch.relu(soft_iou(worse, target) - soft_iou(good, target))) == 0.0


def test_the_training_mix_draws_synthseg_scenes_and_degrades_base_inputs():
    from pge_sam.train.data import make_sample

    synth = SynthConfig()
    cfg = TrainConfig(stage="base", synthseg_prob=1.0, degrade_base=True, clean_prob=0.0, targets_per_image=2)
    plain = TrainConfig(stage="base", targets_per_image=2)
    a = make_sample(3, cfg, synth, ["gaussian_noise"])
    b = make_sample(3, plain, synth, ["gaussian_noise"])
    assert not np.array_equal(a.degraded, a.clean)  # degraded input in the base stage
    assert np.array_equal(b.degraded, b.clean)  # the default base stage stays clean
    assert a.gts.shape[1:] == a.clean.shape and not np.array_equal(a.clean, b.clean)  # another generator


def test_validation_reports_the_mean_over_clicks_and_the_drop_rate():
    model = build_model("sam_tiny", pretrained=False, device="cpu")
    samples = validation_samples(TrainConfig(stage="base", val_scenes=2), SynthConfig(), [])
    scores = validate(model, samples, 3)
    assert set(scores) == {"val_iou_first", "val_iou_last", "val_miou", "val_drop_rate"}
    assert 0.0 <= scores["val_drop_rate"] <= 1.0
    assert 0.0 <= scores["val_miou"] <= 1.0


def test_worker_processes_draw_the_same_scenes(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    cfg = TrainConfig(stage="base", out_dir=str(tmp_path), batch_size=2, targets_per_image=1, rounds=2,
                      mask_only_rounds=0, amp=False, device="cpu", seed=3, synthseg_prob=0.5)
    model, _ = build_for(cfg, 0)
    with torch.no_grad():
        serial, _ = batch_loss(model, cfg, 0, SynthConfig(), ["gaussian_noise"], torch.Generator())
        with ProcessPoolExecutor(2) as pool:
            pooled, _ = batch_loss(model, cfg, 0, SynthConfig(), ["gaussian_noise"], torch.Generator(), pool=pool)
    assert float(serial) == pytest.approx(float(pooled), rel=1e-6)

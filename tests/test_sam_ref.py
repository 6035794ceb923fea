"""SAM-REF: an untrained refiner is SAM, the selector's rule, the crop, the memory a session keeps and undoes,
training steps, export, and every backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import seeded_model
from test_train import assert_shipped_base_unchanged, overfit, small_config

from pge_sam import Session
from pge_sam.errors import MissingWeightsError
from pge_sam.models.base import PromptBatch
from pge_sam.models.ref import RefSizes, changed_crop, prompt_maps, select_base
from pge_sam.models.registry import build_model, list_models
from pge_sam.predictor import Predictor
from pge_sam.prompts import Box, Point, SlicePrompts


def _pair(seed: int = 0):
    """A random sam_ref_tiny and the sam_tiny with the very same SAM weights."""
    ref = seeded_model("sam_ref_tiny", seed)
    sam = seeded_model("sam_tiny", seed)
    sam.sam.load_state_dict(ref.sam.state_dict())
    sam.weights_changed()
    return ref, sam


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = (40 + 20 * rng.random((96, 120))).astype(np.uint8)
    img[30:70, 40:90] += 140
    return img


def _perturbed(model, seed: int = 5):
    """``model`` with random (non-zero) refiner read-outs, so corrections and error maps are not zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for refiner in (model.ref.glob, model.ref.local):
            refiner.out.weight.copy_(torch.randn(refiner.out.weight.shape, generator=gen) * 0.3)
            refiner.out.bias.copy_(torch.tensor([0.0, 0.5]))
    model.weights_changed()
    return model


def test_untrained_refiner_returns_sams_mask_exactly_click_after_click():
    ref, sam = _pair()
    img = _image()
    p_ref, p_sam = Predictor(ref), Predictor(sam)
    f_ref, f_sam = p_ref.features(img), p_sam.features(img)
    prompts, fb_ref, fb_sam = SlicePrompts(), None, None
    for point in (Point(50, 60, True), Point(35, 45, False), Point(65, 85, True)):
        prompts = prompts.with_point(point)
        a = p_ref.decode(f_ref, prompts, img.shape, mask_input=fb_ref)
        b = p_sam.decode(f_sam, prompts, img.shape, mask_input=fb_sam)
        assert np.array_equal(a.logits, b.logits)
        assert a.low_res.shape[1] == 3 and b.low_res.shape[1] == 1  # the memory channels ride along
        assert torch.equal(a.low_res[:, :1], b.low_res)
        fb_ref, fb_sam = a.low_res, b.low_res


def test_selector_rule():
    assert select_base(500.0, None) == "global"  # first round
    assert select_base(500.0, 0.0) == "global"
    assert select_base(110.0, 100.0) == "global"  # at the threshold: not grown by more than 1.1
    assert select_base(111.0, 100.0) == "previous"
    assert select_base(20.0, 100.0) == "global"


def _hand_built(model, error_bias: float, previous_error_pixels: int):
    """Decode with a hand-built previous mask and error map; the global refiner's error map is ``error_bias``
    everywhere (its correction zero), so its error area is all or nothing."""
    side, low = model.spec.mask_size, model.spec.lowres_size
    with torch.no_grad():
        model.ref.glob.out.bias.copy_(torch.tensor([0.0, error_bias]))
    features = {k: v[None] for k, v in Predictor(model).features(_image()).items()}
    previous = torch.full((1, 1, low, low), -8.0)
    previous[..., 10:30, 10:30] = 8.0  # a square far from the click
    error = torch.full((1, 1, low, low), -5.0)
    error.view(-1)[:previous_error_pixels] = 5.0
    prompts = PromptBatch(torch.tensor([[[170.0, 120.0]]]), torch.ones(1, 1, dtype=torch.long), None,
                          torch.cat([previous, error], 1))
    with torch.no_grad():
        final, _, extras = model.decode_ref(features, prompts, False)
    prev_up = torch.nn.functional.interpolate(previous, (side, side), mode="bilinear", align_corners=False)
    return final, extras, prev_up


def test_selector_pastes_on_the_previous_mask_when_the_error_area_grows():
    model = seeded_model("sam_ref_tiny")
    final, extras, prev_up = _hand_built(model, error_bias=8.0, previous_error_pixels=50)
    assert extras["choice"] == ["previous"]
    (r0, c0, s), = extras["crops"]
    outside = torch.ones_like(final, dtype=torch.bool)
    outside[..., r0 : r0 + s, c0 : c0 + s] = False
    assert torch.equal(final[outside], prev_up[outside])
    g_final = extras["global"][0]
    assert torch.equal(final[~outside], g_final[~outside])  # untrained local refiner: the global result


def test_selector_keeps_the_global_result_when_the_error_area_shrinks():
    model = seeded_model("sam_ref_tiny")
    final, extras, _ = _hand_built(model, error_bias=8.0, previous_error_pixels=128 * 128)
    assert extras["choice"] == ["global"]
    assert torch.equal(final, extras["global"][0])


def test_inference_gates_the_correction_by_the_offset_error_map_and_training_does_not():
    """At inference the error logits are lowered by ``gate_offset`` (tuned on the dev split): SAM's mask is replaced
    only where the error map is surer; training sees the raw error map it learns."""
    model = _perturbed(seeded_model("sam_ref_tiny"))
    features = {k: v[None] for k, v in Predictor(model).features(_image()).items()}
    prompts = PromptBatch(torch.tensor([[[170.0, 120.0]]]), torch.ones(1, 1, dtype=torch.long), None, None)
    runs = {}
    for training in (True, False):
        model.ref.train(training)
        with torch.no_grad():
            runs[training] = model.decode_ref(features, prompts, False)[2]["global"]
    (g_train, corr_train, err_train), (g_eval, corr_eval, err_eval) = runs[True], runs[False]
    offset = RefSizes().gate_offset
    assert offset > 0 and torch.equal(corr_train, corr_eval)
    torch.testing.assert_close(err_eval, err_train - offset)
    coarse = g_train - torch.sigmoid(err_train) * corr_train
    torch.testing.assert_close(g_eval, coarse + torch.sigmoid(err_train - offset) * corr_train)
    assert (g_eval - coarse).abs().sum() < (g_train - coarse).abs().sum()  # a smaller change of SAM's mask


def test_changed_crop_surrounds_the_largest_changed_region():
    sizes = RefSizes()
    now = torch.full((256, 256), -1.0)
    now[100:140, 50:70] = 1.0  # grew here (large change)
    now[10:14, 200:204] = 1.0  # and a speck
    r0, c0, s = changed_crop(now, torch.full((256, 256), -1.0), sizes)
    assert r0 <= 100 and r0 + s >= 140 and c0 <= 50 and c0 + s >= 70
    assert s == round(40 * (1 + 2 * sizes.margin))
    previous = now.clone()
    previous[120:140, 50:70] = -1.0  # only the lower half changed since then
    r0, c0, s = changed_crop(now, previous, sizes)
    assert r0 <= 120 and r0 + s >= 140 and s == round(20 * (1 + 2 * sizes.margin))
    r0, c0, s = changed_crop(torch.full((256, 256), -1.0), None, sizes)  # empty mask: the centre, smallest crop
    assert s == sizes.min_crop and 0 <= r0 <= 256 - s


def test_prompt_maps_draw_disks_and_box_in_the_window():
    prompts = PromptBatch(torch.tensor([[[64.0, 32.0], [200.0, 200.0]]]), torch.tensor([[1, 0]]),
                          torch.tensor([[10.0, 20.0, 30.0, 40.0]]), None)
    maps = prompt_maps(prompts, 1, 128, 256, radius=2.5)  # half the input's side
    assert maps[0, 0, 16, 32] == 1 and maps[0, 0].sum() < 30 and maps[0, 1, 100, 100] == 1
    assert maps[0, 2, 15, 10] == 1 and maps[0, 2, 25, 10] == 0
    window = torch.tensor([[48.0, 16.0, 80.0, 48.0]])  # 32 input px around the positive click, drawn at 64 px
    zoomed = prompt_maps(prompts, 1, 64, 256, window, radius=2.5)
    assert zoomed[0, 0, 32, 32] == 1 and zoomed[0, 1].sum() == 0


def test_undo_restores_the_refiner_memory():
    model = _perturbed(seeded_model("sam_ref_tiny"))
    vol = np.stack([_image(i) for i in range(3)]).astype(np.float32)
    session = Session(Predictor(model), vol)
    session.add_point((1, 50, 60), True)
    obj = session.state.objects[session.state.label]
    after_first = obj.logits[(0, 1)].clone()
    assert after_first.shape[1] == 3 and after_first[:, 1].abs().sum() > 0
    session.add_point((1, 35, 45), False)
    assert not torch.equal(obj.logits[(0, 1)], after_first)
    second = session.labels.copy()
    session.undo()
    assert torch.equal(obj.logits[(0, 1)], after_first)
    session.add_point((1, 35, 45), False)  # the same click again gives the same result
    assert np.array_equal(session.labels, second)


def test_propagation_hands_neighbours_the_mask_channel_only():
    model = _perturbed(seeded_model("sam_ref_tiny"))
    vol = np.stack([_image(0)] * 4).astype(np.float32)
    session = Session(Predictor(model), vol)
    session.add_point((1, 50, 60), True)
    change = session.propagate()
    assert not change.cancelled
    seen = []
    real = model.decode_ref

    def spy(features, prompts, multimask, coarse=None):
        seen.append(None if prompts.mask_input is None else prompts.mask_input.shape[1])
        return real(features, prompts, multimask, coarse)

    model.decode_ref = spy
    session.propagate()
    assert seen and all(c in (None, 1) for c in seen)


def test_a_neighbours_mask_with_a_box_gets_sams_mask_and_a_click_round_is_refined():
    ref, sam = _pair()
    _perturbed(ref)
    img = _image()
    p_ref, p_sam = Predictor(ref), Predictor(sam)
    f_ref, f_sam = p_ref.features(img), p_sam.features(img)
    neighbour = p_sam.decode(f_sam, SlicePrompts().with_point(Point(50, 60, True)), img.shape).low_res
    boxed = SlicePrompts().with_box(Box(28, 38, 72, 92))
    a = p_ref.decode(f_ref, boxed, img.shape, mask_input=neighbour)  # what propagation asks for
    b = p_sam.decode(f_sam, boxed, img.shape, mask_input=neighbour)
    assert np.array_equal(a.logits, b.logits)
    clicked = p_ref.decode(f_ref, boxed.with_point(Point(50, 60, True)), img.shape, mask_input=neighbour)
    plain = p_sam.decode(f_sam, boxed.with_point(Point(50, 60, True)), img.shape, mask_input=neighbour)
    assert not np.array_equal(clicked.logits, plain.logits)  # a click round: the refiners act
    again = p_ref.decode(f_ref, boxed, img.shape, mask_input=a.low_res)  # a box round on its own slice: too
    assert not np.array_equal(again.logits, p_sam.decode(f_sam, boxed, img.shape, mask_input=b.low_res[:, :1]).logits)


def test_shipped_sam_ref_propagation_stops_where_the_phantom_ventricle_ends():
    """Regression: the refiners grew a box-prompted mask on every propagated slice, to the volume's end
    (3D CT Dice 0.04 against sam_tiny's 0.68 on this DM-Seg-mini dev target)."""
    from pge_sam.evaluate.metrics import dice
    from pge_sam.evaluate.protocol3d import first_click
    from pge_sam.evaluate.targets3d import build_targets3d
    from pge_sam.model_files import build_model as build_shipped

    target = next(t for t in build_targets3d("ct", split="dev") if t.name == "sl3d_ventricle_small")
    labels = np.zeros(target.volume.shape, np.uint16)
    session = Session(Predictor(build_shipped("sam_ref_tiny", device="cpu")), target.volume, labels, prefetch=0)
    session.add_point(first_click(target.mask).point, True)
    session.propagate()
    extent = np.flatnonzero(target.mask.any((1, 2)))
    done = np.flatnonzero(labels.any((1, 2)))
    assert extent[0] - 3 <= done[0] and done[-1] <= extent[-1] + 3
    assert dice(labels > 0, target.mask) > 0.5


def test_ref_steps_lower_the_loss_and_leave_sam_frozen(tmp_path):
    """On the shipped base: the refiners alone train (20 steps at 3e-3 on one batch)."""
    cfg = small_config(tmp_path, "ref", lr=3e-3, clean_prob=0.5)
    before, after, model = overfit(cfg, steps=20)
    assert after < 0.9 * before, (before, after)
    assert_shipped_base_unchanged(model)


def test_ref_export_reloads_to_identical_outputs(tmp_path):
    from pge_sam.train.loop import train

    cfg = small_config(tmp_path, "ref", lr=3e-3)
    exported = train(cfg, progress=False)
    assert exported.name == "sam_ref_tiny.safetensors"
    state = torch.load(tmp_path / "run_ref" / "last.pt", weights_only=True)
    from_file = build_model("sam_ref_tiny", adapter=exported, device="cpu")
    assert all(torch.equal(a, state["weights"][k]) for k, a in from_file.ref.state_dict().items())
    assert "sam_ref_tiny.safetensors" in from_file.weights_source


@pytest.mark.parametrize("backbone", ["vit_b", "vit_l", "vit_h"])
def test_every_backbone_builds_and_refines(backbone):
    """The official backbones (random weights, encoder skipped): the refiner runs at 256 with a 512 image."""
    torch.manual_seed(0)
    model = build_model(f"sam_ref_{backbone}", pretrained=False, device="cpu")
    spec = model.spec
    added = sum(p.numel() for p in model.ref.parameters())
    assert 30_000 < added < 700_000  # the paper adds about 0.7 M
    h = spec.img_size // spec.patch_size
    embedding = torch.randn(1, spec.prompt_dim, h, h)
    images = torch.randn(1, 3, spec.img_size, spec.img_size)
    with torch.no_grad():
        feats = {"embedding": embedding, **model.ref_features(images, embedding)}
        assert feats["ref_image"].shape[-1] == 512
        prompts = PromptBatch(torch.tensor([[[500.0, 400.0]]]), torch.ones(1, 1, dtype=torch.long), None, None)
        logits, iou, memory = model.decode(feats, prompts, False)
    assert logits.shape == (1, 1, 256, 256) and memory.shape == (1, 2, 256, 256)


def test_missing_refiner_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(MissingWeightsError, match="pge-sam train ref --backbone tiny"):
        build_model("sam_ref_tiny", adapter=tmp_path / "nope.safetensors", device="cpu")
    rows = {r["name"]: r for r in list_models()}
    assert rows["sam_ref_vit_b"]["variant"] == "sam_ref"
    assert rows["sam_ref_vit_b"]["adapter"].endswith("sam_ref_vit_b_adapter.safetensors")


def test_pge_sam_ref_combines_both_trained_files_and_refuses_one_adapter(tmp_path):
    """pge_sam_ref: PGE's enhanced embedding feeds the refiners; an untrained refiner gives PGE-SAM's mask."""
    pge = seeded_model("pge_sam_tiny")
    both = seeded_model("pge_sam_ref_tiny")
    both.sam.load_state_dict(pge.sam.state_dict())
    both.pge.load_state_dict(pge.pge.state_dict())
    both.weights_changed()
    pge.weights_changed()
    img = _image()
    p_both, p_pge = Predictor(both), Predictor(pge)
    f_both, f_pge = p_both.features(img), p_pge.features(img)
    prompts = SlicePrompts().with_point(Point(50, 60, True))
    a = p_both.decode(f_both, prompts, img.shape)
    b = p_pge.decode(f_pge, prompts, img.shape)
    assert np.array_equal(a.logits, b.logits) and a.low_res.shape[1] == 3
    from pge_sam.errors import InputError

    with pytest.raises(InputError, match="combines two trained files"):
        build_model("pge_sam_ref_tiny", adapter=tmp_path / "x.safetensors")


def test_vit_b_refiners_train_on_a_frozen_random_sam():
    """The official-backbone training path on CPU (random weights, encoder skipped: the embedding is given):
    the interactive rounds run at 1024, gradients reach every refiner and none reaches SAM."""
    from pge_sam.train.config import TrainConfig
    from pge_sam.train.data import gt_to_input
    from pge_sam.train.loop import run_rounds

    torch.manual_seed(0)
    model = build_model("sam_ref_vit_b", pretrained=False, device="cpu").train()
    for p in model.ref.parameters():
        p.requires_grad_(True)
    gts = [np.zeros((200, 200), bool)]
    gts[0][60:140, 50:120] = True
    images = torch.randn(1, 3, 1024, 1024)
    embedding = torch.randn(1, 256, 64, 64)
    feats = {"embedding": embedding, **model.ref_features(images, embedding)}
    cfg = TrainConfig(stage="ref", backbone="vit_b", rounds=2, mask_only_rounds=0, amp=False, device="cpu")
    loss, parts = run_rounds(model, cfg, feats, None, gt_to_input(model, gts), gts, np.random.default_rng(0),
                             torch.Generator().manual_seed(0))
    loss.backward()
    assert parts["refine"] > 0
    assert all(p.grad is not None for p in model.ref.parameters())
    assert all(p.grad is None for p in model.sam.parameters())


def test_saved_embeddings_carry_the_refiner_inputs(tmp_path):
    """A sam_ref session's precomputed slices (with ref_image / ref_embedding) serve a fresh session unchanged."""
    from pge_sam.embeddings import load_embeddings, save_embeddings

    model = _perturbed(seeded_model("sam_ref_tiny"))
    vol = np.stack([_image(i) for i in range(3)]).astype(np.float32)
    first = Session(Predictor(model), vol)
    first.precompute()
    save_embeddings(first, tmp_path / "emb")
    first.add_point((1, 50, 60), True)
    other = Session(Predictor(model), vol)
    load_embeddings(other, tmp_path / "emb")
    other.add_point((1, 50, 60), True)
    assert other.predictor.encoder_calls == 0
    assert np.array_equal(other.labels, first.labels)

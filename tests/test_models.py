"""Model contract: shapes, registry, frozen base, PGE gate trained live, fingerprints, device policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pge_sam.errors import InputError
from pge_sam.models.base import PromptBatch
from pge_sam.models.registry import build_model, model_names, parse_name
from pge_sam.predictor import Predictor


def test_registry_names_all_sixteen_models():
    names = model_names()
    variants = ("sam", "pge_sam", "robust_sam", "sam_ref")
    assert sorted(names) == sorted(f"{v}_{b}" for v in variants for b in ("tiny", "vit_b", "vit_l", "vit_h"))
    assert parse_name("robust_sam_vit_b").variant == "robust_sam" and parse_name("robust_sam_tiny").backbone == "tiny"
    assert parse_name("pge_sam_vit_l").variant == "pge_sam" and parse_name("pge_sam_vit_l").backbone == "vit_l"
    assert parse_name("sam_tiny").variant == "sam"
    assert parse_name("sam_ref_vit_h").variant == "sam_ref" and parse_name("sam_ref_tiny").backbone == "tiny"
    assert parse_name("pge_sam_ref_tiny").variant == "pge_sam_ref"  # buildable, not listed (experimental)
    with pytest.raises(InputError, match="unknown backbone 'vit_x'"):
        build_model("sam_vit_x", pretrained=False, device="cpu")


def test_encode_shapes_and_frozen_base(pge_sam_tiny, sam_tiny):
    spec = pge_sam_tiny.spec
    images = torch.zeros(2, 3, spec.img_size, spec.img_size)
    with torch.no_grad():
        out = pge_sam_tiny.encode(images)
        plain = sam_tiny.encode(images)
    assert out["embedding"].shape == (2, spec.prompt_dim, spec.embed_size, spec.embed_size) == plain["embedding"].shape
    assert out["early_proj"].shape == (2, 32, spec.embed_size, spec.embed_size)
    assert set(plain) == {"embedding", "detail_s4", "detail_s2", "detail_s1"}  # the tiny backbone's detail path
    assert torch.equal(out["embedding"], plain["embedding"])  # same seed -> same SAM weights
    assert not any(p.requires_grad for p in pge_sam_tiny.sam.parameters())
    assert all(p.requires_grad for p in pge_sam_tiny.pge.parameters())
    assert sam_tiny.trainable_parameters() == []
    n_added = sum(p.numel() for p in pge_sam_tiny.trainable_parameters())
    assert 0 < n_added < sum(p.numel() for p in pge_sam_tiny.sam.parameters()) / 5


def _features_and_prompts(model, seed: int = 0):
    rng = np.random.default_rng(seed)
    slice_u8 = rng.integers(0, 256, (40, 56), dtype=np.uint8)
    pred = Predictor(model)
    with torch.no_grad():
        feats = model.encode(pred.preprocess([slice_u8]))
    prompts = PromptBatch(coords=torch.tensor([[[120.0, 90.0]]]), labels=torch.tensor([[1]]))
    return feats, prompts


def test_trained_pge_changes_the_decoder_output_and_keeps_sam(fresh_model):
    """5 Adam steps on ``model.pge`` through ``decode_with_embedding``: output moves, base SAM untouched."""
    model = fresh_model("pge_sam_tiny")
    feats, prompts = _features_and_prompts(model)
    sam_before = {k: v.clone() for k, v in model.sam.state_dict().items()}
    gate_before = model.pge.pgg.gate.weight.detach().clone()
    with torch.no_grad():
        low_before, iou_before, enhanced_before = model.decode_with_embedding(feats, prompts, False)
    assert torch.equal(enhanced_before, feats["embedding"])
    L = model.spec.mask_size
    target = torch.zeros(1, 1, L, L)
    target[..., : L // 2, :] = 1.0  # push the mask to the upper half of the grid

    def loss_fn():
        low, _, _ = model.decode_with_embedding(feats, prompts, False)
        return torch.nn.functional.binary_cross_entropy_with_logits(low, target)

    opt = torch.optim.Adam(model.pge.parameters(), lr=1e-2)
    with torch.no_grad():
        loss0 = float(loss_fn())
    for _ in range(5):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert all(p.grad is None for p in model.sam.parameters())
    with torch.no_grad():
        low_after, _, enhanced_after = model.decode_with_embedding(feats, prompts, False)
        loss1 = float(loss_fn())
    assert loss1 < loss0
    assert float((low_after - low_before).abs().max()) > 1e-2
    delta = (enhanced_after - feats["embedding"]).abs()
    assert float(delta.max()) > 0
    # every PGE part received gradient: the zero-initialised output conv, the FiLM head and the spatial gate
    assert float(model.pge.r_out.weight.detach().abs().max()) > 0
    assert float(model.pge.pgg.film.weight.detach().abs().max()) > 0
    assert not torch.equal(model.pge.pgg.gate.weight, gate_before)
    for k, v in model.sam.state_dict().items():
        assert torch.equal(v, sam_before[k]), f"base SAM parameter {k} changed"


def test_fingerprint_follows_weights_changed(fresh_model, sam_tiny):
    model = fresh_model("sam_tiny")
    assert model.fingerprint() == sam_tiny.fingerprint()
    old = model.fingerprint()
    with torch.no_grad():
        model.sam.mask_decoder.iou_token.weight.add_(0.5)
    assert model.fingerprint() == old  # cached until told
    model.weights_changed("edited")
    assert model.fingerprint() != old
    assert model.weights_source == "edited"


def test_decode_batches_several_prompt_sets_per_image(sam_tiny):
    """Two prompt sets on one image give the same masks as decoding each alone."""
    feats, _ = _features_and_prompts(sam_tiny)
    coords = torch.tensor([[[120.0, 90.0]], [[30.0, 40.0]]])
    labels = torch.tensor([[1], [1]])
    with torch.no_grad():
        both, iou = sam_tiny.decode(feats, PromptBatch(coords=coords, labels=labels), False)
        one, _ = sam_tiny.decode(feats, PromptBatch(coords=coords[1:], labels=labels[1:]), False)
    assert both.shape == (2, 1, 256, 256) and iou.shape == (2, 1)  # the detail path's full-resolution masks
    torch.testing.assert_close(both[1:], one, atol=1e-5, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_device_is_cuda_and_cache_holds_bf16(sam_tiny):
    import copy

    from pge_sam.device import resolve_device

    device = resolve_device("auto")
    assert device.type == "cuda"
    model = copy.deepcopy(sam_tiny).to(device)
    pred = Predictor(model)
    assert pred.precision == "bf16"
    slice_u8 = np.random.default_rng(0).integers(0, 256, (40, 56), dtype=np.uint8)
    entry = pred.features(slice_u8)
    key = pred.key(slice_u8, 0, 0)
    assert key in pred.cache.keys("device")
    assert entry["embedding"].dtype == torch.bfloat16 and entry["embedding"].device.type == "cuda"
    from pge_sam.prompts import Point, SlicePrompts

    out = pred.decode(entry, SlicePrompts((Point(20, 28),)), (40, 56))
    assert out.mask.shape == (40, 56) and np.isfinite(out.logits).all()


def test_explicit_unavailable_device_is_an_error():
    from pge_sam.device import resolve_device

    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_a_lone_click_keeps_the_best_scored_mask_or_the_most_specific_one_near_it():
    from pge_sam.models.backbones import BACKBONES
    from pge_sam.models.base import first_click_choice

    iou = torch.tensor([[0.30, 0.90, 0.70], [0.80, 0.85, 0.20], [0.9, 0.1, 0.1]])
    logits = -torch.ones(3, 3, 8, 8)
    for row, areas in enumerate(((40, 64, 9), (0, 30, 5), (50, 4, 2))):  # mask m covers areas[m] pixels
        for m, area in enumerate(areas):
            logits[row, m].view(-1)[:area] = 1.0
    assert first_click_choice(iou, logits).tolist() == [1, 1, 0]  # margin 0: SAM's best-scored
    # within 0.3 of the best: row 0 masks 1, 2 -> the smaller 2; row 1: mask 0 is empty -> 1; row 2: only mask 0
    assert first_click_choice(iou, logits, 0.3).tolist() == [2, 1, 0]
    assert first_click_choice(iou, logits, 0.9).tolist() == [2, 2, 2]
    assert BACKBONES["vit_b"].first_click_margin == BACKBONES["tiny"].first_click_margin == 0.0  # SAM's rule

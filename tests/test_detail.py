"""The tiny backbone's high-resolution detail path (``pge_sam.models.detail``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pge_sam.models import weights as W
from pge_sam.models.base import PromptBatch
from pge_sam.models.detail import DETAIL_KEYS
from pge_sam.models.registry import build_model, drop_detail, load_base, save_base
from pge_sam.predictor import Predictor
from pge_sam.prompts import Point, SlicePrompts


def _features(model, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    with torch.no_grad():
        return model.encode(Predictor(model).preprocess([image]))


def test_features_are_cached_at_strides_4_2_1(sam_tiny):
    feats = _features(sam_tiny)
    s, c = sam_tiny.spec.img_size, sam_tiny.spec.prompt_dim
    assert feats["detail_s4"].shape == (1, c // 4, s // 4, s // 4)
    assert feats["detail_s2"].shape == (1, c // 8, s // 2, s // 2)
    assert feats["detail_s1"].shape == (1, c // 8, s, s)
    assert sam_tiny.extra_state_names() == DETAIL_KEYS
    assert sam_tiny.spec.mask_size == s


def test_an_untrained_detail_path_gives_sams_masks_upsampled(sam_tiny):
    """Zero-initialised projections and residual: the path adds nothing until it is trained."""
    feats = _features(sam_tiny)
    prompts = PromptBatch(torch.tensor([[[100.0, 80.0], [30.0, 20.0]]]), torch.tensor([[1, 0]]),
                          torch.tensor([[20.0, 10.0, 200.0, 150.0]]))
    with torch.no_grad():
        sharp, iou = sam_tiny.decode(feats, prompts, False)
        plain, plain_iou = sam_tiny._sam_decode(feats["embedding"], prompts, False)
    assert sharp.shape[-1] == 2 * plain.shape[-1] == sam_tiny.spec.img_size
    up = F.interpolate(plain, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(sharp, up, atol=1e-4, rtol=0)
    torch.testing.assert_close(iou, plain_iou)


def test_a_trained_detail_path_changes_the_masks_at_full_resolution(sam_tiny):
    model = copy.deepcopy(sam_tiny)
    with torch.no_grad():
        for p in model.sam.detail.parameters():
            p.add_(0.05 * torch.randn_like(p))
    feats = _features(model)
    prompts = PromptBatch(torch.tensor([[[100.0, 80.0]]]), torch.tensor([[1]]))
    with torch.no_grad():
        sharp, _ = model.decode(feats, prompts, False)
        plain, _ = model._sam_decode(feats["embedding"], prompts, False)
    up = F.interpolate(plain, scale_factor=2, mode="bilinear", align_corners=False)
    assert float((sharp - up).abs().max()) > 1e-3


def test_full_resolution_logits_fed_back_are_resized_for_the_prompt_encoder(sam_tiny):
    feats = _features(sam_tiny)
    s, low = sam_tiny.spec.img_size, sam_tiny.spec.lowres_size
    mask = torch.randn(1, 1, s, s)
    prompts = PromptBatch(torch.tensor([[[100.0, 80.0]]]), torch.tensor([[1]]), None, mask)
    resized = PromptBatch(prompts.coords, prompts.labels, None, F.interpolate(mask, (low, low), mode="area"))
    with torch.no_grad():
        a, _ = sam_tiny.decode(feats, prompts, False)
        b, _ = sam_tiny.decode(feats, resized, False)
    torch.testing.assert_close(a, b)


def test_a_base_file_without_the_detail_path_loads_as_the_model_it_was(tmp_path, sam_tiny):
    """A pre-detail file (sam_tiny v5) loads with the path removed; training keeps the path to learn it."""
    old = tmp_path / "old.safetensors"
    state = {k: v for k, v in sam_tiny.sam.state_dict().items() if not k.startswith("detail.")}
    W.save_safetensors(state, old, {"kind": "sam", "backbone": "tiny"}, half=True)
    plain = build_model("sam_tiny", pretrained=False, device="cpu")
    load_base(plain, old)
    assert not hasattr(plain.sam, "detail") and plain.spec.mask_size == plain.spec.lowres_size
    assert set(_features(plain)) == {"embedding"} and plain.extra_state_names() == ()
    kept = build_model("sam_tiny", pretrained=False, device="cpu")
    load_base(kept, old, new_detail_ok=True)
    assert hasattr(kept.sam, "detail")
    # a file written with the path round-trips it
    new = save_base(kept, tmp_path / "new.safetensors")
    again = build_model("sam_tiny", pretrained=False, device="cpu")
    with torch.no_grad():
        for p in again.sam.detail.parameters():
            p.fill_(1.0)
    load_base(again, new)
    for k, v in kept.sam.detail.state_dict().items():
        torch.testing.assert_close(again.sam.detail.state_dict()[k], v.half().float())


def test_drop_detail_changes_the_fingerprint(sam_tiny):
    model = copy.deepcopy(sam_tiny)
    before = model.fingerprint()
    drop_detail(model)
    assert model.fingerprint() != before


@pytest.mark.parametrize("name", ["sam_tiny", "pge_sam_tiny"])
def test_predictor_masks_are_full_resolution_and_feed_back_low_res(name, request):
    model = request.getfixturevalue(name)
    pred = Predictor(model)
    image = np.random.default_rng(1).integers(0, 256, (40, 56), dtype=np.uint8)
    feats = pred.features(image)
    prompts = SlicePrompts().with_point(Point(20, 28, True))
    out = pred.decode(feats, prompts, (40, 56))
    low = model.spec.lowres_size
    assert out.mask.shape == (40, 56) and out.low_res.shape == (1, 1, low, low)

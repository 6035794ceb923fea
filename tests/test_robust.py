"""RobustSAM: the release's sizes and key names, strict official loading, SAM's clean path, batched prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import seeded_model
from pge_sam.errors import MissingWeightsError, WeightsError
from pge_sam.models import robust_weights as RW
from pge_sam.models.backbones import get_backbone
from pge_sam.models.base import PromptBatch
from pge_sam.models.registry import build_model
from pge_sam.models.robust import RobustModules

# Added parameters of the released modules, from its module definitions (docs/model.md).
RELEASE_ADDED = {"vit_b": 59_445_732, "vit_l": 100_317_444, "vit_h": 152_789_028}


@pytest.fixture(scope="module")
def robust_tiny():
    return seeded_model("robust_sam_tiny")


def _prompts(points, labels=None, mask_input=None):
    coords = torch.tensor(points, dtype=torch.float32)
    labels = torch.ones(coords.shape[:2], dtype=torch.long) if labels is None else torch.tensor(labels)
    return PromptBatch(coords, labels, None, mask_input)


@pytest.mark.parametrize("backbone", ["vit_b", "vit_l", "vit_h"])
def test_added_parameters_and_keys_match_the_release(backbone):
    modules = RobustModules(get_backbone(backbone))
    assert sum(p.numel() for p in modules.parameters()) == RELEASE_ADDED[backbone]
    assert len(modules.state_dict()) == 89  # 80 parameters + 3 batch norms x 3 buffers


def test_official_names_round_trip_for_vit_b():
    torch.manual_seed(0)
    model = build_model("robust_sam_vit_b", pretrained=False, device="cpu")
    state = RW.to_official(model)
    added = {k: tuple(v.shape) for k, v in state.items() if RW.our_name(k)}
    assert len(state) == 403 and len(added) == 89
    prefix = "mask_decoder.fourier_first_layer_features."
    assert added[prefix + "dnc_block_combined.SEMBlock.maxpool_conv.0.selector.fc.0.weight"] == (768, 12288)
    assert added[prefix + "fgm_block.conv_layer.weight"] == (1536, 1536, 1, 1)
    assert added[prefix + "upsample_layer.3.weight"] == (256, 32, 2, 2)
    assert added["mask_decoder.fourier_mask_features.downsample_layer.0.weight"] == (64, 32, 3, 3)
    assert added["mask_decoder.custom_token_block.mlp.2.weight"] == (256, 64)
    assert added["mask_decoder.robust_mlp.layers.2.weight"] == (32, 256)
    assert RW.our_name("mask_decoder.fourier_mask_features.upsample_layer.0.weight") is None  # wrong tail name
    assert RW.our_name("mask_decoder.mask_tokens.weight") is None  # vanilla SAM key


def test_official_checkpoint_loads_strictly_and_reproduces_outputs(robust_tiny, tmp_path):
    state = {"module." + k: v.clone() for k, v in RW.to_official(robust_tiny).items()}  # as saved from DDP
    path = tmp_path / "robust.pth"
    torch.save(state, path)
    other = seeded_model("robust_sam_tiny", seed=1)
    assert other.fingerprint() != robust_tiny.fingerprint()
    RW.load_official(other, path)
    assert other.fingerprint() == robust_tiny.fingerprint()

    broken = dict(state)
    broken["module.mask_decoder.fourier_mask_features.upsample_layer.0.weight"] = broken.pop(
        "module.mask_decoder.fourier_mask_features.downsample_layer.0.weight")
    torch.save(broken, path)
    with pytest.raises(WeightsError, match="unexpected keys: mask_decoder.fourier_mask_features.upsample_layer"):
        RW.load_official(seeded_model("robust_sam_tiny"), path)

    torch.save({k: v for k, v in state.items() if "custom_robust_token" not in k}, path)
    with pytest.raises(WeightsError, match="no RobustSAM decoder keys"):
        RW.load_official(seeded_model("robust_sam_tiny"), path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="could not be read"):
        RW.load_official(seeded_model("robust_sam_tiny"), path)


def test_missing_weights_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("PGE_SAM_CACHE_DIR", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"robustsam_checkpoint_b\.pth from https://huggingface\.co/robustsam"):
        build_model("robust_sam_vit_b", device="cpu")
    with pytest.raises(MissingWeightsError, match="pge-sam train robust --backbone tiny"):
        build_model("robust_sam_tiny", adapter=tmp_path / "none.safetensors", device="cpu")


def test_clean_path_is_sam_and_robust_path_differs(robust_tiny):
    images = torch.randn(1, 3, 256, 256)
    prompts = _prompts([[[40.0, 60.0], [120.0, 100.0]]], [[1, 0]])
    with torch.no_grad():
        embedding, early = robust_tiny.encode_backbone(images)
        clean = robust_tiny.robust.image_features(embedding, early, clean=True)
        logits, iou, extras = robust_tiny.decode_robust(embedding, clean, prompts, multimask=True, clean=True)
        sam_logits, sam_iou = robust_tiny._sam_decode(embedding, prompts, multimask=True)
        robust = robust_tiny.decode(robust_tiny.encode(images), prompts, multimask=True)
    torch.testing.assert_close(logits, sam_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(iou, sam_iou, atol=1e-5, rtol=0)
    assert extras["tokens"].shape == (1, 4, 128) and extras["mask_features"].shape == (1, 16, 128, 128)
    assert robust[0].shape == (1, 3, 128, 128) and robust[1].shape == (1, 3)
    assert not torch.allclose(robust[0], logits)


def test_batched_prompt_sets_equal_one_at_a_time(robust_tiny):
    images = torch.randn(2, 3, 256, 256)
    points = [[[30.0, 40.0]], [[200.0, 90.0]], [[128.0, 128.0]], [[10.0, 250.0]]]  # 2 per image, image-major
    with torch.no_grad():
        feats = robust_tiny.encode(images)
        together = robust_tiny.decode(feats, _prompts(points), multimask=False)
        for i, p in enumerate(points):
            one = {k: v[i // 2 : i // 2 + 1] for k, v in feats.items()}
            alone = robust_tiny.decode(one, _prompts([p]), multimask=False)
            torch.testing.assert_close(together[0][i : i + 1], alone[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(together[1][i : i + 1], alone[1], atol=1e-5, rtol=0)


def test_eval_mode_features_do_not_depend_on_the_batch(robust_tiny):
    """Batch norm uses running statistics at inference, so an image's features ignore its batch mates."""
    images = torch.randn(3, 3, 256, 256)
    with torch.no_grad():
        together = robust_tiny.encode(images)["robust_features"]
        alone = robust_tiny.encode(images[1:2])["robust_features"]
    torch.testing.assert_close(together[1:2], alone, atol=1e-4, rtol=1e-4)


def test_session_caches_the_robust_features(robust_tiny, volume):
    from pge_sam.session import Session

    labels = np.zeros(volume.shape, np.uint16)
    session = Session(robust_tiny, volume, labels, prefetch=0)
    calls = []
    original = robust_tiny.robust.image_features
    robust_tiny.robust.image_features = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        session.add_point((2, 20, 28), positive=True)
        session.add_point((2, 22, 30), positive=True)
    finally:
        robust_tiny.robust.image_features = original
    assert len(calls) == 1  # per slice, not per click (the release recomputes them on every click)
    assert (labels[2] > 0).any()

"""Weights I/O: round trips, strict loading, corrupt files, metadata, checksums, downloads from a local server."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from pge_sam.errors import ChecksumError, MissingWeightsError, WeightsError
from pge_sam.models import weights as W
from pge_sam.models.registry import build_model, save_adapter, save_base
from pge_sam.predictor import Predictor
from pge_sam.prompts import Box, Point, SlicePrompts

SLICE = np.random.default_rng(3).integers(0, 256, (40, 56), dtype=np.uint8)
PROMPTS = SlicePrompts((Point(20, 28, True),), Box(5, 6, 30, 50))


def outputs(model):
    """(embedding, low-res logits) for a fixed slice and prompts."""
    pred = Predictor(model)
    feats = pred.features(SLICE)
    out = pred.decode(feats, PROMPTS, SLICE.shape)
    return feats["embedding"], out.low_res


def assert_same_outputs(a, b):
    for x, y in zip(outputs(a), outputs(b)):
        assert torch.equal(x, y)


def test_base_round_trip_full_precision(sam_tiny, tmp_path):
    path = save_base(sam_tiny, tmp_path / "base.safetensors", meta={"data": "test"}, half=False)
    loaded = build_model("sam_tiny", checkpoint=path, device="cpu")
    assert loaded.fingerprint() == sam_tiny.fingerprint() and str(path) in loaded.weights_source
    assert_same_outputs(sam_tiny, loaded)
    _, meta = W.read_safetensors(path)
    assert (meta["kind"], meta["backbone"], meta["data"], meta["dtype"]) == ("sam", "tiny", "test", "float32")


def test_base_round_trip_half_precision_matches_a_half_rounded_model(sam_tiny, fresh_model, tmp_path):
    path = save_base(sam_tiny, tmp_path / "base16.safetensors")  # fp16 storage by default
    loaded = build_model("sam_tiny", checkpoint=path, device="cpu")
    rounded = fresh_model("sam_tiny")
    with torch.no_grad():
        for t in rounded.sam.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    rounded.weights_changed()
    assert loaded.fingerprint() == rounded.fingerprint() != sam_tiny.fingerprint()
    assert_same_outputs(rounded, loaded)


def test_adapter_round_trip(fresh_model, tmp_path):
    model = fresh_model("pge_sam_tiny")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a "trained" adapter: the zero-initialised parts become non-zero
        for p in model.pge.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    model.weights_changed()
    base = save_base(model, tmp_path / "base.safetensors", half=False)
    adapter = save_adapter(model, tmp_path / "adapter.safetensors", meta={"steps": 5})
    loaded = build_model("pge_sam_tiny", checkpoint=base, adapter=adapter, device="cpu")
    assert loaded.fingerprint() == model.fingerprint()
    assert_same_outputs(model, loaded)
    tensors, meta = W.read_safetensors(adapter)
    assert meta["kind"] == "pge_adapter" and set(tensors) == set(model.pge.state_dict())
    assert not any(k.startswith("sam.") or k.startswith("image_encoder") for k in tensors)


def test_official_format_pth_loads_strictly(sam_tiny, tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(sam_tiny.sam.state_dict(), path)
    assert build_model("sam_tiny", checkpoint=path, device="cpu").fingerprint() == sam_tiny.fingerprint()
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": sam_tiny.sam.state_dict(), "epoch": 3}, wrapped)
    assert build_model("sam_tiny", checkpoint=wrapped, device="cpu").fingerprint() == sam_tiny.fingerprint()


def test_wrong_architecture_names_the_keys(sam_tiny, tmp_path):
    state = dict(sam_tiny.sam.state_dict())
    missing = dict(state)
    del missing["mask_decoder.iou_token.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match=r"missing keys: mask_decoder\.iou_token\.weight"):
        build_model("sam_tiny", checkpoint=tmp_path / "missing.pth", device="cpu")
    reshaped = dict(state)
    reshaped["prompt_encoder.extra_head.weight"] = torch.zeros(1, 128)
    reshaped["mask_decoder.iou_token.weight"] = torch.zeros(1, 64)
    W.save_safetensors(reshaped, tmp_path / "reshaped.safetensors", {"kind": "sam", "backbone": "tiny"})
    with pytest.raises(WeightsError) as info:
        build_model("sam_tiny", checkpoint=tmp_path / "reshaped.safetensors", device="cpu")
    msg = str(info.value)
    assert "unexpected keys: prompt_encoder.extra_head.weight" in msg
    assert "mask_decoder.iou_token.weight (1, 64) vs (1, 128)" in msg and "reshaped.safetensors" in msg


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_checkpoints(tmp_path, suffix):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(WeightsError, match="corrupt") as info:
        build_model("sam_tiny", checkpoint=path, device="cpu")
    assert str(path) in str(info.value)


def test_safetensors_metadata_must_match(sam_tiny, pge_sam_tiny, tmp_path):
    state = sam_tiny.sam.state_dict()
    W.save_safetensors(state, tmp_path / "vitb.safetensors", {"kind": "sam", "backbone": "vit_b"})
    with pytest.raises(WeightsError, match="backbone 'vit_b', not 'tiny'"):
        build_model("sam_tiny", checkpoint=tmp_path / "vitb.safetensors", device="cpu")
    adapter = save_adapter(pge_sam_tiny, tmp_path / "adapter.safetensors")
    with pytest.raises(WeightsError, match="'pge_adapter' weights, but 'sam'"):
        build_model("sam_tiny", checkpoint=adapter, device="cpu")
    base = save_base(sam_tiny, tmp_path / "base.safetensors")
    with pytest.raises(WeightsError, match="'sam' weights, but 'pge_adapter'"):
        build_model("pge_sam_tiny", checkpoint=base, adapter=base, device="cpu")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(WeightsError, match="no pge_sam metadata"):
        build_model("sam_tiny", checkpoint=tmp_path / "foreign.safetensors", device="cpu")


def test_missing_weights_name_the_file_and_the_command(monkeypatch, tmp_path, sam_tiny):
    from pge_sam.models import registry
    from pge_sam.models.backbones import build_sam, get_backbone

    monkeypatch.setenv("PGE_SAM_CACHE_DIR", str(tmp_path / "cache"))
    # build the tiny architecture under the vit_b name: the weights lookup is the real one, the build stays fast
    monkeypatch.setattr(registry, "build_sam", lambda spec: build_sam(get_backbone("tiny")))
    with pytest.raises(MissingWeightsError) as info:
        build_model("sam_vit_b", device="cpu")
    msg = str(info.value)
    assert str(tmp_path / "cache" / "sam_vit_b_01ec64.pth") in msg and "pge-sam weights fetch vit_b" in msg
    assert isinstance(info.value, FileNotFoundError)

    monkeypatch.setattr(W, "SHIPPED_DIR", tmp_path / "shipped")
    with pytest.raises(MissingWeightsError, match="sam_tiny.safetensors"):
        build_model("sam_tiny", device="cpu")
    base = save_base(sam_tiny, tmp_path / "base.safetensors")
    with pytest.raises(MissingWeightsError, match=r"pge_sam_tiny\.safetensors.*pge-sam train pge"):
        build_model("pge_sam_tiny", checkpoint=base, device="cpu")
    with pytest.raises(MissingWeightsError, match="nope.safetensors"):
        build_model("sam_tiny", checkpoint=tmp_path / "nope.safetensors", device="cpu")


def test_verify_sha256(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"pge-sam" * 1000)
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    W.verify_sha256(path, good)
    W.verify_sha256(path, good.upper())
    with pytest.raises(ChecksumError, match="pge-sam weights fetch"):
        W.verify_sha256(path, "0" * 64)
    with pytest.raises(ChecksumError):
        W.load_sam_checkpoint(None, path, "vit_b", expected_sha256="f" * 64)


def test_fetch_official_checks_the_sha256(local_server, tmp_path, monkeypatch):
    root, url = local_server
    payload = b"not really a checkpoint " * 4000
    (root / "ck.pth").write_bytes(payload)
    right = hashlib.sha256(payload).hexdigest()

    def official(sha):
        return {"vit_b": W.OfficialCheckpoint("vit_b", "sam_vit_b_01ec64.pth", f"{url}/ck.pth", sha, 1)}

    monkeypatch.setattr(W, "OFFICIAL", official("0" * 64))
    with pytest.raises(ChecksumError, match="sha256") as info:
        W.fetch_official("vit_b", tmp_path / "bad", progress=False)
    assert "0" * 64 in str(info.value)
    assert not (tmp_path / "bad" / "sam_vit_b_01ec64.pth").exists()  # nothing half-verified is left behind

    monkeypatch.setattr(W, "OFFICIAL", official(right))
    got = W.fetch_official("vit_b", tmp_path / "good", progress=False)
    assert got == tmp_path / "good" / "sam_vit_b_01ec64.pth" and got.read_bytes() == payload
    (root / "ck.pth").unlink()  # a second call uses the verified local copy, no download
    assert W.fetch_official("vit_b", tmp_path / "good", progress=False) == got

    monkeypatch.setattr(W, "OFFICIAL", {"vit_b": W.OfficialCheckpoint("vit_b", "x.pth", f"{url}/absent.pth", right, 1)})
    with pytest.raises(MissingWeightsError, match="could not download"):
        W.fetch_official("vit_b", tmp_path / "absent", progress=False)


def test_a_download_reports_mib_to_a_progress_object_and_a_cancel_keeps_nothing(served_vit_b, tmp_path):
    from pge_sam.errors import Cancelled
    from pge_sam.model_files import download_official
    from pge_sam.progress import RecordingProgress

    stopped = RecordingProgress(cancel_after=1)
    with pytest.raises(Cancelled, match="cancelled"):
        download_official("vit_b", tmp_path / "cancel", stopped)
    assert stopped.total == 4 and list((tmp_path / "cancel").iterdir()) == []  # no partial or temporary file

    progress = RecordingProgress()
    got = download_official("vit_b", tmp_path / "done", progress)
    assert got.read_bytes() == served_vit_b and (progress.total, progress.done) == (4, 4)


def test_download_missing_fetches_what_a_model_needs_and_says_what_is_still_missing(served_vit_b, tmp_path):
    """One answer for both front-ends: napari's Download and Slicer's Download weights call this."""
    from pge_sam.errors import InputError
    from pge_sam.model_files import download_missing

    said = download_missing("pge_sam_vit_b", tmp_path, None)  # the checkpoint downloads; the adapter is trained
    assert (tmp_path / "sam_vit_b_01ec64.pth").read_bytes() == served_vit_b
    assert said.startswith("Downloaded sam_vit_b_01ec64.pth (sha256 verified). PGE adapter")
    with pytest.raises(InputError, match="PGE adapter .* not found"):  # a second download would not help
        download_missing("pge_sam_vit_b", tmp_path, None)
    with pytest.raises(InputError, match="sam_vit_b needs no download: its files are in"):
        download_missing("sam_vit_b", tmp_path, None)
    with pytest.raises(InputError, match="needs no download"):
        download_missing("sam_tiny", tmp_path, None)  # shipped with pge-sam

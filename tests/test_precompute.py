"""Embeddings you can carry: ``pge-sam precompute`` writes a store, a fresh session loads it (no encoder
pass for its slices, identical masks), and a store made for another model or normalisation is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_io_cli import write_volume

from pge_sam.cli import main
from pge_sam.embeddings import (EmbeddingMismatch, PortableStore, describe, load_embeddings, save_embeddings,
                                signature_for)
from pge_sam.errors import CacheError
from pge_sam.io import read_image
from pge_sam.normalize import Normalization
from pge_sam.predictor import Predictor
from pge_sam.session import Session

NORM = "percentile:0.5,99.5"


@pytest.fixture(scope="module")
def scan(tmp_path_factory, volume, sam_tiny):
    """A small NIfTI and the random-init sam_tiny saved as a checkpoint the CLI can load."""
    from pge_sam.models.registry import save_base

    root = tmp_path_factory.mktemp("precompute")
    image = root / "scan.nii.gz"
    write_volume(image, volume)
    return image, save_base(sam_tiny, root / "sam_tiny_random.safetensors")


def fresh_session(checkpoint, image, norm=NORM, model="sam_tiny", **kwargs):
    """A session on its own model instance and its own (empty) cache: nothing shared with earlier sessions."""
    from pge_sam.models.registry import build_model

    loaded = read_image(image)
    predictor = Predictor(build_model(model, checkpoint=checkpoint, device="cpu"))
    return Session(predictor, loaded.array, spacing=loaded.spacing, normalization=Normalization.parse(norm),
                   prefetch=0, **kwargs)


def prompts(session):
    session.add_point((2, 20, 28))
    session.add_point((2, 8, 45), positive=False)
    session.add_box((4, 5, 5), (4, 35, 50))
    session.propagate()
    return session.labels.copy()


def test_precompute_then_a_fresh_session_encodes_nothing_and_gives_the_same_masks(scan, tmp_path, capsys):
    image, checkpoint = scan
    store = tmp_path / "scan-emb.zarr"
    assert main(["precompute", str(image), "--out", str(store), "--model", "sam_tiny", "--checkpoint",
                 str(checkpoint), "--device", "cpu", "--norm", NORM]) == 0
    printed = capsys.readouterr().out
    assert "6 slice embeddings along axis 0 (6 encoded)" in printed
    assert "model sam_tiny" in describe(store) and "axes [0]" in describe(store)

    expected = prompts(fresh_session(checkpoint, image))  # computed here, nothing loaded

    session = fresh_session(checkpoint, image)
    loaded = load_embeddings(session, store)
    assert session.disk is loaded and isinstance(loaded, PortableStore)
    labels = prompts(session)
    assert session.predictor.encoder_calls == 0 and session.predictor.encoded_slices == 0
    assert session.predictor.cache.stats.disk_hits > 0
    np.testing.assert_array_equal(labels, expected)
    assert labels.any()

    # a second run finds every slice in the store and encodes nothing
    assert main(["precompute", str(image), "--out", str(store), "--model", "sam_tiny", "--checkpoint",
                 str(checkpoint), "--device", "cpu"]) == 0
    assert "(0 encoded)" in capsys.readouterr().out


def test_segment_uses_the_store_from_the_command_line(scan, tmp_path, capsys):
    image, checkpoint = scan
    store = tmp_path / "emb"
    base = ["--model", "sam_tiny", "--checkpoint", str(checkpoint), "--device", "cpu"]
    assert main(["precompute", str(image), "--out", str(store), *base]) == 0
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(image), "--embeddings", str(store), *base, "--point", "2,20,28",
                 "--out", str(out)]) == 0
    assert out.is_file()
    assert main(["segment", str(image), "--embeddings", str(store), "--cache-dir", str(tmp_path / "c"), *base,
                 "--point", "2,20,28", "--out", str(tmp_path / "o.nii.gz"), "--force"]) == 2
    assert "not both" in capsys.readouterr().err


def test_memory_entries_are_saved_without_encoding_again_and_other_axes_on_demand(scan, tmp_path):
    image, checkpoint = scan
    session = fresh_session(checkpoint, image)
    session.precompute()  # axis 0, in memory only
    calls = session.predictor.encoded_slices
    summary = save_embeddings(session, tmp_path / "emb", axes=(0, 2))
    assert summary.copied == session.shape[0] and summary.encoded == session.shape[2]
    assert session.predictor.encoded_slices == calls + session.shape[2]
    assert summary.slices == session.shape[0] + session.shape[2]
    info = json.loads((tmp_path / "emb" / "pge-sam-store.json").read_text())
    assert info["tool"] == "pge-sam"

    other = fresh_session(checkpoint, image)
    load_embeddings(other, tmp_path / "emb")
    other.set_axis(2)
    other.add_point((3, 20, 28))
    assert other.predictor.encoder_calls == 0


def test_a_store_for_another_model_or_normalisation_is_refused_and_left_intact(scan, tmp_path):
    image, checkpoint = scan
    store = tmp_path / "emb"
    save_embeddings(fresh_session(checkpoint, image), store)
    before = sorted(p.relative_to(store) for p in store.rglob("*"))

    with pytest.raises(EmbeddingMismatch) as info:
        load_embeddings(fresh_session(checkpoint, image, norm="window:100,300"), store)
    message = str(info.value)
    assert "normalisation: store percentile:0.5,99.5, this session window:-50,250" in message  # (low, high) key
    assert "intensity range" in message and "model:" not in message
    assert set(info.value.differences) == {"normalization", "range"}

    from conftest import seeded_model

    from pge_sam.models.registry import save_base

    other_weights = save_base(seeded_model("sam_tiny", seed=1), tmp_path / "other.safetensors")
    with pytest.raises(EmbeddingMismatch, match=r"model weights \(fingerprint\): store \w+, this session \w+"):
        load_embeddings(fresh_session(other_weights, image), store)

    with pytest.raises(EmbeddingMismatch, match="refused|another image") as info:
        save_embeddings(fresh_session(checkpoint, image, norm="window:100,300"), store)
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before  # nothing written or deleted

    # a different volume (another shape) is named as such
    loaded = read_image(image)
    crop = fresh_session(checkpoint, image)
    crop = Session(crop.predictor, loaded.array[:, :30], normalization=Normalization.parse(NORM), prefetch=0)
    with pytest.raises(EmbeddingMismatch, match=r"volume shape: store \(6, 40, 56\), this session \(6, 30, 56\)"):
        load_embeddings(crop, store)


def test_not_a_store_and_an_empty_store_are_clear_errors(scan, tmp_path):
    image, checkpoint = scan
    session = fresh_session(checkpoint, image)
    with pytest.raises(CacheError, match="not a pge-sam embedding store"):
        load_embeddings(session, tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="did not write"):
        save_embeddings(session, busy)
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]


def test_signature_matches_what_a_session_disk_cache_writes(scan, tmp_path):
    image, checkpoint = scan
    session = fresh_session(checkpoint, image, disk_cache=tmp_path / "cache")
    stored = {k: v for k, v in session.disk.signature.items() if k != "format"}
    assert json.loads(json.dumps(stored)) == signature_for(session)


def test_gpu_precision_entries_serve_a_cpu_session(scan, tmp_path):
    """Entries stored under bf16 keys (what a CUDA machine writes) are found by an fp32 session, cast to fp32."""
    import dataclasses

    import torch

    image, checkpoint = scan
    session = fresh_session(checkpoint, image)
    store = tmp_path / "emb"
    save_embeddings(session, store)
    # rewrite the store as a GPU would have: same entries, bf16 keys and dtypes
    gpu = tmp_path / "gpu"
    from pge_sam.disk_cache import make_store

    make_store(gpu)
    gpu_store = PortableStore(gpu, signature_for(session))
    source = PortableStore(store, signature_for(session))
    predictor = session.predictor
    for index in range(session.shape[0]):
        key = predictor.key(session.slice_u8(index, 0), 0, index, session.aspect(0))
        entry = source.get(key)
        gpu_store.put(dataclasses.replace(key, precision="bf16"), {k: v.to(torch.bfloat16) for k, v in entry.items()})

    fresh = fresh_session(checkpoint, image)
    load_embeddings(fresh, gpu)
    fresh.add_point((2, 20, 28))
    assert fresh.predictor.encoder_calls == 0
    key = fresh.predictor.key(fresh.slice_u8(2, 0), 0, 2, fresh.aspect(0))
    assert all(t.dtype == torch.float32 for t in fresh.disk.get(key).values())

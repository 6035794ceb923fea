"""Embedding cache: byte budget, LRU, host tier, revisits, invalidation, zarr disk tier across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from pge_sam.cache import CacheKey, EmbeddingCache, content_hash, nbytes
from pge_sam.disk_cache import DiskStore
from pge_sam.errors import CacheWarning, Cancelled
from pge_sam.normalize import Normalization
from pge_sam.predictor import Predictor
from pge_sam.progress import RecordingProgress
from pge_sam.session import Session

ENTRY_BYTES = 4 * 250  # one float32 tensor of 250 values


def key(i: int, **kw) -> CacheKey:
    fields = dict(content=f"c{i}", axis=0, index=i, model="m", weights="w", input_size=256, precision="fp32")
    fields.update(kw)
    return CacheKey(**fields)


def entry(value: float, n: int = 250) -> dict:
    return {"embedding": torch.full((n,), float(value))}


def test_device_tier_respects_the_byte_budget():
    cache = EmbeddingCache("cpu", device_budget=3 * ENTRY_BYTES + 10)
    for i in range(20):
        cache.put(key(i), entry(i))
        assert cache.device_bytes <= 3 * ENTRY_BYTES + 10
    assert [k.index for k in cache.keys()] == [17, 18, 19]
    assert cache.stats.device_evictions == 17
    assert cache.get(key(5)) is None and cache.stats.misses == 1
    assert float(cache.get(key(19))["embedding"][0]) == 19.0 and cache.stats.device_hits == 1


def test_an_entry_larger_than_the_budget_is_kept_alone():
    cache = EmbeddingCache("cpu", device_budget=ENTRY_BYTES // 2)
    cache.put(key(0), entry(0))
    assert cache.keys() == [key(0)] and cache.device_bytes == ENTRY_BYTES  # the single-entry rule
    cache.put(key(1), entry(1))
    assert cache.keys() == [key(1)] and cache.device_bytes == ENTRY_BYTES


def test_lru_touching_an_entry_protects_it():
    cache = EmbeddingCache("cpu", device_budget=3 * ENTRY_BYTES)
    for i in range(3):
        cache.put(key(i), entry(i))
    assert cache.get(key(0)) is not None  # 0 becomes the most recent
    cache.put(key(3), entry(3))
    assert [k.index for k in cache.keys()] == [2, 0, 3]  # 1 was the least recently used
    assert not cache.contains(key(1))
    cache.put(key(2), entry(2.5))  # re-putting refreshes too, and replaces the value
    cache.put(key(4), entry(4))
    assert [k.index for k in cache.keys()] == [3, 2, 4]
    assert float(cache.get(key(2))["embedding"][0]) == 2.5


def test_host_tier_takes_device_evictions_and_promotes_back():
    cache = EmbeddingCache("cpu", device_budget=2 * ENTRY_BYTES, host_budget=2 * ENTRY_BYTES)
    for i in range(3):
        cache.put(key(i), entry(i))
    assert [k.index for k in cache.keys("device")] == [1, 2]
    assert [k.index for k in cache.keys("host")] == [0]
    assert key(0) in cache
    got = cache.get(key(0))
    assert float(got["embedding"][0]) == 0.0
    assert cache.stats.host_hits == 1 and cache.stats.device_hits == 0
    assert [k.index for k in cache.keys("device")] == [2, 0]  # promoted, evicting 1 to the host
    assert [k.index for k in cache.keys("host")] == [1]
    for i in (3, 4):
        cache.put(key(i), entry(i))
    assert cache.host_bytes <= 2 * ENTRY_BYTES
    assert [k.index for k in cache.keys("host")] == [2, 0] and cache.stats.host_evictions == 1
    assert cache.get(key(1)) is None  # evicted from both tiers


def test_without_a_host_budget_evictions_are_dropped():
    cache = EmbeddingCache("cpu", device_budget=ENTRY_BYTES, host_budget=0)
    cache.put(key(0), entry(0))
    cache.put(key(1), entry(1))
    assert cache.keys("host") == [] and cache.host_bytes == 0
    assert cache.get(key(0)) is None


def test_content_hash_sees_values_and_shape():
    a = np.zeros((4, 6), np.uint8)
    b = a.copy()
    b[3, 5] = 1
    assert content_hash(a) == content_hash(a.copy())
    assert content_hash(a) != content_hash(b)
    assert content_hash(a) != content_hash(a.reshape(6, 4))
    assert nbytes({"a": torch.zeros(3, dtype=torch.bfloat16), "b": torch.zeros(2)}) == 3 * 2 + 2 * 4


def test_revisiting_a_slice_runs_no_encoder_and_edits_invalidate(sam_tiny, volume):
    vol = volume.copy()
    pred = Predictor(sam_tiny)
    session = Session(pred, vol, prefetch=0)
    session.add_point((1, 20, 28))
    assert pred.encoder_calls == 1
    session.add_point((1, 22, 30))
    session.add_point((2, 20, 28))
    assert pred.encoder_calls == 2
    session.add_point((1, 5, 5), positive=False)  # back to slice 1: served from the cache
    assert pred.encoder_calls == 2 and pred.cache.stats.device_hits >= 2
    vol[1, 10:20, 10:20] += 80.0  # the caller edits the volume: slice 1 must be re-encoded
    session.add_point((1, 20, 28))
    assert pred.encoder_calls == 3
    session.add_point((2, 21, 28))
    assert pred.encoder_calls == 3
    assert session.precompute(0, 3) == 1 and pred.encoder_calls == 4  # only slice 0 was missing


def test_precompute_is_cancellable_and_prefetch_fills_the_cache(sam_tiny, volume):
    pred = Predictor(sam_tiny, batch_size=1)
    session = Session(pred, volume, prefetch=1)
    with pytest.raises(Cancelled):
        session.precompute(progress=RecordingProgress(cancel_after=1))
    assert pred.encoder_calls == 1 and pred.cache.contains(pred.key(session.slice_u8(0), 0, 0))
    try:
        session.focus(3)  # encodes 3, then its neighbours 4 and 2, in a background thread
        deadline = time.monotonic() + 60
        while pred.encoded_slices < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pred.encoded_slices == 4
        assert session.precompute(0, 5) == 1  # only slice 1 is left
        assert pred.encoded_slices == 5
    finally:
        pred.close()


def test_pixel_aspect_is_part_of_the_key(sam_tiny):
    u8 = np.random.default_rng(2).integers(0, 256, (6, 56), dtype=np.uint8)
    pred = Predictor(sam_tiny)
    square = pred.features(u8, 1, 20)
    stretched = pred.features(u8, 1, 20, aspect=3.125)
    assert pred.encoder_calls == 2 and not torch.equal(square["embedding"], stretched["embedding"])
    pred.features(u8, 1, 20, aspect=1.02)  # within the tolerance: square pixels, a hit
    pred.features(u8, 1, 20, aspect=3.125)
    assert pred.encoder_calls == 2


def test_changed_weights_invalidate(fresh_model, volume):
    model = fresh_model("sam_tiny")
    pred = Predictor(model)
    session = Session(pred, volume, prefetch=0)
    session.add_point((3, 20, 28))
    before = pred.features(session.slice_u8(3), 0, 3)["embedding"].clone()
    assert pred.encoder_calls == 1
    with torch.no_grad():
        model.sam.image_encoder.neck[0].weight.mul_(1.5)
    model.weights_changed()
    session.add_point((3, 21, 28))
    assert pred.encoder_calls == 2
    after = pred.features(session.slice_u8(3), 0, 3)["embedding"]
    assert not torch.allclose(before, after)


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from pge_sam.models.registry import build_model
    from pge_sam.predictor import Predictor
    from pge_sam.session import Session

    torch.manual_seed(0)
    model = build_model("sam_tiny", pretrained=False, device="cpu")
    vol = np.load(sys.argv[1])
    pred = Predictor(model)
    session = Session(pred, vol, np.zeros(vol.shape, np.uint16), prefetch=0, disk_cache=sys.argv[2])
    session.add_point((1, 20, 28))
    session.precompute(0, 2)
    print(model.fingerprint(), pred.encoder_calls)
    """
)


def test_disk_tier_survives_a_new_process_and_rejects_a_mismatch(sam_tiny, volume, tmp_path):
    vol_path, store = tmp_path / "vol.npy", tmp_path / "embeddings.zarr"
    np.save(vol_path, volume)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", WRITER, str(vol_path), str(store)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    fingerprint, calls = done.stdout.split()
    assert fingerprint == sam_tiny.fingerprint() and calls == "2"

    pred = Predictor(sam_tiny)
    session = Session(pred, volume, prefetch=0, disk_cache=store)
    assert session.disk.reset_reason is None
    session.add_point((1, 20, 28))
    assert pred.cache.stats.disk_hits == 1 and pred.encoder_calls == 0
    assert session.precompute(0, 2) == 0 and pred.encoder_calls == 0
    # the stored tensors are the ones the encoder gives for this slice
    u8 = session.slice_u8(1)
    with torch.no_grad():
        fresh = sam_tiny.encode(pred.preprocess([u8]))["embedding"][0]
    torch.testing.assert_close(pred.features(u8, 0, 1)["embedding"], fresh, atol=1e-5, rtol=1e-5)
    old_key = pred.key(u8, 0, 1)

    # another normalisation: the store's entries are dropped and recomputed, never served
    pred2 = Predictor(sam_tiny)
    with pytest.warns(CacheWarning, match="normalization"):
        other = Session(pred2, volume, prefetch=0, disk_cache=store, normalization=Normalization.percentile(2, 98))
    assert other.disk.reset_reason is not None and "normalization" in other.disk.reset_reason
    assert not other.disk.has(old_key)
    other.add_point((1, 20, 28))
    assert pred2.encoder_calls == 1 and pred2.cache.stats.disk_hits == 0
    assert other.disk.has(pred2.key(other.slice_u8(1), 0, 1))
    # reopening with the new signature serves from disk again
    pred3 = Predictor(sam_tiny)
    again = Session(pred3, volume, prefetch=0, disk_cache=store, normalization=Normalization.percentile(2, 98))
    assert again.disk.reset_reason is None
    again.add_point((1, 20, 28))
    assert pred3.cache.stats.disk_hits == 1 and pred3.encoder_calls == 0


def test_disk_store_ignores_incomplete_entries_and_keeps_dtypes(tmp_path):
    store = DiskStore(tmp_path / "s.zarr", {"model": "m"})
    k = key(0)
    store.put(k, {"embedding": torch.arange(6, dtype=torch.float32).reshape(2, 3).to(torch.bfloat16),
                  "early_proj": torch.ones(2)})
    got = store.get(k)
    assert got["embedding"].dtype == torch.bfloat16 and got["early_proj"].dtype == torch.float32
    assert torch.equal(got["embedding"].float(), torch.arange(6.0).reshape(2, 3))
    store._group[k.digest()].attrs["complete"] = False  # as if the writer crashed mid-entry
    assert not store.has(k) and store.get(k) is None
    assert DiskStore(tmp_path / "t.zarr", {"model": "m"}).get(key(1)) is None

"""Per-slice embedding cache: device tier (byte budget, LRU) -> host tier -> optional zarr disk tier.

An entry holds every prompt-independent tensor a model variant needs for one
slice (``{"embedding": (C, h, w), "early_proj": (c_l, h, w), ...}``, no batch
dim). Keys (:class:`CacheKey`) carry a fast content hash of the *normalised*
slice, the slicing axis and index, the model name and weights fingerprint,
the input size and the precision, so a changed slice, model or normalisation
never hits a stale entry.

* Device tier: tensors on the model's device, least-recently-used entries
  evicted once ``device_budget`` bytes are exceeded (the most recent entry is
  always kept, even if alone it exceeds the budget).
* Host tier: entries evicted from the device land here (pinned memory on
  CUDA), with their own LRU budget; a hit moves them back to the device.
* Disk tier (:class:`~pge_sam.disk_cache.DiskStore`): write-through zarr
  store that survives restarts, in a subfolder pge-sam made itself; a
  signature mismatch drops its entries (nothing else), damaged entries are
  detected by checksum and recomputed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .disk_cache import DiskStore

Tensors = dict  # name -> torch.Tensor


@dataclass(frozen=True)
class CacheKey:
    content: str
    axis: int
    index: int
    model: str
    weights: str
    input_size: int
    precision: str
    extras: tuple = ()

    def digest(self) -> str:
        """Stable hex name of the key (used as the zarr group name)."""
        return hashlib.blake2b(repr(self).encode(), digest_size=16).hexdigest()


def content_hash(slice_u8: np.ndarray) -> str:
    """Fast hash (blake2b-128) of a normalised (H, W) uint8 slice and its shape."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(slice_u8.shape).encode())
    h.update(np.ascontiguousarray(slice_u8).data)
    return h.hexdigest()


def nbytes(entry: Tensors) -> int:
    return int(sum(t.element_size() * t.nelement() for t in entry.values()))


@dataclass
class CacheStats:
    device_hits: int = 0
    host_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    device_evictions: int = 0
    host_evictions: int = 0


class _LRU:
    """Byte-budgeted LRU of entries (not thread-safe; the cache locks)."""

    def __init__(self, budget: int) -> None:
        self.budget = int(budget)
        self.entries: OrderedDict[CacheKey, Tensors] = OrderedDict()
        self.bytes = 0

    def pop(self, key: CacheKey) -> Tensors | None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.bytes -= nbytes(entry)
        return entry

    def get(self, key: CacheKey) -> Tensors | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def add(self, key: CacheKey, entry: Tensors) -> list[tuple[CacheKey, Tensors]]:
        """Insert and return the evicted (key, entry) pairs, oldest first."""
        self.pop(key)
        self.entries[key] = entry
        self.bytes += nbytes(entry)
        evicted = []
        while self.bytes > self.budget and len(self.entries) > 1:
            old_key, old = self.entries.popitem(last=False)
            self.bytes -= nbytes(old)
            evicted.append((old_key, old))
        return evicted


class EmbeddingCache:
    """Three-tier cache of per-slice tensors. Thread-safe (the prefetch thread writes into it)."""

    def __init__(self, device="cpu", device_budget: int = 1 << 30, host_budget: int = 0,
                 disk: "DiskStore | None" = None) -> None:
        import torch

        self.device = torch.device(device)
        self._device = _LRU(device_budget)
        self._host = _LRU(host_budget)
        self.disk = disk
        self.stats = CacheStats()
        self._lock = threading.RLock()

    @classmethod
    def default_for(cls, device) -> "EmbeddingCache":
        """2 GiB on the GPU plus 8 GiB of host memory on CUDA; 1 GiB (and no separate host tier) elsewhere."""
        if getattr(device, "type", str(device)) == "cuda":
            return cls(device, device_budget=2 << 30, host_budget=8 << 30)
        return cls(device, device_budget=1 << 30, host_budget=0)

    # -- queries ---------------------------------------------------------------------------
    @property
    def device_bytes(self) -> int:
        return self._device.bytes

    @property
    def host_bytes(self) -> int:
        return self._host.bytes

    def keys(self, tier: str = "device") -> list[CacheKey]:
        """Keys of a tier in LRU order (oldest first)."""
        with self._lock:
            return list((self._device if tier == "device" else self._host).entries)

    def contains(self, key: CacheKey, disk: "DiskStore | None" = None) -> bool:
        """Whether any tier (memory, or ``disk``/the cache's store) holds ``key``, without promoting it."""
        disk = disk if disk is not None else self.disk
        with self._lock:
            if key in self._device.entries or key in self._host.entries:
                return True
        return disk is not None and disk.has(key)

    def __contains__(self, key: CacheKey) -> bool:
        return self.contains(key)

    def get(self, key: CacheKey, disk: "DiskStore | None" = None) -> Tensors | None:
        """The entry on the cache's device (promoted from host or disk), or ``None`` on a miss.

        ``disk`` overrides the cache's own disk store for this call (sessions own their stores).
        """
        disk = disk if disk is not None else self.disk
        with self._lock:
            entry = self._device.get(key)
            if entry is not None:
                self.stats.device_hits += 1
                return entry
            entry = self._host.pop(key)
            if entry is not None:
                self.stats.host_hits += 1
                return self._to_device(key, entry)
        if disk is not None:
            loaded = disk.get(key)
            if loaded is not None:
                with self._lock:
                    self.stats.disk_hits += 1
                    return self._to_device(key, loaded)
        with self._lock:
            self.stats.misses += 1
        return None

    def put(self, key: CacheKey, entry: Tensors, disk: "DiskStore | None" = None) -> None:
        """Store an entry (tensors without batch dim) in the device tier and, if there is one, on disk."""
        disk = disk if disk is not None else self.disk
        with self._lock:
            self._insert_device(key, {k: v.to(self.device) for k, v in entry.items()})
        if disk is not None:
            disk.put(key, entry)

    def clear(self) -> None:
        with self._lock:
            self._device = _LRU(self._device.budget)
            self._host = _LRU(self._host.budget)

    # -- internals --------------------------------------------------------------------------
    def _to_device(self, key: CacheKey, entry: Tensors) -> Tensors:
        moved = {k: v.to(self.device, non_blocking=True) for k, v in entry.items()}
        self._insert_device(key, moved)
        return moved

    def _insert_device(self, key: CacheKey, entry: Tensors) -> None:
        for old_key, old in self._device.add(key, entry):
            self.stats.device_evictions += 1
            if self._host.budget > 0:
                host = {k: _to_host(v) for k, v in old.items()}
                self.stats.host_evictions += len(self._host.add(old_key, host))


def _to_host(t):
    t = t.detach().to("cpu")
    return t.pin_memory() if _cuda_available() else t


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()

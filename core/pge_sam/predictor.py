"""Predictor: one loaded model + its embedding cache; expensive ``encode`` vs cheap ``decode``.

Several sessions can share one predictor (and so one cache): build it once,
``Predictor(model)``, and pass it to each :class:`~pge_sam.session.Session`
(a session given a bare model makes its own). There is no hidden registry.
Encoding runs batched under bf16 autocast on CUDA; a background thread
prefetches slices a session is likely to visit next, and each
:meth:`Predictor.prefetch` call returns a :class:`Prefetch` handle its caller
cancels (a session cancels only its own). Encoding and decoding use separate
modules (image encoder vs prompt encoder + mask decoder) and separate locks,
so a click is decoded at once even while a neighbour slice is being prefetched.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .cache import CacheKey, EmbeddingCache, content_hash
from .device import encoder_autocast, precision_for
from .disk_cache import DiskStore
from .errors import InputError
from .models.base import SegmentationModel, first_click_choice
from .progress import Progress, check_cancel, ensure
from .prompts import InputTransform, SlicePrompts, to_batch

HALF_PREFIXES = ("detail_", "ref_")  # cached in fp16 on CPU too
SliceJob = Callable[[], tuple[np.ndarray, int, int]]  # -> (slice uint8 (H, W), axis, index)
# Slice jobs may return a 4th item, the pixel aspect ratio (row / column spacing).


@dataclass
class Prediction:
    """Result of one decode on a slice of size (H, W).

    ``mask``: (H, W) bool; ``logits``: (H, W) float32 mask logits at slice
    resolution; ``low_res``: (1, C, L, L) float32 tensor to feed back as the
    next ``mask_input`` on this slice: channel 0 the mask logits, any further
    channels the variant's memory of this round (SAM-REF: its error map; see
    :func:`mask_channel` for passing a mask to *another* slice); ``iou``: the
    model's IoU estimate of the chosen mask; ``candidates``: how many masks the
    model proposed (3 for a lone click on SAM's decoder, else 1).
    """

    mask: np.ndarray
    logits: np.ndarray
    low_res: torch.Tensor
    iou: float
    candidates: int = 1


class Prefetch:
    """Handle of one background prefetch: :meth:`cancel` drops the slices not started yet."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self.future: Future | None = None

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def result(self, timeout: float | None = None) -> int:
        """Slices encoded (waits for the background work to end)."""
        return self.future.result(timeout) if self.future is not None else 0


class Predictor:
    """One model and its embedding cache. ``cache``: an :class:`EmbeddingCache` on the model's device
    (default: :meth:`EmbeddingCache.default_for` that device); it is used as given, never modified."""

    def __init__(self, model: SegmentationModel, cache: EmbeddingCache | None = None,
                 batch_size: int | None = None) -> None:
        self.model = model.eval()
        self.device = model.device
        self.precision = precision_for(self.device)
        if cache is not None and not _same_device(cache.device, self.device):
            raise InputError(f"the embedding cache is on {cache.device} but the model on {self.device}; "
                             f"create the cache with EmbeddingCache(device=model.device)")
        self.cache = cache if cache is not None else EmbeddingCache.default_for(self.device)
        # Batches pay off on GPUs; on a 2-core CPU a batch of 1 is fastest (docs/performance.md).
        self.batch_size = batch_size or (8 if self.device.type == "cuda" else 1)
        self.encoder_calls = 0  # forward passes of the image encoder (batches)
        self.encoded_slices = 0
        self._encode_lock = threading.RLock()
        self._decode_lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = 0  # bumped by close(): every pending prefetch stops

    # -- keys and preprocessing ---------------------------------------------------------------
    def key(self, slice_u8: np.ndarray, axis: int, index: int, aspect: float = 1.0) -> CacheKey:
        spec = self.model.spec
        aspect = self.transform(slice_u8.shape, aspect).aspect
        return CacheKey(content_hash(slice_u8), int(axis), int(index), self.model.name, self.model.fingerprint(),
                        spec.img_size, self.precision,
                        self.model.extra_state_names() + ((f"aspect={aspect:.4f}",) if aspect != 1.0 else ()))

    def transform(self, original_size: tuple[int, int], aspect: float = 1.0) -> InputTransform:
        return InputTransform(self.model.spec.img_size, tuple(original_size), aspect)

    def preprocess(self, slices_u8: Sequence[np.ndarray], aspect: float = 1.0) -> torch.Tensor:
        """(B, 3, S, S) float tensor on the device: resize-longest-side, SAM pixel normalisation, padding."""
        batch = []
        for s in slices_u8:
            img = self.transform(s.shape, aspect).image(s)
            t = torch.as_tensor(img, device=self.device).permute(2, 0, 1).contiguous()
            batch.append(self.model.sam.preprocess(t[None].float())[0])
        return torch.stack(batch)

    def is_cached(self, slice_u8: np.ndarray, axis: int = 0, index: int = 0, disk: DiskStore | None = None,
                  aspect: float = 1.0) -> bool:
        """Whether :meth:`features` of this (H, W) uint8 slice would be a cache hit (memory or ``disk``)."""
        return self.cache.contains(self.key(slice_u8, axis, index, aspect), disk)

    # -- expensive verbs ----------------------------------------------------------------------------
    def features(self, slice_u8: np.ndarray, axis: int = 0, index: int = 0, disk: DiskStore | None = None,
                 aspect: float = 1.0) -> dict:
        """Cached per-slice tensors for an (H, W) uint8 slice (encodes on a miss).

        ``disk``: a session's zarr store, read on a memory miss and written after
        encoding; ``aspect``: row / column pixel spacing (see :class:`InputTransform`).
        """
        key = self.key(slice_u8, axis, index, aspect)
        entry = self.cache.get(key, disk)
        if entry is None:
            entry = self._encode([slice_u8], [key], disk, aspect)[0]
        return entry

    def encode_many(self, jobs: Sequence[SliceJob], progress: Progress | None = None,
                    disk: DiskStore | None = None) -> int:
        """Encode every slice a job yields that is not cached, in batches; returns the number encoded.

        ``progress.update`` is called per slice (cached ones included); cancellation
        is checked between batches and raises :class:`~pge_sam.errors.Cancelled`.
        """
        progress = ensure(progress)
        progress.start(len(jobs))
        pending: list[tuple[np.ndarray, CacheKey]] = []
        pending_aspect = 1.0
        encoded = 0

        def flush() -> None:
            nonlocal pending, encoded
            if pending:
                check_cancel(progress, "precompute")
                self._encode(*zip(*pending), disk, pending_aspect)
                encoded += len(pending)
                progress.update(len(pending))
                pending = []

        for job in jobs:
            check_cancel(progress, "precompute")
            slice_u8, axis, index, *rest = job()
            aspect = rest[0] if rest else 1.0
            key = self.key(slice_u8, axis, index, aspect)
            if self.cache.contains(key, disk):
                progress.update(1)
                continue
            if pending and (aspect != pending_aspect or len(pending) == self.batch_size):
                flush()  # one batch shares one aspect (one resampling)
            pending_aspect = aspect
            pending.append((slice_u8, key))
        flush()
        return encoded

    def _encode(self, slices: Sequence[np.ndarray], keys: Sequence[CacheKey], disk: DiskStore | None = None,
                aspect: float = 1.0) -> list[dict]:
        with self._encode_lock, torch.inference_mode():
            images = self.preprocess(slices, aspect)
            with encoder_autocast(self.device):
                out = self.model.encode(images)
            self.encoder_calls += 1
            self.encoded_slices += len(slices)
        store_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        entries = []
        for i, key in enumerate(keys):
            # the full-resolution detail and refiner inputs dominate a tiny slice's bytes; fp16 keeps them at half
            entry = {k: v[i].to(torch.float16 if k.startswith(HALF_PREFIXES) and store_dtype == torch.float32
                                else store_dtype).clone()
                     for k, v in out.items()}
            self.cache.put(key, entry, disk)
            entries.append(entry)
        return entries

    # -- background prefetch --------------------------------------------------------------------
    def prefetch(self, jobs: Sequence[SliceJob], disk: DiskStore | None = None) -> Prefetch:
        """Encode these slices in a background thread, one at a time, until the returned handle is cancelled.

        The caller supersedes its own earlier prefetch by cancelling that handle
        (a :class:`~pge_sam.session.Session` does); other callers' prefetches go on.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pge-sam-prefetch")
        handle, closed = Prefetch(), self._closed

        def run() -> int:
            done = 0
            for job in jobs:
                if handle.cancelled or closed != self._closed:
                    break
                slice_u8, axis, index, *rest = job()
                aspect = rest[0] if rest else 1.0
                key = self.key(slice_u8, axis, index, aspect)
                if not self.cache.contains(key, disk):
                    self._encode([slice_u8], [key], disk, aspect)
                    done += 1
            return done

        handle.future = self._executor.submit(run)
        return handle

    def close(self, wait: bool = False) -> None:
        """Stop the prefetch thread: pending prefetches are dropped; an encode already running
        finishes in the background unless ``wait``."""
        self._closed += 1
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None

    # -- cheap verb ------------------------------------------------------------------------------------
    def decode(self, features: dict, prompts: SlicePrompts, original_size: tuple[int, int],
               mask_input: torch.Tensor | None = None, multimask: bool | None = None,
               aspect: float = 1.0, candidate: int = 0) -> Prediction:
        """Decode one slice's prompts against its cached ``features``.

        ``mask_input``: previous low-res logits (1, 1, L, L) or ``None``.
        ``multimask=None`` asks for three masks only for a single point with no
        box and no previous mask, as SAM does; which one is kept, the backbone's
        ``first_click_margin`` says (:func:`~pge_sam.models.base.first_click_choice`).
        ``candidate``: keep another of those masks instead: 0 the one chosen so,
        then the others by predicted IoU, cycling.
        """
        if multimask is None:
            multimask = len(prompts.points) == 1 and prompts.box is None and mask_input is None
        transform = self.transform(original_size, aspect)
        with self._decode_lock, torch.inference_mode():
            feats = {k: v[None].float() for k, v in features.items()}
            if mask_input is not None:
                mask_input = mask_input.to(self.device, torch.float32)
            batch = to_batch(prompts, transform, mask_input, self.device)
            low_res, iou, *memory = self.model.decode(feats, batch, multimask)
            order = [0]
            if multimask and low_res.shape[1] > 1:
                first = int(first_click_choice(iou, low_res, self.model.spec.first_click_margin,
                                               self.model.sam.mask_threshold)[0])
                order = [first] + [int(i) for i in torch.argsort(iou[0], descending=True) if int(i) != first]
            best = order[candidate % len(order)]
            low_res = low_res[:, best : best + 1]
            logits = self.model.sam.postprocess_masks(low_res, transform.input_size, transform.square_size)
            if transform.square_size != tuple(original_size):
                logits = torch.nn.functional.interpolate(logits, tuple(original_size), mode="bilinear",
                                                         align_corners=False)
            lowres = self.model.spec.lowres_size  # the detail path's full-resolution logits are fed back at L
            feed = torch.nn.functional.interpolate(low_res.float(), (lowres, lowres), mode="area") \
                if low_res.shape[-1] != lowres else low_res.float().clone()
            if memory:  # a variant's per-slice memory rides along as further channels (SAM-REF: its error map)
                feed = torch.cat([feed, memory[0].float()], 1)
        logits_np = logits[0, 0].float().cpu().numpy()
        return Prediction(logits_np > self.model.sam.mask_threshold, logits_np, feed, float(iou[0, best]), len(order))


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` (the current device) are the same device."""
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def as_predictor(model_or_predictor) -> Predictor:
    """``model_or_predictor`` itself when it is a :class:`Predictor`, else a new one (with its own cache) for the model.

    To share one cache between sessions, build the predictor once and pass it to each.
    """
    if isinstance(model_or_predictor, Predictor):
        return model_or_predictor
    return Predictor(model_or_predictor)


def mask_channel(feedback: torch.Tensor | None) -> torch.Tensor | None:
    """The mask logits of a :attr:`Prediction.low_res` without the variant's memory channels: what a
    neighbouring slice may receive as its ``mask_input`` (a memory describes one slice's click rounds)."""
    return None if feedback is None else feedback[:, :1]

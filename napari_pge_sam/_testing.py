"""Test helpers: the shipped tiny model, a synthetic volume and a deterministic stand-in predictor for CPU tests.

:class:`RegionGrowPredictor` has the interface of
:class:`pge_sam.predictor.Predictor` (encode = cache the normalised slice;
decode = prompts -> mask) but segments by a fixed rule instead of a network,
so bookkeeping assertions that need an exact rule (a small box inside an
object, a click on the background, a slowed-down propagation to cancel) hold:

* seeds: the positive points, or the box centre when there is no positive point;
* mask: pixels whose uint8 value is within ``tolerance`` of a seed's value and
  4-connected to that seed, restricted to the box when there is one;
* a negative point removes the pixels nearer to it than to every seed.

:func:`ellipsoid_volume` is a small synthetic volume; :func:`tiny_model` (and
:func:`segmenting_model`, used by the geometric tests) builds the shipped
default tiny model. Importing this module imports torch (through ``pge_sam.predictor``); the
plugin itself never imports it.
"""

from __future__ import annotations

import threading

import numpy as np
from scipy import ndimage

from pge_sam.cache import content_hash
from pge_sam.predictor import Prediction, Predictor
from pge_sam.prompts import SlicePrompts


class _DictCache:
    """Minimal stand-in for :class:`pge_sam.cache.EmbeddingCache` (unbounded dict)."""

    def __init__(self) -> None:
        self._entries: dict = {}
        self._lock = threading.Lock()

    def contains(self, key, disk=None) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key, disk=None):
        with self._lock:
            return self._entries.get(key)

    def put(self, key, entry, disk=None) -> None:
        with self._lock:
            self._entries[key] = entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class RegionGrowPredictor(Predictor):
    """See the module docstring. ``tolerance``: allowed |value - seed value| in uint8 units."""

    def __init__(self, tolerance: int = 40, batch_size: int = 4) -> None:  # no super(): there is no network
        self.model = None
        self.device = "cpu"
        self.precision = "fp32"
        self.cache = _DictCache()
        self.batch_size = batch_size
        self.encoder_calls = 0
        self.encoded_slices = 0
        self.decode_calls = 0
        self.tolerance = int(tolerance)
        self._lock = threading.RLock()
        self._executor = None
        self._prefetch_generation = 0

    def key(self, slice_u8: np.ndarray, axis: int, index: int, aspect: float = 1.0):
        return content_hash(slice_u8), int(axis), int(index), round(float(aspect), 4)

    def _encode(self, slices, keys, disk=None, aspect: float = 1.0) -> list[dict]:
        with self._lock:
            self.encoder_calls += 1
            self.encoded_slices += len(slices)
        entries = []
        for s, key in zip(slices, keys):
            entry = {"image": np.array(s, dtype=np.uint8, copy=True)}
            self.cache.put(key, entry)
            entries.append(entry)
        return entries

    def decode(self, features: dict, prompts: SlicePrompts, original_size: tuple[int, int],
               mask_input=None, multimask: bool | None = None, aspect: float = 1.0) -> Prediction:
        """Mask (H, W) bool by the rule of the module docstring; ``mask_input`` and ``aspect`` are ignored."""
        with self._lock:
            self.decode_calls += 1
        image = features["image"].astype(np.int16)
        h, w = original_size
        positives = [(p.row, p.col) for p in prompts.points if p.positive]
        negatives = [(p.row, p.col) for p in prompts.points if not p.positive]
        region = np.ones((h, w), bool)
        if prompts.box is not None:
            b = prompts.box
            region = np.zeros((h, w), bool)
            region[b.row0:b.row1 + 1, b.col0:b.col1 + 1] = True
        seeds = positives or ([((b.row0 + b.row1) // 2, (b.col0 + b.col1) // 2)] if prompts.box is not None else [])
        mask = np.zeros((h, w), bool)
        for r, c in seeds:
            similar = (np.abs(image - image[r, c]) <= self.tolerance) & region
            labels, _ = ndimage.label(similar)
            if labels[r, c]:
                mask |= labels == labels[r, c]
        if negatives and seeds:
            rows, cols = np.mgrid[0:h, 0:w]
            d_pos = np.min([(rows - r) ** 2 + (cols - c) ** 2 for r, c in seeds], axis=0)
            d_neg = np.min([(rows - r) ** 2 + (cols - c) ** 2 for r, c in negatives], axis=0)
            mask &= d_pos <= d_neg
        logits = np.where(mask, 1.0, -1.0).astype(np.float32)
        return Prediction(mask, logits, None, 1.0)


def ellipsoid_volume(shape=(12, 48, 56), value: float = 0.8, background: float = 0.1) -> np.ndarray:
    """(Z, Y, X) float32 volume: an ellipsoid of ``value`` centred at (5.5, 24, 26) with radii (4.5, 14, 12)."""
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(np.float32)
    inside = ((z - 5.5) / 4.5) ** 2 + ((y - 24) / 14) ** 2 + ((x - 26) / 12) ** 2 <= 1
    return np.where(inside, value, background).astype(np.float32)


def tiny_model(seed: int = 0):
    """The offline default model (:func:`pge_sam.default_model`: ``pge_sam_tiny``, else ``sam_tiny``) on the CPU.

    Random ``sam_tiny`` weights seeded with ``seed`` only when the package ships
    no tiny weights at all (a broken install; the shipped-weights tests fail then).
    """
    import torch

    from pge_sam.models.registry import build_model, default_model, shipped_path

    from ._compat import avoid_triton_llvm_clash

    avoid_triton_llvm_clash()  # a viewer may already have loaded Mesa's LLVM

    if shipped_path("sam_tiny").is_file():
        return build_model(default_model(), device="cpu")
    torch.manual_seed(seed)
    return build_model("sam_tiny", pretrained=False, device="cpu")


def segmenting_model():
    """The model behind the tests' geometric assertions: the shipped default model (see :func:`tiny_model`)."""
    return tiny_model()

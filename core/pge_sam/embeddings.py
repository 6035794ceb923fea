"""Embeddings you can carry: precompute every slice's embedding on one machine, annotate on another.

    save_embeddings(session, "scan-emb")          # GPU machine (``pge-sam precompute`` does this)
    load_embeddings(session, "scan-emb")          # laptop: the store becomes the session's disk tier

A store is the on-disk tier of the embedding cache (:class:`~pge_sam.disk_cache.DiskStore`:
a folder holding pge-sam's marker file and a zarr group of checksummed entries),
written for one *signature*: the model and its weights' fingerprint, the volume
shape, the normalisation and the intensity range it gives. Loading checks that
signature against the session first and refuses a store written for anything
else (:class:`EmbeddingMismatch`, naming every field that differs); nothing in
the store is changed or deleted by a refused load.

Entries are keyed per slice by the content hash of the normalised slice, the
axis, the index and the pixel aspect (:meth:`pge_sam.predictor.Predictor.key`),
so a slice can only ever be served the embedding of exactly that slice. The
encoder precision is part of the key too (bf16 on CUDA, fp32 elsewhere); a
store precomputed on a GPU is still used on a CPU: a slice missing under its own
precision is looked up under the other one and cast to the session's dtype.

GUI hook: "Save embeddings..." calls :func:`save_embeddings` (with the session's
progress object) and "Load embeddings..." calls :func:`load_embeddings`;
:func:`describe` gives a one-line summary for a status bar.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from .disk_cache import FORMAT, DiskStore, is_store, make_store, stored_attrs, stored_signature
from .errors import CacheError, InputError
from .geometry import check_axis
from .progress import Progress, ensure

_FIELDS = {
    "model": "model",
    "weights": "model weights (fingerprint)",
    "shape": "volume shape",
    "normalization": "normalisation",
    "range": "intensity range of the normalisation",
    "format": "store format",
}
_PRECISIONS = ("fp32", "bf16")


class EmbeddingMismatch(CacheError):
    """A store was written for another model, weights, volume or normalisation than the session's.

    ``differences``: ``{field: (stored value, session value)}``.
    """

    def __init__(self, message: str, differences: dict) -> None:
        super().__init__(message)
        self.differences = differences


def signature_for(session) -> dict:
    """What a session's embeddings depend on (the :class:`DiskStore` signature a session with
    ``disk_cache=`` uses): model name, weights fingerprint, volume shape, normalisation, intensity range."""
    model = session.predictor.model
    return {"model": model.name, "weights": model.fingerprint(), "shape": [int(s) for s in session.shape],
            "normalization": session.normalization.key(), "range": [float(v) for v in session.value_range]}


def check_signature(stored: dict | None, expected: dict, where: str | Path = "the store") -> None:
    """Raise :class:`EmbeddingMismatch` naming every field where ``stored`` differs from ``expected``."""
    expected = dict(expected, format=FORMAT)
    if stored is None:
        raise CacheError(f"{where} holds no embeddings yet; run `pge-sam precompute` (or save embeddings) first")
    differences = {k: (stored.get(k), expected.get(k)) for k in sorted(set(stored) | set(expected))
                   if _normal(stored.get(k)) != _normal(expected.get(k))}
    if differences:
        parts = [f"{_FIELDS.get(k, k)}: store {_show(a)}, this session {_show(b)}" for k, (a, b) in differences.items()]
        raise EmbeddingMismatch(f"the embeddings in {where} were computed for another image or setting ("
                                + "; ".join(parts) + "); use the same model, weights, image and normalisation, "
                                "or precompute again", differences)


class PortableStore(DiskStore):
    """A :class:`DiskStore` that also serves entries computed with the other encoder precision
    (bf16 on a GPU, fp32 on a CPU), cast to the precision of the key asked for. New entries are
    stored under the session's own keys."""

    def _other(self, key):
        for precision in _PRECISIONS:
            if precision != key.precision:
                yield dataclasses.replace(key, precision=precision)

    def has(self, key) -> bool:
        return super().has(key) or any(super(PortableStore, self).has(k) for k in self._other(key))

    def get(self, key):
        entry = super().get(key)
        if entry is not None:
            return entry
        for other in self._other(key):
            entry = super().get(other)
            if entry is not None:
                import torch

                dtype = torch.bfloat16 if key.precision == "bf16" else torch.float32
                return {k: v.to(dtype) for k, v in entry.items()}
        return None


@dataclasses.dataclass
class StoreSummary:
    path: Path
    axes: tuple[int, ...]
    slices: int  # slices stored for those axes (already there or written now)
    encoded: int  # slices the encoder ran for in this call
    copied: int  # slices taken from the session's memory cache
    seconds: float

    def __str__(self) -> str:
        return (f"{self.path}: {self.slices} slice embeddings along axis {', '.join(map(str, self.axes))} "
                f"({self.encoded} encoded, {self.copied} from memory, {self.seconds:.1f} s)")


def save_embeddings(session, path: str | Path, axes=None, progress: Progress | None = None,
                    force: bool = False) -> StoreSummary:
    """Write the embedding of every slice along ``axes`` (default: the session's axis) into the store
    ``path`` (a new or empty folder, or a store written for this session's signature).

    Slices already in the store are skipped, slices in the session's memory cache are copied, the
    rest is encoded in batches (``progress``: ``start``/``update``/``cancelled``; a cancel keeps the
    slices written so far). A store written for another signature is refused unless ``force``,
    which replaces its entries. The store is not attached to the session (see :func:`load_embeddings`).
    """
    t0 = time.perf_counter()
    path = make_store(path)
    signature = signature_for(session)
    stored = stored_signature(path)
    if stored is not None and not force:
        check_signature(stored, signature, path)
    store = PortableStore(path, signature)
    if store.disabled or store.read_only:
        raise CacheError(f"cannot write embeddings to {path}: {'; '.join(store.messages) or 'read-only'}")
    axes = (session.axis,) if axes is None else tuple(check_axis(a) for a in axes)
    if session.is2d and axes != (0,):
        raise InputError("a 2D image has only one slicing axis (0)")
    predictor, own_disk = session.predictor, getattr(session, "disk", None)
    copied, pending = 0, []
    for axis in axes:
        aspect = session.aspect(axis)
        for index in range(session.shape[axis]):
            key = predictor.key(session.slice_u8(index, axis), axis, index, aspect)
            if store.has(key):
                continue
            entry = None
            if predictor.cache.contains(key):  # the memory tiers (the shared cache has no disk store of its own)
                entry = predictor.cache.get(key)
            elif own_disk is not None and own_disk is not store and own_disk.has(key):  # the session's --cache-dir
                entry = own_disk.get(key)
            if entry is not None:
                store.put(key, entry)
                copied += 1
            else:
                pending.append((axis, index, aspect))
    jobs = [_job(session, axis, index, aspect) for axis, index, aspect in pending]
    try:
        encoded = predictor.encode_many(jobs, ensure(progress), store) if jobs else 0
    finally:  # also after a cancel: the entries written so far are described and usable
        from . import __version__

        info = store.info
        info.update({"axes": sorted(set(info.get("axes", [])) | set(axes)),
                     "spacing": [float(v) for v in session.spacing], "precision": predictor.precision,
                     "device": str(predictor.device), "pge_sam": __version__,
                     "written": time.strftime("%Y-%m-%d %H:%M:%S")})
        store.set_info(info)
    if store.disabled:
        raise CacheError(f"writing embeddings to {path} failed: {'; '.join(store.messages)}")
    slices = sum(session.shape[a] for a in axes)
    return StoreSummary(path, axes, slices, encoded, copied, time.perf_counter() - t0)


def load_embeddings(session, path: str | Path) -> PortableStore:
    """Use the store ``path`` as the session's disk tier, after checking its signature.

    Raises :class:`EmbeddingMismatch` (naming what differs) for a store written for another
    model, weights, volume or normalisation, and :class:`~pge_sam.errors.CacheError` for a
    folder that is not a pge-sam store or holds no embeddings. A read-only store is used
    read-only. Returns the store (also set as ``session.disk``).
    """
    path = Path(path).expanduser()
    if not is_store(path):
        raise CacheError(f"{path} is not a pge-sam embedding store (no marker file); make one with "
                         "`pge-sam precompute IMAGE --out FOLDER`")
    signature = signature_for(session)
    check_signature(stored_signature(path), signature, path)
    store = PortableStore(path, signature)
    if store.disabled:
        raise CacheError(f"cannot use embeddings in {path}: {'; '.join(store.messages)}")
    session.disk = store
    return store


def describe(path: str | Path) -> str:
    """One line about a store: model, shape, axes, precision (for a status bar or ``--help`` output)."""
    path = Path(path).expanduser()
    if not is_store(path):
        return f"{path}: not a pge-sam embedding store"
    attrs = stored_attrs(path)
    signature, store_info = attrs.get("signature") or {}, attrs.get("info") or {}
    return (f"{path}: model {signature.get('model', '?')}, volume {signature.get('shape', '?')}, "
            f"axes {store_info.get('axes', '?')}, {store_info.get('precision', '?')} on "
            f"{store_info.get('device', '?')}")


def _job(session, axis: int, index: int, aspect: float):
    return lambda: (session.slice_u8(index, axis), axis, index, aspect)


def _normal(value):
    """JSON round-trip form (tuples -> lists, numpy scalars -> floats) for comparisons."""
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _show(value) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + ")"
    return "none" if value is None else str(value)

"""The on-disk tier of the embedding cache: a zarr store that pge-sam made itself, inside the folder it is given.

    store = DiskStore("~/scans/cache", {"model": ..., "weights": ..., "shape": [...], ...})
    store.put(key, {"embedding": tensor}); store.get(key)  # -> dict of tensors, or None

Data safety rules (docs/reliability.md):

* The store is the subfolder :data:`STORE_NAME` of the given folder, marked
  by the file :data:`MARKER`, with the zarr group :data:`GROUP` beside it. A folder that already holds a
  marker is itself a store. A store folder without the marker that holds anything is refused
  (:class:`~pge_sam.errors.CacheError`): pge-sam never writes into, nor
  deletes, what it did not create.
* A store written for another signature (model, weights, normalisation,
  volume) has *its own entries* deleted, one by one; nothing else is touched,
  and a :class:`~pge_sam.errors.CacheWarning` says why it recomputes.
* Every entry carries a blake2b checksum, shape and dtype per tensor; an
  entry that fails the check (tampered, truncated, unknown dtype) is ignored
  with a warning and recomputed.
* A folder that cannot be written is used read-only (a warning, no
  traceback); a write that fails (disk full, I/O error) disables the disk
  tier with a warning and the job goes on with the memory tiers.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import threading
import warnings
from pathlib import Path

import numpy as np

from .cache import CacheKey, Tensors
from .errors import CacheError, CacheWarning

STORE_NAME = "pge-sam-embeddings"
MARKER = "pge-sam-store.json"
GROUP = "entries.zarr"  # the zarr group, beside the marker
FORMAT = 2
_ENTRY_NAME = re.compile(r"^[0-9a-f]{32}$")  # CacheKey.digest()
_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": np.float32, "float64": np.float64}  # stored as


def _warn(message: str) -> None:
    warnings.warn(message, CacheWarning, stacklevel=3)


def checksum(array: np.ndarray) -> str:
    """blake2b-128 of an array's dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


def locate(folder: str | Path) -> Path:
    """The store folder for a user-given cache folder (the folder itself when it is already a store).

    Raises :class:`CacheError` for a file, or for a store folder that pge-sam did not make.
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CacheError(f"cache folder {folder} is a file; give a folder (pge-sam keeps its store in a "
                         f"subfolder {STORE_NAME} of it)")
    if (folder / MARKER).is_file():
        return folder
    store = folder / STORE_NAME
    if store.exists():
        if not store.is_dir():
            raise CacheError(f"{store} exists and is not a pge-sam store; move it away or choose another cache folder")
        if not (store / MARKER).is_file() and any(store.iterdir()):
            raise CacheError(f"{store} holds files pge-sam did not write (no {MARKER}); pge-sam will not write "
                             "into it or delete it: move it away or choose another cache folder")
    return store


def is_store(folder: str | Path) -> bool:
    """Whether ``folder`` itself is a pge-sam store (holds the marker file)."""
    return (Path(folder).expanduser() / MARKER).is_file()


def make_store(folder: str | Path) -> Path:
    """Make ``folder`` itself a store (the marker file), creating it if needed; returns it.

    A folder that already is a store is returned as is. A file, or a folder that
    holds anything else, is a :class:`CacheError`: nothing is written into it.
    """
    folder = Path(folder).expanduser()
    if is_store(folder):
        return folder
    if folder.exists() and not folder.is_dir():
        raise CacheError(f"{folder} is a file; give a new or empty folder for the embedding store")
    if folder.is_dir() and any(folder.iterdir()):
        raise CacheError(f"{folder} holds files pge-sam did not write (no {MARKER}); pge-sam will not write into "
                         "it: give a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    _write_marker(folder)
    return folder


def stored_attrs(folder: str | Path) -> dict:
    """The attributes of the store ``folder`` (a store itself, see :func:`is_store`), read without changing
    anything: ``"signature"`` (what its entries were written for) and ``"info"`` (:meth:`DiskStore.set_info`);
    ``{}`` when it holds no entries group yet."""
    from ._optional import require

    zarr = require("zarr", extra="cache", purpose="embedding stores")
    group_path = Path(folder).expanduser() / GROUP
    if not group_path.exists():
        return {}
    return dict(zarr.open_group(str(group_path), mode="r").attrs)


def stored_signature(folder: str | Path) -> dict | None:
    """The signature the store ``folder`` was written for (``None``: none yet); see :func:`stored_attrs`."""
    return stored_attrs(folder).get("signature")


class DiskStore:
    """Zarr store of cache entries that survives restarts (see the module docstring).

    ``folder``: the user's cache folder; ``signature``: JSON-able dict naming
    what the entries depend on. ``reset_reason``: why entries were dropped on
    open (``None`` if none were); ``read_only`` / ``disabled``: the modes the
    store fell back to, with ``messages`` saying why.
    """

    def __init__(self, folder: str | Path, signature: dict) -> None:
        self.folder = Path(folder).expanduser()
        self.path = locate(self.folder)
        self.signature = dict(signature, format=FORMAT)
        self.reset_reason: str | None = None
        self.read_only = False
        self.disabled = False
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self._group = None
        try:
            self._open()
        except OSError as err:
            self._disable(f"cannot open {self.path} ({_reason(err)})")

    # -- opening ------------------------------------------------------------------------------
    def _open(self) -> None:
        from ._optional import require

        zarr = require("zarr", extra="cache", purpose="the on-disk embedding cache (--cache-dir, embedding stores)")

        exists = (self.path / MARKER).is_file()
        parent = self.path if exists else _existing_ancestor(self.path)
        if not os.access(parent, os.W_OK):
            if not exists:
                self._disable(f"cache folder {parent} is read-only and holds no pge-sam store")
                return
            self._note(f"cache folder {self.path} is read-only: its entries are used, new slices are not stored")
            self.read_only = True
        if self.read_only:
            group = zarr.open_group(str(self.path / GROUP), mode="r")
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            if not exists:
                _write_marker(self.path)
            group = zarr.open_group(str(self.path / GROUP), mode="a")
        stored = group.attrs.get("signature")
        if stored is not None and stored != self.signature:
            diff = sorted(k for k in set(stored) | set(self.signature) if stored.get(k) != self.signature.get(k))
            self.reset_reason = (f"embedding store {self.path} was written for a different {', '.join(diff)}; "
                                 "its entries are recomputed")
            if self.read_only:
                self._disable(self.reset_reason + " (read-only folder: the disk tier is off)")
                return
            for name in [n for n in group.group_keys() if _ENTRY_NAME.match(n)]:
                del group[name]
            self._note(self.reset_reason)
        if not self.read_only:
            group.attrs["signature"] = self.signature
        self._group = group

    # -- entries ------------------------------------------------------------------------------
    def has(self, key: CacheKey) -> bool:
        """Whether a complete entry for ``key`` is stored (its checksum is verified on :meth:`get`)."""
        if self._group is None:
            return False
        name = key.digest()
        with self._lock:
            try:
                return name in self._group and bool(self._group[name].attrs.get("complete", False))
            except (OSError, ValueError, KeyError):
                return False

    def get(self, key: CacheKey) -> Tensors | None:
        """The stored tensors, or ``None`` when absent, incomplete or damaged (damage is warned about)."""
        if self._group is None:
            return None
        name = key.digest()
        with self._lock:
            if name not in self._group:
                return None
            try:
                sub = self._group[name]
                if not sub.attrs.get("complete", False):
                    return None
                return _read_entry(sub)
            except _Damaged as err:
                _warn(f"embedding store entry {name} is damaged ({err}); recomputing it")
            except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
                _warn(f"embedding store entry {name} cannot be read ({err}); recomputing it")
            return None

    def put(self, key: CacheKey, entry: Tensors) -> None:
        """Store an entry (tensors without batch dim); a failed write turns the disk tier off, with a warning."""
        if self._group is None or self.read_only:
            return
        name = key.digest()
        with self._lock:
            try:
                _write_entry(self._group.require_group(name), entry)
            except OSError as err:
                if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                    self.read_only = True
                    self._note(f"cannot write to {self.path} ({_reason(err)}): the store is used read-only from now on")
                else:
                    self._disable(f"writing to {self.path} failed ({_reason(err)})")
                self._forget(name)

    # -- free-form description (what a portable store holds) -----------------------------------
    @property
    def info(self) -> dict:
        """The JSON dict saved with :meth:`set_info` (``{}`` when none)."""
        if self._group is None:
            return {}
        with self._lock:
            return dict(self._group.attrs.get("info", {}))

    def set_info(self, info: dict) -> None:
        """Save a JSON-able description next to the signature (ignored when read-only or off)."""
        if self._group is None or self.read_only:
            return
        with self._lock:
            self._group.attrs["info"] = info

    # -- modes --------------------------------------------------------------------------------
    def _note(self, message: str) -> None:
        self.messages.append(message)
        _warn(message)

    def _disable(self, why: str) -> None:
        self.disabled = True
        self._group = None
        self._note(f"{why}; the on-disk embedding cache is off and the job continues with the memory cache")

    def _forget(self, name: str) -> None:
        """Drop a half-written entry of ours, best effort (its 'complete' flag is unset anyway)."""
        if self._group is None or self.read_only:
            return
        try:
            del self._group[name]
        except (OSError, KeyError):
            pass  # an incomplete entry is ignored by get(); nothing else to do


class _Damaged(Exception):
    pass


def _read_entry(sub) -> Tensors:
    import torch

    dtypes, shapes, sums = sub.attrs["dtypes"], sub.attrs["shapes"], sub.attrs["checksums"]
    out = {}
    for k, dtype in dtypes.items():
        if dtype not in _DTYPES:
            raise _Damaged(f"tensor {k!r} has unknown dtype {dtype!r}")
        data = np.asarray(sub[k][...])
        if list(data.shape) != list(shapes[k]) or data.dtype != _DTYPES[dtype]:
            raise _Damaged(f"tensor {k!r} is {data.dtype}{list(data.shape)}, expected "
                           f"{np.dtype(_DTYPES[dtype])}{list(shapes[k])}")
        if checksum(data) != sums[k]:
            raise _Damaged(f"tensor {k!r} does not match its checksum")
        out[k] = torch.from_numpy(data).to(getattr(torch, dtype))
    return out


def _write_entry(sub, entry: Tensors) -> None:
    import torch

    sub.attrs["complete"] = False  # set last: a crash mid-write leaves an entry get() ignores
    dtypes, shapes, sums = {}, {}, {}
    for k, t in entry.items():
        arr = t.detach().to("cpu")
        dtypes[k] = str(arr.dtype).removeprefix("torch.")
        if dtypes[k] not in _DTYPES:
            raise TypeError(f"cannot store a {arr.dtype} tensor in the embedding store")
        data = (arr.float() if arr.dtype == torch.bfloat16 else arr).numpy()
        z = sub.create_array(k, shape=data.shape, dtype=data.dtype, chunks=data.shape, overwrite=True)
        z[...] = data
        shapes[k], sums[k] = list(data.shape), checksum(data)
    sub.attrs.update({"dtypes": dtypes, "shapes": shapes, "checksums": sums})
    sub.attrs["complete"] = True


def _write_marker(store: Path) -> None:
    text = json.dumps({"tool": "pge-sam", "what": "embedding cache; safe to delete", "format": FORMAT})
    (store / MARKER).write_text(text + "\n", encoding="utf-8")


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _reason(err: OSError) -> str:
    return err.strerror or str(err)

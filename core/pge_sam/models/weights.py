"""Weights: official SAM checkpoints (download on request, strict load) and our safetensors.

* Official ``.pth`` files are loaded with ``torch.load(weights_only=True)`` and
  ``load_state_dict(strict=True)``; a file for another architecture is an error
  naming the missing/unexpected keys.
* Project weights (the shipped tiny model, PGE adapters) are safetensors with a
  JSON metadata header under the key ``"pge_sam"`` (variant, backbone, data,
  version, ...).
* Downloads happen only through :func:`fetch_official` (the ``pge-sam weights
  fetch`` command), via pooch with a sha256 check, into :func:`cache_dir`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import Cancelled, ChecksumError, InputError, MissingWeightsError, WeightsError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class OfficialCheckpoint:
    backbone: str
    filename: str
    url: str
    sha256: str
    size_mb: int


# File names and URLs from segment-anything's README; sha256 as published by
# many downstream projects for the same files (e.g. micro-sam's checksum table).
OFFICIAL: dict[str, OfficialCheckpoint] = {
    "vit_b": OfficialCheckpoint(
        "vit_b", "sam_vit_b_01ec64.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912", 375),
    "vit_l": OfficialCheckpoint(
        "vit_l", "sam_vit_l_0b3195.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622", 1250),
    "vit_h": OfficialCheckpoint(
        "vit_h", "sam_vit_h_4b8939.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e", 2560),
}


def cache_dir() -> Path:
    """Where downloaded checkpoints live: ``$PGE_SAM_CACHE_DIR`` or the OS cache folder (``pooch.os_cache``)."""
    env = os.environ.get("PGE_SAM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("pge-sam"))


def official_path(backbone: str, directory: Path | None = None) -> Path:
    """Expected location of the official checkpoint for ``backbone`` (it may not exist)."""
    if backbone not in OFFICIAL:
        raise InputError(f"no official SAM checkpoint for backbone {backbone!r}; choose one of {sorted(OFFICIAL)}")
    return Path(directory or cache_dir()) / OFFICIAL[backbone].filename


MIB = 1 << 20


class PoochBar:
    """pooch's progress-bar protocol (``total``, ``update``, ``reset``, ``close``) over a pge_sam progress
    (``start``/``update``/``cancelled``) counting MiB. A cancelled progress stops the download with
    :class:`~pge_sam.errors.Cancelled`; pooch then deletes its partial temporary file."""

    def __init__(self, progress) -> None:
        self.progress, self.n, self.shown, self._total = progress, 0, 0, 0

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, value) -> None:
        self._total = int(value or 0)
        self.progress.start(-(-self._total // MIB))

    def update(self, n: int) -> None:
        self.n += int(n)
        mib = min(self.n, self._total or self.n) // MIB
        if mib > self.shown:  # once per MiB: a GUI's cancelled() may process its events
            self.progress.update(mib - self.shown)
            self.shown = mib
            if self.progress.cancelled():
                raise Cancelled("download cancelled; nothing was kept")

    def reset(self) -> None:
        self.n = 0

    def close(self) -> None:
        if self._total and self.shown * MIB < self._total:
            self.progress.update(1)  # the last partial MiB
            self.shown += 1


def fetch_official(backbone: str, directory: Path | None = None, progress=True) -> Path:
    """Download (once) and verify the official checkpoint; returns its path. Explicit user request only.
    ``progress``: ``True`` (a tqdm bar), ``False``, or a pge_sam progress object (MiB; cancellable)."""
    import pooch

    ck = OFFICIAL.get(backbone)
    if ck is None:
        raise InputError(f"no official SAM checkpoint for backbone {backbone!r}; choose one of {sorted(OFFICIAL)}")
    target = Path(directory or cache_dir())
    target.mkdir(parents=True, exist_ok=True)
    bar = progress if isinstance(progress, bool) else PoochBar(progress)
    download = pooch.HTTPDownloader(progressbar=bar, chunk_size=1 << 16)  # pooch's default chunk is 1 KiB
    try:
        path = pooch.retrieve(ck.url, known_hash=f"sha256:{ck.sha256}", fname=ck.filename, path=target,
                              downloader=download)
    except Cancelled:
        raise
    except ValueError as err:  # pooch reports a hash mismatch as ValueError
        raise ChecksumError(
            f"{ck.filename} downloaded from {ck.url} does not have the expected sha256 {ck.sha256}: {err}. "
            "The partial file was discarded; retry, or download it by hand and check it with sha256sum."
        ) from err
    except Exception as err:  # network errors come from requests/urllib with many types
        raise MissingWeightsError(
            f"could not download {ck.filename} from {ck.url} ({type(err).__name__}: {err}). "
            f"Without network access, copy the file into {target} (expected sha256 {ck.sha256})."
        ) from err
    return Path(path)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise :class:`ChecksumError` if ``path``'s sha256 is not ``expected``."""
    got = sha256_file(path)
    if got != expected.lower():
        raise ChecksumError(
            f"{path} has sha256 {got} but {expected} was expected: the file is corrupt or a different "
            "release; delete it and fetch it again with `pge-sam weights fetch`"
        )


def load_sam_checkpoint(sam, path: Path | str, backbone: str, expected_sha256: str | None = None) -> None:
    """Load an official-format ``.pth`` state dict into ``sam`` strictly (``weights_only=True``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(missing_message(path, backbone))
    if expected_sha256:
        verify_sha256(path, expected_sha256)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, zipfile errors ...
        raise WeightsError(
            f"{path} could not be read as a PyTorch checkpoint ({type(err).__name__}: {err}); "
            "the file is corrupt or not a SAM .pth file — fetch it again"
        ) from err
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    load_state_strict(sam, state, path, backbone)


def load_state_strict(module, state: dict, path: Path, what: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with a readable error on any mismatch
    (including a file that holds a bare tensor, a list, or non-tensor values instead of a state dict)."""
    import torch

    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict (name -> tensor) for {what}; "
                           "pass the model's checkpoint file")
    odd = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if odd:
        raise WeightsError(f"{path} is not a state dict for {what}: {', '.join(odd[:4])} "
                           f"{'is' if len(odd) == 1 else 'are'} not tensors; pass the model's checkpoint file")
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        def show(keys):
            return ", ".join(keys[:4]) + (f" ... ({len(keys)} in all)" if len(keys) > 4 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {show(unexpected)}")
        if wrong:
            shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong]
            parts.append(f"shape mismatch: {show(shapes)}")
        raise WeightsError(
            f"{path} does not match the {what} architecture ({'; '.join(parts)}). "
            "Check that the model name matches the checkpoint (e.g. sam_vit_b with sam_vit_b_01ec64.pth)."
        )
    module.load_state_dict(state, strict=True)


def missing_message(path: Path, backbone: str) -> str:
    if backbone in OFFICIAL:
        return (
            f"weights file {path} not found. Download it with `pge-sam weights fetch {backbone}` "
            f"(saves {OFFICIAL[backbone].filename}, {OFFICIAL[backbone].size_mb} MB, to {cache_dir()}), "
            "or pass the path of your copy with --checkpoint"
        )
    return f"weights file {path} not found; pass an existing file with --checkpoint"


# -- project weights (safetensors) -----------------------------------------------------------

def save_safetensors(tensors: dict, path: Path | str, meta: dict, half: bool = False) -> Path:
    """Write ``tensors`` (name -> torch.Tensor) with ``meta`` as JSON metadata; fp16 storage if ``half``."""
    import torch
    from safetensors.torch import save_file

    out = {}
    for k, v in tensors.items():
        v = v.detach().to("cpu").contiguous()
        if half and v.is_floating_point():
            v = v.to(torch.float16)
        out[k] = v
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = dict(meta, format_version=FORMAT_VERSION, dtype="float16" if half else "float32")
    save_file(out, str(path), metadata={"pge_sam": json.dumps(header, sort_keys=True)})
    return path


def read_safetensors(path: Path | str) -> tuple[dict, dict]:
    """(tensors, metadata) from a project safetensors file; clear errors for missing/corrupt files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"weights file {path} not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("pge_sam")
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path} is not a readable safetensors file ({err}); it is corrupt — replace it") from err
    if raw is None:
        raise WeightsError(f"{path} has no pge_sam metadata header; it was not written by pge-sam")
    return tensors, json.loads(raw)


def load_into(module, tensors: dict, path: Path, what: str) -> None:
    """Strict load of safetensors ``tensors`` into ``module``, casting to the module's dtypes."""
    own = module.state_dict()
    cast = {k: v.to(own[k].dtype) if k in own else v for k, v in tensors.items()}
    load_state_strict(module, cast, path, what)

"""Device choice and precision policy.

``"auto"`` picks CUDA, then Apple MPS, then the CPU. Nothing in pge_sam assumes
CUDA. On CUDA the image encoder runs under bf16 autocast; everywhere else fp32.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from .errors import InputError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(device: "str | object" = "auto"):
    """Return a ``torch.device`` for ``"auto"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"``.

    An explicit device that is not available is an error, never a silent fallback.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} was requested but CUDA is not available in this torch build "
            f"(torch {torch.__version__}); use device='auto' or 'cpu'"
        )
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError("device 'mps' was requested but Apple MPS is not available; use 'auto' or 'cpu'")
    if not (name in ("cpu", "mps") or name.startswith("cuda")):
        raise InputError(f"unknown device {device!r}; choose one of {DEVICE_CHOICES} (or 'cuda:N')")
    return torch.device(name)


def precision_for(device) -> str:
    """Name of the encoder precision used on ``device``: ``"bf16"`` on CUDA, else ``"fp32"``."""
    return "bf16" if getattr(device, "type", str(device)) == "cuda" else "fp32"


@contextlib.contextmanager
def encoder_autocast(device) -> Iterator[None]:
    """Autocast context for the image encoder: bf16 on CUDA, a no-op elsewhere."""
    import torch

    if getattr(device, "type", None) == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def cpu_warning(device) -> str | None:
    """An honest one-line warning when the chosen device is the CPU, else ``None``."""
    if getattr(device, "type", str(device)) == "cpu":
        return (
            "running on the CPU: the tiny models are interactive, official ViT backbones take "
            "15-30 s per slice to encode here; use a CUDA GPU for those"
        )
    return None

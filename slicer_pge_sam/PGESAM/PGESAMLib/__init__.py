"""Pure-Python helpers of the PGESAM Slicer module.

Nothing in this package imports ``slicer``, ``qt``, ``ctk``, ``vtk`` or
``torch``; it needs only numpy and the standard library, and is tested outside
Slicer. Submodules: ``geometry`` (RAS/IJK/KJI maths, view axis), ``regions``
(changed-region write-back), ``deps`` (pinned dependencies), ``progress``
(progress relay).
"""

from __future__ import annotations

MODEL_CHOICES: tuple[str, ...] = ("pge_sam_tiny", "sam_tiny", "pge_sam_vit_b", "sam_vit_b")
"""Model names offered in the widget (``pge_sam.build_model`` registry names); the first is the default."""

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")
"""Device choices; "auto" picks CUDA, then MPS, then CPU."""

SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("I", "place include points"),
    ("E", "place exclude points"),
    ("U", "undo the last prompt"),
    ("N", "next segment"),
)
"""Module keyboard shortcuts (active only while the module is shown), as (key, action)."""


def shortcut_hint() -> str:
    """One-line text for the widget's shortcut label, e.g. ``"I: place include points · ..."``."""
    parts = [f"{key}: {action}" for key, action in SHORTCUTS]
    parts.append("Esc: stop placing")
    return " · ".join(parts)

"""Pure-Python helpers of the PGESAM Slicer module.

Nothing in this package imports ``slicer``, ``qt``, ``ctk``, ``vtk``,
``torch`` or ``pge_sam``; it needs only numpy and the standard library, and is
tested outside Slicer. Submodules: ``geometry`` (RAS/IJK/KJI maths, view
axis, a volume's grid), ``regions`` (changed-region write-back), ``deps`` (pinned
dependencies), ``progress`` (progress relay).
"""

from __future__ import annotations

from typing import NamedTuple

MODEL_CHOICES: tuple[str, ...] = ("pge_sam_tiny", "sam_tiny", "robust_sam_tiny", "sam_ref_tiny", "pge_sam_vit_b",
                                  "sam_vit_b", "robust_sam_vit_b", "sam_ref_vit_b")
"""Model names offered in the widget (``pge_sam.build_model`` registry names); the first is the default."""

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")
"""Device choices; "auto" picks CUDA, then MPS, then CPU."""


class Shortcut(NamedTuple):
    """One module keyboard shortcut.

    Attributes:
        key: Qt key-sequence text (``qt.QKeySequence(key)``), e.g. ``"I"`` or ``"Ctrl+Z"``.
        action: what it does, as shown in the widget and the README.
        method: name of the ``PGESAMWidget`` method it calls.
    """

    key: str
    action: str
    method: str


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("I", "place include points", "placeIncludePoints"),
    Shortcut("E", "place exclude points", "placeExcludePoints"),
    Shortcut("Ctrl+Z", "undo the last prompt", "onUndo"),
    Shortcut("M", "another mask for a first click", "onOtherMask"),
    Shortcut("N", "next segment", "onNextSegment"),
    Shortcut("P", "propagate", "onPropagate"),
)
"""Module keyboard shortcuts. They are ``QShortcut`` objects parented to the module
panel (window context), so they work while the mouse is over a slice view but only
while the PGE-SAM panel is shown; none is one of :data:`SLICER_RESERVED_KEYS`."""

SLICER_RESERVED_KEYS: frozenset[str] = frozenset({
    # slice views (Libs/MRML/DisplayableManager/vtkMRMLSliceIntersectionWidget.cxx)
    "G", "T", "F", "B", "V", "Shift+V", "R", "Left", "Right", "Up", "Down", "[", "]", "{", "}",
    # main window and module selector (Base/QTApp/qSlicerMainWindow.cxx, Base/QTGUI/qSlicerModuleSelectorToolBar.cxx)
    "Ctrl+O", "Ctrl+S", "Ctrl+F", "Ctrl+0", "Ctrl+3", "Ctrl+5", "Ctrl+`", "Ctrl+Left", "Ctrl+Right",
    # markups toolbar and point placement (Modules/Loadable/Markups)
    "Ctrl+Shift+A", "Ctrl+Shift+T", "Ctrl+Shift+Space", "Esc", "Delete", "Backspace",
})
"""Keys Slicer binds while any module is shown; the module's shortcuts must avoid them.
(Slicer's Edit > Undo action carries Ctrl+Z but sits in no menu or toolbar, so it is
inactive; the Segment Editor binds Ctrl+Z only while its own panel is shown.)"""


def shortcut_hint() -> str:
    """One-line text for the widget's shortcut label, e.g. ``"I: place include points · ..."``."""
    parts = [f"{s.key}: {s.action}" for s in SHORTCUTS]
    parts.append("Esc: stop placing")
    return " · ".join(parts)

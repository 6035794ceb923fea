"""napari plugin for pge-sam (npe2): interactive slice-by-slice segmentation with (PGE-)SAM models.

Importing this package is cheap and imports neither torch nor Qt; napari loads
the contributions named in ``napari.yaml`` only when they are used:

* ``napari_pge_sam._widget:PgeSamWidget`` — the dock widget (Plugins menu);
* ``napari_pge_sam._sample_data`` — offline samples (MNI152 T1, Shepp-Logan phantom);
* ``napari_pge_sam._cli`` — the ``pge-sam napari`` demo command (``--screenshot``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["PgeSamWidget", "__version__"]


def __getattr__(name: str):
    if name == "PgeSamWidget":
        from ._widget import PgeSamWidget

        return PgeSamWidget
    raise AttributeError(f"module 'napari_pge_sam' has no attribute {name!r}")

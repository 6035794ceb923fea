"""Sample data contributions (offline: files shipped with nilearn and scikit-image; no download).

Each function returns napari layer data tuples ``[(array, kwargs, "image")]``.
"""

from __future__ import annotations


def mni_t1() -> list[tuple]:
    """The MNI ICBM152 2009 T1 template: float32 (Z, Y, X) = (189, 233, 197), 1 mm spacing."""
    from pge_sam.samples import sample_volume

    data, spacing = sample_volume("mni_t1")
    meta = {"source": "MNI ICBM152 2009 (shipped with nilearn)", "axes": "ZYX"}
    return [(data, {"name": "MNI152 T1", "scale": tuple(spacing), "colormap": "gray", "metadata": meta}, "image")]


def phantom() -> list[tuple]:
    """The modified Shepp-Logan phantom: float32 (256, 256) = (rows, cols) in [0, 1]."""
    from pge_sam.samples import sample_volume

    data, spacing = sample_volume("phantom")
    meta = {"source": "skimage.data.shepp_logan_phantom", "axes": "YX"}
    return [(data, {"name": "Shepp-Logan phantom", "scale": tuple(spacing), "colormap": "gray", "metadata": meta},
             "image")]

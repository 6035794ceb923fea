"""Input checks shared by the session, the CLI and the front-ends (clear messages, no side effects)."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def check_image(image, allow_rgb_shape: bool = False) -> bool:
    """Validate a 2D (H, W) image or a 3D (Z, Y, X) volume; returns ``True`` for 2D.

    Rejects other dimensionalities, empty arrays, non-real dtypes and arrays
    shaped like RGB(A) images (H, W, 3|4) unless ``allow_rgb_shape``.
    NaN/inf are checked by the normalisation (sampled) and per slice when read.
    """
    shape = tuple(getattr(image, "shape", ()))
    dtype = np.dtype(getattr(image, "dtype", np.float64))
    if len(shape) not in (2, 3):
        hint = " (a multi-channel or time series volume: pass one channel/time point)" if len(shape) == 4 else ""
        raise InputError(f"expected a 2D (H, W) image or a 3D (Z, Y, X) volume, got shape {shape}{hint}")
    if 0 in shape:
        raise InputError(f"the image is empty (shape {shape}); load a non-empty image")
    if len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > 4 and not allow_rgb_shape:
        raise InputError(
            f"an array of shape {shape} looks like an RGB(A) image; convert it to greyscale "
            "(e.g. skimage.color.rgb2gray) — or pass allow_rgb_shape=True if it is a volume with "
            f"{shape[-1]} slices along X"
        )
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) or dtype == np.bool_):
        raise InputError(f"image dtype {dtype} is not a real number type; convert it (e.g. to float32)")
    return len(shape) == 2


def check_labels(labels, shape: tuple[int, ...]) -> None:
    """The caller's label buffer: a writeable integer numpy array of the image's shape."""
    if not isinstance(labels, np.ndarray):
        raise InputError(f"the label buffer must be a numpy array (got {type(labels).__name__}); "
                         "it is written in place")
    if labels.shape != tuple(shape):
        raise InputError(f"label buffer shape {labels.shape} does not match the image shape {tuple(shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"label buffer dtype {labels.dtype} is not an integer type; use e.g. numpy.uint16")
    if not labels.flags.writeable:
        raise InputError("the label buffer is read-only; pass a writeable array")


def check_spacing(spacing, ndim: int) -> tuple[float, ...]:
    """Voxel size per image axis (``ndim`` positive finite numbers, the image's axis order); ``None`` -> all 1."""
    if spacing is None:
        return (1.0,) * ndim
    try:
        values = tuple(float(v) for v in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != ndim or not all(np.isfinite(v) and v > 0 for v in values):
        raise InputError(f"spacing must be {ndim} positive numbers in the image's axis order, got {spacing!r}")
    return values

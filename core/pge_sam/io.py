"""Reading images and writing label volumes with their geometry, through SimpleITK.

Arrays are (Z, Y, X) (SimpleITK's ``GetArrayFromImage`` order); spacing is
returned in the same order. The SimpleITK image read is kept as the geometry
reference so labels are written with the same origin, spacing and direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError


@dataclass
class LoadedImage:
    """``array``: (Z, Y, X) or (H, W); ``spacing``: same order, mm; ``reference``: the SimpleITK image."""

    array: np.ndarray
    spacing: tuple[float, ...]
    reference: object
    source: str


def read_image(path: str | Path) -> LoadedImage:
    """Read NIfTI, NRRD, MHA/MHD, TIFF/PNG or a DICOM series (a folder) with its geometry.

    Multi-component (RGB) images, 4D images and folders with several DICOM
    series are refused with a message saying what to do.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    try:
        if path.is_dir():
            image = _read_dicom_series(path)
        else:
            image = sitk.ReadImage(str(path))
    except RuntimeError as err:  # SimpleITK raises RuntimeError for unreadable files
        raise InputError(f"SimpleITK could not read {path}: {str(err).strip().splitlines()[-1]}") from err
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path} has {image.GetNumberOfComponentsPerPixel()} components per pixel (RGB?); "
                         "convert it to a single-channel greyscale image first")
    if image.GetDimension() not in (2, 3):
        raise InputError(f"{path} is {image.GetDimension()}D; extract one 3D volume first")
    array = sitk.GetArrayFromImage(image)
    spacing = tuple(float(s) for s in reversed(image.GetSpacing()))
    if array.ndim == 3 and array.shape[0] == 1:
        array, spacing = array[0], spacing[1:]
    return LoadedImage(array, spacing, image, str(path))


def _read_dicom_series(folder: Path):
    import SimpleITK as sitk

    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise InputError(f"no DICOM series found in {folder}")
    if len(ids) > 1:
        raise InputError(f"{folder} holds {len(ids)} DICOM series ({', '.join(ids)}); put one series per folder")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0]))
    return reader.Execute()


def write_labels(labels: np.ndarray, path: str | Path, reference=None, spacing: tuple[float, ...] | None = None) -> Path:
    """Write an integer label array with the geometry of ``reference`` (a SimpleITK image) or ``spacing``.

    ``labels``: (Z, Y, X) or (H, W), integer. The file type follows the
    extension (.nii.gz, .nrrd, .mha, ...); compression is on.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be integers, got {labels.dtype}")
    data = labels.astype(np.uint16) if labels.dtype in (np.int64, np.uint64) and labels.max() < 65536 else labels
    image = sitk.GetImageFromArray(np.ascontiguousarray(data))
    if reference is not None:
        ref_size = reference.GetSize()[::-1]
        if ref_size[-labels.ndim:] != labels.shape and ref_size != (1,) + labels.shape:
            raise InputError(f"labels shape {labels.shape} does not match the reference image {ref_size}")
        if reference.GetDimension() == labels.ndim:
            image.CopyInformation(reference)
        else:  # a single-slice 3D reference written as 2D
            image.SetSpacing(reference.GetSpacing()[:2])
            image.SetOrigin(reference.GetOrigin()[:2])
    elif spacing is not None:
        image.SetSpacing(tuple(float(s) for s in reversed(spacing)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), True)
    return path

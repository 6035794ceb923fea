"""Writing small DICOM series with SimpleITK (GDCM) for the reader tests; no pydicom needed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np


def write_dicom_series(folder: Path, array: np.ndarray, spacing=(0.7, 0.6, 2.0), origin=(-5.0, 3.0, 12.0),
                       uid: str = "1.2.826.0.1.3680043.2.1125.1",
                       file_name: Callable[[int], str] = lambda z: f"IM{z:04d}") -> Path:
    """Write ``array`` (Z, Y, X) int16 into ``folder`` (created) as one CT series, one file per slice.

    ``spacing``/``origin`` in SimpleITK's (x, y, z) order; ``uid``: root of the study, series and
    instance UIDs; ``file_name(z)``: the file of slice ``z``. Returns ``folder``.
    """
    import SimpleITK as sitk

    folder.mkdir()
    volume = sitk.GetImageFromArray(array)
    volume.SetSpacing(spacing)
    volume.SetOrigin(origin)
    tags = {"0008|0060": "CT", "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL", "0010|0010": "Test^Phantom",
            "0020|000d": f"{uid}.1", "0020|000e": f"{uid}.2", "0020|0037": "1\\0\\0\\0\\1\\0",
            "0008|103e": "pge-sam test series"}
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.KeepOriginalImageUIDOn()
    for z in range(array.shape[0]):
        s = volume[:, :, z]
        for tag, value in tags.items():
            s.SetMetaData(tag, value)
        s.SetMetaData("0008|0018", f"{uid}.3.{z + 1}")
        s.SetMetaData("0020|0013", str(z + 1))
        s.SetMetaData("0020|0032", "\\".join(str(v) for v in volume.TransformIndexToPhysicalPoint((0, 0, z))))
        writer.SetFileName(str(folder / file_name(z)))
        writer.Execute(s)
    return folder

"""Reading images and writing label volumes with their geometry, through SimpleITK.

Arrays are (Z, Y, X) (SimpleITK's ``GetArrayFromImage`` order); spacing is
returned in the same order. The SimpleITK image read is kept as the geometry
reference so labels are written with the same origin, spacing and direction.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, OutputError

# Label formats, by extension: single-file formats only (a detached header's data file could not be
# replaced atomically). PNG holds 2D labels up to 65535.
FORMATS_3D = (".nii.gz", ".nii", ".nrrd", ".mha", ".tif", ".tiff")
FORMATS_2D = FORMATS_3D + (".png",)
NONFINITE = "contains NaN or infinite values; replace them (e.g. numpy.nan_to_num) before segmenting"


@dataclass
class LoadedImage:
    """``array``: (Z, Y, X) or (H, W); ``spacing``: same order, mm; ``reference``: the SimpleITK image."""

    array: np.ndarray
    spacing: tuple[float, ...]
    reference: object
    source: str


def read_image(path: str | Path) -> LoadedImage:
    """Read NIfTI, NRRD, MHA/MHD, TIFF/PNG or a DICOM series (a folder) with its geometry.

    Multi-component (RGB) images, 4D images, folders with several DICOM
    series and images with NaN/inf voxels are refused with a message saying
    what to do.
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
    _check_finite(array, path, image)
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


def read_labels(path: str | Path, image: LoadedImage) -> np.ndarray:
    """An existing label file that belongs to ``image``, as a uint16 (or, for ids above 65535, uint32) array.

    Refused with a message naming the offending values: another shape or
    geometry (origin, spacing, direction), non-integer values, negative
    values, ids above 4294967295. Ids are never changed.
    """
    loaded = read_image(path)
    labels = loaded.array
    if labels.shape != image.array.shape:
        raise InputError(f"labels {path} have shape {labels.shape}, the image {image.array.shape}; "
                         "give the label file that belongs to this image")
    mismatch = geometry_mismatch(loaded.reference, image.reference)
    if mismatch:
        raise InputError(f"labels {path} do not lie on the image's grid ({mismatch}); "
                         "resample them onto the image first")
    if not np.issubdtype(labels.dtype, np.integer):
        fractional = labels != np.round(labels)
        if fractional.any():
            raise InputError(f"labels {path} hold non-integer values ({_some(labels[fractional])}); "
                             "label ids must be whole numbers")
    if labels.size and labels.min() < 0:
        raise InputError(f"labels {path} hold negative values ({_some(labels[labels < 0])}); "
                         "label ids must be 0 or more")
    top = int(labels.max()) if labels.size else 0
    if top > np.iinfo(np.uint32).max:
        raise InputError(f"labels {path} hold ids above {np.iinfo(np.uint32).max} "
                         f"({_some(labels[labels > np.iinfo(np.uint32).max])}); "
                         "renumber them first")
    return labels.astype(np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32)


def geometry_mismatch(a, b, tolerance: float = 1e-4) -> str | None:
    """How two SimpleITK images' grids differ (origin, spacing, direction), or ``None`` when they agree.

    Spacing and direction are compared with a relative/absolute ``tolerance``;
    origins within ``tolerance * 10`` of the smallest spacing (float32 headers
    round). Images without geometry (``None``) or of different dimension are not compared.
    """
    if a is None or b is None or a.GetDimension() != b.GetDimension():
        return None
    spacing_a, spacing_b = np.array(a.GetSpacing()), np.array(b.GetSpacing())
    if not np.allclose(spacing_a, spacing_b, rtol=tolerance, atol=1e-9):
        return f"spacing {tuple(spacing_a.round(6))} vs {tuple(spacing_b.round(6))} mm"
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=10 * tolerance * spacing_b.min()):
        return f"origin {tuple(np.round(a.GetOrigin(), 4))} vs {tuple(np.round(b.GetOrigin(), 4))} mm"
    if not np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=tolerance):
        return "direction (orientation) differs"
    return None


def _some(values: np.ndarray, n: int = 5) -> str:
    unique = np.unique(values)
    shown = ", ".join(f"{v:g}" for v in unique[:n].tolist())
    return shown + (f", ... ({len(unique)} distinct)" if len(unique) > n else "")


def _check_finite(array: np.ndarray, path: Path, image) -> None:
    """NaN/inf voxels are an :class:`InputError`. SimpleITK reads them in NIfTI files as 0, so NIfTI
    floats are checked on the raw values in the file (:func:`nifti_nonfinite`)."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
    elif path.is_file() and _suffix(path) in (".nii", ".nii.gz") and "float" in image.GetPixelIDTypeAsString():
        bad = nifti_nonfinite(path)
    else:
        return
    if bad:
        raise InputError(f"{path} {NONFINITE} ({bad} voxels)")


# NIfTI datatype code -> numpy kind/size of its floating-point types (complex ones hold float pairs).
_NIFTI_FLOATS = {16: "f4", 64: "f8", 32: "f4", 1792: "f8"}


def nifti_nonfinite(path: str | Path, chunk_bytes: int = 1 << 26) -> int:
    """Number of NaN/inf values stored in a NIfTI-1/-2 file (``.nii`` or ``.nii.gz``), read from the raw
    voxel data (no nibabel); 0 for integer data types. A single-file image only (``.img/.hdr`` pairs are not
    NIfTI files SimpleITK reads through this path)."""
    import gzip
    import struct

    path = Path(path)
    opener = gzip.open if _suffix(path) == ".nii.gz" else open
    with opener(path, "rb") as f:
        header = f.read(540)
        for order in "<>":
            size = struct.unpack(order + "i", header[:4])[0]
            if size in (348, 540):
                break
        else:
            raise InputError(f"{path} is not a NIfTI file (header size field is not 348 or 540)")
        if size == 348:
            dims = struct.unpack(order + "8h", header[40:56])
            datatype = struct.unpack(order + "h", header[70:72])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
        else:
            datatype = struct.unpack(order + "h", header[12:14])[0]
            dims = struct.unpack(order + "8q", header[16:80])
            offset = int(struct.unpack(order + "q", header[168:176])[0])
        if datatype not in _NIFTI_FLOATS:
            return 0
        ndim = max(1, min(int(dims[0]), 7))
        count = int(np.prod([max(1, int(d)) for d in dims[1:ndim + 1]], dtype=np.int64))
        if datatype in (32, 1792):  # complex: two floats per voxel
            count *= 2
        dtype = np.dtype(order + _NIFTI_FLOATS[datatype])
        f.seek(max(offset, size))
        bad, left = 0, count
        step = max(1, chunk_bytes // dtype.itemsize)
        while left > 0:
            data = f.read(min(left, step) * dtype.itemsize)
            if not data:
                break
            values = np.frombuffer(data[: len(data) - len(data) % dtype.itemsize], dtype=dtype)
            bad += int((~np.isfinite(values)).sum())
            left -= values.size
    return bad


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def check_output(path: str | Path, ndim: int, inputs=(), keep: str | Path | None = None, force: bool = False) -> Path:
    """Check a label output path before any work: a known format that holds ``ndim`` dimensions, not one of
    ``inputs`` (or inside an input DICOM folder), not an existing file unless ``force`` or it is ``keep``
    (the labels the result continues from), and a folder that can be written. Returns the path."""
    path = Path(path).expanduser()
    suffix = _suffix(path)
    allowed = FORMATS_3D if ndim == 3 else FORMATS_2D
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name such as {path / ('labels' + allowed[0])}")
    if suffix not in allowed:
        kind = "a 3D label volume" if ndim == 3 else "2D labels"
        extra = " (PNG holds one 2D slice only)" if suffix == ".png" else ""
        raise OutputError(f"cannot write {kind} to {path.name}{extra}; use one of {', '.join(allowed)}")
    for source in inputs:
        source = Path(source)
        if path.exists() and source.exists() and os.path.samefile(path, source):
            raise OutputError(f"{path} is the input image; choose another output file")
        if source.is_dir() and path.parent.exists() and os.path.samefile(path.parent, source):
            raise OutputError(f"{path} lies inside the input DICOM folder {source}; write the labels elsewhere")
    if path.exists():
        same_as_keep = keep is not None and Path(keep).exists() and os.path.samefile(path, keep)
        if not (force or same_as_keep):
            raise OutputError(f"{path} already exists; pass --force to replace it, or choose another file")
        if not os.access(path, os.W_OK):
            raise OutputError(f"{path} exists and is not writable")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"cannot create {path}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".pge-sam-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"cannot write to {folder} ({err.strerror or err}); choose another output folder") from err
    return path


def write_labels(labels: np.ndarray, path: str | Path, reference=None,
                 spacing: tuple[float, ...] | None = None) -> Path:
    """Write an integer label array with the geometry of ``reference`` (a SimpleITK image) or ``spacing``.

    ``labels``: (Z, Y, X) or (H, W), integer. The file type follows the
    extension (:data:`FORMATS_3D`, :data:`FORMATS_2D`); compression is on.
    The write is atomic: a temporary file in the target folder is written,
    read back and compared, synced, then renamed over ``path``. Any failure
    raises :class:`OutputError` and leaves an existing ``path`` untouched.
    """
    import SimpleITK as sitk

    path = Path(path).expanduser()
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be integers, got {labels.dtype}")
    suffix = _suffix(path)
    if suffix not in (FORMATS_3D if labels.ndim == 3 else FORMATS_2D):
        raise OutputError(f"cannot write {labels.ndim}D labels to {path.name}; use one of "
                          f"{', '.join(FORMATS_3D if labels.ndim == 3 else FORMATS_2D)}")
    top = int(labels.max()) if labels.size else 0
    if labels.dtype in (np.int64, np.uint64, np.int32, np.uint32) and top < 65536 and labels.min() >= 0:
        data = labels.astype(np.uint16)
    elif suffix == ".png" and (top > 65535 or labels.min() < 0):
        raise OutputError(f"PNG holds label ids 0..65535; these labels span {labels.min()}..{top}: "
                          "use .nii.gz or .nrrd")
    else:
        data = labels
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        os.close(fd)
    except OSError as err:
        raise OutputError(f"cannot write {path} ({err.strerror or err}); nothing was written") from err
    try:
        sitk.WriteImage(image, tmp, True)
        _verify(tmp, data)
        _fsync(tmp)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
        _fsync(path.parent)
    except (OSError, RuntimeError, OutputError) as err:
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err).strip().splitlines()[-1]
        raise OutputError(f"writing {path} failed ({why}); "
                          + ("the existing file is untouched" if path.exists() else "nothing was written")) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _verify(tmp: str, expected: np.ndarray) -> None:
    """Read a just-written label file back; a short or damaged file is an :class:`OutputError`."""
    import SimpleITK as sitk

    try:
        back = sitk.GetArrayFromImage(sitk.ReadImage(tmp))
    except RuntimeError as err:
        raise OutputError(f"the written file cannot be read back: {str(err).strip().splitlines()[-1]}") from err
    if back.shape != expected.shape or not np.array_equal(back, expected):
        raise OutputError("the written file does not read back as the labels written (disk full?)")


def _fsync(path: str | Path) -> None:
    """Flush a file to disk (an error is a failed write); for a folder (the rename), best effort."""
    folder = os.path.isdir(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if folder:
            return  # folders cannot be opened on every platform (Windows)
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(fd)


def _mode_for(path: Path) -> int:
    """An existing file's permissions, else the default for a new file (0o666 less the umask)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask

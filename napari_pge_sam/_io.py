"""npe2 reader (NIfTI, NRRD, MetaImage, DICOM folders) and labels writer that keep the image geometry.

Reading and writing go through the core's SimpleITK I/O (:mod:`pge_sam.io`):
its checks (NaN, RGB, 4D, several DICOM series) and its atomic, read-back
verified label write.

Axis orders. napari layers are in array-axis order: (Z, Y, X) for volumes,
(Y, X) for 2D. SimpleITK's origin, spacing and direction are in physical
(x, y, z) order, and its direction is a row-major matrix whose columns are
the physical directions of the x, y, z index axes. A voxel at array index
``i`` (z, y, x) lies at physical point (x, y, z)::

    p = origin + D @ diag(spacing) @ reversed(i)

and at napari world point ``w = reversed(p)`` (world axes z, y, x).

Mapping to napari (the choice made here). Whatever the direction:

* ``scale`` = spacing, (z, y, x);
* ``translate`` = origin, (z, y, x);
* ``affine`` (only when the direction is not the identity): the rotation
  ``R = reversed D`` (``D[::-1, ::-1]``, the direction in array-axis order)
  about the origin, i.e. the (ndim+1)-square matrix ``[[R, t - R t], [0, 1]]``
  with ``t`` = translate.

napari applies ``affine`` after scale and translate, so
``w = R (diag(scale) i + t) + (t - R t) = R diag(scale) i + t``: exactly the
SimpleITK mapping above. ``scale`` and ``translate`` keep their plain meaning
(voxel size, position of voxel 0) for oblique images too, and axis-aligned
images get no affine at all. Reflections (a direction with determinant -1,
e.g. LAS-stored NIfTI) are rotations-with-flip in ``R`` and work the same way.

A 2D image that is a single-slice 3D file (the core reads it as (H, W)) is
shown with its in-plane (x, y) geometry; the full 3D geometry stays in the
layer metadata so labels are written back as a one-slice volume on the same grid.

Layer metadata set by the reader (plain lists, SimpleITK (x, y, z) order)::

    {"pge_sam_source": "<path>",
     "pge_sam_geometry": {"origin": [...], "spacing": [...], "direction": [... row-major ...]}}

The labels writer uses that geometry when the layer carries it and its
transform still agrees with it (exact values, no float round trip through
napari); otherwise it rebuilds origin, spacing and direction from the
layer's own data-to-world transform (scale, translate, rotate, shear,
affine), which is what the widget's labels layer carries (it copies the
image layer's transform, not its metadata). Both give the same grid for
images opened with this reader.

Writer errors are :class:`pge_sam.errors.OutputError` (not ``ValueError``):
napari turns a ``ValueError`` raised by a writer into a misleading
"no writer found" warning and drops the message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

READ_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
SOURCE_KEY = "pge_sam_source"
GEOMETRY_KEY = "pge_sam_geometry"
IDENTITY_ATOL = 1e-12  # a direction closer than this to the identity gets no affine
AGREE_TOL = 1e-6  # metadata geometry vs. layer transform (relative to the voxel size)


# -- reading ---------------------------------------------------------------------------------------------------
def get_reader(path):
    """npe2 reader hook: a reader function for image files / DICOM folders this plugin reads, else ``None``.

    ``path``: a path or a list of paths (napari's stack); every one must be readable.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(_readable(Path(p)) for p in paths):
        return None
    return read_layers


def read_layers(path) -> list[tuple]:
    """Read each path with :func:`pge_sam.io.read_image`: ``[(array, kwargs, "image"), ...]``.

    ``array``: (Z, Y, X) or (H, W); ``kwargs``: ``name``, ``scale``, ``translate``,
    ``affine`` (oblique images only) and ``metadata`` (see the module docstring).
    Unreadable or refused images raise :class:`pge_sam.errors.InputError` with what to do.
    """
    from pge_sam.io import read_image

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers = []
    for p in paths:
        loaded = read_image(p)
        geometry = geometry_of(loaded.reference)
        kwargs = {"name": _stem(Path(p)), **napari_transform(geometry, loaded.array.ndim),
                  "metadata": {SOURCE_KEY: str(p), GEOMETRY_KEY: geometry}}
        layers.append((loaded.array, kwargs, "image"))
    return layers


def _readable(path: Path) -> bool:
    if path.is_dir():
        return _has_dicom(path)
    return path.name.lower().endswith(READ_SUFFIXES)


def _has_dicom(folder: Path) -> bool:
    """Cheap check: a ``*.dcm`` file in ``folder``, else a DICOM series GDCM finds there."""
    import SimpleITK as sitk

    try:
        if any(p.suffix.lower() == ".dcm" and p.is_file() for p in folder.iterdir()):
            return True
    except OSError:
        return False
    return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in READ_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def suggested_labels_path(source: str) -> str:
    """Where the save dialog starts: ``<stem>_labels.nii.gz`` beside the image read from ``source`` (a file of any
    readable format, or a DICOM folder), else ``labels.nii.gz``."""
    return str(Path(source).with_name(_stem(Path(source)) + "_labels.nii.gz")) if source else "labels.nii.gz"


SAVE_FILTER = "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)"  # the save dialog's file types


def save_labels_layer(layer, path: str) -> str:
    """Save the Labels ``layer`` at ``path`` through this plugin's writer (:func:`write_labels_layer`); returns the
    path written. Raises :class:`pge_sam.errors.OutputError` saying what to do (napari's own refusals included)."""
    from pge_sam.errors import OutputError, PgeSamError

    try:
        written = layer.save(str(path), plugin="pge-sam")
    except PgeSamError:
        raise
    except (OSError, ValueError) as err:
        raise OutputError(str(err)) from err
    if not written:
        raise OutputError(f"no writer for {path}; use .nii.gz, .nii, .nrrd or .mha")
    return written[0]


# -- geometry ---------------------------------------------------------------------------------------------------
def geometry_of(image) -> dict:
    """A SimpleITK image's origin, spacing and direction (row-major) as plain lists, (x, y, z) order."""
    return {"origin": [float(v) for v in image.GetOrigin()],
            "spacing": [float(v) for v in image.GetSpacing()],
            "direction": [float(v) for v in image.GetDirection()]}


def napari_transform(geometry: dict, ndim: int) -> dict:
    """``scale``, ``translate`` and (oblique only) ``affine`` for an ``ndim``-D array (array-axis order).

    ``geometry``: SimpleITK order (see :func:`geometry_of`); a 3D geometry for a
    2D array (single-slice volume) contributes its in-plane (x, y) part.
    """
    dim = len(geometry["origin"])
    direction = np.asarray(geometry["direction"], float).reshape(dim, dim)[:ndim, :ndim]
    scale = np.asarray(geometry["spacing"], float)[:ndim][::-1]
    translate = np.asarray(geometry["origin"], float)[:ndim][::-1]
    out = {"scale": tuple(scale.tolist()), "translate": tuple(translate.tolist())}
    rotation = direction[::-1, ::-1]
    if not np.allclose(rotation, np.eye(ndim), rtol=0, atol=IDENTITY_ATOL):
        affine = np.eye(ndim + 1)
        affine[:ndim, :ndim] = rotation
        affine[:ndim, ndim] = translate - rotation @ translate
        out["affine"] = affine
    return out


def data_to_world(meta: dict, ndim: int) -> np.ndarray:
    """The (ndim+1)-square data-to-world matrix (array-axis order) of a layer's state ``meta``.

    Composes napari's ``scale``, ``translate``, ``rotate``, ``shear`` and then ``affine``.
    """
    from napari.utils.transforms import Affine

    inner = Affine(scale=meta.get("scale", (1.0,) * ndim), translate=meta.get("translate", (0.0,) * ndim),
                   rotate=meta.get("rotate"), shear=meta.get("shear"), ndim=ndim).affine_matrix
    affine = meta.get("affine")
    affine = getattr(affine, "affine_matrix", affine)  # an napari Affine or a matrix
    outer = np.eye(ndim + 1) if affine is None else np.asarray(affine, float)
    return outer @ inner


def _geometry_matrix(geometry: dict, ndim: int) -> np.ndarray:
    tf = napari_transform(geometry, ndim)
    inner = np.eye(ndim + 1)
    inner[:ndim, :ndim] = np.diag(tf["scale"])
    inner[:ndim, ndim] = tf["translate"]
    return tf.get("affine", np.eye(ndim + 1)) @ inner


def geometry_from_matrix(matrix: np.ndarray) -> dict:
    """Origin, spacing, direction (SimpleITK order, as in :func:`geometry_of`) of a data-to-world matrix.

    Raises :class:`pge_sam.errors.OutputError` for a sheared or degenerate
    transform, which no image file can store.
    """
    from pge_sam.errors import OutputError

    ndim = matrix.shape[0] - 1
    linear, offset = matrix[:ndim, :ndim], matrix[:ndim, ndim]
    spacing = np.linalg.norm(linear, axis=0)  # voxel size along each array axis
    if not np.all(spacing > 0):
        raise OutputError("the layer's transform has a zero scale; set a positive scale before saving")
    direction = linear / spacing
    if not np.allclose(direction.T @ direction, np.eye(ndim), rtol=0, atol=1e-6):
        raise OutputError("the layer's transform has shear, which NIfTI/NRRD/MHA cannot store; "
                          "reset the layer's shear (or save the labels from the image's original grid)")
    return {"origin": offset[::-1].tolist(), "spacing": spacing[::-1].tolist(),
            "direction": direction[::-1, ::-1].ravel().tolist()}


def _agree(a: np.ndarray, b: np.ndarray) -> bool:
    size = max(float(np.abs(a[:-1, :-1]).max()), 1e-12)
    return a.shape == b.shape and np.allclose(a, b, rtol=AGREE_TOL, atol=AGREE_TOL * size)


def reference_image(geometry: dict, shape: tuple[int, ...]):
    """A small-typed SimpleITK image of array ``shape`` (Z, Y, X) with ``geometry`` (a grid for writing labels)."""
    import SimpleITK as sitk

    image = sitk.Image([int(n) for n in shape[::-1]], sitk.sitkUInt8)
    image.SetOrigin(geometry["origin"])
    image.SetSpacing(geometry["spacing"])
    image.SetDirection(geometry["direction"])
    return image


# -- writing ----------------------------------------------------------------------------------------------------
def write_labels_layer(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: labels ``data`` ((Z, Y, X) or (H, W), integer) to NIfTI/NRRD/MHA at ``path``.

    Geometry: the layer's ``metadata["pge_sam_geometry"]`` when present and
    consistent with its transform, else its ``scale``/``translate``/``rotate``/
    ``shear``/``affine`` (see the module docstring). The write is atomic and
    read back (:func:`pge_sam.io.write_labels`). Returns ``[path]``; raises
    :class:`pge_sam.errors.OutputError` saying what to do.
    """
    from pge_sam.errors import InputError, OutputError
    from pge_sam.io import write_labels

    if isinstance(data, (list, tuple)):
        raise OutputError("multiscale labels cannot be saved as one image; save a single-resolution labels layer")
    labels = np.asarray(data)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise OutputError(f"labels hold {labels.dtype} values; label ids must be integers: convert the data first, "
                          "e.g. layer.data = layer.data.astype(numpy.uint16)")
    if labels.ndim not in (2, 3):
        raise OutputError(f"labels are {labels.ndim}D; only 2D and 3D labels can be saved")
    meta = meta or {}
    layer_matrix = data_to_world(meta, labels.ndim)
    geometry = (meta.get("metadata") or {}).get(GEOMETRY_KEY)
    if geometry is not None and _fits(geometry, labels.ndim) and _agree(_geometry_matrix(geometry, labels.ndim),
                                                                         layer_matrix):
        if len(geometry["origin"]) == 3 and labels.ndim == 2:
            labels = labels[None]  # one slice of the original volume: write it back as such
    else:
        geometry = geometry_from_matrix(layer_matrix)
    try:
        written = write_labels(labels, path, reference=reference_image(geometry, labels.shape))
    except InputError as err:  # napari hides ValueErrors raised by writers
        raise OutputError(str(err)) from err
    return [str(written)]


def _fits(geometry: dict, ndim: int) -> bool:
    try:
        dim = len(geometry["origin"])
        return (dim == ndim or (dim == 3 and ndim == 2)) and len(geometry["spacing"]) == dim \
            and len(geometry["direction"]) == dim * dim
    except (KeyError, TypeError):
        return False

"""DM-Seg-mini targets: 2D images with one ground-truth mask each, from offline data.

MRI (``modality="mri"``): slices of the MNI ICBM152 2009 T1 (see
:mod:`pge_sam.samples`), image scaled to [0, 1] (stored value / 255). Three
structures, from the template's probability maps p_gm, p_wm (stored / 255):

* ``wm``: p_wm > 0.5;
* ``gm``: p_gm > 0.5;
* ``brain``: p_gm + p_wm > 0.5 (parenchyma more likely than not), holes filled,
  so the ventricles count as brain as in a brain-extraction mask.

Each mask is reduced to its largest 4-connected component on the slice and
kept only if it covers at least :data:`MRI_MIN_AREA` pixels (1 mm^2 each).
Slices: :data:`SLICES_PER_ORIENTATION` per orientation (axial = fixed z,
coronal = fixed y, sagittal = fixed x), evenly spaced through the brain's
extent along that axis at fractions 0.2, 0.4, 0.6, 0.8 (never the
mid-sagittal plane, which lies between the hemispheres). Coronal and sagittal slices
are flipped vertically so superior is up. The candidate list is ordered so
that any prefix is diverse: centre slices first, and within one slice position
the (orientation, structure) pairs rotate, so the first three targets cover
all three orientations and all three structures.

CT-like (``modality="ct"``): the regions of the 256 x 256 Shepp-Logan phantom
(:func:`pge_sam.samples.shepp_logan_regions`: the head, then each distinct
intensity region by decreasing area), image in [0, 1].

``build_targets`` takes the first ``count`` candidates (defaults in
:data:`DEFAULT_COUNTS` / :data:`QUICK_COUNTS`); a non-zero ``seed`` shuffles
the candidate order first (``numpy.random.default_rng(seed)``), seed 0 keeps
the canonical order. Same arguments, same targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

MODALITIES = ("mri", "ct")
MRI_KINDS = ("wm", "gm", "brain")
ORIENTATIONS = (("axial", "z"), ("coronal", "y"), ("sagittal", "x"))
SLICES_PER_ORIENTATION = 4
MRI_MIN_AREA = 400
PHANTOM_SIZE = 256
DEFAULT_COUNTS = {"mri": 6, "ct": 4}
QUICK_COUNTS = {"mri": 2, "ct": 2}


@dataclass(frozen=True, eq=False)
class Target:
    """One benchmark target.

    ``image``: float32 ``(H, W)`` (rows, cols) in [0, 1]; ``mask``: bool
    ``(H, W)`` ground truth, non-empty; ``modality``: "mri" or "ct";
    ``source``: where the data comes from; ``name``: unique id such as
    ``"mni_wm_axial_z090"``; ``image_id``: targets with the same ``image_id``
    share the same image (one encoder pass serves them all); defaults to ``name``.
    """

    image: np.ndarray
    mask: np.ndarray
    modality: str
    source: str
    name: str
    image_id: str = ""

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise InputError(f"target modality {self.modality!r} is unknown; use one of {MODALITIES}")
        if self.image.ndim != 2 or self.mask.shape != self.image.shape:
            raise InputError(
                f"target {self.name!r}: image {self.image.shape} and mask {self.mask.shape} must be the same 2D shape"
            )
        if self.image.dtype != np.float32 or self.mask.dtype != bool:
            raise InputError(f"target {self.name!r}: image must be float32 and mask bool")
        if not self.mask.any():
            raise InputError(f"target {self.name!r}: the mask is empty")
        if not self.image_id:
            object.__setattr__(self, "image_id", self.name)


def build_targets(modality: str, quick: bool = False, seed: int = 0, count: int | None = None) -> list[Target]:
    """The benchmark targets of ``modality`` ("mri" or "ct"), in a fixed order.

    ``count``: how many (default :data:`QUICK_COUNTS` when ``quick`` else
    :data:`DEFAULT_COUNTS`); more than the candidates available is an error.
    """
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    if count is None:
        count = (QUICK_COUNTS if quick else DEFAULT_COUNTS)[modality]
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise InputError(f"count must be a positive integer (got {count!r})")
    candidates = _mri_candidates() if modality == "mri" else _ct_candidates()
    if count > len(candidates):
        raise InputError(f"{modality} has {len(candidates)} candidate targets; ask for at most that many (got {count})")
    if seed:
        order = np.random.default_rng(seed).permutation(len(candidates))
        candidates = [candidates[i] for i in order]
    return candidates[:count]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest 4-connected component of bool ``mask`` (H, W); ties go to the lowest label; empty stays empty."""
    from scipy import ndimage as ndi

    labels, count = ndi.label(mask)
    if count == 0:
        return mask.copy()
    areas = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(areas)) + 1)


def _mri_candidates() -> list[Target]:
    """Candidate MRI targets in canonical order."""
    from scipy import ndimage as ndi

    from ..samples import load_mni

    t1 = load_mni("t1")[0] / np.float32(255.0)
    p_gm = load_mni("gm")[0] / np.float32(255.0)
    p_wm = load_mni("wm")[0] / np.float32(255.0)
    brain3d = (p_gm + p_wm) > 0.5
    fractions = np.arange(1, SLICES_PER_ORIENTATION + 1) / (SLICES_PER_ORIENTATION + 1)
    centre_out = sorted(range(SLICES_PER_ORIENTATION), key=lambda i: (abs(fractions[i] - 0.5), i))
    extents = []  # (first, last) index covered by the brain along each axis
    for axis in range(3):
        covered = np.flatnonzero(brain3d.any(axis=tuple(a for a in range(3) if a != axis)))
        extents.append((int(covered[0]), int(covered[-1])))

    def take(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
        plane = np.take(volume, index, axis=axis)
        return plane if axis == 0 else plane[::-1]

    def structure(kind: str, axis: int, index: int) -> np.ndarray:
        if kind == "wm":
            mask = take(p_wm, axis, index) > 0.5
        elif kind == "gm":
            mask = take(p_gm, axis, index) > 0.5
        else:
            mask = take(p_gm, axis, index) + take(p_wm, axis, index) > 0.5
        mask = _largest_component(mask)
        return ndi.binary_fill_holes(mask) if kind == "brain" else mask

    candidates = []
    for rank, slot in enumerate(centre_out):
        for shift in range(len(MRI_KINDS)):
            for axis, (orientation, letter) in enumerate(ORIENTATIONS):
                kind = MRI_KINDS[(axis + shift + rank) % len(MRI_KINDS)]
                first, last = extents[axis]
                index = int(round(first + fractions[slot] * (last - first)))
                mask = structure(kind, axis, index)
                if mask.sum() < MRI_MIN_AREA:
                    continue
                image = np.ascontiguousarray(take(t1, axis, index), dtype=np.float32)
                tag = f"{orientation}_{letter}{index:03d}"
                candidates.append(
                    Target(
                        image=image,
                        mask=np.ascontiguousarray(mask),
                        modality="mri",
                        source="MNI ICBM152 2009c sym (nilearn)",
                        name=f"mni_{kind}_{tag}",
                        image_id=f"mni_t1_{tag}",
                    )
                )
    return candidates


def _ct_candidates() -> list[Target]:
    """Candidate CT-like targets: the Shepp-Logan regions in :func:`shepp_logan_regions` order."""
    from ..samples import shepp_logan, shepp_logan_regions

    image = shepp_logan(PHANTOM_SIZE)
    candidates = []
    for number, mask in enumerate(shepp_logan_regions(PHANTOM_SIZE)):
        if number == 0:
            name = "shepp_logan_head"
        else:
            level = float(np.median(image[mask]))
            name = f"shepp_logan_r{number:02d}_level{level:.2f}"
        candidates.append(
            Target(
                image=image,
                mask=mask,
                modality="ct",
                source="Shepp-Logan phantom (scikit-image)",
                name=name,
                image_id=f"shepp_logan_{PHANTOM_SIZE}",
            )
        )
    return candidates

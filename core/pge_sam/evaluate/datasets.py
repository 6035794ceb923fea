"""DM-Seg-mini v2 targets: 2D slices with one well-posed ground-truth mask each, from offline data.

Every target is a structure a user would click, with a defined extent; the
candidate lists are split into a **development** split (tune methods on it)
and a **test** split (report on it), by slice position, so no slice serves
both. Exact and mirror duplicates (the MNI template and the phantom are
left-right symmetric) are dropped by hashing image and mask, flipped and not.

MRI (``modality="mri"``): slices of the MNI ICBM152 2009c symmetric T1 (see
:mod:`pge_sam.samples`), image scaled to [0, 1] (stored value / 255), from
the template's probability maps p_gm, p_wm (stored / 255). Structures:

* ``brain``: p_gm + p_wm > 0.5, holes filled, largest component. Nested
  (a click inside it is also a click inside white matter), so its episode
  starts with its bounding box (``box_first``);
* ``wm_left`` / ``wm_right``: p_wm > 0.5 in one hemisphere (x below / above
  the mid-sagittal plane), largest component, kept only on slices where that
  component does not touch the other hemisphere's white matter (a defined
  extent, no arbitrary cut at the midline). Axial and coronal slices
  alternate the hemisphere by slice position (never both: mirror images);
* ``gm_left`` / ``gm_right``: the same rule for p_gm > 0.5, the
  thin-structure category (a 2-4 px ribbon);
* ``ventricles``: the holes of the brain mask (filled minus parenchyma)
  with T1 below the brain's 10th percentile, largest component;
* ``deep_gm_left`` / ``deep_gm_right``: the largest p_gm > 0.5 component of
  one hemisphere lying wholly at least :data:`DEEP_MM` mm inside the brain
  (basal ganglia, thalamus: not connected to the cortex);
* ``corpus_callosum``: the largest p_wm > 0.5 component of the mid-sagittal
  slice (its only white matter of any size), test split.

Sagittal slices are taken in the left hemisphere only (mirror images). Slice
positions: :data:`POSITIONS` per orientation at fractions (i + 0.5) / n of
the brain's extent; every third position (1, 4, 7, ...) is development.

CT-like (``modality="ct"``): slices of the modified 3D Shepp-Logan phantom
(:func:`pge_sam.samples.shepp_logan_3d`, 128^3) in three orientations, with
the same dev/test rule; each region of the phantom cut by the slice, its
largest 2D component: the head (box first: it holds everything else), the
brain level (box first: it surrounds the ventricles), the skull (thin), the
ventricles (one per slice, alternating: mirror images), the superior
structure. Coronal and sagittal slices are flipped so superior is up.

Masks smaller than :data:`MIN_AREA` pixels are dropped. ``build_targets``
returns the split's candidates in a fixed interleaved order (a prefix covers
every orientation and structure); ``count`` takes a prefix, a non-zero
``seed`` shuffles first. Same arguments, same targets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import InputError

MODALITIES = ("mri", "ct")
SPLITS = ("dev", "test")
ORIENTATIONS = (("axial", "z"), ("coronal", "y"), ("sagittal", "x"))
POSITIONS = {"mri": 12, "ct": 10}
MIN_AREA = {"mri": 150, "ct": 40}
PHANTOM_SIZE = 128
QUICK_COUNTS = {"mri": 2, "ct": 2}
DEEP_MM = 8.0


@dataclass(frozen=True, eq=False)
class Target:
    """One benchmark target.

    ``image``: float32 ``(H, W)`` (rows, cols) in [0, 1]; ``mask``: bool
    ``(H, W)`` ground truth, non-empty; ``modality``: "mri" or "ct";
    ``source``: where the data comes from; ``name``: unique id such as
    ``"mni_wm_left_axial_z090"``; ``image_id``: targets with the same
    ``image_id`` share the same image (one encoder pass serves them all);
    ``structure``: the kind (``"brain"``, ``"gm_left"``, ...); ``split``:
    "dev" or "test"; ``box_first``: the episode starts with the bounding box
    (nested structures, where a first click is ambiguous).
    """

    image: np.ndarray
    mask: np.ndarray
    modality: str
    source: str
    name: str
    image_id: str = ""
    structure: str = ""
    split: str = "test"
    box_first: bool = False

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
        if self.split not in SPLITS:
            raise InputError(f"target {self.name!r}: split must be one of {SPLITS}")
        if not self.image_id:
            object.__setattr__(self, "image_id", self.name)

    def digest(self, mirrored: bool = False) -> str:
        """blake2b of image and mask (left-right flipped when ``mirrored``): equal digests = duplicate targets."""
        image, mask = (self.image[:, ::-1], self.mask[:, ::-1]) if mirrored else (self.image, self.mask)
        h = hashlib.blake2b(digest_size=16)
        for a in (np.ascontiguousarray(image), np.ascontiguousarray(mask)):
            h.update(str(a.shape).encode())
            h.update(a.data)
        return h.hexdigest()


def build_targets(modality: str, quick: bool = False, seed: int = 0, count: int | None = None,
                  split: str = "test") -> list[Target]:
    """The targets of ``modality`` ("mri" or "ct") in ``split`` ("test" or "dev"), in a fixed order.

    ``count``: how many (default: all of the split, :data:`QUICK_COUNTS` when
    ``quick``); more than the split holds is an error.
    """
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    candidates = [t for t in _candidates(modality) if t.split == split]
    if count is None:
        count = QUICK_COUNTS[modality] if quick else len(candidates)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise InputError(f"count must be a positive integer (got {count!r})")
    if count > len(candidates):
        raise InputError(f"the {modality} {split} split has {len(candidates)} targets; ask for at most that many "
                         f"(got {count})")
    if seed:
        order = np.random.default_rng(seed).permutation(len(candidates))
        candidates = [candidates[i] for i in order]
    return candidates[:count]


@lru_cache(maxsize=2)
def _candidates(modality: str) -> tuple[Target, ...]:
    found = _mri_candidates() if modality == "mri" else _ct_candidates()
    seen: set[str] = set()
    unique = []
    for target in found:
        if target.digest() in seen or target.digest(mirrored=True) in seen:
            continue
        seen.add(target.digest())
        unique.append(target)
    # interleave: round-robin over structures, so any prefix covers all of them
    by_kind: dict[str, list[Target]] = {}
    for target in unique:
        by_kind.setdefault(target.structure, []).append(target)
    ordered = []
    while any(by_kind.values()):
        for kind in list(by_kind):
            if by_kind[kind]:
                ordered.append(by_kind[kind].pop(0))
    return tuple(ordered)


def _largest(mask: np.ndarray) -> np.ndarray:
    """Largest 4-connected component of bool ``mask`` (H, W); empty stays empty."""
    from scipy import ndimage as ndi

    labels, count = ndi.label(mask)
    if count == 0:
        return mask.copy()
    return labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1


def _separate(component: np.ndarray, whole: np.ndarray) -> bool:
    """Whether ``component`` is a whole connected component of ``whole`` (it does not run on past a cut)."""
    from scipy import ndimage as ndi

    labels, _ = ndi.label(whole)
    ids = np.unique(labels[component])
    return len(ids) == 1 and ids[0] > 0 and int((labels == ids[0]).sum()) == int(component.sum())


def _positions(extent: tuple[int, int], n: int) -> list[tuple[int, str]]:
    first, last = extent
    return [(int(round(first + (i + 0.5) / n * (last - first))), "dev" if i % 3 == 1 else "test") for i in range(n)]


def _extents(mask3d: np.ndarray) -> list[tuple[int, int]]:
    out = []
    for axis in range(3):
        covered = np.flatnonzero(mask3d.any(axis=tuple(a for a in range(3) if a != axis)))
        out.append((int(covered[0]), int(covered[-1])))
    return out


def _take(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Slice ``index`` along ``axis``, superior up for coronal and sagittal (axis 0 runs inferior -> superior)."""
    plane = np.take(volume, index, axis=axis)
    return plane if axis == 0 else plane[::-1]


def _deep(tissue: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Largest component of bool ``tissue`` (H, W) whose every pixel is at least DEEP_MM inside ``brain``."""
    from scipy import ndimage as ndi

    depth = ndi.distance_transform_edt(brain)
    labels, count = ndi.label(tissue)
    if count == 0:
        return tissue & False
    shallowest = ndi.minimum(depth, labels, index=np.arange(1, count + 1))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    sizes = np.where(np.asarray(shallowest) >= DEEP_MM, sizes, 0)
    return labels == int(np.argmax(sizes)) + 1 if sizes.max() > 0 else tissue & False


def _mri_candidates() -> list[Target]:
    from scipy import ndimage as ndi

    from ..samples import load_mni

    t1 = load_mni("t1")[0] / np.float32(255.0)
    p_gm = load_mni("gm")[0] / np.float32(255.0)
    p_wm = load_mni("wm")[0] / np.float32(255.0)
    gm3, wm3 = p_gm > 0.5, p_wm > 0.5
    parenchyma = (p_gm + p_wm) > 0.5
    mid = t1.shape[2] // 2  # x index of the mid-sagittal plane (the template is symmetric about it)
    xs = np.arange(t1.shape[2])
    left3 = np.broadcast_to(xs < mid, t1.shape)
    min_area = MIN_AREA["mri"]
    out: list[Target] = []

    def add(kind, mask, image, tag, split, box_first=False):
        if mask.sum() >= min_area:
            out.append(Target(np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(mask), "mri",
                              "MNI ICBM152 2009c sym (nilearn)", f"mni_{kind}_{tag}", f"mni_t1_{tag}", kind,
                              split, box_first))

    for axis, (orientation, letter) in enumerate(ORIENTATIONS):
        extent = _extents(parenchyma)[axis]
        if axis == 2:
            extent = (extent[0], mid - 6)  # left hemisphere only, off the midline
        for rank, (index, split) in enumerate(_positions(extent, POSITIONS["mri"])):
            image = _take(t1, axis, index)
            gm, wm, par = _take(gm3, axis, index), _take(wm3, axis, index), _take(parenchyma, axis, index)
            tag = f"{orientation}_{letter}{index:03d}"
            brain = ndi.binary_fill_holes(_largest(par))
            add("brain", brain, image, tag, split, box_first=True)
            if axis == 2:
                sides = [("left", np.ones_like(wm))]
            else:
                left = _take(left3, axis, index)
                sides = [("left", left)] if rank % 2 == 0 else [("right", ~left)]
            for side, half in sides:
                for kind, tissue in (("wm", wm), ("gm", gm)):
                    piece = _largest(tissue & half)
                    if axis == 2 or _separate(piece, tissue):
                        add(f"{kind}_{side}", piece, image, tag, split)
                add(f"deep_gm_{side}", _deep(gm & half, brain), image, tag, split)
            brain_values = image[par]
            holes = brain & ~par & (image < np.quantile(brain_values, 0.10)) if brain_values.size else brain & False
            add("ventricles", _largest(holes), image, tag, split)
    cc = _take(wm3, 2, mid)
    add("corpus_callosum", _largest(cc), _take(t1, 2, mid), f"sagittal_x{mid:03d}", "test")
    return out


def _ct_candidates() -> list[Target]:
    from scipy import ndimage as ndi

    from ..samples import shepp_logan_3d

    volume, regions = shepp_logan_3d(PHANTOM_SIZE)
    named = dict(regions)
    head = named["head"]
    mid = PHANTOM_SIZE // 2
    kinds = [("head", "head", True), ("level0.20_1", "brain", True), ("level1.00_1", "skull", False),
             ("level0.30_1", "superior_structure", False)]
    ventricles = [name for name in named if name.startswith("level0.00_")]
    out: list[Target] = []
    for axis, (orientation, letter) in enumerate(ORIENTATIONS):
        extent = _extents(head)[axis]
        if axis == 2:
            extent = (extent[0], mid - 1)  # one side only: the phantom is left-right symmetric
        for rank, (index, split) in enumerate(_positions(extent, POSITIONS["ct"])):
            image = _take(volume, axis, index)
            tag = f"{orientation}_{letter}{index:03d}"
            chosen = kinds + [(ventricles[rank % len(ventricles)], "ventricle", False)]
            for region, kind, box_first in chosen:
                mask = _largest(_take(named[region], axis, index))
                if kind in ("head", "brain"):
                    mask = ndi.binary_fill_holes(mask) if kind == "head" else mask
                if mask.sum() >= MIN_AREA["ct"]:
                    out.append(Target(np.ascontiguousarray(image), np.ascontiguousarray(mask), "ct",
                                      "modified 3D Shepp-Logan phantom (pge_sam.samples)", f"sl3d_{kind}_{tag}",
                                      f"sl3d_{tag}", kind, split, box_first))
    return out

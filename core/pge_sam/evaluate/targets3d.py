"""3D benchmark targets: one volume and one well-posed 3D ground-truth mask each, from offline data.

All arrays are ``(Z, Y, X)``; axis 0 is the slicing axis of the 3D protocol.

MRI (``modality="mri"``): the MNI ICBM152 2009c symmetric template
(:func:`pge_sam.samples.load_mni`: T1, p_gm, p_wm; stored values 0..255,
probabilities are value / 255). To fit the benchmark's time budget the
template is **cropped** to the bounding box of the brain plus
:data:`MRI_MARGIN_MM` mm (the x range symmetric about the mid-sagittal
plane x = X // 2) and **downsampled by 2** (a [1, 2, 1] / 4 binomial filter
along each axis, then every second voxel, the mid-sagittal plane kept on the
grid): 1 mm -> 2 mm voxels, spacing (2, 2, 2). The structures are defined on
that 2 mm grid from the filtered T1 and probability maps:

* ``brain``: p_gm + p_wm > 0.5, largest 6-connected component, holes filled
  in 3D (the whole brain with its ventricles; cerebellum and brain stem
  included);
* ``wm_left`` / ``wm_right``: p_wm > 0.5 with x < mid (left) or x > mid
  (right) (the mid-sagittal plane x = mid belongs to neither), largest
  component of each half;
* ``ventricle_left`` / ``ventricle_right``: the dark holes of the brain,
  ``brain & ~(p_gm + p_wm > 0.5) & (T1 < 10th percentile of T1 in the
  parenchyma)``, in one half (same cut), largest component: the lateral
  ventricle of that hemisphere.

Deep grey nuclei are left out: in this template the p_gm > 0.5 voxels of the
basal ganglia and thalamus connect to the cortex in 3D (the only p_gm > 0.5
components lying wholly >= 8 mm inside the brain have < 30 voxels at 1 mm).

Split (by structure and hemisphere): ``brain``, ``wm_left`` and
``ventricle_left`` are **test**; ``wm_right`` and ``ventricle_right`` are
**dev**. The template is exactly left-right symmetric, so each dev target is
the mirror image of a test target: dev is for tuning parameters and smoke
runs, not an independent sample.

CT-like (``modality="ct"``): the modified 3D Shepp-Logan phantom
(:func:`pge_sam.samples.shepp_logan_3d`, :data:`PHANTOM_SIZE`^3, noiseless,
unit spacing) with its regions as defined there: ``head`` (holes filled),
``brain`` (level 0.20, its holes kept), ``skull`` (level 1.00, a thin shell),
``superior_structure`` (level 0.30), ``ventricle_large`` (level0.00_1) and
``ventricle_small`` (level0.00_2, the other ventricle, not a mirror image).
Test: head, brain, superior_structure, ventricle_large; dev: skull,
ventricle_small.

Targets of one modality share one volume array (read-only). ``quick=True``
returns only :data:`QUICK_TARGETS` (one small target per modality).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import InputError

MODALITIES_3D = ("mri", "ct")
SPLITS_3D = ("dev", "test")
MRI_MARGIN_MM = 8
PHANTOM_SIZE = 128
MRI_SOURCE = "MNI ICBM152 2009c sym (nilearn), cropped, 2 mm"
CT_SOURCE = "modified 3D Shepp-Logan phantom (pge_sam.samples)"
# structure -> split; the order is the order of build_targets3d's list
MRI_SPLIT = {"brain": "test", "wm_left": "test", "ventricle_left": "test", "wm_right": "dev", "ventricle_right": "dev"}
CT_REGIONS = {"head": ("head", "test"), "level0.20_1": ("brain", "test"),
              "level0.30_1": ("superior_structure", "test"), "level0.00_1": ("ventricle_large", "test"),
              "level1.00_1": ("skull", "dev"), "level0.00_2": ("ventricle_small", "dev")}
QUICK_TARGETS = {("mri", "test"): "mni_ventricle_left", ("mri", "dev"): "mni_ventricle_right",
                 ("ct", "test"): "sl3d_ventricle_large", ("ct", "dev"): "sl3d_ventricle_small"}


@dataclass(frozen=True, eq=False)
class Target3D:
    """One 3D target.

    ``volume``: float32 ``(Z, Y, X)``, any intensity range (MRI: 0..255, the
    phantom: 0..1); ``mask``: bool ``(Z, Y, X)``, non-empty; ``spacing``:
    voxel size ``(z, y, x)`` in mm; ``name``: unique id (``"mni_wm_left"``);
    ``modality``: "mri" or "ct"; ``source``: where the data comes from;
    ``structure``: the kind; ``split``: "dev" or "test".
    """

    volume: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    name: str
    modality: str
    source: str
    structure: str = ""
    split: str = "test"

    def __post_init__(self) -> None:
        if self.volume.ndim != 3 or self.mask.shape != self.volume.shape:
            raise InputError(f"target {self.name!r}: volume {self.volume.shape} and mask {self.mask.shape} "
                             "must be the same 3D (Z, Y, X) shape")
        if self.volume.dtype != np.float32 or self.mask.dtype != bool:
            raise InputError(f"target {self.name!r}: volume must be float32 and mask bool "
                             f"(got {self.volume.dtype} and {self.mask.dtype}); convert with .astype")
        if not self.mask.any():
            raise InputError(f"target {self.name!r}: the mask is empty")
        if len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise InputError(f"target {self.name!r}: spacing must be 3 positive numbers (z, y, x), got {self.spacing}")
        if self.split not in SPLITS_3D:
            raise InputError(f"target {self.name!r}: split must be one of {SPLITS_3D}, got {self.split!r}")
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        if not self.structure:
            object.__setattr__(self, "structure", self.name)

    def digest(self) -> str:
        """blake2b of the mask (shape and voxels): equal digests = the same ground truth."""
        h = hashlib.blake2b(digest_size=16)
        h.update(str(self.mask.shape).encode())
        h.update(np.packbits(self.mask).tobytes())
        return h.hexdigest()


def build_targets3d(modality: str, split: str = "test", quick: bool = False) -> list[Target3D]:
    """The 3D targets of ``modality`` ("mri" or "ct") in ``split`` ("test" or "dev"), in a fixed order.

    ``quick``: only the one small target named in :data:`QUICK_TARGETS`.
    Deterministic; the first MRI call reads the template (a few seconds).
    """
    if modality not in MODALITIES_3D:
        raise InputError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES_3D)}")
    if split not in SPLITS_3D:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS_3D)}")
    chosen = [t for t in _candidates(modality) if t.split == split]
    if quick:
        chosen = [t for t in chosen if t.name == QUICK_TARGETS[(modality, split)]]
    return chosen


def ball_target(shape: tuple[int, int, int] = (24, 48, 48), radius: float = 8.0, center=None,
                contrast: float = 150.0, noise: float = 10.0, seed: int = 0, name: str = "ball") -> Target3D:
    """A bright ball on a noisy background, for tests: volume ``50 + contrast * ball + N(0, noise)``.

    ``shape``: ``(Z, Y, X)``; ``radius`` in voxels (unit spacing);
    ``center``: ``(z, y, x)``, the volume's centre by default.
    """
    if len(shape) != 3 or min(shape) < 3 or radius <= 0:
        raise InputError(f"ball_target needs a 3D shape of sides >= 3 and radius > 0 (got {shape}, {radius})")
    center = tuple((s - 1) / 2 for s in shape) if center is None else tuple(center)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    mask = (z - center[0]) ** 2 + (y - center[1]) ** 2 + (x - center[2]) ** 2 <= radius**2
    rng = np.random.default_rng(seed)
    volume = (50.0 + contrast * mask + rng.normal(0.0, noise, shape)).astype(np.float32)
    return Target3D(volume, mask, (1.0, 1.0, 1.0), name, "ct", "synthetic ball", "ball")


@lru_cache(maxsize=2)
def _candidates(modality: str) -> tuple[Target3D, ...]:
    targets = _mri_targets() if modality == "mri" else _ct_targets()
    for t in targets:
        t.volume.setflags(write=False)  # shared by the targets and cached: nobody may edit it
        t.mask.setflags(write=False)
    return tuple(targets)


def _largest(mask: np.ndarray) -> np.ndarray:
    """Largest 6-connected component of bool ``mask`` (Z, Y, X); empty stays empty."""
    from scipy import ndimage as ndi

    labels, count = ndi.label(mask)
    if count == 0:
        return np.zeros(mask.shape, bool)
    return labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1


def _half_resolution(array: np.ndarray, start: tuple[int, int, int], stop: tuple[int, int, int]) -> np.ndarray:
    """``array`` (Z, Y, X) filtered by [1, 2, 1] / 4 along every axis, then voxels start, start + 2, ... < stop."""
    from scipy import ndimage as ndi

    out = array.astype(np.float32)
    for axis in range(3):
        out = ndi.correlate1d(out, np.array([0.25, 0.5, 0.25], np.float32), axis=axis, mode="nearest")
    return np.ascontiguousarray(out[tuple(slice(a, b, 2) for a, b in zip(start, stop))])


def _mri_targets() -> list[Target3D]:
    from scipy import ndimage as ndi

    from ..samples import load_mni

    t1, spacing = load_mni("t1")
    p_gm, p_wm = load_mni("gm")[0], load_mni("wm")[0]
    mid = t1.shape[2] // 2  # the template is symmetric about this x index
    full_brain = _largest((p_gm + p_wm) > 127.5)
    lo = [int(np.flatnonzero(full_brain.any(axis=tuple(b for b in range(3) if b != a)))[0]) for a in range(3)]
    hi = [int(np.flatnonzero(full_brain.any(axis=tuple(b for b in range(3) if b != a)))[-1]) for a in range(3)]
    start = [max(0, v - MRI_MARGIN_MM) for v in lo]
    stop = [min(n, v + MRI_MARGIN_MM + 1) for v, n in zip(hi, t1.shape)]
    half = max(mid - lo[2], hi[2] - mid) + MRI_MARGIN_MM
    half = min(mid, t1.shape[2] - 1 - mid, half + half % 2)  # even: mid stays on the 2-voxel grid
    start[2], stop[2] = mid - half, mid + half + 1
    t1s, gm, wm = (_half_resolution(a, tuple(start), tuple(stop)) for a in (t1, p_gm, p_wm))
    mid2 = half // 2  # x index of the mid-sagittal plane on the 2 mm grid
    parenchyma = (gm + wm) > 127.5
    brain = ndi.binary_fill_holes(_largest(parenchyma))
    xs = np.arange(t1s.shape[2])[None, None, :]
    sides = {"left": xs < mid2, "right": xs > mid2}
    dark = brain & ~parenchyma & (t1s < np.quantile(t1s[parenchyma], 0.10))
    masks = {"brain": brain}
    for side, half_mask in sides.items():
        masks[f"wm_{side}"] = _largest((wm > 127.5) & half_mask)
        masks[f"ventricle_{side}"] = _largest(dark & half_mask)
    spacing2 = tuple(2.0 * s for s in spacing)
    return [Target3D(t1s, np.ascontiguousarray(masks[kind]), spacing2, f"mni_{kind}", "mri", MRI_SOURCE, kind, split)
            for kind, split in MRI_SPLIT.items()]


def _ct_targets() -> list[Target3D]:
    from ..samples import shepp_logan_3d

    volume, regions = shepp_logan_3d(PHANTOM_SIZE)
    named = dict(regions)
    missing = [r for r in CT_REGIONS if r not in named]
    if missing:
        raise InputError(f"the 3D phantom has no regions {missing}; pge_sam.samples.shepp_logan_3d changed its "
                         "region names: update CT_REGIONS in pge_sam.evaluate.targets3d")
    return [Target3D(volume, np.ascontiguousarray(named[region]), (1.0, 1.0, 1.0), f"sl3d_{kind}", "ct", CT_SOURCE,
                     kind, split) for region, (kind, split) in CT_REGIONS.items()]

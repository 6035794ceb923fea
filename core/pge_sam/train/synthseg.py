"""SynthSeg-style brain-like 2D training scenes (label map -> random contrast image).

Idea (SynthSeg; "learning to see by looking at noise"): draw a *label map*
first, then render an image from it with random contrast and acquisition, so a
model learns shapes and boundaries, not one modality's grey values.

**Label maps.** With probability :data:`P_BRAIN` a brain layout, else a
generic one. Smooth random fields are made cheaply as ``A @ z @ A.T``: white
noise ``z`` on a coarse grid, interpolated by a cached Gaussian-kernel matrix
``A`` with unit-norm rows (unit variance everywhere, no zoom calls).

* Brain: a head outline (ellipse with low harmonics), optional scalp / skull /
  dura shells, a CSF-filled cavity. White matter (WM) sits a random depth
  below the cavity edge, folded by a gyral phase ``phi = k*theta + A*noise``;
  sulci are thin (0.6-2 px) cut lines on the troughs of ``phi`` (plus an
  optional midline fissure) with WM receded around them. Grey matter (GM) is
  the ribbon ``0 < EDT(~WM) < T + 0.5`` with a smooth thickness field ``T`` in
  [1.5, 4.5] px, so both sulcal banks are lined with GM and touch across a
  1-2 px CSF gap. A CSF shell of >= ~1 px stays outside the GM. Then 0-2
  ventricles (")(" curved ellipses), optional deep nuclei and 0-3 lesions.
* Generic: 1-3 touching bands from quantiles of one smooth field, then blobs
  (optionally with holes), inner/outer shells of 1-4 px, thin curvy lines
  (level sets of a field) and blobs split into two touching banks; 3-8 labels.

**Image.** Per label a Gaussian: mean U[0.1, 0.9] (brain: T1-like order
CSF < GM < WM in 30 %, T2-like CSF > GM > WM in 20 %, else random, with a
minimum CSF/GM/WM contrast), std U[0.005, 0.08] of white or smooth texture;
multiplicative smooth bias field; gamma U[0.7, 1.5]; with probability 0.5 a
lower acquisition resolution (blur, possibly anisotropic, and/or down- and
up-sampling by 1-2.5); additive noise; percentile rescale to [0, 1].

**Masks** come from the full-resolution label map only (the image alone is
blurred/resampled): every label's connected components of >= :data:`MIN_AREA`
pixels (the GM ribbon is one mask), plus compound masks (:data:`COMPOUND_KINDS`:
WM + ventricles, whole brain, head, filled blobs, split-blob pairs).
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np
from scipy import ndimage as ndi

from pge_sam.train.synth import Scene
from pge_sam.train.synth_config import _int_in

MIN_AREA = 24
P_BRAIN = 0.7
MAX_MASKS = 24
COMPOUND_KINDS = frozenset({"wm+ventricles", "brain", "head", "filled", "pair"})
_TWO_PI = 2.0 * np.pi


@functools.lru_cache(maxsize=64)
def _interp_matrix(size: int, cells: int) -> np.ndarray:
    """(size, cells + 4) Gaussian interpolation weights, rows of unit L2 norm."""
    grid = np.arange(cells + 4) - 1.5
    pos = (np.arange(size) + 0.5) * cells / size
    w = np.exp(-0.5 * ((pos[:, None] - grid[None, :]) / 0.75) ** 2)
    return (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32)


def _noise(rng: np.random.Generator, size: int, cells: float) -> np.ndarray:
    """Smooth zero-mean unit-variance field (size, size); correlation length ~ size / cells."""
    a = _interp_matrix(size, max(int(cells), 1))
    return a @ rng.standard_normal((a.shape[1], a.shape[1]), dtype=np.float32) @ a.T


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of ``mask`` (``mask`` itself if empty)."""
    cc, n = ndi.label(mask)
    if n <= 1:
        return mask
    return cc == 1 + int(np.argmax(np.bincount(cc.ravel())[1:]))


class _Labels:
    """A label map being painted plus the class name of every label id."""

    def __init__(self, size: int, first: str):
        self.lab = np.zeros((size, size), np.uint8)
        self.names = [first]
        self.compounds: list[tuple[str, list[int]]] = []

    def paint(self, mask: np.ndarray, name: str) -> int:
        self.names.append(name)
        self.lab[mask] = len(self.names) - 1
        return len(self.names) - 1


def _brain(rng: np.random.Generator, size: int) -> _Labels:
    """Head, shells, CSF, folded WM with GM ribbon and sulci, ventricles, nuclei, lesions."""
    yy, xx = _grid(size)
    dy, dx = yy - size * rng.uniform(0.45, 0.55), xx - size * rng.uniform(0.45, 0.55)
    ang = rng.uniform(0, np.pi)
    u, v = dy * np.cos(ang) + dx * np.sin(ang), dx * np.cos(ang) - dy * np.sin(ang)
    rho, theta = np.hypot(u, v / rng.uniform(0.78, 1.0)), np.arctan2(dy, dx)
    shape = 1.0 + sum(rng.uniform(0, 0.03) * np.cos(k * theta + rng.uniform(0, _TWO_PI)) for k in (2, 3, 4))
    out, r = _Labels(size, "background"), size * rng.uniform(0.36, 0.47) * shape
    for name, p, lo, hi in (("scalp", 0.6, 2.0, 6.0), ("skull", 0.7, 2.5, 7.0), ("dura", 0.3, 1.0, 2.5)):
        if rng.random() < p:
            out.paint(rho < r, name)
            r = r - rng.uniform(lo, hi)
    rb, rb0, cavity = r, float(np.median(r)), rho < r
    out.paint(cavity, "csf")
    lo_t = rng.uniform(1.5, 3.0)
    thick = lo_t + rng.uniform(0.3, 4.5 - lo_t) * 0.5 * (1 + np.tanh(0.9 * _noise(rng, size, rng.uniform(3, 7))))
    # gyral phase, its trough lines (sulci) and their pixel distance |phi - pi| / |grad phi|
    k, amp = int(rng.integers(8, 22)), rng.uniform(1.5, 5.0)
    nph, r2 = _noise(rng, size, rng.uniform(3, 8)), dy * dy + dx * dx + 1.0
    gy, gx = np.gradient(nph)
    phi = k * theta + amp * nph
    gmag = np.hypot(k * dx / r2 + amp * gy, -k * dy / r2 + amp * gx) + 1e-6
    dl = np.abs(np.mod(phi, _TWO_PI) - np.pi) / gmag
    gyr = rng.uniform(0.06, 0.22) * rb0 * (0.5 - 0.5 * np.cos(phi)) ** rng.uniform(1.0, 3.0)
    wobble = rng.uniform(0.02, 0.06) * rb0 * _noise(rng, size, rng.uniform(5, 14))
    wm = (rho < rb - rng.uniform(0.5, 4.0) - thick - gyr + wobble) & (rho < rb - 1.5 - thick)
    gap = rng.uniform(0.6, 2.0) / 2
    r_in = rb * (1 - rng.uniform(0.1, 0.28) - 0.06 * _noise(rng, size, 6))
    cut = (dl <= gap) & (rho > r_in)
    recess = (dl <= gap + thick + 0.5) & (rho > r_in - thick)
    if rng.random() < 0.6:  # midline fissure along the long axis
        f_u = rb0 * rng.uniform(0.25, 0.45)
        cut |= (np.abs(v) <= gap) & (np.abs(u) > f_u)
        recess |= (np.abs(v) <= gap + thick + 0.5) & (np.abs(u) > f_u - thick)
    wm = _largest(wm & ~recess)
    d = ndi.distance_transform_edt(~wm)
    out.paint(cavity & (d < thick + 0.5), "gm")  # pixel d spans [d-.5, d+.5]
    wm_id = out.paint(wm, "wm")
    out.lab[cut & cavity & (d > 1.0)] = out.names.index("csf")
    _deep_objects(rng, out, u, v, rb0, wm_id)
    return out


def _deep_objects(rng, out: _Labels, u, v, rb0: float, wm_id: int) -> None:
    """Ventricles, deep nuclei (inside WM) and lesions (in WM or GM)."""
    lab, ids = out.lab, [wm_id]
    jitter = 0.25 * _noise(rng, lab.shape[0], 12)
    n_v, vc = int(rng.integers(0, 3)), rng.uniform(0.04, 0.12) * rb0
    for side in ([1.0, -1.0] if n_v == 2 else [0.0] * n_v):
        au, av = rng.uniform(0.12, 0.3) * rb0, rng.uniform(0.03, 0.08) * rb0
        uu = u - rng.uniform(-0.1, 0.1) * rb0
        bend = side * rng.uniform(0.0, 0.6) * av * (uu / au) ** 2
        ell = (uu / au) ** 2 + ((v - side * vc - bend) / av) ** 2 < 1 + jitter
        ids.append(out.paint(ell & (lab == wm_id), "ventricle"))
    if rng.random() < 0.5:
        rn, vn = rng.uniform(0.05, 0.1) * rb0, rng.uniform(0.15, 0.3) * rb0
        un = rng.uniform(-0.1, 0.15) * rb0
        for side in (1.0, -1.0):
            blob = np.hypot(u - un, v - side * vn) < rn * (1 + jitter)
            ids.append(out.paint(blob & (lab == wm_id), "nucleus"))
    if len(ids) > 1:
        out.compounds.append(("wm+ventricles", list(ids)))
    gm_id, tissue = out.names.index("gm"), np.flatnonzero(lab == wm_id)
    for _ in range(int(rng.integers(0, 4)) if tissue.size else 0):
        cy, cx = divmod(int(tissue[rng.integers(tissue.size)]), lab.shape[1])
        yy, xx = _grid(lab.shape[0])
        blob = np.hypot(yy - cy, xx - cx) < rng.uniform(2.0, 8.0) * (1 + jitter)
        ids.append(out.paint(blob & ((lab == wm_id) | (lab == gm_id)), "lesion"))
    out.compounds.append(("brain", [gm_id] + ids))
    if out.names[1] in ("scalp", "skull"):
        out.compounds.append(("head", list(range(1, len(out.names)))))


def _blob(rng, size: int) -> np.ndarray:
    """A noisy blob: thresholded radial falloff plus smooth noise."""
    yy, xx = _grid(size)
    c, rad = rng.uniform(0.15, 0.85, 2) * size, rng.uniform(0.06, 0.3) * size
    f = 1 - np.hypot(yy - c[0], xx - c[1]) / rad + rng.uniform(0.2, 0.9) * _noise(rng, size, rng.uniform(3, 9))
    return f > 0


def _generic(rng: np.random.Generator, size: int) -> _Labels:
    """Touching bands, blobs with holes, shells, thin lines and split banks (3-8 labels)."""
    out = _Labels(size, "unused")
    n_bands = int(rng.integers(1, 4))
    levels = np.sort(rng.uniform(-1, 1, n_bands - 1))
    out.lab[:] = np.digitize(_noise(rng, size, rng.uniform(2, 6)), levels) + 1
    out.names += ["band"] * n_bands
    last = None
    for _ in range(int(rng.integers(2, 8))):
        if len(out.names) > 7:  # at most 8 labels (an object adds <= 2)
            break
        kind = rng.choice(["blob", "shell", "line", "pair"], p=[0.35, 0.25, 0.2, 0.2])
        if kind == "shell" and last is not None:
            inner = rng.random() < 0.4
            d = ndi.distance_transform_edt(last if inner else ~last)
            t = rng.uniform(1.0, 4.0) * (1 + 0.3 * _noise(rng, size, 6))
            out.paint((last if inner else ~last) & (d <= t), "shell")
        elif kind == "line":
            n = _noise(rng, size, rng.uniform(3, 8))
            gy, gx = np.gradient(n)
            line = np.abs(n - rng.uniform(-1, 1)) / (np.hypot(gy, gx) + 1e-6) <= rng.uniform(0.3, 1.25)
            out.paint(line & (_blob(rng, size) if rng.random() < 0.5 else True), "line")
        elif kind == "pair":
            last = _blob(rng, size)
            split = _noise(rng, size, rng.uniform(2, 5)) > rng.uniform(-0.5, 0.5)
            a = out.paint(last & split, "bank")
            out.compounds.append(("pair", [a, out.paint(last & ~split, "bank")]))
        else:
            last, old = _blob(rng, size), out.lab.copy()
            b = out.paint(last, "blob")
            if rng.random() < 0.5:
                holes = last & (_noise(rng, size, rng.uniform(6, 14)) > rng.uniform(0.3, 1.0))
                if rng.random() < 0.5:
                    out.lab[holes] = old[holes]
                else:
                    out.paint(holes, "hole")
                out.compounds.append(("filled", [b]))
    return out


def _masks(out: _Labels, skip: int | None) -> tuple[list[np.ndarray], list[str]]:
    """Components (>= MIN_AREA, at most 3 per label) of every label, then compound masks."""
    masks, kinds, lab = [], [], out.lab
    for i, name in enumerate(out.names):
        m = lab == i
        if i == skip or np.count_nonzero(m) < MIN_AREA:
            continue
        cc, n = ndi.label(m)
        sizes = np.bincount(cc.ravel())[1:]
        for j in np.argsort(sizes)[::-1][:3]:
            if sizes[j] >= MIN_AREA:
                masks.append(m if n == 1 else cc == j + 1)
                kinds.append(name)
    for name, ids in out.compounds:
        m = np.isin(lab, ids)
        m = _largest(ndi.binary_fill_holes(m) if name == "filled" else m)
        area = np.count_nonzero(m)
        if area >= MIN_AREA and all(np.count_nonzero(m ^ q) >= MIN_AREA for q in masks):
            masks.append(m)
            kinds.append(name)
    return masks[:MAX_MASKS], kinds[:MAX_MASKS]


def _brain_means(rng, names: list[str]) -> np.ndarray:
    """Per-label means: CSF/GM/WM T1-like, T2-like or random order with some contrast."""
    for _ in range(20):
        csf, gm, wm = rng.uniform(0.1, 0.9, 3)
        if min(abs(csf - gm), abs(gm - wm)) >= 0.1:
            break
    order = rng.random()
    if order < 0.5:
        csf, gm, wm = sorted((csf, gm, wm), reverse=order >= 0.3)
    cls = {"csf": csf, "gm": gm, "wm": wm}
    means = rng.uniform(0.1, 0.9, len(names))
    for i, name in enumerate(names):
        if name in cls:
            means[i] = cls[name]
        elif name == "ventricle" and rng.random() < 0.7:
            means[i] = csf
        elif name == "nucleus" and rng.random() < 0.6:
            means[i] = rng.uniform(min(gm, wm), max(gm, wm))
        elif name == "background" and rng.random() < 0.5:
            means[i] = rng.uniform(0.0, 0.05)
    return means


def _acquire(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Random acquisition resolution: blur (maybe anisotropic) and/or down- and up-sample."""
    if rng.random() < 0.5:
        return img
    mode = rng.integers(3)  # 0 blur, 1 resample, 2 both
    if mode != 1:
        s = rng.uniform(0.3, 1.5)
        img = ndi.gaussian_filter(img, (s, s * rng.uniform(0.4, 1.6)) if rng.random() < 0.3 else s)
    if mode != 0:
        f = rng.uniform(1.0, 2.5, 2) if rng.random() < 0.3 else np.full(2, rng.uniform(1.0, 2.5))
        if mode == 1:
            img = ndi.gaussian_filter(img, 0.4 * (f - 1) + 1e-3)
        small = ndi.zoom(img, 1 / f, order=1, grid_mode=True, mode="nearest")
        img = ndi.zoom(small, np.divide(img.shape, small.shape), order=1, grid_mode=True, mode="nearest")
    return img


def _render(rng: np.random.Generator, lab: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Gaussian-mixture image of ``lab`` with bias field, gamma, resolution and noise."""
    size, k = lab.shape[0], means.size
    stds = rng.uniform(0.005, 0.08, k).astype(np.float32)
    smooth_tex = rng.random(k) < 0.5
    tex = np.where(smooth_tex[lab], _noise(rng, size, rng.uniform(8, 32)),
                   rng.standard_normal(lab.shape, dtype=np.float32))
    img = means.astype(np.float32)[lab] + stds[lab] * tex
    img = np.maximum(img, 0) * np.exp(rng.uniform(0, 0.3) * _noise(rng, size, rng.uniform(1.5, 4)))
    img = (img / max(float(img.max()), 1e-6)) ** rng.uniform(0.7, 1.5)
    img = _acquire(rng, img)
    img = img + rng.uniform(0, 0.03) * rng.standard_normal(img.shape, dtype=np.float32)
    lo, hi = np.percentile(img[::2, ::2], [0.5, 99.5])
    return np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def generate_synthseg_scene(seed: int, size: int = 256) -> Scene:
    """One SynthSeg-style scene, deterministic in ``seed`` (see the module docstring).

    Returns a :class:`~pge_sam.train.synth.Scene` with ``style="synthseg"``:
    image (size, size) float32 in [0, 1], masks (K, size, size) bool, K >= 1,
    each >= :data:`MIN_AREA` pixels, and K kind names.
    """
    seed, size = _int_in("seed", seed, 0), _int_in("size", size, 64, 4096)
    rng = np.random.default_rng(seed)
    while True:  # a scene without any mask is redrawn from the same stream
        brain = rng.random() < P_BRAIN
        out = _brain(rng, size) if brain else _generic(rng, size)
        masks, kinds = _masks(out, skip=0)
        if masks:
            break
    means = _brain_means(rng, out.names) if brain else rng.uniform(0.1, 0.9, len(out.names))
    return Scene(image=_render(rng, out.lab, means), masks=np.stack(masks), kinds=kinds, style="synthseg")


def write_synthseg_preview(out_png, n: int = 12, seed: int = 0) -> pathlib.Path:
    """Save a grid of ``n`` scenes (seeds ``seed .. seed+n-1``) with mask contours as PNG.

    Label masks are outlined in distinct colours, compound masks dashed white.
    Uses matplotlib's Agg canvas (no pyplot). Returns the written path.
    """
    from .synth_dataset import write_scene_grid

    n, seed = _int_in("n", n, 1, 256), _int_in("seed", seed, 0)
    scenes = [(seed + i, generate_synthseg_scene(seed + i)) for i in range(n)]
    return write_scene_grid(out_png, scenes, lambda kind: kind in COMPOUND_KINDS,
                            lambda scene: f"{'brain' if 'gm' in scene.kinds else 'generic'}, {len(scene.kinds)} masks")

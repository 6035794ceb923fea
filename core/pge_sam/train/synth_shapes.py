"""Geometry and noise primitives for :mod:`pge_sam.train.synth`.

Every shape is a :class:`Footprint`: a boolean region of a square canvas of
side ``canvas`` pixels (the supersampled scene canvas), stored as its bounding
window. Points are ``(row, col)`` floats in canvas pixels; pixel ``(i, j)`` has
its centre at ``(i, j)``. All randomness comes from a caller-supplied
``numpy.random.Generator``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

TAU = 2.0 * np.pi


@dataclass
class Footprint:
    """Boolean canvas region kept in its window.

    ``r0, c0``: top-left corner (row, col) of the window on the canvas.
    ``mask``: ``(h, w)`` bool, True inside the region; the window lies inside
    the canvas.
    """

    r0: int
    c0: int
    mask: np.ndarray

    @property
    def area(self) -> int:
        """Number of canvas pixels inside the region."""
        return int(np.count_nonzero(self.mask))

    @property
    def slices(self) -> tuple[slice, slice]:
        """Canvas slices (rows, cols) of the window."""
        h, w = self.mask.shape
        return slice(self.r0, self.r0 + h), slice(self.c0, self.c0 + w)

    def radius(self) -> float:
        """Radius of the disk with the same area (canvas pixels)."""
        return float(np.sqrt(self.area / np.pi))

    def _overlap(self, other: Footprint):
        h, w = self.mask.shape
        oh, ow = other.mask.shape
        r0, c0 = max(self.r0, other.r0), max(self.c0, other.c0)
        r1, c1 = min(self.r0 + h, other.r0 + oh), min(self.c0 + w, other.c0 + ow)
        if r1 <= r0 or c1 <= c0:
            return None
        mine = (slice(r0 - self.r0, r1 - self.r0), slice(c0 - self.c0, c1 - self.c0))
        theirs = (slice(r0 - other.r0, r1 - other.r0), slice(c0 - other.c0, c1 - other.c0))
        return mine, theirs

    def touches(self, other: Footprint) -> bool:
        """True when the two bounding windows overlap."""
        return self._overlap(other) is not None

    def intersect(self, other: Footprint) -> Footprint:
        """Pixels inside both regions (cropped; may be empty)."""
        out = np.zeros_like(self.mask)
        ov = self._overlap(other)
        if ov is not None:
            out[ov[0]] = self.mask[ov[0]] & other.mask[ov[1]]
        return Footprint(self.r0, self.c0, out).crop()

    def minus(self, other: Footprint) -> Footprint:
        """Pixels inside this region and outside ``other`` (cropped)."""
        out = self.mask.copy()
        ov = self._overlap(other)
        if ov is not None:
            out[ov[0]] &= ~other.mask[ov[1]]
        return Footprint(self.r0, self.c0, out).crop()

    def crop(self) -> Footprint:
        """The same region in its tight bounding window (0x0 when empty)."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        if rows.size == 0:
            return Footprint(0, 0, np.zeros((0, 0), bool))
        cols = np.flatnonzero(self.mask.any(axis=0))
        m = self.mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        return Footprint(self.r0 + int(rows[0]), self.c0 + int(cols[0]), m)


def empty() -> Footprint:
    """An empty footprint."""
    return Footprint(0, 0, np.zeros((0, 0), bool))


def polygon(rows: np.ndarray, cols: np.ndarray, canvas: int) -> Footprint:
    """Filled simple polygon with vertices ``(rows[i], cols[i])`` (float arrays, (N,))."""
    r0 = max(int(np.floor(rows.min())) - 1, 0)
    c0 = max(int(np.floor(cols.min())) - 1, 0)
    r1 = min(int(np.ceil(rows.max())) + 2, canvas)
    c1 = min(int(np.ceil(cols.max())) + 2, canvas)
    if r1 <= r0 or c1 <= c0:
        return empty()
    img = Image.new("L", (c1 - c0, r1 - r0))
    pts = np.stack([cols - c0, rows - r0], axis=1).ravel().tolist()
    ImageDraw.Draw(img).polygon(pts, fill=1)
    return Footprint(r0, c0, np.asarray(img, dtype=bool)).crop()


def periodic_noise(rng: np.random.Generator, n: int, k_min: int, k_max: int,
                   amp: float, decay: float = 1.0) -> np.ndarray:
    """Smooth random periodic function on ``n`` equispaced angles, (n,) float.

    Sum of cosines of integer frequency ``k_min..k_max`` with random phases and
    Gaussian amplitudes of standard deviation ``amp / k**decay``.
    """
    theta = np.linspace(0.0, TAU, n, endpoint=False)
    ks = np.arange(k_min, k_max + 1)
    a = rng.normal(0.0, amp, ks.size) / ks ** decay
    phase = rng.uniform(0.0, TAU, ks.size)
    return np.cos(np.outer(theta, ks) + phase) @ a


def star_vertices(center, radius: float, rel: np.ndarray, aspect: float,
                  angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Boundary (rows, cols), each (n,), of a star-convex shape.

    Radius ``radius * rel[i]`` at angle ``2*pi*i/n``, squeezed by ``aspect``
    (minor/major axis), rotated by ``angle`` radians, placed at ``center``.
    """
    theta = np.linspace(0.0, TAU, rel.size, endpoint=False)
    rho = radius * np.maximum(rel, 0.05)
    u, v = rho * np.cos(theta), aspect * rho * np.sin(theta)
    ca, sa = np.cos(angle), np.sin(angle)
    return center[0] + u * sa + v * ca, center[1] + u * ca - v * sa


def star(center, radius, rel, aspect, angle, canvas: int) -> Footprint:
    """Filled star-convex region, see :func:`star_vertices`."""
    return polygon(*star_vertices(center, radius, rel, aspect, angle), canvas)


def folds(rng: np.random.Generator, n: int, count=(5, 14), depth=(0.15, 0.4),
          width=(0.1, 0.3)) -> np.ndarray:
    """Inward notches like sulci for a star boundary, (n,) >= 0 on ``n`` angles.

    ``count`` notches at irregular angles, each a Gaussian dip of its own depth
    (relative radius) and width (fraction of the mean notch spacing);
    subtract from a relative radius to fold the boundary.
    """
    theta = np.linspace(0.0, TAU, n, endpoint=False)
    k = int(rng.integers(count[0], count[1] + 1))
    pos = (np.arange(k) + rng.uniform(-0.35, 0.35, k)) * TAU / k + rng.uniform(0.0, TAU)
    wid = TAU / k * rng.uniform(*width, k)
    d = (theta[:, None] - pos[None, :] + np.pi) % TAU - np.pi
    return np.exp(-0.5 * (d / wid) ** 2) @ rng.uniform(*depth, k)


def erode(fp: Footprint, dist: float) -> Footprint:
    """Pixels of ``fp`` farther than ``dist`` canvas pixels from its outside.

    The distance map is computed on a 2x coarser grid (a coarse cell is inside
    only if all its pixels are, so thin gaps survive) and bilinearly
    upsampled, so the eroded boundary is smooth at canvas resolution.
    """
    h, w = fp.mask.shape
    m = np.pad(fp.mask, ((0, h % 2), (0, w % 2)))
    m = m.reshape(m.shape[0] // 2, 2, m.shape[1] // 2, 2).all(axis=(1, 3))
    d = ndi.zoom(2.0 * ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1], 2, order=1)
    return Footprint(fp.r0, fp.c0, (d[:h, :w] > dist) & fp.mask).crop()


def stamp_disks(centers: np.ndarray, radii: np.ndarray, canvas: int) -> Footprint:
    """Union of disks, centres (N, 2) (row, col) float, radii (N,) float."""
    m = int(np.ceil(radii.max())) + 1
    off = np.arange(-m, m + 1)
    base = np.floor(centers).astype(np.int64)
    rr = base[:, 0, None, None] + off[None, :, None]
    cc = base[:, 1, None, None] + off[None, None, :]
    d2 = (rr - centers[:, 0, None, None]) ** 2 + (cc - centers[:, 1, None, None]) ** 2
    inside = d2 <= radii[:, None, None] ** 2
    rr = np.broadcast_to(rr, inside.shape)[inside]
    cc = np.broadcast_to(cc, inside.shape)[inside]
    ok = (rr >= 0) & (rr < canvas) & (cc >= 0) & (cc < canvas)
    rr, cc = rr[ok], cc[ok]
    if rr.size == 0:
        return empty()
    r0, c0 = int(rr.min()), int(cc.min())
    mask = np.zeros((int(rr.max()) - r0 + 1, int(cc.max()) - c0 + 1), bool)
    mask[rr - r0, cc - c0] = True
    return Footprint(r0, c0, mask)


def tube(lines: list[np.ndarray], radii: list[np.ndarray], canvas: int) -> Footprint:
    """Union of tubes around polylines (N_i, 2) with radii (N_i,), canvas pixels.

    Each polyline is resampled at a spacing of 0.3 times its smallest radius
    (at most 0.5 pixel for thin tubes) and disks are stamped along it.
    """
    pts, rad = [], []
    for line, r in zip(lines, radii):
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])
        t = np.arange(0.0, s[-1] + 1e-9, max(0.5, 0.3 * float(r.min())))
        pts.append(np.stack([np.interp(t, s, line[:, 0]), np.interp(t, s, line[:, 1])], 1))
        rad.append(np.interp(t, s, r))
    return stamp_disks(np.concatenate(pts), np.concatenate(rad), canvas)


def random_curve(rng: np.random.Generator, center, length: float, curvature: float,
                 heading: float | None = None) -> np.ndarray:
    """Smooth random curve (N, 2) of about ``length`` pixels through ``center``.

    The heading drifts with a smooth random angular velocity scaled so the
    heading changes by at most ``4 * curvature`` radians over the curve.
    """
    n = max(int(length), 8)
    heading = rng.uniform(0.0, TAU) if heading is None else heading
    turn = ndi.gaussian_filter1d(rng.normal(0.0, 1.0, n), sigma=max(n / 8.0, 1.0), mode="nearest")
    turn *= curvature / (np.abs(turn).max() + 1e-9) / n * 4.0
    ang = heading + np.cumsum(turn)
    pts = np.cumsum(np.stack([np.sin(ang), np.cos(ang)], 1) * (length / n), axis=0)
    return pts - pts[n // 2] + np.asarray(center, float)


def smooth_along(rng: np.random.Generator, n: int, base: float, rel_var: float) -> np.ndarray:
    """Positive values (n,) varying smoothly around ``base`` by about ``rel_var``."""
    v = ndi.gaussian_filter1d(rng.normal(0.0, 1.0, n), sigma=max(n / 6.0, 1.0), mode="nearest")
    v /= np.abs(v).max() + 1e-9
    return base * np.clip(1.0 + rel_var * v, 0.3, None)


def metaballs(rng: np.random.Generator, center, radius: float, canvas: int) -> Footprint:
    """Lobulated organ-like region: threshold of a sum of Gaussian bumps.

    3-7 positive bumps near ``center`` and 0-2 negative ones carve
    concavities; the connected component holding the strongest point is kept
    and its holes are filled.
    """
    n_pos, n_neg = rng.integers(3, 8), rng.integers(0, 3)
    n = n_pos + n_neg
    cen = np.asarray(center) + rng.normal(0.0, 0.45 * radius, (n, 2))
    sig = radius * rng.uniform(0.25, 0.5, n)
    w = np.concatenate([rng.uniform(0.7, 1.0, n_pos), -rng.uniform(0.4, 0.9, n_neg)])
    lo = (cen[:n_pos] - 3.0 * sig[:n_pos, None]).min(axis=0)
    hi = (cen[:n_pos] + 3.0 * sig[:n_pos, None]).max(axis=0)
    r0, c0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    r1, c1 = min(int(hi[0]) + 1, canvas), min(int(hi[1]) + 1, canvas)
    if r1 - r0 < 2 or c1 - c0 < 2:
        return empty()
    gy = np.exp(-0.5 * ((np.arange(r0, r1)[:, None] - cen[None, :, 0]) / sig) ** 2)
    gx = np.exp(-0.5 * ((np.arange(c0, c1)[:, None] - cen[None, :, 1]) / sig) ** 2)
    f = (gy * w) @ gx.T
    region = f > rng.uniform(0.35, 0.6) * f.max()
    lab, _ = ndi.label(region)
    region = ndi.binary_fill_holes(lab == lab.flat[np.argmax(f)])
    return Footprint(r0, c0, region).crop()


@functools.lru_cache(maxsize=4)
def texture_pool(size: int) -> np.ndarray:
    """Fixed bank (3, 6, size, size) float32 of periodic power-law noise fields.

    Zero mean, unit std, power spectrum ~ 1/f**beta with beta 1.2 (grainy),
    2 (cloudy), 3 (blotchy). Built once per size from a fixed seed
    (deterministic); scenes take randomly shifted, optionally transposed
    windows from it, much cheaper than new FFT noise per scene.
    """
    rng = np.random.default_rng(20240917)
    half = (3, 6, size, size // 2 + 1)
    spec = rng.standard_normal(half) + 1j * rng.standard_normal(half)
    f = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :])
    f[0, 0] = np.inf
    beta = np.array([1.2, 2.0, 3.0])[:, None, None, None]
    out = np.fft.irfft2(spec * f ** (-beta / 2.0), s=(size, size))
    out -= out.mean(axis=(2, 3), keepdims=True)
    return (out / out.std(axis=(2, 3), keepdims=True)).astype(np.float32)


def texture_patch(rng: np.random.Generator, size: int, r0: int, c0: int, h: int,
                  w: int) -> np.ndarray:
    """A random (h, w) float32 window of the texture bank (unit std), at (r0, c0)."""
    pool = texture_pool(size)
    f = pool[rng.integers(3), rng.integers(pool.shape[1])]
    if rng.random() < 0.5:
        f = f.T
    dr, dc = rng.integers(0, size, 2)
    return f.take(np.arange(r0 + dr, r0 + dr + h), 0, mode="wrap").take(
        np.arange(c0 + dc, c0 + dc + w), 1, mode="wrap")


def smooth_field(rng: np.random.Generator, size: int, order: int = 3) -> np.ndarray:
    """Smooth random field (size, size) float32, unit std: a 2D cosine series up to ``order``."""
    t, k = np.arange(size) / size * np.pi, np.arange(order + 1)
    basis = [np.cos(np.outer(t, k) + rng.uniform(0, TAU, order + 1)) for _ in range(2)]
    coef = rng.normal(0.0, 1.0, (order + 1, order + 1)) / (1.0 + k[:, None] + k[None, :])
    out = basis[0] @ coef @ basis[1].T
    return ((out - out.mean()) / (out.std() + 1e-12)).astype(np.float32)


def make_shape(kind: str, rng: np.random.Generator, center, size: float,
               tube_radius: float, canvas: int) -> Footprint:
    """One generic object of ``kind`` near ``center`` (row, col), canvas pixels.

    ``size`` is the typical radius; ``tube_radius`` the mean half-thickness
    of tubes. Kinds: blob (smooth star-convex), organ (lobulated metaballs),
    ellipse, tube (branching vessel), ring (shell), concave (C-arc, crescent
    or kidney), folded (gyri-like deep narrow notches).
    """
    aspect, angle = rng.uniform(0.5, 1.0), rng.uniform(0.0, TAU)
    if kind == "blob":
        rel = 1.0 + periodic_noise(rng, 256, 2, 6, rng.uniform(0.05, 0.2))
        return star(center, size, rel, aspect, angle, canvas)
    if kind == "organ":
        return metaballs(rng, center, size, canvas)
    if kind == "ellipse":
        return star(center, size, np.ones(128), rng.uniform(0.3, 1.0), angle, canvas)
    if kind == "folded":
        rel = 1.0 + periodic_noise(rng, 1024, 2, 4, 0.08) - folds(rng, 1024, (4, 12), (0.1, 0.4))
        return star(center, size, rel, rng.uniform(0.6, 1.0), angle, canvas)
    if kind == "ring":
        rel = 1.0 + periodic_noise(rng, 256, 2, 5, rng.uniform(0.0, 0.12))
        outer = star(center, size, rel, aspect, angle, canvas)
        return outer.minus(star(center, size * rng.uniform(0.45, 0.85), rel, aspect, angle, canvas))
    if kind == "tube":
        length = size * rng.uniform(2.0, 5.0)
        line = random_curve(rng, center, length, rng.uniform(0.3, 2.0))
        radii = smooth_along(rng, len(line), tube_radius, 0.4)
        if rng.random() < 0.4:  # one side branch
            j = rng.integers(len(line) // 5, 4 * len(line) // 5)
            d = line[min(j + 1, len(line) - 1)] - line[j - 1]
            head = np.arctan2(d[0], d[1]) + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
            branch = random_curve(rng, line[j], length * rng.uniform(0.25, 0.5),
                                  rng.uniform(0.3, 1.5), heading=head)
            return tube([line, branch - branch[0] + line[j]],
                        [radii, smooth_along(rng, len(branch), 0.7 * radii[j], 0.3)], canvas)
        return tube([line], [radii], canvas)
    if kind == "concave":
        style = rng.integers(3)
        if style == 0:  # C-shaped thick arc
            sweep = rng.uniform(3.5, 5.6)
            t = rng.uniform(0.0, TAU) + np.linspace(0.0, sweep, 200)
            rad = 0.7 * size * (1 + 0.15 * np.sin(np.linspace(0, np.pi, 200) * rng.uniform(1, 3)))
            line = np.asarray(center) + np.stack([rad * np.sin(t), aspect * rad * np.cos(t)], 1)
            thick = smooth_along(rng, 200, size * rng.uniform(0.15, 0.3), 0.4)
            return tube([line], [thick], canvas)
        rel = 1.0 + periodic_noise(rng, 256, 2, 4, 0.08)
        if style == 1:  # crescent: shape minus a shifted copy
            outer = star(center, size, rel, aspect, angle, canvas)
            shift = size * rng.uniform(0.3, 0.6) * np.array([np.sin(angle), np.cos(angle)])
            return outer.minus(star(np.asarray(center) + shift, size * rng.uniform(0.75, 1.0),
                                    rel, aspect, angle, canvas))
        theta = np.linspace(0.0, TAU, 256, endpoint=False)  # kidney: one or two deep notches
        notch = sum(rng.uniform(0.4, 0.7) * (0.5 + 0.5 * np.cos(theta - rng.uniform(0, TAU)))
                    ** rng.uniform(2, 6) for _ in range(rng.integers(1, 3)))
        return star(center, size, rel - notch, aspect, angle, canvas)
    raise ValueError(f"unknown shape kind {kind!r}; use one of blob, organ, ellipse, tube, ring, "
                     "concave, folded")



def visible_objects(fps: list[Footprint], parents: list[int], min_pixels: int,
                    min_fraction: float, canvas: int) -> list[int]:
    """Indices of footprints visible enough to draw, in painting order.

    ``fps`` are painted in list order (later covers earlier); ``parents[k]``
    is the index of the object ``k`` is nested in (-1 none). Going from the
    top down, an object is dropped when fewer than ``min_pixels`` canvas
    pixels of it stay uncovered by the kept objects above it, or, for an
    object with nothing kept nested in it, fewer than ``min_fraction`` of it.
    """
    covered = np.zeros((canvas, canvas), bool)
    keep, has_child = [], set()
    for k in range(len(fps) - 1, -1, -1):
        win, m = fps[k].slices, fps[k].mask
        visible = np.count_nonzero(m & ~covered[win])
        if visible < min_pixels or (k not in has_child and visible < min_fraction * fps[k].area):
            continue
        covered[win] |= m
        keep.append(k)
        has_child.add(parents[k])
    return keep[::-1]


def rasterize(fps: list[Footprint], keep: list[int], size: int, ss: int):
    """Partial-volume reduction of painted footprints to the (size, size) output grid.

    The canvas is ``size * ss`` pixels wide. Returns ``(counts, label)``:
    ``counts[k] = (r0, c0, cnt)`` with ``cnt`` (h, w) int, the number of the
    ``ss*ss`` sub-pixels of each output pixel of the window at (r0, c0) that
    object ``k`` shows after painting; ``label`` (size, size) int32, the
    object owning each output pixel (-1 background): the one showing the
    most sub-pixels, ties to the later-painted object, background losing ties.
    """
    lab = np.full((size * ss, size * ss), -1, np.int16)
    for k in keep:
        lab[fps[k].slices][fps[k].mask] = k
    counts, total = {}, np.zeros((size, size), np.int32)
    for k in keep:
        fp = fps[k]
        r0, c0 = fp.r0 // ss, fp.c0 // ss
        r1, c1 = -(-(fp.r0 + fp.mask.shape[0]) // ss), -(-(fp.c0 + fp.mask.shape[1]) // ss)
        sub = lab[r0 * ss:r1 * ss, c0 * ss:c1 * ss] == k
        cnt = sub.reshape(r1 - r0, ss, c1 - c0, ss).sum(axis=(1, 3))
        counts[k] = (r0, c0, cnt)
        total[r0:r1, c0:c1] += cnt
    best = ss * ss - total
    label = np.full((size, size), -1, np.int32)
    for k in keep:
        r0, c0, cnt = counts[k]
        win = (slice(r0, r0 + cnt.shape[0]), slice(c0, c0 + cnt.shape[1]))
        take = (cnt >= best[win]) & (cnt > 0)
        best[win][take] = cnt[take]
        label[win][take] = k
    return counts, label


def profile_map(profile: str, amp: float, count: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Intensity profile (h, w) float over an object's output window.

    ``count`` (h, w): sub-pixel coverage counts of the object (> 0 inside).
    ``gradient``: linear ramp in a random direction, +-0.3*amp; ``rim``: amp
    at the border decaying inwards over 1-4 pixels; ``core``: 0 at the
    border rising to amp at the deepest point; ``flat``: zeros.
    """
    h, w = count.shape
    if profile == "flat":
        return np.zeros((h, w))
    if profile == "gradient":
        a = rng.uniform(0.0, TAU)
        return 0.6 * amp * (np.cos(a) * np.linspace(-0.5, 0.5, h)[:, None]
                            + np.sin(a) * np.linspace(-0.5, 0.5, w)[None, :])
    d = ndi.distance_transform_edt(np.pad(count > 0, 1))[1:-1, 1:-1]
    if profile == "rim":
        return amp * np.exp(-d / rng.uniform(1.0, 4.0))
    return amp * d / max(float(d.max()), 1.0)


def finish(img: np.ndarray, rng: np.random.Generator, bias: float, blur: float, noise: float,
           gamma: float, negative: bool) -> np.ndarray:
    """Global effects on a rendered (H, W) image; returns float32 in [0, 1].

    Multiplicative smooth bias field ``exp(bias * field)``, Gaussian blur of
    ``blur`` pixels (skipped under 0.2), Gaussian or (half the time) Rician
    noise of std ``noise``, robust rescaling of the 0.2-99.8 percentiles to
    [0, 1], gamma, and optional negative.
    """
    n = img.shape[0]
    if bias > 0:
        img = img * np.exp(bias * smooth_field(rng, n))
    if blur > 0.2:
        img = ndi.gaussian_filter(img, blur)
    if noise > 0:
        eps = rng.normal(0.0, noise, (2,) + img.shape).astype(np.float32)
        img = np.hypot(img + eps[0], eps[1]) if rng.random() < 0.5 else img + eps[0]
    lo, hi = np.percentile(img[::2, ::2], (0.2, 99.8))
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0.0, 1.0) ** gamma
    return (1.0 - img if negative else img).astype(np.float32)

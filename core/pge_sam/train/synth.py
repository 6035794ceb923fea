"""Procedural medical-looking 2D training scenes with exact masks.

Scene styles: ``tissue`` (a body outline, optional skin/fat shell, textured
soft tissue with organs, nested lesions, vessels, cysts, concave shapes);
``brain`` (optional skull shell; grey-matter body cut by sulci around a
white-matter core at constant cortical depth; ")(" ventricles, deep nuclei,
fissure, lesions); ``phantom`` (bright elliptical ring around flat ellipses
of slightly different attenuation, Shepp-Logan-like); ``field`` (textured
full-field background with scattered objects).

Geometry is built on a canvas ``supersample`` times finer than the output and
reduced by area averaging (partial volume). Objects are painted in order, a
later object covering an earlier one; an object nested in another is clipped
to it. **Mask semantics**: each primitive object's mask is its *visible*
region: the output pixels in which it covers the most supersampled
sub-pixels (ties go to the object painted later; half covered against the
background counts as inside), so primitive masks are pairwise disjoint. With
``compound_masks`` every object that has visible objects nested inside it
also gets a ``"compound"`` mask: the union of its own visible mask and those
of everything nested in it (e.g. the whole body, or white matter plus
ventricles). Objects whose visible part is too small are not drawn at all, so
every drawn object has a mask and every mask has at least ``min_area``
pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from pge_sam.train import synth_shapes as sh
from pge_sam.train.synth_config import (  # noqa: F401  (re-exported)
    _CONTAINERS,
    KINDS,
    PROFILES,
    STYLES,
    SynthConfig,
    SynthConfigError,
    _int_in,
    _weights,
)


@dataclass
class Scene:
    """One generated scene.

    ``image``: (H, W) float32 in [0, 1], rows x cols.
    ``masks``: (K, H, W) bool, K >= 1, one per object (see the module
    docstring for visible vs compound masks), each with >= ``min_area`` pixels.
    ``kinds``: K names: ``"body"``, one of :data:`KINDS`, or ``"compound"``.
    ``style``: the scene style, one of :data:`STYLES`.
    """

    image: np.ndarray
    masks: np.ndarray
    kinds: list[str]
    style: str = ""


@dataclass
class _Obj:
    fp: sh.Footprint
    kind: str
    parent: int
    level: float
    profile: str = "flat"
    profile_amp: float = 0.0
    texture: float = 0.0


def _choose(rng, pairs):
    names = [n for n, _ in pairs]
    w = np.array([w for _, w in pairs])
    return names[rng.choice(len(names), p=w / w.sum())]


def _check_config(config):
    if not isinstance(config, SynthConfig):
        raise SynthConfigError(f"config must be a SynthConfig, got {type(config).__name__}")


class _Builder:
    """Collects the objects of one scene on the supersampled canvas."""

    def __init__(self, rng, cfg: SynthConfig, style: str):
        self.rng, self.cfg, self.style = rng, cfg, style
        self.ss = cfg.supersample
        self.canvas = cfg.size * self.ss
        self.objs: list[_Obj] = []
        self.containers: list[int] = []
        self.bg_level = float(rng.uniform(0.0, 0.08))
        self.bg_texture = 0.0
        self._deep: dict[int, tuple] = {}

    def u(self, lohi):
        return float(self.rng.uniform(*lohi))

    def level_of(self, parent):
        return self.bg_level if parent < 0 else self.objs[parent].level

    def child_level(self, base):
        rng = self.rng
        low = rng.random() < self.cfg.p_low_contrast
        c = self.u(self.cfg.low_contrast if low else self.cfg.contrast)
        sign = rng.choice([-1.0, 1.0])
        level = base + sign * c
        if not 0.02 <= level <= 1.0:
            level = base - sign * c
        return float(np.clip(level, 0.02, 1.0))

    def add(self, fp, kind, parent, level):
        if parent >= 0:
            fp = fp.intersect(self.objs[parent].fp)
        if fp.area < self.cfg.min_area * self.ss ** 2:
            return None
        o = _Obj(fp, kind, parent, level)
        if self.style != "phantom":
            o.profile = _choose(self.rng, self.cfg.profile_weights)
            delta = level - self.level_of(parent)  # profile mostly enhances the contrast
            o.profile_amp = max(abs(delta), 0.05) * self.u((-0.5, 1.0)) * (1 if delta >= 0 else -1)
            o.texture = self.u(self.cfg.texture)
        self.objs.append(o)
        if kind in _CONTAINERS:
            self.containers.append(len(self.objs) - 1)
        return len(self.objs) - 1

    def interior_point(self, parent):
        """A point well inside ``parent`` (canvas for -1), (row, col)."""
        if parent < 0:
            return self.rng.uniform(0.1, 0.9, 2) * self.canvas
        if parent not in self._deep:
            fp, step = self.objs[parent].fp, 4
            d = ndi.distance_transform_edt(np.pad(fp.mask[::step, ::step], 1))[1:-1, 1:-1]
            self._deep[parent] = np.nonzero(d >= 0.35 * d.max()), fp, step
        (rr, cc), fp, step = self._deep[parent]
        i = self.rng.integers(rr.size)
        corner = np.array([fp.r0 + step * rr[i], fp.c0 + step * cc[i]], float)
        return corner + self.rng.uniform(0, step, 2)

    def add_generic(self, root, kind=None, size_range=(0.12, 0.45)):
        rng = self.rng
        kind = kind or _choose(rng, self.cfg.kind_weights)
        inner = [c for c in self.containers if c != root]
        parent = int(rng.choice(inner)) if inner and rng.random() < self.cfg.p_nested else root
        pr = self.objs[parent].fp.radius() if parent >= 0 else 0.45 * self.canvas
        size = pr * math.exp(rng.uniform(math.log(size_range[0]), math.log(size_range[1])))
        tube_r = self.ss * self.u(self.cfg.tube_radius)
        fp = sh.make_shape(kind, rng, self.interior_point(parent), size, tube_r, self.canvas)
        near = [o.level for o in self.objs if o.fp.touches(fp)]
        for _ in range(4):  # keep a visible step to every object it may touch
            level = self.child_level(self.level_of(parent))
            if all(abs(level - other) >= 0.03 for other in near):
                break
        return self.add(fp, kind, parent, level)


def _body_geometry(b, r_range, aspect_range):
    rng, S = b.rng, b.canvas
    center = S / 2 + rng.normal(0, 0.03 * S, 2)
    angle = rng.uniform(-0.25, 0.25) + (np.pi / 2 if rng.random() < 0.5 else 0.0)
    return center, S * b.u(r_range), b.u(aspect_range), angle


def _shell(b, center, radius, rel, aspect, angle, gap, thick, level):
    outer = sh.star(center, radius * (1 + gap + thick), rel, aspect, angle, b.canvas)
    inner = sh.star(center, radius * (1 + gap), rel, aspect, angle, b.canvas)
    return b.add(outer.minus(inner), "ring", -1, level)


def _style_tissue(b):
    rng = b.rng
    center, radius, aspect, angle = _body_geometry(b, (0.33, 0.45), (0.6, 1.0))
    rel = 1.0 + sh.periodic_noise(rng, 256, 2, 5, 0.06)
    if rng.random() < 0.45:
        _shell(b, center, radius, rel, aspect, angle, 0.0, b.u((0.03, 0.08)), b.u((0.5, 0.95)))
    body_fp = sh.star(center, radius, rel, aspect, angle, b.canvas)
    body = b.add(body_fp, "body", -1, b.u((0.25, 0.6)))
    for _ in range(rng.integers(b.cfg.n_objects[0], b.cfg.n_objects[1] + 1)):
        b.add_generic(body)


def _style_field(b):
    b.bg_level, b.bg_texture = b.u((0.2, 0.6)), b.u(b.cfg.texture)
    for _ in range(b.rng.integers(b.cfg.n_objects[0], b.cfg.n_objects[1] + 1) + 1):
        b.add_generic(-1)


def _style_phantom(b):
    rng = b.rng
    center, radius, aspect, angle = _body_geometry(b, (0.32, 0.45), (0.65, 0.9))
    ones = np.ones(180)
    _shell(b, center, radius, ones, aspect, angle, 0.0, b.u((0.03, 0.09)), b.u((0.8, 1.0)))
    body_fp = sh.star(center, radius, ones, aspect, angle, b.canvas)
    body = b.add(body_fp, "body", -1, b.u((0.1, 0.4)))
    for _ in range(rng.integers(b.cfg.n_objects[0], b.cfg.n_objects[1] + 1) + 1):
        b.add_generic(body, kind="ellipse", size_range=(0.06, 0.5))


def _style_brain(b):
    rng, S = b.rng, b.canvas
    center, radius, aspect, angle = _body_geometry(b, (0.33, 0.42), (0.72, 0.92))
    smooth = 1.0 + sh.periodic_noise(rng, 1024, 2, 5, 0.05)
    if rng.random() < 0.75:
        _shell(b, center, radius, smooth, aspect, angle, b.u((0.02, 0.07)), b.u((0.04, 0.1)),
               b.u((0.55, 1.0)))
    surface = smooth - sh.folds(rng, 1024, (12, 24), (0.02, 0.06), (0.1, 0.25))
    gm = b.u((0.3, 0.45))
    rows, cols = sh.star_vertices(center, radius * 1.03, surface, aspect, angle)
    lines, radii = [], []
    for i in np.sort(rng.choice(1024, rng.integers(18, 40), replace=False)):  # sulci
        start = np.array([rows[i], cols[i]])
        head = float(np.arctan2(*(center - start))) + rng.uniform(-0.3, 0.3)
        length = radius * b.u((0.08, 0.28))
        line = sh.random_curve(rng, start, length, b.u((0.1, 0.7)), heading=head)
        lines.append(line - line[0] + start)
        radii.append(sh.smooth_along(rng, len(line), b.ss * b.u((0.5, 1.0)), 0.3))
    body_fp = sh.star(center, radius, surface, aspect, angle, S).minus(sh.tube(lines, radii, S))
    body = b.add(body_fp, "body", -1, gm)
    wm = b.add(sh.erode(body_fp, b.ss * b.u((2.5, 6.0))), "folded", body, gm + b.u((0.12, 0.3)))
    csf = b.u((0.04, 0.15))
    axis = np.array([np.sin(angle), np.cos(angle)])  # long axis direction (row, col)
    side = np.array([axis[1], -axis[0]])
    holder = wm if wm is not None else body
    if rng.random() < 0.85:  # lateral ventricles: mirrored bent tubes ")("
        half = radius * b.u((0.2, 0.4))
        a = np.linspace(-half, half, 64) + radius * b.u((-0.1, 0.1))
        radii = sh.smooth_along(rng, 64, radius * b.u((0.025, 0.06)), 0.6)
        off = radii.max() + radius * (b.u((0.01, 0.05)) + b.u((0.05, 0.2)) * (a / half) ** 2)
        for s in (-1, 1):
            line = center + a[:, None] * axis + (s * off)[:, None] * side
            b.add(sh.tube([line], [radii], S), "concave", holder, csf)
    for _ in range(rng.integers(0, 3)):
        c = center + side * rng.choice([-1, 1]) * radius * b.u((0.2, 0.35))
        fp = sh.make_shape("blob", rng, c, radius * b.u((0.07, 0.14)), 1.0, S)
        b.add(fp, "blob", holder, float(np.clip(gm + b.u((-0.04, 0.06)), 0.02, 1.0)))
    if rng.random() < 0.6:
        end = center + axis * radius * rng.choice([-1, 1])
        line = sh.random_curve(rng, end, radius * b.u((0.6, 1.2)), 0.3,
                               heading=float(np.arctan2(*(center - end))))
        line = line - line[0] + end
        radii = sh.smooth_along(rng, len(line), b.ss * b.u((0.6, 1.5)), 0.3)
        b.add(sh.tube([line], [radii], S), "tube", body, csf)
    for _ in range(rng.integers(0, 3)):
        b.add_generic(body, size_range=(0.05, 0.2))


_STYLES = {"tissue": _style_tissue, "brain": _style_brain, "phantom": _style_phantom,
           "field": _style_field}


def _settle(b):
    """Drop objects until every drawn one owns >= min_area output pixels."""
    fps = [o.fp for o in b.objs]
    keep = sh.visible_objects(fps, [o.parent for o in b.objs], b.cfg.min_area * b.ss ** 2,
                              b.cfg.min_visible_fraction, b.canvas)
    while True:
        counts, label = sh.rasterize(fps, keep, b.cfg.size, b.ss)
        areas = np.bincount(label.ravel() + 1, minlength=len(b.objs) + 1)[1:]
        small = [k for k in keep if areas[k] < b.cfg.min_area]
        if not small:
            return keep, counts, label
        keep = [k for k in keep if k not in small]


def _render(b, keep, counts):
    """Partial-volume image (size, size) float32 before global effects."""
    rng, n, cfg = b.rng, b.cfg.size, b.cfg

    def texture(amp, r0, c0, h, w):
        return amp * sh.texture_patch(rng, n, r0, c0, h, w)

    img = np.zeros((n, n), np.float32)
    cover = np.zeros((n, n), np.float32)
    inv = 1.0 / b.ss ** 2
    for k in keep:
        o = b.objs[k]
        r0, c0, cnt = counts[k]
        val = np.full(cnt.shape, o.level, np.float32)
        val += sh.profile_map(o.profile, o.profile_amp, cnt, rng)
        if o.texture > 0:
            val += texture(o.texture, r0, c0, *cnt.shape)
        cov = cnt * inv
        win = (slice(r0, r0 + cnt.shape[0]), slice(c0, c0 + cnt.shape[1]))
        img[win] += cov * val
        cover[win] += cov
    bg = b.bg_level + (texture(b.bg_texture, 0, 0, n, n) if b.bg_texture > 0 else 0.0)
    img += (1.0 - cover) * bg
    return sh.finish(img, rng, 0.0 if b.style == "phantom" else b.u(cfg.bias), b.u(cfg.blur_sigma),
                     b.u(cfg.noise_std), b.u(cfg.gamma), rng.random() < cfg.p_negative)


def generate_scene(seed: int, config: SynthConfig | None = None) -> Scene:
    """Generate one scene, fully determined by ``seed`` (int >= 0) and ``config``.

    Returns a :class:`Scene` with image (size, size) float32 in [0, 1] and
    masks (K, size, size) bool, K >= 1. ``config=None`` is ``SynthConfig()``.
    """
    config = SynthConfig() if config is None else config
    _check_config(config)
    rng = np.random.default_rng(_int_in("seed", seed, 0))
    for _ in range(16):
        style = _choose(rng, config.style_weights)
        b = _Builder(rng, config, style)
        _STYLES[style](b)
        keep, counts, label = _settle(b)
        if keep:
            break
    else:
        raise SynthConfigError(f"no object survived 16 attempts (seed {seed}): lower min_area or "
                               "min_visible_fraction, or widen n_objects")
    if rng.random() < config.p_invert:  # T1 <-> T2-like contrast; dark air stays dark
        for o in b.objs:
            o.level = 1.02 - o.level
            if style != "field" and o.parent < 0 and o.level < b.bg_level + 0.15:
                o.level = b.bg_level + b.u((0.15, 0.4))  # keep shells visible against air
        if style == "field":
            b.bg_level = 1.02 - b.bg_level
    image = _render(b, keep, counts)
    masks = [label == k for k in keep]
    kinds = [b.objs[k].kind for k in keep]
    if config.compound_masks:
        index = {k: i for i, k in enumerate(keep)}
        members = {k: [k] for k in keep}
        for k in range(len(b.objs)):
            p = b.objs[k].parent
            while p >= 0 and k in index:
                if p in members:
                    members[p].append(k)
                p = b.objs[p].parent
        for k in keep:
            if len(members[k]) > 1:
                masks.append(np.logical_or.reduce([masks[index[m]] for m in members[k]]))
                kinds.append("compound")
    return Scene(image=image, masks=np.stack(masks), kinds=kinds, style=style)

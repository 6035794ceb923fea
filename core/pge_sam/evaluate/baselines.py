"""The predictor protocol every benchmarked method implements, and the random-walker baseline.

Coordinates are pixel indices ``(row, col)`` of the ``(H, W)`` image given to
``set_image``; boxes are ``(row0, col0, row1, col1)`` with both corners
inclusive.
"""

from __future__ import annotations

import warnings
from typing import Protocol, runtime_checkable

import numpy as np

from .._optional import require
from ..errors import InputError, PromptError


@runtime_checkable
class ClickPredictor(Protocol):
    """What the benchmark needs from a method.

    ``set_image(image)``: ``image`` float32 ``(H, W)``, any intensity range;
    clears all previous state. ``reset()``: a new target on the same image;
    clears previous prompts and logits. ``predict(points, labels, box=None)``:
    ``points`` int ``(N, 2)`` (row, col) and ``labels`` int ``(N,)`` (1
    positive, 0 negative) are *all* clicks so far for this target; ``box`` int
    ``(4,)`` (row0, col0, row1, col1) inclusive, or ``None``. Returns a bool
    ``(H, W)`` mask. A stateful predictor (SAM) keeps its previous low-res
    logits and feeds them back on the next call.
    """

    name: str

    def set_image(self, image: np.ndarray) -> None: ...

    def reset(self) -> None: ...

    def predict(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None = None) -> np.ndarray: ...


def check_prompts(
    points, labels, box, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate prompts against an ``(H, W)`` image; returns int64 ``(N, 2)``, int64 ``(N,)`` and ``(4,)`` or None.

    Raises :class:`~pge_sam.errors.PromptError` for points or boxes outside
    the image, labels other than 0/1, or a box with row1 < row0 or col1 < col0.
    """
    points = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    height, width = shape
    if len(points) != len(labels):
        raise PromptError(f"{len(points)} points but {len(labels)} labels; give one label per point")
    if not np.isin(labels, (0, 1)).all():
        raise PromptError("point labels must be 1 (positive) or 0 (negative)")
    if len(points) and not ((points >= 0).all() and (points[:, 0] < height).all() and (points[:, 1] < width).all()):
        raise PromptError(f"a point lies outside the {height}x{width} image; points are (row, col) pixel indices")
    if box is not None:
        box = np.asarray(box, dtype=np.int64).reshape(-1)
        if box.shape != (4,):
            raise PromptError(f"a box is (row0, col0, row1, col1); got {box.shape[0]} numbers")
        r0, c0, r1, c1 = (int(v) for v in box)
        if not (0 <= r0 <= r1 < height and 0 <= c0 <= c1 < width):
            raise PromptError(
                f"box {tuple(int(v) for v in box)} is empty or leaves the {height}x{width} image; "
                "give (row0, col0, row1, col1) with inclusive corners inside the image"
            )
    return points, labels, box


def seed_radii(points: np.ndarray, labels: np.ndarray, radius: int) -> np.ndarray:
    """Per-click seed radius (int ``(N,)``): ``radius``, shrunk so no click's disk reaches a click of the other label.

    ``points`` int ``(N, 2)`` (row, col), ``labels`` ``(N,)`` 1/0. A disk of
    radius r + 0.5 (``skimage.draw.disk``) around a click keeps clear of every
    opposite click at distance d when r = min(``radius``, floor(d - 0.5)), so
    a negative click next to a positive one cannot swallow it (or vice versa).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    radii = np.full(len(points), int(radius), dtype=np.int64)
    for i in range(len(points)):
        others = points[labels != labels[i]]
        if len(others):
            nearest = float(np.sqrt(((others - points[i]) ** 2).sum(axis=1)).min())
            radii[i] = min(radius, max(0, int(np.floor(nearest - 0.5))))
    return radii


def unit_range(image: np.ndarray, who: str) -> np.ndarray:
    """Float32 ``(H, W)`` ``image`` mapped from its 1st..99th percentile to [0, 1], clipped; ``who`` names the
    method in the error for anything but a 2D image of at least 2 x 2 pixels."""
    from ..normalize import Normalization

    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or min(image.shape) < 2:
        raise InputError(f"{who} needs a 2D (H, W) image of at least 2x2 pixels (got shape {image.shape})")
    vmin, vmax = Normalization.percentile(1.0, 99.0).value_range(image)
    return np.clip((image - vmin) / (vmax - vmin), 0.0, 1.0).astype(np.float32)


def _content_box(work: np.ndarray, margin: int = 3) -> tuple[slice, slice]:
    """The box of float ``(H, W)`` ``work`` (in [0, 1]) holding every pixel above 1 %, grown by ``margin``:
    outside it the image is its flat background, which the border seeds reach anyway."""
    rows = np.flatnonzero((work > 0.01).any(axis=1))
    cols = np.flatnonzero((work > 0.01).any(axis=0))
    if not len(rows):
        return slice(0, work.shape[0]), slice(0, work.shape[1])
    return (slice(max(0, rows[0] - margin), min(work.shape[0], rows[-1] + margin + 1)),
            slice(max(0, cols[0] - margin), min(work.shape[1], cols[-1] + margin + 1)))


def _seal(inner: np.ndarray, crop: tuple[slice, slice], shape: tuple[int, int]) -> None:
    """Unseeded pixels on a side of the cropped seed map that is not the image border become background seeds
    (they stand for the flat background cut away, which the image-border seeds would have claimed)."""
    (rs, cs), (h, w) = crop, shape
    for cut, side in ((rs.start > 0, np.s_[0, :]), (rs.stop < h, np.s_[-1, :]),
                      (cs.start > 0, np.s_[:, 0]), (cs.stop < w, np.s_[:, -1])):
        if cut:
            edge = inner[side]
            edge[edge == 0] = 2


def box_centre_seed(points: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The clicks with the box centre prepended as a positive seed (int64 ``(N + 1, 2)``, ``(N + 1,)``), unless
    there is no box or a negative click lies within 3 px of the centre (the user said the centre is not it)."""
    if box is None:
        return points, labels
    centre = np.array([[(box[0] + box[2]) // 2, (box[1] + box[3]) // 2]], dtype=np.int64)
    negatives = points[labels == 0]
    if len(negatives) and float(np.sqrt(((negatives - centre) ** 2).sum(axis=1)).min()) <= 3.0:
        return points, labels
    return np.concatenate([centre, points]).astype(np.int64), np.r_[1, labels].astype(np.int64)


class RandomWalkerPredictor:
    """Click-seeded random walker (Grady 2006) via ``skimage.segmentation.random_walker``.

    Seeds on the working image, in this order (later ones overwrite earlier
    ones where they overlap):

    1. background (label 2), **always**: without a box the one-pixel image
       border; with a box every pixel outside the box;
    2. with a box: a foreground disk at the box centre, unless a negative
       click lies within 3 px of it (:func:`box_centre_seed`);
    3. each click, in click order, as a disk of radius ``seed_radius`` + 0.5
       working pixels (label 1 positive, label 2 negative), the radius shrunk
       where needed so it does not reach a click of the other label
       (:func:`seed_radii`).

    The image is normalised (1st..99th percentile to [0, 1], clipped). The
    walker runs at full resolution by default (``max_side=None``): ~55 ms per
    click at 128x128 and ~0.3 s at 256x256 on a 2-core CPU. It solves only
    inside the box holding the image's content (pixels above 1 % of the range,
    plus 3 px): the flat background around it is background either way (the
    walk from the border seeds), and the solve costs half as much on MRI
    slices framed by air. With ``max_side``
    (>= 16) an image whose longer side exceeds it is first resized with
    anti-aliasing to that longer side (faster, blurrier boundaries), and the
    foreground probability is resized back with linear interpolation.
    ``beta`` (default 1000) is the edge weight of ``random_walker``. The
    foreground probability is thresholded at 0.5; clicked pixels then take
    their click's label and, with a box, everything outside the box is
    background. No positive click and no box: an empty mask. The solver is
    ``mode="bf"`` (direct sparse solve). Stateless between clicks: every
    ``predict`` starts from the seeds alone.
    """

    def __init__(self, max_side: int | None = None, beta: float = 1000.0, seed_radius: int = 1,
                 name: str = "random_walker"):
        if (max_side is not None and max_side < 16) or beta <= 0 or seed_radius < 0:
            raise InputError("RandomWalkerPredictor needs max_side None (full resolution) or >= 16, beta > 0 "
                             "and seed_radius >= 0")
        self.name = name
        self.max_side = None if max_side is None else int(max_side)
        self.beta = float(beta)
        self.seed_radius = int(seed_radius)
        self._shape: tuple[int, int] | None = None
        self._work: np.ndarray | None = None

    def set_image(self, image: np.ndarray) -> None:
        """Store a normalised float64 copy of float ``(H, W)`` ``image`` (downsampled only when ``max_side`` asks)."""
        resize = require("skimage.transform", "bench").resize

        image = np.asarray(image, dtype=np.float32)
        work = unit_range(image, self.name)
        scale = 1.0 if self.max_side is None else min(1.0, self.max_side / max(image.shape))
        if scale < 1.0:
            size = tuple(max(2, round(s * scale)) for s in image.shape)
            work = resize(work, size, order=1, anti_aliasing=True, preserve_range=True)
        self._shape = (int(image.shape[0]), int(image.shape[1]))
        self._work = work.astype(np.float64)
        self._crop = _content_box(self._work)

    def reset(self) -> None:
        """Nothing to clear: the random walker keeps no state between predictions."""

    def _to_work(self, row: int, col: int) -> tuple[int, int]:
        (height, width), (h, w) = self._shape, self._work.shape
        return min(h - 1, int((row + 0.5) * h / height)), min(w - 1, int((col + 0.5) * w / width))

    def _seeds(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        disk = require("skimage.draw", "bench").disk

        (height, width), (h, w) = self._shape, self._work.shape
        seeds = np.zeros((h, w), dtype=np.int32)
        # background seeds always: a negative click adds to them, it never replaces them
        if box is None:
            seeds[[0, -1], :] = 2
            seeds[:, [0, -1]] = 2
        else:
            r0, c0 = int(box[0] * h / height), int(box[1] * w / width)
            r1 = min(h - 1, int(np.ceil((box[2] + 1) * h / height)) - 1)
            c1 = min(w - 1, int(np.ceil((box[3] + 1) * w / width)) - 1)
            seeds[:] = 2
            seeds[r0 : r1 + 1, c0 : c1 + 1] = 0
        points, labels = box_centre_seed(points, labels, box)
        clicks = [(*self._to_work(int(r), int(c)), int(lab)) for (r, c), lab in zip(points, labels)]
        work_points = np.array([c[:2] for c in clicks], dtype=np.int64).reshape(-1, 2)
        radii = seed_radii(work_points, np.array([c[2] for c in clicks]), self.seed_radius)
        for (row, col, label), radius in zip(clicks, radii):
            rr, cc = disk((row, col), radius + 0.5, shape=(h, w))
            seeds[rr, cc] = 1 if label == 1 else 2
        return seeds

    def predict(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None = None) -> np.ndarray:
        """Bool ``(H, W)`` mask from all clicks so far (and an optional box); see the class docstring."""
        random_walker = require("skimage.segmentation", "bench").random_walker
        resize = require("skimage.transform", "bench").resize

        if self._work is None:
            raise InputError("call set_image before predict")
        points, labels, box = check_prompts(points, labels, box, self._shape)
        if not (labels == 1).any() and box is None:
            return np.zeros(self._shape, dtype=bool)
        seeds = self._seeds(points, labels, box)
        if not (seeds == 1).any() or not (seeds == 2).any():  # one class only: nothing to solve
            foreground = np.full(self._work.shape, float((seeds == 1).any()))
        elif (seeds == 0).any():
            foreground = np.zeros(self._work.shape)
            crop = self._crop
            inner = seeds[crop].copy()
            _seal(inner, crop, self._work.shape)
            if (inner == 1).any() and (inner == 0).any():
                with warnings.catch_warnings():
                    # skimage warns when the solver's probabilities overshoot [0, 1] slightly; harmless here
                    warnings.simplefilter("ignore", UserWarning)
                    foreground[crop] = random_walker(
                        self._work[crop], inner, beta=self.beta, mode="bf", return_full_prob=True
                    )[0]
            else:
                foreground[crop] = (inner == 1).astype(np.float64)
        else:
            foreground = (seeds == 1).astype(np.float64)
        if foreground.shape != self._shape:
            foreground = resize(foreground, self._shape, order=1, preserve_range=True)
        mask = foreground >= 0.5
        for (row, col), label in zip(points, labels):
            mask[row, col] = label == 1
        if box is not None:
            inside = np.zeros_like(mask)
            inside[box[0] : box[2] + 1, box[1] : box[3] + 1] = True
            mask &= inside
        return mask

"""Classical click baselines for DM-Seg-mini: region growing, watershed, GrabCut and a fixed large reference.

Every class implements :class:`~pge_sam.evaluate.baselines.ClickPredictor`
and is stateless between predictions: each ``predict`` recomputes the mask
from *all* clicks so far (``points`` int ``(N, 2)`` (row, col), ``labels``
int ``(N,)`` 1/0) and the optional box ``(row0, col0, row1, col1)``
(inclusive). Shared rules (:class:`_Classical`):

* ``set_image``: the float ``(H, W)`` image is mapped from its 1st..99th
  percentile (:class:`~pge_sam.normalize.Normalization`) to [0, 1], clipped;
* no positive click and no box: an empty mask; a box seeds its centre pixel
  as a positive click for as long as no negative click lands within 3 px of
  it (:func:`~pge_sam.evaluate.baselines.box_centre_seed`: a box-first
  episode keeps its box, so its first corrective click adds to the box's
  seed rather than replacing it);
* the result is restricted to the box, and every clicked pixel takes its
  click's label; the output is bool ``(H, W)``.

Radii are in pixels. Every method's defaults live in :data:`DEFAULT_PARAMS`;
``tuned_params.json`` next to this file (written by
``benchmarks/tune_baselines.py``: ``{modality: {method: params}}``) overrides
them per modality in :func:`classical_predictors`. OpenCV (``cv2``) is
imported only by :class:`GrabCutPredictor`.
"""

from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np

from .._optional import require
from ..errors import InputError
from .baselines import RandomWalkerPredictor, box_centre_seed, check_prompts, seed_radii, unit_range

TUNED_PATH = Path(__file__).with_name("tuned_params.json")

DEFAULT_PARAMS: dict[str, dict] = {
    "random_walker": {"beta": 1000.0, "seed_radius": 1, "max_side": None},
    "region_grow": {"mode": "threshold", "k": 2.5, "min_halfwidth": 0.05, "radius": 2, "neg_radius": 2,
                    "sigma": 0.0, "iterations": 2, "max_hole": 64},
    "watershed": {"sigma": 1.0, "marker_radius": 1, "compactness": 0.0},
    "grabcut": {"iterations": 5, "fg_radius": 2, "prior_radius": 8, "bg_radius": 2, "connected": True},
    "reference_large": {},
}


def _disk(shape: tuple[int, int], row: int, col: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the pixels of ``shape`` within ``radius`` + 0.5 of ``(row, col)``."""
    disk = require("skimage.draw", "bench").disk

    return disk((row, col), radius + 0.5, shape=shape)


def _box_mask(shape: tuple[int, int], box: np.ndarray | None) -> np.ndarray:
    """Bool ``shape`` mask, True inside the inclusive ``box`` (everywhere when ``box`` is None)."""
    if box is None:
        return np.ones(shape, dtype=bool)
    inside = np.zeros(shape, dtype=bool)
    inside[box[0] : box[2] + 1, box[1] : box[3] + 1] = True
    return inside


def _noise_sigma(work: np.ndarray) -> float:
    """Robust noise standard deviation of float ``(H, W)`` ``work`` in [0, 1]; 0.0 when it cannot be told.

    1.4826 * MAD / sqrt(2) of the differences between horizontal neighbours,
    over pairs with both values strictly inside (0, 1) (clipped or constant
    areas such as air would bias it to 0; edges are outliers the MAD ignores).
    """
    left, right = work[:, :-1], work[:, 1:]
    keep = (left > 0) & (left < 1) & (right > 0) & (right < 1)
    if np.count_nonzero(keep) < 16:
        return 0.0
    diff = (right - left)[keep].astype(np.float64)
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2.0))


def _touching(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The 8-connected components of bool ``(H, W)`` ``mask`` holding a point of ``points`` (N, 2); all if none."""
    from scipy import ndimage as ndi

    components = ndi.label(mask, structure=np.ones((3, 3), bool))[0]
    keep = np.unique(components[points[:, 0], points[:, 1]])
    keep = keep[keep > 0]
    return np.isin(components, keep) if len(keep) else mask


class _Classical(ABC):
    """Shared prompt handling; subclasses implement ``_segment(points, labels, box) -> bool (H, W)``.

    ``_segment`` receives validated int64 prompts with at least one positive
    click (the box centre is added as one when the box came alone) and the
    normalised float32 image in ``self._work``.
    """

    name = "classical"

    def __init__(self) -> None:
        self._work: np.ndarray | None = None

    def set_image(self, image: np.ndarray) -> None:
        """Store float ``(H, W)`` ``image`` mapped from its 1st..99th percentile to [0, 1] (float32, clipped)."""
        self._work = unit_range(image, self.name)
        self._prepare()

    def _prepare(self) -> None:
        """Per-image precomputation after ``set_image`` (none by default)."""

    def reset(self) -> None:
        """Nothing to clear: every ``predict`` recomputes from all clicks so far."""

    def predict(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None = None) -> np.ndarray:
        """Bool ``(H, W)`` mask from all clicks so far and an optional box; see the module docstring."""
        if self._work is None:
            raise InputError(f"{self.name}: call set_image before predict")
        shape = self._work.shape
        points, labels, box = check_prompts(points, labels, box, shape)
        seeds, seed_labels = box_centre_seed(points, labels, box)
        if not (seed_labels == 1).any():  # nothing said "this is it" (a box whose centre was clicked away)
            return np.zeros(shape, dtype=bool)
        mask = np.array(self._segment(seeds, seed_labels, box), dtype=bool)
        for (row, col), label in zip(seeds, seed_labels):  # in click order: a later click on a pixel wins
            mask[row, col] = label == 1
        return mask & _box_mask(shape, box)

    @abstractmethod
    def _segment(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        """Bool ``(H, W)`` mask from validated prompts holding at least one positive seed."""


class RegionGrowPredictor(_Classical):
    """SimpleITK seeded region growing from the positive clicks (name ``"region_grow"``).

    Rule, on the normalised image (Gaussian-smoothed with ``sigma`` pixels
    first when ``sigma`` > 0):

    1. negative clicks are barriers: a disk of radius ``neg_radius`` around
       each (shrunk so it misses every positive click, :func:`seed_radii`)
       is set to -1 (outside every interval), so growth cannot pass it;
       with a box every pixel outside the box is set to -1 too;
    2. a half-width h = max(``k`` * spread, ``min_halfwidth``), where spread is

       * ``mode="threshold"`` (default): the image's noise standard deviation
         (:func:`_noise_sigma`, once per image);
       * ``mode="confidence"``: the standard deviation inside the region that
         ``sitk.ConfidenceConnected`` (multiplier ``k``, ``iterations``,
         initial neighbourhood radius ``radius``) grows from the *first*
         positive click (the protocol's first click lies deepest inside the
         object), i.e. the tissue's own spread;

    3. each positive click of value c grows, with ``sitk.ConnectedThreshold``
       (8-connected), the region of values in [c - h, c + h], tightened by
       every negative click whose value v lies in the interval's outer half
       (|v - c| > h / 2): the bound on v's side moves to the midpoint
       (c + v) / 2 (a different tissue); a negative closer to c leaves the
       interval alone (same tissue: only its barrier acts);
    4. the result is the union of these regions with its holes of at most
       ``max_hole`` pixels filled (noise pinholes; 0 fills none), minus the
       barriers (a large enclosed hole, such as the inside of a ring, stays).

    The spread of a disk around *each* click is deliberately not used: at an
    object's edge (where later protocol clicks land) such a disk mixes tissues
    and its spread lets the region leak into the whole frame.
    """

    name = "region_grow"

    def __init__(self, mode: str = "threshold", k: float = 2.5, min_halfwidth: float = 0.05, radius: int = 2,
                 neg_radius: int = 2, sigma: float = 0.0, iterations: int = 2, max_hole: int = 64,
                 name: str = "region_grow"):
        super().__init__()
        if mode not in ("threshold", "confidence"):
            raise InputError(f"region_grow mode must be 'threshold' or 'confidence' (got {mode!r})")
        if k <= 0 or min(min_halfwidth, radius, neg_radius, sigma, iterations, max_hole) < 0:
            raise InputError("region_grow needs k > 0 and min_halfwidth, radius, neg_radius, sigma, iterations, "
                             "max_hole >= 0")
        self.mode, self.k, self.min_halfwidth = mode, float(k), float(min_halfwidth)
        self.radius, self.neg_radius, self.sigma = int(radius), int(neg_radius), float(sigma)
        self.iterations, self.max_hole, self.name = int(iterations), int(max_hole), name
        self._noise = 0.0

    def _prepare(self) -> None:
        from scipy import ndimage as ndi

        if self.sigma > 0:
            self._work = ndi.gaussian_filter(self._work, self.sigma).astype(np.float32)
        self._noise = _noise_sigma(self._work)

    def _half_width(self, image, work: np.ndarray, first: tuple[int, int]) -> float:
        import SimpleITK as sitk

        spread = self._noise
        if self.mode == "confidence":
            grown = sitk.ConfidenceConnected(image, seedList=[(first[1], first[0])], numberOfIterations=self.iterations,
                                             multiplier=self.k, initialNeighborhoodRadius=self.radius, replaceValue=1)
            region = sitk.GetArrayFromImage(grown).astype(bool) & (work >= 0)
            spread = float(work[region].std()) if region.any() else 0.0
        return max(self.k * spread, self.min_halfwidth)

    def _segment(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        import SimpleITK as sitk
        from scipy import ndimage as ndi

        shape = self._work.shape
        work = self._work.copy()
        work[~_box_mask(shape, box)] = -1.0
        negatives = [float(self._work[row, col]) for row, col in points[labels == 0]]
        radii = seed_radii(points, labels, self.neg_radius)
        for (row, col), radius in zip(points[labels == 0], radii[labels == 0]):
            work[_disk(shape, int(row), int(col), radius)] = -1.0
        image = sitk.GetImageFromArray(work)
        positives = [(int(r), int(c)) for r, c in points[labels == 1] if work[r, c] >= 0]  # not on a barrier
        mask = np.zeros(shape, dtype=bool)
        if not positives:
            return mask
        half = self._half_width(image, work, positives[0])
        for row, col in positives:
            value = float(work[row, col])
            low, high = value - half, value + half
            for other in negatives:
                if low < other < high and abs(other - value) > half / 2:
                    low, high = (low, min(high, (value + other) / 2)) if other > value else \
                        (max(low, (value + other) / 2), high)
            grown = sitk.ConnectedThreshold(image, seedList=[(col, row)], lower=low, upper=high, replaceValue=1,
                                            connectivity=sitk.ConnectedThresholdImageFilter.FullConnectivity)
            mask |= sitk.GetArrayFromImage(grown).astype(bool)  # SimpleITK seeds are (x, y) = (col, row)
        if self.max_hole > 0:
            holes, _ = ndi.label(ndi.binary_fill_holes(mask) & ~mask)
            small = np.bincount(holes.ravel()) <= self.max_hole
            mask |= small[holes] & (holes > 0)
        return mask & (work >= 0)


class WatershedPredictor(_Classical):
    """Marker-controlled watershed (name ``"watershed"``) via ``skimage.segmentation.watershed``.

    Relief: ``skimage.filters.sobel`` of the normalised image, Gaussian-smoothed
    with ``sigma`` pixels first when ``sigma`` > 0. Markers: label 2 the
    one-pixel image border and, with a box, every pixel outside the box; then
    a disk of radius ``marker_radius`` at each click (label 1 positive, 2
    negative), shrunk so it does not reach a click of the other label
    (:func:`seed_radii`).
    ``compactness`` > 0 gives compact watershed (more regular regions). The
    result is the basin flooded from the positive markers.
    """

    name = "watershed"

    def __init__(self, sigma: float = 1.0, marker_radius: int = 1, compactness: float = 0.0, name: str = "watershed"):
        super().__init__()
        if sigma < 0 or marker_radius < 0 or compactness < 0:
            raise InputError("watershed needs sigma, marker_radius and compactness >= 0")
        self.sigma, self.marker_radius, self.compactness = float(sigma), int(marker_radius), float(compactness)
        self.name = name
        self._relief: np.ndarray | None = None

    def _prepare(self) -> None:
        from scipy import ndimage as ndi
        sobel = require("skimage.filters", "bench").sobel

        smooth = ndi.gaussian_filter(self._work, self.sigma) if self.sigma > 0 else self._work
        self._relief = sobel(smooth).astype(np.float32)

    def _segment(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        watershed = require("skimage.segmentation", "bench").watershed

        shape = self._work.shape
        markers = np.zeros(shape, dtype=np.int32)
        markers[[0, -1], :] = 2
        markers[:, [0, -1]] = 2
        markers[~_box_mask(shape, box)] = 2
        radii = seed_radii(points, labels, self.marker_radius)
        for (row, col), label, radius in zip(points, labels, radii):
            markers[_disk(shape, int(row), int(col), radius)] = 1 if label == 1 else 2
        return watershed(self._relief, markers, compactness=self.compactness) == 1


class GrabCutPredictor(_Classical):
    """OpenCV GrabCut seeded from a mask (name ``"grabcut"``), ``cv2.grabCut`` in ``GC_INIT_WITH_MASK`` mode.

    The normalised image becomes 8-bit (``to_uint8`` of [0, 1]) with three equal
    channels. Initial mask, later rules overwriting earlier ones: everything
    ``GC_PR_BGD``; the one-pixel image border ``GC_BGD``; with a box, every
    pixel outside it ``GC_BGD`` and every pixel inside ``GC_PR_FGD``; a disk
    of radius ``prior_radius`` around each positive click ``GC_PR_FGD``; a disk
    of radius ``fg_radius`` around each positive click ``GC_FGD``; a disk of
    radius ``bg_radius`` around each negative click ``GC_BGD`` (these two
    shrunk so they miss the clicks of the other label, :func:`seed_radii`). Then
    ``iterations`` rounds of GrabCut (GMMs of 5 components per class); the
    result is ``GC_FGD`` or ``GC_PR_FGD``, reduced when ``connected`` (default)
    to its 8-connected components that hold a positive click (the colour model
    alone also takes far-away pixels of similar intensity; when no positive
    click lies in the foreground, all of it is kept). When either class has
    fewer than 10 pixels to fit its GMM, the initial foreground is returned.
    """

    name = "grabcut"

    def __init__(self, iterations: int = 5, fg_radius: int = 2, prior_radius: int = 8, bg_radius: int = 2,
                 connected: bool = True, name: str = "grabcut"):
        super().__init__()
        if iterations < 1 or min(fg_radius, prior_radius, bg_radius) < 0:
            raise InputError("grabcut needs iterations >= 1 and fg_radius, prior_radius, bg_radius >= 0")
        self.iterations, self.fg_radius, self.prior_radius = int(iterations), int(fg_radius), int(prior_radius)
        self.bg_radius, self.connected, self.name = int(bg_radius), bool(connected), name
        self._rgb: np.ndarray | None = None

    def _prepare(self) -> None:
        from ..normalize import to_uint8

        self._rgb = np.ascontiguousarray(np.repeat(to_uint8(self._work, 0.0, 1.0)[:, :, None], 3, axis=2))

    def _segment(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        cv2 = require("cv2", "bench")

        shape = self._work.shape
        init = np.full(shape, cv2.GC_PR_BGD, dtype=np.uint8)
        init[[0, -1], :] = cv2.GC_BGD
        init[:, [0, -1]] = cv2.GC_BGD
        if box is not None:
            init[~_box_mask(shape, box)] = cv2.GC_BGD
            init[_box_mask(shape, box)] = cv2.GC_PR_FGD
        positives = points[labels == 1]
        for radius, value, label in ((self.prior_radius, cv2.GC_PR_FGD, 1), (self.fg_radius, cv2.GC_FGD, 1),
                                     (self.bg_radius, cv2.GC_BGD, 0)):
            radii = seed_radii(points, labels, radius) if value != cv2.GC_PR_FGD else np.full(len(points), radius)
            for (row, col), r in zip(points[labels == label], radii[labels == label]):
                init[_disk(shape, int(row), int(col), r)] = value
        foreground = (init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)
        if min(np.count_nonzero(foreground), np.count_nonzero(~foreground)) < 10:
            return foreground
        bgd_model, fgd_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut's GMM initialisation draws from OpenCV's RNG: same clicks, same mask
        cv2.grabCut(self._rgb, init, None, bgd_model, fgd_model, self.iterations, cv2.GC_INIT_WITH_MASK)
        foreground = (init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)
        return _touching(foreground, positives) if self.connected else foreground


class LargeReference(_Classical):
    """A fixed, deliberately coarse answer (name ``"reference_large"``): what a wrong-but-large mask scores.

    Rule: Otsu threshold of the normalised image (``skimage.filters.threshold_otsu``),
    foreground above it, holes filled; the 8-connected component containing
    the *first* positive click (the box centre when a box comes without one),
    or all Otsu foreground when that click lies outside it. Later clicks do
    not change it, except that clicked pixels take their click's label and
    the box clips it (the shared rules). No tunable parameters.
    """

    name = "reference_large"

    def __init__(self, name: str = "reference_large"):
        super().__init__()
        self.name = name
        self._labels: np.ndarray | None = None

    def _prepare(self) -> None:
        from scipy import ndimage as ndi
        threshold_otsu = require("skimage.filters", "bench").threshold_otsu

        foreground = ndi.binary_fill_holes(self._work > threshold_otsu(self._work))
        self._labels = ndi.label(foreground, structure=np.ones((3, 3), bool))[0]

    def _segment(self, points: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
        row, col = points[labels == 1][0]
        component = self._labels[row, col]
        return self._labels == component if component else self._labels > 0


CLASSES: dict[str, type] = {
    "random_walker": RandomWalkerPredictor,
    "region_grow": RegionGrowPredictor,
    "watershed": WatershedPredictor,
    "grabcut": GrabCutPredictor,
    "reference_large": LargeReference,
}


def load_tuned(path: Path | str = TUNED_PATH) -> dict[str, dict[str, dict]]:
    """``{modality: {method: params}}`` from ``tuned_params.json`` at ``path``; ``{}`` when there is no file."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        tuned = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read tuned parameters {path} ({exc}); delete it or re-run "
                         "benchmarks/tune_baselines.py") from None
    if not isinstance(tuned, dict) or not all(isinstance(v, dict) for v in tuned.values()):
        raise InputError(f"{path} must hold {{modality: {{method: params}}}}; re-run benchmarks/tune_baselines.py")
    return tuned


def classical_predictors(modality: str | None = None, tuned_path: Path | str = TUNED_PATH
                         ) -> dict[str, Callable[[], object]]:
    """Zero-argument factories ``{name: factory}`` of every classical baseline, for ``run_benchmark``.

    Parameters: :data:`DEFAULT_PARAMS`, updated by the ``modality`` entry of
    ``tuned_params.json`` when there is one (``modality=None``: defaults only).
    Raises :class:`InputError` when a tuned parameter is unknown to its method.
    """
    tuned = load_tuned(tuned_path).get(modality, {}) if modality is not None else {}
    factories = {}
    for name, cls in CLASSES.items():
        params = {**DEFAULT_PARAMS[name], **tuned.get(name, {})}
        try:
            cls(**params)
        except TypeError as exc:
            raise InputError(f"tuned parameters {params} do not fit {cls.__name__} ({exc}); "
                             "re-run benchmarks/tune_baselines.py") from None
        factories[name] = functools.partial(cls, **params)
    return factories

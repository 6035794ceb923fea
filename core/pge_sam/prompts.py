"""Prompts on one slice and their conversion to the model's input frame.

All coordinates here are slice pixels: ``row`` (down) and ``col`` (right),
integers. Boxes are inclusive ``(row0, col0, row1, col1)``. SAM wants (x, y) =
(col, row) in its resized input frame; :class:`InputTransform` does that step
with segment-anything's own ``ResizeLongestSide``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .errors import PromptError


@dataclass(frozen=True)
class Point:
    row: int
    col: int
    positive: bool = True


@dataclass(frozen=True)
class Box:
    """Inclusive pixel box; row0 <= row1 and col0 <= col1 after :meth:`from_corners`."""

    row0: int
    col0: int
    row1: int
    col1: int

    @classmethod
    def from_corners(cls, a: tuple[int, int], b: tuple[int, int]) -> "Box":
        (r0, c0), (r1, c1) = a, b
        box = cls(min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1))
        if box.row0 == box.row1 or box.col0 == box.col1:
            raise PromptError(
                f"box from {a} to {b} has zero area; drag a rectangle at least two pixels wide and tall"
            )
        return box


@dataclass(frozen=True)
class SlicePrompts:
    """Prompts of one object on one slice (immutable; verbs return new values)."""

    points: tuple[Point, ...] = ()
    box: Box | None = None

    def with_point(self, p: Point) -> "SlicePrompts":
        return replace(self, points=self.points + (p,))

    def with_box(self, b: Box) -> "SlicePrompts":
        return replace(self, box=b)

    @property
    def empty(self) -> bool:
        return not self.points and self.box is None

    @property
    def is_stop_marker(self) -> bool:
        """Only negative points and no box: "this object does not reach this slice"."""
        return bool(self.points) and self.box is None and not any(p.positive for p in self.points)


ASPECT_TOLERANCE = 0.05  # pixel aspect ratios closer to 1 than this are treated as square


@dataclass
class InputTransform:
    """Maps slice pixels to the model's input frame for an original slice size (H, W).

    ``aspect`` = row spacing / column spacing of the slice (e.g. 5.0 for a
    coronal slice of a CT with 5 mm slices and 1 mm pixels). Non-square pixels
    are first resampled to square ones (rows scaled by ``aspect``) so the model
    sees true anatomy; masks are mapped back to (H, W). With square pixels the
    transform is exactly segment-anything's ``ResizeLongestSide``.
    """

    img_size: int
    original_size: tuple[int, int]
    aspect: float = 1.0
    _resize: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from segment_anything.utils.transforms import ResizeLongestSide

        self._resize = ResizeLongestSide(self.img_size)
        if abs(self.aspect - 1.0) <= ASPECT_TOLERANCE:
            self.aspect = 1.0

    @property
    def square_size(self) -> tuple[int, int]:
        """(H', W): the slice size after resampling to square pixels."""
        h, w = self.original_size
        return (max(1, int(round(h * self.aspect))), w)

    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self.square_size
        return tuple(self._resize.get_preprocess_shape(h, w, self.img_size))

    def image(self, slice_u8: np.ndarray) -> np.ndarray:
        """(H, W) uint8 -> (h', w', 3) uint8 resized so the longest side is ``img_size``."""
        if self.aspect != 1.0:
            from PIL import Image

            h, w = self.square_size
            slice_u8 = np.asarray(Image.fromarray(slice_u8).resize((w, h), Image.BILINEAR))
        rgb = np.repeat(slice_u8[:, :, None], 3, axis=2)
        return self._resize.apply_image(rgb)

    def _square_rows(self, rows: np.ndarray) -> np.ndarray:
        return rows if self.aspect == 1.0 else (rows + 0.5) * self.aspect - 0.5

    def coords(self, rows_cols: np.ndarray) -> np.ndarray:
        """(N, 2) (row, col) -> (N, 2) float (x, y) in the input frame."""
        rc = np.asarray(rows_cols, dtype=np.float64)
        xy = np.stack([rc[:, 1], self._square_rows(rc[:, 0])], axis=1)
        return self._resize.apply_coords(xy, self.square_size)

    def box(self, box: Box) -> np.ndarray:
        """Inclusive pixel box -> (4,) float x0, y0, x1, y1 in the input frame (SamPredictor's convention)."""
        r = self._square_rows(np.array([box.row0, box.row1], dtype=np.float64))
        xyxy = np.array([[box.col0, r[0], box.col1, r[1]]], dtype=np.float64)
        return self._resize.apply_boxes(xyxy, self.square_size)[0]


def to_batch(prompts: SlicePrompts, transform: InputTransform, mask_input, device):
    """:class:`~pge_sam.models.base.PromptBatch` for one slice's prompts (tensors on ``device``)."""
    import torch

    from .models.base import PromptBatch

    batch = PromptBatch(mask_input=mask_input)
    if prompts.points:
        rc = np.array([[p.row, p.col] for p in prompts.points])
        batch.coords = torch.as_tensor(transform.coords(rc), dtype=torch.float32, device=device)[None]
        batch.labels = torch.as_tensor([[int(p.positive) for p in prompts.points]], dtype=torch.int64, device=device)
    if prompts.box is not None:
        batch.box = torch.as_tensor(transform.box(prompts.box), dtype=torch.float32, device=device)[None]
    return batch

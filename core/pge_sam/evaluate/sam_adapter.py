"""The benchmark's :class:`~pge_sam.evaluate.baselines.ClickPredictor` for our models, through the real Session.

Each ``predict`` call receives every click so far; the adapter forwards only
the new ones to a 2D :class:`~pge_sam.session.Session`, which feeds the
previous low-res logits back on each click exactly as in interactive use.
Embeddings are cached by the shared predictor, so ``reset`` (new target on
the same image) costs no encoder pass.
"""

from __future__ import annotations

import numpy as np

from ..predictor import Predictor
from ..session import Session
from .baselines import check_prompts


class SessionClickPredictor:
    def __init__(self, model, name: str | None = None) -> None:
        self.predictor = Predictor(model)
        self.name = name or model.name
        self._image: np.ndarray | None = None
        self._session: Session | None = None
        self._labels: np.ndarray | None = None
        self._n_points = 0
        self._box = None

    def set_image(self, image: np.ndarray) -> None:
        """``image``: (H, W) float32, any intensity range (percentile-normalised as in the session)."""
        self._image = np.asarray(image, dtype=np.float32)
        self.predictor.cache.clear()
        self.reset()

    def reset(self) -> None:
        if self._image is None:
            raise RuntimeError("set_image must be called before reset/predict")
        self._labels = np.zeros(self._image.shape, np.uint8)
        self._session = Session(self.predictor, self._image, self._labels, prefetch=0)
        self._n_points, self._box = 0, None

    def predict(self, points, labels, box=None) -> np.ndarray:
        """All clicks so far ``points`` (N, 2) (row, col), ``labels`` (N,) {1, 0}; ``box`` (row0, col0, row1, col1)."""
        if self._session is None:
            raise RuntimeError("set_image must be called before predict")
        points, labels, box = check_prompts(points, labels, box, self._image.shape)
        if box is not None and (self._box is None or not np.array_equal(box, self._box)):
            self._session.add_box((int(box[0]), int(box[1])), (int(box[2]), int(box[3])))
            self._box = box
        for (r, c), lab in zip(points[self._n_points:], labels[self._n_points:]):
            self._session.add_point((int(r), int(c)), positive=bool(lab))
        self._n_points = len(points)
        return self._labels == self._session.label

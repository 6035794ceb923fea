"""The benchmark adapter drives the real Session: only new clicks are forwarded, logits are fed back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pge_sam.errors import PromptError
from pge_sam.evaluate.sam_adapter import SessionClickPredictor
from pge_sam.models import build_model


@pytest.fixture(scope="module")
def adapter():
    torch.manual_seed(0)
    return SessionClickPredictor(build_model("sam_tiny", pretrained=False, device="cpu"))


def image():
    rows, cols = np.mgrid[:60, :70]
    return (((rows - 30) ** 2 + (cols - 35) ** 2 < 15**2) * 1.0 + 0.1 * np.sin(cols / 3)).astype(np.float32)


def test_clicks_are_forwarded_once_and_logits_fed_back(adapter):
    adapter.set_image(image())
    m1 = adapter.predict(np.array([[30, 35]]), np.array([1]))
    assert m1.shape == (60, 70) and m1.dtype == bool
    m2 = adapter.predict(np.array([[30, 35], [5, 5]]), np.array([1, 0]))
    session = adapter._session
    prompts = session.state.objects[session.label].prompts[(0, 0)]
    assert [(p.row, p.col, p.positive) for p in prompts.points] == [(30, 35, True), (5, 5, False)]
    assert (0, 0) in session.state.objects[session.label].logits  # previous logits kept for the next click
    assert m2.shape == m1.shape
    calls = adapter.predictor.encoder_calls
    adapter.reset()  # new target on the same image: no new encoder pass
    adapter.predict(np.array([[30, 35]]), np.array([1]))
    assert adapter.predictor.encoder_calls == calls


def test_box_and_bad_prompts(adapter):
    adapter.set_image(image())
    mask = adapter.predict(np.zeros((0, 2), int), np.zeros(0, int), box=np.array([15, 20, 45, 50]))
    assert mask.shape == (60, 70)
    with pytest.raises(PromptError):
        adapter.predict(np.array([[99, 5]]), np.array([1]))

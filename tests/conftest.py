"""Shared fixtures: tiny random-initialised models and a small synthetic volume.

The models are built once per test session with ``torch.manual_seed(0)`` and
``pretrained=False`` (no weights file needed). Tests that modify weights must
work on a copy (``fresh_model``), never on the shared instances.
"""

from __future__ import annotations

import copy
import http.server
import threading
from functools import partial

import numpy as np
import pytest
from fakes import ellipsoid


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core machine this is ~50x faster for the tiny decoder."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def seeded_model(name: str, seed: int = 0):
    """``build_model(name, pretrained=False, device="cpu")`` right after ``torch.manual_seed(seed)``."""
    import torch

    from pge_sam.models.registry import build_model

    torch.manual_seed(seed)
    return build_model(name, pretrained=False, device="cpu")


@pytest.fixture(scope="session")
def sam_tiny():
    """Random-initialised plain SAM on the tiny backbone (shared: do not modify)."""
    return seeded_model("sam_tiny")


@pytest.fixture(scope="session")
def pge_sam_tiny():
    """Random-initialised, untrained PGE-SAM on the tiny backbone (shared: do not modify)."""
    return seeded_model("pge_sam_tiny")


@pytest.fixture(scope="module")
def pred(sam_tiny):
    """One ``Predictor`` (and embedding cache) over the shared ``sam_tiny`` per test module."""
    from pge_sam.predictor import Predictor

    return Predictor(sam_tiny)


@pytest.fixture
def fresh_model(sam_tiny, pge_sam_tiny):
    """``fresh_model(name)``: a deep copy of a shared tiny model that a test may modify."""

    def make(name: str = "sam_tiny"):
        source = {"sam_tiny": sam_tiny, "pge_sam_tiny": pge_sam_tiny}[name]
        model = copy.deepcopy(source)
        model.weights_changed()
        return model

    return make


def make_volume(shape=(6, 40, 56), seed: int = 0) -> np.ndarray:
    """A (Z, Y, X) float32 volume: a bright ellipsoid (value ~200) on a noisy background (~50)."""
    rng = np.random.default_rng(seed)
    centre = [(n - 1) / 2 for n in shape]
    inside = ellipsoid(shape, centre, (0.6 * shape[0], 0.3 * shape[1], 0.3 * shape[2]))
    return (50.0 + 150.0 * inside + rng.normal(0.0, 10.0, shape)).astype(np.float32)


@pytest.fixture(scope="session")
def volume() -> np.ndarray:
    """(6, 40, 56) float32 test volume (non-square slices along every axis). Copy before editing."""
    vol = make_volume()
    vol.setflags(write=False)
    return vol


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def local_server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "served"`` (no proxy in between); yields its base URL."""
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def served_vit_b(local_server, monkeypatch):
    """A 3 MiB stand-in for the official vit_b checkpoint on ``local_server`` (``weights.OFFICIAL`` points to it,
    with its sha256); yields its bytes."""
    import hashlib

    from pge_sam.models import weights as W

    root, url = local_server
    payload = np.random.default_rng(0).bytes(3 * W.MIB + 12345)
    (root / "ck.pth").write_bytes(payload)
    monkeypatch.setitem(W.OFFICIAL, "vit_b", W.OfficialCheckpoint(
        "vit_b", "sam_vit_b_01ec64.pth", f"{url}/ck.pth", hashlib.sha256(payload).hexdigest(), 4))
    yield payload

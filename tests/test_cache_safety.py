"""The on-disk embedding cache never deletes what it did not make, and survives read-only folders,
full disks and damaged entries (issue 13, defect 1)."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pge_sam import disk_cache
from pge_sam.cache import CacheKey
from pge_sam.cli import main
from pge_sam.disk_cache import MARKER, STORE_NAME, DiskStore
from pge_sam.errors import CacheError, CacheWarning
from pge_sam.io import write_labels
from pge_sam.normalize import Normalization
from pge_sam.predictor import Predictor
from pge_sam.session import Session


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def key(i: int = 0) -> CacheKey:
    return CacheKey(f"c{i}", 0, i, "m", "w", 256, "fp32")


def entry() -> dict:
    return {"embedding": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4).to(torch.bfloat16),
            "early_proj": torch.linspace(0, 1, 6)}


@pytest.fixture
def scan(tmp_path, volume) -> Path:
    """A real NIfTI scan in a user's data folder, with another file of theirs beside it."""
    data = tmp_path / "data"
    data.mkdir()
    write_labels(np.zeros((2, 2, 2), np.uint16), data / "other.nii.gz")  # any user file
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(volume)), str(data / "scan.nii.gz"))
    return data / "scan.nii.gz"


def test_cli_cache_in_the_data_folder_keeps_the_scan_when_the_signature_changes(scan, tmp_path, capsys):
    data = scan.parent
    before = {p.name: digest(p) for p in data.iterdir() if p.is_file()}
    base = ["segment", str(scan), "--model", "sam_tiny", "--device", "cpu", "--cache-dir", str(data),
            "--point", "2,20,28"]
    assert main(base + ["--out", str(tmp_path / "o1.nii.gz")]) == 0
    assert main(base + ["--norm", "percentile:1,99", "--out", str(tmp_path / "o2.nii.gz")]) == 0
    assert {p.name: digest(p) for p in data.iterdir() if p.is_file()} == before  # nothing of the user's touched
    assert (data / STORE_NAME / MARKER).is_file()
    err = capsys.readouterr().err
    assert "warning: embedding store" in err and "normalization" in err and "recomputed" in err


def test_signature_change_drops_only_its_own_entries(sam_tiny, volume, tmp_path):
    folder = tmp_path / "cache"
    s1 = Session(Predictor(sam_tiny), volume, prefetch=0, disk_cache=folder)
    s1.precompute(0, 2)
    stray = s1.disk.path / "notes.txt"  # something a user dropped into the store
    stray.write_text("mine")
    with pytest.warns(CacheWarning, match="normalization"):
        s2 = Session(Predictor(sam_tiny), volume, prefetch=0, disk_cache=folder,
                     normalization=Normalization.percentile(2, 98))
    assert s2.disk.reset_reason and stray.read_text() == "mine"
    assert s2.precompute(0, 2) == 2  # recomputed, never served stale


def test_a_store_folder_that_pge_sam_did_not_make_is_refused(sam_tiny, volume, tmp_path):
    folder = tmp_path / "cache"
    (folder / STORE_NAME).mkdir(parents=True)
    mine = folder / STORE_NAME / "thesis.docx"
    mine.write_bytes(b"precious")
    with pytest.raises(CacheError, match="did not write"):
        Session(Predictor(sam_tiny), volume, prefetch=0, disk_cache=folder)
    assert (mine.read_bytes() == b"precious"
            and sorted(p.name for p in (folder / STORE_NAME).iterdir()) == ["thesis.docx"])


def test_a_file_as_cache_folder_is_refused(tmp_path):
    target = tmp_path / "scan.nii.gz"
    target.write_bytes(b"data")
    with pytest.raises(CacheError, match="is a file"):
        DiskStore(target, {"model": "m"})
    assert target.read_bytes() == b"data"


def test_read_only_folder_serves_its_entries_and_writes_nothing(tmp_path, monkeypatch):
    DiskStore(tmp_path, {"model": "m"}).put(key(0), entry())
    listing = sorted(str(p) for p in tmp_path.rglob("*"))
    monkeypatch.setattr(disk_cache.os, "access", lambda path, mode: mode != os.W_OK)
    with pytest.warns(CacheWarning, match="read-only"):
        store = DiskStore(tmp_path, {"model": "m"})
    assert store.read_only and torch.equal(store.get(key(0))["early_proj"], entry()["early_proj"])
    store.put(key(1), entry())
    assert not store.has(key(1)) and sorted(str(p) for p in tmp_path.rglob("*")) == listing


def test_read_only_folder_without_a_store_turns_the_disk_tier_off(sam_tiny, volume, tmp_path, monkeypatch):
    monkeypatch.setattr(disk_cache.os, "access", lambda path, mode: mode != os.W_OK)
    with pytest.warns(CacheWarning, match="read-only"):
        session = Session(Predictor(sam_tiny), volume, prefetch=0, disk_cache=tmp_path / "ro")
    assert session.disk.disabled and not (tmp_path / "ro").exists()
    assert session.add_point((2, 20, 28)).label == 1  # the job goes on


@pytest.mark.parametrize("code,mode", [(errno.ENOSPC, "disabled"), (errno.EROFS, "read_only")])
def test_a_failing_write_keeps_the_job_going(sam_tiny, volume, tmp_path, monkeypatch, code, mode):
    labels_free = np.zeros(volume.shape, np.uint16)
    Session(Predictor(sam_tiny), volume, labels_free, prefetch=0).add_point((2, 20, 28))

    def full_disk(sub, tensors):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(disk_cache, "_write_entry", full_disk)
    labels = np.zeros(volume.shape, np.uint16)
    session = Session(Predictor(sam_tiny), volume, labels, prefetch=0, disk_cache=tmp_path / "c")
    with pytest.warns(CacheWarning, match=os.strerror(code)):
        session.add_point((2, 20, 28))
    assert getattr(session.disk, mode)
    np.testing.assert_array_equal(labels, labels_free)  # same result as without a disk tier
    session.add_point((3, 20, 28))  # no second warning, no error


def tamper_dtype(store, name):
    store._group[name].attrs["dtypes"] = {"embedding": "os.system", "early_proj": "float32"}


def tamper_shape(store, name):
    sub = store._group[name]
    sub.create_array("embedding", shape=(2, 3), dtype="float32", overwrite=True)[...] = np.zeros((2, 3), np.float32)


def tamper_values(store, name):
    sub = store._group[name]
    data = np.asarray(sub["embedding"][...])
    data[0, 0, 0] += 1
    sub["embedding"][...] = data


def truncate_chunks(store, name):
    chunks = [p for p in (store.path / disk_cache.GROUP / name / "embedding" / "c").rglob("*") if p.is_file()]
    assert chunks
    for chunk in chunks:
        chunk.write_bytes(chunk.read_bytes()[:5])


@pytest.mark.parametrize("damage", [tamper_dtype, tamper_shape, tamper_values, truncate_chunks])
def test_damaged_entries_are_detected_and_recomputed(tmp_path, damage):
    store = DiskStore(tmp_path, {"model": "m"})
    store.put(key(0), entry())
    damage(store, key(0).digest())
    with pytest.warns(CacheWarning, match="damaged|cannot be read"):
        assert store.get(key(0)) is None
    store.put(key(0), entry())  # recomputed entries overwrite the damaged one
    assert torch.equal(store.get(key(0))["embedding"], entry()["embedding"])


def test_damaged_entry_in_a_session_is_re_encoded(sam_tiny, volume, tmp_path):
    folder = tmp_path / "c"
    first = Session(Predictor(sam_tiny), volume, prefetch=0, disk_cache=folder)
    first.precompute(1, 2)
    (name,) = [n for n in first.disk._group.group_keys()]
    tamper_values(first.disk, name)
    pred = Predictor(sam_tiny)
    again = Session(pred, volume, prefetch=0, disk_cache=folder)
    with pytest.warns(CacheWarning, match="checksum"):
        again.add_point((1, 20, 28))
    assert pred.encoder_calls == 1

"""Nothing lost: atomic label writes, --out checked before the work, --labels-in ids kept or refused,
NaN/inf in NIfTI refused, clean one-line errors (issue 13, defects 2-5 and 7)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from pge_sam import io as pio
from pge_sam.cli import main
from pge_sam.errors import InputError, OutputError
from pge_sam.io import read_image, write_labels

SPACING = (0.8, 0.9, 2.5)  # x, y, z as SimpleITK has it
ORIGIN = (-10.0, 20.5, 5.25)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_image(path: Path, array: np.ndarray, origin=ORIGIN, spacing=SPACING) -> Path:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture
def scan(tmp_path, volume) -> Path:
    return write_image(tmp_path / "scan.nii.gz", volume)


@pytest.fixture
def old_labels(tmp_path, volume) -> Path:
    labels = np.zeros(volume.shape, np.uint16)
    labels[0, :4, :4] = 7
    return write_image(tmp_path / "labels.nii.gz", labels)


def segment(scan: Path, *extra: str) -> int:
    return main(["segment", str(scan), "--model", "sam_tiny", "--device", "cpu", "--point", "2,20,28", *extra])


def truncating_writer(real):
    """A SimpleITK.WriteImage that 'succeeds' but leaves half a file, as on a full disk."""

    def write(image, path, *args):
        real(image, path, *args)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])

    return write


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- defect 2: atomic, verified writes ----------------------------------------------------------------
def test_truncated_write_is_an_error_and_the_old_file_is_untouched(tmp_path, old_labels, monkeypatch):
    import SimpleITK as sitk

    before = sha(old_labels)
    monkeypatch.setattr(sitk, "WriteImage", truncating_writer(sitk.WriteImage))
    with pytest.raises(OutputError, match="untouched"):
        write_labels(np.ones((6, 40, 56), np.uint16), old_labels)
    assert sha(old_labels) == before and leftovers(tmp_path) == []


def test_a_new_file_is_not_left_behind_when_the_write_fails(tmp_path, monkeypatch):
    import SimpleITK as sitk

    def failing(image, path, *args):
        Path(path).write_bytes(b"")
        raise RuntimeError("ITK ERROR: could not write: No space left on device")

    monkeypatch.setattr(sitk, "WriteImage", failing)
    with pytest.raises(OutputError, match="No space left"):
        write_labels(np.ones((3, 4, 5), np.uint16), tmp_path / "new.nrrd")
    assert list(tmp_path.iterdir()) == []


def test_cli_full_disk_exits_non_zero_without_a_traceback(scan, tmp_path, monkeypatch, capsys):
    import SimpleITK as sitk

    out = tmp_path / "out.nii.gz"
    monkeypatch.setattr(sitk, "WriteImage", truncating_writer(sitk.WriteImage))
    assert segment(scan, "--out", str(out)) == 2
    captured = capsys.readouterr()
    assert "error: writing" in captured.err and "Traceback" not in captured.err
    assert "wrote" not in captured.out and not out.exists()


def test_written_labels_keep_the_usual_permissions(tmp_path):
    path = write_labels(np.ones((3, 4, 5), np.uint16), tmp_path / "l.nii.gz")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# -- defect 3: --out checked before the work ------------------------------------------------------------
def test_out_equal_to_the_input_is_refused_and_the_scan_kept(scan, capsys):
    before = sha(scan)
    assert segment(scan, "--out", str(scan), "--force") == 2
    assert sha(scan) == before and "is the input image" in capsys.readouterr().err


def test_existing_out_needs_force(scan, tmp_path, capsys):
    out = tmp_path / "out.nii.gz"
    out.write_bytes(b"someone's labels")
    assert segment(scan, "--out", str(out)) == 2
    assert out.read_bytes() == b"someone's labels" and "--force" in capsys.readouterr().err
    assert segment(scan, "--out", str(out), "--force") == 0
    assert read_image(out).array.max() >= 1


def test_writing_back_into_labels_in_keeps_its_labels(scan, old_labels):
    assert segment(scan, "--labels-in", str(old_labels), "--out", str(old_labels)) == 0
    back = read_image(old_labels).array
    assert (back[0, :4, :4] == 7).all() and (back == 8).any()  # old object kept, the new one got a new id


@pytest.mark.parametrize("name,match", [("labels.png", "PNG holds one 2D slice"), ("labels.xyz", "use one of"),
                                        ("labels.nhdr", "use one of")])
def test_unusable_formats_are_refused_before_the_work(scan, tmp_path, capsys, monkeypatch, name, match):
    import pge_sam.models.registry as registry

    monkeypatch.setattr(registry, "build_model", lambda *a, **k: pytest.fail("the model was built before the check"))
    assert segment(scan, "--out", str(tmp_path / name)) == 2
    assert match in capsys.readouterr().err and not (tmp_path / name).exists()


def test_unwritable_out_folder_is_refused_before_the_work(scan, tmp_path, capsys, monkeypatch):
    import pge_sam.models.registry as registry

    monkeypatch.setattr(registry, "build_model", lambda *a, **k: pytest.fail("the model was built before the check"))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pio.tempfile, "mkstemp", denied)
    assert segment(scan, "--out", str(tmp_path / "labels.nii.gz")) == 2
    assert "cannot write to" in capsys.readouterr().err
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        pio.check_output(blocker / "sub" / "labels.nii.gz", 3)


def test_out_inside_an_input_dicom_folder_is_refused(tmp_path):
    folder = tmp_path / "dicom"
    folder.mkdir()
    with pytest.raises(OutputError, match="inside the input DICOM folder"):
        pio.check_output(folder / "labels.nii.gz", 3, inputs=[folder])


# -- defect 4: --labels-in ids and geometry -----------------------------------------------------------------
@pytest.mark.parametrize("value,dtype,match", [(-5, np.int32, "negative values \\(-5\\)"),
                                               (2.7, np.float32, "non-integer values \\(2.7\\)")])
def test_labels_in_with_unusable_ids_is_refused(scan, tmp_path, capsys, volume, value, dtype, match):
    labels = np.zeros(volume.shape, dtype)
    labels[0, 0, 0] = value
    path = write_image(tmp_path / "bad.nrrd", labels)
    assert segment(scan, "--labels-in", str(path), "--out", str(tmp_path / "o.nii.gz")) == 2
    import re

    assert re.search(match, capsys.readouterr().err)


def test_labels_in_ids_above_65535_are_kept(scan, tmp_path, volume):
    labels = np.zeros(volume.shape, np.uint32)
    labels[0, :2, :2] = 65538
    labels[5, :2, :2] = 2
    path = write_image(tmp_path / "big.nrrd", labels)
    out = tmp_path / "o.nrrd"
    assert segment(scan, "--labels-in", str(path), "--out", str(out)) == 0
    back = read_image(out).array
    assert back[0, 0, 0] == 65538 and back[5, 0, 0] == 2 and back.dtype == np.uint32


def test_labels_in_on_another_grid_is_refused(scan, tmp_path, capsys, volume):
    moved = write_image(tmp_path / "moved.nii.gz", np.zeros(volume.shape, np.uint16), origin=(0.0, 0.0, 0.0))
    assert segment(scan, "--labels-in", str(moved), "--out", str(tmp_path / "o.nii.gz")) == 2
    assert "origin" in capsys.readouterr().err
    coarse = write_image(tmp_path / "coarse.nii.gz", np.zeros(volume.shape, np.uint16), spacing=(1.0, 1.0, 1.0))
    assert segment(scan, "--labels-in", str(coarse), "--out", str(tmp_path / "o.nii.gz")) == 2
    assert "spacing" in capsys.readouterr().err


# -- defect 5: NaN/inf in NIfTI -----------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
def test_nan_and_inf_are_refused_in_every_format(tmp_path, volume, suffix):
    import nibabel

    vol = volume.copy()
    vol[1, 2, 3], vol[2, 3, 4] = np.nan, np.inf
    path = tmp_path / f"scan{suffix}"
    if suffix == ".nrrd":
        write_image(path, vol)
    else:
        nibabel.save(nibabel.Nifti1Image(vol.transpose(2, 1, 0), np.eye(4)), str(path))
    with pytest.raises(InputError, match="NaN or infinite values.*2 voxels"):
        read_image(path)


# -- defect 7: one clear line, not a traceback --------------------------------------------------------------------
def test_box_with_a_sign_is_refused(scan, tmp_path, capsys):
    assert main(["segment", str(scan), "--box", "2,5,5:2,30,40:-", "--out", str(tmp_path / "o.nii.gz")]) == 2
    assert "a box has no sign" in capsys.readouterr().err


def test_points_print_as_numbers(scan, tmp_path, capsys):
    assert main(["segment", str(scan), "--model", "sam_tiny", "--device", "cpu", "--point", "6,20,28",
                 "--out", str(tmp_path / "o.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert "point (6, 20, 28) is outside" in err and "np.float64" not in err


@pytest.mark.parametrize("content", ["tensor", "list"])
def test_a_checkpoint_without_a_state_dict_is_a_clear_error(scan, tmp_path, capsys, content):
    import torch

    path = tmp_path / "odd.pth"
    torch.save(torch.zeros(3) if content == "tensor" else [1, 2], path)
    assert segment(scan, "--model", "sam_vit_b", "--checkpoint", str(path), "--out", str(tmp_path / "o.nii.gz")) == 2
    err = capsys.readouterr().err
    assert "not a state dict" in err and "Traceback" not in err


def test_os_errors_from_any_step_are_one_line(scan, tmp_path, capsys, monkeypatch):
    import pge_sam.session as session_mod

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error", str(tmp_path / "cache"))

    monkeypatch.setattr(session_mod.DiskStore, "__init__", broken)
    assert segment(scan, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "o.nii.gz")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Input/output error" in err

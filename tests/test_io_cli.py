"""Image I/O keeps geometry (NIfTI, NRRD, DICOM series) and the ``pge-sam`` command works end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dicom_helpers import write_dicom_series

from pge_sam.cli import main
from pge_sam.errors import InputError
from pge_sam.io import read_image, write_labels

SPACING_XYZ = (0.8, 0.9, 2.5)
ORIGIN_XYZ = (-10.0, 20.5, 5.25)


def rotation_xyz() -> tuple[float, ...]:
    """A proper rotation (30 degrees about z, then 20 about x), row-major 3x3 as SimpleITK wants it."""
    a, b = np.deg2rad(30), np.deg2rad(20)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return tuple((rz @ rx).ravel())


def write_volume(path: Path, array: np.ndarray, direction=None) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(ORIGIN_XYZ)
    image.SetDirection(direction or rotation_xyz())
    sitk.WriteImage(image, str(path))


def assert_same_geometry(path_a: Path, path_b: Path) -> None:
    import SimpleITK as sitk

    a, b = sitk.ReadImage(str(path_a)), sitk.ReadImage(str(path_b))
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-5)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_read_and_write_keep_geometry(tmp_path, suffix):
    import SimpleITK as sitk

    array = np.random.default_rng(0).integers(-500, 1500, (5, 12, 16)).astype(np.int16)
    src = tmp_path / f"image{suffix}"
    write_volume(src, array)
    loaded = read_image(src)
    np.testing.assert_array_equal(loaded.array, array)
    np.testing.assert_allclose(loaded.spacing, SPACING_XYZ[::-1], rtol=1e-6)
    np.testing.assert_allclose(loaded.reference.GetDirection(), rotation_xyz(), atol=1e-5)
    labels = np.zeros(array.shape, np.int64)
    labels[1:3, 2:6, 3:9] = 2
    labels[4, 0, 0] = 1
    out = write_labels(labels, tmp_path / f"labels{suffix}", reference=loaded.reference)
    assert_same_geometry(src, out)
    back = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), labels)
    assert back.GetPixelID() == sitk.sitkUInt16
    plain = write_labels(labels.astype(np.uint8), tmp_path / "plain.nrrd", spacing=(2.5, 0.9, 0.8))
    np.testing.assert_allclose(sitk.ReadImage(str(plain)).GetSpacing(), SPACING_XYZ)


def test_write_labels_refuses_mismatches(tmp_path):
    src = tmp_path / "image.nrrd"
    write_volume(src, np.zeros((5, 12, 16), np.int16))
    ref = read_image(src).reference
    with pytest.raises(InputError, match="does not match"):
        write_labels(np.zeros((5, 12, 15), np.uint16), tmp_path / "x.nrrd", reference=ref)
    with pytest.raises(InputError, match="integers"):
        write_labels(np.zeros((5, 12, 16), np.float32), tmp_path / "x.nrrd", reference=ref)
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "missing.nii.gz")


def test_dicom_series_folder_reads_as_a_volume(tmp_path):
    import SimpleITK as sitk

    array = np.random.default_rng(1).integers(0, 1000, (4, 10, 12)).astype(np.int16)
    folder = write_dicom_series(tmp_path / "series", array, file_name=lambda z: f"slice{3 - z:03d}.dcm")  # reversed
    loaded = read_image(folder)
    np.testing.assert_array_equal(loaded.array, array)
    np.testing.assert_allclose(loaded.spacing, (2.0, 0.6, 0.7), rtol=1e-5)
    np.testing.assert_allclose(loaded.reference.GetOrigin(), (-5.0, 3.0, 12.0), atol=1e-4)
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(tmp_path)  # a folder without DICOM files
    second = sitk.ReadImage(str(folder / "slice000.dcm"))  # the same slice as another series, in the same folder
    second.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.9")
    second.SetMetaData("0008|0018", "1.2.826.0.1.3680043.2.1125.1.9.1")
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(folder / "other.dcm"))
    writer.Execute(second)
    with pytest.raises(InputError, match="holds 2 DICOM series"):
        read_image(folder)


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory, sam_tiny, volume):
    """A small NIfTI with an oblique direction and a random-init sam_tiny saved as safetensors."""
    from pge_sam.models.registry import save_base

    root = tmp_path_factory.mktemp("cli")
    image = root / "image.nii.gz"
    write_volume(image, volume)
    checkpoint = save_base(sam_tiny, root / "sam_tiny_random.safetensors")
    return image, checkpoint


def test_segment_end_to_end(cli_inputs, tmp_path, capsys):
    import SimpleITK as sitk

    from pge_sam.models.registry import build_model
    from pge_sam.normalize import Normalization
    from pge_sam.session import Session

    image, checkpoint = cli_inputs
    out = tmp_path / "labels.nii.gz"
    args = ["segment", str(image), "--model", "sam_tiny", "--checkpoint", str(checkpoint), "--device", "cpu",
            "--point", "2,20,28", "--point", "2,8,45:-", "--next-object", "--box", "4,5,5:4,35,50",
            "--propagate", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "label 1: point" in printed and "label 2: box" in printed and "label 2: propagate" in printed
    assert out.is_file()
    assert_same_geometry(image, out)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert {1, 2} <= set(np.unique(labels).tolist())

    # the command did exactly what the same Session calls do
    loaded = read_image(image)
    model = build_model("sam_tiny", checkpoint=checkpoint, device="cpu")
    expected = np.zeros(loaded.array.shape, np.uint16)
    session = Session(model, loaded.array, expected, spacing=loaded.spacing,
                      normalization=Normalization.parse("percentile:0.5,99.5"), prefetch=0)
    session.add_point((2, 20, 28))
    session.add_point((2, 8, 45), positive=False)
    session.next_object()
    session.add_box((4, 5, 5), (4, 35, 50))
    session.propagate()
    np.testing.assert_array_equal(labels, expected)


def test_segment_errors_exit_2_with_a_message(cli_inputs, tmp_path, capsys):
    image, checkpoint = cli_inputs
    out = tmp_path / "never.nii.gz"
    base = ["segment", str(image), "--model", "sam_tiny", "--checkpoint", str(checkpoint), "--device", "cpu",
            "--out", str(out)]
    assert main(base + ["--point", "2,20,80"]) == 2
    err = capsys.readouterr().err
    assert "pge-sam segment: error:" in err and "outside the volume" in err
    assert main(base + ["--point", "2,20"]) == 2
    assert "must be 3 comma-separated numbers (Z,Y,X" in capsys.readouterr().err
    assert main(base) == 2
    assert "at least one --point or --box" in capsys.readouterr().err
    assert main(base + ["--box", "2,5,5:3,30,30"]) == 2
    assert "different slices" in capsys.readouterr().err
    assert main(["segment", str(image), "--model", "sam_tiny", "--checkpoint", str(tmp_path / "none.safetensors"),
                 "--point", "2,20,28", "--out", str(out)]) == 2
    assert "none.safetensors" in capsys.readouterr().err
    assert not out.exists()


def test_console_process_exit_code_and_models_listing(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "pge_sam", "segment", str(tmp_path / "missing.nii.gz"),
                           "--point", "1,2,3", "--out", str(tmp_path / "o.nii.gz")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr
    script = Path(sys.executable).with_name("pge-sam")
    assert script.is_file(), "the pge-sam console script is not installed"
    done = subprocess.run([str(script), "models"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    for variant in ("sam", "pge_sam", "robust_sam", "sam_ref"):
        for backbone in ("tiny", "vit_b", "vit_l", "vit_h"):
            assert f"{variant}_{backbone} " in done.stdout
    assert "pge-sam weights fetch" in done.stdout


def test_models_json_lists_all_sixteen(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 16 and len({r["name"] for r in rows}) == 16
    assert all({"name", "variant", "backbone", "weights", "present"} <= set(r) for r in rows)
    assert all("adapter" in r for r in rows if r["variant"] == "pge_sam")
    official = {r["backbone"]: r["weights"] for r in rows if r["variant"] == "robust_sam" and r["backbone"] != "tiny"}
    assert official["vit_b"].endswith("robustsam_checkpoint_b.pth")

"""The light core: ``pip install pge-sam`` (no extras) runs the interactive path, and every optional package
gives an 'install pge-sam[EXTRA]' message where it is needed (and only there).

The subprocess tests hide every extra's packages with an import hook, as if they were not installed,
then import the API and run ``pge-sam segment`` on a float NIfTI with the tiny model.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from test_io_cli import write_volume

from pge_sam._optional import EXTRAS, MissingDependencyError, check_extra, require
from pge_sam.errors import PgeSamError

ROOT = Path(__file__).resolve().parents[1]
# every package of every extra, plus nibabel (nilearn's dependency, once used to read raw NIfTI values)
BLOCKED = sorted({module for pairs in EXTRAS.values() for module, _ in pairs} | {"nibabel", "pydicom"})

BLOCKER = """
import importlib.abc, sys
BLOCKED = set({blocked!r})
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
def loaded_blocked():
    return sorted({{n.split(".")[0] for n in sys.modules}} & BLOCKED)
"""


def run_blocked(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    script = BLOCKER.format(blocked=BLOCKED) + textwrap.dedent(code)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def scan(tmp_path_factory, volume, sam_tiny):
    from pge_sam.models.registry import save_base

    root = tmp_path_factory.mktemp("light")
    image = root / "scan.nii.gz"  # float32 NIfTI: its raw values are checked for NaN without nibabel
    write_volume(image, volume)
    return image, save_base(sam_tiny, root / "sam_tiny_random.safetensors")


def test_api_and_segment_run_with_every_extra_blocked(scan, tmp_path):
    image, checkpoint = scan
    out = tmp_path / "labels.nii.gz"
    done = run_blocked(f"""
        import pge_sam, pge_sam.session, pge_sam.io, pge_sam.models, pge_sam.cache, pge_sam.disk_cache
        import pge_sam.embeddings, pge_sam.cli
        from pge_sam import Session, build_model, Normalization
        assert not loaded_blocked(), loaded_blocked()
        from pge_sam.cli import main
        rc = main(["segment", {str(image)!r}, "--model", "sam_tiny", "--checkpoint", {str(checkpoint)!r},
                   "--device", "cpu", "--point", "2,20,28", "--propagate", "--out", {str(out)!r}])
        assert rc == 0, rc
        assert not loaded_blocked(), loaded_blocked()
        print("ok")
    """)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("ok")
    assert out.is_file()


def test_a_missing_extra_is_named_only_where_it_is_needed(scan, tmp_path):
    image, checkpoint = scan
    done = run_blocked(f"""
        from pge_sam.cli import main
        base = [{str(image)!r}, "--model", "sam_tiny", "--checkpoint", {str(checkpoint)!r}, "--device", "cpu"]
        print("cache", main(["segment", *base, "--point", "2,20,28", "--cache-dir", {str(tmp_path / "c")!r},
                             "--out", {str(tmp_path / "a.nii.gz")!r}]))
        print("precompute", main(["precompute", *base, "--out", {str(tmp_path / "emb")!r}]))
        print("phantom", main(["segment", "sample:phantom", "--point", "10,10", "--out", {str(tmp_path / "p.png")!r}]))
        print("mni", main(["segment", "sample:mni_t1", "--point", "10,10,10", "--out", {str(tmp_path / "m.nii.gz")!r}]))
        print("bench", main(["bench", "--quick", "--out", {str(tmp_path / "bench")!r}]))
        print("degrade", main(["degrade", "preview", "--modality", "ct", "--out", {str(tmp_path / "g.png")!r}]))
        print("train", main(["train", "base", "--config", "none.yaml"]))
        print("list", main(["degrade", "list"]))
    """)
    assert done.returncode == 0, done.stdout + done.stderr
    codes = dict(line.split() for line in done.stdout.splitlines() if re.fullmatch(r"\w+ -?\d+", line))
    assert codes == {"cache": "2", "precompute": "2", "phantom": "2", "mni": "2", "bench": "2", "degrade": "2",
                     "train": "2", "list": "0"}, done.stdout
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    expected = ["segment", "precompute", "segment", "segment", "bench", "degrade", "train"]
    extras = ["cache", "cache", "samples", "samples", "bench", "bench", "train"]
    assert len(errors) == len(expected), done.stderr
    for line, command, extra in zip(errors, expected, extras):
        assert line.startswith(f"pge-sam {command}: error: ") and f'pip install "pge-sam[{extra}]"' in line, line
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "a.nii.gz").exists()


def test_require_and_check_extra():
    assert require("json", extra="cache").dumps({}) == "{}"
    with pytest.raises(MissingDependencyError) as info:
        require("not_a_module_pge_sam_knows", extra="bench", purpose="a test")
    err = info.value
    assert isinstance(err, ImportError) and isinstance(err, PgeSamError)
    assert err.extra == "bench" and err.name == "not_a_module_pge_sam_knows"
    assert str(err) == ('not_a_module_pge_sam_knows is needed for a test but is not installed; '
                        'install it with: pip install "pge-sam[bench]"')
    check_extra("cache")  # installed in the test environment: no error


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser


def requirement_names(text: str) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", line.strip(), maxsplit=1)[0].lower()
            for line in text.splitlines() if line.strip() and not line.strip().startswith("#")}


def test_core_requirements_hold_no_extra_and_every_extra_is_declared():
    cfg = setup_cfg()
    core = requirement_names(cfg["options"]["install_requires"])
    assert core == {"numpy", "scipy", "torch", "torchvision", "segment-anything", "safetensors", "pillow", "pooch",
                    "simpleitk", "tqdm"}
    extras = {name: requirement_names(value) for name, value in cfg["options.extras_require"].items()}
    for extra, pairs in EXTRAS.items():
        assert {dist.lower() for _, dist in pairs} <= extras[extra], extra
        assert not {dist.lower() for _, dist in pairs} & core
    assert set().union(*(extras[e] for e in EXTRAS)) <= extras["all"]
    # CI and the README's setup install everything the tests import
    assert '-e ".[all,test]"' in (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert "bash scripts/setup.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_metadata_has_author_project_urls_and_one_plugin_name():
    cfg = setup_cfg()
    meta = cfg["metadata"]
    assert meta["author"].strip()
    urls = dict(line.split(" = ", 1) for line in meta["project_urls"].strip().splitlines())
    assert set(urls) == {"Source", "Issues", "Documentation"}
    assert all(u.startswith("https://github.com/pge-sam/pge-sam") for u in urls.values())
    manifest = yaml.safe_load((ROOT / "napari_pge_sam" / "napari.yaml").read_text(encoding="utf-8"))
    entry = cfg["options.entry_points"]["napari.manifest"].strip()
    name, target = (s.strip() for s in entry.split("="))
    assert name == manifest["name"] == "pge-sam" and target == "napari_pge_sam:napari.yaml"
    homepage = re.search(r'set\(EXTENSION_HOMEPAGE "([^"]+)"\)',
                         (ROOT / "slicer_pge_sam" / "CMakeLists.txt").read_text(encoding="utf-8")).group(1)
    assert homepage == urls["Source"]

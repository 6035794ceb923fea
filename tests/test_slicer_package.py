"""Packaging, import-boundary and dependency checks of the PGESAM Slicer extension (no Slicer needed)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXT = ROOT / "slicer_pge_sam"
MODULE = EXT / "PGESAM"
if str(MODULE) not in sys.path:
    sys.path.insert(0, str(MODULE))

from PGESAMLib import SHORTCUTS, SLICER_RESERVED_KEYS, core, deps, samples, shortcut_hint  # noqa: E402
from PGESAMLib.progress import ProgressRelay  # noqa: E402

SLICER_NAMES = {"slicer", "qt", "vtk", "ctk", "SampleData", "PyTorchUtils"}  # Slicer and its modules
HEAVY_NAMES = {"torch", "torchvision", "segment_anything", "pge_sam"}


def py_files() -> list[Path]:
    return sorted(p for p in EXT.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_python_file_compiles_on_this_interpreter_and_python_3_9_grammar():
    files = py_files()
    assert len(files) >= 9
    for path in files:
        source = path.read_text(encoding="utf-8")
        compile(source, str(path), "exec")  # the running 3.11 rejects 3.12-only syntax
        ast.parse(source, filename=str(path), feature_version=(3, 9))  # Slicer 5.2-5.6 embed Python 3.9


def test_pure_lib_imports_and_runs_with_slicer_qt_vtk_ctk_and_torch_blocked():
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = {sorted(SLICER_NAMES | HEAVY_NAMES)!r}
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked import of " + name)
                return None
        sys.meta_path.insert(0, Blocker())
        sys.path.insert(0, {str(MODULE)!r})
        import PGESAMLib
        from PGESAMLib import core, deps, geometry, progress, regions, samples
        import PGESAMSlicerLib  # only puts the bundled core first on sys.path (no Slicer import)
        assert sys.path[0] == PGESAMSlicerLib.CORE_DIR
        assert deps.plan((5, 10), {{}}).torch
        import numpy as np
        m = geometry.ijk_to_ras_matrix((1, 2, 3), (1, 1, 2), np.eye(3))
        assert geometry.ijk_to_kji_index(geometry.ras_to_ijk((1, 2, 7), m), (5, 5, 5)).tolist() == [[2, 0, 0]]
        assert geometry.VolumeGeometry(m, (5, 5, 5)).world_to_index((1, 2, 7)).tolist() == [[2, 0, 0]]
        assert not [n for n in sys.modules if n.split(".")[0] in BLOCKED]
        # find_spec consults the finders, so lift the blocker: checking must still import nothing heavy
        sys.meta_path.pop(0)
        assert isinstance(deps.missing_requirements(), list)
        assert not [n for n in sys.modules if n.split(".")[0] in BLOCKED]
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def cmake_lists(text: str) -> dict[str, list[str]]:
    text = re.sub(r"#[^\n]*", "", text)
    return {m.group(1): m.group(2).split() for m in re.finditer(r"set\(\s*(\w+)\s+(.*?)\)", text, re.S)}


def test_module_cmakelists_lists_exactly_the_existing_scripts_and_resources():
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    sets = cmake_lists(text)
    name = sets["MODULE_NAME"][0]
    assert name == "PGESAM"
    scripts = {s.replace("${MODULE_NAME}", name) for s in sets["MODULE_PYTHON_SCRIPTS"]}
    resources = {s.replace("${MODULE_NAME}", name) for s in sets["MODULE_PYTHON_RESOURCES"]}
    assert scripts == {p.relative_to(MODULE).as_posix() for p in py_files()}
    on_disk = {p.relative_to(MODULE).as_posix() for p in (MODULE / "Resources").rglob("*") if p.is_file()}
    assert resources == on_disk
    assert {"Resources/UI/PGESAM.ui", "Resources/Icons/PGESAM.png"} <= on_disk
    call = re.search(r"slicerMacroBuildScriptedModule\((.*?)\)", re.sub(r"#[^\n]*", "", text), re.S).group(1).split()
    assert call == ["NAME", "${MODULE_NAME}", "SCRIPTS", "${MODULE_PYTHON_SCRIPTS}",
                    "RESOURCES", "${MODULE_PYTHON_RESOURCES}", "WITH_GENERIC_TESTS"]


def test_root_cmakelists_metadata_and_catalog_entry_agree():
    text = (EXT / "CMakeLists.txt").read_text(encoding="utf-8")
    meta = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', text))
    required = {"EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"}
    assert required <= set(meta) and all(meta[k].strip() for k in required)
    assert meta["EXTENSION_CATEGORY"] == "Segmentation"
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_ICONURL"):
        assert meta[key].startswith("https://")
    assert all(u.startswith("https://") and u.endswith(".png") for u in meta["EXTENSION_SCREENSHOTURLS"].split())
    project = re.search(r"project\((\w+)\)", text).group(1)
    assert project == "PGESAM" and not project.startswith("Slicer")
    order = ["cmake_minimum_required(", "project(PGESAM)", "find_package(Slicer REQUIRED)",
             "include(${Slicer_USE_FILE})", "add_subdirectory(PGESAM)",
             "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions)

    catalog = json.loads((EXT / f"{project}.json").read_text(encoding="utf-8"))
    depends = [] if meta["EXTENSION_DEPENDS"] == "NA" else meta["EXTENSION_DEPENDS"].split()
    assert catalog["build_dependencies"] == depends
    assert catalog["category"] == meta["EXTENSION_CATEGORY"]
    assert set(catalog) <= {"$schema", "build_dependencies", "build_subdirectory", "category", "enabled",
                            "scm_revision", "scm_type", "scm_url", "tier"}
    assert {"$schema", "category", "scm_url", "scm_revision"} <= set(catalog)
    assert catalog["scm_url"].startswith("https://github.com/") and 1 <= catalog["tier"] <= 5
    license_text = (EXT / "LICENSE.txt").read_text(encoding="utf-8")
    for part in ("Apache License", "Version 2.0, January 2004", "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND "
                 "DISTRIBUTION", "9. Accepting Warranty or Additional Liability.", "END OF TERMS AND CONDITIONS"):
        assert part in license_text  # the full license text, not only the notice
    assert meta["EXTENSION_DEPENDS"] == "PyTorch" == deps.PYTORCH_EXTENSION
    assert all(re.fullmatch(r"[^(),]+ \([^()]+\)", c.strip()) for c in meta["EXTENSION_CONTRIBUTORS"].split("),"))
    assert "5.10" in meta["EXTENSION_DESCRIPTION"]


@pytest.mark.parametrize("icon", ["PGESAM.png", "PGESAM/Resources/Icons/PGESAM.png"])
def test_icons_are_128_pixel_png(icon):
    data = (EXT / icon).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (128, 128)


def test_ui_file_declares_its_custom_widgets():
    ui = ET.parse(MODULE / "Resources" / "UI" / "PGESAM.ui").getroot()
    widgets = {w.get("name"): w.get("class") for w in ui.iter("widget")}
    custom = {c.findtext("class") for c in ui.iter("customwidget")}
    assert len(widgets) >= 10 and {cls for cls in widgets.values() if not cls.startswith("Q")} <= custom


def test_shortcuts_are_shown_in_widget_ui_and_readme_and_call_widget_methods():
    hint = shortcut_hint()
    readme = (EXT / "README.md").read_text(encoding="utf-8")
    ui = ET.parse(MODULE / "Resources" / "UI" / "PGESAM.ui").getroot()
    label = next(w for w in ui.iter("widget") if w.get("name") == "shortcutsLabel")
    assert label.find("property/string").text == hint  # the .ui lists them too, not only the code
    assert {s.key for s in SHORTCUTS} >= {"I", "E", "Ctrl+Z", "N", "P"}
    for key, action, method in SHORTCUTS:
        assert f"{key}: {action}" in hint
        assert f"| `{key}` | {action} |" in readme
    assert len({s.key.lower() for s in SHORTCUTS}) == len(SHORTCUTS)


def test_shortcuts_avoid_slicer_keys():  # that they live on the module panel: tests/test_slicer_logic.py
    reserved = {k.lower() for k in SLICER_RESERVED_KEYS}
    assert not {s.key.lower() for s in SHORTCUTS} & reserved


# ---- dependencies (deps.py): the install plan ---------------------------------------------------------------------

SHARED_NAMES = {"torch", "torchvision", "numpy", "simpleitk", "scipy", "pillow", "requests"}
FRESH_510 = {"numpy": "2.0.2", "scipy": "1.13.1", "pillow": "11.2.1", "SimpleITK": "2.5.0", "requests": "2.32.3",
             "packaging": "25.0"}  # what Slicer 5.10 ships


def all_text(plan) -> str:
    return " ".join([*plan.pip_args(), *map(str, plan.torch_kwargs().values()), *(" ".join(s) for s in plan.steps()),
                     deps.describe_plan(plan, cuda=True), deps.describe_plan(plan, cuda=False)])


@pytest.mark.parametrize("installed", [
    {}, FRESH_510, dict(FRESH_510, torch="2.0.1", torchvision="0.15.2"), dict(FRESH_510, torch="2.14.1+cu130"),
    dict(FRESH_510, torch="2.5.1", torchvision="0.20.1", **{"segment-anything": "1.0"}, safetensors="0.3.1"),
])
def test_the_plan_never_pins_and_never_installs_a_shared_package(installed):
    plan = deps.plan((5, 10), installed, loaded=["torch", "numpy"])
    text = all_text(plan)
    assert "==" not in text and "--index-url" not in text
    pip_names = {r.distribution.lower() for r in plan.pip}
    assert not pip_names & SHARED_NAMES  # torch only through the PyTorch extension; Slicer's own never
    assert all(r.minimum for r in plan.pip + plan.torch) and all(">=" in a for a in plan.pip_args())
    for legacy in (deps.pip_install_steps(deps.missing_requirements(), cuda=True, platform="win32"),
                   deps.pip_install_steps(list(deps.REQUIREMENTS))):
        assert not any("==" in a or "index-url" in a for step in legacy for a in step)


def test_torch_goes_through_the_pytorch_extension_with_a_floor():
    fresh = deps.plan((5, 10), FRESH_510)
    assert [r.distribution for r in fresh.torch] == ["torch", "torchvision"] and fresh.problem is None
    assert fresh.torch_kwargs() == {"torchVersionRequirement": ">=2.1", "torchvisionVersionRequirement": ">=0.16"}
    assert fresh.pip_args() == ["segment-anything>=1.0", "safetensors>=0.4", "pooch>=1.7", "tqdm>=4.60"]
    assert "through the PyTorch extension (CUDA build" in deps.describe_plan(fresh, cuda=True)
    assert "pip install segment-anything>=1.0 safetensors>=0.4 pooch>=1.7 tqdm>=4.60" in deps.describe_plan(fresh)
    assert fresh.steps()[0] == ["torch>=2.1", "torchvision>=0.16"] and not fresh.restart

    # a newer torch another extension installed is kept; an older one is replaced through the extension
    ok = dict(FRESH_510, torch="2.14.1+cu130", torchvision="0.29.1", **{"segment-anything": "1.0"},
              safetensors="0.7.0", pooch="1.8.2", tqdm="4.67.1")
    assert deps.plan((5, 10), ok).ready
    old = dict(ok, torch="2.0.1", torchvision="0.15.2")
    plan = deps.plan((5, 10), old, loaded=["torch._C", "numpy"])
    assert [r.distribution for r in plan.torch] == ["torch", "torchvision"] and not plan.pip
    assert plan.restart == ("torch",) and "restart Slicer" in deps.describe_plan(plan)
    only_vision = deps.plan((5, 10), dict(ok, torchvision="0.14.0"))
    assert [r.distribution for r in only_vision.torch] == ["torch", "torchvision"]  # installed together

    # without the PyTorch extension torch is not pip-installed: the user is told to install the extension
    missing_ext = deps.plan((5, 10), FRESH_510, pytorch_extension=False)
    assert missing_ext.problem and "Extensions Manager" in missing_ext.problem and "PyTorch" in missing_ext.problem
    assert deps.plan((5, 10), ok, pytorch_extension=False).ready  # torch already there: no extension needed


@pytest.mark.parametrize("version, python, supported", [
    ((5, 8), (3, 9), False), ((5, 8, 1), (3, 9), False), ("5.6.2", (3, 9), False), ((5, 10), (3, 12), True),
    ("5.10.0", (3, 12), True), ((5, 12, 3), (3, 12), True), ((6, 0), (3, 13), True), ((5, 10), (3, 9), False),
])
def test_minimum_slicer_version_is_checked(version, python, supported):
    problem = deps.version_problem(version, python)
    assert (problem is None) == supported
    plan = deps.plan(version, FRESH_510, python_version=python)
    assert (plan.problem is None) == supported
    if not supported:
        assert "Slicer 5.10 or later" in problem and "download.slicer.org" in problem
        assert not plan.torch and not plan.pip  # nothing is installed into an unsupported Slicer
    assert deps.MIN_SLICER == (5, 10) and deps.MIN_PYTHON == (3, 10)


def test_version_parsing_and_floors():
    assert deps.parse_version("2.14.1+cu130") == (2, 14, 1)
    assert deps.parse_version("1.0rc1") == (1, 0)
    assert deps.at_least("2.1", "2.1") and deps.at_least("2.14.1+cpu", "2.1") and not deps.at_least("2.0.9", "2.1")
    assert deps.at_least("0.16", "0.16.0") and not deps.at_least(None, "1.0") and deps.at_least("3", None)
    plan = deps.plan((5, 10), {"Segment_Anything": "1.0", "SAFETENSORS": "0.4.5"})  # names compared canonically
    assert "segment-anything>=1.0" not in plan.pip_args() and "safetensors>=0.4" not in plan.pip_args()
    assert plan.shared_missing == deps.SHARED and "reinstall Slicer" in deps.describe_plan(plan)


def test_floors_match_the_core_requirements_and_shared_packages_cover_the_rest():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    core = dict(re.findall(r"^\s*([\w-]+)>=(\S+)", cfg["options"]["install_requires"], re.M))
    floors = {r.distribution: r.minimum for r in deps.REQUIREMENTS}
    assert all(core[name] == floor for name, floor in floors.items())
    assert {n.lower() for n in core} == {n.lower() for n in floors} | {n.lower() for n in deps.SHARED} - {
        "requests", "packaging"}
    assert all(r.via == "pytorch" for r in deps.REQUIREMENTS if r.distribution in ("torch", "torchvision"))


def test_missing_requirements_reads_metadata_without_importing(monkeypatch):
    monkeypatch.setattr(deps, "installed_version", {"numpy": "2.0.0", "torch": "2.14.1+cpu", "ghost": "1.0"}.get)
    numpy_ok = deps.Requirement("numpy", "numpy", "1.24")
    numpy_old = deps.Requirement("numpy", "numpy", "2.1")
    torch_local = deps.Requirement("torch", "torch", "2.1", via="pytorch")
    absent = deps.Requirement("not-a-real-dist", "not_a_real_dist")
    no_module = deps.Requirement("ghost", "ghost_module_that_does_not_exist")
    assert deps.missing_requirements([numpy_ok, numpy_old, torch_local, absent, no_module]) == [
        numpy_old, absent, no_module]
    assert "numpy>=2.1 is required" in deps.requirement_problem(numpy_old)
    assert "cannot be found" in deps.requirement_problem(no_module)
    err = deps.MissingDependenciesError([numpy_old])
    assert isinstance(err, RuntimeError) and "numpy>=2.1" in str(err) and "Install dependencies" in str(err)


def test_cuda_detection_uses_driver_files_and_nvidia_smi(tmp_path):
    proc = tmp_path / "version"
    never = lambda name: None  # noqa: E731
    assert not deps.cuda_driver_present("linux", str(proc), never)
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module")
    assert deps.cuda_driver_present("linux", str(proc), never)
    assert deps.cuda_driver_present("win32", str(tmp_path / "none"), lambda n: "C:/nvidia-smi.exe")
    assert not deps.cuda_driver_present("darwin", str(proc), lambda n: "/usr/bin/nvidia-smi")


def test_pip_output_becomes_short_status_lines():
    assert deps.pip_status("Collecting segment-anything>=1.0") == "Checking segment-anything>=1.0"
    assert deps.pip_status("  Downloading safetensors-0.7.0-cp38-abi3-manylinux_2_17_x86_64.whl (471 kB)") == \
        "Downloading safetensors (471 kB)"
    assert deps.pip_status("Installing collected packages: tqdm, safetensors") == "Installing tqdm, safetensors"
    assert deps.pip_status("Successfully installed safetensors-0.7.0") == "Installed safetensors-0.7.0"
    error = "ERROR: No matching distribution found for x"
    assert deps.pip_status(error) == error
    assert deps.pip_status("   ---------------------------------------- 471.2/471.2 kB") is None


def test_restart_is_asked_for_only_when_an_installed_package_was_already_loaded():
    steps = deps.plan((5, 10), FRESH_510).steps()
    assert deps.restart_required(steps, ["numpy", "slicer.util"]) == []  # a first install: nothing loaded
    assert deps.restart_required(steps, ["torch._C", "numpy"]) == ["torch"]
    only_pip = deps.plan((5, 10), dict(FRESH_510, torch="2.5", torchvision="0.20")).steps()
    assert deps.restart_required(only_pip, ["torch", "tqdm"]) == ["tqdm"]  # torch was not reinstalled
    message = deps.restart_message(["torch"])
    assert "torch" in message and "Restart Slicer" in message


# ---- the bundled core, the sample volume ---------------------------------------------------------------------------


def test_the_bundled_core_is_found_first(tmp_path):
    built = tmp_path / "qt-scripted-modules"
    files = {str(built / "pge_sam" / "__init__.py"), str(tmp_path / "core" / "pge_sam" / "__init__.py")}
    assert core.find_core(str(built), files.__contains__) == str(built)  # the built extension's copy wins
    checkout_module = tmp_path / "slicer_pge_sam" / "PGESAM"
    in_checkout = {str(tmp_path / "core" / "pge_sam" / "__init__.py")}
    assert core.find_core(str(checkout_module), in_checkout.__contains__) == str(tmp_path / "core")
    assert core.find_core(str(checkout_module), set().__contains__) is None
    assert core.find_core(str(MODULE)) == str(ROOT / "core")  # this checkout

    site = "/slicer/lib/python3.12/site-packages"
    path = ["", site, str(built)]
    assert core.prefer_core(path, str(built)) == [str(built), "", site]
    assert core.prefer_core(path, None) == path
    assert core.loaded_elsewhere(str(built / "pge_sam" / "__init__.py"), str(built)) is None
    message = core.loaded_elsewhere(site + "/pge_sam/__init__.py", str(built))
    assert "Restart Slicer" in message and "pip_uninstall('pge-sam')" in message


def test_sample_volume_is_the_cores_mni_template_with_its_checksum(tmp_path):
    import hashlib

    sample = samples.MNI_T1
    assert sample.uri.startswith("https://") and sample.uri.endswith("/" + sample.file_name)
    assert sample.checksum == "SHA256:" + sample.sha256 and len(sample.sha256) == 64
    kwargs = sample.register_kwargs(str(MODULE / "Resources"))
    assert kwargs["checksums"] == sample.checksum and kwargs["loadFileTypes"] == "VolumeFile"
    assert Path(kwargs["thumbnailFileName"]).is_file()
    from pge_sam.samples import mni_path  # the same file the core and the napari plugin use

    try:
        local = mni_path("t1")
    except ImportError:
        pytest.skip("nilearn (pge-sam[samples]) is not installed")
    assert local.name == sample.file_name
    assert hashlib.sha256(local.read_bytes()).hexdigest() == sample.sha256


# ---- the extension build (CMake, with Slicer's macros stubbed) and the catalog checks ------------------------------

STUBS = """
cmake_minimum_required(VERSION 3.16)
project(PGESAMBuildCheck NONE)
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR "lib/Slicer-5.10/qt-scripted-modules")
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR "${Slicer_QTSCRIPTEDMODULES_LIB_DIR}")
set(BUILD_TESTING ON)
# Stand-ins for CTK's and Slicer's macros: same arguments, files copied at configure time the way
# ctkMacroCompilePythonScript copies them at build time (relative paths, resolved against SOURCE_DIR).
macro(ctkMacroCompilePythonScript)
  cmake_parse_arguments(MY "NO_INSTALL_SUBDIR;GLOBAL_TARGET" "TARGET_NAME;SOURCE_DIR;DESTINATION_DIR;INSTALL_DIR"
                        "SCRIPTS;RESOURCES" ${ARGN})
  if(NOT MY_SOURCE_DIR)
    set(MY_SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  foreach(f IN LISTS MY_SCRIPTS MY_RESOURCES)
    if(IS_ABSOLUTE "${f}")
      message(FATAL_ERROR "absolute path outside the build tree: ${f}")
    endif()
    configure_file("${MY_SOURCE_DIR}/${f}" "${MY_DESTINATION_DIR}/${f}" COPYONLY)
  endforeach()
  file(APPEND "${CMAKE_BINARY_DIR}/calls.txt" "ctkMacroCompilePythonScript ${MY_TARGET_NAME} ${MY_INSTALL_DIR}\n")
endmacro()
macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY_SLICER "WITH_GENERIC_TESTS;WITH_SUBDIR;VERBOSE" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  ctkMacroCompilePythonScript(TARGET_NAME ${MY_SLICER_NAME} SCRIPTS "${MY_SLICER_SCRIPTS}"
    RESOURCES "${MY_SLICER_RESOURCES}" DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}
    INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR} NO_INSTALL_SUBDIR)
endmacro()
macro(slicer_add_python_unittest)
  cmake_parse_arguments(MY "" "SCRIPT" "SLICER_ARGS" ${ARGN})
  file(APPEND "${CMAKE_BINARY_DIR}/calls.txt" "slicer_add_python_unittest ${MY_SCRIPT}\n")
endmacro()
add_subdirectory("@MODULE@" PGESAM)
"""


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_the_module_build_bundles_the_core_and_registers_the_module_test(tmp_path):
    harness = tmp_path / "harness"
    harness.mkdir()
    (harness / "CMakeLists.txt").write_text(STUBS.replace("@MODULE@", MODULE.as_posix()), encoding="utf-8")
    done = subprocess.run(["cmake", "-S", str(harness), "-B", str(tmp_path / "build")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Bundling the pge_sam core from {ROOT / 'core'}" in done.stdout
    built = tmp_path / "build" / "lib" / "Slicer-5.10" / "qt-scripted-modules"
    core_files = {p.relative_to(ROOT / "core").as_posix() for p in (ROOT / "core" / "pge_sam").rglob("*")
                  if p.is_file() and (p.suffix == ".py" or p.suffix == ".safetensors" or p.name == "tuned_params.json")
                  and "__pycache__" not in p.parts}
    bundled = {p.relative_to(built).as_posix() for p in (built / "pge_sam").rglob("*") if p.is_file()}
    assert core_files == bundled and "pge_sam/weights/sam_tiny.safetensors" in bundled
    assert (built / "PGESAM.py").is_file() and (built / "PGESAMLib" / "core.py").is_file()
    calls = (tmp_path / "build" / "calls.txt").read_text(encoding="utf-8").splitlines()
    assert "slicer_add_python_unittest PGESAM.py" in calls
    assert "ctkMacroCompilePythonScript PGESAMCore lib/Slicer-5.10/qt-scripted-modules" in calls

    # in the built module folder, the module's own lookup puts the bundled copy first, ahead of the installed pge_sam
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(built)!r})
        import PGESAMSlicerLib, pge_sam
        assert PGESAMSlicerLib.CORE_DIR == {str(built)!r}, PGESAMSlicerLib.CORE_DIR
        print(pge_sam.__file__)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(built / "pge_sam" / "__init__.py")


def run_catalog_check(extension: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "check_slicer_extension.py"), "--extension",
                           str(extension)], capture_output=True, text=True, timeout=120)


def test_extensions_index_checks_pass_offline_on_the_subtree(tmp_path):
    done = run_catalog_check(EXT)
    assert done.returncode == 0, done.stdout + done.stderr
    for check in ("JSON schema keys", "git repository name: SlicerPGESAM", "CMakeLists project name: project(PGESAM)",
                  "contributors", "dependencies: EXTENSION_DEPENDS ['PyTorch'] = build_dependencies", "license file"):
        assert f"- ok: {check}" in done.stdout, check
    assert done.stdout.strip().endswith("all checks passed")

    broken = tmp_path / "ext"
    shutil.copytree(EXT, broken, ignore=shutil.ignore_patterns("__pycache__"))
    cmake = broken / "CMakeLists.txt"
    cmake.write_text(cmake.read_text(encoding="utf-8").replace(
        'EXTENSION_CONTRIBUTORS "PGE-SAM developers (PGE-SAM project)"', 'EXTENSION_CONTRIBUTORS "PGE-SAM developers"'),
        encoding="utf-8")
    done = run_catalog_check(broken)
    assert done.returncode == 1 and "FAILED: contributors" in done.stdout
    cmake.write_text((EXT / "CMakeLists.txt").read_text(encoding="utf-8").replace(
        'EXTENSION_DEPENDS "PyTorch"', 'EXTENSION_DEPENDS "NA"'), encoding="utf-8")
    done = run_catalog_check(broken)
    assert done.returncode == 1 and "FAILED: dependencies" in done.stdout


def test_progress_relay_counts_clamps_and_cancels():
    seen, pumped = [], []
    relay = ProgressRelay(lambda done, total: seen.append((done, total)), lambda: pumped.append(1))
    relay.start(4)
    relay.update(1)
    relay.update(2)
    relay.update(5)
    assert seen == [(0, 4), (1, 4), (3, 4), (4, 4)] and relay.fraction == 1.0
    assert not relay.cancelled() and not relay.cancel_requested
    relay.cancel()
    assert relay.cancelled() and relay.cancel_requested and len(pumped) == 6
    with pytest.raises(ValueError, match=">= 0"):
        relay.update(-1)
    with pytest.raises(ValueError, match=">= 0"):
        relay.start(-2)
    assert ProgressRelay().fraction == 0.0

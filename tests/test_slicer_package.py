"""Packaging, import-boundary and dependency checks of the PGESAM Slicer extension (no Slicer needed)."""

from __future__ import annotations

import ast
import json
import re
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

from PGESAMLib import SHORTCUTS, SLICER_RESERVED_KEYS, deps, shortcut_hint  # noqa: E402
from PGESAMLib.progress import ProgressRelay  # noqa: E402

SLICER_NAMES = {"slicer", "qt", "vtk", "ctk"}
HEAVY_NAMES = {"torch", "torchvision", "segment_anything", "pge_sam"}


def py_files() -> list[Path]:
    return sorted(p for p in EXT.rglob("*.py") if "__pycache__" not in p.parts)


def imported_roots(tree: ast.AST, top_level_only: bool) -> set[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_every_python_file_compiles_on_this_interpreter_and_python_3_9_grammar():
    files = py_files()
    assert len(files) >= 9
    for path in files:
        source = path.read_text(encoding="utf-8")
        compile(source, str(path), "exec")  # the running 3.11 rejects 3.12-only syntax
        ast.parse(source, filename=str(path), feature_version=(3, 9))  # Slicer 5.2-5.6 embed Python 3.9


def test_slicer_bound_files_are_exactly_the_module_and_its_slicer_lib():
    bound = {p.relative_to(MODULE).as_posix() for p in py_files()
             if imported_roots(parse(p), top_level_only=False) & SLICER_NAMES}
    assert bound == {"PGESAM.py", "PGESAMSlicerLib/logic.py", "PGESAMSlicerLib/moduleTest.py"}
    for path in py_files():  # heavy packages only inside functions, so the module loads without them
        assert not imported_roots(parse(path), top_level_only=True) & HEAVY_NAMES, path
    logic = parse(MODULE / "PGESAMSlicerLib" / "logic.py")
    lazy = [f.name for f in ast.walk(logic) if isinstance(f, ast.FunctionDef)
            and "pge_sam" in imported_roots(ast.Module(body=f.body, type_ignores=[]), top_level_only=False)]
    assert lazy == ["startSession"]


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
        from PGESAMLib import deps, driver, geometry, progress, regions
        import numpy as np
        m = geometry.ijk_to_ras_matrix((1, 2, 3), (1, 1, 2), np.eye(3))
        assert geometry.ijk_to_kji_index(geometry.ras_to_ijk((1, 2, 7), m), (5, 5, 5)).tolist() == [[2, 0, 0]]
        assert driver.VolumeGeometry(m, (5, 5, 5)).world_to_index((1, 2, 7)).tolist() == [[2, 0, 0]]
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


def test_module_file_defines_or_exports_the_slicer_classes():
    tree = parse(MODULE / "PGESAM.py")
    defined = {n.name: [ast.unparse(b) for b in n.bases] for n in tree.body if isinstance(n, ast.ClassDef)}
    assert defined["PGESAM"] == ["ScriptedLoadableModule"]
    assert defined["PGESAMWidget"] == ["ScriptedLoadableModuleWidget", "VTKObservationMixin"]
    exported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert {"PGESAMLogic", "PGESAMParameterNode", "PGESAMTest"} <= exported
    logic = parse(MODULE / "PGESAMSlicerLib" / "logic.py")
    classes = {n.name: n for n in logic.body if isinstance(n, ast.ClassDef)}
    assert [ast.unparse(b) for b in classes["PGESAMLogic"].bases] == ["ScriptedLoadableModuleLogic"]
    assert [ast.unparse(d) for d in classes["PGESAMParameterNode"].decorator_list] == ["parameterNodeWrapper"]
    dialogs = re.compile(r"\w*Display\(|QMessageBox|QFileDialog|QInputDialog")
    assert not dialogs.search(ast.unparse(classes["PGESAMLogic"]))  # the logic opens no dialogs
    assert dialogs.search(ast.unparse(tree))  # (the pattern does find the widget's dialogs)


def test_module_test_runs_every_test_method():
    tree = parse(MODULE / "PGESAMSlicerLib" / "moduleTest.py")
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PGESAMTest")
    assert [ast.unparse(b) for b in cls.bases] == ["ScriptedLoadableModuleTest"]
    methods = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}
    tests = {name for name in methods if name.startswith("test_")}
    called = {n.attr for n in ast.walk(methods["runTest"]) if isinstance(n, ast.Attribute)}
    assert len(tests) >= 4 and tests <= called
    body = ast.unparse(cls)
    for needle in ("downloadMRHead", "AddControlPointWorld", "addPoint", "GetImageToWorldMatrix", "undo"):
        assert needle in body


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
    assert "Apache License, Version 2.0" in (EXT / "LICENSE.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("icon", ["PGESAM.png", "PGESAM/Resources/Icons/PGESAM.png"])
def test_icons_are_128_pixel_png(icon):
    data = (EXT / icon).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (128, 128)


def test_ui_file_has_every_widget_and_parameter_the_code_uses():
    ui = ET.parse(MODULE / "Resources" / "UI" / "PGESAM.ui").getroot()
    widgets = {w.get("name"): w.get("class") for w in ui.iter("widget")}
    used = {n.attr for n in ast.walk(parse(MODULE / "PGESAM.py")) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Attribute) and n.value.attr == "ui"
            and isinstance(n.value.value, ast.Name) and n.value.value.id == "self"}
    assert len(used) >= 10
    assert used <= set(widgets), sorted(used - set(widgets))
    custom = {c.findtext("class") for c in ui.iter("customwidget")}
    assert {cls for cls in widgets.values() if not cls.startswith("Q")} <= custom
    bound = {}
    for w in ui.iter("widget"):
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                bound[p.findtext("string")] = w.get("class")
    logic = parse(MODULE / "PGESAMSlicerLib" / "logic.py")
    node = next(n for n in logic.body if isinstance(n, ast.ClassDef) and n.name == "PGESAMParameterNode")
    fields = {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
    assert set(bound) == fields
    assert bound["modelName"] == bound["device"] == "QComboBox"
    assert all(bound[f] == "qMRMLNodeComboBox" for f in fields - {"modelName", "device"})


def widget_class() -> ast.ClassDef:
    return next(n for n in parse(MODULE / "PGESAM.py").body if isinstance(n, ast.ClassDef) and n.name == "PGESAMWidget")


def test_shortcuts_are_shown_in_widget_ui_and_readme_and_call_widget_methods():
    hint = shortcut_hint()
    readme = (EXT / "README.md").read_text(encoding="utf-8")
    ui = ET.parse(MODULE / "Resources" / "UI" / "PGESAM.ui").getroot()
    label = next(w for w in ui.iter("widget") if w.get("name") == "shortcutsLabel")
    assert label.find("property/string").text == hint  # the .ui lists them too, not only the code
    methods = {f.name for f in widget_class().body if isinstance(f, ast.FunctionDef)}
    assert {s.key for s in SHORTCUTS} >= {"I", "E", "Ctrl+Z", "N", "P"}
    for key, action, method in SHORTCUTS:
        assert f"{key}: {action}" in hint
        assert f"| `{key}` | {action} |" in readme
        assert method in methods, method
    assert len({s.key.lower() for s in SHORTCUTS}) == len(SHORTCUTS)


def test_shortcuts_avoid_slicer_keys_and_live_on_the_module_panel():
    reserved = {k.lower() for k in SLICER_RESERVED_KEYS}
    assert not {s.key.lower() for s in SHORTCUTS} & reserved
    body = {f.name: f for f in widget_class().body if isinstance(f, ast.FunctionDef)}
    created = [n for n in ast.walk(body["_createShortcuts"]) if isinstance(n, ast.Call)
               and ast.unparse(n.func) == "qt.QShortcut"]
    assert [ast.unparse(a) for c in created for a in c.args] == ["self.parent"]  # not the main window
    assert "mainWindow" not in ast.unparse(widget_class())
    assert "_enableShortcuts(True)" in ast.unparse(body["enter"])
    assert "_enableShortcuts(False)" in ast.unparse(body["exit"])
    assert "_deleteShortcuts()" in ast.unparse(body["cleanup"])


def test_logic_maps_its_verbs_onto_the_driver_and_passes_spacing_in_core_order():
    logic = parse(MODULE / "PGESAMSlicerLib" / "logic.py")
    cls = next(n for n in logic.body if isinstance(n, ast.ClassDef) and n.name == "PGESAMLogic")
    methods = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}

    def driver_calls(name):
        return {n.func.attr for n in ast.walk(methods[name]) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute) and ast.unparse(n.func.value).endswith("driver")}

    expected = {"addPoint": {"add_point"}, "addBox": {"add_box"}, "undo": {"undo"}, "clear": {"clear"},
                "propagate": {"propagate"}, "precompute": {"precompute"}, "nextSegment": {"next_object"}}
    assert {name: driver_calls(name) for name in expected} == expected
    session = next(n for n in ast.walk(methods["startSession"]) if isinstance(n, ast.Call)
                   and ast.unparse(n.func) == "Session")
    keywords = {k.arg: ast.unparse(k.value) for k in session.keywords}
    assert keywords["spacing"].endswith(".spacing_zyx")
    assert "driver.SessionDriver" in ast.unparse(methods["startSession"])


# ---- dependencies (deps.py) ------------------------------------------------------------------


def test_pins_match_the_project_constraints():
    pins = {r.distribution: r.version for r in deps.REQUIREMENTS}
    assert pins == {"torch": "2.14.1", "torchvision": "0.29.1", "segment-anything": "1.0", "pge-sam": None}
    constraints = dict(re.findall(r"^([\w-]+)==(\S+)", (ROOT / "constraints.txt").read_text(encoding="utf-8"), re.M))
    for name in ("torch", "torchvision"):
        assert pins[name] == constraints[name]


def test_missing_requirements_reads_metadata_without_importing(monkeypatch):
    monkeypatch.setattr(deps, "installed_version", {"numpy": "2.0.0", "torch": "2.14.1+cpu",
                                                    "ghost": "1.0"}.get)
    numpy_ok = deps.Requirement("numpy", "numpy", "2.0.0")
    numpy_wrong = deps.Requirement("numpy", "numpy", "1.26.4")
    torch_local = deps.Requirement("torch", "torch", "2.14.1")
    absent = deps.Requirement("not-a-real-dist", "not_a_real_dist", None)
    no_module = deps.Requirement("ghost", "ghost_module_that_does_not_exist", None)
    checkout = deps.Requirement("json-checkout", "json", None)  # importable, no metadata, unpinned: met
    pinned_checkout = deps.Requirement("json-checkout", "json", "1.0")  # a pin needs metadata
    assert deps.missing_requirements([numpy_ok, numpy_wrong, torch_local, absent, no_module, checkout,
                                      pinned_checkout]) == [numpy_wrong, absent, no_module, pinned_checkout]
    assert "1.26.4 is required" in deps.requirement_problem(numpy_wrong)
    assert "cannot be found" in deps.requirement_problem(no_module)


def test_cuda_detection_uses_driver_files_and_nvidia_smi(tmp_path):
    proc = tmp_path / "version"
    never = lambda name: None  # noqa: E731
    assert not deps.cuda_driver_present("linux", str(proc), never)
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module")
    assert deps.cuda_driver_present("linux", str(proc), never)
    assert deps.cuda_driver_present("win32", str(tmp_path / "none"), lambda n: "C:/nvidia-smi.exe")
    assert not deps.cuda_driver_present("win32", str(tmp_path / "none"), never)
    assert not deps.cuda_driver_present("darwin", str(proc), lambda n: "/usr/bin/nvidia-smi")


def test_pip_steps_choose_the_torch_index_per_platform():
    torch, vision, sam, core = deps.REQUIREMENTS
    pair = ["torch==2.14.1", "torchvision==0.29.1"]
    assert deps.pip_install_steps([torch, sam, core], cuda=False, platform="linux") == [
        pair + ["--index-url", deps.TORCH_CPU_INDEX], ["segment-anything==1.0", "pge-sam"]]
    assert deps.pip_install_steps([vision], cuda=True, platform="linux") == [pair]
    assert deps.pip_install_steps([torch], cuda=True, platform="win32") == [pair + ["--index-url", deps.TORCH_CUDA_INDEX]]
    assert deps.pip_install_steps([torch], cuda=False, platform="win32") == [pair]
    assert deps.pip_install_steps([torch, core], cuda=True, platform="darwin") == [pair, ["pge-sam"]]
    assert deps.pip_install_steps([], cuda=True, platform="linux") == []
    text = deps.describe_install(deps.pip_install_steps([torch], cuda=False, platform="linux"), cuda=False)
    assert "pip install torch==2.14.1 torchvision==0.29.1 --index-url" in text and "CPU builds" in text
    err = deps.MissingDependenciesError([sam])
    assert isinstance(err, RuntimeError) and "segment-anything==1.0" in str(err) and "Install dependencies" in str(err)


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


def test_restart_is_asked_for_only_when_an_installed_package_was_already_loaded():
    steps = deps.pip_install_steps(list(deps.REQUIREMENTS), cuda=False, platform="linux")
    assert deps.restart_required(steps, ["numpy", "slicer.util"]) == []  # a first install: nothing loaded
    assert deps.restart_required(steps, ["torch._C", "numpy"]) == ["torch"]
    only_core = deps.pip_install_steps([deps.REQUIREMENTS[3]], cuda=False, platform="linux")
    assert deps.restart_required(only_core, ["torch", "pge_sam"]) == ["pge-sam"]  # torch was not reinstalled
    message = deps.restart_message(["torch"])
    assert "torch" in message and "Restart Slicer" in message
    assert "restarted" in deps.describe_install(steps, cuda=False)

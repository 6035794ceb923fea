"""The front-ends use the session's public verbs only (issue 18): no ``session.state``, no predictor cache,
no private attribute of a core object, no test code shipped in the plugin."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRONT_ENDS = sorted(ROOT.glob("napari_pge_sam/*.py")) + sorted(ROOT.glob("slicer_pge_sam/PGESAM/**/*.py"))


def core_private_names() -> set[str]:
    """Every ``_name`` a core module defines as an attribute (``self._x = ...``) or a method (``def _x``)."""
    names = set()
    for path in (ROOT / "core" / "pge_sam").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr.startswith("_"):
                names.add(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("_"):
                names.add(node.name)
    return {n for n in names if not (n.startswith("__") and n.endswith("__"))}


def violations(path: Path, private: set[str]) -> list[str]:
    source = path.read_text(encoding="utf-8")
    found = [f"{path.name}:{source[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
             for m in re.finditer(r"\bsession\.state\b|\bpredictor\.cache\b|\bpred\.cache\b", source)]
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        base = ast.unparse(node.value)
        if node.attr in ("undo", "objects", "next_label") and (base == "state" or base.endswith(".state")):
            found.append(f"{path.name}:{node.lineno}: {base}.{node.attr} (session state)")
        if node.attr in ("cache", "key") and re.search(r"(^|\.)(predictor|pred)$", base):
            found.append(f"{path.name}:{node.lineno}: {base}.{node.attr} (the predictor's cache)")
        if node.attr in private and base not in ("self", "cls", "super()"):
            found.append(f"{path.name}:{node.lineno}: {base}.{node.attr} (private to the core)")
    return found


def test_front_ends_reach_no_session_internals():
    private = core_private_names()
    assert {"_prefetching", "_labels", "_obj", "_encode"} <= private  # the scan sees the core's private names
    assert len(FRONT_ENDS) > 15
    bad = [v for path in FRONT_ENDS for v in violations(path, private)]
    assert not bad, "\n".join(bad)


def test_the_scan_finds_what_it_forbids(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text("def f(session, widget, s, pred):\n    session.state.undo.pop()\n"
                      "    widget.session._labels[:] = 0\n"
                      "    s.state.objects.clear()\n    pred.key(None, 0, 0)\n    return session.predictor.cache\n")
    found = violations(sample, core_private_names())
    assert len(found) == 7, found  # session.state (text and AST), _labels, s.state, pred.key, predictor.cache (2)


def test_no_test_code_ships_with_the_plugin():
    assert not (ROOT / "napari_pge_sam" / "_testing.py").exists()
    for path in FRONT_ENDS:
        assert "RegionGrow" not in path.read_text(encoding="utf-8"), path


def test_the_core_names_no_front_end_and_takes_cli_plugins(monkeypatch):
    for path in (ROOT / "core" / "pge_sam").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "napari_pge_sam" not in text and "PGESAM" not in text, path
    import importlib.metadata

    from pge_sam import cli

    class EntryPoint:
        name, value = "napari", "napari_pge_sam._cli"

    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [EntryPoint()] if group == cli.PLUGIN_GROUP else [])
    args = cli.build_parser().parse_args(["napari", "--sample", "phantom"])
    assert args.command == "napari" and args._module == "napari_pge_sam._cli" and args.sample == "phantom"

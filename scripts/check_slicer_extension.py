#!/usr/bin/env python3
"""Offline checks of the PGESAM Slicer extension's catalog entry, on the subtree that becomes its repository.

Slicer's ExtensionsIndex checks a submitted ``<Name>.json`` with
``scripts/check_description_files.py``: it clones ``scm_url`` and looks at the
repository root. PGESAM's repository (SlicerPGESAM) is the ``slicer_pge_sam/``
subtree of pge-sam, so this script copies that folder into a temporary
"repository root" and checks it there:

* built-in checks (always; no network): JSON syntax and LF endings, the catalog
  schema's keys, the extension and repository names, ``scm_url``'s scheme, the
  top-level CMakeLists (``project()`` = extension name, icon and screenshot
  URLs, ``EXTENSION_DEPENDS`` = ``build_dependencies``, contributors in
  "Name (Affiliation)" form), a license file at the root, the 100 MB size limit,
  and that every build dependency has a catalog entry (with ``--index``);
* ``--index PATH`` (a checkout of https://github.com/Slicer/ExtensionsIndex):
  also runs the index's own ``check_description_files.py`` functions on the
  subtree, offline: the clone step is the copy above, URLs are checked for
  syntax instead of being downloaded, the JSON schema comes from ``--schema``
  (a file of Slicer's ``Schemas/`` folder) instead of the web, and the GitHub
  topics check (GitHub API) is skipped.

Usage::

    python scripts/check_slicer_extension.py [--index ExtensionsIndex]
        [--schema slicer-extension-catalog-entry-schema-v1.0.1.json]

Exit status 0 when every check passes. The output of a run is in slicer_pge_sam/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import sys
import tempfile
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "slicer_pge_sam"
CATALOG_KEYS = {"$schema", "build_dependencies", "build_subdirectory", "category", "enabled", "scm_revision",
                "scm_type", "scm_url", "tier"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif")
SIZE_LIMIT_MB = 100
CONTRIBUTOR = re.compile(r"^[^(),]+ \([^()]+\)$")
RAW_PREFIX = "https://raw.githubusercontent.com/pge-sam/pge-sam/main/"  # this repository's files, as fetched


class CheckError(Exception):
    pass


def make_subtree(source: Path, dest: Path) -> Path:
    """Copy ``source`` (the extension folder) to ``dest`` as a repository root would hold it."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store"))
    return dest


def cmake_meta(text: str) -> dict[str, str]:
    return dict(re.findall(r'set\s*\(\s*(EXTENSION_\w+)\s+"([^"]*)"', text))


def url_ok(url: str, image: bool = False) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" and bool(parts.netloc) and (not image or parts.path.lower().endswith(IMAGE_SUFFIXES))


def builtin_checks(name: str, description: Path, repo: Path, index: Path | None = None) -> list[tuple[str, str]]:
    """(check, detail) pairs of the checks that passed; raises CheckError at the first failure."""
    done = []

    def check(title, condition, detail):
        if not condition:
            raise CheckError(f"{title}: {detail}")
        done.append((title, detail))

    raw = description.read_bytes()
    meta = json.loads(raw)
    check("JSON file format", b"\r" not in raw, "valid JSON, LF line endings")
    check("JSON schema keys", {"$schema", "category", "scm_url"} <= set(meta) and set(meta) <= CATALOG_KEYS
          and isinstance(meta.get("build_dependencies", []), list) and 1 <= meta.get("tier", 1) <= 5,
          f"keys {sorted(meta)}")
    check("extension name", not name.lower().startswith("slicer"), f"{name} (does not start with 'Slicer')")
    repo_name = Path(urllib.parse.urlsplit(meta["scm_url"]).path).stem
    check("git repository name", repo_name.startswith("Slicer"), f"{repo_name} (starts with 'Slicer')")
    check("SCM URL syntax", urllib.parse.urlsplit(meta["scm_url"]).scheme in ("git", "https"), meta["scm_url"])
    cmake = (repo / "CMakeLists.txt").read_text(encoding="utf-8")
    project = re.search(r"project\s*\(\s*([^\s)]+)", cmake, re.I)
    check("CMakeLists project name", project is not None and project.group(1) == name,
          f"project({project.group(1) if project else '?'})")
    cm = cmake_meta(cmake)
    check("category", meta["category"] == cm.get("EXTENSION_CATEGORY") and meta["category"].strip(),
          f"{meta['category']} (JSON) = EXTENSION_CATEGORY")
    check("icon URL", url_ok(cm.get("EXTENSION_ICONURL", ""), image=True), cm.get("EXTENSION_ICONURL", "missing"))
    shots = cm.get("EXTENSION_SCREENSHOTURLS", "").split()
    check("screenshot URLs", shots and all(url_ok(u, image=True) for u in shots), f"{len(shots)} image URL(s)")
    check("homepage", url_ok(cm.get("EXTENSION_HOMEPAGE", "")), cm.get("EXTENSION_HOMEPAGE", "missing"))
    absent = [u for u in [cm.get("EXTENSION_ICONURL", "")] + shots
              if u.startswith(RAW_PREFIX) and not (ROOT / u[len(RAW_PREFIX):]).is_file()]
    if absent:  # the index downloads them: a 404 fails its online check
        done.append(("WARNING images not in this checkout yet (publish them before submitting)", ", ".join(
            u[len(RAW_PREFIX):] for u in absent)))
    check("description", len(cm.get("EXTENSION_DESCRIPTION", "")) >= 40, "EXTENSION_DESCRIPTION set")
    contributors = [c.strip() for c in re.split(r",(?![^()]*\))", cm.get("EXTENSION_CONTRIBUTORS", "")) if c.strip()]
    check("contributors", contributors and all(CONTRIBUTOR.match(c) for c in contributors),
          "; ".join(contributors) + " ('Name (Affiliation)')")
    depends = [] if cm.get("EXTENSION_DEPENDS", "NA") == "NA" else cm["EXTENSION_DEPENDS"].split()
    check("dependencies", depends == meta.get("build_dependencies", []),
          f"EXTENSION_DEPENDS {depends} = build_dependencies")
    licenses = [p for p in ("LICENSE", "LICENCE", "License.txt", "license.txt", "LICENSE.txt", "COPYING",
                            "COPYING.txt") if (repo / p).is_file()]
    check("license file", bool(licenses) and "Apache License" in (repo / licenses[0]).read_text(encoding="utf-8"),
          ", ".join(licenses))
    size = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file()) / 2**20
    check("repository size", size <= SIZE_LIMIT_MB, f"{size:.1f} MB (limit {SIZE_LIMIT_MB} MB)")
    if index is not None:
        missing = [d for d in depends if not (index / f"{d}.json").is_file()]
        check("dependency entries in the index", not missing, f"{depends} found in {index}")
    return done


def upstream_checks(name: str, description: Path, repo: Path, index: Path,
                    schema: Path | None) -> list[tuple[str, str]]:
    """Run ExtensionsIndex's own check functions offline (see the module docstring); (check, outcome) pairs."""
    script = index / "scripts" / "check_description_files.py"
    spec = importlib.util.spec_from_file_location("check_description_files", script)
    upstream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(upstream)

    def offline_image_url(url, url_type, extension_name, check_name):  # no network: syntax only
        if not url_ok(url, image=True):
            raise upstream.ExtensionCheckError(extension_name, check_name,
                                               f"{url_type} '{url}' is not an https image URL")

    upstream.validate_image_url = offline_image_url
    metadata = upstream.parse_json(str(description))
    results = []
    checks = [
        ("Check repository size", upstream.check_repository_size, {"cloned_repository_folder": str(repo)}),
        ("Check JSON file format", upstream.check_json_file_format, {"extension_file_path": str(description)}),
        ("Check extension name", upstream.check_extension_name, {}),
        ("Check category", upstream.check_category, {}),
        ("Check git repository name", upstream.check_git_repository_name, {}),
        ("Check SCM URL syntax", upstream.check_scm_url_syntax, {}),
        ("Check CMakeLists.txt content", upstream.check_cmakelists_content, {"cloned_repository_folder": str(repo)}),
        ("Check license file", upstream.check_license_file, {"cloned_repository_folder": str(repo)}),
    ]
    for title, function, kwargs in checks:
        try:
            function(name, metadata, **kwargs)
        except upstream.ExtensionCheckError as exc:
            raise CheckError(f"{title} failed: {exc}") from None
        results.append((title, "passed"))
    if schema is not None:
        import jsonschema

        jsonschema.validate(metadata, json.loads(schema.read_text(encoding="utf-8")))
        results.append(("Check JSON schema", f"passed ({schema.name}, local copy)"))
    with tempfile.TemporaryDirectory() as folder:  # dependency check over the index plus this entry
        for entry in [description] + [index / f"{d}.json" for d in metadata.get("build_dependencies", [])]:
            shutil.copy(entry, folder)
        try:
            upstream.check_dependencies(folder)
        except upstream.ExtensionDependencyError as exc:
            raise CheckError(f"Dependency check failed: {exc}") from None
    results.append(("Check dependencies", "passed"))
    results.append(("Check git repository topics", "skipped (GitHub API; add the topic '3d-slicer-extension')"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extension", type=Path, default=EXTENSION, help="extension folder (default: slicer_pge_sam)")
    parser.add_argument("--index", type=Path, default=None, help="a checkout of Slicer/ExtensionsIndex")
    parser.add_argument("--schema", type=Path, default=None, help="local copy of the catalog entry JSON schema")
    args = parser.parse_args(argv)
    ext = args.extension.resolve()
    descriptions = sorted(ext.glob("*.json"))
    if len(descriptions) != 1:
        print(f"expected one <Name>.json in {ext}, found {[p.name for p in descriptions]}", file=sys.stderr)
        return 1
    description = descriptions[0]
    name = description.stem
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_subtree(ext, Path(tmp) / f"Slicer{name}")
        print(f"## Extension: {name} (subtree of {ext} copied to a repository root)")
        for title, run in (("built-in", lambda: builtin_checks(name, description, repo, args.index)),
                           ("ExtensionsIndex check_description_files.py, offline",
                            (lambda: upstream_checks(name, description, repo, args.index, args.schema))
                            if args.index else None)):
            if run is None:
                continue
            print(f"### {title}")
            try:
                for check, detail in run():
                    level, check = ("warning", check[8:]) if check.startswith("WARNING ") else ("ok", check)
                    print(f"- {level}: {check}: {detail}")
            except CheckError as exc:
                print(f"- FAILED: {exc}")
                ok = False
    print("all checks passed" if ok else "checks FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

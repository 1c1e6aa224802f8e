"""pyproject.toml declares what the code imports, imports what it declares, and ships every package folder."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kg", "registry", "tasks", "flows")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
BUILD_ONLY = {"setuptools", "wheel"}
"""Declared for building or developing, never imported by the package."""
DEV_TOOLS = {"pytest", "ruff"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _declared() -> dict[str, str]:
    """distribution name -> where it is declared (``dependencies`` or ``extra <name>``)."""
    project = PYPROJECT["project"]
    found = {_name(r): "dependencies" for r in project["dependencies"]}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        for requirement in requirements:
            found.setdefault(_name(requirement), f"extra {extra}")
    return found


def _third_party_imports() -> dict[str, str]:
    """top-level module -> the first ``file:line`` importing it, for every non-stdlib, non-evergraph import."""
    found: dict[str, str] = {}
    for folder in PACKAGES:
        for file in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top != "evergraph" and top not in sys.stdlib_module_names:
                        found.setdefault(top, f"{file.relative_to(ROOT)}:{node.lineno}")
    return found


@cache
def _module_distributions() -> dict[str, list[str]]:
    return packages_distributions()


def _distributions(module: str) -> set[str]:
    return {d.lower().replace("_", "-") for d in _module_distributions().get(module, [])}


def test_every_import_is_declared() -> None:
    declared = _declared()
    undeclared = [
        f"{where} imports {module} (distribution {sorted(_distributions(module)) or '?'})"
        for module, where in sorted(_third_party_imports().items())
        if not _distributions(module) & set(declared)
    ]
    assert undeclared == []


def test_every_declared_dependency_is_imported() -> None:
    imported = set().union(*(_distributions(m) for m in _third_party_imports()))
    # faiss-cpu / faiss-gpu provide the same module; an extra may be one the venv does not have
    unused = [
        name
        for name, where in _declared().items()
        if name not in imported | BUILD_ONLY | DEV_TOOLS
        and not (name.startswith("faiss-") and "faiss-cpu" in imported)
        and where == "dependencies"
    ]
    assert unused == []


def test_every_package_folder_is_shipped() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {
        "evergraph." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in PACKAGES
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert sorted(folders - listed) == []
    assert setuptools["package-dir"] == {f"evergraph.{p}": p for p in PACKAGES}

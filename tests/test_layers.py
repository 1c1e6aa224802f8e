"""The package layout holds: one-way imports between layers, light serving imports, one error module.

Imports are read from the source with :mod:`ast` (nothing is imported), so a rule broken anywhere, even inside a
function or under ``TYPE_CHECKING``, fails here with the file and line.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kg", "registry", "tasks", "flows")
"""Top-level folders installed as ``evergraph.<folder>``."""


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    module: str  # the absolute module name imported (``evergraph.kg.engine.model``, ``torch``, ...)

    def __str__(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line} imports {self.module}"


def _module_name(file: Path) -> str:
    parts = list(file.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["evergraph", *parts])


def _imports(file: Path) -> list[Import]:
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(file, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved so the rules still apply (and reported by its own test)
                base = _module_name(file).split(".")
                if file.name != "__init__.py":
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append(Import(file, node.lineno, module))
            # ``from evergraph.kg import engine`` imports a subpackage: count it by its full name
            found += [Import(file, node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _layer(module: str) -> str | None:
    """``engine``/``store``/``knowledge``/``service`` for ``evergraph.kg.<layer>...``, ``kg`` for the rest of kg
    (``evergraph.kg``, ``evergraph.kg.errors``), ``registry``/``tasks``/``flows``, or None (third party)."""
    parts = module.split(".")
    if parts[0] != "evergraph" or len(parts) < 2:
        return None
    if parts[1] == "kg":
        if len(parts) > 2 and parts[2] in ("engine", "store", "knowledge", "service"):
            return parts[2]
        return "kg"
    return parts[1] if parts[1] in PACKAGES else None


FORBIDDEN: dict[str, set[str]] = {
    # kg's layers, inner to outer: engine <- store <- knowledge <- service
    "engine": {"store", "knowledge", "service", "registry", "tasks", "flows"},
    "store": {"knowledge", "service", "registry", "tasks", "flows"},
    "knowledge": {"service", "registry", "tasks", "flows"},
    "service": {"registry", "tasks", "flows"},
    "kg": {"registry", "tasks", "flows"},
    # the orchestration packages: flows -> tasks -> registry -> kg
    "registry": {"tasks", "flows"},
    "tasks": {"flows"},
    "flows": set(),
}
NEVER_IN_KG = ("prefect", "mlflow")


def _violations() -> list[str]:
    problems = []
    for folder in PACKAGES:
        for file in _files(folder):
            own = _layer(_module_name(file))
            assert own is not None, file
            for imp in _imports(file):
                target = _layer(imp.module)
                if target in FORBIDDEN[own]:
                    problems.append(f"{imp} ({own} must not import {target})")
                if folder == "kg" and imp.module.split(".")[0] in NEVER_IN_KG:
                    problems.append(f"{imp} (kg never imports prefect or mlflow)")
    return problems


def test_every_package_file_is_in_a_layer() -> None:
    layers = {_layer(_module_name(f)) for folder in PACKAGES for f in _files(folder)}
    assert layers == {"engine", "store", "knowledge", "service", "kg", "registry", "tasks", "flows"}


def test_imports_point_one_way() -> None:
    assert _violations() == []


def test_imports_are_absolute() -> None:
    relative = [
        f"{f.relative_to(ROOT)}:{node.lineno}"
        for folder in PACKAGES
        for f in _files(folder)
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert relative == []


def test_the_rule_checker_catches_a_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker is not vacuous: an engine module importing the store is reported with its file and line."""
    fake = ROOT / "kg" / "engine" / "model.py"
    source = "import os\nfrom evergraph.kg.store import bundle\n"
    original = ast.parse

    def parse(text: str, *args: object, **kwargs: object) -> ast.Module:
        if kwargs.get("filename") == str(fake):
            return original(source)
        return original(text, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", parse)
    problems = _violations()
    assert any("kg/engine/model.py:2 imports evergraph.kg.store" in p for p in problems), problems


LIGHT_MODULES = ("evergraph.kg.store.bundle", "evergraph.kg.service.server", "evergraph.kg.service.client")
HEAVY = ("torch_geometric", "evergraph.kg.engine.lifelong", "mlflow", "prefect")


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_serving_modules_do_not_load_the_training_stack(module: str) -> None:
    """Reading bundles, serving and the HTTP client stay light: no torch_geometric, training, MLflow or Prefect."""
    code = (
        f"import importlib, json, sys; importlib.import_module({module!r}); "
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing {module} loaded {loaded}"


def test_every_error_class_is_defined_in_kg_errors() -> None:
    """Every class deriving (directly or not) from EvergraphError is defined in kg/errors.py."""
    from evergraph.kg.errors import EvergraphError

    in_errors = {
        node.name
        for node in ast.walk(ast.parse((ROOT / "kg" / "errors.py").read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
    }
    assert "EvergraphError" in in_errors
    # by source: any class anywhere whose bases name a known error class (fixpoint over subclasses by name)
    error_names = {"EvergraphError"} | {
        name for name in in_errors if name in {c.__name__ for c in _subclasses(EvergraphError)}
    }
    elsewhere = []
    for folder in PACKAGES:
        for file in _files(folder):
            if file == ROOT / "kg" / "errors.py":
                continue
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases}
                    if bases & error_names:
                        elsewhere.append(f"{file.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert elsewhere == []
    # and by import: every loaded subclass lives in evergraph.kg.errors
    import evergraph.kg.service.client  # noqa: F401 - load the modules that raise errors
    import evergraph.kg.store.bundle  # noqa: F401
    import evergraph.registry  # noqa: F401

    modules = {c.__module__ for c in _subclasses(EvergraphError) if c.__module__.startswith("evergraph.")}
    assert modules == {"evergraph.kg.errors"}


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found

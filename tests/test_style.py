"""Every module of skmdn states what it offers: a module docstring and an
``__all__`` that lists each public name it defines and each name that the
other modules import from it."""

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "skmdn"
MODULES = sorted(PACKAGE.glob("*.py"))


def _module(path: Path):
    name = "skmdn" if path.stem == "__init__" else f"skmdn.{path.stem}"
    return importlib.import_module(name)


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_module_has_docstring_and_all(path):
    module = _module(path)
    assert module.__doc__, f"{path.name} has no module docstring"
    assert isinstance(getattr(module, "__all__", None), list), path.name
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{path.name}'s __all__ names what it lacks: {missing}"


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_public_names_are_in_all(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    public = {name for name in defined if not name.startswith("_")}
    missing = sorted(public - set(_module(path).__all__))
    assert not missing, f"{path.name} defines public names not in __all__: {missing}"


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_public_names_imported_from_siblings_are_in_their_all(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    missing = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        for alias in node.names
        if not alias.name.startswith("_")
        and alias.name not in importlib.import_module(f"skmdn.{node.module}").__all__
    ]
    assert not missing, f"{path.name} imports names outside __all__: {missing}"

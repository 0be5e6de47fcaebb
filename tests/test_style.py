"""Every module of skmdn states what it offers: a module docstring and an
``__all__`` that lists each public name it defines and each name that the
other modules import from it; and the public API is typed (py.typed ships):
every public callable annotates its return type, the constructors their
parameters."""

import ast
import importlib
import inspect
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


def _public_callables() -> dict[str, object]:
    """The public functions of the three public modules, and the methods,
    properties and constructors that their classes define themselves."""
    found = {}
    for module_name in ("skmdn", "skmdn.metrics", "skmdn.plotting"):
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                found[f"{module_name}.{name}"] = obj
            elif inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if isinstance(value, property):
                        value = value.fget
                    if inspect.isfunction(value) and (
                        not attr.startswith("_") or attr in ("__init__", "__call__")
                    ):
                        found[f"{module_name}.{name}.{attr}"] = value
    return found


PUBLIC_CALLABLES = _public_callables()


@pytest.mark.parametrize("name", sorted(PUBLIC_CALLABLES))
def test_public_callables_annotate_their_return_type(name):
    # Regression: MDNRegressor.fit and partial_fit, MDNRegressor.__init__ and
    # DistributionScorer.get_metadata_routing had none, so a type checker
    # reading py.typed saw them return Any.
    signature = inspect.signature(PUBLIC_CALLABLES[name])
    assert signature.return_annotation is not inspect.Signature.empty, name


@pytest.mark.parametrize("name", ["MDNRegressor", "GaussianMixture"])
def test_constructor_parameters_are_annotated(name):
    init = getattr(importlib.import_module("skmdn"), name).__init__
    missing = [
        p.name
        for p in inspect.signature(init).parameters.values()
        if p.name != "self" and p.annotation is inspect.Parameter.empty
    ]
    assert not missing, f"{name}.__init__ leaves unannotated: {missing}"

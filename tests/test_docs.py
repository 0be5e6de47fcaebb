"""The documentation matches the code: README.md states the signatures of
MDNRegressor and its methods as the code has them (names, order, defaults and
keyword-only markers), and every public function, class and method has a
runnable Examples section."""

import ast
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from skmdn import MDNRegressor

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def _parameters(text: str) -> list[tuple[str, str, object]]:
    """(name, kind, default) of each parameter of ``text`` (``name(args)``),
    read by Python's parser; no default is ``inspect.Parameter.empty``."""
    args = ast.parse(f"def {text}: pass").body[0].args
    positional = args.posonlyargs + args.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults))
    defaults += [ast.literal_eval(d) for d in args.defaults]
    out = [(a.arg, "positional", d) for a, d in zip(positional, defaults, strict=True)]
    for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        default = inspect.Parameter.empty if d is None else ast.literal_eval(d)
        out.append((a.arg, "keyword-only", default))
    return out


def _code_parameters(function) -> list[tuple[str, str, object]]:
    kinds = {inspect.Parameter.KEYWORD_ONLY: "keyword-only"}
    return [
        (p.name, kinds.get(p.kind, "positional"), p.default)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self"
    ]


def test_readme_constructor_signature_is_the_code():
    match = re.search(r"`(MDNRegressor\(n_components=.*?\))`", README, re.DOTALL)
    assert match, "README lost its MDNRegressor(...) signature"
    assert _parameters(match.group(1)) == _code_parameters(MDNRegressor)


METHODS = re.findall(r"^\| `((\w+)\(X.*?\))` \|", README, re.MULTILINE)


def test_readme_lists_every_public_method():
    names = {name for _, name in METHODS}
    assert names >= {"fit", "predict", "predict_dist", "sample", "score"}


@pytest.mark.parametrize("text, name", METHODS, ids=[name for _, name in METHODS])
def test_readme_method_signatures_are_the_code(text, name):
    # Regression: the README showed sample(X, n_samples=1, random_state=None,
    # temperature=1.0, ...), but temperature and scale_temperature are
    # keyword-only, so model.sample(X, 10, 0, 0.5) raised a TypeError.
    assert _parameters(text) == _code_parameters(getattr(MDNRegressor, name))


# Every public function and class, and every public method of the three
# classes a user gets, shows a runnable Examples section (run as doctests by
# --doctest-modules), as scikit-learn and scipy document theirs. Like
# scikit-learn's estimators, MDNRegressor shows fit, partial_fit, predict and
# score in its class Examples instead; properties need none.
MODULES = ("skmdn", "skmdn.metrics", "skmdn.plotting")
CLASSES = ("GaussianMixture", "HighestDensityRegion", "MDNRegressor")
SHOWN_IN_CLASS = {"fit", "partial_fit", "predict", "score"}


def _documented_objects() -> dict[str, object]:
    """Public functions and classes of the three ``__all__``, and the public
    methods that the classes above define themselves (inherited scikit-learn
    methods such as ``get_params`` are scikit-learn's to document)."""
    import importlib

    found = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                found[f"{module_name}.{name}"] = obj
    for class_name in CLASSES:
        cls = getattr(importlib.import_module("skmdn"), class_name)
        for name, attr in vars(cls).items():
            if (
                inspect.isfunction(attr)
                and not name.startswith("_")
                and not (class_name == "MDNRegressor" and name in SHOWN_IN_CLASS)
            ):
                found[f"skmdn.{class_name}.{name}"] = attr
    return found


DOCUMENTED = _documented_objects()
EXAMPLES = re.compile(r"^\s*Examples\n\s*-{8}\n(?:.*\n)*?\s*>>> ", re.MULTILINE)


def test_documented_objects_include_the_methods_users_call():
    assert {
        "skmdn.GaussianMixture.cdf",
        "skmdn.GaussianMixture.hdr",
        "skmdn.HighestDensityRegion.contains",
        "skmdn.MDNRegressor.predict_dist",
        "skmdn.metrics.DistributionScorer",
        "skmdn.plotting.plot_pit_histogram",
    } <= DOCUMENTED.keys()
    assert "skmdn.MDNRegressor.fit" not in DOCUMENTED


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_public_api_has_runnable_examples(name):
    doc = inspect.getdoc(DOCUMENTED[name]) or ""
    assert EXAMPLES.search(doc + "\n"), (
        f"{name}'s docstring has no numpydoc Examples section with a doctest "
        "(a line starting with >>>); add a short, deterministic one."
    )


# The README's Python blocks, run in order in one namespace as a reader pastes
# them (the persistence block uses the quick start's model). A renamed
# parameter or method would otherwise leave the quick start stale unnoticed.
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", README, re.MULTILINE | re.DOTALL)


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    assert len(PYTHON_BLOCKS) >= 2, "README lost its Python examples"
    monkeypatch.chdir(tmp_path)  # the skops block writes model.skops
    namespace: dict = {}
    predictions = []
    for block in PYTHON_BLOCKS:
        if "import skops" in block:
            pytest.importorskip("skops")
        exec(compile(block, "README.md", "exec"), namespace)
        predictions.append(namespace["model"].predict(namespace["X"][:3]))
    # The skops block's model, loaded from the file, predicts as the quick
    # start's did.
    np.testing.assert_array_equal(predictions[-1], predictions[0])

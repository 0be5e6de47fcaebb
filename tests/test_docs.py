"""The documentation matches the code: README.md states the signatures of
MDNRegressor and its methods as the code has them (names, order, defaults and
keyword-only markers), every public function, class and method has a
runnable Examples section and passes numpydoc's validation under
scikit-learn's rules, every Parameters section in skmdn names the
signature's parameters, and MDNRegressor's documented parameter types name
every kind its constraints accept."""

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
CLASSES = (
    "GaussianMixture",
    "HighestDensityRegion",
    "MDNRegressor",
    "TransformedMixture",
)
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


# numpydoc's validation of every public class, method, property and function,
# with the error codes scikit-learn ignores (sklearn/tests/test_docstrings.py):
# RT02, GL01 and GL02 everywhere; PR02 and GL08 on properties; ES01, SA01 and
# EX01 except on classes. It catches what a reader of help() trips on: a
# parameter documented but not taken (PR02) or taken but not documented
# (PR01), a return value without a description (RT03), sections out of order.
_SKLEARN_IGNORED = {"RT02", "GL01", "GL02"}
_ONLY_FOR_CLASSES = {"ES01", "SA01", "EX01"}


def _validated_objects() -> dict[str, str]:
    """Import path -> kind (``'class'``, ``'property'``, ``'method'`` or
    ``'function'``) of the public classes, with every public method and
    property (inherited ones too, as scikit-learn checks its own), and of the
    public functions of the three ``__all__``."""
    import importlib

    found = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                found[f"{module_name}.{name}"] = "function"
            elif inspect.isclass(obj):
                found[f"{module_name}.{name}"] = "class"
                for attr in dir(obj):
                    static = inspect.getattr_static(obj, attr)
                    if attr.startswith("_"):
                        continue
                    if isinstance(static, property):
                        found[f"{module_name}.{name}.{attr}"] = "property"
                    elif callable(getattr(obj, attr)):
                        found[f"{module_name}.{name}.{attr}"] = "method"
    return found


VALIDATED = _validated_objects()


def test_validated_objects_include_methods_properties_and_functions():
    assert {
        "skmdn.MDNRegressor": "class",
        "skmdn.MDNRegressor.fit": "method",
        "skmdn.MDNRegressor.get_params": "method",
        "skmdn.GaussianMixture.weights": "property",
        "skmdn.GaussianMixture.cdf": "method",
        "skmdn.HighestDensityRegion.contains": "method",
        "skmdn.metrics.crps": "function",
        "skmdn.metrics.DistributionScorer": "class",
        "skmdn.metrics.DistributionScorer.get_metadata_routing": "method",
        "skmdn.plotting.plot_calibration": "function",
    }.items() <= VALIDATED.items()


@pytest.mark.parametrize("path", sorted(VALIDATED))
def test_docstring_passes_numpydoc_validation(path):
    validate = pytest.importorskip("numpydoc.validate").validate
    ignored = set(_SKLEARN_IGNORED)
    if VALIDATED[path] != "class":
        ignored |= _ONLY_FOR_CLASSES
    if VALIDATED[path] == "property":
        ignored |= {"PR02", "GL08"}
    errors = [(c, m) for c, m in validate(path)["errors"] if c not in ignored]
    assert not errors, f"{path}'s docstring: " + "; ".join(
        f"{code}: {message}" for code, message in errors
    )


def _constraint_words(constraint) -> list[str]:
    """What the documented type of a parameter says for each of scikit-learn's
    constraints on it (``'auto'`` for ``StrOptions({'auto'})``)."""
    from numbers import Integral

    import torch
    from sklearn.utils._param_validation import Interval, StrOptions

    if isinstance(constraint, Interval):
        return ["int"] if constraint.type is Integral else ["float"]
    if isinstance(constraint, StrOptions):
        return [f"'{option}'" for option in sorted(constraint.options)]
    if constraint is None:
        return ["None"]  # in the type or as the default
    words = {
        "boolean": ["bool"],
        "array-like": ["array-like"],
        "random_state": ["int", "RandomState", "None"],
        "verbose": ["int"],
        str: ["str"],
        torch.device: ["torch.device"],
    }
    return words[constraint]


def test_documented_parameter_types_name_every_accepted_kind():
    # Regression: hidden_layer_sizes was documented as array-like only, yet
    # its constraints (and the network) accept an int, one hidden layer.
    doc = MDNRegressor.__doc__
    section = doc.split("Parameters\n    ----------\n")[1].split("\n    Attributes")[0]
    types = dict(re.findall(r"^    (\w+) : (.*)$", section, re.MULTILINE))
    constraints = MDNRegressor._parameter_constraints
    assert types.keys() == constraints.keys()
    missing = [
        f"{name}: {word}"
        for name, accepted in constraints.items()
        for constraint in accepted
        for word in _constraint_words(constraint)
        if word not in types[name]
    ]
    assert not missing, f"documented types omit accepted kinds: {missing}"


def _objects_with_parameter_sections() -> list[str]:
    """Import paths of every function, class and method defined in skmdn,
    private ones included, whose docstring has a Parameters section."""
    import importlib

    package = Path(__file__).parent.parent / "skmdn"
    found = []
    for path in sorted(package.glob("*.py")):
        name = "skmdn" if path.stem == "__init__" else f"skmdn.{path.stem}"
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if getattr(obj, "__module__", None) != name:
                continue
            members = [(attr, obj)]
            if inspect.isclass(obj):
                members += [
                    (f"{attr}.{key}", value)
                    for key, value in vars(obj).items()
                    if inspect.isfunction(value)
                ]
            found += [
                f"{name}.{member}"
                for member, value in members
                if (inspect.isfunction(value) or inspect.isclass(value))
                and "Parameters\n---" in (inspect.getdoc(value) or "")
            ]
    return found


@pytest.mark.parametrize("path", _objects_with_parameter_sections())
def test_documented_parameters_are_the_signatures(path):
    # Regression: the docstrings of ManualBackprop and BlockedBackprop had
    # prose after their Parameters section, which numpydoc (and Sphinx) read
    # as parameters that the classes do not take.
    validate = pytest.importorskip("numpydoc.validate").validate
    codes = {"PR01", "PR02", "PR10"}  # missing, unknown, malformed
    errors = [(c, m) for c, m in validate(path)["errors"] if c in codes]
    assert not errors, f"{path}'s docstring: {errors}"

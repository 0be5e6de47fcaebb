"""README.md states the signatures of MDNRegressor and its methods as the code
has them: names, order, defaults and keyword-only markers."""

import ast
import inspect
import re
from pathlib import Path

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

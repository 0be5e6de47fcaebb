"""The catalogue of bad and awkward inputs: one row per case, each with its outcome.

Every row is either handled correctly (and the ``check`` says what correct
means) or raises a ValueError/TypeError whose message says what is wrong and
what to do (asserted with ``match=``). scikit-learn's ``InvalidParameterError``
is a ValueError subclass.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import sklearn
import torch
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skmdn import MDNRegressor

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 2))
Y = np.sin(X[:, 0]) + 0.1 * RNG.normal(size=40)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def model(**params) -> MDNRegressor:
    base = {
        "n_components": 2,
        "hidden_layer_sizes": (8,),
        "max_iter": 5,
        "random_state": 0,
    }
    return MDNRegressor(**{**base, **params})


def fit(X_, y_, sample_weight=None, **params) -> MDNRegressor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: few epochs on purpose
        return model(**params).fit(X_, y_, sample_weight=sample_weight)


@cache
def fitted() -> MDNRegressor:
    return fit(X, Y)


@cache
def fitted_frame() -> MDNRegressor:
    return fit(pd.DataFrame(X, columns=["a", "b"]), Y)


def with_value(a, index, value):
    kind = object if isinstance(value, dict) else np.asarray(value).dtype
    a = np.array(a, dtype=np.result_type(a, kind))
    a[index] = value
    return a


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[], Any]
    error: type[Exception] | None = None
    match: str | None = None
    check: Callable[[Any], None] | None = None


def raises(id, run, error, match):
    return Case(id, run, error=error, match=match)


def handled(id, run, check):
    return Case(id, run, check=check)


# ------------------------------------------------------------------ checks
def finite_model(m: MDNRegressor) -> None:
    assert np.isfinite(m.predict(X)).all()
    assert np.isfinite(m.score(X, Y))


def same_as_reference(reference: Callable[[], MDNRegressor]):
    def check(m: MDNRegressor) -> None:
        np.testing.assert_array_equal(m.predict(X), reference().predict(X))

    return check


def close_to(reference: Callable[[], MDNRegressor]):
    def check(m: MDNRegressor) -> None:
        np.testing.assert_allclose(m.predict(X), reference().predict(X), rtol=1e-8)

    return check


def equivariant(y_factor: float = 1.0, x_factor: float = 1.0):
    """Standardisation makes the fit equivariant to the units of X and y:
    predictions scale with y, and the log-likelihood shifts by -log(factor)."""

    def check(m: MDNRegressor) -> None:
        np.testing.assert_allclose(
            m.predict(X * x_factor), y_factor * fitted().predict(X), rtol=1e-6
        )
        np.testing.assert_allclose(
            m.score(X * x_factor, Y * y_factor),
            fitted().score(X, Y) - math.log(y_factor),
            rtol=1e-6,
            atol=1e-6,
        )

    return check


def offset_equivariant(m: MDNRegressor) -> None:
    """A spread of 1e-4 around 1e8 (thousands of float64 steps) is data, not
    a constant: the fit matches the one on the unshifted, unscaled values."""
    Xs, ys = OFFSET + 1e-4 * X, OFFSET + 1e-4 * Y
    # inputs and targets are rounded to 1.5e-8, 1.5e-4 of their spread
    np.testing.assert_allclose(
        (m.predict(Xs) - OFFSET) / 1e-4, fitted().predict(X), atol=2e-3
    )
    np.testing.assert_allclose(
        m.score(Xs, ys), fitted().score(X, Y) - math.log(1e-4), atol=2e-3
    )


def constant_target(m: MDNRegressor) -> None:
    pred = m.predict(X)
    np.testing.assert_allclose(pred, 3.0, atol=0.1)
    # zero spread -> y_scale 1 -> scale floor min_scale: density is bounded
    score = m.score(X, np.full(40, 3.0))
    assert np.isfinite(score)
    assert score <= -math.log(m.min_scale) - HALF_LOG_2PI


def scale_floor_holds(m: MDNRegressor) -> None:
    Xd, yd = DUPLICATES
    floor = m.min_scale * m.y_scale_[0]
    scales = m.predict_dist(Xd[:1]).scales
    assert np.all(scales >= floor * (1 - 1e-9))
    assert scales.min() < 3 * floor  # training pushed against the floor ...
    score = m.score(Xd, yd)  # ... so the log-likelihood is bounded by it
    assert np.isfinite(score)
    assert score <= -math.log(floor) - HALF_LOG_2PI


def linear_means(m: MDNRegressor) -> None:
    # no hidden layer: component means are affine in x
    a, b = X[:1], X[1:2]
    mid = m.predict_dist((a + b) / 2).means
    ends = (m.predict_dist(a).means + m.predict_dist(b).means) / 2
    np.testing.assert_allclose(mid, ends, rtol=1e-9, atol=1e-12)


def one_sample(m: MDNRegressor) -> None:
    assert m.n_features_in_ == 2
    assert np.isfinite(m.predict(X)).all()
    np.testing.assert_allclose(m.predict(X[:1]), Y[0], atol=0.5)
    assert np.isfinite(m.score(X[:1], Y[:1]))


def same_as_dense(m: MDNRegressor) -> None:
    """Sparse X is densified chunk by chunk: the same bits as dense X."""
    np.testing.assert_array_equal(m.predict(X), fitted().predict(X))
    np.testing.assert_array_equal(m.X_scale_, fitted().X_scale_)


def same_on_sparse_input(m: MDNRegressor) -> None:
    for kind in (sp.csr_matrix, sp.csc_matrix, sp.coo_array):
        np.testing.assert_array_equal(m.predict(kind(X)), m.predict(X))
        assert m.score(kind(X), Y) == m.score(X, Y)


def one_feature(m: MDNRegressor) -> None:
    assert m.n_features_in_ == 1
    assert np.isfinite(m.predict(X[:, :1])).all()
    assert np.isfinite(m.score(X[:, :1], Y))


def valid_mixture(m: MDNRegressor) -> None:
    dist = m.predict_dist(X)
    np.testing.assert_allclose(dist.weights.sum(1), 1.0)
    assert np.isfinite(dist.means).all()
    cov = dist.cov()
    cov = cov.reshape(len(cov), 1, 1) if cov.ndim == 1 else cov
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def valid_mixture_of_any(dist) -> None:
    np.testing.assert_allclose(dist.weights.sum(1), 1.0)
    assert np.isfinite(dist.means).all()
    assert np.isfinite(dist.mean()).all()
    assert np.all(dist.scales > 0)


def float32_model(m: MDNRegressor) -> None:
    assert m.dtype_ == torch.float32
    pred = m.predict(X.astype(np.float32))
    assert pred.dtype == np.float64
    assert np.isfinite(pred).all()


def constant_feature(m: MDNRegressor) -> None:
    assert m.X_scale_[1] == 1.0  # zero spread is not divided by
    assert np.isfinite(m.predict(with_value(X, (slice(None), 1), 5.0))).all()


def ndarray_after_frame(result) -> None:
    pred, messages = result
    assert any("does not have valid feature names" in s for s in messages)
    np.testing.assert_array_equal(
        pred, fitted_frame().predict(pd.DataFrame(X, columns=["a", "b"]))
    )


def predict_warnings(m, X_):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pred = m.predict(X_)
    return pred, [str(w.message) for w in caught]


def no_runtime_warning(run):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # e.g. numpy overflow
        return run()


def partial_fit_twice(y1, y2, X2=X):
    m = model()
    m.partial_fit(X, y1)
    return m.partial_fit(X2, y2)


def warm_refit(y2):
    m = fit(X, Y, warm_start=True)
    return m.fit(X, y2)


OFFSET = 1e8
DUPLICATES = (np.zeros((200, 2)), np.repeat([0.0, 1.0], 100))
FRAME = pd.DataFrame(X, columns=["a", "b"])
CAT_FRAME = pd.DataFrame({"a": X[:, 0], "b": pd.Categorical(["u", "v"] * 20)})
STR_FRAME = pd.DataFrame({"a": X[:, 0], "b": ["u", "v"] * 20})
NA_FRAME = pd.DataFrame({"a": X[:, 0], "b": pd.array([1, None] * 20, dtype="Int64")})
TIME_FRAME = pd.DataFrame({"a": X[:, 0], "b": pd.date_range("2020", periods=40)})
NOT_UNIT = "The '{}' parameter of MDNRegressor must be .*Got .* instead"


def invalid_param(name, value, **extra):
    return raises(
        f"param-{name}={value!r}",
        lambda: fit(X, Y, **{name: value, **extra}),
        ValueError,
        NOT_UNIT.format(name),
    )


def set_after_fit(name, value, method):
    """``method`` of a fitted model whose ``name`` was then set to ``value``
    (which fit would refuse)."""

    def run():
        m = copy.deepcopy(fitted()).set_params(**{name: value})
        return getattr(m, method)(
            *((X, Y) if method in ("score", "partial_fit") else (X,))
        )

    return raises(
        f"{method}-{name}={value!r}-set-after-fit",
        run,
        ValueError,
        NOT_UNIT.format(name),
    )


CASES = [
    # ---------------------------------------------------- non-finite values
    raises("nan-in-X", lambda: fit(with_value(X, (0, 0), np.nan), Y), ValueError,
           "Input X contains NaN.*impute"),
    raises("inf-in-X", lambda: fit(with_value(X, (3, 1), np.inf), Y), ValueError,
           "Input X contains infinity.*isfinite"),
    raises("nan-in-y", lambda: fit(X, with_value(Y, 0, np.nan)), ValueError,
           "Input y contains NaN.*drop the rows with a missing target"),
    raises("inf-in-y", lambda: fit(X, with_value(Y, 5, -np.inf)), ValueError,
           "Input y contains infinity.*drop those rows"),
    raises("nan-in-sample_weight",
           lambda: fit(X, Y, sample_weight=with_value(np.ones(40), 0, np.nan)),
           ValueError, "sample_weight contains NaN"),
    raises("inf-in-sample_weight",
           lambda: fit(X, Y, sample_weight=with_value(np.ones(40), 0, np.inf)),
           ValueError, "sample_weight contains infinity"),
    raises("negative-sample_weight",
           lambda: fit(X, Y, sample_weight=with_value(np.ones(40), 2, -1.0)),
           ValueError, r"sample_weight must be non-negative.*-1\.0.*weight 0"),
    raises("zero-sum-sample_weight", lambda: fit(X, Y, sample_weight=np.zeros(40)),
           ValueError, "Sample weights must contain at least one non-zero number"),
    raises("sample_weight-wrong-length", lambda: fit(X, Y, sample_weight=np.ones(3)),
           ValueError, r"sample_weight.shape == \(3,\), expected \(40,\)"),
    handled("sample_weights-of-1e300-act-as-unit-weights",
            lambda: fit(X, Y, sample_weight=np.full(40, 1e300), alpha=0.0),
            close_to(lambda: fit(X, Y, alpha=0.0))),
    handled("sample_weights-of-1e308-act-as-unit-weights",  # their sum overflows
            lambda: fit(X, Y, sample_weight=np.full(40, 1e308), alpha=0.0),
            close_to(lambda: fit(X, Y, alpha=0.0))),
    handled("partial_fit-with-sample_weights-of-1e308",
            lambda: no_runtime_warning(
                lambda: model(alpha=0.0).partial_fit(X, Y, np.full(40, 1e308))),
            close_to(lambda: model(alpha=0.0).partial_fit(X, Y))),
    handled("sample_weights-of-1e-300-act-as-unit-weights",
            lambda: fit(X, Y, sample_weight=np.full(40, 1e-300), alpha=0.0),
            close_to(lambda: fit(X, Y, alpha=0.0))),
    handled("some-zero-sample_weights-drop-those-rows",
            lambda: fit(X, Y, sample_weight=np.r_[np.ones(30), np.zeros(10)]),
            same_as_reference(lambda: fit(X[:30], Y[:30]))),
    # ------------------------------------------------------ types and kinds
    raises("strings-in-X", lambda: fit(np.array([["u", "v"]] * 40), Y), ValueError,
           "X contains non-numeric values such as 'u'.*OneHotEncoder"),
    raises("numeric-strings-mixed-with-words",
           lambda: fit(np.array([["1.5", "2"], ["3", "n/a"]] * 20), Y), ValueError,
           "X contains non-numeric values such as 'n/a'"),
    raises("strings-in-y", lambda: fit(X, np.array(["lo", "hi"] * 20)), ValueError,
           "y contains non-numeric values such as 'lo'.*real-valued target"),
    handled("object-array-of-floats", lambda: fit(X.astype(object), Y),
            same_as_reference(fitted)),
    raises("object-array-with-dict",
           lambda: fit(with_value(X.astype(object), (0, 0), {"a": 1}), Y),
           TypeError, "argument must be a string or a real number"),
    raises("complex-X", lambda: fit(X + 1j, Y), ValueError,
           "Complex data not supported: X.*real and imaginary parts"),
    raises("complex-y", lambda: fit(X, Y + 0j), ValueError,
           "Complex data not supported: y"),
    handled("integer-X-same-as-float", lambda: fit(np.round(X * 10).astype(int), Y),
            same_as_reference(lambda: fit(np.round(X * 10), Y))),
    handled("boolean-X", lambda: fit(X > 0, Y), finite_model),
    handled("nested-lists", lambda: fit(X.tolist(), Y.tolist()),
            same_as_reference(fitted)),
    raises("ragged-nested-lists", lambda: fit([[1.0, 2.0], [3.0]] * 20, Y[:40]),
           ValueError, "X could not be read as a rectangular array.*same length"),
    handled("score-with-column-y-for-1-D-model",
            lambda: fitted().score(X, Y[:, None]),
            lambda s: np.testing.assert_array_equal(s, fitted().score(X, Y))),
    handled("float32-X-trains-in-float32", lambda: fit(X.astype(np.float32), Y),
            float32_model),
    handled("sparse-X", lambda: fit(sp.csr_matrix(X), Y), same_as_dense),
    raises("sparse-y", lambda: fit(X, sp.csr_matrix(Y[:, None])), TypeError,
           r"y is a sparse matrix.*toarray"),
    handled("sparse-X-at-predict", lambda: fitted(), same_on_sparse_input),
    # ------------------------------------------------------------- shapes
    raises("empty-X", lambda: fit(np.empty((0, 2)), np.empty(0)), ValueError,
           r"0 sample\(s\).*minimum of 1"),
    raises("no-features", lambda: fit(np.empty((40, 0)), Y), ValueError,
           r"0 feature\(s\).*minimum of 1"),
    raises("1-D-X", lambda: fit(X[:, 0], Y), ValueError,
           r"^X is 1-D \(shape \(40,\)\), but MDNRegressor needs X of shape "
           r"\(n_samples, n_features\)\. Reshape your data: X\.reshape\(-1, 1\) if "
           r"it holds one feature, X\.reshape\(1, -1\) if it is one sample\.$"),
    raises("1-D-X-as-a-Series", lambda: fit(pd.Series(X[:, 0]), Y), ValueError,
           r"^X is 1-D \(shape \(40,\)\).*X\.reshape\(-1, 1\)"),
    raises("predict-one-sample-as-1-D-X", lambda: fitted().predict(X[0]),
           ValueError, r"^X is 1-D \(shape \(2,\)\).*X\.reshape\(1, -1\) if it "
           r"is one sample"),
    raises("3-D-X", lambda: fit(X.reshape(40, 2, 1), Y), ValueError,
           r"X must have at most 2 dimensions.*reshape\(len\(X\), -1\)"),
    raises("3-D-y", lambda: fit(X, Y.reshape(40, 1, 1)), ValueError,
           r"y must have at most 2 dimensions.*reshape\(len\(y\), -1\)"),
    raises("y-of-different-length", lambda: fit(X, Y[:30]), ValueError,
           r"inconsistent numbers of samples: \[40, 30\]"),
    handled("one-sample", lambda: fit(X[:1], Y[:1]), one_sample),
    raises("one-sample-with-early-stopping",
           lambda: fit(X[:1], Y[:1], early_stopping=True), ValueError,
           "holds out validation_fraction=0.1 of the 1 samples.*needs at least 2 "
           "samples.*early_stopping=False"),
    raises("early-stopping-leaves-no-training-data",
           lambda: fit(X[:2], Y[:2], early_stopping=True, validation_fraction=0.9),
           ValueError, "validation_fraction=0.9 of the 2 samples.*leaves 0 to "
           "train on.*Lower validation_fraction"),
    handled("one-feature", lambda: fit(X[:, :1], Y), one_feature),
    handled("n_components-larger-than-n_samples",
            lambda: fit(X[:5], Y[:5], n_components=12), valid_mixture),
    handled("four-outputs-full-covariance",
            lambda: fit(X, np.column_stack([Y, -Y, Y**2, X[:, 1]]),
                        noise_type="full"), valid_mixture),
    handled("no-hidden-layer-is-a-linear-MDN",
            lambda: fit(X, Y, hidden_layer_sizes=()), linear_means),
    # ----------------------------------------------------- awkward values
    handled("constant-y", lambda: fit(X, np.full(40, 3.0)), constant_target),
    handled("constant-feature", lambda: fit(with_value(X, (slice(None), 1), 5.0), Y),
            constant_feature),
    handled("many-duplicate-points-scale-floor-holds",
            lambda: fit(*DUPLICATES, min_scale=0.01, max_iter=300,
                        learning_rate_init=0.05, hidden_layer_sizes=(4,)),
            scale_floor_holds),
    handled("y-on-scale-1e-8", lambda: fit(X, Y * 1e-8), equivariant(y_factor=1e-8)),
    handled("y-on-scale-1e8", lambda: fit(X, Y * 1e8), equivariant(y_factor=1e8)),
    handled("X-and-y-spread-1e-4-around-1e8",
            lambda: fit(OFFSET + 1e-4 * X, OFFSET + 1e-4 * Y), offset_equivariant),
    handled("X-values-1e30", lambda: fit(X * 1e30, Y), equivariant(x_factor=1e30)),
    handled("X-values-1e200-no-overflow", lambda: fit(X * 1e200, Y),
            equivariant(x_factor=1e200)),
    handled("y-values-1e200-no-overflow", lambda: fit(X, Y * 1e200),
            lambda m: np.testing.assert_allclose(
                m.predict(X), 1e200 * fitted().predict(X), rtol=1e-6)),
    # --------------------------------------------------------------- pandas
    raises("frame-with-categorical-column", lambda: fit(CAT_FRAME, Y), ValueError,
           r"X has non-numeric column\(s\) 'b' \(category\).*OneHotEncoder"),
    raises("frame-with-string-column", lambda: fit(STR_FRAME, Y), ValueError,
           r"X has non-numeric column\(s\) 'b'.*ColumnTransformer"),
    raises("frame-with-missing-values",
           lambda: fit(FRAME.mask(FRAME > 1.5), Y), ValueError,
           "Input X contains NaN"),
    raises("frame-with-pandas-NA", lambda: fit(NA_FRAME, Y), ValueError,
           "Input X contains NaN"),
    raises("frame-with-datetime-column", lambda: fit(TIME_FRAME, Y), ValueError,
           r"X has datetime or timedelta column\(s\) 'b' \(datetime64.*timedelta64"),
    raises("frame-of-datetimes-only", lambda: fit(TIME_FRAME[["b"]], Y), ValueError,
           r"X has datetime or timedelta column\(s\) 'b'"),
    raises("frame-with-timezone-aware-column",
           lambda: fit(TIME_FRAME.assign(b=TIME_FRAME.b.dt.tz_localize("UTC")), Y),
           ValueError, r"X has datetime or timedelta column\(s\) 'b'"),
    raises("datetime-array-X", lambda: fit(TIME_FRAME[["b"]].to_numpy(), Y),
           ValueError, r"X has datetime or timedelta values \(datetime64"),
    raises("timedelta-series-y",
           lambda: fit(X, pd.Series(pd.to_timedelta(np.arange(40), "s"))),
           ValueError, r"y has datetime or timedelta values \(timedelta64"),
    raises("string-series-y", lambda: fit(X, pd.Series(["a"] * 40)), ValueError,
           "y contains non-numeric values.*classifier"),
    raises("columns-reordered-at-predict",
           lambda: fitted_frame().predict(FRAME[["b", "a"]]), ValueError,
           "Feature names must be in the same order as they were in fit"),
    raises("columns-renamed-at-predict",
           lambda: fitted_frame().predict(FRAME.rename(columns={"a": "c"})),
           ValueError, "Feature names unseen at fit time:\n- c"),
    raises("column-missing-at-predict", lambda: fitted_frame().predict(FRAME[["a"]]),
           ValueError, "Feature names seen at fit time, yet now missing:\n- b"),
    handled("ndarray-at-predict-after-frame-fit",
            lambda: predict_warnings(fitted_frame(), X), ndarray_after_frame),
    # ------------------------------------------------- prediction and score
    raises("predict-beyond-float32-range-of-a-float32-model",
           lambda: fit(X.astype(np.float32), Y).predict(
               with_value(X, 4, [1e300, -1e300])),
           ValueError, r"non-finite mixture parameters for 1 row\(s\) of X \(first: "
           r"row 4\).*float32.*precision='float64'"),
    handled("predict-far-outside-training-range-in-float64",
            lambda: fitted().predict_dist(X * 1e300), valid_mixture_of_any),
    raises("predict-before-fit", lambda: model().predict(X), NotFittedError,
           "not fitted yet.*Call 'fit'"),
    raises("predict-wrong-n-features", lambda: fitted().predict(np.c_[X, X]),
           ValueError, "X has 4 features, but MDNRegressor is expecting 2"),
    raises("predict-nan", lambda: fitted().predict(with_value(X, (1, 1), np.nan)),
           ValueError, "Input X contains NaN"),
    raises("predict-inf", lambda: fitted().predict(with_value(X, (2, 0), -np.inf)),
           ValueError, "Input X contains infinity.*isfinite"),
    raises("predict-strings", lambda: fitted().predict(np.array([["a", "b"]])),
           ValueError, "X contains non-numeric values such as 'a'"),
    raises("predict-3-D", lambda: fitted().predict(X[:, :, None]), ValueError,
           "X must have at most 2 dimensions"),
    raises("score-y-wrong-length", lambda: fitted().score(X, Y[:3]), ValueError,
           "y has 3 rows but X has 40"),
    raises("score-without-y", lambda: fitted().score(X, None), ValueError,
           r"y must hold one target per row of X.*got None"),
    raises("score-scalar-y", lambda: fitted().score(X[:1], 1.0), ValueError,
           r"y must hold one target per row of X.*got 1\.0"),
    raises("score-nan-y", lambda: fitted().score(X, with_value(Y, 0, np.nan)),
           ValueError, "y contains NaN or infinity; remove or impute"),
    raises("score-strings-y", lambda: fitted().score(X, np.array(["a"] * 40)),
           ValueError, "y contains non-numeric values such as 'a'"),
    raises("score-two-outputs-for-1-D-model",
           lambda: fitted().score(X, np.c_[Y, Y]), ValueError,
           r"y has shape \(40, 2\), but the model was fitted on a 1-D y: pass y "
           r"of shape \(40,\), one target per row of X\.$"),
    raises("score-1-D-y-for-two-output-model",
           lambda: fit(X, np.c_[Y, -Y]).score(X, Y), ValueError,
           r"y has shape \(40,\), but the model was fitted on y of 2 columns: "
           r"pass y of shape \(40, 2\)"),
    handled("score-weights-of-1e308-act-as-unit-weights",
            lambda: fitted().score(X, Y, sample_weight=np.full(40, 1e308)),
            lambda s: np.testing.assert_allclose(s, fitted().score(X, Y), rtol=1e-15)),
    raises("score-negative-weights",
           lambda: fitted().score(X, Y, sample_weight=-np.ones(40)), ValueError,
           "sample_weight must be non-negative"),
    raises("score-zero-sum-weights",
           lambda: fitted().score(X, Y, sample_weight=np.zeros(40)), ValueError,
           "Sample weights must contain at least one non-zero number"),
    raises("predict_interval-hdr-of-a-two-output-model",
           lambda: fit(X, np.c_[Y, -Y]).predict_interval(X, kind="hdr"), ValueError,
           r"kind='hdr' needs a 1-D target, but the model has 2 outputs: for output "
           r"j use model\.predict_dist\(X\)\.marginal\(j\)\.hdr\(0\.9\)"),
    raises("sample-zero-draws", lambda: fitted().sample(X, 0), ValueError,
           "n_samples must be a positive integer; got 0"),
    raises("sample-fractional-draws", lambda: fitted().sample(X, 2.5), ValueError,
           "n_samples must be a positive integer; got 2.5"),
    # ------------------------------------------ incremental and warm fits
    raises("partial_fit-changes-n_outputs",
           lambda: partial_fit_twice(Y, np.c_[Y, Y]), ValueError,
           r"partial_fit got y with 2 output\(s\).*Keep the shape of y"),
    raises("partial_fit-changes-1-D-to-2-D",
           lambda: partial_fit_twice(Y, Y[:, None]), ValueError,
           r"\(2-D\), but the model was fitted on 1 \(1-D\)"),
    raises("partial_fit-changes-n_features",
           lambda: partial_fit_twice(Y, Y, X2=np.c_[X, X]), ValueError,
           "X has 4 features, but MDNRegressor is expecting 2"),
    raises("warm_start-changes-n_outputs", lambda: warm_refit(np.c_[Y, Y]),
           ValueError, "warm_start=True continues a model fitted on 1 outputs"),
    # -------------------------------------- every constructor parameter
    invalid_param("n_components", 0),
    invalid_param("n_components", 2.5),
    *[
        raises(f"param-{name}-bool", lambda n=name: fit(X, Y, **{n: True}),
               ValueError, f"The '{name}' parameter of MDNRegressor must be an "
               "int, not a bool; got True")
        for name in ("n_components", "batch_size", "max_iter", "n_iter_no_change",
                     "n_threads")
    ],
    raises("param-hidden_layer_sizes-bool",
           lambda: fit(X, Y, hidden_layer_sizes=(True, 8)), ValueError,
           "must be a positive integer or a sequence of positive integers"),
    invalid_param("noise_type", "spherical"),
    invalid_param("fixed_noise_level", -1.0, noise_type="fixed"),
    invalid_param("fixed_noise_level", 0.0, noise_type="fixed"),
    raises("fixed-noise-without-level", lambda: fit(X, Y, noise_type="fixed"),
           ValueError, "noise_type='fixed' needs fixed_noise_level.*e.g."),
    invalid_param("point_estimate", "median"),
    invalid_param("hidden_layer_sizes", "64"),
    raises("param-hidden_layer_sizes-zero-width",
           lambda: fit(X, Y, hidden_layer_sizes=(8, 0)), ValueError,
           r"hidden_layer_sizes=\(8, 0\) must be a positive integer or a sequence"),
    raises("param-hidden_layer_sizes-fractional",
           lambda: fit(X, Y, hidden_layer_sizes=(8.5,)), ValueError,
           "must be a positive integer or a sequence of positive integers"),
    raises("param-hidden_layer_sizes-nested",
           lambda: fit(X, Y, hidden_layer_sizes=[[8]]), ValueError,
           r"e.g. \(64, 64\)"),
    invalid_param("activation", "sigmoid"),
    invalid_param("alpha", -1.0),
    invalid_param("alpha", np.inf),
    invalid_param("batch_size", 0),
    invalid_param("batch_size", "all"),
    invalid_param("learning_rate_init", 0.0),
    invalid_param("learning_rate_init", np.nan),
    invalid_param("max_iter", 0),
    invalid_param("tol", -1.0),
    invalid_param("n_iter_no_change", 0),
    invalid_param("early_stopping", "yes"),
    invalid_param("validation_fraction", 1.0),
    invalid_param("min_scale", -1e-3),
    invalid_param("min_scale", np.inf),
    invalid_param("standardize", "no"),
    invalid_param("precision", "float16"),
    invalid_param("device", 0),
    raises("param-device-unknown", lambda: fit(X, Y, device="gpu"), ValueError,
           "device='gpu' is not understood. Use 'auto', 'cpu', 'cuda'"),
    raises("param-device-malformed-index", lambda: fit(X, Y, device="cuda:x"),
           ValueError, "device='cuda:x' is not understood"),
    pytest.param(
        raises("param-device-cuda-unavailable", lambda: fit(X, Y, device="cuda"),
               ValueError, "device='cuda' was requested but is not available.*"
               "device='cpu'"),
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present"),
    ),
    invalid_param("random_state", "seed"),
    invalid_param("verbose", "loud"),
    invalid_param("warm_start", None),
    # ------------------ inference reads point_estimate and n_threads itself
    set_after_fit("point_estimate", "Mode", "predict"),  # was the mean
    set_after_fit("point_estimate", "median", "predict"),
    set_after_fit("n_threads", 0, "predict"),
    set_after_fit("n_threads", 2.5, "score"),
    set_after_fit("n_threads", -1, "predict_dist"),
    # ----------- a partial_fit that continues a model validates like the first
    set_after_fit("alpha", np.nan, "partial_fit"),  # warned: lower the rate
    set_after_fit("alpha", -1.0, "partial_fit"),  # trained with it
    set_after_fit("batch_size", 0, "partial_fit"),  # torch's RuntimeError
]  # fmt: skip


def _id(case):
    return case.id if isinstance(case, Case) else None


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_bad_input(case: Case):
    if case.error is not None:
        with pytest.raises(case.error, match=re.compile(case.match, re.DOTALL)):
            case.run()
    else:
        result = case.run()
        case.check(result)


def test_catalogue_is_large_and_unique():
    ids = [c.id if isinstance(c, Case) else c.values[0].id for c in CASES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)


# ------------------------------------------- device strings and seeds (helpers)
def test_device_resolution_without_accelerators(monkeypatch):
    from skmdn import _utils

    monkeypatch.setattr(_utils, "_cuda_available", lambda: False)
    monkeypatch.setattr(_utils, "_mps_available", lambda: False)
    assert _utils.resolve_device("auto").type == "cpu"
    assert _utils.resolve_device("cpu").type == "cpu"
    for device in ("cuda", "cuda:1", "mps"):
        with pytest.raises(ValueError, match=f"device='{device}' was requested"):
            _utils.resolve_device(device)
        with pytest.warns(RuntimeWarning, match="moved to the CPU"):
            assert _utils.resolve_device(device, fallback=True).type == "cpu"
    for device in ("gpu", "cuda:", "CUDA", 0, None):
        with pytest.raises(ValueError, match="is not understood"):
            _utils.resolve_device(device)


def test_device_resolution_with_accelerators(monkeypatch):
    from skmdn import _utils

    monkeypatch.setattr(_utils, "_cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    # 'cuda' is pinned to the GPU current at fit time, where the network goes
    assert _utils.resolve_device("auto") == torch.device("cuda:1")
    assert _utils.resolve_device("cuda") == torch.device("cuda:1")
    assert _utils.resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="device='cuda:2' was requested"):
        _utils.resolve_device("cuda:2")
    monkeypatch.setattr(_utils, "_cuda_available", lambda: False)
    monkeypatch.setattr(_utils, "_mps_available", lambda: True)
    assert _utils.resolve_device("auto") == torch.device("mps")
    assert _utils.resolve_device("mps") == torch.device("mps")
    mps = torch.device("mps")
    with pytest.warns(RuntimeWarning, match="MPS does not support float64"):
        assert _utils.resolve_dtype("float64", np.dtype(np.float64), mps) == (
            torch.float32
        )


def test_seeds_from_every_kind_of_random_state():
    from skmdn._utils import seed_from_random_state

    assert seed_from_random_state(5) == 5
    assert seed_from_random_state(-1) == 2**63 - 1
    a = seed_from_random_state(np.random.RandomState(0))
    assert a == seed_from_random_state(np.random.RandomState(0))
    b = seed_from_random_state(np.random.default_rng(0))
    assert b == seed_from_random_state(np.random.default_rng(0))
    assert seed_from_random_state(None) != seed_from_random_state(None)
    with pytest.raises(ValueError, match="cannot be used to seed; pass None, an int"):
        seed_from_random_state("seed")


# ---------------------- assume_finite=True: sklearn's finiteness checks are off
NAN_ROW0 = with_value(X, (0, 1), np.nan)
INF_ROW0 = with_value(X, (0, 0), np.inf)
NAN_W = with_value(np.ones(40), 0, np.nan)
INF_W = with_value(np.ones(40), 3, np.inf)
UNCHECKED = [
    ("fit-nan-X", lambda: fit(NAN_ROW0, Y), r"X contains NaN.*column 1"),
    ("fit-inf-X", lambda: fit(INF_ROW0, Y), r"X contains NaN or infinity"),
    ("fit-nan-y", lambda: fit(X, with_value(Y, 5, np.nan)), r"y contains NaN"),
    ("fit-nan-weight", lambda: fit(X, Y, NAN_W), "sample_weight contains NaN"),
    ("fit-inf-weight", lambda: fit(X, Y, INF_W), "sample_weight contains NaN"),
    ("predict-nan-X", lambda: fitted().predict(NAN_ROW0), r"1 row\(s\) \(first: row 0"),
    ("score-nan-X", lambda: fitted().score(NAN_ROW0, Y), r"X contains NaN or infinity"),
    ("score-nan-weight", lambda: fitted().score(X, Y, NAN_W), "sample_weight contains"),
]  # fmt: skip


@pytest.mark.parametrize(
    "run, match", [c[1:] for c in UNCHECKED], ids=[c[0] for c in UNCHECKED]
)
def test_non_finite_input_under_assume_finite_is_named(run, match):
    # Regression: with sklearn.set_config(assume_finite=True), NaN in X or y
    # reached training, whose first epoch failed advising a lower learning
    # rate; a NaN weight silently dropped its row from fit and made score NaN;
    # predict blamed "inputs far outside the training data".
    fitted()  # fitted outside the context, on clean data
    with sklearn.config_context(assume_finite=True):
        with pytest.raises(ValueError, match=f"(?s){match}.*assume_finite=True"):
            run()


def test_values_near_the_float64_limit_raise_no_runtime_warning():
    # Regression: scikit-learn's fast finiteness check sums X (and y); finite
    # values near 1.8e308 of both signs overflow that sum to inf - inf, and
    # every fit, predict and score warned "invalid value encountered in
    # reduce" about valid data. The fit itself is exact: it matches the one
    # on unit-scale values (the statistics rescale by powers of two).
    factor = 1.7e308 / max(np.abs(X).max(), np.abs(Y).max())  # |X| up to 1.7e308
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # few epochs
        m = model().fit(X * factor, Y * factor)
        np.testing.assert_allclose(
            m.predict(X * factor) / factor, fitted().predict(X), rtol=1e-6
        )
        score = m.score(X * factor, Y * factor)
    assert score == pytest.approx(fitted().score(X, Y) - math.log(factor), rel=1e-9)


def test_all_zero_sample_weights_are_rejected_before_scikit_learn_1_9(monkeypatch):
    # Regression: scikit-learn rejects all-zero weights itself only from 1.9
    # on; with 1.6-1.8 (which setup.cfg allows) fit crashed in torch's amax
    # and score in numpy's ZeroDivisionError. Emulate such a version.
    from skmdn import _utils

    def old_check(sample_weight, X, dtype=None):  # finite, shape; zeros pass
        return np.asarray(sample_weight, dtype=dtype)

    reference = fitted()
    monkeypatch.setattr(_utils, "_check_sample_weight", old_check)
    match = "Sample weights must contain at least one non-zero number"
    for call in (
        lambda: fit(X, Y, sample_weight=np.zeros(40)),
        lambda: model().partial_fit(X, Y, sample_weight=np.zeros(40)),
        lambda: reference.score(X, Y, sample_weight=np.zeros(40)),
    ):
        with pytest.raises(ValueError, match=match):
            call()
    assert reference.score(X, Y, sample_weight=np.ones(40)) == reference.score(X, Y)


def _sine(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 1))
    return X, np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=n)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_constant_target_column_is_named_and_its_score_is_the_floors():
    """A constant y column fitted without a word: its density is a point
    mass, the scales sink to the min_scale floor and score rises with
    training, reflecting the floor, not the data. It is named at fit, with
    the floor; its density approaches the floor's peak, log N(0 | 0,
    min_scale) (scipy). Not named: a column whose standard deviation is
    exactly 1 (the scale a constant column is given), and a one-row fit,
    where every column is one value."""
    X, y = _sine(400)
    Y = np.column_stack([y, np.full(400, 3.0)])
    match = r"y column 1 is constant \(every training value is 3\).*min_scale = 0\.01 "
    with pytest.warns(UserWarning, match=match) as record:
        m = MDNRegressor(min_scale=0.01, max_iter=60, random_state=0).fit(X, Y)
    assert record[0].filename == __file__
    assert not any("y column 0" in str(r.message) for r in record)
    peak = stats.norm.logpdf(0.0, scale=0.01)
    column = m.predict_dist(X).marginal(1).logpdf(np.full(400, 3.0))
    assert peak - 1.0 < column.mean() <= peak
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*is constant")
        # std exactly 1 and mean 0: the statistics of a constant column
        MDNRegressor(max_iter=2, random_state=0).fit(X, np.tile([-1.0, 1.0], 200))
        MDNRegressor(max_iter=2).fit(X[:1], [3.0])


@pytest.mark.parametrize("where", ["X", "y"])
def test_a_few_extreme_values_that_dominate_the_scale_are_named(where):
    # Regression: one value of 1e6 among 2000 of spread 1 made the internal
    # standardisation squeeze every other row into a range of 3e-5: the
    # held-out score fell from 0.875 to -0.80 (in X) or -5.5 (in y, where
    # min_scale then floors the scales at 22 against noise of 0.1), silently.
    X, y = _sine()
    X_test, y_test = _sine(5000, seed=1)
    clean = MDNRegressor(random_state=0).fit(X, y)
    X, y = X.copy(), y.copy()
    (X if where == "X" else y)[0] = 1e6
    match = rf"{where} column 0: its standard deviation \(2\.24e\+04\) is \d+ times"
    with pytest.warns(UserWarning, match=match) as record:
        bad = MDNRegressor(random_state=0).fit(X, y)
    assert record[0].filename == __file__  # points at the user's line
    assert bad.score(X_test, y_test) < clean.score(X_test, y_test) - 1.0


# a one-epoch fit on outlier-dominated data: only the dominated-column
# warning is under test, not how training went
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_dominated_warning_states_the_spread_it_compares_with():
    # The warning said "N times the spread of its central 90 %", but N is
    # the ratio to (q95 - q05) / 3.29 (a normal's standard deviation), 3.29
    # times the spread itself: it now names that value, checked here against
    # numpy's quantiles and the standard deviation.
    X, y = _sine()
    y = y.copy()
    y[0] = 1e6
    with pytest.warns(UserWarning, match="y column 0") as record:
        MDNRegressor(max_iter=1, random_state=0).fit(X, y)
    message = str(record[0].message)
    std, ratio, robust = (
        float(v)
        for v in re.search(r"\((\S+)\) is (\d+) times the (\S+) that", message).groups()
    )
    q05, q95 = np.quantile(y, [0.05, 0.95])
    assert robust == pytest.approx((q95 - q05) / 3.29, rel=0.02)
    assert std == pytest.approx(y.std(), rel=5e-3)  # 3 digits
    assert ratio == pytest.approx(std / robust, rel=0.02)


# a one-epoch fit on outlier-dominated data: only the dominated-column
# warning is under test, not how training went
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_dominated_warning_names_the_floor_only_where_there_is_one():
    # noise_type='fixed' has no min_scale floor (its scale is given in target
    # units), but the warning said the scales were floored at min_scale * std.
    X, y = _sine(300)
    y = y.copy()
    y[0] = 1e6
    for kwargs, floored in (({}, True), ({"noise_type": "fixed"}, False)):
        model = MDNRegressor(max_iter=1, random_state=0, **kwargs)
        if not floored:
            model.set_params(fixed_noise_level=0.1)
        with pytest.warns(UserWarning, match="y column 0") as record:
            model.fit(X, y)
        message = next(str(r.message) for r in record if "y column" in str(r.message))
        assert ("floored at min_scale" in message) == floored


def test_rare_categories_and_heavy_tails_are_not_called_dominated():
    # Columns whose central 90 % is one value (a rare one-hot level, a
    # zero-inflated target) have no spread to squeeze; Student-t noise with 2
    # degrees of freedom is heavy-tailed, not dominated (ratio about 1.3).
    rng = np.random.default_rng(0)
    X = np.column_stack(
        [rng.uniform(size=2000), rng.uniform(size=2000) < 0.002, rng.normal(size=2000)]
    )
    y_zero_inflated = np.where(rng.uniform(size=2000) < 0.97, 0.0, 1e4)
    y_t2 = X[:, 0] + 0.1 * rng.standard_t(2, size=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # two epochs
        for y in (y_zero_inflated, y_t2):
            MDNRegressor(max_iter=2, random_state=0).fit(X, y)


@pytest.mark.parametrize(
    ("dtype", "tiny", "fine"),
    [(np.float64, 1e-320, 1e-300), (np.float32, 1e-300, 1e-40)],
    ids=["float64", "float32"],
)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_weights_too_small_for_the_l2_penalty_get_a_clear_error(
    dtype, tiny, fine, method
):
    # alpha / sum(sample_weight) overflowed the training dtype: training then
    # failed with "the training loss became non-finite ... lower
    # learning_rate_init", which says nothing of the weights.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 1)).astype(dtype)
    y = X[:, 0] + 0.1 * rng.normal(size=30)
    model = MDNRegressor(max_iter=2, random_state=0)
    with pytest.raises(ValueError, match=r"sample_weight sums to .* overflows") as e:
        getattr(model, method)(X, y, sample_weight=np.full(30, tiny))
    assert "sample_weight / sample_weight.mean()" in str(e.value)
    assert not hasattr(model, "network_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        getattr(model, method)(X, y, sample_weight=np.full(30, fine))  # finite: fits
        # alpha=0 has no penalty to overflow
        model.set_params(alpha=0.0)
        getattr(clone(model), method)(X, y, sample_weight=np.full(30, tiny))

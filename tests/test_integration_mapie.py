"""MAPIE's conformal regressors wrap MDNRegressor (mean predictions)."""

import numpy as np
import pytest

from skmdn import MDNRegressor

mapie_regression = pytest.importorskip(
    "mapie.regression", reason="mapie is not installed"
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (n, 1))
    y = np.sin(X[:, 0]) + (0.1 + 0.2 * np.abs(X[:, 0])) * rng.normal(size=n)
    return X, y


def _model():
    return MDNRegressor(
        n_components=2,
        hidden_layer_sizes=(16,),
        learning_rate_init=1e-2,
        max_iter=40,
        random_state=0,
    )


def test_split_conformal_interval_has_nominal_coverage():
    X_train, y_train = _data(400, 0)
    X_cal, y_cal = _data(600, 1)
    X_test, y_test = _data(3000, 2)
    mdn = _model().fit(X_train, y_train)
    scr = mapie_regression.SplitConformalRegressor(
        mdn, confidence_level=0.9, prefit=True
    )
    scr.conformalize(X_cal, y_cal)
    pred, intervals = scr.predict_interval(X_test)
    lower, upper = intervals[:, 0, 0], intervals[:, 1, 0]
    assert np.all(lower <= pred) and np.all(pred <= upper)
    # The point prediction is the wrapped MDN's conditional mean.
    np.testing.assert_allclose(pred, mdn.predict(X_test))
    # Split conformal: E[coverage] in [0.9, 0.9 + 1/(n_cal + 1)]; with 3000
    # test and 600 calibration points the realised coverage is within +-0.04
    # (about 3 standard deviations).
    coverage = np.mean((y_test >= lower) & (y_test <= upper))
    assert abs(coverage - 0.9) < 0.04
    # The absolute-residual score gives a constant half-width: the
    # ceil((n + 1) * 0.9)-th smallest calibration residual (n = 600).
    residuals = np.sort(np.abs(y_cal - mdn.predict(X_cal)))
    q = residuals[int(np.ceil(601 * 0.9)) - 1]
    np.testing.assert_allclose((upper - lower) / 2, q, rtol=1e-9)


def test_cross_conformal_runs_with_mdn():
    X, y = _data(300, 3)
    X_test, y_test = _data(2000, 4)
    ccr = mapie_regression.CrossConformalRegressor(
        _model(), confidence_level=0.8, cv=3, method="plus", random_state=0
    )
    ccr.fit_conformalize(X, y)
    _, intervals = ccr.predict_interval(X_test)
    coverage = np.mean((y_test >= intervals[:, 0, 0]) & (y_test <= intervals[:, 1, 0]))
    # CV+ guarantees at least 1 - 2 alpha = 0.6; in practice close to 0.8.
    assert 0.7 < coverage < 0.9


def test_split_conformal_fits_the_mdn_itself():
    X, y = _data(300, 5)
    scr = mapie_regression.SplitConformalRegressor(
        _model(), confidence_level=0.9, prefit=False
    )
    scr.fit(X[:200], y[:200]).conformalize(X[200:], y[200:])
    pred, intervals = scr.predict_interval(X)
    assert np.isfinite(intervals).all() and pred.shape == (300,)

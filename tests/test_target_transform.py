"""MDNRegressor(target_transform=...): positive and skewed targets.

The log-likelihoods are checked through an exact identity: a model fitted with
``target_transform='log'`` trains the same network, bit for bit, as a model
fitted on ``log y``, so its scores differ by the Jacobian alone. Recovery is
checked on log-normal data with known parameters.
"""

import warnings

import joblib
import numpy as np
import pytest
from scipy import stats
from sklearn.model_selection import GridSearchCV

from skmdn import GaussianMixture, MDNRegressor, TransformedMixture
from skmdn.metrics import crps, interval_coverage, nll, pit


def lognormal_data(n, seed=0):
    """``log y ~ N(0.5 + x, (0.2 + 0.5 x)^2)``, x ~ U(0, 1): right skew that
    grows with x."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    mu, s = 0.5 + x, 0.2 + 0.5 * x
    y = np.exp(mu + s * rng.normal(size=n))
    return x[:, None], y, stats.lognorm(s, scale=np.exp(mu))


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = lognormal_data(2000)
    model = MDNRegressor(target_transform="log", random_state=0).fit(X, y)
    return model, X, y


@pytest.mark.parametrize(
    ("early_stopping", "weighted"), [(False, False), (False, True), (True, False)]
)
def test_scores_differ_from_a_fit_on_log_y_by_the_jacobian_alone(
    early_stopping, weighted
):
    X, y, _ = lognormal_data(600, seed=1)
    w = np.random.default_rng(2).integers(1, 4, len(y)) if weighted else None
    params = dict(max_iter=15, random_state=0, early_stopping=early_stopping)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter: ConvergenceWarning
        on_y = MDNRegressor(target_transform="log", **params).fit(X, y, w)
        on_z = MDNRegressor(**params).fit(X, np.log(y), w)
    assert on_y.n_iter_ == on_z.n_iter_
    for a, b in zip(
        on_y.network_.parameters(), on_z.network_.parameters(), strict=True
    ):
        assert a.equal(b)  # the same network, bit for bit
    jacobian = np.average(np.log(y), weights=w)  # -log |dz / dy|, averaged
    assert on_y.score(X, y, w) == pytest.approx(on_z.score(X, np.log(y), w) - jacobian)
    # the training curve is the NLL of y (all rows train without a split)
    if not early_stopping:
        np.testing.assert_allclose(
            on_y.loss_curve_, np.add(on_z.loss_curve_, jacobian), rtol=1e-12
        )
    else:  # validation scores: the held-out rows' own Jacobian
        shift = np.subtract(on_z.validation_scores_, on_y.validation_scores_)
        assert np.ptp(shift) < 1e-9
        assert np.log(y).min() < shift[0] < np.log(y).max()
    dist = on_y.predict_dist(X)
    assert isinstance(dist, TransformedMixture)
    np.testing.assert_array_equal(dist.base.means, on_z.predict_dist(X).means)
    np.testing.assert_allclose(on_y.score(X, y), np.mean(dist.logpdf(y)), rtol=1e-12)
    assert nll(y, dist) == pytest.approx(-on_y.score(X, y))


def test_several_outputs_with_correlated_log_normal_noise():
    rng = np.random.default_rng(5)
    n = 1500
    X = rng.uniform(0.0, 1.0, (n, 1))
    z = rng.multivariate_normal([0.0, 0.0], [[0.16, 0.12], [0.12, 0.25]], n)
    Y = np.exp(z + np.column_stack([X[:, 0], 1.0 - X[:, 0]]))
    model = MDNRegressor(noise_type="full", target_transform="log", random_state=0)
    model.fit(X, Y)
    dist = model.predict_dist(X[:400])
    assert dist.n_outputs == 2 and not dist.univariate
    np.testing.assert_allclose(
        model.score(X[:400], Y[:400]), np.mean(dist.logpdf(Y[:400])), rtol=1e-12
    )
    # the joint density carries both outputs' Jacobians
    z_dist = dist.base.logpdf(np.log(Y[:400]))
    np.testing.assert_allclose(
        dist.logpdf(Y[:400]), z_dist - np.log(Y[:400]).sum(1), rtol=1e-12
    )
    draws = model.sample(X[:3], 5, random_state=0)
    assert draws.shape == (3, 5, 2) and draws.min() > 0.0
    # the correlation of log y is learned (0.12 / sqrt(0.16 * 0.25) = 0.6)
    cov = dist.base.cov()
    corr = cov[:, 0, 1] / np.sqrt(cov[:, 0, 0] * cov[:, 1, 1])
    assert np.median(corr) == pytest.approx(0.6, abs=0.1)


def test_recovers_a_log_normal_and_beats_the_untransformed_fit():
    X, y, _ = lognormal_data(4000)
    X_test, y_test, truth = lognormal_data(20000, seed=1)
    best = truth.logpdf(y_test).mean()
    logged = MDNRegressor(target_transform="log", random_state=0).fit(X, y)
    plain = MDNRegressor(random_state=0).fit(X, y)
    excess = best - logged.score(X_test, y_test)
    assert excess < 0.02  # 0.0055 here, 0.0236 without the transform
    assert excess < best - plain.score(X_test, y_test)
    # no probability below 0 (the untransformed mixture puts some there)
    assert np.all(logged.predict_dist(X_test).cdf(np.zeros(len(y_test))) == 0.0)
    # one component: its parameters on the log scale are those of the truth
    one = MDNRegressor(n_components=1, target_transform="log", random_state=0)
    base = one.fit(X, y).predict_dist(X_test).base
    mu, s = 0.5 + X_test[:, 0], 0.2 + 0.5 * X_test[:, 0]

    def rms(error):
        return np.sqrt(np.mean(np.square(error)))

    # root mean square errors 0.024, 0.020 and 3.3 % here
    assert rms(base.means[:, 0, 0] - mu) < 0.05
    assert rms(base.scales[:, 0, 0] - s) < 0.04
    assert rms(one.predict(X_test) / truth.mean() - 1.0) < 0.06


def test_point_estimates_intervals_and_samples_come_from_the_distribution(fitted):
    model, X, _ = fitted
    X = X[:50]
    dist = model.predict_dist(X)
    np.testing.assert_array_equal(model.predict(X), dist.mean())
    _, std = model.predict(X, return_std=True)
    np.testing.assert_array_equal(std, dist.std())
    for estimate in ("mode", "approx_mode"):
        other = MDNRegressor(**{**model.get_params(), "point_estimate": estimate})
        other.__dict__.update(
            {k: v for k, v in model.__dict__.items() if k.endswith("_") or k[0] == "_"}
        )
        np.testing.assert_array_equal(other.predict(X), getattr(dist, estimate)())
    np.testing.assert_array_equal(model.predict_interval(X, 0.8), dist.interval(0.8))
    np.testing.assert_array_equal(
        model.predict_quantiles(X, [0.1, 0.5]), dist.quantile([0.1, 0.5])
    )
    draws = model.sample(X, 7, random_state=3)
    np.testing.assert_array_equal(draws, dist.sample(7, random_state=3))
    assert draws.min() > 0.0
    with pytest.raises(ValueError, match="kind='central'"):
        model.predict_interval(X, kind="hdr")


def test_calibrated_intervals_and_pit_on_held_out_data(fitted):
    model, _, _ = fitted
    X_test, y_test, _ = lognormal_data(5000, seed=2)
    dist = model.predict_dist(X_test)
    assert interval_coverage(y_test, dist, 0.9) == pytest.approx(0.9, abs=0.02)
    u = pit(y_test, dist)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    with pytest.raises(ValueError, match="crps needs a GaussianMixture"):
        crps(y_test, dist)


def test_plots_show_the_components_on_the_scale_of_y(fitted):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import LineCollection, PolyCollection

    from skmdn.plotting import plot_conditional_density, plot_mixture_means

    model, _, _ = fitted
    x = np.linspace(0.0, 1.0, 30)
    base = model.predict_dist(x[:, None]).base
    ax = plot_mixture_means(model, x)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    for k, (line, band) in enumerate(zip(lines, bands, strict=True)):
        starts = np.array([segment[0] for segment in line.get_segments()])
        np.testing.assert_allclose(starts[:, 1], np.exp(base.means[:-1, k, 0]))
        lows = np.array([path.vertices[0, 1] for path in band.get_paths()])
        low = base.means[:-1, k, 0] - 2 * base.scales[:-1, k, 0]
        np.testing.assert_allclose(lows, np.exp(low))
    ax = plot_conditional_density(model, x=x)
    assert ax.get_ylim()[1] >= np.exp(base.means + 2 * base.scales).max()
    matplotlib.pyplot.close("all")


def test_log1p_takes_zeros_and_log_says_so():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (300, 1))
    counts = rng.poisson(np.exp(1.0 + X[:, 0])).astype(float)
    assert (counts == 0).any()
    with pytest.raises(ValueError, match=r"needs every target > 0.*'log1p'"):
        MDNRegressor(target_transform="log").fit(X, counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MDNRegressor(target_transform="log1p", max_iter=20).fit(X, counts)
    dist = model.predict_dist(X[:5])
    assert np.all(dist.cdf(np.full(5, -1.0)) == 0.0)
    assert np.all(dist.pdf(np.zeros(5)) > 0.0)
    with pytest.raises(ValueError, match=r"needs every target > -1"):
        MDNRegressor(target_transform="log1p").fit(X, counts - 2.0)
    # in score an impossible target has likelihood 0
    assert model.score(X[:2], [-1.5, 1.0]) == -np.inf


def test_continuing_a_model_keeps_its_transform(fitted, tmp_path):
    model, X, y = fitted
    joblib.dump(model, tmp_path / "model.joblib")
    warm = joblib.load(tmp_path / "model.joblib")
    warm.set_params(warm_start=True, target_transform=None, max_iter=2)
    with pytest.raises(ValueError, match="target_transform='log' to None"):
        warm.fit(X, y)
    with pytest.raises(ValueError, match="target_transform='log' to None"):
        warm.partial_fit(X, y)
    # a streamed model keeps it
    stream = MDNRegressor(target_transform="log", random_state=0)
    for rows in np.array_split(np.arange(len(y)), 4):
        stream.partial_fit(X[rows], y[rows])
    assert isinstance(stream.predict_dist(X[:3]), TransformedMixture)


def test_a_pickled_model_predicts_the_same(fitted, tmp_path):
    model, X, y = fitted
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    assert isinstance(loaded.predict_dist(X[:5]), TransformedMixture)
    assert loaded.score(X, y) == model.score(X, y)
    np.testing.assert_array_equal(loaded.predict(X[:20]), model.predict(X[:20]))
    # a model pickled before target_transform existed predicts untransformed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter: ConvergenceWarning
        old = MDNRegressor(max_iter=3, random_state=0).fit(X, y)
    del old._target_transform
    joblib.dump(old, tmp_path / "old.joblib")
    old = joblib.load(tmp_path / "old.joblib")
    assert isinstance(old.predict_dist(X[:5]), GaussianMixture)
    assert old.score(X, y) == pytest.approx(np.mean(old.predict_dist(X).logpdf(y)))


def test_grid_search_over_the_transform_picks_the_log_normal():
    X, y, _ = lognormal_data(1500, seed=4)
    search = GridSearchCV(
        MDNRegressor(random_state=0, max_iter=100),
        {"target_transform": [None, "log"]},
        cv=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    assert search.best_params_ == {"target_transform": "log"}

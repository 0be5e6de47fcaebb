"""skmdn.metrics against independent implementations, and the estimator's
distribution API on a known synthetic truth."""

import warnings

import numpy as np
import properscoring
import pytest
import scoringrules
from scipy import integrate, stats
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skmdn import GaussianMixture, HighestDensityRegion, MDNRegressor
from skmdn import metrics as metrics_module
from skmdn.metrics import (
    crps,
    crps_values,
    interval_coverage,
    interval_width,
    make_coverage_scorer,
    make_width_scorer,
    neg_crps_scorer,
    neg_nll_scorer,
    nll,
    pit,
)

from .conftest import make_inverse_sine


def random_mixture(seed, n=50, K=4, d=1):
    rng = np.random.default_rng(seed)
    log_w = np.log(rng.dirichlet(np.ones(K), n))
    means = 3 * rng.normal(size=(n, K, d))
    scales = 10.0 ** rng.uniform(-2, 1, size=(n, K, d))
    return GaussianMixture(log_w, means, scales=scales, univariate=d == 1)


def test_crps_matches_scoringrules_and_properscoring():
    dist = random_mixture(0)
    y = dist.sample(1, random_state=1)[:, 0] + np.random.default_rng(2).normal(size=50)
    ours = crps_values(y, dist)
    ref = scoringrules.crps_mixnorm(
        y, dist.means[..., 0], dist.scales[..., 0], dist.weights, backend="numpy"
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-10)
    one = GaussianMixture(
        np.zeros((50, 1)), dist.means[:, :1], scales=dist.scales[:, :1], univariate=True
    )
    np.testing.assert_allclose(
        crps_values(y, one),
        properscoring.crps_gaussian(y, dist.means[:, 0, 0], dist.scales[:, 0, 0]),
        rtol=1e-10,
    )
    assert crps(y, dist) == pytest.approx(ours.mean())


def test_crps_in_blocks_of_rows_matches_scoringrules(monkeypatch):
    # crps_values runs on blocks of rows (the pair terms take K^2 values per
    # row); blocks of three of the 50 flat rows (25 rows, 2 outputs) give
    # scoringrules' values for each output's marginal.
    monkeypatch.setattr(metrics_module, "_CRPS_BLOCK_VALUES", 3 * 4 * 4)
    dist = random_mixture(6, n=25, d=2)
    y = np.random.default_rng(7).normal(size=(25, 2)) * 3
    ours = crps_values(y, dist)
    for j in range(2):
        ref = scoringrules.crps_mixnorm(
            y[:, j], dist.means[..., j], dist.scales[..., j], dist.weights,
            backend="numpy",
        )  # fmt: skip
        np.testing.assert_allclose(ours[:, j], ref, rtol=1e-10)


def test_crps_is_the_integral_of_the_squared_cdf_difference():
    # The definition, integrated numerically: independent of any formula.
    dist = random_mixture(3, n=4)
    y = np.array([-1.0, 0.5, 2.0, 7.0])
    for i in range(4):
        row = dist[i]

        def below(t, row=row):
            return row.cdf(np.array([t]))[0] ** 2

        def above(t, row=row):
            return (1 - row.cdf(np.array([t]))[0]) ** 2

        ref = integrate.quad(below, -np.inf, y[i])[0]
        ref += integrate.quad(above, y[i], np.inf)[0]
        assert crps_values(y[i : i + 1], row)[0] == pytest.approx(ref, rel=1e-7)


@pytest.mark.parametrize("exponent", [-600, 600])
def test_crps_of_scales_beyond_1e154_scales_with_the_units(exponent):
    # Regression: the closed form squares the scales, which overflowed
    # (CRPS NaN) or underflowed (CRPS of a point mass) beyond about 1e+-154.
    # CRPS is in target units: in units 2**600 apart it is 2**600 apart.
    dist, c = random_mixture(5, n=20), 2.0**exponent
    y = dist.sample(1, random_state=6)[:, 0]
    far = GaussianMixture(
        dist.log_weights, dist.means * c, scales=dist.scales * c, univariate=True
    )
    np.testing.assert_allclose(
        crps_values(y * c, far) / c, crps_values(y, dist), rtol=1e-12
    )


def test_crps_of_point_masses_is_the_integral_of_the_squared_cdf_gap():
    # Regression: E|X| of a point mass (variance 0) at distance 0 was 0 / 0,
    # so CRPS was NaN whenever y sat on a point mass or the mixture had one
    # (tempered(scale_temperature=0), whose cdf and ppf step there). The
    # reference is the definition, the integral of (F(x) - [x >= y])^2.
    dist = GaussianMixture(
        np.log([[0.3, 0.7], [0.5, 0.5]]),
        np.array([[[0.0], [2.0]], [[5.0], [-1.0]]]),
        np.array([[[0.0], [1.0]], [[0.0], [0.0]]]),
        univariate=True,
    )
    y = np.array([0.0, 5.0])
    for i in range(2):
        w, mu, s = np.exp(dist.log_weights[i]), dist.means[i, :, 0], dist.scales[i]

        def gap(x, i=i, w=w, mu=mu, s=s[:, 0]):
            F = sum(
                wk * (stats.norm.cdf(x, m, sk) if sk > 0 else float(x >= m))
                for wk, m, sk in zip(w, mu, s, strict=True)
            )
            return (F - float(x >= y[i])) ** 2

        ref = integrate.quad(gap, -20, 20, points=[-1, 0, 2, 5], limit=200)[0]
        assert crps_values(y[i : i + 1], dist[i : i + 1])[0] == pytest.approx(
            ref, rel=1e-7
        )


def test_multi_output_metrics_are_marginal():
    dist = random_mixture(4, n=20, d=2)
    y = np.random.default_rng(5).normal(size=(20, 2))
    values = crps_values(y, dist)
    assert values.shape == (20, 2)
    for j in range(2):
        np.testing.assert_allclose(values[:, j], crps_values(y[:, j], dist.marginal(j)))
    np.testing.assert_allclose(crps(y, dist, multioutput="raw_values"), values.mean(0))
    # PIT of output j is the marginal CDF of output j at y[:, j]: by scipy,
    # sum_k w_k Phi((y_j - mu_kj) / s_kj)
    u = pit(y, dist)
    assert u.shape == (20, 2)
    reference = np.einsum(
        "nk,nkj->nj",
        dist.weights,
        stats.norm.cdf(y[:, None, :], dist.means, dist.scales),
    )
    np.testing.assert_allclose(u, reference, rtol=1e-10, atol=1e-15)
    for j in range(2):
        np.testing.assert_array_equal(u[:, j], dist.marginal(j).cdf(y[:, j]))


def test_multi_output_coverage_is_per_output():
    dist = random_mixture(4, n=300, d=2)
    rng = np.random.default_rng(5)
    # outputs on different scales, so that their coverages differ
    y = np.column_stack([rng.normal(size=300), 6.0 + 4.0 * rng.normal(size=300)])
    # central: y_j is inside iff its marginal CDF (by scipy) is in [0.1, 0.9]
    F = np.einsum(
        "nk,nkj->nj",
        dist.weights,
        stats.norm.cdf(y[:, None, :], dist.means, dist.scales),
    )
    expected = np.mean((F >= 0.1) & (F <= 0.9), axis=0)
    assert abs(expected[0] - expected[1]) > 0.1  # precondition
    central = interval_coverage(y, dist, 0.8, multioutput="raw_values")
    np.testing.assert_array_equal(central, expected)
    assert interval_coverage(y, dist, 0.8) == pytest.approx(expected.mean())
    hdr = interval_coverage(y, dist, 0.8, kind="hdr", multioutput="raw_values")
    assert hdr.shape == (2,)
    for j in range(2):
        marginal = dist.marginal(j)
        assert hdr[j] == interval_coverage(y[:, j], marginal, 0.8, kind="hdr")
        assert hdr[j] == np.mean(marginal.hdr(0.8).contains(y[:, j]))
    assert abs(hdr[0] - hdr[1]) > 0.1


def test_pit_and_coverage_of_draws_from_the_distribution_itself():
    # y drawn from the predictive distribution: PIT uniform, coverage nominal.
    dist = random_mixture(6, n=2000)
    y = dist.sample(1, random_state=7)[:, 0]
    assert stats.kstest(pit(y, dist), "uniform").pvalue > 0.01
    se = np.sqrt(0.8 * 0.2 / 2000)  # binomial standard error, 0.0089
    for kind in ("central", "hdr"):
        assert abs(interval_coverage(y, dist, 0.8, kind=kind) - 0.8) < 4 * se
    assert interval_width(dist, 0.8, kind="hdr") < interval_width(dist, 0.8)
    assert nll(y, dist) == pytest.approx(-dist.logpdf(y).mean())


@pytest.mark.parametrize("d", [1, 2])
def test_integer_sample_weights_equal_repeated_rows(d):
    # A weight of k counts a row k times (0 drops it): the weighted metric
    # equals the unweighted one on a distribution with the rows repeated.
    n = 40
    dist = random_mixture(10 + d, n=n, d=d)
    rng = np.random.default_rng(d)
    y = rng.normal(scale=3.0, size=(n,) if d == 1 else (n, d))
    w = rng.integers(0, 4, size=n)
    rows = np.repeat(np.arange(n), w)
    repeated = GaussianMixture(
        dist.log_weights[rows],
        dist.means[rows],
        scales=dist.scales[rows],
        univariate=d == 1,
    )
    metrics = {
        "crps": lambda y, dist, **kw: crps(y, dist, multioutput="raw_values", **kw),
        "nll": nll,
        "central": lambda y, dist, **kw: interval_coverage(
            y, dist, 0.7, multioutput="raw_values", **kw
        ),
        "hdr": lambda y, dist, **kw: interval_coverage(
            y, dist, 0.7, kind="hdr", multioutput="raw_values", **kw
        ),
        "width": lambda y, dist, **kw: interval_width(
            dist, 0.7, multioutput="raw_values", **kw
        ),
        "hdr_width": lambda y, dist, **kw: interval_width(dist, 0.7, kind="hdr", **kw),
    }
    for name, metric in metrics.items():
        weighted = metric(y, dist, sample_weight=w)
        expected = metric(y[rows], repeated)
        np.testing.assert_allclose(weighted, expected, rtol=1e-12, err_msg=name)
        # precondition: the weights matter
        assert not np.allclose(metric(y, dist), expected, rtol=1e-6), name
        # and a float weight scales out, even one whose sum overflows
        for factor in (0.5, 1e307):
            np.testing.assert_allclose(
                metric(y, dist, sample_weight=factor * w), expected, rtol=1e-12
            )


def test_metric_input_errors():
    dist = random_mixture(8, n=5)
    with pytest.raises(TypeError, match="metric\\(y, dist\\)"):
        crps(dist, np.zeros(5))
    with pytest.raises(ValueError, match="shape"):
        crps(np.zeros(4), dist)
    with pytest.raises(ValueError, match="NaN"):
        nll(np.full(5, np.nan), dist)
    with pytest.raises(ValueError, match="kind"):
        interval_width(dist, kind="widest")


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("d", [1, 2])
def test_interval_metrics_of_zero_rows_are_nan_like_the_other_means(d):
    # Regression: the intervals of a 0-row distribution raised
    # ZeroDivisionError; now each metric is the mean of no values, NaN, as
    # for crps and nll (and np.mean).
    empty = random_mixture(9, n=3, d=d)[0:0]
    y = np.zeros((0,) if d == 1 else (0, d))
    assert crps_values(y, empty).shape == y.shape
    for kind in ("central", "hdr"):
        means = [
            np.mean(np.zeros(0)),
            crps(y, empty),
            nll(y, empty),
            interval_coverage(y, empty, kind=kind),
            interval_width(empty, kind=kind),
        ]
        assert np.isnan(means).all()
        raw = interval_coverage(y, empty, kind=kind, multioutput="raw_values")
        assert np.shape(raw) == (() if d == 1 else (d,)) and np.isnan(raw).all()


# ------------------------------------------------------------ the estimator
@pytest.fixture(scope="module")
def fitted_inverse_sine():
    X, y = make_inverse_sine(2000, seed=0)
    model = MDNRegressor(
        n_components=3,
        hidden_layer_sizes=(32, 32),
        learning_rate_init=1e-2,
        max_iter=100,
        random_state=0,
    )
    with warnings.catch_warnings():  # 100 epochs suffice for the coverage tests
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model, make_inverse_sine(4000, seed=1)


def test_held_out_intervals_cover_nominally_and_hdr_is_narrower(fitted_inverse_sine):
    model, (X, y) = fitted_inverse_sine
    central = model.predict_interval(X, 0.9)
    region = model.predict_interval(X, 0.9, kind="hdr")
    assert central.shape == (4000, 2) and isinstance(region, HighestDensityRegion)
    central_cov = np.mean((central[:, 0] <= y) & (y <= central[:, 1]))
    hdr_cov = np.mean(region.contains(y))
    # Binomial noise alone is 0.005 (n = 4000); the rest of the 0.04 allowance
    # is misfit: the truth has uniform noise, the model Gaussian components.
    assert abs(central_cov - 0.9) < 0.04
    assert abs(hdr_cov - 0.9) < 0.04
    bimodal = (X[:, 0] > 0.4) & (X[:, 0] < 0.6)  # three branches of x(t)
    central_width = central[:, 1] - central[:, 0]
    assert region.width()[bimodal].mean() < 0.8 * central_width[bimodal].mean()
    assert np.all(region.width() <= central_width + 1e-9)
    assert interval_coverage(y, model.predict_dist(X), 0.9) == central_cov


def test_point_estimates_and_quantiles(fitted_inverse_sine):
    model, (X, _) = fitted_inverse_sine
    X = X[:200]
    dist = model.predict_dist(X)
    modal = model.set_params(point_estimate="mode").predict(X)
    np.testing.assert_array_equal(modal, dist.mode())
    assert np.all(dist.logpdf(modal) >= dist.logpdf(dist.approx_mode()) - 1e-12)
    assert np.all(dist.logpdf(modal) >= dist.logpdf(dist.mean()) - 1e-12)
    model.set_params(point_estimate="mean")
    q = model.predict_quantiles(X, [0.05, 0.5, 0.95])
    assert q.shape == (200, 3)
    np.testing.assert_allclose(q[:, [0, 2]], model.predict_interval(X, 0.9))
    np.testing.assert_allclose(dist.cdf(q[:, 1]), 0.5, atol=1e-12)
    draws = model.sample(X[:3], 5, random_state=0, temperature=0.5)
    assert draws.shape == (3, 5)
    # Tempered sampling draws from the mixture the docs define: weights
    # pi_k^(1/T) renormalised, standard deviations times sqrt(scale_temperature),
    # with the same private stream as sampling that mixture directly.
    rows = X[:60]  # includes the trimodal middle, where weights are spread
    base = model.predict_dist(rows)
    assert np.sum(base.weights.max(1) < 0.9) >= 5  # precondition
    for T, tau in [(0.5, 1.0), (0.5, 0.3), (3.0, 2.0), (1.0, 0.3)]:
        log_w = base.log_weights / T
        log_w -= logsumexp(log_w, axis=1, keepdims=True)
        tempered = GaussianMixture(
            log_w, base.means, scales=base.scales * np.sqrt(tau), univariate=True
        )
        got = model.sample(
            rows, 5, random_state=0, temperature=T, scale_temperature=tau
        )
        expected = tempered.sample(5, random_state=0)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
        # precondition: the tempering changes the draws
        assert not np.allclose(got, model.sample(rows, 5, random_state=0))
    with pytest.raises(ValueError, match="kind"):
        model.predict_interval(X, kind="equal")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_scorers_drive_grid_search(fitted_inverse_sine):
    model, (X, y) = fitted_inverse_sine
    X_small, y_small = X[:300], y[:300]
    dist = model.predict_dist(X_small)
    assert neg_crps_scorer(model, X_small, y_small) == -crps(y_small, dist)
    assert neg_nll_scorer(model, X_small, y_small) == pytest.approx(
        model.score(X_small, y_small)
    )
    coverage = make_coverage_scorer(0.8, "hdr")(model, X_small, y_small)
    assert coverage == -abs(interval_coverage(y_small, dist, 0.8, kind="hdr") - 0.8)
    assert make_width_scorer(0.8)(model, X_small, y_small) == -interval_width(dist, 0.8)
    search = GridSearchCV(
        MDNRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0),
        {"n_components": [1, 2]},
        scoring={"crps": neg_crps_scorer, "nll": neg_nll_scorer},
        refit="crps",
        cv=2,
    ).fit(X_small, y_small)
    scores = search.cv_results_["mean_test_crps"]
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_scorers_pickle_and_so_does_a_search_that_used_them(fitted_inverse_sine):
    # Regression: the coverage and width scorers held local functions, so
    # neither they nor a fitted GridSearchCV keeping one as scorer_ could be
    # pickled (joblib.dump of the search failed).
    import pickle

    model, (X, y) = fitted_inverse_sine
    X_small, y_small = X[:200], y[:200]
    scorers = [
        neg_crps_scorer,
        neg_nll_scorer,
        make_coverage_scorer(0.8, "hdr"),
        make_width_scorer(0.7),
    ]
    for scorer in scorers:
        copy = pickle.loads(pickle.dumps(scorer))
        assert repr(copy) == repr(scorer)
        assert copy(model, X_small, y_small) == scorer(model, X_small, y_small)
    search = GridSearchCV(
        MDNRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0),
        {"n_components": [1, 2]},
        scoring=make_coverage_scorer(0.8),
        cv=2,
    ).fit(X_small, y_small)
    loaded = pickle.loads(pickle.dumps(search))
    assert loaded.score(X_small, y_small) == search.score(X_small, y_small)


@pytest.mark.parametrize(
    "bad", [[np.nan, 1, 1, 1, 1], [np.inf, 1, 1, 1, 1], [-1, 1, 1, 1, 1], [0] * 5]
)
def test_metrics_reject_sample_weights_that_score_rejects(fitted_inverse_sine, bad):
    # Regression: a NaN or infinite weight made every weighted metric NaN
    # without notice, and a negative one was used as it was, where
    # model.score (whose negation nll is documented to equal) raises.
    model, (X, y) = fitted_inverse_sine
    X, y = X[:5], y[:5]
    dist = model.predict_dist(X)
    with pytest.raises(ValueError) as expected:
        model.score(X, y, sample_weight=bad)
    message = str(expected.value)
    for metric in (
        lambda w: nll(y, dist, sample_weight=w),
        lambda w: crps(y, dist, sample_weight=w),
        lambda w: interval_coverage(y, dist, kind="hdr", sample_weight=w),
        lambda w: interval_width(dist, sample_weight=w),
        lambda w: neg_crps_scorer(model, X, y, sample_weight=w),
    ):
        with pytest.raises(ValueError) as got:
            metric(bad)
        assert str(got.value) == message


@pytest.mark.parametrize("d", [1, 2])
def test_unknown_multioutput_is_an_error_for_every_model(d):
    # Regression: for a univariate model multioutput was never read, so a
    # misspelt value passed silently; sklearn.metrics rejects it for 1-D y
    # too, and skmdn.metrics did only for multi-output models.
    from sklearn.metrics import mean_absolute_error

    dist = random_mixture(13, n=6, d=d)
    y = np.zeros((6,) if d == 1 else (6, d))
    with pytest.raises(ValueError):
        mean_absolute_error(y, y, multioutput="raw_value")
    for metric in (
        lambda **kw: crps(y, dist, **kw),
        lambda **kw: interval_coverage(y, dist, **kw),
        lambda **kw: interval_width(dist, kind="hdr", **kw),
    ):
        with pytest.raises(ValueError, match="multioutput"):
            metric(multioutput="raw_value")
        with pytest.raises(ValueError, match="multioutput"):
            metric(multioutput="uniform_average ")


def test_pit_is_at_most_one_above_every_component():
    # Regression: F(y) = sum_k w_k Phi(z_k) with Phi(z_k) = 1 is the sum of
    # the weights, which float64 rounding puts above 1 by an ulp or two in
    # about one row in ten, so PIT values of 1.0000000000000002 came out.
    # The reference, 1 - sum_k w_k Phi(-z_k) (scipy's survival function), is
    # a probability.
    dist = random_mixture(14, n=2000, K=7)
    y = np.full(2000, 1e3)
    reference = 1.0 - np.einsum(
        "nk,nk->n",
        dist.weights,
        stats.norm.sf(1e3, dist.means[..., 0], dist.scales[..., 0]),
    )
    assert np.all(reference <= 1.0)
    u = pit(y, dist)
    assert np.all(u <= 1.0)
    np.testing.assert_allclose(u, reference, rtol=1e-15)


def test_coverage_scorer_averages_the_error_of_each_output():
    # Regression: the scorer took |mean coverage - confidence|, so one output
    # always covered and one never covered scored a perfect 0 at confidence
    # 0.5 (the errors cancel), ahead of any calibrated model. Like sklearn's
    # uniform_average, it is now the mean of the per-output errors.
    dist = random_mixture(15, n=100, K=1, d=2)  # unimodal: the mean is inside
    mean = dist.mean()
    y = np.column_stack([mean[:, 0], mean[:, 1] + 1e3])  # inside / far out

    class Fixed:
        def predict_dist(self, X):
            return dist

    cov = interval_coverage(y, dist, 0.5, multioutput="raw_values")
    np.testing.assert_array_equal(cov, [1.0, 0.0])  # precondition
    expected = -np.mean(np.abs(cov - 0.5))  # 0.5
    for kind in ("central", "hdr"):
        scorer = make_coverage_scorer(0.5, kind)
        assert scorer(Fixed(), np.zeros((100, 1)), y) == pytest.approx(expected)
    # one output: unchanged
    one = dist.marginal(0)

    class FixedOne:
        def predict_dist(self, X):
            return one

    y0 = one.sample(1, random_state=0)[:, 0]
    assert make_coverage_scorer(0.7)(FixedOne(), np.zeros((100, 1)), y0) == -abs(
        interval_coverage(y0, one, 0.7) - 0.7
    )


def test_width_scorer_checks_y_though_the_width_does_not_use_it():
    # Documented: y is checked against the distribution. Unchecked, a y for
    # other rows, or with a NaN, was scored silently.
    dist = random_mixture(21, n=30)

    class Fixed:
        def predict_dist(self, X):
            return dist

    scorer = make_width_scorer(0.8)
    y = dist.mean()
    assert scorer(Fixed(), np.zeros((30, 1)), y) == -interval_width(dist, 0.8)
    with pytest.raises(ValueError, match=r"y has shape \(29,\)"):
        scorer(Fixed(), np.zeros((30, 1)), y[:29])
    with pytest.raises(ValueError, match="NaN"):
        scorer(Fixed(), np.zeros((30, 1)), np.where(np.arange(30) == 3, np.nan, y))

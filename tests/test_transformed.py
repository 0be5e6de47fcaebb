"""TransformedMixture (``target_transform``) against independent references.

scipy.stats' log-normal (shifted by 1 for ``'log1p'``) for densities and
distribution functions, numerical integration for moments and entropy, a dense
grid and a bounded optimiser for the mode, Monte Carlo for the joint moments
of two outputs, and exact identities between the joint, marginal and
conditional laws.
"""

import pickle

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from skmdn import GaussianMixture, TransformedMixture
from skmdn._transformed import from_transformed, to_transformed

OFFSET = {"log": 0.0, "log1p": 1.0}


def univariate(seed, n=5, K=3):
    rng = np.random.default_rng(seed)
    log_w = np.log(rng.dirichlet(np.ones(K), n))
    mu = rng.normal(0.0, 0.7, (n, K, 1))
    s = rng.uniform(0.15, 0.8, (n, K, 1))
    return GaussianMixture(log_w, mu, scales=s, univariate=True)


def two_outputs(seed, n, K):
    """Correlated Gaussian mixtures of two outputs (full covariance), on the
    log scale of values near 1."""
    rng = np.random.default_rng(seed)
    log_w = np.log(rng.dirichlet(np.ones(K), n))
    mu = rng.normal(0.0, 0.4, (n, K, 2))
    L = np.tril(rng.normal(0.0, 0.25, (n, K, 2, 2)), -1)
    L += rng.uniform(0.2, 0.5, (n, K, 2))[..., None] * np.eye(2)
    return GaussianMixture(log_w, mu, scale_tril=L)


def scipy_components(base, i, c):
    """Row ``i``'s components as scipy log-normals of ``y`` (shifted by ``-c``)."""
    w = base.weights[i]
    mu, s = base.means[i, :, 0], base.scales[i, :, 0]
    return [
        (w[k], stats.lognorm(s[k], scale=np.exp(mu[k]), loc=-c)) for k in range(len(w))
    ]


def scipy_pdf(base, i, c, y):
    return sum(w * law.pdf(y) for w, law in scipy_components(base, i, c))


def scipy_cdf(base, i, c, y):
    return sum(w * law.cdf(y) for w, law in scipy_components(base, i, c))


@pytest.mark.parametrize("transform", ["log", "log1p"])
def test_density_and_distribution_functions_match_scipy(transform):
    c = OFFSET[transform]
    base = univariate(0)
    dist = TransformedMixture(base, transform)
    rng = np.random.default_rng(1)
    y = rng.uniform(-c + 0.05, 6.0, len(dist))
    pdf = np.array([scipy_pdf(base, i, c, y[i]) for i in range(len(dist))])
    cdf = np.array([scipy_cdf(base, i, c, y[i]) for i in range(len(dist))])
    np.testing.assert_allclose(dist.pdf(y), pdf, rtol=1e-12)
    np.testing.assert_allclose(dist.logpdf(y), np.log(pdf), rtol=1e-12)
    np.testing.assert_allclose(dist.cdf(y), cdf, rtol=1e-12)
    np.testing.assert_allclose(dist.sf(y), 1.0 - cdf, rtol=1e-10)
    np.testing.assert_allclose(dist.logcdf(y), np.log(cdf), rtol=1e-12)
    np.testing.assert_allclose(dist.logsf(y), np.log1p(-cdf), rtol=1e-9)
    # each row's density integrates to one over the support
    for i in range(2):
        mass = integrate.quad(lambda t, i=i: dist[i].pdf(np.array([t]))[0], -c, np.inf)
        assert mass[0] == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("transform", ["log", "log1p"])
def test_no_probability_outside_the_support(transform):
    c = OFFSET[transform]
    dist = TransformedMixture(univariate(2), transform)
    n = len(dist)
    for edge in (-c, -c - 0.5, -np.inf):
        y = np.full(n, edge)
        assert np.all(dist.logpdf(y) == -np.inf)
        assert np.all(dist.pdf(y) == 0.0)
        assert np.all(dist.cdf(y) == 0.0)
        np.testing.assert_allclose(dist.sf(y), 1.0, rtol=1e-15)  # sum of weights
        assert np.all(dist.logcdf(y) == -np.inf)
        assert np.all(np.isnan(dist.responsibilities(y)))
    assert np.all(dist.ppf(1e-12) > -c)
    assert np.all(dist.sample(2000, random_state=0) > -c)
    assert np.all(np.isnan(dist.logpdf(np.full(n, np.nan))))


@pytest.mark.parametrize("transform", ["log", "log1p"])
def test_quantiles_invert_the_cdf_and_map_through_the_transform(transform):
    base = univariate(3)
    dist = TransformedMixture(base, transform)
    q = np.array([1e-6, 0.05, 0.3, 0.5, 0.9, 1 - 1e-9])
    values = dist.quantile(q)
    np.testing.assert_allclose(dist.cdf(values.T).T, np.broadcast_to(q, values.shape))
    np.testing.assert_array_equal(values, from_transformed(base.quantile(q), transform))
    lower, upper = dist.interval(0.8).T
    np.testing.assert_allclose(dist.cdf(lower), 0.1)
    np.testing.assert_allclose(dist.cdf(upper), 0.9)
    np.testing.assert_array_equal(dist.ppf(0.25), dist.quantile(0.25))


@pytest.mark.parametrize("transform", ["log", "log1p"])
def test_mean_and_variance_are_the_integrals(transform):
    c = OFFSET[transform]
    base = univariate(4)
    dist = TransformedMixture(base, transform)
    mean, var = dist.mean(), dist.var()
    np.testing.assert_array_equal(dist.std(), np.sqrt(var))
    np.testing.assert_array_equal(dist.cov(), var)
    for i in range(len(dist)):
        m = integrate.quad(lambda t, i=i: t * scipy_pdf(base, i, c, t), -c, np.inf)[0]
        v = integrate.quad(
            lambda t, i=i, m=m: (t - m) ** 2 * scipy_pdf(base, i, c, t), -c, np.inf
        )[0]
        assert mean[i] == pytest.approx(m, rel=1e-9)
        assert var[i] == pytest.approx(v, rel=1e-8)


def test_mean_of_one_log_normal_is_scipys():
    mu, s = np.array([[[-1.0]], [[2.0]]]), np.array([[[0.3]], [[1.1]]])
    base = GaussianMixture(np.zeros((2, 1)), mu, scales=s, univariate=True)
    laws = stats.lognorm(s[:, 0, 0], scale=np.exp(mu[:, 0, 0]))
    dist = TransformedMixture(base, "log")
    np.testing.assert_allclose(dist.mean(), laws.mean(), rtol=1e-14)
    np.testing.assert_allclose(dist.var(), laws.var(), rtol=1e-13)
    np.testing.assert_allclose(dist.quantile(0.5), laws.median(), rtol=1e-14)
    # one component: the approximate mode is its mode, exp(mu - s^2)
    mode = np.exp(mu[:, 0, 0] - s[:, 0, 0] ** 2)
    np.testing.assert_allclose(dist.approx_mode(), mode, rtol=1e-14)
    np.testing.assert_allclose(dist.mode(), mode, rtol=1e-9)


@pytest.mark.parametrize("transform", ["log", "log1p"])
def test_mode_is_the_maximum_of_the_density(transform):
    c = OFFSET[transform]
    base = univariate(5, n=6)
    dist = TransformedMixture(base, transform)
    modes = dist.mode()
    grid = np.linspace(-c + 1e-4, 12.0, 200_001)
    for i in range(len(dist)):
        density = scipy_pdf(base, i, c, grid)
        best = grid[np.argmax(density)]
        step = grid[1] - grid[0]
        found = optimize.minimize_scalar(
            lambda t, i=i: -scipy_pdf(base, i, c, t),
            bounds=(max(best - 2 * step, -c + 1e-12), best + 2 * step),
            method="bounded",
            options={"xatol": 1e-12},
        ).x
        assert modes[i] == pytest.approx(found, abs=1e-7)
        # and not the transform of the mode of z, which ignores the Jacobian
        assert dist[i].pdf(np.array([modes[i]]))[0] >= scipy_pdf(base, i, c, best)


def test_entropy_is_the_integral():
    base = univariate(6, n=3)
    dist = TransformedMixture(base, "log")
    h, se = dist.entropy(20_000, random_state=0, return_std_error=True)
    for i in range(len(dist)):

        def integrand(t, i=i):
            p = scipy_pdf(base, i, 0.0, t)
            return -p * np.log(p) if p > 0 else 0.0

        exact = integrate.quad(integrand, 0.0, 80.0, limit=400)[0]
        assert abs(h[i] - exact) < 4 * se[i]


def test_samples_have_the_closed_form_moments_in_two_dimensions():
    """Joint moments of two correlated outputs (full covariance) against
    large-sample averages of the distribution's own draws."""
    dist = TransformedMixture(two_outputs(7, n=3, K=2), "log1p")
    n = len(dist)
    draws = dist.sample(400_000, random_state=0)  # (n, m, d)
    mean, cov = dist.mean(), dist.cov()
    m = draws.shape[1]
    for i in range(n):
        se = np.sqrt(np.diag(cov[i]) / m)
        assert np.all(np.abs(draws[i].mean(0) - mean[i]) < 5 * se)
        sample_cov = np.cov(draws[i].T)
        np.testing.assert_allclose(sample_cov, cov[i], rtol=0.05, atol=0.01)
    np.testing.assert_allclose(dist.var(), np.diagonal(cov, axis1=1, axis2=2))


def test_joint_marginal_and_conditional_laws_agree():
    dist = TransformedMixture(two_outputs(8, n=4, K=3), "log")
    n, d = len(dist), 2
    y = np.exp(np.random.default_rng(8).normal(0.0, 0.5, (n, d)))
    # p(y0, y1) = p(y0) p(y1 | y0), the Jacobians included
    joint = dist.logpdf(y)
    first = dist.marginal(0).logpdf(y[:, 0])
    given = dist.condition(0, y[:, 0]).logpdf(y[:, 1])
    np.testing.assert_allclose(joint, first + given, rtol=1e-12)
    # a univariate marginal is the scipy mixture of its components' marginals
    base0 = dist.base.marginal(0)
    for i in range(n):
        ref = scipy_pdf(base0, i, 0.0, y[i, 0])
        assert np.exp(first[i]) == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="values > 0"):
        dist.condition(0, -y[:, 0])


def test_responsibilities_and_component_densities():
    base = univariate(9)
    dist = TransformedMixture(base, "log")
    y = np.exp(np.random.default_rng(9).normal(size=len(dist)))
    resp = dist.responsibilities(y)
    np.testing.assert_allclose(resp.sum(-1), 1.0)
    np.testing.assert_allclose(resp, base.responsibilities(np.log(y)), rtol=1e-13)
    comp = dist.component_logpdf(y)
    for i in range(len(dist)):
        laws = scipy_components(base, i, 0.0)
        ref = [np.log(w) + law.logpdf(y[i]) for w, law in laws]
        np.testing.assert_allclose(comp[i], ref, rtol=1e-12)


def test_tempering_and_rows_act_on_the_base():
    base = univariate(10)
    dist = TransformedMixture(base, "log")
    tempered = dist.tempered(0.5, 0.25)
    np.testing.assert_array_equal(
        tempered.base.weights, base.tempered(0.5, 0.25).weights
    )
    np.testing.assert_array_equal(
        dist.sample(3, random_state=1, temperature=0.5),
        np.exp(base.sample(3, random_state=1, temperature=0.5)),
    )
    assert (dist.n_components, dist.n_outputs, dist.n_threads) == (3, 1, None)
    np.testing.assert_array_equal(dist.log_weights, base.log_weights)
    rows = dist[[3, 1]]
    assert isinstance(rows, TransformedMixture) and len(rows) == 2
    np.testing.assert_array_equal(rows.mean(), dist.mean()[[3, 1]])
    assert repr(dist).startswith("TransformedMixture(GaussianMixture(n=5")
    with pytest.raises(TypeError, match="batch of distributions"):
        np.asarray(dist)


def test_the_gaussian_parameters_are_found_on_the_base():
    dist = TransformedMixture(univariate(12), "log1p")
    for name in ("means", "scales", "covariances", "scale_tril"):
        with pytest.raises(AttributeError, match=f"dist.base.{name}"):
            getattr(dist, name)
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        dist.nonsense
    assert not hasattr(dist, "means")
    restored = pickle.loads(pickle.dumps(dist))
    np.testing.assert_array_equal(restored.mean(), dist.mean())


def test_hdr_is_refused_with_what_to_use():
    dist = TransformedMixture(univariate(11), "log")
    with pytest.raises(ValueError, match=r"interval\(confidence\)"):
        dist.hdr(0.9)


def test_transform_helpers_and_bad_arguments():
    y = np.array([2.0, 0.0, -1.0, -3.0, np.nan, np.inf])
    np.testing.assert_array_equal(
        to_transformed(y, "log"),
        [np.log(2.0), -np.inf, -np.inf, -np.inf, np.nan, np.inf],
    )
    np.testing.assert_array_equal(
        to_transformed(y, "log1p"),
        [np.log1p(2.0), 0.0, -np.inf, -np.inf, np.nan, np.inf],
    )
    z = np.array([-3.0, 0.0, 1e-12, 5.0])
    for transform in ("log", "log1p"):
        back = to_transformed(from_transformed(z, transform), transform)
        np.testing.assert_allclose(back, z, rtol=1e-15, atol=1e-16)
    with pytest.raises(ValueError, match="transform must be one of"):
        TransformedMixture(univariate(0), "sqrt")
    with pytest.raises(TypeError, match="GaussianMixture"):
        TransformedMixture(np.zeros(3), "log")

"""GaussianMixture against independent references: scipy.stats densities,
numerical integration and the mixture's own moment formulas."""

import itertools
import pickle

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.special import logsumexp

from skmdn import GaussianMixture
from skmdn._mixture import mixture_log_prob
from skmdn._network import NOISE_TYPES, MDNNetwork


def random_mixture(rng, n, K, d, full, univariate=False):
    log_w = np.log(rng.dirichlet(np.ones(K), size=n))
    means = rng.normal(scale=2.0, size=(n, K, d))
    if full:
        L = np.tril(rng.normal(scale=0.5, size=(n, K, d, d)), -1)
        idx = np.arange(d)
        L[..., idx, idx] = rng.uniform(0.3, 2.0, size=(n, K, d))
        return GaussianMixture(log_w, means, scale_tril=L, univariate=univariate)
    scales = rng.uniform(0.3, 2.0, size=(n, K, d))
    return GaussianMixture(log_w, means, scales=scales, univariate=univariate)


def scipy_logpdf(dist, y):
    """Reference: a sum of scipy.stats.multivariate_normal densities."""
    out = []
    for i in range(len(dist)):
        terms = [
            dist.log_weights[i, k]
            + stats.multivariate_normal(
                dist.means[i, k], dist.covariances[i, k]
            ).logpdf(y[i])
            for k in range(dist.n_components)
        ]
        out.append(logsumexp(terms))
    return np.array(out)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_logpdf_matches_scipy(full, d):
    rng = np.random.default_rng(d + 10 * full)
    dist = random_mixture(rng, n=6, K=4, d=d, full=full)
    y = rng.normal(scale=2.0, size=(6, d))
    np.testing.assert_allclose(dist.logpdf(y), scipy_logpdf(dist, y), rtol=1e-10)


def test_univariate_mixture_pdf_integrates_to_one_and_matches_norm():
    rng = np.random.default_rng(1)
    dist = random_mixture(rng, n=1, K=3, d=1, full=False, univariate=True)
    w, mu, s = dist.weights[0], dist.means[0, :, 0], dist.scales[0, :, 0]
    for y in (-3.0, 0.1, 2.5):
        ref = np.sum(w * stats.norm(mu, s).pdf(y))
        np.testing.assert_allclose(dist.pdf(np.array([y]))[0], ref, rtol=1e-12)
    total, _ = integrate.quad(lambda t: dist.pdf(np.array([t]))[0], -np.inf, np.inf)
    assert abs(total - 1.0) < 1e-8


@pytest.mark.parametrize("full", [False, True])
def test_bivariate_pdf_integrates_to_one(full):
    rng = np.random.default_rng(2)
    dist = random_mixture(rng, n=1, K=3, d=2, full=full)
    grid = np.linspace(-14, 14, 561)
    Y1, Y2 = np.meshgrid(grid, grid, indexing="ij")
    y = np.stack([Y1.ravel(), Y2.ravel()], axis=-1)[:, None, :]  # (m, 1, 2)
    dens = dist.pdf(y).reshape(Y1.shape)
    total = integrate.simpson(integrate.simpson(dens, x=grid), x=grid)
    assert abs(total - 1.0) < 1e-6


@pytest.mark.parametrize("full", [False, True])
def test_moments_follow_total_variance_and_match_samples(full):
    rng = np.random.default_rng(3)
    dist = random_mixture(rng, n=3, K=3, d=2, full=full)
    w, mu, cov = dist.weights, dist.means, dist.covariances
    mean = np.einsum("nk,nkd->nd", w, mu)
    second = np.einsum("nk,nkij->nij", w, cov + mu[..., :, None] * mu[..., None, :])
    np.testing.assert_allclose(dist.mean(), mean, rtol=1e-12)
    np.testing.assert_allclose(
        dist.cov(), second - mean[:, :, None] * mean[:, None, :], rtol=1e-10, atol=1e-12
    )
    draws = dist.sample(200_000, random_state=0)  # (n, s, d)
    # Standard error of a sample mean is sqrt(var / s); allow 5 of them.
    se = np.sqrt(np.diagonal(dist.cov(), axis1=1, axis2=2) / draws.shape[1])
    assert np.all(np.abs(draws.mean(axis=1) - dist.mean()) < 5 * se)
    for i in range(len(dist)):
        emp = np.cov(draws[i].T)
        np.testing.assert_allclose(emp, dist.cov()[i], rtol=0.05, atol=0.05)


def random_network(noise_type, d, gen, *, K=3, spread=5.0):
    """The real network for ``noise_type`` (4 features, ``d`` outputs, ``K``
    components), float64, random weights from ``gen``, its head's weights
    multiplied by ``spread`` so that the parameters vary with x."""
    net = MDNNetwork(
        n_features=4,
        n_outputs=d,
        n_components=K,
        hidden_layer_sizes=(8,),
        activation="tanh",
        noise_type=noise_type,
        min_scale=1e-3,
        fixed_scale=(0.5,) * d,
    ).double()
    net.reset_parameters(gen)
    with torch.no_grad():
        net.head.weight.mul_(spread)
    return net


def mixture_of(params, *, univariate=False):
    """The GaussianMixture of a network's output ``params``."""
    if params.scale_tril is None:
        scale = {"scales": params.scales.numpy()}
    else:
        scale = {"scale_tril": params.scale_tril.numpy()}
    return GaussianMixture(
        params.log_weights.numpy(), params.means.numpy(), **scale, univariate=univariate
    )


def network_mixture(noise_type, d, n=6, K=3, seed=0):
    """A GaussianMixture of ``n`` rows built by the real network (random
    weights, head spread so parameters vary with x) for ``noise_type``."""
    gen = torch.Generator().manual_seed(seed)
    net = random_network(noise_type, d, gen, K=K)
    with torch.no_grad():
        params = net(torch.randn(n, 4, dtype=torch.float64, generator=gen))
    return mixture_of(params, univariate=d == 1)


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
def test_var_and_std_follow_the_textbook_formula_and_samples(noise_type, d):
    """var is sum_k pi_k (Sigma_k,jj + mu_kj^2) - m_j^2 (numpy, the
    uncentred textbook form, from the component covariances) for every
    noise type, and the variance of 400,000 draws to 5 of its standard
    errors, sqrt((mu_4 - var^2) / s) with the mixture's fourth central
    moment mu_4 = sum_k pi_k (c^4 + 6 c^2 s^2 + 3 s^4), c = mu_k - m."""
    dist = network_mixture(noise_type, d)
    squeeze = (lambda a: a[..., 0]) if d == 1 else (lambda a: a)
    w, mu = dist.weights[..., None], dist.means  # (n, K, 1), (n, K, d)
    comp_var = np.diagonal(dist.covariances, axis1=-2, axis2=-1)  # (n, K, d)
    m = (w * mu).sum(1)
    ref = (w * (comp_var + mu**2)).sum(1) - m**2
    var = dist.var()
    assert var.shape == squeeze(ref).shape and var.dtype == np.float64
    np.testing.assert_allclose(var, squeeze(ref), rtol=1e-12)
    np.testing.assert_allclose(dist.std(), np.sqrt(squeeze(ref)), rtol=1e-12)
    if d > 1:
        np.testing.assert_allclose(
            var, np.diagonal(dist.cov(), axis1=1, axis2=2), rtol=1e-12
        )
    s = 400_000
    draws = dist.sample(s, random_state=0).reshape(len(dist), s, d)
    c = mu - m[:, None, :]
    mu4 = (w * (c**4 + 6 * c**2 * comp_var + 3 * comp_var**2)).sum(1)
    se = np.sqrt((mu4 - ref**2) / s)
    assert np.all(np.abs(draws.var(axis=1) - ref) < 5 * se)


def test_var_of_a_light_component_too_wide_to_square_is_finite():
    # s = 2**520 squares to inf, but with weight 2**-40 its share of the
    # variance is 2**1000 (plus the other component's 1): rows of such
    # scales run in units of a power of two (see row_units)
    w2 = 2.0**-40
    dist = GaussianMixture(
        np.log([[1 - w2, w2]]), np.zeros((1, 2, 1)),
        scales=np.array([[[1.0], [2.0**520]]]), univariate=True,
    )  # fmt: skip
    np.testing.assert_allclose(dist.var(), [2.0**1000], rtol=1e-15)
    np.testing.assert_allclose(dist.std(), [2.0**500], rtol=1e-15)


def test_sample_component_frequencies_match_weights():
    log_w = np.log(np.array([[0.7, 0.2, 0.1]]))
    means = np.array([[[-100.0], [0.0], [100.0]]])
    dist = GaussianMixture(log_w, means, scales=np.ones((1, 3, 1)), univariate=True)
    draws = dist.sample(100_000, random_state=1)
    assert draws.shape == (1, 100_000)
    freq = np.array(
        [(draws < -50).mean(), (np.abs(draws) < 50).mean(), (draws > 50).mean()]
    )
    # Binomial standard error at n=1e5 is at most 0.0016.
    np.testing.assert_allclose(freq, [0.7, 0.2, 0.1], atol=0.008)


@pytest.mark.parametrize("K", [1, 2, 5, 7, 8, 12])
def test_weights_are_numpys_normalised_exponentials_bit_for_bit(K):
    """The weights sum their rows by columns (K < 8) or by numpy's own sum:
    either way the bits of ``exp(log_w) / exp(log_w).sum(axis=1)``, and
    the component-major copy sampling uses holds the same values."""
    from skmdn._utils import sum_last

    rng = np.random.default_rng(K)
    log_w = rng.normal(scale=3.0, size=(1000, K))
    log_w -= logsumexp(log_w, axis=1, keepdims=True)
    dist = GaussianMixture(log_w, rng.normal(size=(1000, K, 1)), np.ones((1000, K, 1)))
    w = np.exp(log_w)
    np.testing.assert_array_equal(sum_last(w), w.sum(axis=1))
    np.testing.assert_array_equal(dist.weights, w / w.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(dist._component_weights(), dist.weights.T)
    assert dist._component_weights().flags.c_contiguous


@pytest.mark.parametrize("length", [1, 2, 3, 5, 7, 8, 12])
def test_short_reductions_are_numpys_bit_for_bit(length):
    """sum_last and max_last (slice by slice for short axes) give numpy's
    sum and max bit for bit, NaN and infinities included, on a last axis and
    on a moved middle axis (the mode search's sums over components)."""
    from skmdn._modes import _sum_components
    from skmdn._utils import max_last, sum_last

    rng = np.random.default_rng(length)
    a = rng.normal(size=(40, 6, length)) * 10.0 ** rng.integers(-8, 9, (40, 6, length))
    a[0, 0, 0], a[1, 1, -1], a[2, 2, 0], a[3, 3, -1] = np.nan, np.inf, -np.inf, -0.0
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(sum_last(a), a.sum(axis=-1))
        np.testing.assert_array_equal(max_last(a), a.max(axis=-1))
        b = np.ascontiguousarray(np.moveaxis(a, -1, 1))  # (40, length, 6)
        np.testing.assert_array_equal(_sum_components(b), b.sum(axis=1))
        assert sum_last(a[..., :0]).shape == (40, 6)


def test_sample_is_reproducible_and_leaves_global_state_alone():
    dist = random_mixture(np.random.default_rng(4), n=5, K=2, d=2, full=True)
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    a = dist.sample(10, random_state=7)
    b = dist.sample(10, random_state=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, dist.sample(10, random_state=8))
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_approx_mode_is_mean_of_heaviest_component():
    log_w = np.log(np.array([[0.2, 0.8], [0.6, 0.4]]))
    means = np.array([[[1.0], [5.0]], [[-2.0], [3.0]]])
    dist = GaussianMixture(log_w, means, scales=np.ones((2, 2, 1)), univariate=True)
    np.testing.assert_array_equal(dist.approx_mode(), [5.0, -2.0])


def test_logpdf_accepts_a_grid_of_leading_axes():
    dist = random_mixture(
        np.random.default_rng(5), n=4, K=3, d=1, full=False, univariate=True
    )
    grid = np.linspace(-5, 5, 7)[:, None] * np.ones((1, 4))  # (m, n)
    out = dist.logpdf(grid)
    assert out.shape == (7, 4)
    for j in range(7):
        np.testing.assert_allclose(out[j], dist.logpdf(grid[j]), rtol=1e-14)


METHODS_OF_VALUES = (
    "logpdf", "pdf", "component_logpdf", "responsibilities",
    "cdf", "sf", "logcdf", "logsf", "ppf",
)  # fmt: skip


@pytest.mark.parametrize("method", METHODS_OF_VALUES)
def test_a_column_of_n_targets_is_refused_for_n_univariate_rows(method):
    """A column of n values against n rows of a univariate mixture (a
    one-column DataFrame of test targets) broadcast to an (n, n) grid: the
    mean of model.predict_dist(X).logpdf(y_test[:, None]) was -7.6 where the
    score was -0.23, without an error. It is refused, and the two meanings
    it could have are each one call away; a grid of another length, the
    targets as (n,), one row, and quantile/interval (which pass (m, 1)
    levels themselves, here m = n) still work. Reference: scipy.stats."""
    rng = np.random.default_rng(8)
    n = 3
    dist = random_mixture(rng, n=n, K=2, d=1, full=False, univariate=True)
    w, mu, s = dist.weights, dist.means[..., 0], dist.scales[..., 0]
    values = np.array([0.3, 0.6, 0.9]) if method == "ppf" else rng.normal(size=n)
    fn = getattr(dist, method)
    with pytest.raises(ValueError, match=r"shape \(3, 1\).*ambiguous.*np\.ravel"):
        fn(values[:, None])
    # one value per row, against scipy
    if method in ("logpdf", "pdf", "cdf"):
        law = {"logpdf": "pdf", "pdf": "pdf", "cdf": "cdf"}[method]
        ref = (w * getattr(stats.norm, law)(values[:, None], mu, s)).sum(1)
        ref = np.log(ref) if method == "logpdf" else ref
        np.testing.assert_allclose(fn(values), ref, rtol=1e-12)
    # the grid meaning, asked for explicitly, and a grid of another length
    grid = np.broadcast_to(values[:, None], (n, n))
    np.testing.assert_array_equal(fn(grid)[1], fn(np.full(n, values[1])))
    assert fn(values[:2, None]).shape[:2] == (2, n)
    # one row takes its one value as a column, as before
    np.testing.assert_array_equal(dist[:1].cdf([[0.5]]), dist[:1].cdf([0.5])[None])
    # quantile and interval of n levels against n rows
    q = dist.quantile([0.3, 0.6, 0.9])
    np.testing.assert_array_equal(q[:, 1], dist.ppf(np.full(n, 0.6)))
    assert dist.interval(0.5).shape == (n, 2)


def test_densities_broadcast_a_shared_grid_against_the_rows():
    """logpdf, pdf, component_logpdf and responsibilities broadcast ``y``
    against the rows as cdf does: a grid shared by every row as (m, 1), a
    scalar, or one point (d,) for every row of a multi-output mixture.
    They refused these shapes, so a density on a grid had to be copied once
    per row first. Reference: scipy.stats, row by row."""
    rng = np.random.default_rng(21)
    dist = random_mixture(rng, n=4, K=3, d=1, full=False, univariate=True)
    grid = np.linspace(-6.0, 6.0, 9)
    terms = dist.log_weights + stats.norm.logpdf(
        grid[:, None, None], dist.means[..., 0], dist.scales[..., 0]
    )  # (m, n, K)
    ref = logsumexp(terms, axis=-1)
    np.testing.assert_allclose(dist.logpdf(grid[:, None]), ref, rtol=1e-12)
    np.testing.assert_allclose(dist.pdf(grid[:, None]), np.exp(ref), rtol=1e-12)
    np.testing.assert_allclose(dist.component_logpdf(grid[:, None]), terms, rtol=1e-12)
    np.testing.assert_allclose(
        dist.responsibilities(grid[:, None]),
        np.exp(terms - ref[..., None]),
        rtol=1e-12,
        atol=1e-300,
    )
    np.testing.assert_allclose(dist.logpdf(3.0), ref[6], rtol=1e-12)  # a scalar
    # a multi-output mixture: one point (d,) for every row, or a grid (m, 1, d)
    joint = random_mixture(rng, n=3, K=2, d=2, full=True)
    point = np.array([0.5, -1.0])
    np.testing.assert_allclose(
        joint.logpdf(point), scipy_logpdf(joint, np.tile(point, (3, 1))), rtol=1e-10
    )
    points = rng.normal(size=(5, 1, 2))
    out = joint.logpdf(points)
    assert out.shape == (5, 3)
    for j in range(5):
        ref_j = scipy_logpdf(joint, np.tile(points[j], (3, 1)))
        np.testing.assert_allclose(out[j], ref_j, rtol=1e-10)
    # shapes that do not broadcast to the rows are still refused: on one row,
    # (m,) would broadcast to m rows, not m values of the row
    for bad, y in ((dist, np.zeros(3)), (dist[:1], np.zeros(3)), (joint, np.zeros(3))):
        with pytest.raises(ValueError, match="or a shape that broadcasts to it"):
            bad.logpdf(y)


@pytest.mark.parametrize("full", [False, True])
def test_logpdf_of_a_long_grid_runs_in_blocks_of_rows(full):
    # With m values per row a block holds 16384 // m rows (it held 16384
    # rows, m times the values): 5000 values on 10 rows are blocks of three
    # rows and one, each row's values matching scipy.
    rng = np.random.default_rng(13)
    dist = random_mixture(rng, n=10, K=3, d=2, full=full)
    grid = rng.normal(scale=2.0, size=(5000, 10, 2))
    out = dist.logpdf(grid)
    assert out.shape == (5000, 10)
    for j in rng.choice(5000, size=4, replace=False):
        np.testing.assert_allclose(out[j], scipy_logpdf(dist, grid[j]), rtol=1e-10)
    np.testing.assert_array_equal(out[:, 9], dist[9:].logpdf(grid[:, 9:])[:, 0])


def test_full_covariance_draws_in_slices_of_rows_have_the_right_moments():
    # Draws from full covariances gather each draw's Cholesky factor in
    # slices of about 2^20 values: 32768 draws of d = 4 are slices of two
    # rows here. Each row's draws have the mixture's mean and covariance (law
    # of total variance, from the component parameters).
    rng = np.random.default_rng(14)
    dist = random_mixture(rng, n=5, K=2, d=4, full=True)
    draws = dist.sample(32768, random_state=0)
    assert draws.shape == (5, 32768, 4)
    for i in range(5):
        w, mu, cov = dist.weights[i], dist.means[i], dist.covariances[i]
        mean = w @ mu
        centred = mu - mean
        total = np.einsum("k,kij->ij", w, cov + centred[:, :, None] * centred[:, None])
        se = np.sqrt(np.diag(total) / 32768)
        assert np.all(np.abs(draws[i].mean(0) - mean) < 5 * se)
        np.testing.assert_allclose(np.cov(draws[i].T), total, rtol=0.05, atol=0.05)


def test_bad_shapes_and_arguments_are_reported():
    dist = random_mixture(np.random.default_rng(6), n=3, K=2, d=2, full=False)
    with pytest.raises(ValueError, match="expected"):
        dist.logpdf(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="exactly one"):
        GaussianMixture(dist.log_weights, dist.means)
    with pytest.raises(ValueError, match="log_weights"):
        GaussianMixture(dist.log_weights[:, :1], dist.means, scales=dist.scales)


def test_integer_rows_out_of_range_raise_and_iteration_ends():
    # Regression: dist[5] of 3 rows was an empty mixture, not an IndexError,
    # so ``for row in dist`` (which stops at an IndexError) never ended.
    dist = random_mixture(np.random.default_rng(7), n=3, K=2, d=2, full=True)
    y = np.random.default_rng(8).normal(size=(3, 2))
    rows = list(itertools.islice(dist, 5))  # not list(dist): it hung
    assert len(rows) == 3 and all(len(row) == 1 for row in rows)
    ref = scipy_logpdf(dist, y)
    for i, row in enumerate(rows):
        np.testing.assert_allclose(row.logpdf(y[i : i + 1]), ref[i], rtol=1e-12)
    for i in (-3, -1, np.int64(2)):
        np.testing.assert_allclose(dist[i].logpdf(y[[i]]), ref[i], rtol=1e-12)
    for i in (3, -4, np.int64(10)):
        with pytest.raises(IndexError, match="out of range for 3 rows"):
            dist[i]


def test_a_mixture_used_as_an_array_says_what_to_call_instead():
    """A mixture has a length and integer rows, so numpy took it for a nested
    sequence: mean_squared_error(y, model.predict_dist(X)) (predict_dist for
    predict) recursed through rows of rows and died "setting an array element
    with a sequence ... maximum number of dimension of 64"."""
    from sklearn.metrics import mean_squared_error

    dist = random_mixture(np.random.default_rng(11), n=3, K=2, d=1, full=False)
    for convert in (
        np.asarray,
        lambda d: np.array([d]),
        lambda d: mean_squared_error(np.zeros(3), d),
    ):
        with pytest.raises(TypeError, match=r"not an array.*mean\(\)"):
            convert(dist)
    rows = list(itertools.islice(dist, 4))  # iteration and pickling still work
    assert len(rows) == 3
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(dist)).means, dist.means)


def test_indices_that_do_not_select_rows_raise_an_index_error():
    """dist[0, 1] and dist[None] indexed the components or added an axis, and
    died unpacking the shape of means in the constructor ("not enough values
    to unpack"); rows selected by a list still match scipy."""
    dist = random_mixture(np.random.default_rng(9), n=3, K=2, d=2, full=True)
    for index in ((0, 1), (slice(None), 0), None, np.array([[0, 1]])):
        with pytest.raises(IndexError, match="must select rows"):
            dist[index]
    with pytest.raises(ValueError, match=r"means must have shape \(n, K, d\)"):
        GaussianMixture(dist.log_weights, dist.means[..., 0], scales=dist.means[..., 0])
    y = np.random.default_rng(10).normal(size=(2, 2))
    ref = scipy_logpdf(dist, np.stack([y[0], y[0], y[1]]))[[0, 2]]
    np.testing.assert_allclose(dist[[0, 2]].logpdf(y), ref, rtol=1e-12)


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
def test_network_loss_is_the_numpy_density(noise_type, d):
    """The torch training loss and the numpy predictive density agree for every
    noise type, on parameters built by the real network from random weights."""
    gen = torch.Generator().manual_seed(0)
    net = random_network(noise_type, d, gen, spread=20.0)
    x = torch.randn(10, 4, dtype=torch.float64, generator=gen)
    y = torch.randn(10, d, dtype=torch.float64, generator=gen)
    with torch.no_grad():
        params = net(x)
        lp = mixture_log_prob(params, y).numpy()
    dist = mixture_of(params)
    if params.scale_tril is not None:
        L = params.scale_tril.numpy()
        assert np.all(np.diagonal(L, axis1=-2, axis2=-1) > 0)
        np.testing.assert_array_equal(np.triu(L, 1), 0.0)
    np.testing.assert_allclose(lp, dist.logpdf(y.numpy()), rtol=1e-10)
    np.testing.assert_allclose(lp, scipy_logpdf(dist, y.numpy()), rtol=1e-8)
    np.testing.assert_allclose(
        np.exp(params.log_weights.numpy()).sum(1), 1.0, rtol=1e-12
    )
    if noise_type == "fixed":
        np.testing.assert_allclose(dist.scales, 0.5)
    if noise_type == "isotropic":
        assert np.allclose(dist.scales, dist.scales[..., :1])
    if noise_type == "isotropic_across":
        assert np.allclose(dist.scales, dist.scales[:, :1, :1])


@pytest.mark.parametrize(
    "noise_type", ["diagonal", "isotropic", "isotropic_across", "full"]
)
def test_initial_components_and_the_scale_floor(noise_type):
    # reset_parameters documents that at initialisation the components sit
    # at mean_init with equal weights and standard deviation scale_init; with
    # no hidden layer and x = 0 the head outputs are its biases exactly. And
    # a raw scale far below zero gives the floor min_scale (softplus -> 0).
    K, d, min_scale = 3, 2, 0.05
    net = MDNNetwork(2, d, K, (), "tanh", noise_type, min_scale).double()
    mean_init = torch.arange(K * d, dtype=torch.float64).reshape(K, d)
    net.reset_parameters(torch.Generator().manual_seed(0), mean_init, scale_init=0.7)
    with torch.no_grad():
        p = net(torch.zeros(1, 2, dtype=torch.float64))
        np.testing.assert_allclose(p.log_weights.exp(), 1 / K, rtol=1e-12)
        np.testing.assert_allclose(p.means[0], mean_init, rtol=1e-12)
        full = noise_type == "full"
        L = p.scale_tril if full else torch.diag_embed(p.scales)
        np.testing.assert_allclose(L[0], 0.7 * torch.eye(d).expand(K, d, d), atol=1e-12)
        net.head.bias[K + K * d :] = -100.0  # softplus(-100) = 3.7e-44
        p = net(torch.zeros(1, 2, dtype=torch.float64))
        diag = p.scale_tril.diagonal(dim1=-2, dim2=-1) if full else p.scales
        np.testing.assert_allclose(diag, min_scale, rtol=1e-12)
        net.head.bias[K + K * d :] = 0.0
        p = net(torch.zeros(1, 2, dtype=torch.float64))
        diag = p.scale_tril.diagonal(dim1=-2, dim2=-1) if full else p.scales
        np.testing.assert_allclose(diag, np.log(2.0) + min_scale, rtol=1e-12)


def test_hidden_layers_start_uniform_on_one_over_root_fan_in():
    # reset_parameters documents torch.nn.Linear's default for the hidden
    # layers, weights and biases uniform on (-1/sqrt(fan_in), 1/sqrt(fan_in))
    # (chosen on benchmarks over Glorot weights and zero biases). With zero
    # biases every test of the numerical core passed; with the bound
    # 1/fan_in the first to fail was a backprop test, on a precondition.
    # Kolmogorov-Smirnov against the uniform law, on 400 to 120000 values.
    net = MDNNetwork(4, 1, 3, (400, 300), "tanh", "diagonal", 1e-3)
    net.reset_parameters(torch.Generator().manual_seed(0))
    for layer in (net.trunk[0], net.trunk[2]):
        bound = 1.0 / np.sqrt(layer.in_features)
        for param in (layer.weight, layer.bias):
            u = param.detach().double().numpy().ravel() / bound
            assert np.all(np.abs(u) <= 1.0)
            assert stats.kstest(u, "uniform", args=(-1.0, 2.0)).pvalue > 1e-3


@pytest.mark.parametrize("full", [False, True])
def test_logpdf_and_sample_of_many_blocks_on_worker_threads(
    full, two_threads, monkeypatch
):
    """Batches longer than one block run block by block on worker threads;
    the rows at every block edge match scipy and the draws match one worker."""
    from skmdn._mixture import SAMPLE_ROWS

    rng = np.random.default_rng(11)
    n = 2 * SAMPLE_ROWS + 123
    dist = random_mixture(rng, n=n, K=3, d=2, full=full)
    y = rng.normal(scale=2.0, size=(n, 2))
    out = dist.logpdf(y)
    edges = np.array([0, SAMPLE_ROWS - 1, SAMPLE_ROWS, 2 * SAMPLE_ROWS, n - 1])
    np.testing.assert_allclose(
        out[edges], scipy_logpdf(dist[edges], y[edges]), rtol=1e-10
    )
    if not full:  # every row, against scipy.stats.norm
        terms = stats.norm.logpdf(y[:, None, :], dist.means, dist.scales).sum(-1)
        np.testing.assert_allclose(
            out, logsumexp(dist.log_weights + terms, axis=1), rtol=1e-10
        )
    grid = np.stack([y, -y])  # leading axes across blocks
    np.testing.assert_array_equal(dist.logpdf(grid)[1], dist.logpdf(-y))
    draws = dist.sample(2, random_state=3)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one worker
    np.testing.assert_array_equal(dist.logpdf(y), out)
    np.testing.assert_array_equal(dist.sample(2, random_state=3), draws)

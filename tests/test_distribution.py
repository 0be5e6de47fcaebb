"""The predictive distribution against independent references.

scipy.stats for single Gaussians, numerical integration (scipy.integrate) for
mixtures, dense grids for modes and highest-density regions, analytic
entropies, and round trips on mixtures with extreme separations and scales.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats
from scipy.special import logsumexp

from skmdn import GaussianMixture, HighestDensityRegion
from skmdn import _mixture as mixture_module
from skmdn._univariate import mixture_cdf


def random_mixture(rng, n, K, *, spread=3.0, log_scale=1.0, d=1, full=False):
    log_w = np.log(rng.dirichlet(np.ones(K), n))
    means = spread * rng.normal(size=(n, K, d))
    if full:
        L = np.tril(rng.normal(size=(n, K, d, d)), -1)
        L += np.exp(log_scale * rng.normal(size=(n, K, d)))[..., None] * np.eye(d)
        return GaussianMixture(log_w, means, scale_tril=L)
    scales = np.exp(log_scale * rng.normal(size=(n, K, d)))
    return GaussianMixture(log_w, means, scales=scales, univariate=d == 1)


def extreme_mixture(seed, n=20, K=4):
    """Components up to 1e6 apart with scales from 1e-6 to 1e3."""
    rng = np.random.default_rng(seed)
    log_w = np.log(rng.dirichlet(np.full(K, 0.5), n))
    means = rng.choice([-1e6, 0.0, 1.0, 1e6], size=(n, K, 1)) + rng.normal(
        size=(n, K, 1)
    )
    scales = 10.0 ** rng.uniform(-6, 3, size=(n, K, 1))
    return GaussianMixture(log_w, means, scales=scales, univariate=True)


def scipy_mixture_cdf(dist, i, y):
    w, mu, s = dist.weights[i], dist.means[i, :, 0], dist.scales[i, :, 0]
    return float(np.sum(w * stats.norm.cdf(y, mu, s)))


# --------------------------------------------------------------- one Gaussian
def test_single_gaussian_matches_scipy_including_far_tails():
    rng = np.random.default_rng(0)
    mu, s = rng.normal(size=50) * 10, 10.0 ** rng.uniform(-6, 3, 50)
    dist = GaussianMixture(
        np.zeros((50, 1)), mu[:, None, None], scales=s[:, None, None], univariate=True
    )
    y = mu + s * rng.normal(size=50) * 3
    np.testing.assert_allclose(dist.pdf(y), stats.norm.pdf(y, mu, s), rtol=1e-12)
    np.testing.assert_allclose(dist.cdf(y), stats.norm.cdf(y, mu, s), rtol=1e-12)
    for q in (1e-12, 0.001, 0.3, 0.5, 0.97, 1 - 1e-12):
        ref = stats.norm.ppf(q, mu, s)
        np.testing.assert_allclose(
            dist.ppf(q), ref, rtol=1e-8, atol=1e-8 * s.min(), err_msg=f"q={q}"
        )
    lo, hi = dist.interval(0.8).T
    np.testing.assert_allclose(lo, stats.norm.ppf(0.1, mu, s), rtol=1e-8)
    np.testing.assert_allclose(hi, stats.norm.ppf(0.9, mu, s), rtol=1e-8)
    assert np.all(dist.ppf(0.0) == -np.inf) and np.all(dist.ppf(1.0) == np.inf)
    # A Gaussian is symmetric and unimodal: its HDR is the central interval.
    region = dist.hdr(0.8)
    assert np.all(region.n_intervals == 1)
    np.testing.assert_allclose(region.intervals[:, 0], dist.interval(0.8), rtol=1e-8)
    assert np.all(np.abs(dist.mode() - mu) <= 1e-10 * s)
    np.testing.assert_allclose(dist.std(), s, rtol=1e-12)


# ---------------------------------------------------------------- mixtures
def test_mixture_cdf_is_the_integral_of_the_pdf():
    dist = random_mixture(np.random.default_rng(1), 6, 4)
    for i in range(len(dist)):
        row = dist[i]
        for y in (-2.0, 0.3, 4.0):
            ref, _ = integrate.quad(
                lambda t, row=row: row.pdf(np.array([t]))[0], -np.inf, y
            )
            assert row.cdf(np.array([y]))[0] == pytest.approx(ref, abs=1e-9)
            assert row.cdf(np.array([y]))[0] == pytest.approx(
                scipy_mixture_cdf(dist, i, y), abs=1e-14
            )


@pytest.mark.parametrize("d, full", [(1, False), (3, False), (3, True)])
def test_sf_matches_scipy_in_the_far_upper_tail(d, full):
    """sf is sum_k w_k norm.sf(y, mu_k, s_k) (scipy) to full relative
    precision out to 30 standard deviations, where 1 - cdf is 0, and
    1 - cdf in the body; per output for multi-output mixtures (marginal
    standard deviations from the covariances), with a grid broadcast."""
    rng = np.random.default_rng(41)
    dist = random_mixture(rng, 5, 3, d=d, full=full)
    sd = np.sqrt(np.diagonal(dist.covariances, axis1=-2, axis2=-1))  # (n, K, d)
    top = (dist.means + 30 * sd).max(1)  # (n, d): 30 sd above every component
    grid = np.stack([dist.means.mean(1), top])  # (2, n, d)
    ref = (
        dist.weights[..., None] * stats.norm.sf(grid[:, :, None], dist.means, sd)
    ).sum(2)  # (2, n, d)
    squeeze = (lambda a: a[..., 0]) if d == 1 else (lambda a: a)
    out = dist.sf(squeeze(grid))
    np.testing.assert_allclose(out, squeeze(ref), rtol=1e-12, atol=0)
    assert np.all(out[1] > 0) and np.all(1 - dist.cdf(squeeze(top)) == 0)
    np.testing.assert_allclose(out[0], 1 - dist.cdf(squeeze(grid[0])), atol=1e-15)
    if d == 1:  # one grid shared by every row, as (m, 1)
        levels = np.linspace(-5.0, 5.0, 4)
        np.testing.assert_array_equal(
            dist.sf(levels[:, None]), dist.sf(np.repeat(levels[:, None], 5, 1))
        )


def test_sf_of_a_point_mass_is_the_right_continuous_step():
    dist = GaussianMixture(
        np.log([[0.25, 0.75]]), np.array([[[0.0], [2.0]]]),
        scales=np.array([[[1.0], [0.0]]]), univariate=True,
    )  # fmt: skip
    y = np.array([1.0, 2.0, 2.5])[:, None]
    expected = 0.25 * stats.norm.sf(y[:, 0]) + 0.75 * (y[:, 0] < 2.0)
    np.testing.assert_allclose(dist.sf(y)[:, 0], expected, rtol=1e-14)
    np.testing.assert_allclose(dist.sf(y) + dist.cdf(y), 1.0, rtol=1e-15)


# ------------------------------------------------------------ log tails
def scipy_log_tails(dist, y):
    """``log P(Y <= y)`` and ``log P(Y > y)`` (y of shape (m, n, d)) from
    scipy.stats.norm.logcdf / logsf per component, combined by scipy's
    logsumexp over the mixture's own normalised log-weights.

    A side whose logsumexp exceeds log(1/2) sums terms that are all near 0,
    and keeps only absolute precision (1e-16 against -2.9e-7 five standard
    deviations above a component): there it is taken as
    ``log1p(-exp(other side))``, an identity, exact as the other side is
    below one half."""
    sd = np.sqrt(np.diagonal(dist.covariances, axis1=-2, axis2=-1))  # (n, K, d)
    log_w = dist.log_weights - logsumexp(dist.log_weights, axis=1, keepdims=True)
    y = y[:, :, None, :]  # (m, n, 1, d) against (n, K, d)
    lo = logsumexp(log_w[..., None] + stats.norm.logcdf(y, dist.means, sd), axis=2)
    hi = logsumexp(log_w[..., None] + stats.norm.logsf(y, dist.means, sd), axis=2)
    half = np.log(0.5)
    with np.errstate(divide="ignore"):
        return (
            np.where(lo < half, lo, np.log1p(-np.exp(hi))),
            np.where(hi < half, hi, np.log1p(-np.exp(lo))),
        )


def tail_grid(dist, offsets=(-1000, -40, -5, 0, 5, 40, 1000)):
    """Values (m, n, d) ``k`` marginal standard deviations beyond every
    component (below the lowest for k < 0, above the highest for k > 0),
    and at each row's mean for k = 0."""
    sd = np.sqrt(np.diagonal(dist.covariances, axis1=-2, axis2=-1))
    grid = []
    for k in offsets:
        if k < 0:
            grid.append((dist.means + k * sd).min(1))
        elif k > 0:
            grid.append((dist.means + k * sd).max(1))
        else:
            grid.append(np.einsum("nk,nkd->nd", dist.weights, dist.means))
    return np.stack(grid)


@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("d, full", [(1, False), (3, False), (3, True)])
def test_logcdf_and_logsf_match_scipy_far_into_both_tails(K, d, full):
    """logcdf and logsf are scipy's per-component logcdf / logsf combined
    over the weights, to 1e-12 relative, out to 1000 standard deviations
    beyond every component, where cdf and sf are 0 (or 1); exp of them is
    cdf and sf wherever those do not underflow; per output for
    multi-output mixtures."""
    rng = np.random.default_rng(59 + K + d + full)
    dist = random_mixture(rng, 7, K, d=d, full=full)
    grid = tail_grid(dist)  # (7, n, d)
    lo_ref, hi_ref = scipy_log_tails(dist, grid)
    squeeze = (lambda a: a[..., 0]) if d == 1 else (lambda a: a)
    lo, hi = dist.logcdf(squeeze(grid)), dist.logsf(squeeze(grid))
    assert lo.shape == hi.shape == squeeze(grid).shape and lo.dtype == np.float64
    np.testing.assert_allclose(lo, squeeze(lo_ref), rtol=1e-12, atol=0)
    np.testing.assert_allclose(hi, squeeze(hi_ref), rtol=1e-12, atol=0)
    if K == 1:  # a single Gaussian: scipy's own logcdf and logsf
        sd = np.sqrt(np.diagonal(dist.covariances, axis1=-2, axis2=-1))[:, 0]
        args = (dist.means[:, 0], sd)
        np.testing.assert_allclose(
            lo, squeeze(stats.norm.logcdf(grid, *args)), rtol=1e-12, atol=0
        )
        np.testing.assert_allclose(
            hi, squeeze(stats.norm.logsf(grid, *args)), rtol=1e-12, atol=0
        )
    # where cdf and sf underflow, the logs are finite (about -z^2 / 2)
    assert np.all(dist.cdf(squeeze(grid[:2])) == 0) and np.all(lo[:2] < -700)
    assert np.all(dist.sf(squeeze(grid[-2:])) == 0) and np.all(hi[-2:] < -700)
    # where they do not, exp of the logs gives them back
    cdf, sf = dist.cdf(squeeze(grid)), dist.sf(squeeze(grid))
    ok = cdf > 1e-300
    np.testing.assert_allclose(np.exp(lo[ok]), cdf[ok], rtol=1e-12, atol=0)
    ok = sf > 1e-300
    np.testing.assert_allclose(np.exp(hi[ok]), sf[ok], rtol=1e-12, atol=0)


def test_logcdf_and_logsf_broadcast_and_refuse_shapes_as_cdf():
    dist = random_mixture(np.random.default_rng(61), 5, 3)
    levels = np.linspace(-50.0, 50.0, 6)
    for method in (dist.logcdf, dist.logsf):
        # one grid shared by every row, as (m, 1): as repeated per row
        np.testing.assert_array_equal(
            method(levels[:, None]), method(np.repeat(levels[:, None], 5, 1))
        )
        assert method(0.0).shape == (5,)
        np.testing.assert_array_equal(method(np.float32(0.5)), method(0.5))
        with pytest.raises(ValueError, match=r"pass shape \(5,\)"):
            method(np.zeros(4))
    multi = random_mixture(np.random.default_rng(62), 4, 2, d=2, full=True)
    y = np.random.default_rng(63).normal(size=(3, 4, 2))
    np.testing.assert_array_equal(multi.logcdf(y)[1], multi.logcdf(y[1]))
    shared = y[:, :1]  # (3, 1, 2): the same values in every row
    np.testing.assert_array_equal(
        multi.logsf(shared), multi.logsf(np.repeat(shared, 4, axis=1))
    )
    with pytest.raises(ValueError, match=r"pass shape \(4, 2\)"):
        multi.logsf(np.zeros(4))


def test_logcdf_and_logsf_of_a_point_mass_are_the_logs_of_the_step():
    dist = GaussianMixture(
        np.log([[0.25, 0.75]]), np.array([[[0.0], [2.0]]]),
        scales=np.array([[[1.0], [0.0]]]), univariate=True,
    )  # fmt: skip
    y = np.array([1.0, 2.0, 2.5, 60.0, -60.0])[:, None]
    step = y[:, 0] >= 2.0  # right-continuous: P(Y <= 2) holds the mass
    cdf = 0.25 * stats.norm.cdf(y[:, 0]) + 0.75 * step
    np.testing.assert_allclose(np.exp(dist.logcdf(y)[:, 0]), cdf, rtol=1e-14)
    sf = 0.25 * stats.norm.sf(y[:, 0]) + 0.75 * ~step
    np.testing.assert_allclose(np.exp(dist.logsf(y)[:, 0]), sf, rtol=1e-14)
    # where cdf and sf underflow: the Gaussian's tail alone
    tail = np.log(0.25) + stats.norm.logcdf(-60.0)
    assert dist.logcdf(y)[4, 0] == pytest.approx(tail, rel=1e-14)
    assert dist.logsf(y)[3, 0] == pytest.approx(tail, rel=1e-14)


def test_a_weight_below_1e_minus_308_still_carries_its_far_tail():
    # exp(-800) is 0 in float64: log(weights) would drop the component, and
    # logcdf 30 scales below both would be that of the other, 1e5 nats off
    log_w = np.array([[-800.0, 0.0]])
    dist = GaussianMixture(
        log_w, np.array([[[0.0], [1000.0]]]), scales=np.ones((1, 2, 1)),
        univariate=True,
    )  # fmt: skip
    assert dist.weights[0, 0] == 0.0
    y = np.array([-30.0, 0.0, 900.0])
    ref = logsumexp(log_w.T + stats.norm.logcdf(y, [[0.0], [1000.0]], 1.0), axis=0)
    np.testing.assert_allclose(dist.logcdf(y[:, None]), ref[:, None], rtol=1e-12)


def test_cdf_never_exceeds_one_above_every_component():
    # float64 weights sum to one only to rounding; before the cap, F(y) was
    # 1 + 1 or 2 ulps for about one row in ten
    dist = random_mixture(np.random.default_rng(3), 2000, 5)
    far = dist.means.max(axis=(1, 2)) + 50 * dist.scales.max(axis=(1, 2))
    F = dist.cdf(far)
    assert F.max() == 1.0
    np.testing.assert_allclose(F, 1.0, rtol=0, atol=4e-16)
    assert dist.cdf(-far).min() >= 0.0


def test_float32_log_weights_give_a_proper_distribution():
    """log_softmax in float32 sums to one only to about 1e-7; the mixture is
    the exactly normalised one (scipy's logsumexp), so a CDF never exceeds 1
    and a high-confidence HDR is not stretched by the missing mass."""
    from scipy.special import logsumexp

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 5)).astype(np.float32)
    log_w32 = logits - logsumexp(logits, axis=1, keepdims=True)  # float32
    assert np.abs(np.exp(log_w32.astype(float)).sum(1) - 1).max() > 3e-8
    means, scales = rng.normal(size=(2000, 5, 1)), np.ones((2000, 5, 1))
    dist = GaussianMixture(log_w32, means, scales=scales, univariate=True)
    exact = log_w32.astype(float)
    exact -= logsumexp(exact, axis=1, keepdims=True)
    ref = GaussianMixture(exact, means, scales=scales, univariate=True)
    # to two ulps of 1 (numpy 1.x's exp rounds differently), not 1e-7
    np.testing.assert_allclose(dist.weights.sum(1), 1.0, rtol=0, atol=5e-16)
    assert dist.cdf(np.full(2000, 40.0)).max() <= 1.0 + 5e-16
    i = int(np.argmin(np.exp(log_w32.astype(float)).sum(1)))  # most mass missing
    np.testing.assert_allclose(
        dist[i].hdr(0.9999999).intervals, ref[i].hdr(0.9999999).intervals, rtol=1e-9
    )
    np.testing.assert_allclose(dist.ppf(0.3), ref.ppf(0.3), rtol=1e-12, atol=1e-14)


def test_ppf_inverts_the_cdf_of_random_mixtures():
    dist = random_mixture(np.random.default_rng(2), 500, 5)
    q = np.random.default_rng(3).random(500)
    assert np.max(np.abs(dist.cdf(dist.ppf(q)) - q)) < 1e-12
    levels = np.linspace(0.001, 0.999, 41)
    quantiles = dist.quantile(levels)
    assert quantiles.shape == (500, 41)
    assert np.all(np.diff(quantiles, axis=1) > 0)
    np.testing.assert_array_equal(quantiles[:, 7], dist.ppf(levels[7]))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_round_trip_and_monotonicity_with_extreme_separation_and_scale(seed):
    dist = extreme_mixture(seed)
    y = dist.sample(5, random_state=seed)  # (n, 5): where the mass is
    back = dist.ppf(dist.cdf(y.T)).T
    # Accuracy 1e-8 relative to max(|y|, smallest scale); where the density is
    # tiny the CDF itself is only known to ~1e-16, hence the second term.
    s_min = dist.scales.min(axis=(1, 2))[:, None]
    density = dist.pdf(y.T).T
    tol = 1e-8 * np.maximum(np.abs(y), s_min) + 4e-16 / density
    assert np.all(np.abs(back - y) <= tol)
    levels = np.concatenate([[1e-10], np.linspace(0.01, 0.99, 25), [1 - 1e-10]])
    quantiles = dist.quantile(levels)
    assert np.all(np.diff(quantiles, axis=1) >= 0)
    # F(ppf(q)) = q up to the CDF's change over one float64 spacing of y,
    # which inside a 1e-6 wide needle at 1e6 is about 1e-4.
    resolution = dist.pdf(quantiles.T).T * 16 * np.spacing(np.abs(quantiles))
    assert np.all(np.abs(dist.cdf(quantiles.T).T - levels) <= resolution + 1e-12)


def test_quantiles_of_a_wide_and_a_needle_component():
    # Half the mass in N(0, 1e3^2), half in N(1e6, 1e-6^2): the median sits at
    # the top of the first component's contribution, and every level above
    # 0.5 + (mass of the wide one above 1e6) falls inside the needle.
    dist = GaussianMixture(
        np.log([[0.5, 0.5]]),
        np.array([[[0.0], [1e6]]]),
        scales=np.array([[[1e3], [1e-6]]]),
        univariate=True,
    )
    for q in (0.1, 0.25, 0.49):
        assert dist.ppf(q)[0] == pytest.approx(stats.norm.ppf(2 * q, 0, 1e3), rel=1e-9)
    assert dist.ppf(0.75)[0] == pytest.approx(1e6, abs=1e-6)
    assert abs(dist.ppf(0.75)[0] - 1e6) < 1e-5


def test_upper_tail_quantiles_of_a_mixture_match_the_survival_function():
    # Levels near one are solved on the survival function 1 - F, which keeps
    # full relative precision there; solved on F itself, F(y) - q is known
    # only to 1e-16 absolute, which moves y by 1e-16 / p(y) (1e-5 at
    # q = 1 - 1e-12). Reference: scipy's norm.sf, root by brentq.
    w, mu, s = np.array([0.3, 0.7]), np.array([-1.0, 2.0]), np.array([0.5, 1.5])
    dist = GaussianMixture(
        np.log(w)[None], mu[None, :, None], scales=s[None, :, None], univariate=True
    )
    for tail in (1e-6, 1e-9, 1e-12, 1e-14):
        q = 1.0 - tail
        target = 1.0 - q  # the tail mass the float q stands for

        def excess(y, target=target):
            return float(np.sum(w * stats.norm.sf(y, mu, s))) - target

        ref = optimize.brentq(excess, 0.0, 50.0, xtol=1e-14, rtol=1e-15)
        assert dist.ppf(q)[0] == pytest.approx(ref, rel=1e-10), tail
    # and the survival function of mixture_cdf itself, against scipy
    y = np.array([3.0, 8.0, 15.0])
    sf = mixture_cdf(y, w[None], mu[None], s[None], upper=True)
    ref = (w * stats.norm.sf(y[:, None], mu, s)).sum(1)
    np.testing.assert_allclose(sf, ref, rtol=1e-12)


# --------------------------------------------------------------------- HDR
def grid_hdr(row: GaussianMixture, confidence, lo, hi, m=200_001):
    """Reference HDR: the densest cells of a fine grid holding the mass."""
    x = np.linspace(lo, hi, m)
    p = row.pdf(x[:, None])[:, 0]
    mass = p * (x[1] - x[0])
    order = np.argsort(-p)
    keep = order[: np.searchsorted(np.cumsum(mass[order]), confidence) + 1]
    return x, np.isin(np.arange(m), keep), x[1] - x[0]


def test_hdr_matches_a_dense_grid_on_random_mixtures():
    dist = random_mixture(np.random.default_rng(4), 6, 4, spread=4.0, log_scale=0.5)
    region = dist.hdr(0.8)
    assert isinstance(region, HighestDensityRegion)
    w, mu, s = dist.weights, dist.means[..., 0], dist.scales[..., 0]
    for i, iv in enumerate(region.to_list()):
        # Mass by scipy, density at every end point equals the threshold.
        mass = sum(
            np.sum(
                w[i] * (stats.norm.cdf(b, mu[i], s[i]) - stats.norm.cdf(a, mu[i], s[i]))
            )
            for a, b in iv
        )
        assert mass == pytest.approx(0.8, abs=1e-9)
        ends = iv.ravel()
        np.testing.assert_allclose(
            dist[[i] * ends.size].pdf(ends), region.threshold[i], rtol=1e-7
        )
        x, inside, dx = grid_hdr(dist[i], 0.8, -25, 25)
        ours = ((iv[:, :1] <= x) & (x <= iv[:, 1:])).any(0)
        assert np.mean(ours != inside) * 50 < 10 * dx  # disagreement: a few cells
    central = dist.interval(0.8)
    assert np.all(region.width() <= central[:, 1] - central[:, 0] + 1e-9)


def test_hdr_of_a_bimodal_mixture_is_two_intervals_and_shorter():
    dist = GaussianMixture(
        np.log([[0.5, 0.5], [0.3, 0.7]]),
        np.array([[[-5.0], [5.0]], [[-5.0], [5.0]]]),
        scales=np.ones((2, 2, 1)),
        univariate=True,
    )
    region = dist.hdr(0.9)
    np.testing.assert_array_equal(region.n_intervals, [2, 2])
    # Equal weights: each interval holds 0.45 of the mass -> mu +- z_{0.95}
    # with negligible overlap.
    z = stats.norm.ppf(0.5 + 0.45)
    np.testing.assert_allclose(
        region.intervals[0], [[-5 - z, -5 + z], [5 - z, 5 + z]], rtol=1e-6
    )
    assert np.all(region.width() < np.diff(dist.interval(0.9), axis=1)[:, 0])
    assert not region.contains(np.array([0.0, 0.0])).any()
    assert region.contains(np.array([-5.0, 5.0])).all()


def test_hdr_contains_broadcasts_a_grid_and_indexes_rows_as_the_mixture_does():
    """contains took only shape (n,), where pdf and cdf broadcast a grid,
    and the region had no row indexing. Reference: the definition of the
    region, {y : pdf(y) >= threshold}, on a grid (values within 1e-6 of an
    end point skipped), and the mixture's own indexing rules."""
    rng = np.random.default_rng(4)
    n, K = 3, 3
    dist = GaussianMixture(
        np.log(rng.dirichlet(np.ones(K), n)),
        rng.normal(0, 4, (n, K, 1)),
        scales=rng.uniform(0.5, 1.5, (n, K, 1)),
        univariate=True,
    )
    region = dist.hdr(0.8)
    grid = np.linspace(-15, 15, 601)  # m != n
    got = region.contains(grid[:, None])
    assert got.shape == (grid.size, n)
    want = dist.pdf(grid[:, None]) >= region.threshold
    ends = region.intervals[~np.isnan(region.intervals)]
    far = np.abs(grid[:, None] - ends).min(axis=1) > 1e-6
    np.testing.assert_array_equal(got[far], want[far])
    assert want[far].any() and not want[far].all()
    # one value per row, as before; a column of n values is ambiguous
    np.testing.assert_array_equal(region.contains(grid[[5, 300, 550]]),
                                  np.diag(got[[5, 300, 550]]))  # fmt: skip
    with pytest.raises(ValueError, match=r"shape \(3, 1\).*broadcast_to"):
        region.contains(grid[:3, None])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        region.contains(grid[:2])
    # rows, as GaussianMixture's indexing selects them
    for index in (1, -1, slice(0, 2), np.array([2, 0]), np.array([True, False, True])):
        part = region[index]
        rows = dist[index].hdr(0.8)
        np.testing.assert_array_equal(part.intervals, rows.intervals)
        np.testing.assert_array_equal(part.n_intervals, rows.n_intervals)
        np.testing.assert_array_equal(part.threshold, rows.threshold)
        assert part.confidence == 0.8
    for index in (3, -4):
        with pytest.raises(IndexError, match="out of range for 3 rows"):
            region[index]
    with pytest.raises(IndexError, match="must select rows"):
        region[0, 1]


def test_hdr_handles_a_shallow_dip():
    # Two overlapping components whose valley just dips below the threshold:
    # the region splits into two intervals, and its mass stays exact.
    dist = GaussianMixture(
        np.log([[0.5, 0.5]]),
        np.array([[[-1.2], [1.2]]]),
        scales=np.ones((1, 2, 1)),
        univariate=True,
    )
    for c in (0.3, 0.6, 0.95):
        region = dist.hdr(c)
        iv = region.to_list()[0]
        mass = sum(
            dist.cdf(np.array([b]))[0] - dist.cdf(np.array([a]))[0] for a, b in iv
        )
        assert mass == pytest.approx(c, abs=1e-9)
    assert dist.hdr(0.3).n_intervals[0] == 2 and dist.hdr(0.95).n_intervals[0] == 1


def test_hdr_finds_a_mode_that_no_component_mean_climbs_to():
    # Regression: between the flank of N(0.575, 1.76^2) and the rise of
    # N(7.056, 6.06^2) sits a shallow mode at 0.811 (a dip at 0.682 before
    # it) whose basin holds no component mean, and no grid point either;
    # mean-shift from the means missed it, m(t) jumped over c = 0.3 and the
    # region came back with probability 0.3096. Reference: scipy's CDF and
    # the threshold of a dense grid.
    mu = np.array([1.916, 3.778, -0.155, 2.053, 0.575, 7.056])
    s = np.array([82.0816, 0.3687, 0.2462, 0.0317, 1.7601, 6.0634])
    w = np.array([0.1598, 0.1296, 0.0274, 0.0246, 0.1692, 0.4893])
    w = w / w.sum()
    dist = GaussianMixture(
        np.log(w)[None], mu[None, :, None], scales=s[None, :, None], univariate=True
    )
    x = np.linspace(-40, 60, 2_000_001)
    p = np.sum(w * stats.norm.pdf(x[:, None], mu, s), axis=1)
    p_sorted = np.sort(p)[::-1]
    cum = np.cumsum(p_sorted) * (x[1] - x[0])
    for c in (0.2, 0.3, 0.5):
        region = dist.hdr(c)
        mass = sum(
            np.sum(w * (stats.norm.cdf(b, mu, s) - stats.norm.cdf(a, mu, s)))
            for a, b in region.to_list()[0]
        )
        assert mass == pytest.approx(c, abs=1e-9)
        t = p_sorted[np.searchsorted(cum, c)]
        assert region.threshold[0] == pytest.approx(t, rel=1e-5)


@pytest.mark.parametrize("d, full", [(1, False), (1, True), (2, False), (2, True)])
def test_quantiles_and_hdr_of_zero_rows_are_empty(d, full):
    # Regression: ppf divided by the number of rows and mixture_hdr reshaped
    # a size-0 grid to (0, -1). The reference is the same call on the 3-row
    # distribution, cut to zero rows along its row axis.
    dist = random_mixture(np.random.default_rng(12), 3, 2, d=d, full=full)
    if full and d == 1:
        dist = GaussianMixture(
            dist.log_weights, dist.means, scale_tril=dist.scale_tril, univariate=True
        )
    empty = dist[0:0]
    levels = np.array([0.0, 0.1, 0.5, 1.0]).reshape(-1, *(1,) * (1 + (d > 1)))
    for call, row_axis in [
        (lambda g: g.ppf(0.3), 0),
        (lambda g: g.ppf(levels), 1),
        (lambda g: g.quantile(0.3), 0),
        (lambda g: g.quantile([0.1, 0.9]), 0),
        (lambda g: g.interval(0.8), 0),
    ]:
        want = np.take(call(dist), np.arange(0), axis=row_axis)
        got = call(empty)
        assert got.shape == want.shape and got.dtype == np.float64
    marginals = [empty] if empty.univariate else [empty.marginal(j) for j in range(d)]
    for marginal in marginals:
        region = marginal.hdr(0.9)
        assert region.intervals.shape[0] == 0 and region.intervals.shape[2] == 2
        assert region.n_intervals.shape == region.threshold.shape == (0,)
        assert region.width().shape == region.contains(np.zeros(0)).shape == (0,)
        assert region.to_list() == [] and len(region) == 0


def test_hdr_in_blocks_of_rows_is_each_rows_own(monkeypatch):
    # hdr runs on blocks of rows (its temporaries grow as K^2 per row); with
    # blocks of two rows, regions of one to three intervals are padded to the
    # widest, and each row's region is the one it has alone, of mass c by
    # scipy's CDF (to the solver's tolerance: padding columns of a block
    # change the bracket's rounding, as other rows of a batch always did).
    dist = random_mixture(np.random.default_rng(21), 15, 4, spread=4.0)
    monkeypatch.setattr(mixture_module, "_BLOCK_VALUES", 2 * 4 * (17 * 4 + 20))
    region = dist.hdr(0.7)
    assert len(set(region.n_intervals.tolist())) > 1
    assert region.intervals.shape == (15, region.n_intervals.max(), 2)
    w, mu, s = dist.weights, dist.means[..., 0], dist.scales[..., 0]
    for i, iv in enumerate(region.to_list()):
        alone = dist[i].hdr(0.7)
        assert alone.n_intervals[0] == region.n_intervals[i]
        np.testing.assert_allclose(iv, alone.to_list()[0], rtol=1e-9, atol=1e-9)
        assert np.isnan(region.intervals[i, len(iv) :]).all()
        assert region.threshold[i] == pytest.approx(alone.threshold[0], rel=1e-9)
        mass = sum(
            np.sum(
                w[i] * (stats.norm.cdf(b, mu[i], s[i]) - stats.norm.cdf(a, mu[i], s[i]))
            )
            for a, b in iv
        )
        assert mass == pytest.approx(0.7, abs=1e-9)


def test_blocks_of_rows_of_mixed_extreme_scales(monkeypatch):
    # Both sides of two merged changes at once: hdr() and mode() run on blocks
    # of rows AND in units of 2**+-600 for rows of extreme scales. With blocks
    # of 4 of 23 rows, every third row 2**600 and every third 2**-600 times a
    # reference mixture, each row's results are the reference's in its units.
    ref = random_mixture(np.random.default_rng(23), 23, 3, spread=4.0)
    c = 2.0 ** np.where(np.arange(23) % 3 == 0, 600, -600)
    c[np.arange(23) % 3 == 2] = 1.0
    dist = GaussianMixture(
        ref.log_weights, ref.means * c[:, None, None], ref.scales * c[:, None, None],
        univariate=True,
    )  # fmt: skip
    want_region, want_mode = ref.hdr(0.8), ref.mode()
    monkeypatch.setattr(mixture_module, "_BLOCK_VALUES", 4 * 3 * (17 * 3 + 12))
    assert len(mixture_module.row_blocks(len(dist), 3 * (17 * 3 + 12))) == 6
    region = dist.hdr(0.8)
    np.testing.assert_array_equal(region.n_intervals, want_region.n_intervals)
    np.testing.assert_allclose(
        region.intervals / c[:, None, None], want_region.intervals, rtol=1e-9
    )
    np.testing.assert_allclose(region.threshold * c, want_region.threshold, rtol=1e-9)
    np.testing.assert_allclose(dist.mode() / c, want_mode, rtol=0, atol=1e-6)
    w, mu, s = ref.weights, ref.means[..., 0], ref.scales[..., 0]
    for i, iv in enumerate(want_region.to_list()):  # mass 0.8 by scipy's CDF
        mass = sum(
            np.sum(
                w[i] * (stats.norm.cdf(b, mu[i], s[i]) - stats.norm.cdf(a, mu[i], s[i]))
            )
            for a, b in iv
        )
        assert mass == pytest.approx(0.8, abs=1e-9)


@pytest.mark.parametrize("d, full", [(1, False), (2, False), (2, True)])
def test_mode_in_blocks_of_rows_is_each_rows_own(monkeypatch, d, full):
    # mode runs on blocks of rows (K (K + 1) / 2 ascents of K components per
    # row); one row's ascent does not depend on the others', so blocks of one
    # and two rows give the bits of the whole batch, each row a maximum.
    dist = random_mixture(np.random.default_rng(22), 9, 4, d=d, full=full)
    whole = dist.mode()
    per_row = 4 * (4 if d == 1 else 10) * d * (d if full else 1)
    for rows in (1, 2):
        monkeypatch.setattr(mixture_module, "_BLOCK_VALUES", rows * per_row)
        np.testing.assert_array_equal(dist.mode(), whole)
    x = np.linspace(-15, 15, 3001)
    for j in range(d):  # no higher density a small step away along each axis
        step = np.zeros(d)
        step[j] = x[1] - x[0]
        for sign in (1, -1):
            moved = whole + sign * (step if d > 1 else step[0])
            assert np.all(dist.logpdf(moved) <= dist.logpdf(whole) + 1e-13)


# -------------------------------------------------------------------- modes
def test_mode_matches_a_dense_grid_in_1d():
    dist = random_mixture(np.random.default_rng(5), 40, 5)
    mode = dist.mode()
    x = np.linspace(-20, 20, 20_001)[:, None]
    best = dist.logpdf(np.broadcast_to(x, (x.size, 40))).max(0)
    assert np.all(dist.logpdf(mode) >= best - 1e-12)
    assert np.all(dist.logpdf(mode) >= dist.logpdf(dist.approx_mode()))


@pytest.mark.parametrize("full", [False, True])
def test_mode_matches_a_dense_grid_in_2d(full):
    n = 20
    dist = random_mixture(np.random.default_rng(6), n, 4, spread=2.0, d=2, full=full)
    mode = dist.mode()
    g = np.linspace(-12, 12, 193)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 1, 2)
    best = dist.logpdf(np.broadcast_to(grid, (len(grid), n, 2))).max(0)
    assert mode.shape == (n, 2)
    assert np.all(dist.logpdf(mode) >= best - 1e-12)
    # A maximum: the density is lower a small step away in every direction.
    for step in np.array([[1e-4, 0], [0, 1e-4], [-1e-4, 1e-4]]):
        assert np.all(dist.logpdf(mode + step) <= dist.logpdf(mode) + 1e-13)


def test_mode_of_two_merged_components_is_exact_to_the_documented_accuracy():
    # Two equal Gaussians 2 h scales apart (h < 1: one non-degenerate
    # maximum, at their midpoint by symmetry). mode() documents the location
    # to about 1e-10 s_min; ascents that stopped on a rounding-level loss of
    # density, or took mean-shift's short step on a tie with Newton's, ended
    # up to 1.3e-8 scales away (h = 0.7976).
    h = np.linspace(0.3, 0.98, 400)
    centre, s = 5.0, 2.0
    means = centre + s * np.stack([-h, h], 1)[..., None]
    dist = GaussianMixture(
        np.log(np.full((h.size, 2), 0.5)),
        means,
        scales=np.full((h.size, 2, 1), s),
        univariate=True,
    )
    error = np.abs(dist.mode() - centre)
    assert error.max() <= 1e-10 * s + 4 * np.spacing(centre), h[np.argmax(error)]


def test_mode_at_the_crossing_of_two_elongated_components_in_2d():
    # Two thin components in a cross: each mean is a local maximum of its
    # own, but where they overlap the density is higher (row 0: 2 exp(-1/2)
    # = 1.21 against 1.0 in units of one peak). No mean-shift ascent from a
    # mean gets there; the peak of the product of the two components does,
    # its precision-weighted mean (row 1: the plain midpoint of the means
    # climbs to the second mean instead).
    log_w = np.log([[0.5, 0.5], [0.72, 0.28]])
    means = np.array([[[4.0, 0.0], [0.0, 4.0]], [[-2.22, 0.44], [-0.11, 1.61]]])
    scales = np.array([[[4.0, 0.3], [0.3, 4.0]], [[22.29, 0.087], [0.124, 6.0]]])
    dist = GaussianMixture(log_w, means, scales=scales)
    mode = dist.mode()
    for i, cross in enumerate([(0.0, 0.0), (-0.11, 0.44)]):
        comps = [
            stats.multivariate_normal(means[i, k], np.diag(scales[i, k] ** 2))
            for k in range(2)
        ]

        def neg_pdf(x, i=i, comps=comps):
            return -sum(np.exp(log_w[i, k]) * comps[k].pdf(x) for k in range(2))

        g = np.linspace(-1.0, 1.0, 401)
        grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
        grid += cross
        start = grid[np.argmin(neg_pdf(grid))]
        options = {"xatol": 1e-10, "fatol": 1e-16}
        ref = optimize.minimize(neg_pdf, start, method="Nelder-Mead", options=options)
        # the global maximum: above every mean (and every grid point)
        assert -ref.fun > -neg_pdf(means[i]).min()
        np.testing.assert_allclose(mode[i], ref.x, atol=1e-6)
        assert dist[i].pdf(mode[i : i + 1])[0] == pytest.approx(-ref.fun, rel=1e-12)


def test_mode_and_small_hdr_far_from_zero_are_exact_to_the_scale():
    # Regression: ascents stopped at steps below 1e-10 |x|, i.e. 0.1 at 1e9,
    # so the mode of unit-scale components there was 2e-3 off, and the HDR
    # of probability 1e-3 (whose threshold lies just below the peak) came
    # back empty. Float64 resolves 1e9 + x to 1.2e-7.
    log_w = np.log([[0.142, 0.858]])
    means, scales = np.array([[[-0.772], [0.312]]]), np.array([[[0.603], [1.465]]])
    near = GaussianMixture(log_w, means, scales=scales, univariate=True)
    far = GaussianMixture(log_w, means + 1e9, scales=scales, univariate=True)
    np.testing.assert_allclose(far.mode() - 1e9, near.mode(), atol=1e-6)
    region = far.hdr(1e-3)
    assert region.n_intervals.tolist() == [1]
    np.testing.assert_allclose(
        region.intervals[0] - 1e9, near.hdr(1e-3).intervals[0], atol=1e-6
    )


@pytest.mark.parametrize("confidence", [0.01, 0.1, 0.6, 0.95])
def test_hdr_far_from_zero_keeps_modes_closer_than_1e_minus_9_of_their_value(
    confidence,
):
    # Regression: ascents ending within 1e-9 |x| of each other counted as
    # one mode, i.e. within 1 at 1e9: the peak at 0.5 (between two
    # components, on no grid point) was dropped, and the 1% HDR came back
    # as [0.478, 0.482], beside the peak. Float64 resolves 1e9 + x to 1.2e-7.
    w, mu, s = (
        np.array([0.2, 0.4, 0.4]),
        np.array([0.0, 0.42, 0.58]),
        np.array([0.05, 0.1, 0.1]),
    )
    far = GaussianMixture(
        np.log(w)[None], (mu + 1e9)[None, :, None], s[None, :, None], univariate=True
    )
    region = far.hdr(confidence)
    iv = region.to_list()[0] - 1e9
    mass = sum(
        np.sum(w * (stats.norm.cdf(b, mu, s) - stats.norm.cdf(a, mu, s))) for a, b in iv
    )
    assert mass == pytest.approx(confidence, abs=1e-5)  # 2e-6 from resolution
    assert region.contains(np.array([1e9 + 0.5]))[0]  # the highest peak
    # the same region as at zero, to the resolution at 1e9
    near = GaussianMixture(
        np.log(w)[None], mu[None, :, None], s[None, :, None], univariate=True
    )
    np.testing.assert_allclose(iv, near.hdr(confidence).to_list()[0], atol=1e-5)
    # the density at the end points is the threshold (scipy's)
    p = np.sum(w * stats.norm.pdf(iv[..., None], mu, s), axis=-1)
    np.testing.assert_allclose(p, region.threshold[0], rtol=1e-4)


# ---------------------------------------------------------------- marginals
def test_marginals_of_full_covariance_match_scipy():
    dist = random_mixture(np.random.default_rng(7), 5, 3, d=3, full=True)
    cov = dist.covariances
    y = np.random.default_rng(8).normal(size=(5, 3))
    F = dist.cdf(y)
    assert F.shape == (5, 3)
    for j in range(3):
        sd = np.sqrt(cov[:, :, j, j])
        ref = (
            dist.weights * stats.norm.cdf(y[:, j : j + 1], dist.means[..., j], sd)
        ).sum(1)
        np.testing.assert_allclose(F[:, j], ref, rtol=1e-12)
        marginal = dist.marginal(j)
        assert marginal.univariate
        np.testing.assert_allclose(marginal.cdf(y[:, j]), ref, rtol=1e-12)
        np.testing.assert_allclose(dist.ppf(0.3)[:, j], marginal.ppf(0.3), rtol=1e-12)
    np.testing.assert_allclose(dist.var(), np.diagonal(dist.cov(), axis1=1, axis2=2))
    assert dist.interval(0.5).shape == (5, 3, 2)
    assert dist.quantile([0.1, 0.9]).shape == (5, 2, 3)
    with pytest.raises(ValueError, match="marginal"):
        dist.hdr(0.9)
    with pytest.raises(ValueError, match="dim"):
        dist.marginal(3)


def test_cdf_of_one_output_refuses_a_1d_y_it_cannot_align():
    """A model fitted on 2-D ``y`` with one column gives a mixture of shape
    (n, 1): a 1-D ``y`` of its n rows broadcast to (n, n) and failed in a
    numpy reshape; the error now names the shape to pass, which gives
    scipy's values."""
    dist = random_mixture(np.random.default_rng(3), 5, 2, d=1)
    dist = GaussianMixture(dist.log_weights, dist.means, scales=dist.scales)
    y = np.linspace(-1.0, 1.0, 5)
    for method in (dist.cdf, dist.ppf):
        with pytest.raises(ValueError, match=r"pass shape \(5, 1\)"):
            method(y / 4 + 0.5)
    ref = (dist.weights * stats.norm.cdf(y[:, None], dist.means[..., 0],
                                         dist.scales[..., 0])).sum(1)  # fmt: skip
    np.testing.assert_allclose(dist.cdf(y[:, None])[:, 0], ref, rtol=1e-12)
    one_row = dist[0].marginal(0)  # univariate: levels still broadcast on a row
    np.testing.assert_allclose(one_row.cdf(y), dist[0].cdf(y[:, None, None])[:, 0, 0])


def _scipy_sub_logpdf(dist, y, dims):
    """log of the mixture's marginal density of outputs ``dims`` at ``y``
    (n, len(dims)): scipy.stats.multivariate_normal on the sub-blocks of
    the component covariances."""
    cov = dist.covariances[..., dims, :][..., dims]
    return np.array(
        [
            logsumexp(
                [
                    dist.log_weights[i, k]
                    + stats.multivariate_normal(
                        dist.means[i, k, dims], cov[i, k]
                    ).logpdf(y[i])
                    for k in range(dist.n_components)
                ]
            )
            for i in range(len(dist))
        ]
    )


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("dims", [0, [2], [2, 0], [-1, 1], [0, 1], np.int64(1)])
def test_condition_is_the_joint_over_the_marginal_density(full, dims):
    """p(y_B | y_A) = p(y_A, y_B) / p(y_A), both from scipy's
    multivariate normals on the component covariances, at points near and
    far from the components, for observed outputs in any order."""
    rng = np.random.default_rng(31)
    dist = random_mixture(rng, 4, 3, d=3, full=full)
    observed = np.atleast_1d(dims) % 3
    rest = np.setdiff1d(np.arange(3), observed)
    y = dist.means[np.arange(4), rng.integers(3, size=4)] + rng.normal(size=(4, 3))
    values = y[:, observed[0]] if np.ndim(dims) == 0 else y[:, observed]
    cond = dist.condition(dims, values)
    assert (len(cond), cond.n_components, cond.n_outputs) == (4, 3, rest.size)
    assert cond.univariate == (rest.size == 1)
    assert (cond.scales is not None) == (not full)
    log_a = _scipy_sub_logpdf(dist, y[:, observed], observed)
    for shift in (0.0, 1.5, -4.0):
        yb = y[:, rest] + shift
        ref = _scipy_sub_logpdf(dist, np.concatenate([y[:, observed], yb], 1),
                                np.r_[observed, rest]) - log_a  # fmt: skip
        out = cond.logpdf(yb[:, 0] if cond.univariate else yb)
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("full", [False, True], ids=["diagonal", "full"])
@pytest.mark.parametrize("dims", [[0, 1], [2, 0], [-1], [3, 1, 0, 2]])
def test_joint_marginal_of_several_outputs_is_scipys_sub_block(full, dims):
    """marginal(list): the mixture of the components' marginals on those
    outputs, in the listed order: scipy's multivariate normals on the
    sub-blocks of the component covariances, near and far from the
    components; a full covariance keeps a proper Cholesky factor."""
    rng = np.random.default_rng(34)
    dist = random_mixture(rng, 4, 3, d=4, full=full)
    idx = np.asarray(dims) % 4
    sub = dist.marginal(dims)
    assert (len(sub), sub.n_components, sub.n_outputs) == (4, 3, len(dims))
    assert not sub.univariate and (sub.scales is not None) == (not full)
    np.testing.assert_array_equal(sub.weights, dist.weights)
    y = dist.means[np.arange(4), rng.integers(3, size=4)] + rng.normal(size=(4, 4))
    for shift in (0.0, 2.0, -5.0):
        ref = _scipy_sub_logpdf(dist, y[:, idx] + shift, idx)
        np.testing.assert_allclose(sub.logpdf(y[:, idx] + shift), ref, rtol=1e-10)
    np.testing.assert_allclose(sub.cov(), dist.cov()[:, idx][:, :, idx], rtol=1e-10)
    if full:
        L = sub.scale_tril
        assert np.all(np.triu(L, 1) == 0) and np.all(np.diagonal(L, 0, -2, -1) > 0)
    # an integer keeps the univariate marginal, a list of one does not
    one = dist.marginal([2])
    assert one.n_outputs == 1 and not one.univariate
    np.testing.assert_allclose(
        one.logpdf(y[:, 2:3]), dist.marginal(2).logpdf(y[:, 2]), rtol=1e-12
    )


def test_marginal_refuses_bad_output_sets():
    dist = random_mixture(np.random.default_rng(35), 2, 2, d=3, full=True)
    for bad in ([], [0, 0], [0, -3], [3], [0.5], [[0, 1]], 3, -4, 1.0):
        with pytest.raises(ValueError, match="dim must be"):
            dist.marginal(bad)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("full", [False, True], ids=["diagonal", "full"])
def test_weights_given_far_values_go_to_the_nearest_component(full):
    """Responsibilities and condition's weights are ratios of component
    densities. Values 1e100-1e300 from every component made them 0 / 0
    (NaN) once the squared distances overflowed, or summed to 2 where two
    equal terms lost log 2 in their rounding. Their limit is all the weight
    on the component nearest in Mahalanobis distance: here the one whose
    scale along the first output is 3 instead of 1 (the second output is
    observed at the means, so it adds nothing)."""
    means = np.array([[[0.0, 0.0], [1.0, 0.0]]])
    if full:
        L = np.array([[[[1.0, 0.0], [0.0, 1.0]], [[3.0, 0.0], [0.0, 1.0]]]])
        dist = GaussianMixture(np.log([[0.7, 0.3]]), means, scale_tril=L)
    else:
        scales = np.array([[[1.0, 1.0], [3.0, 1.0]]])
        dist = GaussianMixture(np.log([[0.7, 0.3]]), means, scales)
    for v in (1e3, 1e100, 1e160, 1e300, -1e300):
        y = np.array([[v, 0.0]])
        np.testing.assert_array_equal(dist.responsibilities(y), [[0.0, 1.0]])
        np.testing.assert_array_equal(dist.condition(0, [v]).weights, [[0.0, 1.0]])
    # equal scales: the distances tie at this precision, the weights share
    same = GaussianMixture(np.log([[0.5, 0.5]]), means, np.ones((1, 2, 2)))
    for v in (1e100, 1e300):
        r = same.responsibilities(np.array([[v, 0.0]]))
        np.testing.assert_allclose(r, [[0.5, 0.5]], rtol=1e-15)
        np.testing.assert_allclose(same.condition(0, [v]).weights, [[0.5, 0.5]])


def test_condition_of_one_gaussian_is_the_textbook_formula():
    """One full-covariance component: mean mu_B + S_BA S_AA^-1 (a - mu_A),
    covariance S_BB - S_BA S_AA^-1 S_AB, computed here with matrix inverses;
    the weights stay one."""
    rng = np.random.default_rng(32)
    dist = random_mixture(rng, 3, 1, d=4, full=True)
    a, b = [3, 1], [0, 2]
    S, mu = dist.covariances[:, 0], dist.means[:, 0]
    values = rng.normal(size=(3, 2))
    cond = dist.condition(a, values)
    for i in range(3):
        gain = S[i][np.ix_(b, a)] @ np.linalg.inv(S[i][np.ix_(a, a)])
        mean = mu[i, b] + gain @ (values[i] - mu[i, a])
        cov = S[i][np.ix_(b, b)] - gain @ S[i][np.ix_(a, b)]
        np.testing.assert_allclose(cond.mean()[i], mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cond.cov()[i], cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cond.weights, 1.0)
    # the conditional's factor is lower triangular with a positive diagonal
    L = cond.scale_tril
    assert np.all(np.triu(L, 1) == 0) and np.all(np.diagonal(L, 0, -2, -1) > 0)


def test_condition_broadcasts_values_and_refuses_bad_arguments():
    dist = random_mixture(np.random.default_rng(33), 3, 2, d=3, full=True)
    point = np.array([0.3, -0.7])
    np.testing.assert_array_equal(
        dist.condition([0, 2], point).means,
        dist.condition([0, 2], np.tile(point, (3, 1))).means,
    )
    empty = dist[:0].condition([2, 0], np.zeros((0, 2)))  # zero rows, as hdr
    assert (len(empty), empty.univariate, empty.mean().shape) == (0, True, (0,))
    for dims in (3, -4, [0, 0], [0, -3], [0, 1, 2], [], 0.0, [True], "0", [[0]]):
        with pytest.raises(ValueError, match="dims must be"):
            dist.condition(dims, 0.0)
    with pytest.raises(ValueError, match=r"values has shape \(2,\); expected \(3,\)"):
        dist.condition(1, np.zeros(2))
    with pytest.raises(ValueError, match=r"expected \(3, 2\)"):
        dist.condition([1, 2], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        dist.condition(1, np.nan)
    point_mass = dist.tempered(scale_temperature=0.0)
    with pytest.raises(ValueError, match="condition"):
        point_mass.condition(1, 0.0)


# ---------------------------------------------------- entropy, temperature
def test_entropy_of_a_gaussian_within_its_standard_error():
    s = np.array([0.1, 1.0, 30.0])
    dist = GaussianMixture(
        np.zeros((3, 1)), np.zeros((3, 1, 1)), scales=s[:, None, None], univariate=True
    )
    h, se = dist.entropy(4000, random_state=0, return_std_error=True)
    exact = 0.5 * np.log(2 * np.pi * np.e * s**2)
    assert np.all(np.abs(h - exact) < 4 * se)
    assert np.all((se > 0.005) & (se < 0.02))  # sqrt(1/2) / sqrt(4000) = 0.011


def test_entropy_of_a_mixture_is_the_integral_of_minus_p_log_p():
    """The test above has one Gaussian per row, where the weighted entropies
    of the components (a plausible wrong formula) are exact too. On mixtures
    the estimate is within 4 standard errors of -int p log p (quadrature),
    and that formula is more than 20 away (a precondition)."""
    dist = GaussianMixture(
        np.log([[0.3, 0.7], [0.5, 0.5]]),
        np.array([[[-3.0], [2.0]], [[0.0], [0.5]]]),
        scales=np.array([[[0.5], [1.5]], [[1.0], [0.3]]]),
        univariate=True,
    )
    h, se = dist.entropy(20_000, random_state=0, return_std_error=True)
    for i in range(2):
        row = dist[i]

        def minus_p_log_p(t, row=row):
            return -row.pdf(np.array([t]))[0] * row.logpdf(np.array([t]))[0]

        ref = integrate.quad(minus_p_log_p, -20, 20, points=[-3, 0, 0.5, 2])[0]
        assert abs(h[i] - ref) < 4 * se[i]
        s = dist.scales[i, :, 0]
        average = np.sum(dist.weights[i] * 0.5 * np.log(2 * np.pi * np.e * s**2))
        assert abs(average - ref) > 20 * se[i]


def test_temperature_semantics():
    dist = random_mixture(np.random.default_rng(9), 4, 3)
    cold = dist.tempered(temperature=0.5, scale_temperature=0.25)
    w = dist.weights**2
    np.testing.assert_allclose(cold.weights, w / w.sum(1, keepdims=True))
    np.testing.assert_allclose(cold.scales, dist.scales * 0.5)  # sigma * sqrt(tau)
    # its density and CDF are those of the tempered parameters (scipy): the
    # log-weights themselves are renormalised, not only the weights property
    y = np.linspace(-3.0, 3.0, 4)
    parts = stats.norm(dist.means[..., 0], 0.5 * dist.scales[..., 0])
    w_cold = w / w.sum(1, keepdims=True)
    ref_pdf = (w_cold * parts.pdf(y[:, None])).sum(1)
    np.testing.assert_allclose(cold.logpdf(y), np.log(ref_pdf), rtol=1e-12)
    np.testing.assert_allclose(cold.cdf(y), (w_cold * parts.cdf(y[:, None])).sum(1))
    a = dist.sample(5, random_state=1)
    b = dist.sample(5, random_state=1, temperature=1.0, scale_temperature=1.0)
    np.testing.assert_array_equal(a, b)
    # Scale temperature 0: every draw is a component mean.
    draws = dist.sample(50, random_state=2, scale_temperature=0.0)
    assert np.all(np.isclose(draws[..., None], dist.means[:, None, :, 0]).any(-1))
    # Tempered draws have the tempered variance.
    one = dist[0].tempered(2.0, 3.0)
    draws = dist[0].sample(
        40_000, random_state=3, temperature=2.0, scale_temperature=3.0
    )
    assert np.var(draws) == pytest.approx(one.var()[0], rel=0.05)
    with pytest.raises(ValueError, match="temperature"):
        dist.tempered(temperature=0.0)
    with pytest.raises(ValueError, match="scale_temperature"):
        dist.tempered(scale_temperature=-1.0)


@pytest.mark.parametrize("value", [-1.0, np.inf, np.nan, "1"])
def test_temperature_errors_state_the_bound_it_has(value):
    """temperature=-1 was told it "must be a finite number >= 0", and then 0
    was refused too: temperature is > 0, scale_temperature >= 0 (0 collapses
    the components to their means)."""
    dist = random_mixture(np.random.default_rng(9), 2, 3)
    with pytest.raises(ValueError, match=r"^temperature must be a finite number > 0"):
        dist.tempered(temperature=value)
    with pytest.raises(ValueError, match=r"^temperature must be a finite number > 0"):
        dist.sample(2, temperature=value)
    with pytest.raises(ValueError, match=r"^scale_temperature must be .* >= 0"):
        dist.tempered(scale_temperature=value)
    assert dist.tempered(scale_temperature=0.0).scales.max() == 0.0


def test_point_masses_refuse_densities_and_keep_their_moments():
    """tempered(scale_temperature=0) makes point masses, which have no density:
    logpdf gave NaN (a LinAlgError for full covariances), and mode, hdr and
    entropy NaN or a misleading error, instead of saying so. Their mean is
    still the weighted mean of the component means."""
    rng = np.random.default_rng(12)
    diagonal = random_mixture(rng, 3, 2).tempered(1.0, 0.0)
    full = random_mixture(rng, 3, 2, d=2, full=True).tempered(1.0, 0.0)
    for point, y in ((diagonal, diagonal.means[:, 0, 0]), (full, full.means[:, 0])):
        for method in (point.logpdf, point.component_logpdf, point.pdf):
            with pytest.raises(ValueError, match="point mass"):
                method(y)
        for method in (point.mode, point.entropy):
            with pytest.raises(ValueError, match="point mass"):
                method()
        w = point.weights[..., None]
        mean = point.mean().reshape(len(point), -1)
        np.testing.assert_allclose(mean, (w * point.means).sum(1), rtol=1e-12)
    with pytest.raises(ValueError, match="point mass"):
        diagonal.hdr(0.5)


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_point_mass_cdf_and_ppf(shift):
    """A point mass's CDF steps to its weight at its mean: cdf there gave NaN
    (0 / 0) with RuntimeWarnings, and ppf on the atom's level landed a few
    ulps off the mean, or 1e-61 off an atom at 0 (shift 1). Against scipy's
    normal CDF plus steps, and the smallest x of a fine grid whose F reaches
    q."""
    w, s = np.array([0.3, 0.5, 0.2]), [0.0, 1, 0]
    mu = np.array([-1.0, 1.0, 0.5]) + shift
    dist = GaussianMixture(
        np.log(w)[None], mu[None, :, None], scales=np.array(s)[None, :, None],
        univariate=True,
    )  # fmt: skip

    def F(x):
        x = x - shift
        return w[0] * (x >= -1) + w[1] * stats.norm.cdf(x, 1, 1) + w[2] * (x >= 0.5)

    x = np.array([-1.0, -1.0001, 0.4999, 0.5, 3.0]) + shift
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(dist.cdf(x[:, None])[:, 0], F(x), rtol=1e-14)
        q = np.array([0.01, 0.1, 0.3, 0.31, 0.5, 0.6, 0.9, 0.99])
        got = dist.ppf(q[:, None])[:, 0]
        interval = dist.interval(0.6)[0]
    grid = np.linspace(-3, 5, 800001) + shift
    want = grid[np.searchsorted(F(grid), q)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    on_atoms = [-1.0, -1.0, -1.0, 0.5, 0.5]
    assert list(got[1:6]) == [a + shift for a in on_atoms]  # exactly
    assert (F(got[1:6]) >= q[1:6]).all()  # the smallest x with F(x) >= q
    assert interval[0] == mu[0]  # the 0.2 quantile


def test_temperature_of_full_covariances():
    # tempered(T, tau): weights softmax(log pi / T), covariances tau * Sigma_k
    # (scale_tril times sqrt(tau)); checked against closed forms built here.
    rng = np.random.default_rng(11)
    n, K, d = 3, 3, 3
    dist = random_mixture(rng, n, K, d=d, full=True)
    L = dist.scale_tril
    Sigma = L @ np.swapaxes(L, -1, -2)
    for T, tau in [(1.0, 0.3), (0.5, 2.5), (4.0, 1.0)]:
        hot = dist.tempered(T, tau)
        # one component: N(mu, tau Sigma), against scipy
        one = GaussianMixture(
            np.zeros((1, 1)), dist.means[:1, :1], scale_tril=L[:1, :1]
        ).tempered(T, tau)
        np.testing.assert_allclose(one.cov()[0], tau * Sigma[0, 0], rtol=1e-12)
        y = dist.means[0, 0] + rng.normal(size=d)
        ref = stats.multivariate_normal(dist.means[0, 0], tau * Sigma[0, 0]).logpdf(y)
        np.testing.assert_allclose(one.logpdf(y[None]), [ref], rtol=1e-10)
        # the mixture: w' = pi^(1/T) / sum, cov = sum w'(tau Sigma + c c^T)
        w = dist.weights ** (1.0 / T)
        w /= w.sum(1, keepdims=True)
        np.testing.assert_allclose(hot.weights, w, rtol=1e-12)
        np.testing.assert_allclose(hot.covariances, tau * Sigma, rtol=1e-12)
        # its density: log sum_k w'_k N(y | mu_k, tau Sigma_k), against scipy
        y = dist.means[:, 0] + rng.normal(size=(n, d))
        normal = stats.multivariate_normal
        terms = [
            [
                np.log(w[i, k])
                + normal(dist.means[i, k], tau * Sigma[i, k]).logpdf(y[i])
                for k in range(K)
            ]
            for i in range(n)
        ]
        np.testing.assert_allclose(hot.logpdf(y), logsumexp(terms, 1), rtol=1e-10)
        m = np.einsum("nk,nkd->nd", w, dist.means)
        c = dist.means - m[:, None]
        cov = np.einsum(
            "nk,nkij->nij", w, tau * Sigma + c[..., :, None] * c[..., None, :]
        )
        np.testing.assert_allclose(hot.mean(), m, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(hot.cov(), cov, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "q, shown",
    [
        ([10, 50, 90], r"got 10\.0, 50\.0, 90\.0.*percentages.*divide by 100"),
        (None, r"got nan\b"),
        ([0.5, -0.1], r"got -0\.1\b"),
    ],
)
def test_quantile_levels_outside_zero_one_are_shown(q, shown):
    """The error said only "got values outside it": predict_quantiles(X,
    [10, 50, 90]) (percentiles, as np.percentile takes them) and q=None (read
    as NaN) both left the user to guess which value was wrong."""
    dist = random_mixture(np.random.default_rng(10), 3, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\].*" + shown):
        dist.quantile(q)
    if np.ndim(q) == 1 and np.max(q) > 1:
        levels = np.asarray(q) / 100  # the advice works
        np.testing.assert_allclose(
            dist.quantile(levels)[:, 1], dist.ppf(0.5), rtol=1e-12
        )


def test_bad_arguments_are_rejected_clearly():
    dist = random_mixture(np.random.default_rng(10), 3, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dist.ppf(1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dist.ppf(np.nan)
    with pytest.raises(ValueError, match="confidence"):
        dist.interval(1.0)
    with pytest.raises(ValueError, match="confidence"):
        dist.hdr(0)
    with pytest.raises(ValueError, match="broadcast"):
        dist.cdf(np.zeros(4))
    with pytest.raises(ValueError, match="1-D"):
        dist.quantile(np.zeros((2, 2)))
    # a string is a numpy scalar too: these failed in a raw TypeError from
    # a comparison or np.isfinite
    with pytest.raises(ValueError, match="confidence"):
        dist.interval("0.9")
    with pytest.raises(ValueError, match="confidence"):
        dist.hdr("0.9")
    with pytest.raises(ValueError, match="temperature"):
        dist.tempered("2")
    with pytest.raises(ValueError, match="scale_temperature"):
        dist.sample(2, scale_temperature="2")


@pytest.mark.parametrize("n_samples", [0, -1, 2.0, 2.5, "3", None])
def test_sample_rejects_a_bad_n_samples_as_the_estimator_does(n_samples):
    # Regression: -1 gave numpy's "negative dimensions are not allowed", 2.0
    # a TypeError, 0 an empty array (MDNRegressor.sample rejects all four).
    dist = random_mixture(np.random.default_rng(10), 3, 2)
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        dist.sample(n_samples, random_state=0)
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        dist.sample(n_samples, random_state=0, temperature=0.5)
    draws = dist.sample(np.int64(2), random_state=0)
    assert draws.shape == (3, 2)
    np.testing.assert_array_equal(draws, dist.sample(2, random_state=0))


def test_hdr_threshold_next_to_the_flat_top_of_a_small_mode():
    # Regression: the 0.9 threshold lies just above the peak of a small mode
    # with a shoulder (p = 0.04045 at y = 4.99), where the mass m(t) falls
    # steeply; plain Newton on t bounced there without converging.
    dist = GaussianMixture(
        np.array(
            [
                [
                    -2.4927088324677786,
                    -2.6965837743022414,
                    -0.43659123214557194,
                    -2.480864824425024,
                    -2.120493123255,
                ]
            ]
        ),
        np.array(
            [
                2.3882805344741866,
                5.046421938263979,
                3.609013203265723,
                -0.6727007179845574,
                -0.2943816958836488,
            ]
        )[None, :, None],
        scales=np.array(
            [
                0.41624979854374394,
                0.6702108719386018,
                0.3597967475418374,
                1.0814098276104775,
                0.9619837288859098,
            ]
        )[None, :, None],
        univariate=True,
    )
    region = dist.hdr(0.9)
    iv = region.to_list()[0]
    mass = sum(dist.cdf(np.array([b]))[0] - dist.cdf(np.array([a]))[0] for a, b in iv)
    assert mass == pytest.approx(0.9, abs=1e-9)
    assert 0.0404 < region.threshold[0] < 0.0406  # dense-grid value 0.04050


def test_hdr_mass_is_exact_after_the_coarse_threshold_iterations():
    # Regression: the first threshold iterations find end points to 1e-7
    # scales only, so their masses are ~2e-8 off; one of them closed the
    # bracket on the wrong side of the root, and the exact iterations stalled
    # against it with the mass 1.5e-8 from 0.5 (documented: about 1e-9).
    w = np.array([0.08487571724685956, 0.7151246968468989, 0.1999995859062415])
    mu = np.array([89.37822797265638, -73.07152478837956, -1.94043768910227])
    s = np.array([2.5480290487482953, 1.0511250413146795, 0.6525293838991527])
    dist = GaussianMixture(
        np.log(w)[None], mu[None, :, None], s[None, :, None], univariate=True
    )
    region = dist.hdr(0.5)
    (lower, upper), *rest = region.to_list()[0]
    assert rest == []
    F = [np.sum(w * stats.norm.cdf(y, mu, s)) for y in (lower, upper)]
    assert F[1] - F[0] == pytest.approx(0.5, abs=1e-11)
    p = [np.sum(w * stats.norm.pdf(y, mu, s)) for y in (lower, upper)]
    np.testing.assert_allclose(p, region.threshold[0], rtol=1e-11)


@pytest.mark.parametrize("confidence", [1e-6, 1e-5, 1e-4])
def test_tiny_hdr_at_a_peak_flat_to_rounding_is_not_empty(confidence):
    # Equal unit components two scales apart: p is flat to fourth order at 1,
    # so flat to rounding over a wider window than these regions; the HDR
    # used to come back empty (mass 0 instead of ``confidence``).
    norm = stats.norm
    mix = GaussianMixture(
        np.log([[0.5, 0.5]]),
        np.array([[[0.0], [2.0]]]),
        np.ones((1, 2, 1)),
        univariate=True,
    )
    region = mix.hdr(confidence)
    assert region.n_intervals.tolist() == [1]
    lower, upper = region.intervals[0, 0]
    mass = 0.5 * (norm.cdf(upper) - norm.cdf(lower))
    mass += 0.5 * (norm.cdf(upper - 2) - norm.cdf(lower - 2))
    np.testing.assert_allclose(mass, confidence, rtol=1e-6)
    assert abs(0.5 * (lower + upper) - 1.0) < 1e-3  # at the peak
    # the threshold is the density there
    np.testing.assert_allclose(region.threshold, 0.5 * (norm.pdf(1) + norm.pdf(-1)))


@pytest.mark.parametrize("exponent", [-600, 600])
@pytest.mark.parametrize("d, full", [(1, False), (2, False), (2, True)])
def test_scales_beyond_1e154_give_the_rescaled_results(exponent, d, full):
    # Regression: precisions 1 / s^2 and variances s^2 overflowed or
    # underflowed for scales beyond about 1e+-154 (targets in such units),
    # and mode() came back 10 scales off, hdr() with NaN end points, std()
    # 0 or inf, the marginals of full covariances infinitely wide. The
    # reference is the same mixture in units 2**600 apart: every result
    # scales with it (densities inversely), exactly up to rounding.
    c = 2.0**exponent
    ref = random_mixture(np.random.default_rng(17), 30, 3, d=d, full=full)
    kind = "scale_tril" if full else "scales"
    scale = ref.scale_tril if full else ref.scales
    dist = GaussianMixture(
        ref.log_weights, ref.means * c, **{kind: scale * c}, univariate=d == 1
    )
    mode = dist.mode() / c  # as good a maximum (flat tops are known to ~1e-8)
    assert np.all(ref.logpdf(mode) >= ref.logpdf(ref.mode()) - 1e-12)
    np.testing.assert_allclose(mode, ref.mode(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(dist.std() / c, ref.std(), rtol=1e-12)
    np.testing.assert_allclose(dist.ppf(0.3) / c, ref.ppf(0.3), rtol=1e-12)
    for j in range(d):
        region, want = dist.marginal(j).hdr(0.9), ref.marginal(j).hdr(0.9)
        np.testing.assert_array_equal(region.n_intervals, want.n_intervals)
        np.testing.assert_allclose(region.intervals / c, want.intervals, rtol=1e-9)
        np.testing.assert_allclose(region.threshold * c, want.threshold, rtol=1e-9)


@pytest.mark.parametrize("d", [1, 2])
def test_subnormal_scales_give_the_rescaled_results(d):
    # Regression: a row's unit was the power of two above its largest scale,
    # and 1 / unit overflowed below 2**-1021 (subnormal scales): mode() and
    # std() came back NaN with an overflow warning, hdr() raised. Inputs are
    # exact in both units, so results scale by 2**-1060, up to the rounding
    # of subnormal results (a spacing of 2**-14 here).
    c, tol = 2.0**-1060, 2.0**-12
    means = np.array([[[0.0] * d, [3.0] * d]])
    ref = GaussianMixture(np.log([[0.4, 0.6]]), means, np.ones((1, 2, d)))
    dist = GaussianMixture(ref.log_weights, means * c, np.full((1, 2, d), c))
    np.testing.assert_allclose(dist.mode() / c, ref.mode(), atol=tol)
    np.testing.assert_allclose(dist.std() / c, ref.std(), atol=tol)
    with np.errstate(over="ignore"):  # the density there exceeds 1.8e308
        region = dist.marginal(0).hdr(0.9)
    np.testing.assert_allclose(
        region.intervals / c, ref.marginal(0).hdr(0.9).intervals, atol=tol
    )


@pytest.mark.parametrize("d", [1, 2])
def test_interval_is_the_two_quantiles_bit_for_bit(d):
    # interval solves both ends in one root search (for speed on small
    # inputs); every root is still found on its own, so each end must be the
    # very bits ppf gives alone, point masses (scale 0) included.
    rng = np.random.default_rng(d)
    dists = [random_mixture(rng, n, 5, d=d) for n in (0, 1, 3, 100)]
    dists.append(dists[-1].tempered(scale_temperature=0.0))
    if d == 1:
        dists.append(extreme_mixture(7))
    for dist in dists:
        for c in (0.5, 0.9, 0.999999):
            ends = dist.interval(c)
            assert ends.shape == (*dist.mean().shape, 2)
            np.testing.assert_array_equal(ends[..., 0], dist.ppf((1 - c) / 2))
            np.testing.assert_array_equal(ends[..., 1], dist.ppf((1 + c) / 2))


def test_quantiles_converge_in_few_iterations_to_the_brent_root(monkeypatch):
    # The safeguarded Newton search took a last Newton step that rounded to
    # the current point (the root to 1e-17), which its bracket test refused
    # as not strictly inside; the bisections that followed ran some 40 more
    # iterations (predict_interval on one row of a 2-output model: 6 ms).
    from skmdn import _univariate

    calls = []
    cdf = _univariate.mixture_cdf

    def counted(x, *args, **kwargs):
        calls.append(1)
        return cdf(x, *args, **kwargs)

    monkeypatch.setattr(_univariate, "mixture_cdf", counted)
    rng = np.random.default_rng(3)
    dist = random_mixture(rng, 200, 5, log_scale=0.5)
    for q in (0.05, 0.3, 0.95):
        calls.clear()
        x = dist.ppf(q)
        assert len(calls) <= 15, (q, len(calls))
        s_min = dist.scales.min(axis=(1, 2))
        for i in range(0, 200, 20):
            row = dist[i]
            ref = optimize.brentq(
                lambda t, row=row, q=q: row.cdf(t)[0] - q,
                -100.0,
                100.0,
                xtol=1e-15,
                rtol=4 * np.finfo(float).eps,
            )
            tol = max(4 * np.finfo(float).eps * abs(ref), 1e-12 * s_min[i])
            assert abs(x[i] - ref) <= 2 * tol + 1e-15, (q, i)

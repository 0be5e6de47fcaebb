"""MDNRegressor: behaviour a user relies on, checked on synthetic truths."""

import importlib
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from scipy import integrate, stats
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skmdn import GaussianMixture, MDNRegressor
from skmdn._network import NOISE_TYPES
from skmdn._regressor import _patience

from .conftest import make_inverse_sine

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = {"max_iter": 30, "hidden_layer_sizes": (16,), "random_state": 0}


def small_problem(n=200, d=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 3))
    Y = np.stack([np.sin(2 * X[:, 0]) + 0.3 * j for j in range(d)], axis=1)
    Y += 0.1 * rng.normal(size=Y.shape)
    return X, (Y[:, 0] if d == 1 else Y)


# ----------------------------------------------------------------- shapes
# ----------------------------------------------------------------- shapes
def test_a_one_column_target_takes_1d_y_where_a_1d_fit_would():
    """Fitted on y of shape (n, 1) (a one-column DataFrame), the model is the
    1-D fit's; score, metrics and HDR intervals take y as (n,) too."""
    from skmdn import metrics

    X, y = small_problem()
    flat = MDNRegressor(**FAST).fit(X, y)
    column = MDNRegressor(**FAST).fit(X, y[:, None])
    assert column.score(X, y) == column.score(X, y[:, None]) == flat.score(X, y)
    assert metrics.nll(y, column.predict_dist(X)) == -flat.score(X, y)
    np.testing.assert_array_equal(
        column.predict_interval(X, 0.8, kind="hdr").intervals,
        flat.predict_interval(X, 0.8, kind="hdr").intervals,
    )


@pytest.mark.parametrize("d", [1, 2])
def test_output_shapes_follow_y(d):
    X, y = small_problem(d=d)
    model = MDNRegressor(**FAST).fit(X, y)
    lead = (50,) if d == 1 else (50, d)
    assert model.predict(X[:50]).shape == lead
    assert model.sample(X[:50], n_samples=4).shape == (50, 4, *lead[1:])
    dist = model.predict_dist(X[:50])
    assert dist.weights.shape == (50, 5)
    assert dist.means.shape == (50, 5, d)
    assert dist.covariances.shape == (50, 5, d, d)
    assert dist.mean().shape == lead
    assert model.predict(X[:50]).dtype == np.float64
    assert model.n_outputs_ == d


def test_column_vector_y_is_a_one_output_2d_model():
    X, y = small_problem()
    a = MDNRegressor(**FAST).fit(X, y)
    b = MDNRegressor(**FAST).fit(X, y[:, None])
    assert b.predict(X).shape == (len(X), 1)
    np.testing.assert_array_equal(a.predict(X), b.predict(X)[:, 0])


def test_score_is_mean_logpdf_in_original_units():
    X, y = small_problem(d=2)
    model = MDNRegressor(**FAST).fit(X, y)
    dist = model.predict_dist(X)
    assert model.score(X, y) == pytest.approx(dist.logpdf(y).mean(), rel=1e-12)
    w = np.random.default_rng(0).uniform(0.1, 2.0, len(X))
    assert model.score(X, y, sample_weight=w) == pytest.approx(
        np.average(dist.logpdf(y), weights=w), rel=1e-12
    )
    # Rescaling y by c shifts the log-density by -d log c: original units.
    c = 1000.0
    scaled = MDNRegressor(**FAST).fit(X, y * c)
    assert scaled.score(X, y * c) == pytest.approx(
        model.score(X, y) - 2 * np.log(c), abs=1e-6
    )
    np.testing.assert_allclose(
        scaled.predict(X), model.predict(X) * c, rtol=1e-6, atol=1e-9
    )


def test_training_loss_is_reported_in_original_units():
    X, y = small_problem()
    model = MDNRegressor(**FAST, early_stopping=False).fit(X, y)
    # The last epoch's loss is the NLL averaged while training; the final
    # model's NLL on the same data is close to it.
    assert abs(model.loss_curve_[-1] + model.score(X, y)) < 0.1
    assert model.best_loss_ == min(model.loss_curve_)
    assert model.n_iter_ == len(model.loss_curve_)


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
@pytest.mark.parametrize("d", [1, 2])
def test_fitted_density_is_normalised(noise_type, d):
    X, y = small_problem(n=120, d=d)
    model = MDNRegressor(noise_type=noise_type, fixed_noise_level=0.2, **FAST).fit(X, y)
    dist = model.predict_dist(X[:1])
    if d == 1:
        total, _ = integrate.quad(
            lambda t: dist.pdf(np.array([t]))[0], -10, 10, limit=200
        )
    else:
        grid = np.linspace(-6, 6, 481)
        G1, G2 = np.meshgrid(grid, grid, indexing="ij")
        pts = np.stack([G1.ravel(), G2.ravel()], -1)[:, None, :]
        dens = dist.pdf(pts).reshape(G1.shape)
        total = integrate.simpson(integrate.simpson(dens, x=grid), x=grid)
    assert abs(total - 1.0) < 1e-4


def test_fixed_noise_level_is_in_target_units():
    X, y = small_problem(d=2)
    model = MDNRegressor(noise_type="fixed", fixed_noise_level=0.25, **FAST).fit(
        X, 7 * y
    )
    np.testing.assert_allclose(model.predict_dist(X).scales, 0.25, rtol=1e-10)
    with pytest.raises(ValueError, match="fixed_noise_level"):
        MDNRegressor(noise_type="fixed").fit(X, y)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_outputs_reach_target_units_as_broadcast_arithmetic_bit_for_bit(d):
    """The move to target units takes (n, K d) rows against repeated
    statistics when d > 1: the bits of the plain broadcast ``addcmul`` and
    product, for the network's strided views and for contiguous or expanded
    scales alike."""
    from skmdn._regressor import _to_target_units

    g = torch.Generator().manual_seed(d)
    n, K = 1000, 5
    out = torch.randn(n, 3 + 2 * K * d, generator=g) * 1e3  # float32
    means = out[:, 3 : 3 + K * d].reshape(n, K, d)  # a strided view
    scales = out[:, 3 + K * d :].abs().reshape(n, K, d)
    shift = torch.randn(d, dtype=torch.float64, generator=g) * 1e5
    scale = torch.rand(d, dtype=torch.float64, generator=g) * 1e4
    both = (scale, scale.repeat(K))
    got = _to_target_units(means, both, (shift, shift.repeat(K)))
    assert got.dtype == np.float64 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, torch.addcmul(shift, means, scale).numpy())
    for s in (scales, scales.contiguous(), scales[:, :, :1].expand(n, K, d)):
        np.testing.assert_array_equal(_to_target_units(s, both), (s * scale).numpy())


def test_full_covariance_is_in_target_units():
    # Correlated noise with standard deviations 1 and 100 (rho = 0.6) on
    # outputs whose total spreads are about 2 and 255: the predicted noise
    # covariance must come back in target units, row i of the Cholesky factor
    # scaled by output i's scale (in standardised units both sds would be
    # about 0.5 and 0.4).
    rng = np.random.default_rng(0)
    n = 1500
    X = rng.uniform(-1, 1, size=(n, 1))
    sd, rho = np.array([1.0, 100.0]), 0.6
    C = np.array([[1.0, rho], [rho, 1.0]]) * np.outer(sd, sd)
    Y = np.column_stack([3 * X[:, 0], 300 * np.sin(2 * X[:, 0])])
    Y += rng.multivariate_normal(np.zeros(2), C, size=n)
    model = MDNRegressor(
        noise_type="full",
        n_components=1,
        hidden_layer_sizes=(16,),
        learning_rate_init=1e-2,
        max_iter=40,
        random_state=0,
    ).fit(X, Y)
    cov = model.predict_dist(np.linspace(-0.9, 0.9, 50)[:, None]).cov()
    s = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    assert np.all(np.abs(s / sd - 1) < 0.2)
    r = cov[:, 0, 1] / (s[:, 0] * s[:, 1])
    assert np.all((r > 0.4) & (r < 0.8))


def test_without_standardisation_the_units_are_those_of_x_and_y():
    """Documented for ``standardize=False``: the statistics are zeros and
    ones, an isotropic model shares one scale across outputs in target units
    (standardised, each output's scale is proportional to its standard
    deviation) and ``min_scale`` floors the scales in target units. With
    the flag ignored (always standardising), the numerical core's test files
    and test_bad_inputs all passed."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(200, 2))
    Y = np.column_stack([np.sin(2 * X[:, 0]), 0.01 * X[:, 1]])
    Y += rng.normal(size=Y.shape) * [0.1, 0.001]
    common = dict(**FAST, noise_type="isotropic", n_components=2, min_scale=0.2)
    raw = MDNRegressor(standardize=False, **common).fit(X, Y)
    for mean, scale in ((raw.X_mean_, raw.X_scale_), (raw.y_mean_, raw.y_scale_)):
        np.testing.assert_array_equal(mean, 0.0)
        np.testing.assert_array_equal(scale, 1.0)
    s = raw.predict_dist(X).scales
    np.testing.assert_array_equal(s[..., 0], s[..., 1])
    assert s.min() >= 0.2 * (1 - 1e-12)
    scaled = MDNRegressor(**common).fit(X, Y)
    s = scaled.predict_dist(X).scales
    ratio = scaled.y_scale_[1] / scaled.y_scale_[0]
    assert ratio < 0.1  # precondition: the outputs' spreads differ
    np.testing.assert_allclose(s[..., 1] / s[..., 0], ratio, rtol=1e-12)
    assert s[..., 1].min() < 0.2  # the floor 0.2 * y_scale_1 is below 0.2


def test_point_estimates():
    X, y = small_problem()
    model = MDNRegressor(point_estimate="approx_mode", **FAST).fit(X, y)
    dist = model.predict_dist(X)
    np.testing.assert_array_equal(model.predict(X), dist.approx_mode())
    model.set_params(point_estimate="mean")
    np.testing.assert_array_equal(model.predict(X), dist.mean())


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padded_head", [True, False])
def test_mean_and_approx_mode_predictions_are_the_distributions(
    noise_type, d, dtype, padded_head, monkeypatch
):
    """predict takes the mean and the approximate mode from the weights and
    means alone (no scales built); they are still exactly the predictive
    distribution's, in float64 and off the CPU's float32 path (the whole
    head's product, sliced: ``padded_head=False`` stands for an
    accelerator), and to float32 rounding with the CPU's padded product of
    fewer columns (identical on the machines here)."""
    if not padded_head:
        monkeypatch.setattr("skmdn._network.cpu_fast_path", lambda device: False)
    X, y = small_problem(n=300, d=d)
    X = X.astype(dtype)
    level = {"fixed_noise_level": 0.2} if noise_type == "fixed" else {}
    model = MDNRegressor(noise_type=noise_type, n_components=3, **level, **FAST)
    model.fit(X, y)
    X_new = np.random.default_rng(1).uniform(-3, 3, size=(2000, 3)).astype(dtype)
    dist = model.predict_dist(X_new)
    for estimate in ("mean", "approx_mode"):
        pred = model.set_params(point_estimate=estimate).predict(X_new)
        expected = getattr(dist, estimate)()
        if dtype == np.float64 or not padded_head:
            np.testing.assert_array_equal(pred, expected)
        else:
            np.testing.assert_allclose(pred, expected, rtol=1e-6, atol=1e-6)


def test_mean_prediction_builds_no_scales(monkeypatch):
    """The scales' softplus is not run for a prediction that does not need
    it; with return_std, or the exact mode, it is."""
    X, y = small_problem()
    model = MDNRegressor(**FAST).fit(X, y)
    expected = model.predict_dist(X).mean()

    def no_softplus(*args, **kwargs):
        raise AssertionError("scales were built")

    monkeypatch.setattr("skmdn._network.F.softplus", no_softplus)
    np.testing.assert_array_equal(model.predict(X), expected)
    model.set_params(point_estimate="approx_mode").predict(X)
    with pytest.raises(AssertionError, match="scales were built"):
        model.predict(X, return_std=True)
    with pytest.raises(AssertionError, match="scales were built"):
        model.set_params(point_estimate="mode").predict(X)


# ------------------------------------------------------- learning quality
def test_inverse_sine_default_beats_one_component_by_a_wide_margin():
    X, y = make_inverse_sine(2000, seed=0)
    X_test, y_test = make_inverse_sine(5000, seed=1)
    mdn = MDNRegressor(random_state=0).fit(X, y)
    single = MDNRegressor(n_components=1, random_state=0).fit(X, y)
    # One Gaussian cannot represent the three branches around t = 0.5.
    assert mdn.score(X_test, y_test) > single.score(X_test, y_test) + 0.3
    # Where the inverse has three branches, the model puts weight on all three.
    dist = mdn.predict_dist(np.array([[0.5]]))
    draws = dist.sample(20_000, random_state=0)[0]
    for branch in ([0.05, 0.35], [0.35, 0.65], [0.65, 0.95]):
        assert ((draws > branch[0]) & (draws < branch[1])).mean() > 0.15


def test_heteroscedastic_linear_target_is_not_a_constant_fit():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 2, 3000)
    y = 2 * x + rng.normal(size=x.size) * (0.1 + 0.5 * x)
    model = MDNRegressor(random_state=0).fit(x[:, None], y)
    grid = np.linspace(0.1, 1.9, 10)[:, None]
    mean = model.predict(grid)
    slope = np.polyfit(grid[:, 0], mean, 1)[0]
    assert abs(slope - 2.0) < 0.25
    std = np.sqrt(model.predict_dist(grid).cov())
    true_std = 0.1 + 0.5 * grid[:, 0]
    assert np.all(np.diff(std) > 0)
    # Against the truth, not only its slope and trend: about 300 rows lie
    # within 0.1 of each grid point, so a local estimate of the mean has a
    # standard error of about sd / 17 and one of the sd about 4 %; allow 4
    # and 3 of them. (The slope is blind to a shift of the means; rtol=0.25
    # let scales off by a factor sqrt(y_scale) = 1.15 pass.)
    assert np.all(np.abs(mean - 2 * grid[:, 0]) < 0.25 * true_std)
    np.testing.assert_allclose(std, true_std, rtol=0.12)


def test_default_fit_recovers_a_known_two_branch_mixture():
    """y | x is 0.3 N(x + 2, 0.3^2) with weight sigmoid(3x), else
    0.5 N(-x - 2, 0.5^2): the defaults must recover the branch weights, means
    and spreads (from the fitted density by integration, whatever number of
    components tile a branch) and come within 0.03 nats of the true NLL
    (0.004-0.012 over seeds 0-2 when written)."""
    rng = np.random.default_rng(0)

    def truth(x):
        return 1 / (1 + np.exp(-3 * x)), x + 2, -x - 2

    def draw(n):
        x = rng.uniform(-1, 1, n)
        p, m_up, m_lo = truth(x)
        up = rng.uniform(size=n) < p
        y = np.where(
            up, m_up + 0.3 * rng.normal(size=n), m_lo + 0.5 * rng.normal(size=n)
        )
        return x[:, None], y

    (X, y), (X_test, y_test) = draw(4000), draw(20000)
    model = MDNRegressor(random_state=0).fit(X, y)
    p, m_up, m_lo = truth(X_test[:, 0])
    true_ll = np.log(
        p * stats.norm.pdf(y_test, m_up, 0.3)
        + (1 - p) * stats.norm.pdf(y_test, m_lo, 0.5)
    )
    assert 0 < true_ll.mean() - model.score(X_test, y_test) < 0.03
    x = np.linspace(-0.9, 0.9, 19)
    p, m_up, m_lo = truth(x)
    grid = np.linspace(-8, 8, 16001)
    dens = model.predict_dist(x[:, None]).pdf(
        np.broadcast_to(grid[:, None], (16001, 19))
    )
    for side, weight, mean, sd in (
        (grid > 0, p, m_up, 0.3),
        (grid < 0, 1 - p, m_lo, 0.5),
    ):
        part = np.where(side[:, None], dens, 0.0)
        mass = integrate.trapezoid(part, grid, axis=0)
        mu = integrate.trapezoid(part * grid[:, None], grid, axis=0) / mass
        var = (
            integrate.trapezoid(part * grid[:, None] ** 2, grid, axis=0) / mass - mu**2
        )
        np.testing.assert_allclose(mass, weight, atol=0.08)
        kept = weight >= 0.2  # where the branch has data enough
        np.testing.assert_allclose(mu[kept], mean[kept], atol=0.1)
        np.testing.assert_allclose(np.sqrt(var[kept]), sd, rtol=0.15)


# ------------------------------------------------------------ training API
def test_early_stopping_records_validation_and_restores_the_best():
    X, y = small_problem(n=400)
    model = MDNRegressor(early_stopping=True, max_iter=200, random_state=0).fit(X, y)
    assert len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert model.n_iter_ < 200  # stopped by patience
    best = int(np.argmax(model.validation_scores_))
    assert model.n_iter_ - 1 - best > model.n_iter_no_change - 1
    # The kept weights are the best epoch's (well before the last one here),
    # not the last epoch's: a fit that ends at the best epoch predicts the same.
    reference = MDNRegressor(early_stopping=True, max_iter=best + 1, random_state=0)
    reference.fit(X, y)
    assert reference.validation_scores_ == model.validation_scores_[: best + 1]
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))


def test_convergence_warning_at_max_iter():
    X, y = small_problem()
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        MDNRegressor(max_iter=3, random_state=0).fit(X, y)


def test_warm_start_continues_from_the_fitted_weights():
    X, y = small_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MDNRegressor(max_iter=5, warm_start=True, random_state=0).fit(X, y)
        first = model.loss_curve_[-1]
        model.fit(X, y)
    assert model.n_iter_ == 10
    assert len(model.loss_curve_) == 10
    assert model.loss_curve_[5] < first + 0.05  # no restart from scratch
    assert model._optimizer_state["t"] == model.t_  # Adam continued too
    cold = MDNRegressor(max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(X, y)
    assert cold.loss_curve_[0] > model.loss_curve_[5]


def test_each_warm_fit_draws_fresh_noise_and_shuffles(monkeypatch):
    """noise_regularization promises fresh noise every mini-batch: a
    warm_start loop (one fit per epoch) replayed the first call's noise and
    permutations in every call, a fixed perturbation of the data."""
    import skmdn._training as training

    drawn, orders = [], []
    real_noise, real_perm = training._randn_like, torch.randperm

    def noise(t, generator, groups=None):
        drawn.append(real_noise(t, generator, groups))
        return drawn[-1]

    def perm(*args, **kwargs):
        orders.append(real_perm(*args, **kwargs))
        return orders[-1]

    monkeypatch.setattr(training, "_randn_like", noise)
    monkeypatch.setattr(training.torch, "randperm", perm)
    X, y = small_problem(n=300)
    params = {**FAST, "max_iter": 1, "noise_regularization": 0.1}
    runs = []
    for _ in range(2):  # the same sequence of calls twice
        model = MDNRegressor(**params, warm_start=True)
        calls = []
        for _call in range(3):
            drawn.clear(), orders.clear()
            model.fit(X, y)
            calls.append((torch.cat([d.ravel() for d in drawn]), orders[0]))
        runs.append(calls)
    (a, order_a), (b, order_b), (c, _) = runs[0]
    # independent standard normal draws: correlation ~ N(0, 1 / n)
    for u, v in ((a, b), (b, c), (a, c)):
        assert abs(np.corrcoef(u.numpy(), v.numpy())[0, 1]) < 5 / np.sqrt(u.numel())
    assert not torch.equal(order_a, order_b)
    # still reproducible: the same calls draw the same streams
    for (u, o), (v, p) in zip(runs[0], runs[1], strict=True):
        assert torch.equal(u, v) and torch.equal(o, p)


def test_each_partial_fit_draws_its_own_shuffle(monkeypatch):
    """As a warm fit does: a stream of partial_fit calls on the same chunk
    must not replay one permutation of its rows in every call."""
    orders, real_perm = [], torch.randperm

    def perm(*args, **kwargs):
        orders.append(real_perm(*args, **kwargs))
        return orders[-1]

    monkeypatch.setattr(torch, "randperm", perm)
    X, y = small_problem(n=300)
    runs = []
    for _ in range(2):  # the same sequence of calls twice
        model = MDNRegressor(hidden_layer_sizes=(8,), batch_size=32, random_state=0)
        calls = []
        for _call in range(3):
            orders.clear()
            model.partial_fit(X, y)
            calls.append(orders[0])
        runs.append(calls)
    a, b, c = runs[0]
    assert not torch.equal(a, b) and not torch.equal(b, c)
    for u, v in zip(runs[0], runs[1], strict=True):  # still reproducible
        assert torch.equal(u, v)


def test_best_loss_covers_every_call_of_a_stream():
    # an easy chunk, then a hard one: the best loss stays the easy chunk's
    X, y = small_problem(n=200)
    rng = np.random.default_rng(1)
    model = MDNRegressor(hidden_layer_sizes=(8,), random_state=0)
    for _ in range(3):
        model.partial_fit(X, y)
    model.partial_fit(X, y + 5.0 * rng.normal(size=len(y)))
    assert np.argmin(model.loss_curve_) < 3  # precondition
    assert model.best_loss_ == min(model.loss_curve_)


def test_partial_fit_streams_over_chunks():
    X, y = small_problem(n=1000)
    model = MDNRegressor(hidden_layer_sizes=(16,), random_state=0)
    scores = []
    for _epoch in range(15):
        for chunk in np.array_split(np.arange(len(X)), 5):
            model.partial_fit(X[chunk], y[chunk])
        scores.append(model.score(X, y))
    assert model.n_iter_ == 75
    assert scores[-1] > scores[0] + 0.3
    with pytest.raises(ValueError, match="output"):
        model.partial_fit(X, np.stack([y, y], 1))


def test_partial_fit_does_not_pass_over_the_whole_history(monkeypatch):
    """A stream of many chunks: each call deep-copied the history and took a
    copy and a min of the whole loss curve, so after 1e5 chunks a call was 17
    times as slow as the first. A call now reads only its own epochs, and a
    call that fails after recording its epoch still leaves the model as it
    was."""

    class NoFullPass(list):
        def __iter__(self):
            raise AssertionError("a pass over the whole history")

        def __deepcopy__(self, memo):
            raise AssertionError("a copy of the whole history")

    X, y = small_problem(n=64)
    model = MDNRegressor(hidden_layer_sizes=(8,), random_state=0)
    for _ in range(3):
        model.partial_fit(X, y)
    curve = list(model.loss_curve_)
    model._history.loss_curve = NoFullPass(curve)
    model._history.validation_scores = NoFullPass(model._history.validation_scores)
    model.partial_fit(X, y)
    curve.append(model.loss_curve_[-1])  # (a slice is a plain list)
    assert model.n_iter_ == len(model.loss_curve_) == 4
    assert model.loss_curve_[:] == curve
    assert model.best_loss_ == np.min(curve)
    # a failure after the epoch was recorded: the history is cut back
    monkeypatch.setattr(MDNRegressor, "_set_fitted", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        model.partial_fit(X, y)
    assert len(model.loss_curve_) == len(model._history.validation_scores) == 4
    monkeypatch.undo()
    model.partial_fit(X, y)
    assert model.n_iter_ == len(model.loss_curve_) == 5


def test_partial_fit_continues_at_the_learning_rate_fit_left():
    # documented: the plateau schedule's lowered rate carries over, and a
    # changed learning_rate_init waits for the next fit
    X, y = small_problem(n=200)
    model = MDNRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    model._optimizer_state["lr"] = 1e-4  # as if the schedule had halved it
    model.set_params(learning_rate_init=0.5)
    model.partial_fit(X, y)
    assert model._optimizer_state["lr"] == 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.set_params(warm_start=True).fit(X, y)
    assert model._optimizer_state["lr"] == 0.5


def test_sample_weight_zero_equals_dropping_rows():
    X, y = small_problem(n=150)
    w = np.ones(len(X))
    w[::3] = 0.0
    a = MDNRegressor(**FAST).fit(X, y, sample_weight=w)
    b = MDNRegressor(**FAST).fit(X[w > 0], y[w > 0])
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-10)


def test_integer_weights_equal_repeated_rows_as_documented():
    # 60 rows whose weights sum to about 120: the repeated data reach the
    # 'auto' threshold and get a split and mini-batches and no noise, the
    # weights do not; with those levers fixed (the documented recipe) the
    # fits are one, noise included (full batch: one draw per distinct row)
    X, y = small_problem(n=60)
    w = np.random.default_rng(1).integers(1, 4, size=60)
    rows = np.repeat(np.arange(60), w)
    assert w.sum() >= 100
    auto = MDNRegressor(**FAST)
    assert auto.fit(X, y, sample_weight=w).validation_scores_ is None
    assert auto.fit(X[rows], y[rows]).validation_scores_ is not None
    fixed = {
        **FAST,
        "early_stopping": False,
        "batch_size": len(rows),
        "noise_regularization": 0.1,
    }
    a = MDNRegressor(**fixed).fit(X, y, sample_weight=w)
    b = MDNRegressor(**fixed).fit(X[rows], y[rows])
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-10)
    assert a.score(X, y, sample_weight=w) == pytest.approx(
        b.score(X[rows], y[rows]), rel=1e-10
    )


@pytest.mark.parametrize("first", [np.float64, np.float32])
def test_auto_precision_is_decided_by_the_call_that_builds_the_model(first):
    X, y = small_problem(n=60)
    other = np.float32 if first is np.float64 else np.float64
    expected = torch.float32 if first is np.float32 else torch.float64
    warm = MDNRegressor(warm_start=True, **FAST).fit(X.astype(first), y)
    warm.fit(X.astype(other), y)
    streamed = MDNRegressor(**FAST).partial_fit(X.astype(first), y)
    streamed.partial_fit(X.astype(other), y)
    for model in (warm, streamed):
        assert model.dtype_ == expected
        assert next(model.network_.parameters()).dtype == expected


def test_float32_input_trains_in_float32():
    X, y = small_problem()
    model = MDNRegressor(**FAST).fit(X.astype(np.float32), y)
    assert model.dtype_ == torch.float32
    assert next(model.network_.parameters()).dtype == torch.float32
    assert model.predict(X).dtype == np.float64
    forced = MDNRegressor(precision="float32", **FAST).fit(X, y)
    assert forced.dtype_ == torch.float32
    ref = MDNRegressor(**FAST).fit(X, y)
    assert ref.dtype_ == torch.float64
    np.testing.assert_allclose(forced.predict(X), ref.predict(X), atol=0.05)


# ----------------------------------------------- reproducibility, purity
def test_same_random_state_same_model():
    X, y = small_problem()
    a = MDNRegressor(**FAST).fit(X, y)
    b = MDNRegressor(**FAST).fit(X, y)
    for p, q in zip(a.network_.parameters(), b.network_.parameters(), strict=True):
        assert torch.equal(p, q)
    np.testing.assert_array_equal(
        a.sample(X, 3, random_state=1), b.sample(X, 3, random_state=1)
    )
    c = MDNRegressor(**{**FAST, "random_state": 1}).fit(X, y)
    assert not np.array_equal(a.predict(X), c.predict(X))


@pytest.mark.parametrize(
    "params",
    [
        {"batch_size": 16},  # a grid from np.arange: np.int64
        {"n_components": 100},  # 100 components x 5 outputs overflow a uint8
        {"n_iter_no_change": 50, "batch_size": 1, "max_iter": 3},  # 50 * 150
    ],
)
def test_numpy_integer_parameters_fit_the_python_int_model(params):
    """The constraints accept numpy integers; they must train the model the
    same Python integers do (they crashed in torch or overflowed)."""
    X, y = small_problem(d=2)
    ref = MDNRegressor(**{**FAST, **params}).fit(X, y)
    for kind in (np.int64, np.uint8):
        as_numpy = {k: kind(v) for k, v in params.items()}
        model = MDNRegressor(**{**FAST, **as_numpy}).fit(X, y)
        assert model.n_iter_ == ref.n_iter_
        np.testing.assert_array_equal(model.predict(X), ref.predict(X))
    streamed = MDNRegressor(**{**FAST, **as_numpy}).partial_fit(X, y)
    np.testing.assert_array_equal(
        streamed.predict(X),
        MDNRegressor(**{**FAST, **params}).partial_fit(X, y).predict(X),
    )


def test_patience_of_a_numpy_integer_is_that_of_the_python_int():
    # 50 epochs of 200 steps count as round(50 * 150 / 200) = 38
    assert _patience(np.uint8(50), 200) == _patience(50, 200) == 38


def test_fit_and_predict_leave_global_random_state_alone():
    X, y = small_problem()
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    model = MDNRegressor(**{**FAST, "random_state": None, "early_stopping": True}).fit(
        X, y
    )
    model.sample(X, 2)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_prediction_methods_do_not_write_to_self():
    X, y = small_problem()
    model = MDNRegressor(**FAST).fit(X, y)
    before = pickle.dumps(model)
    keys = set(vars(model))
    model.predict(X)
    model.predict_dist(X).sample(2, random_state=0)
    model.sample(X, 2, random_state=0)
    model.score(X, y)
    assert set(vars(model)) == keys
    assert pickle.dumps(model) == before


def test_unfitted_model_raises_not_fitted():
    with pytest.raises(NotFittedError):
        MDNRegressor().predict(np.zeros((2, 2)))


# ------------------------------------------------------------- persistence
def test_joblib_round_trip(tmp_path):
    X, y = small_problem(d=2)
    model = MDNRegressor(noise_type="full", **FAST).fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(
        loaded.sample(X, 2, random_state=0), model.sample(X, 2, random_state=0)
    )
    # The loaded model keeps training where the saved one stopped.
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == model.n_iter_ + 1


def test_a_model_saved_on_a_gpu_loads_on_a_cpu_only_machine():
    X, y = small_problem()
    model = MDNRegressor(**FAST).fit(X, y)
    state = model.__getstate__()
    # What a CUDA-trained model's pickle holds: numpy arrays and device_='cuda'.
    assert all(isinstance(t, np.ndarray) for t in state["_network_state"].values())
    state["device_"] = "cuda:0"
    clone = MDNRegressor.__new__(MDNRegressor)
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        clone.__setstate__(state)
        assert clone.device_.startswith("cuda")
    else:
        with pytest.warns(RuntimeWarning, match="not available"):
            clone.__setstate__(state)
        assert clone.device_ == "cpu"
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_accelerator_code_path_runs_on_the_cpu_and_agrees(dtype, monkeypatch):
    # No GPU here, but the path a GPU takes (one block per step, no worker
    # threads, torch's own tanh, no padded head) is plain torch: forced on
    # the CPU, every branch of it runs and must give the model the CPU path
    # gives, up to the rounding of the tanh forms.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9000, 3)).astype(dtype)
    y = np.c_[np.sin(X[:, 0]), X[:, 1] * rng.choice([-1.0, 1.0], 9000)]
    params = dict(n_components=3, max_iter=3, batch_size=4500, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cpu = MDNRegressor(**params).fit(X, y)
        calls = {}
        for name in ("_kernels", "_network", "_training", "_regressor", "_utils"):
            module = importlib.import_module(f"skmdn.{name}")

            def accelerator(device, name=name):
                calls[name] = calls.get(name, 0) + 1
                return False

            monkeypatch.setattr(module, "cpu_fast_path", accelerator)
        other = MDNRegressor(**params).fit(X, y)
        dist, cpu_dist = other.predict_dist(X[:500]), cpu.predict_dist(X[:500])
    # (_utils asks only with more than one thread to spare, _network only in
    # float32)
    asked = {"_kernels", "_training", "_regressor"}
    assert asked | ({"_network"} if dtype == np.float32 else set()) <= set(calls)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(other.loss_curve_, cpu.loss_curve_, rtol=rtol)
    np.testing.assert_allclose(dist.means, cpu_dist.means, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dist.weights, cpu_dist.weights, atol=rtol)
    np.testing.assert_allclose(other.score(X, y), cpu.score(X, y), rtol=rtol, atol=rtol)


def test_device_errors_are_clear():
    X, y = small_problem()
    with pytest.raises(ValueError, match="not understood"):
        MDNRegressor(device="gpu").fit(X, y)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            MDNRegressor(device="cuda").fit(X, y)


# ---------------------------------------------------------- training faults
def test_divergence_never_returns_a_nan_model():
    X, y = small_problem()
    model = MDNRegressor(learning_rate_init=1e6, max_iter=20, random_state=0)
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            model.fit(X, y)
    except FloatingPointError as exc:
        assert "learning_rate_init" in str(exc)
        assert not hasattr(model, "network_")
    else:
        assert np.isfinite(model.predict(X)).all()
        assert np.isfinite(model.score(X, y))


def test_predictive_distribution_is_a_gaussian_mixture():
    X, y = small_problem()
    dist = MDNRegressor(**FAST).fit(X, y).predict_dist(X[:3])
    assert isinstance(dist, GaussianMixture)
    assert "n_components=5" in repr(dist)
    np.testing.assert_allclose(dist.weights.sum(1), 1.0, rtol=1e-12)
    row = dist[1]
    assert len(row) == 1
    np.testing.assert_array_equal(row.means, dist.means[1:2])


@pytest.mark.parametrize(
    "d, noise_type, point_estimate",
    [(1, "diagonal", "mean"), (1, "diagonal", "mode"), (2, "full", "mean")],
)
def test_predict_return_std_is_the_mixture_standard_deviation(
    d, noise_type, point_estimate
):
    """``predict(X, return_std=True)`` gives the point estimate unchanged and
    the standard deviation of each output's marginal mixture, checked against
    the mixture's own formula Var = sum_k w_k (s_k^2 + m_k^2) - mean^2."""
    X, y = small_problem(d=d)
    model = MDNRegressor(
        **FAST, noise_type=noise_type, point_estimate=point_estimate
    ).fit(X, y)
    point, std = model.predict(X[:50], return_std=True)
    np.testing.assert_array_equal(point, model.predict(X[:50]))
    dist = model.predict_dist(X[:50])
    w = dist.weights[:, :, None]
    var_k = np.diagonal(dist.covariances, axis1=2, axis2=3)  # (n, K, d)
    mean = (w * dist.means).sum(1)
    var = (w * (var_k + dist.means**2)).sum(1) - mean**2
    expected = np.sqrt(var)[:, 0] if d == 1 else np.sqrt(var)
    assert std.shape == point.shape
    np.testing.assert_allclose(std, expected, rtol=1e-9)


def test_iterative_imputer_samples_from_the_predictive_distribution():
    """``IterativeImputer(sample_posterior=True)`` calls
    ``predict(X, return_std=True)``: with an MDN it imputes draws whose spread
    matches the model's predictive standard deviation."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    rng = np.random.default_rng(0)
    a = rng.normal(size=400)
    b = 2 * a + 0.5 * rng.normal(size=400)
    data = np.column_stack([a, b])
    missing = data.copy()
    missing[:100, 1] = np.nan
    imputer = IterativeImputer(
        estimator=MDNRegressor(max_iter=100, random_state=0),
        sample_posterior=True, max_iter=1, random_state=0,
    )  # fmt: skip
    filled = imputer.fit_transform(missing)
    assert np.isfinite(filled).all()
    residual = filled[:100, 1] - 2 * a[:100]
    # the draws scatter around the line with about the noise's spread (0.5)
    assert abs(residual.mean()) < 0.2
    assert 0.35 < residual.std() < 0.7

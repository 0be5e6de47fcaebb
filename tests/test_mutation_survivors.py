"""Tests written from mutation tests of the seventeenth, (the second part,
below its divider) the eighteenth and (the third part) the twentieth
session's code: each pins a behaviour that a hand-written change of the
code (a mutant) left every other test passing. References are
independent of the code under test: closed forms, rescaled problems,
numpy, scipy, autograd, MLPRegressor's documented rules, deterministic
schedules.

The second round made 134 mutants of the log tails (``logcdf``, ``logsf``),
``var`` / ``std`` without covariances, the hand-written ``'full'`` step
(``full_nll_forward`` / ``full_nll_backward``), ``TrainHistory.record`` and
train's checkpoints, the HDR's grid, bracket and intervals,
``_check_frame_columns`` and the synthetic benchmark's problems. The
mutants left alive that no test here kills are equivalent (listed with
their reasons in the session's report) or HDR safeguards for which no
failing input was found."""

import math
import threading

import numpy as np
import pytest
import torch

from skmdn import GaussianMixture
from skmdn import _training as training

from .conftest import needs_fork, threads_of_a_new_thread


# ------------------------------------------------ GaussianMixture: far values
def _far_mixture(rng, n, K, d, full):
    """Components 1e298-1e300 from values of about 1e300, with scales from
    0.03 to 30: the squared Mahalanobis distances overflow, and the nearest
    component in that distance is often not the nearest in Euclidean
    distance (a scale 3-10 times larger can bring one 10 times farther)."""
    y = 1e300 * rng.normal(size=(n, d))
    means = y[:, None, :] * (1 - 10.0 ** rng.uniform(-2, 0, size=(n, K, 1)))
    diag = 10.0 ** rng.uniform(-1.5, 1.5, size=(n, K, d))
    log_w = np.log(rng.dirichlet(np.ones(K), n))
    if full:
        L = np.tril(0.3 * rng.normal(size=(n, K, d, d)), -1) * diag[..., None]
        L += diag[..., None] * np.eye(d)
        return GaussianMixture(log_w, means, scale_tril=L), y
    return GaussianMixture(log_w, means, diag), y


def _nearest(dist, y, dims):
    """Index of the component nearest to ``y`` (n, d) in the Mahalanobis
    distance of the outputs ``dims``, from the covariance sub-blocks and the
    problem scaled by 1e-200 (no overflow there): numpy's solve."""
    diff = (y[:, None, dims] * 1e-200 - dist.means[..., dims] * 1e-200)[..., None]
    cov = dist.covariances[..., dims, :][..., dims]
    d2 = (np.swapaxes(diff, -1, -2) @ np.linalg.solve(cov, diff))[..., 0, 0]
    return d2.argmin(-1), d2


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("full", [False, True], ids=["diagonal", "full"])
def test_far_values_weigh_the_nearest_component_in_mahalanobis_distance(full):
    """Where every component density underflows, responsibilities and
    condition's weights put all the weight on the component nearest in
    Mahalanobis distance. The existing far-value test has components at
    the same distance from the values (to rounding), so only the scales
    decided; here the distances differ by up to 100 times, and the log
    distance must count the scale of the values twice (it is squared)."""
    rng = np.random.default_rng(0)
    n, K, d = 200, 3, 3
    dist, y = _far_mixture(rng, n, K, d, full)
    nearest, d2 = _nearest(dist, y, [0, 1, 2])
    # precondition: the distances overflow, and Euclid would choose otherwise
    assert np.all(d2 * 1e400 > np.finfo(float).max)
    euclid = np.abs(y[:, None, :] - dist.means).max(-1).argmin(-1)
    assert np.mean(euclid != nearest) > 0.2
    np.testing.assert_array_equal(dist.responsibilities(y), np.eye(K)[nearest])
    for dims in ([0], [2, 0]):
        nearest, _ = _nearest(dist, y, dims)
        weights = dist.condition(dims, y[:, dims]).weights
        np.testing.assert_array_equal(weights, np.eye(K)[nearest])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("full", [False, True], ids=["diagonal", "full"])
def test_a_far_row_beside_a_row_at_a_mean_raises_no_warning(full):
    """The distances of far values are computed for every row, and a row
    exactly at a component mean has a zero difference there (scaled by its
    largest magnitude: 0 / 0 unless guarded). Next to a row 1e300 away its
    responsibilities are still the closed form, without a RuntimeWarning."""
    means = np.array([[[0.0, 0.0], [4.0, 0.0]]] * 2)
    log_w = np.log([[0.5, 0.5]] * 2)
    diag = np.array([[[1.0, 1.0], [2.0, 1.0]]] * 2)
    if full:
        dist = GaussianMixture(log_w, means, scale_tril=diag[..., None] * np.eye(2))
    else:
        dist = GaussianMixture(log_w, means, diag)
    y = np.array([[0.0, 0.0], [1e300, 0.0]])
    r = dist.responsibilities(y)
    # row 0: N(0; 0, 1) / (N(0; 0, 1) + N(0; 4, 2^2)) = 1 / (1 + e^-2 / 2)
    np.testing.assert_allclose(r[0], [1, np.exp(-2.0) / 2] / (1 + np.exp(-2.0) / 2))
    np.testing.assert_array_equal(r[1], [0.0, 1.0])  # nearer: the wider one
    # condition on the first output: the same weights (the second adds nothing)
    np.testing.assert_allclose(dist.condition(0, y[:, 0]).weights, r, rtol=1e-15)


def test_sf_never_exceeds_one_below_every_component():
    """float64 weights sum to one only to rounding, so sum_k w_k Phi(z_k)
    is 1 + 1 or 2 ulps below every component for some rows: capped at one,
    as cdf is above every component (a probability)."""
    rng = np.random.default_rng(3)
    log_w = np.log(rng.dirichlet(np.ones(5), 2000))
    dist = GaussianMixture(log_w, rng.normal(size=(2000, 5, 1)), np.ones((2000, 5, 1)))
    far = np.full((2000, 1), -1e3)
    assert np.sum(dist.weights, axis=1).max() > 1.0  # precondition: rounding
    S = dist.sf(far)
    assert S.max() == 1.0
    np.testing.assert_allclose(S, 1.0, rtol=0, atol=4e-16)


@pytest.mark.parametrize("method", ["marginal", "condition"])
def test_an_empty_set_of_outputs_is_refused_whatever_its_dtype(method):
    """No outputs at all is refused, also as an empty integer array such as
    ``np.arange(k)`` or ``range(k)`` with k = 0 (a float ``[]`` was refused
    for its dtype before the count was checked)."""
    dist = GaussianMixture(np.zeros((2, 1)), np.zeros((2, 1, 3)), np.ones((2, 1, 3)))
    args = () if method == "marginal" else (np.zeros((2, 0)),)
    for empty in (range(0), np.arange(0)):
        with pytest.raises(ValueError, match="must be an integer or a sequence"):
            getattr(dist, method)(empty, *args)


@pytest.mark.parametrize("full", [False, True], ids=["diagonal", "full"])
def test_a_negative_output_counts_from_the_end_in_marginal(full):
    """marginal(-1) is the last output's marginal (dim -1 is the slice
    [-1:], not the empty [-1:0]): scipy's normals on that output's means
    and variances, with the same weights."""
    from scipy import stats

    rng = np.random.default_rng(4)
    means, log_w = rng.normal(size=(4, 2, 3)), np.log(rng.dirichlet(np.ones(2), 4))
    if full:
        L = np.tril(rng.normal(size=(4, 2, 3, 3)), -1) + 2 * np.eye(3)
        dist = GaussianMixture(log_w, means, scale_tril=L)
    else:
        dist = GaussianMixture(log_w, means, np.exp(rng.normal(size=(4, 2, 3))))
    y = rng.normal(size=4)
    for dim in (-1, -3):
        j = dim % 3
        sd = np.sqrt(dist.covariances[..., j, j])
        want = np.log(
            np.sum(dist.weights * stats.norm.pdf(y[:, None], means[..., j], sd), 1)
        )
        np.testing.assert_allclose(dist.marginal(dim).logpdf(y), want, rtol=1e-12)


# ------------------------------------------------------- noise regularisation
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grouped_noise_is_one_float32_draw_per_distinct_row(dtype):
    """As documented: with groups ``(inverse, n_distinct)`` the noise is one
    standard normal draw per distinct row (float32, in the distinct rows'
    order), shared by the rows that repeat it, and the generator moves on
    by exactly those draws (so the next step's noise is the same as well)."""
    from skmdn._training import _randn_like

    rng = np.random.default_rng(0)
    inverse = torch.from_numpy(rng.permutation(np.arange(50) % 20))
    t = torch.zeros(50, 3, dtype=dtype)
    mine, reference = (torch.Generator().manual_seed(7) for _ in range(2))
    noise = _randn_like(t, mine, (inverse, 20))
    want = torch.randn((20, 3), generator=reference, dtype=torch.float32)
    assert noise.dtype == dtype
    assert torch.equal(noise, want.to(dtype)[inverse])
    assert torch.equal(
        torch.randn(64, generator=mine), torch.randn(64, generator=reference)
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_noise_rule_counts_every_output_in_its_dimension():
    """'auto' below 100 samples is 0.2 * n ** (-1 / (4 + d)) with
    d = n_features + n_outputs: with three outputs, d = 1 + 3 (the other
    tests of the rule had one output, where d = n_features + 1 passed)."""
    from skmdn import MDNRegressor

    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, size=(30, 1))
    Y = X + 0.3 * rng.normal(size=(30, 3))
    common = dict(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    default = MDNRegressor(**common).fit(X, Y)
    level = 0.2 * 30 ** (-1 / (4 + 1 + 3))
    given = MDNRegressor(noise_regularization=level, **common).fit(X, Y)
    assert default.loss_curve_ == given.loss_curve_
    other = MDNRegressor(noise_regularization=0.2 * 30 ** (-1 / 6), **common)
    assert other.fit(X, Y).loss_curve_ != given.loss_curve_  # precondition
    assert MDNRegressor()._noise_level(30.0, 1, 3) == pytest.approx(level, rel=1e-15)


def test_the_l2_penalty_is_refused_only_beyond_the_largest_finite_value():
    """alpha / sum(sample_weight) is refused where it overflows the training
    dtype: exactly its largest finite value is kept, twice that refused."""
    from skmdn import MDNRegressor

    for dtype in (torch.float32, torch.float64):
        top = float(torch.finfo(dtype).max)
        assert torch.isfinite(torch.tensor(top, dtype=dtype))  # reference
        model = MDNRegressor(alpha=top)
        assert model._weight_decay(np.ones(1), dtype) == top
        with pytest.raises(ValueError, match="overflows"):
            model._weight_decay(np.full(1, 0.5), dtype)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_auto_batch_size_counts_the_training_rows_not_the_held_out_ones():
    """batch_size='auto' is min(n, max(32, min(256, n // 10))) for n
    training rows, as documented: 1000 rows less a 10 % validation split
    are 900, batches of 90 (100 would be the count of all rows)."""
    from skmdn import MDNRegressor

    rng = np.random.default_rng(6)
    X = rng.normal(size=(1000, 2))
    y = X[:, 0] + 0.3 * rng.normal(size=1000)
    common = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    auto = MDNRegressor(**common).fit(X, y)
    assert auto.validation_scores_ is not None  # precondition: a split
    n_train = 1000 - int(np.ceil(0.1 * 1000))
    want = min(n_train, max(32, min(256, n_train // 10)))
    given = MDNRegressor(batch_size=want, **common).fit(X, y)
    assert auto.loss_curve_ == given.loss_curve_
    other = MDNRegressor(batch_size=100, **common).fit(X, y)
    assert other.loss_curve_ != given.loss_curve_  # precondition: it shows


# ---------------------------------------------------- torch's thread settings
def test_calls_count_and_set_threads_only_holding_the_process_lock(two_threads):
    """The count of running calls and the default they put back are shared
    by every thread: a call counts itself in and out, and sets torch's
    threads, only while it holds the process-wide lock. Here the test
    holds it, so a call in another thread must wait at its start, then at
    its end (a deterministic schedule: without the lock it would go on)."""
    from skmdn import _utils
    from skmdn._utils import torch_threads

    began, leave, ended = threading.Event(), threading.Event(), threading.Event()

    def call():
        with torch_threads(1):
            began.set()
            leave.wait(10)
        ended.set()

    worker = threading.Thread(target=call)
    with _utils._threads_lock:
        worker.start()
        assert not began.wait(0.3)  # waiting to count itself in
        assert _utils._calls == 0
    assert began.wait(10) and _utils._calls == 1
    with _utils._threads_lock:
        leave.set()
        assert not ended.wait(0.3)  # waiting to count itself out
        assert _utils._calls == 1
    worker.join(10)
    assert ended.is_set() and _utils._calls == 0
    assert (torch.get_num_threads(), threads_of_a_new_thread()) == (2, 2)


def test_calls_nested_in_a_call_do_not_end_it(two_threads):
    """A fit runs its steps' blocks (run_blocks, a call of its own) inside
    its torch_threads call, in the same thread. The end of an inner call is
    not the end of the outer one: had it reset the count of running calls,
    the next inner call in the main thread would take the outer call's one
    thread for the default, and the outer call's end would leave every
    thread started later at one."""
    from skmdn._utils import run_blocks, torch_threads

    with torch_threads(1):
        for _ in range(2):  # two steps, each on two worker threads
            run_blocks(lambda rows: None, [slice(0, 1), slice(1, 2)], 2)
        assert torch.get_num_threads() == 1
    assert (torch.get_num_threads(), threads_of_a_new_thread()) == (2, 2)


def test_the_main_threads_own_choice_of_one_thread_stays_the_default(two_threads):
    """A user who sets one torch thread in the main thread, after skmdn left
    two as the default, keeps one for the threads started later: blocks run
    on worker threads (logpdf, predict) count as a call, whose start in the
    main thread takes its one thread for the default (a thread other than
    the main one, at one, is taken for one that inherited skmdn's one)."""
    from skmdn._utils import run_blocks, torch_threads

    with torch_threads(2):  # skmdn's last setting: two
        pass
    torch.set_num_threads(1)  # the user's, in the main thread
    assert threading.current_thread() is threading.main_thread()
    run_blocks(lambda rows: None, [slice(0, 1), slice(1, 2)], 2)
    assert (torch.get_num_threads(), threads_of_a_new_thread()) == (1, 1)


def test_the_last_call_to_end_keeps_its_threads_own_count(two_threads, monkeypatch):
    """The last of overlapping calls puts back the default the first one
    found; when that is not the ending thread's own count it does so from
    another thread, so the ending thread's count is its own again, as
    torch_threads promises (here a thread that took one thread during the
    main thread's call, and asked for two), and it waits for that thread:
    the default is back when the call returns, however slowly the other
    thread runs (here its set_num_threads takes 0.2 s)."""
    from skmdn._utils import torch_threads

    inside, main_ended, seen = threading.Event(), threading.Event(), {}
    set_threads = torch.set_num_threads

    def slow_elsewhere(n):  # slow in every thread but this and the worker
        me = threading.current_thread()
        if me is not threading.main_thread() and me is not worker:
            threading.Event().wait(0.2)
        set_threads(n)

    monkeypatch.setattr(torch, "set_num_threads", slow_elsewhere)

    def later():  # first uses torch during the main thread's call: one
        seen["own"] = torch.get_num_threads()
        with torch_threads(2):
            inside.set()
            main_ended.wait(10)
        seen["after"] = torch.get_num_threads()

    with torch_threads(1):
        worker = threading.Thread(target=later)
        worker.start()
        assert inside.wait(10)
    main_ended.set()
    worker.join(10)
    assert seen == {"own": 1, "after": 1}
    assert (torch.get_num_threads(), threads_of_a_new_thread()) == (2, 2)


def test_a_worker_sets_its_one_thread_only_holding_the_process_lock(two_threads):
    """A worker's one thread (run_blocks' and BlockedBackprop's initializer)
    becomes torch's default and skmdn's record of it together, under the
    process-wide lock: otherwise the last call to end could compare the
    record before the worker stored one, and leave one as the default."""
    from skmdn import _utils
    from skmdn._utils import one_torch_thread

    stored = _utils._stored
    worker = threading.Thread(target=one_torch_thread)
    with _utils._threads_lock:
        worker.start()
        worker.join(0.3)
        assert worker.is_alive()  # waiting for the lock
        assert _utils._stored == stored and threads_of_a_new_thread() == 2
    worker.join(10)
    assert _utils._stored == 1 and threads_of_a_new_thread() == 1
    _utils._set_torch_threads(2)  # skmdn's record and the default: two again


@needs_fork
def test_a_child_forked_inside_a_call_ends_it_without_a_negative_count(two_threads):
    """A process forked inside a call continues that call in the child,
    whose count of running calls the fork reset to zero: the call's end
    there must leave it at zero (not -1, after which no call in the child
    would be the last to end and put the default back)."""
    import os
    import time

    from skmdn import _utils
    from skmdn._utils import torch_threads

    pid, ok = None, False
    try:
        with torch_threads(1):
            pid = os.fork()
        if pid == 0:  # the child
            with torch_threads(1):
                pass
            ok = _utils._calls == 0 and threads_of_a_new_thread() == 2
    finally:
        if pid == 0:
            os._exit(0 if ok else 1)
    for _ in range(600):  # the child's exit status, within 60 s
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert done and os.waitstatus_to_exitcode(status) == 0


# =============================================================================
# Round two: the eighteenth session's code (log tails, variances without the
# covariances, the hand-written 'full' step, training refactors, benchmarks).


# ------------------------------------------- log-weights that sum to 1 +- 1e-4
def _off_by_5e_5():
    """Three univariate rows whose log-weights sum to 1 + 5e-5 (inside the
    1e-4 that a float32 network's softmax is allowed), and the weights
    normalised in float64 (the reference's)."""
    rng = np.random.default_rng(5)
    w = rng.dirichlet(np.ones(3), 4)
    means = rng.normal(size=(4, 3, 1))
    scales = np.exp(rng.normal(size=(4, 3, 1)))
    dist = GaussianMixture(np.log(w * (1 + 5e-5)), means, scales, univariate=True)
    return dist, w, means[..., 0], scales[..., 0]


def test_log_tails_normalise_log_weights_that_sum_to_one_only_to_1e_4():
    """logcdf and logsf use the weights renormalised, as cdf and sf do: a
    sum of 1 + 5e-5 would otherwise shift every log-probability by 5e-5
    (scipy's logcdf / logsf over the normalised weights, 1e-12 relative;
    from the lower tail at 40 scales to the upper one)."""
    from scipy import stats
    from scipy.special import logsumexp

    dist, w, mu, s = _off_by_5e_5()
    y = np.stack([mu.min(1) - 40 * s.max(1), mu.mean(1), mu.max(1) + 40 * s.max(1)])
    log_w = np.log(w)
    lo = logsumexp(log_w + stats.norm.logcdf(y[..., None], mu, s), axis=-1)
    hi = logsumexp(log_w + stats.norm.logsf(y[..., None], mu, s), axis=-1)
    np.testing.assert_allclose(dist.logcdf(y[[0]])[0], lo[0], rtol=1e-12)
    np.testing.assert_allclose(dist.logsf(y[[2]])[0], hi[2], rtol=1e-12)
    np.testing.assert_allclose(np.exp(dist.logcdf(y)), np.exp(lo), rtol=1e-12)
    np.testing.assert_allclose(np.exp(dist.logsf(y)), np.exp(hi), rtol=1e-12)


def test_var_normalises_log_weights_that_sum_to_one_only_to_1e_4():
    """var and std use the renormalised weights (those of mean and cdf):
    the law of total variance over the normalised weights, numpy."""
    dist, w, mu, s = _off_by_5e_5()
    m = (w * mu).sum(1)
    var = (w * (s**2 + (mu - m[:, None]) ** 2)).sum(1)
    np.testing.assert_allclose(dist.var(), var, rtol=1e-12)
    np.testing.assert_allclose(dist.std(), np.sqrt(var), rtol=1e-12)


# ------------------------------------------------- variances far from the origin
@pytest.mark.parametrize("full", [False, True], ids=["diagonal", "full"])
def test_var_of_components_far_from_the_origin_keeps_every_digit(full):
    """The variance is centred on the mixture mean, as documented: with
    means 1e8 from 0 and variances of order 1, sum pi (s^2 + mu^2) - m^2
    cancels 16 digits (1e16 has ulp 2). Weights (1/4, 3/4), offsets from
    1e8 of (-3, 1) and (3, -1) (mixture mean exactly 1e8), component
    marginal sds (1, 5) and (2, 1): variances 1/4 (1 + 9) + 3/4 (4 + 1) =
    6.25 and 1/4 (25 + 9) + 3/4 (1 + 1) = 10, exactly."""
    means = 1e8 + np.array([[[-3.0, 3.0], [1.0, -1.0]]])
    log_w = np.log([[0.25, 0.75]])
    if full:  # rows (1, 0) and (3, 4): norms 1 and 5; (2, 0) and (0, 1)
        L = np.array([[[[1.0, 0.0], [3.0, 4.0]], [[2.0, 0.0], [0.0, 1.0]]]])
        dist = GaussianMixture(log_w, means, scale_tril=L)
    else:
        dist = GaussianMixture(log_w, means, np.array([[[1.0, 5.0], [2.0, 1.0]]]))
    np.testing.assert_allclose(dist.var(), [[6.25, 10.0]], rtol=1e-12)
    np.testing.assert_allclose(dist.std(), [[2.5, np.sqrt(10.0)]], rtol=1e-12)


# --------------------------------------------------------- TrainHistory.record
def test_record_counts_ties_as_mlpregressor_does():
    """MLPRegressor's rule at its boundaries (tol = 0.25 and losses, scores
    exact in binary): a loss exactly ``tol`` below the best improves
    (``loss > best - tol`` counts as none); a score exactly ``tol`` above
    the best improves (``score < best + tol`` counts as none); a score equal
    to the best is not a new best (``score > best``: the earlier epoch's
    weights are kept)."""
    from skmdn._training import TrainHistory

    h = TrainHistory()
    h.record(1.0, math.nan, 1, tol=0.25, early_stopping=False)
    h.record(0.75, math.nan, 1, tol=0.25, early_stopping=False)
    assert h.no_improvement_count == 0 and h.best_loss == 0.75
    h.record(0.5 + 2.0**-40, math.nan, 1, tol=0.25, early_stopping=False)
    assert h.no_improvement_count == 1
    h = TrainHistory()
    assert h.record(-1.0, -1.0, 1, tol=0.25, early_stopping=True) == (True, False)
    assert h.record(-1.0, -0.75, 1, tol=0.25, early_stopping=True) == (True, False)
    assert h.no_improvement_count == 0
    assert h.record(-1.0, -0.75, 1, tol=0.25, early_stopping=True) == (False, False)
    assert h.no_improvement_count == 1 and h.best_validation_score == -0.75
    assert h.record(-1.0, -0.5, 1, tol=0.25, early_stopping=True) == (True, False)
    assert h.no_improvement_count == 0  # reset by the improvement


def test_record_halves_the_rate_every_patience_epochs_without_improvement():
    """With lr_decay_patience = 2, the rate halves after the 2nd and 4th epoch
    in a row without improvement, never on an improving epoch (count 0)."""
    from skmdn._training import TrainHistory

    h = TrainHistory()
    losses = [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    halves = [
        h.record(v, math.nan, 1, tol=0.1, early_stopping=False, lr_decay_patience=2)[1]
        for v in losses
    ]
    # counts: 0, 0, 1, 2, 3, 4, 0, 1
    assert halves == [False, False, False, True, False, True, False, False]


# ------------------------------------------------------- train's checkpoints
def test_train_rolls_the_optimiser_back_before_an_interrupt_propagates(monkeypatch):
    """train's contract, below the estimator (which drops its copy on any
    error): an interrupt before the call's first epoch ends propagates with
    the optimiser back at its state on entry: parameters, Adam's moments,
    step count and rate, all of which the unfinished epoch had moved."""
    from skmdn._network import MDNNetwork
    from skmdn._training import FlatAdam, TrainData, TrainHistory, train
    from skmdn._utils import ThreadChooser

    net = MDNNetwork(2, 1, 2, (4,), "tanh", "diagonal", 1e-3).double()
    net.reset_parameters(torch.Generator().manual_seed(0))
    rows = torch.from_numpy(np.random.default_rng(0).normal(size=(40, 4)))
    rows[:, -1] = 1.0
    optimizer = FlatAdam(net, 1e-2, 0.0)
    before = optimizer.checkpoint()
    calls = {"n": 0}
    real = training.step_loss

    def interrupted(*args):  # the third step of the first 4-step epoch
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(training, "step_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(
            net, optimizer, TrainData(rows, 2, 0.0), TrainHistory(),
            batch_size=10, max_iter=3, tol=1e-4, n_iter_no_change=5,
            early_stopping=False, generator=torch.Generator().manual_seed(0),
            threads=ThreadChooser(None, 10, torch.device("cpu")),
        )  # fmt: skip
    assert calls["n"] == 3  # precondition: two steps moved the state
    after = optimizer.checkpoint()
    assert after.keys() == before.keys()
    for key, value in before.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(after[key], value), key
        else:
            assert after[key] == value, key


# ------------------------------------------------------------------------ HDR
def test_hdr_one_ulp_below_one_reaching_the_grid_ends_has_its_mass():
    """At confidence 1 - 2^-53 the mass m(t) is 1 to rounding over a range
    of thresholds, and some rows' regions run to the outermost grid points
    (9 scales beyond every component), where they are closed: the mass of
    the intervals (scipy's normal CDFs) is still the confidence to 1e-14,
    one row at a time."""
    from scipy import stats

    rng = np.random.default_rng(1)
    w = rng.dirichlet(np.ones(3), 2000)
    mu = rng.normal(size=(2000, 3)) * 3
    s = 10.0 ** rng.uniform(-1, 0.5, size=(2000, 3))
    rows = [38, 171, 269, 392, 438, 463, 473, 567, 603, 672, 744, 1470, 1496, 1913]
    w, mu, s = w[rows], mu[rows], s[rows]
    dist = GaussianMixture(np.log(w), mu[..., None], s[..., None], univariate=True)
    c = 1 - 2.0**-53
    region = dist.hdr(c)
    iv = region.intervals
    # precondition: regions closed at the grid ends, on either side
    assert np.any(np.nanmin(iv[..., 0], 1) <= (mu - 9 * s).min(1))
    assert np.any(np.nanmax(iv[..., 1], 1) >= (mu + 9 * s).max(1))
    F = (
        w[:, None, None]
        * stats.norm.cdf(iv[..., None], mu[:, None, None], s[:, None, None])
    ).sum(-1)
    mass = np.nansum(F[..., 1] - F[..., 0], axis=1)
    np.testing.assert_allclose(mass, c, rtol=0, atol=1e-14)
    # the threshold is the density at every end point inside the grid
    pdf = (
        w[:, None, None]
        * stats.norm.pdf(iv[..., None], mu[:, None, None], s[:, None, None])
    ).sum(-1)
    inside = (iv > (mu - 9 * s).min(1)[:, None, None]) & (
        iv < (mu + 9 * s).max(1)[:, None, None]
    )
    t = np.broadcast_to(region.threshold[:, None, None], iv.shape)
    np.testing.assert_allclose(pdf[inside], t[inside], rtol=1e-9)


# ------------------------------------------------------- data frame columns
def test_frame_columns_are_reported_by_kind_and_all_by_name():
    """check_input_kind on a pandas frame, as documented: a timedelta column
    is a time column (numpy converts it to float64 silently); a column whose
    conversion raises TypeError (dicts) is non-numeric, as one raising
    ValueError (lists) is; every bad column is named; non-numeric columns
    are reported before time columns."""
    pd = pytest.importorskip("pandas")
    from skmdn._utils import check_input_kind

    n = np.arange(3.0)
    times = pd.Series(pd.to_timedelta(n, "s"))
    frame = pd.DataFrame({"a": n, "b": times})
    with pytest.raises(ValueError, match=r"timedelta column\(s\) 'b' \(timedelta64"):
        check_input_kind(frame, "X")
    for objects in ([{}, {}, {}], [[1], [2], [3]]):
        frame = pd.DataFrame({"a": n, "b": pd.Series(objects)})
        with pytest.raises(ValueError, match=r"non-numeric column\(s\) 'b' \(object"):
            check_input_kind(frame, "X")
    frame = pd.DataFrame({"a": ["x"] * 3, "b": n, "c": ["y"] * 3, "d": times})
    with pytest.raises(ValueError, match=r"non-numeric column\(s\) 'a' .*, 'c' "):
        check_input_kind(frame, "X")


def test_hdr_end_points_are_exact_to_the_smallest_scale():
    """End points are found to XTOL (1e-12) times the row's smallest
    component scale, as documented, not its largest: with scales 1e-4 to
    1e-2 and 1e2 to 1e4 in each of 300 rows, the density at every end point (scipy's)
    is the threshold to 1e-11 (the end points near the narrow component sit
    where p changes by 1 / s_min per unit: 1e6 times faster than near the
    wide one)."""
    from scipy import stats

    rng = np.random.default_rng(3)
    w = rng.dirichlet(np.ones(2), 300)
    mu = rng.normal(size=(300, 2)) * 0.01
    s = np.column_stack(
        [10.0 ** rng.uniform(-4, -2, 300), 10.0 ** rng.uniform(2, 4, 300)]
    )
    dist = GaussianMixture(np.log(w), mu[..., None], s[..., None], univariate=True)
    region = dist.hdr(0.3)
    iv = region.intervals
    ok = ~np.isnan(iv)
    pdf = (
        w[:, None, None]
        * stats.norm.pdf(iv[..., None], mu[:, None, None], s[:, None, None])
    ).sum(-1)
    t = np.broadcast_to(region.threshold[:, None, None], iv.shape)
    np.testing.assert_allclose(pdf[ok], t[ok], rtol=1e-11)


# ============================================================================
# The twentieth session's code (mutants made in the twenty-first): the mean
# and approximate mode without scales, the short reductions, the mode
# search's sums, inference's oneDNN products and the finite-output check (86
# mutants; the equivalent ones and their reasons are in that report).


# -------------------------------------------- the mean of unnormalised weights
@pytest.mark.parametrize("d", [1, 2])
def test_mean_normalises_log_weights_that_sum_to_one_only_to_1e_4(d):
    """mean (which predict's location-only path shares) weighs the means by
    the renormalised weights, as var and cdf do, in both of its products
    (einsum for one output, torch's batched product for several): numpy's
    sum over the normalised weights, 1e-12 relative. Means near 10 make the
    5e-5 of the unnormalised weights a 5e-5 shift."""
    rng = np.random.default_rng(6)
    w = rng.dirichlet(np.ones(3), 4)
    means = 10.0 + rng.normal(size=(4, 3, d))
    dist = GaussianMixture(np.log(w * (1 + 5e-5)), means, np.ones((4, 3, d)))
    expected = (w[..., None] * means).sum(1)
    np.testing.assert_allclose(dist.mean(), expected, rtol=1e-12)


# ---------------------------------------------------- the mode's stopping rule
def test_an_ascent_along_one_output_only_runs_to_the_mode():
    """An ascent stops when its step is small in every output (the largest
    coordinate), not in the first: with every component centred at 0 in
    output 0 no ascent moves along it, and the mode along output 1 is still
    the maximum of the density there (a fine grid refined by scipy's bounded
    search; output 0 of the mode is 0, where each component peaks)."""
    from scipy import optimize, stats

    rng = np.random.default_rng(7)
    n, K = 30, 3
    w = rng.dirichlet(np.ones(K), n)
    mu = rng.uniform(-2.0, 2.0, (n, K))
    s = rng.uniform(0.5, 1.5, (n, K))
    means = np.stack([np.zeros((n, K)), mu], -1)
    dist = GaussianMixture(np.log(w), means, np.stack([np.ones((n, K)), s], -1))
    mode = dist.mode()
    np.testing.assert_array_equal(mode[:, 0], 0.0)
    g = np.linspace(-4.0, 4.0, 8001)
    for i in range(n):

        def minus_p(t, i=i):
            return -np.sum(w[i] * stats.norm.pdf(t, mu[i], s[i]))

        t0 = g[np.argmin([minus_p(t) for t in g])]
        options = {"xatol": 1e-12}
        ref = optimize.minimize_scalar(
            minus_p, bounds=(t0 - 1e-3, t0 + 1e-3), method="bounded", options=options
        )
        assert abs(mode[i, 1] - ref.x) < 1e-6


# ------------------------------------------ non-finite parameters are checked
def test_a_non_finite_scale_of_one_component_is_named_not_returned():
    """The finite-output check covers the scales, and every component of
    every row: a float32 network whose first component's raw scale is +inf
    (the rest finite) raises naming every row, for the distribution and for
    predict with return_std; the mean needs no scales and stays finite."""
    from sklearn.exceptions import ConvergenceWarning

    from skmdn import MDNRegressor

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(40, 2))
    model = MDNRegressor(
        precision="float32",
        n_components=3,
        max_iter=2,
        hidden_layer_sizes=(8,),
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning):
        model.fit(X, X[:, 0])
    with torch.no_grad():  # logits (K), means (K d), then the raw scales
        model.network_.head.bias[3 + 3] = math.inf
    match = r"non-finite mixture parameters for 40 row\(s\) of X \(first: row 0\)"
    with pytest.raises(ValueError, match=match):
        model.predict_dist(X)
    with pytest.raises(ValueError, match=match):
        model.predict(X, return_std=True)
    assert np.all(np.isfinite(model.predict(X)))


# ------------------------------------------------------- the oneDNN probe
def test_the_onednn_probe_refuses_an_op_off_by_rounding(monkeypatch):
    """The probe accepts only an op that gives the product's exact bits (its
    products and sums are exact in float32): one off by a relative 1e-6,
    which a tolerance would pass, is refused and mm used instead."""

    def off_by_rounding(x, w, b, *args):
        return (torch.mm(x, w.t()) + b) * (1 + 1e-6)

    assert _probe_with(monkeypatch, off_by_rounding) is None


def test_the_onednn_probe_refuses_an_op_in_reduced_precision(monkeypatch):
    """An op that rounds its float32 inputs to bfloat16 (as a oneDNN fpmath
    mode would) gives the exact bits on small integers; the probe's inputs
    need float32's precision, so it is refused."""

    def in_bfloat16(x, w, b, *args):
        bf16 = torch.bfloat16
        return torch.mm(x.to(bf16).float(), w.to(bf16).float().t()) + b

    assert _probe_with(monkeypatch, in_bfloat16) is None


def _probe_with(monkeypatch, linear_pointwise):
    """What the oneDNN probe returns when ``torch.ops.mkldnn`` offers
    ``linear_pointwise`` as its inner product (the cache cleared around)."""
    from skmdn import _network

    class Ops:
        _linear_pointwise = staticmethod(linear_pointwise)

    monkeypatch.setattr(torch.ops, "mkldnn", Ops())
    _network._onednn_linear.cache_clear()
    try:
        return _network._onednn_linear()
    finally:
        _network._onednn_linear.cache_clear()


def test_products_off_the_cpu_fast_path_do_not_use_onednn(monkeypatch):
    """oneDNN's inner product takes CPU tensors: float32 on an accelerator
    (cpu_fast_path False) goes through mm and the bias, on the CPU through
    oneDNN (a stand-in for it, which records its calls)."""
    from skmdn import _network

    calls = []

    def onednn(x, w, b, *args):
        calls.append(x.shape)
        return torch.mm(x, w.t()) + b

    monkeypatch.setattr(_network, "_onednn_linear", lambda: onednn)
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*s, generator=gen) for s in ((5, 3), (4, 3), (4,)))
    torch.testing.assert_close(_network._product(x, w, b), x @ w.T + b)
    assert calls == [(5, 3)]  # precondition: on the CPU, oneDNN
    monkeypatch.setattr(_network, "cpu_fast_path", lambda device: False)
    torch.testing.assert_close(_network._product(x, w, b), x @ w.T + b)
    assert calls == [(5, 3)]

"""Training levers with 'auto' defaults: noise regularisation, early stopping and
the automatic batch size."""

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning

from skmdn import MDNRegressor
from skmdn._regressor import _AUTO_MIN_SAMPLES, _effective_sample_size, _patience

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _pure_noise(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, 1)), 3.0 + 2.0 * rng.normal(size=n)


def test_target_noise_widens_the_fitted_density_by_its_variance():
    # y independent of x with standard deviation 2: training on y + s * e, with
    # s in standardised units, is fitting N(0, 1 + s^2) in standardised units,
    # so the predictive standard deviation is std(y) * sqrt(1 + s^2).
    X, y = _pure_noise(4000)
    s = 1.0
    common = dict(n_components=1, max_iter=60, early_stopping=False, random_state=0)
    plain = MDNRegressor(noise_regularization=None, **common).fit(X, y)
    noisy = MDNRegressor(noise_regularization=s, **common).fit(X, y)
    sd_plain = np.sqrt(plain.predict_dist(X[:200]).cov()).mean()
    sd_noisy = np.sqrt(noisy.predict_dist(X[:200]).cov()).mean()
    assert sd_plain == pytest.approx(y.std(), rel=0.05)
    assert sd_noisy == pytest.approx(y.std() * np.sqrt(1 + s**2), rel=0.05)


def test_auto_early_stopping_is_off_below_the_effective_sample_size():
    # Below the threshold early_stopping='auto' must be exactly the lever off.
    X, y = _pure_noise(_AUTO_MIN_SAMPLES - 1)
    auto = MDNRegressor(max_iter=5, random_state=0).fit(X, y)
    manual = MDNRegressor(max_iter=5, early_stopping=False, random_state=0).fit(X, y)
    assert auto.validation_scores_ is None
    np.testing.assert_array_equal(auto.predict(X), manual.predict(X))


def test_auto_early_stopping_starts_at_exactly_the_threshold():
    # "at least 100 effective samples": 100 rows hold out, 99 do not
    for n, held_out in ((_AUTO_MIN_SAMPLES, True), (_AUTO_MIN_SAMPLES - 1, False)):
        X, y = _pure_noise(n)
        with pytest.warns(ConvergenceWarning, match="reached max_iter"):
            model = MDNRegressor(max_iter=2, random_state=0).fit(X, y)
        assert (model.validation_scores_ is not None) == held_out, n


def test_auto_levers_use_the_effective_sample_size_of_the_weights():
    # Kish's sum(w)^2 / sum(w^2): rescaling the weights changes nothing, while
    # 150 rows of which 100 carry almost no weight count as about 50.
    X, y = _pure_noise(150)
    model = MDNRegressor(max_iter=3, random_state=0)
    assert model.fit(X, y).validation_scores_ is not None
    assert model.fit(X, y, np.full(150, 1e300)).validation_scores_ is not None
    uneven = np.r_[np.ones(50), np.full(100, 1e-6)]
    assert model.fit(X, y, sample_weight=uneven).validation_scores_ is None


def test_auto_early_stopping_holds_out_data_above_the_threshold():
    X, y = _pure_noise(300)
    model = MDNRegressor(max_iter=3, random_state=0).fit(X, y)
    assert len(model.validation_scores_) == model.n_iter_
    off = MDNRegressor(max_iter=3, early_stopping=False, random_state=0).fit(X, y)
    assert off.validation_scores_ is None


def test_noise_level_follows_the_documented_rule():
    # 'always' is 0.2 * n ** (-1 / (4 + d)) at every n; 'auto' (the default)
    # is the same below 100 effective samples, where early stopping holds out
    # nothing, and no noise from 100 up; None and 0.0 are no noise; a float
    # is used as given.
    p, d = 3, 1
    for n in (5.0, 99.0, 99.99, 100.0, 1000.0):
        rule = 0.2 * n ** (-1 / (4 + p + d))
        always = MDNRegressor(noise_regularization="always")._noise_level(n, p, d)
        assert always == pytest.approx(rule, rel=1e-15)
        auto = MDNRegressor(noise_regularization="auto")._noise_level(n, p, d)
        assert auto == (always if n < _AUTO_MIN_SAMPLES else 0.0)
        assert MDNRegressor()._noise_level(n, p, d) == auto
        assert MDNRegressor(noise_regularization=None)._noise_level(n, p, d) == 0.0
        assert MDNRegressor(noise_regularization=0.0)._noise_level(n, p, d) == 0.0
        assert MDNRegressor(noise_regularization=0.3)._noise_level(n, p, d) == 0.3


@pytest.mark.parametrize(
    ("n_rows", "weights"),
    [
        (99, None),  # 99 rows: no validation split
        (100, None),  # 100 rows: early stopping as well
        # 105 rows weighted 1, 2, 2: Kish's 175^2 / 315 = 97.2 effective
        (105, (1.0, 2.0, 2.0)),
    ],
    ids=["99-rows", "100-rows", "97.2-effective"],
)
def test_auto_noise_is_the_documented_bandwidth_on_either_side_of_100(n_rows, weights):
    # Below 100 effective samples the default 'auto' is the rule's bandwidth
    # (regression: 'auto' once added no noise there, where fits without noise
    # overfit most: test_default_noise_on_40_rows_scores_near_the_truth);
    # from 100 on it is no noise and 'always' is the rule.
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, size=(n_rows, 2))
    y = np.sin(2 * X[:, 0]) + 0.2 * rng.normal(size=n_rows)
    w = None if weights is None else np.tile(weights, n_rows // 3)
    n = float(n_rows) if w is None else w.sum() ** 2 / np.sum(w**2)
    level = 0.2 * n ** (-1 / (4 + 2 + 1))
    common = dict(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    small = n < _AUTO_MIN_SAMPLES
    default = MDNRegressor(**common).fit(X, y, w)
    given = MDNRegressor(noise_regularization=level, **common).fit(X, y, w)
    always = MDNRegressor(noise_regularization="always", **common).fit(X, y, w)
    plain = MDNRegressor(noise_regularization=None, **common).fit(X, y, w)
    assert always.loss_curve_ == given.loss_curve_
    np.testing.assert_array_equal(always.predict(X), given.predict(X))
    same = given if small else plain
    assert default.loss_curve_ == same.loss_curve_
    np.testing.assert_array_equal(default.predict(X), same.predict(X))
    # precondition: the noise shows in the fit
    assert plain.loss_curve_ != given.loss_curve_


@pytest.mark.parametrize(
    "path", ["full-batch", "mini-batches", "split"], ids=lambda p: p
)
def test_the_rules_n_counts_distinct_rows_only_without_split_or_mini_batches(path):
    # 40 rows of which 10 repeat another: Kish's n of all rows is 40, of the
    # distinct rows' summed weights (20 of weight 1, 10 of weight 2)
    # 40^2 / 60 = 26.7. As documented, full-batch training without a split
    # uses the distinct rows' n; mini-batches or a split use all rows'.
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, size=(40, 2))
    y = np.sin(2 * X[:, 0]) + 0.2 * rng.normal(size=40)
    X[30:], y[30:] = X[:10], y[:10]
    n = 40**2 / 60 if path == "full-batch" else 40.0
    level = 0.2 * n ** (-1 / (4 + 2 + 1))
    common = dict(
        hidden_layer_sizes=(8,),
        max_iter=4,
        random_state=0,
        batch_size=8 if path == "mini-batches" else "auto",
        early_stopping=path == "split",
    )
    rule = MDNRegressor(**common).fit(X, y)
    given = MDNRegressor(noise_regularization=level, **common).fit(X, y)
    other_n = 40.0 if path == "full-batch" else 40**2 / 60  # the other path's
    other = 0.2 * other_n ** (-1 / (4 + 2 + 1))
    wrong = MDNRegressor(noise_regularization=other, **common).fit(X, y)
    assert rule.loss_curve_ == given.loss_curve_
    np.testing.assert_array_equal(rule.predict(X), given.predict(X))
    assert rule.loss_curve_ != wrong.loss_curve_  # precondition: n shows


def test_default_noise_on_40_rows_scores_near_the_truth():
    # y = x + N(0, 0.3^2), x ~ U(-1, 1): the true conditional density scores
    # E[log N(y; x, 0.3^2)] = -log(0.3 sqrt(2 pi)) - 1/2 = -0.215 held out.
    # Without noise a 40-row fit overfits (more than a nat worse on average
    # over these seeds); with the default ('auto': the rule's bandwidth below
    # 100 rows) it averages within 0.75 nats of the truth, as the docstring
    # and README say.
    truth = -np.log(0.3 * np.sqrt(2 * np.pi)) - 0.5
    auto, plain = [], []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        X = rng.uniform(-1, 1, size=(5040, 1))
        y = X[:, 0] + 0.3 * rng.normal(size=5040)
        test = norm.logpdf(y[40:], X[40:, 0], 0.3).mean()
        assert test == pytest.approx(truth, abs=0.03)  # the test set is fair
        model = MDNRegressor(random_state=seed)
        auto.append(model.fit(X[:40], y[:40]).score(X[40:], y[40:]))
        model.set_params(noise_regularization=None)
        plain.append(model.fit(X[:40], y[:40]).score(X[40:], y[40:]))
    assert np.mean(auto) > truth - 0.75, auto
    assert np.mean(plain) < np.mean(auto) - 1.0, (plain, auto)


@pytest.mark.parametrize("weighted", [False, True], ids=["rows", "weights"])
def test_always_noise_fit_equals_the_documented_float(weighted):
    # From n = 100 on, noise_regularization='always' is the float
    # 0.2 * n ** (-1 / (4 + d)), n the effective sample size of the sample
    # weights given to fit (all rows, before the validation split), d =
    # n_features + n_outputs: the fits are bit-identical.
    rng = np.random.default_rng(3)
    n_rows = 150 if not weighted else 120
    X = rng.uniform(-1, 1, size=(n_rows, 2))
    y = np.sin(2 * X[:, 0]) + 0.2 * rng.normal(size=n_rows)
    if weighted:  # Kish: 200^2 / 360 = 111.1 (not 120 rows, nor 108 trained on)
        w = np.tile([1.0, 2.0, 2.0], n_rows // 3)
        n = w.sum() ** 2 / np.sum(w**2)
        assert n == pytest.approx(1000 / 9, rel=1e-15)
    else:
        w, n = None, float(n_rows)
    level = 0.2 * n ** (-1 / (4 + 2 + 1))
    common = dict(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
    auto = MDNRegressor(noise_regularization="always", **common).fit(X, y, w)
    manual = MDNRegressor(noise_regularization=level, **common).fit(X, y, w)
    assert auto.validation_scores_ is not None  # early stopping is on, too
    assert auto.loss_curve_ == manual.loss_curve_
    np.testing.assert_array_equal(auto.predict(X), manual.predict(X))
    # precondition: the noise level shows in the fit (another level differs)
    n_train = n_rows - int(np.ceil(0.1 * n_rows))
    for other in (None, 0.2 * n_rows ** (-1 / 7), 0.2 * n_train ** (-1 / 7)):
        if other != level:
            fit = MDNRegressor(noise_regularization=other, **common).fit(X, y, w)
            assert fit.loss_curve_ != auto.loss_curve_


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_alpha_decays_the_weight_matrices_and_not_the_biases(method, monkeypatch):
    # One full-batch Adam step (50 rows: below 100, one batch, no validation)
    # from the initial weights W0. Adam's first step is -lr * g / (|g| + eps)
    # elementwise; with the penalty alpha / (2 n) ||W||^2 and a huge alpha, the
    # gradient of every weight matrix is (alpha / n) W0 up to a relative 1e-9,
    # so the step is -lr * sign(W0). Biases carry no penalty: their step is
    # the same as with alpha = 0, bit for bit. A second partial_fit call
    # (which rebuilds the optimiser) takes Adam's second step on
    # g = (alpha / n) W, computed here by hand.
    import skmdn._regressor as regressor

    starts = []
    real_train = regressor.train

    def spy(network, *args, **kwargs):
        starts.append({k: v.detach().clone() for k, v in network.named_parameters()})
        return real_train(network, *args, **kwargs)

    monkeypatch.setattr(regressor, "train", spy)
    rng = np.random.default_rng(0)
    n = 50
    X = rng.uniform(-1, 1, size=(n, 2))
    y = np.sin(3 * X[:, 0]) + 0.1 * rng.normal(size=n)
    lr, alpha = 0.01, 1e12
    common = dict(
        hidden_layer_sizes=(6,),
        n_components=2,
        learning_rate_init=lr,
        precision="float64",
        random_state=0,
    )
    after = {}
    for a in (0.0, alpha):
        model = MDNRegressor(alpha=a, max_iter=1, **common)
        getattr(model, method)(X, y)
        assert model.t_ == 1
        after[a] = {k: v.detach().clone() for k, v in model.network_.named_parameters()}
    W0 = starts[0]
    assert all(torch.equal(W0[k], starts[1][k]) for k in W0)  # same start
    for name, start in W0.items():
        plain, decayed = after[0.0][name], after[alpha][name]
        if "bias" in name:
            assert torch.equal(decayed, plain), name
            continue
        nonzero = start != 0
        expected = start - lr * torch.sign(start)
        torch.testing.assert_close(
            decayed[nonzero], expected[nonzero], rtol=1e-9, atol=1e-12
        )
        # precondition: without the penalty the step goes elsewhere
        assert not torch.allclose(plain[nonzero], expected[nonzero]), name
    if method == "partial_fit":
        model.partial_fit(X, y)  # the alpha model: Adam's step 2
        assert model.t_ == 2
        W1 = starts[2]
        c, b1, b2, eps = alpha / n, 0.9, 0.999, 1e-8
        for name, start in W0.items():
            if "bias" in name:
                continue
            g1, g2 = c * start, c * W1[name]
            m = b1 * (1 - b1) * g1 + (1 - b1) * g2
            v = b2 * (1 - b2) * g1**2 + (1 - b2) * g2**2
            step = lr / (1 - b1**2) * m / (v.sqrt() / np.sqrt(1 - b2**2) + eps)
            got = model.network_.get_parameter(name).detach()
            big = W1[name].abs() > 1e-3  # the penalty dominates the gradient
            assert big.float().mean() > 0.8
            torch.testing.assert_close(
                got[big], (W1[name] - step)[big], rtol=1e-7, atol=1e-10
            )


@pytest.mark.parametrize("schedule", ["plateau", "constant"])
def test_learning_rate_is_halved_on_plateaus(schedule):
    # Training stops after more than n_iter_no_change = 4 epochs without
    # improvement; 'plateau' halves the rate after every 2 of them, so at least
    # twice before stopping. 'constant' never changes it.
    X, y = _pure_noise(300)
    model = MDNRegressor(
        n_iter_no_change=4, learning_rate=schedule, max_iter=300, random_state=0
    ).fit(X, y)
    assert model.n_iter_ < 300  # stopped by the criterion
    lr = model._optimizer_state["lr"]
    if schedule == "constant":
        assert lr == model.learning_rate_init
    else:
        assert lr <= model.learning_rate_init / 4


def test_patience_counts_long_epochs_as_several():
    # Up to 150 steps an epoch the patience is the given number of epochs;
    # longer epochs shrink it in proportion, never below one epoch.
    for epochs in (1, 2, 5, 25, 50):
        for steps in (1, 10, 145, 150):
            assert _patience(epochs, steps) == epochs
    assert _patience(50, 300) == 25
    assert _patience(25, 600) == 6  # 6.25
    assert _patience(50, 10**6) == 1
    patience = [_patience(50, s) for s in range(1, 5000, 7)]
    assert all(a >= b for a, b in itertools.pairwise(patience))


def _final_no_improvement_count(scores, tol):
    """Epochs since the validation score last improved on the best by tol."""
    best, count = -np.inf, 0
    for score in scores:
        count = count + 1 if score < best + tol else 0
        best = max(best, score)
    return count


def test_early_stopping_patience_counts_long_epochs_as_several():
    # 1080 training rows at batch 4: 270 steps an epoch, so n_iter_no_change=10
    # means round(10 * 150 / 270) = 6 epochs: training stops at the 7th epoch
    # without improvement (with short epochs it would be the 11th).
    X, y = _pure_noise(1200)
    model = MDNRegressor(
        n_iter_no_change=10, batch_size=4, max_iter=100, random_state=0
    ).fit(X, y)
    assert model.n_iter_ < 100  # stopped by the criterion
    count = _final_no_improvement_count(model.validation_scores_, model.tol)
    assert count == 7


def test_an_epochs_last_partial_batch_counts_as_a_step():
    # 801 rows at batch 4 are 201 steps an epoch (the last one of a row), so
    # n_iter_no_change=10 means round(10 * 150 / 201) = 7 epochs (200 steps
    # would give round(7.5) = 8): training without early stopping stops at
    # the 8th epoch in a row whose loss does not improve on the best by tol.
    X, y = _pure_noise(801)
    model = MDNRegressor(
        n_iter_no_change=10,
        batch_size=4,
        early_stopping=False,
        hidden_layer_sizes=(8,),
        max_iter=100,
        random_state=0,
    ).fit(X, y)
    assert model.n_iter_ < 100  # stopped by the criterion
    assert model.t_ == 201 * model.n_iter_
    losses = -np.asarray(model.loss_curve_)
    assert _final_no_improvement_count(losses, model.tol) == 8


def test_plateau_halves_every_epoch_when_epochs_are_long():
    # 1080 training rows at batch 4: 270 steps an epoch, so the plateau
    # patience of n_iter_no_change // 2 = 2 epochs becomes round(2 * 150 / 270)
    # = 1: every epoch without improvement halves the rate (with short epochs,
    # every second one).
    X, y = _pure_noise(1200)
    model = MDNRegressor(
        n_iter_no_change=4, batch_size=4, max_iter=100, random_state=0
    ).fit(X, y)
    best, count, halvings = -np.inf, 0, 0
    for score in model.validation_scores_:
        count = count + 1 if score < best + model.tol else 0
        best = max(best, score)
        halvings += count > 0
    assert halvings >= 3  # at least the final run without improvement
    assert model._optimizer_state["lr"] == model.learning_rate_init / 2**halvings


def test_noise_does_not_depend_on_torch_default_dtype():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = X[:, 0] + 0.1 * rng.normal(size=200)
    params = {"noise_regularization": 0.1, "max_iter": 3, "random_state": 0}
    fits = []
    before = torch.get_default_dtype()
    try:
        for default in (torch.float32, torch.float64):
            torch.set_default_dtype(default)
            with pytest.warns(ConvergenceWarning, match="reached max_iter"):
                fits.append(MDNRegressor(**params).fit(X, y).predict(X))
    finally:
        torch.set_default_dtype(before)
    np.testing.assert_array_equal(fits[0], fits[1])


@pytest.mark.parametrize("value", [1.0, 0.37, 3e200, 1e-300])
@pytest.mark.parametrize("n", [1, 2, 999, 123457])
def test_effective_sample_size_of_equal_weights_is_the_row_count(value, n):
    # the shortcut for equal weights gives what Kish's formula gives
    w = np.full(n, value)
    scaled = w / w.max()
    assert _effective_sample_size(w) == n == scaled.sum() ** 2 / np.sum(scaled**2)


@pytest.mark.parametrize("batch_size", [8, 50])
def test_alpha_is_divided_by_the_data_not_the_batch_unlike_mlp_sgd(
    batch_size, monkeypatch
):
    # The docstring: skmdn's penalty is alpha / (2 n) ||W||^2 whatever the
    # batch size (MLPRegressor's lbfgs scaling); MLPRegressor's mini-batch
    # solvers divide by the batch size. Checked on each: the decay skmdn's
    # optimiser applies, and the shrinkage of MLPRegressor's first-layer
    # weights under pure SGD decay (a tiny lr, a huge alpha).
    from sklearn.neural_network import MLPRegressor

    import skmdn._regressor as regressor

    decays = []
    real = regressor.FlatAdam

    def spy(network, lr, weight_decay):
        decays.append(weight_decay)
        return real(network, lr, weight_decay)

    monkeypatch.setattr(regressor, "FlatAdam", spy)
    rng = np.random.default_rng(0)
    n, alpha = 200, 3.0
    X, y = rng.normal(size=(n, 2)), rng.normal(size=n)
    w = rng.integers(1, 4, size=n).astype(float)
    model = MDNRegressor(alpha=alpha, batch_size=batch_size, max_iter=1, random_state=0)
    model.fit(X, y, sample_weight=w)
    assert decays == [alpha / w.sum()]

    lr, big = 1e-7, 1e4
    fits = {}
    for a, rate in ((0.0, 1e-300), (big, lr)):
        fits[a] = MLPRegressor(
            hidden_layer_sizes=(5,),
            solver="sgd",
            momentum=0.0,
            learning_rate_init=rate,
            alpha=a,
            batch_size=batch_size,
            shuffle=False,
            random_state=0,
            max_iter=1,
        ).fit(X, y)
    shrink = fits[big].coefs_[0] / fits[0.0].coefs_[0]  # (1 - lr alpha / s)^steps
    denominator = lr * big / (1 - shrink.mean() ** (batch_size / n))
    assert denominator == pytest.approx(batch_size, rel=0.01)


def test_distinct_rows_match_numpy_and_do_not_depend_on_order_or_repeats():
    # distinct_rows groups the packed [x | y] rows as np.unique(axis=0) does
    # (lexicographic order), and its n is Kish's effective sample size of the
    # distinct rows' summed weights: a row repeated k times counts as one
    # row of weight k.
    from skmdn._training import TrainData, distinct_rows

    rng = np.random.default_rng(0)
    base = rng.integers(0, 3, size=(12, 3)).astype(float)  # duplicates likely
    w = rng.uniform(0.5, 2.0, size=12)
    packed = torch.from_numpy(np.c_[base, w])
    (inverse, n_distinct), n_eff = distinct_rows(TrainData(packed, 2, 0.0))
    uniq, ref_inverse = np.unique(base, axis=0, return_inverse=True)
    assert n_distinct == len(uniq) < 12  # precondition: some rows repeat
    np.testing.assert_array_equal(inverse.numpy(), ref_inverse.ravel())
    v = np.bincount(ref_inverse.ravel(), weights=w)
    assert n_eff == pytest.approx(v.sum() ** 2 / np.sum(v**2), rel=1e-12)
    # shuffled, and with integer weights written out as repeated rows
    counts = rng.integers(1, 4, size=12)
    repeated = np.repeat(base, counts, axis=0)
    perm = rng.permutation(len(repeated))
    rows = torch.from_numpy(np.c_[repeated[perm], np.ones(len(perm))])
    (inv2, n2), n_eff2 = distinct_rows(TrainData(rows, 2, 0.0))
    assert n2 == n_distinct
    np.testing.assert_array_equal(uniq[inv2.numpy()], repeated[perm])
    v2 = np.bincount(ref_inverse.ravel(), weights=counts)
    assert n_eff2 == pytest.approx(v2.sum() ** 2 / np.sum(v2**2), rel=1e-12)


@pytest.mark.parametrize("noise", ["auto", 0.3])
def test_noisy_full_batch_fit_treats_integer_weights_as_repeated_rows(noise):
    # Full-batch training draws its noise per distinct row, so a row of
    # weight k and k copies of it get the same noise: the fits agree to
    # rounding, as scikit-learn's check_sample_weight_equivalence asks (it
    # passes on the default estimator: test_common.py). Noise drawn per row
    # (the mini-batch way) would not: the precondition below.
    import skmdn._regressor as regressor

    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, size=(20, 2))
    y = X[:, 0] + 0.3 * rng.normal(size=20)
    sw = rng.integers(0, 4, size=20)
    Xr, yr = np.repeat(X, sw, axis=0), np.repeat(y, sw)
    perm = rng.permutation(20)
    common = dict(
        hidden_layer_sizes=(8,),
        max_iter=30,
        precision="float64",
        noise_regularization=noise,
        random_state=0,
    )
    weighted = MDNRegressor(**common).fit(X[perm], y[perm], sw[perm])
    repeated = MDNRegressor(**common).fit(Xr, yr)
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-7)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-7)

    def per_row(data):
        n = data.train.shape[0]
        w = data.columns(data.train)[2].double()
        return (torch.arange(n), n), float(w.sum() ** 2 / (w * w).sum())

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(regressor, "distinct_rows", per_row)
        other = MDNRegressor(**common).fit(X[perm], y[perm], sw[perm])
    assert not np.allclose(other.predict(X), repeated.predict(X), rtol=1e-7)

"""The training loop against its references.

``diagonal_mixture_nll`` (hand-written backward) against autograd through
``mixture_log_prob``; ``FlatAdam`` against ``torch.optim.Adam``; and, through
the estimator, the recorded losses and validation scores against numpy's
weighted means of the predictive log-densities, the stopping rules against
scikit-learn's MLP rule replayed on the recorded curves, and the noise of
noise regularisation against its documented bandwidth.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skmdn import MDNRegressor, _fused
from skmdn._mixture import diagonal_mixture_nll, mixture_log_prob
from skmdn._network import MDNNetwork
from skmdn._training import FlatAdam, batch_loss

DIAGONAL_TYPES = ["diagonal", "isotropic", "isotropic_across", "fixed"]


def _network(noise_type: str, d: int = 3, seed: int = 0) -> MDNNetwork:
    net = MDNNetwork(
        4, d, 4, (8,), "tanh", noise_type, 1e-3, fixed_scale=(0.5,) * d
    ).double()
    net.reset_parameters(torch.Generator().manual_seed(seed))
    with torch.no_grad():  # a non-trivial head, not the near-zero init
        net.head.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(1))
    return net


def _batch(n: int = 12, d: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = 2.0 * torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.rand(n, generator=g, dtype=torch.float64)
    return x, y, w / w.sum()


@pytest.mark.parametrize("noise_type", DIAGONAL_TYPES)
def test_fused_loss_and_gradients_match_autograd(noise_type):
    net = _network(noise_type)
    x, y, w = _batch()
    fused = batch_loss(net, x, y, w)
    fused.backward()
    fused_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    reference = -(w * mixture_log_prob(net(x), y)).sum()
    reference.backward()
    torch.testing.assert_close(fused, reference, rtol=1e-12, atol=1e-12)
    for got, want in zip(fused_grads, (p.grad for p in net.parameters()), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("raw_shape", [(6, 3, 2), (6, 3, 1), (6, 1, 1), None])
def test_fused_loss_passes_gradcheck(raw_shape):
    g = torch.Generator().manual_seed(3)

    def leaf(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()

    logits, means = leaf(6, 3), leaf(6, 3, 2)
    raw = None if raw_shape is None else leaf(*raw_shape)
    y = torch.randn(6, 2, generator=g, dtype=torch.float64)
    w = torch.rand(6, generator=g, dtype=torch.float64)
    fixed = torch.tensor([0.7, 1.3], dtype=torch.float64)
    inputs = (logits, means) if raw is None else (logits, means, raw)

    def f(*args):
        r = args[2] if raw is not None else None
        return diagonal_mixture_nll(args[0], args[1], r, y, w / w.sum(), 1e-3, fixed)

    assert torch.autograd.gradcheck(f, inputs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_an_unlikely_component_still_explains_the_row_it_sits_on(dtype):
    """A component 61 nats less likely than another, but the only one near
    y, carries the row's likelihood: the loss is the exact mixture NLL
    (scipy), and its weight gets the gradient that brings it back."""
    from scipy.special import logsumexp, softmax
    from scipy.stats import norm

    logits = torch.tensor([[0.0, -61.0], [0.0, -61.0]], dtype=dtype)
    logits.requires_grad_()
    means = torch.tensor([[[0.0], [50.0]], [[0.0], [50.0]]], dtype=dtype)
    raw = torch.full((2, 2, 1), np.log(np.e - 1.0), dtype=dtype)  # scale 1
    y = torch.tensor([[50.0], [0.5]], dtype=dtype)
    w = torch.tensor([0.5, 0.5], dtype=dtype)
    loss = diagonal_mixture_nll(logits, means, raw, y, w, 0.0)
    loss.backward()
    log_pi = np.log(softmax([0.0, -61.0]))
    ll = [logsumexp(log_pi + norm.logpdf(v, [0.0, 50.0], 1.0)) for v in (50.0, 0.5)]
    assert loss.item() == pytest.approx(-np.mean(ll), rel=1e-6)  # 31.5, not 626
    # d(loss)/d(logits) = w (pi - responsibilities): the far row moves
    # its whole weight of 0.5 onto the component that explains it
    want = [[0.5, -0.5], [0.0, 0.0]]
    np.testing.assert_allclose(logits.grad.numpy(), want, atol=1e-6)


def _torch_adam(net: MDNNetwork, lr: float, weight_decay: float):
    decay = [p for n, p in net.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in net.named_parameters() if n.endswith("bias")]
    return torch.optim.Adam(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest}], lr=lr
    )


def _steps(net, opt, n_steps, seed=0):
    for step in range(n_steps):
        x, y, w = _batch(seed=seed + step)
        opt.zero_grad()
        batch_loss(net, x, y, w).backward()
        opt.step()


@pytest.fixture(params=["compiled", "torch"])
def adam_kernel(request, monkeypatch):
    """FlatAdam's update through the compiled pass (``skmdn._fused``, where it
    is built) and through torch's operations."""
    if request.param == "compiled" and _fused._cmixture is None:
        pytest.skip("skmdn._cmixture was not built")
    monkeypatch.setattr(_fused, "ENABLED", request.param == "compiled")


@pytest.mark.usefixtures("adam_kernel")
def test_flat_adam_follows_torch_adam_with_decay_on_weights_only():
    ours, theirs = _network("diagonal"), _network("diagonal")
    flat = FlatAdam(ours, lr=0.01, weight_decay=0.3)
    _steps(ours, flat, 25)
    _steps(theirs, _torch_adam(theirs, lr=0.01, weight_decay=0.3), 25)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    flat.release()
    storages = {p.untyped_storage().data_ptr() for p in ours.parameters()}
    assert len(storages) == len(list(ours.parameters()))  # own storage each
    assert all(p.grad is None for p in ours.parameters())
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.usefixtures("adam_kernel")
def test_flat_adam_state_continues_exactly():
    straight, resumed = _network("isotropic"), _network("isotropic")
    opt = FlatAdam(straight, lr=0.02, weight_decay=0.1)
    _steps(straight, opt, 10)
    first = FlatAdam(resumed, lr=0.02, weight_decay=0.1)
    _steps(resumed, first, 6)
    state = first.state_dict()
    first.release()
    second = FlatAdam(resumed, lr=123.0, weight_decay=0.1)
    second.load_state_dict(state)
    assert second.lr == 0.02 and second.t == 6
    _steps(resumed, second, 4, seed=6)
    np.testing.assert_array_equal(opt.flat.numpy(), second.flat.numpy())


def test_flat_adam_snapshot_restore_round_trip():
    net = _network("diagonal")
    opt = FlatAdam(net, lr=0.05, weight_decay=0.0)
    saved = opt.snapshot()
    before = [p.detach().clone() for p in net.parameters()]
    _steps(net, opt, 3)
    assert not torch.equal(net.head.bias, before[-1])
    opt.restore(saved)
    for p, b in zip(net.parameters(), before, strict=True):
        assert torch.equal(p, b)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"noise_type": "fixed", "fixed_noise_level": 0.3},
        {"noise_type": "full"},
        {"precision": "float32", "activation": "relu"},
    ],
)
def test_the_copy_a_continued_fit_trains_is_the_fitted_network(params):
    # partial_fit and warm_start train a copy, rebuilt from the config (for
    # speed): against copy.deepcopy, the same modules, parameters and
    # buffers bit for bit, of the same dtypes, in storage of their own.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    Y = np.c_[X[:, 0], X[:, 1] ** 2]
    model = MDNRegressor(max_iter=2, random_state=0, **params).fit(X, Y)
    reference = copy.deepcopy(model.network_)
    network = model._copy_state("partial_fit").network
    assert repr(network) == repr(reference)
    mine = dict(network.named_parameters()) | dict(network.named_buffers())
    theirs = dict(reference.named_parameters()) | dict(reference.named_buffers())
    fitted = dict(model.network_.named_parameters())
    fitted |= dict(model.network_.named_buffers())
    assert mine.keys() == theirs.keys()
    for name, tensor in mine.items():
        assert tensor.dtype == theirs[name].dtype, name
        assert tensor.requires_grad == theirs[name].requires_grad, name
        assert torch.equal(tensor, theirs[name]), name
        assert tensor.data_ptr() != fitted[name].data_ptr(), name


def test_the_validation_split_is_train_test_splits():
    # fit holds out the rows train_test_split would (documented as the
    # validation_fraction split), drawn without its per-call overhead.
    from sklearn.model_selection import train_test_split

    from skmdn._regressor import _validation_split

    for n, n_val, seed in [(2, 1, 0), (200, 20, 5), (1001, 101, 2**32 + 7)]:
        train, val = train_test_split(
            np.arange(n), test_size=n_val, random_state=seed % 2**32
        )
        mine = _validation_split(n, n_val, seed)
        np.testing.assert_array_equal(mine[0], np.sort(train))
        np.testing.assert_array_equal(mine[1], np.sort(val))


# ------------------------------------------- the loop, through the estimator
def _weighted_problem(n: int = 200, seed: int = 0):
    """Sine data with weights of which some are exactly 1 (the unit-weight
    fast path must not be taken for the whole set because of them)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.sin(2.0 * X[:, 0]) + 0.2 * rng.normal(size=n)
    w = np.where(rng.random(n) < 0.3, 1.0, rng.uniform(0.1, 5.0, n))
    return X, y, w


@pytest.mark.parametrize("batch_size", [16, 200])
def test_loss_curve_is_the_weighted_mean_nll_of_the_training_rows(batch_size):
    # A rate so small that the weights do not move within the epoch: the
    # recorded epoch loss is then the weighted mean NLL of the training rows
    # under the model, in original units, which numpy computes from the
    # predictive densities (mini-batch losses must be combined by their
    # weights, each batch normalised by its own sum of weights).
    from skmdn import MDNRegressor

    X, y, w = _weighted_problem()
    model = MDNRegressor(
        n_components=3,
        hidden_layer_sizes=(8,),
        learning_rate_init=1e-12,
        batch_size=batch_size,
        early_stopping=False,
        max_iter=1,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match="reached max_iter"):
        model.fit(X, y, sample_weight=w)
    expected = -np.average(model.predict_dist(X).logpdf(y), weights=w)
    assert model.loss_curve_[0] == pytest.approx(expected, rel=1e-9)
    # and unweighted rows weigh the same (the unit-weight blocked path)
    with pytest.warns(ConvergenceWarning, match="reached max_iter"):
        model.fit(X, y)
    expected = -model.predict_dist(X).logpdf(y).mean()
    assert model.loss_curve_[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("level", ["always", 0.3])
def test_noise_regularisation_perturbs_x_and_y_by_the_documented_bandwidth(
    level, monkeypatch
):
    # The rows each training step sees, against the standardised data: the
    # difference is fresh Gaussian noise of standard deviation
    # 0.2 * n ** (-1 / (4 + d)) for 'always' (Rothfuss et al. 2019; d = number
    # of features plus outputs), the given level otherwise, in x and in y.
    import skmdn._training as training
    from skmdn import MDNRegressor

    n = 2000
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2)) * [3.0, 0.5] + [1.0, -2.0]
    y = 4.0 * np.sin(X[:, 0]) + rng.normal(size=n)
    seen = []
    real = training.step_loss

    def spy(step, workers):
        seen.append([t.clone() for t in step.args[:2]])  # (x, y) of the batch
        return real(step, workers)

    monkeypatch.setattr(training, "step_loss", spy)
    model = MDNRegressor(
        hidden_layer_sizes=(4,),
        noise_regularization=level,
        early_stopping=False,
        batch_size=n,  # one step an epoch, on the rows in order
        max_iter=2,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match="reached max_iter"):
        model.fit(X, y)
    expected = 0.2 * n ** (-1.0 / (4 + 2 + 1)) if level == "always" else level
    x_std = (X - model.X_mean_) / model.X_scale_
    y_std = (y[:, None] - model.y_mean_) / model.y_scale_
    assert len(seen) == 2
    for xb, yb in seen:
        for batch, clean in ((xb, x_std), (yb, y_std)):
            noise = batch.numpy() - clean
            assert noise.std() == pytest.approx(expected, rel=0.06)
            assert abs(noise.mean()) < 4 * expected / np.sqrt(noise.size)
    # fresh noise every step
    assert not torch.equal(seen[0][0], seen[1][0])


def test_validation_score_is_the_weighted_log_likelihood_of_held_out_rows(
    monkeypatch,
):
    # The split is recorded where the estimator draws it (_validation_split,
    # train_test_split's permutation); with a rate too small to move the
    # weights, the recorded training loss is the weighted mean NLL of the
    # training rows alone (no held-out row leaks into training) and the
    # validation score the weighted mean log-likelihood of the held-out rows,
    # both in the original units of y, as numpy computes them from the
    # predictive densities.
    from skmdn import MDNRegressor

    splits = _spy_split(monkeypatch)
    X, y, w = _weighted_problem(n=301)
    y = 50.0 * y + 7.0  # log(y_scale) far from 0: units must be right
    model = MDNRegressor(
        n_components=3,
        hidden_layer_sizes=(8,),
        learning_rate_init=1e-12,
        early_stopping=True,
        validation_fraction=0.2,
        max_iter=1,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match="reached max_iter"):
        model.fit(X, y, sample_weight=w)
    ((train, val),) = splits
    # ceil(0.2 * 301) held out, as train_test_split(test_size=0.2) holds out
    assert len(val) == 61 and len(train) == 240
    assert np.intersect1d(train, val).size == 0
    logpdf = model.predict_dist(X).logpdf(y)
    assert model.loss_curve_[0] == pytest.approx(
        -np.average(logpdf[train], weights=w[train]), rel=1e-9
    )
    expected = np.average(logpdf[val], weights=w[val])
    assert model.validation_scores_[0] == pytest.approx(expected, rel=1e-9)
    assert model.best_validation_score_ == model.validation_scores_[0]


def _spy_split(monkeypatch) -> list:
    """Record the (train, validation) rows the estimator's split returns."""
    import skmdn._regressor as regressor

    splits = []
    real = regressor._validation_split

    def spy(*args, **kwargs):
        splits.append(real(*args, **kwargs))
        return splits[-1]

    monkeypatch.setattr(regressor, "_validation_split", spy)
    return splits


def _no_improvement_counts(values, tol, higher_is_better):
    """scikit-learn's MLP rule, epoch by epoch: the count of epochs since the
    monitored value last improved on the best so far by more than tol."""
    sign = 1.0 if higher_is_better else -1.0
    best, count, counts = -np.inf, 0, []
    for v in sign * np.asarray(values):
        count = count + 1 if v < best + tol else 0
        best = max(best, v)
        counts.append(count)
    return counts


def test_early_stopping_keeps_the_best_epoch_even_when_it_improved_by_less_than_tol(
    monkeypatch,
):
    # tol decides when to stop, not which weights are best (as in
    # MLPRegressor): the kept model is the epoch of the highest recorded
    # validation score, checked by scoring the held-out rows with numpy.
    from skmdn import MDNRegressor

    splits = _spy_split(monkeypatch)
    X, y, _ = _weighted_problem(n=400)
    tol = 0.02
    model = MDNRegressor(
        n_components=3,
        hidden_layer_sizes=(16,),
        tol=tol,
        n_iter_no_change=8,
        max_iter=200,
        random_state=0,
    ).fit(X, y)
    scores = model.validation_scores_
    counts = _no_improvement_counts(scores, tol, higher_is_better=True)
    assert model.n_iter_ < 200 and counts[-1] == 9 and max(counts[:-1]) <= 8
    best = int(np.argmax(scores))
    # precondition: the best epoch improved on the earlier best by less than tol
    assert 0 < scores[best] - max(scores[:best]) < tol
    assert model.best_validation_score_ == scores[best]
    ((_, val),) = splits
    held_out = model.predict_dist(X[val]).logpdf(y[val]).mean()
    assert held_out == pytest.approx(scores[best], rel=1e-9, abs=1e-12)


def test_training_loss_stopping_counts_from_the_best_loss(monkeypatch):
    # Without early stopping, an epoch improves when its loss is below the
    # best loss so far minus tol (MLPRegressor's rule): training stops at the
    # first epoch where more than n_iter_no_change epochs in a row did not.
    from skmdn import MDNRegressor

    X, y, _ = _weighted_problem(n=400)
    tol, patience = 0.01, 4
    model = MDNRegressor(
        n_components=3,
        hidden_layer_sizes=(16,),
        early_stopping=False,
        learning_rate="constant",
        learning_rate_init=0.03,
        tol=tol,
        n_iter_no_change=patience,
        max_iter=300,
        random_state=0,
    ).fit(X, y)
    counts = _no_improvement_counts(model.loss_curve_, tol, higher_is_better=False)
    assert model.n_iter_ < 300
    assert counts[-1] == patience + 1 and max(counts[:-1]) <= patience
    assert model.best_loss_ == min(model.loss_curve_)


def test_random_state_seeds_the_validation_split(monkeypatch):
    # as documented: the same seed holds out the same rows, another seed
    # other rows (a split fixed for every seed would bias a seed average)
    from skmdn import MDNRegressor

    splits = _spy_split(monkeypatch)
    X, y, _ = _weighted_problem(n=200)
    for seed in (0, 0, 1):
        model = MDNRegressor(
            hidden_layer_sizes=(4,), early_stopping=True, max_iter=1, random_state=seed
        )
        with pytest.warns(ConvergenceWarning, match="reached max_iter"):
            model.fit(X, y)
    (_, a), (_, b), (_, c) = splits
    np.testing.assert_array_equal(a, b)
    assert len(np.setdiff1d(a, c)) > len(a) // 2

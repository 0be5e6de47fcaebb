"""Training faults, fitted-state safety, determinism and the global random state.

Faults are injected by wrapping the loss function the training loop calls
(``skmdn._training.step_loss``), so they happen *inside* training, in the
middle of an epoch, exactly where a real divergence or Ctrl-C would.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import skmdn._training as training
from skmdn import MDNRegressor
from skmdn._network import NOISE_TYPES

RNG = np.random.default_rng(1)
X = RNG.normal(size=(96, 2))
Y = np.sin(2 * X[:, 0]) + 0.1 * RNG.normal(size=96)


def model(**params) -> MDNRegressor:
    base = {
        "n_components": 3,
        "hidden_layer_sizes": (8,),
        "batch_size": 32,  # three optimiser steps per epoch
        "max_iter": 6,
        "tol": 0.0,
        "n_iter_no_change": 100,
        "noise_regularization": None,  # 96 rows: 'auto' would add noise
        "random_state": 0,
    }
    return MDNRegressor(**{**base, **params})


def quiet_fit(m, X_=X, y_=Y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return m.fit(X_, y_, **kwargs)


def inject(monkeypatch, after_calls: int, fault):
    """From training step ``after_calls + 1`` on, apply ``fault`` to the loss.

    Only training steps call ``step_loss``; evaluations (the initial loss,
    validation scores) do not.
    """
    real = training.step_loss
    calls = {"n": 0}

    def wrapped(*args):
        calls["n"] += 1
        out = real(*args)
        return fault(out) if calls["n"] > after_calls else out

    monkeypatch.setattr(training, "step_loss", wrapped)
    return calls


def nan_loss(out):
    return out * float("nan")


def interrupt(out):
    raise KeyboardInterrupt


def boom(out):
    raise RuntimeError("injected failure")


def snapshot(m: MDNRegressor):
    """Everything a failing call must leave untouched."""
    return {
        "weights": {k: v.clone() for k, v in m.network_.state_dict().items()},
        "optimizer": copy.deepcopy(m._optimizer_state),
        "predict": m.predict(X),
        "loss_curve": list(m.loss_curve_),
        "n_iter": m.n_iter_,
        "t": m.t_,
        "stats": (m.X_mean_.copy(), m.X_scale_.copy(), m.y_mean_.copy()),
    }


def assert_unchanged(m: MDNRegressor, before) -> None:
    after = snapshot(m)
    np.testing.assert_array_equal(after["predict"], before["predict"])
    for k, v in before["weights"].items():
        assert torch.equal(after["weights"][k], v), k
    for key, value in before["optimizer"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(after["optimizer"][key], value), key
        else:
            assert after["optimizer"][key] == value, key
    assert after["loss_curve"] == before["loss_curve"]
    assert (after["n_iter"], after["t"]) == (before["n_iter"], before["t"])
    for a, b in zip(after["stats"], before["stats"], strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ divergence
@pytest.mark.parametrize("noise_type", NOISE_TYPES)
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_divergent_learning_rate_never_predicts_nan(noise_type, precision):
    # Adam's step is bounded by the learning rate, so lr=1e3 throws the weights
    # around but (with standardisation and the scale floor) the loss stays
    # finite: the outcome is a finite but poor model -- never NaN -- and a
    # warning that training made it worse than its initialisation.
    m = model(
        noise_type=noise_type,
        fixed_noise_level=0.1,
        learning_rate_init=1e3,
        precision=precision,
        max_iter=15,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(X, Y)
    messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert any(
        "Training made the model worse" in s
        and "Lower learning_rate_init (now 1000)" in s
        for s in messages
    ), messages
    assert not any("raise max_iter or learning_rate_init" in s for s in messages)
    assert np.isfinite(m.predict(X)).all()
    assert np.isfinite(m.score(X, Y))
    assert np.isfinite(m.sample(X, 3, random_state=0)).all()
    assert all(np.isfinite(m.loss_curve_))


@pytest.mark.parametrize("unit", [1.0, 1e3, 1e-3])
def test_a_sensible_learning_rate_does_not_warn_of_divergence(unit):
    # in any units of y: the loss at initialisation and the loss curve are
    # compared in the same (original) units
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = model(learning_rate_init=1e-2, max_iter=20).fit(X, unit * Y)
    assert not any("made the model worse" in str(w.message) for w in caught)
    if unit < 1.0:  # and a real divergence in small units still warns
        with pytest.warns(ConvergenceWarning, match="made the model worse"):
            m.set_params(learning_rate_init=1e3).fit(X, unit * Y)


def test_warm_start_with_new_noise_is_not_read_as_divergence():
    """The loss curve of a fit with noise_regularization is on noisy data,
    so the loss it is compared with must be too: continuing a precise model
    with noise warned that training diverged (and hid the max_iter warning)
    although it lowered the loss on the noisy data at every epoch."""
    x = np.linspace(-1, 1, 96)[:, None]
    y = np.sin(3 * x[:, 0]) + 0.01 * RNG.normal(size=96)
    m = quiet_fit(model(max_iter=150, warm_start=True, learning_rate_init=0.01), x, y)
    m.set_params(noise_regularization=0.3, max_iter=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(x, y)
    noisy = m.loss_curve_[150:]
    assert noisy[-1] < noisy[0] - 1.0  # training improved on what it saw
    messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert not any("made the model worse" in s for s in messages), messages
    assert any("reached max_iter=10" in s for s in messages), messages
    # a real divergence under noise still warns
    m.set_params(learning_rate_init=1e3)
    with pytest.warns(ConvergenceWarning, match="made the model worse"):
        m.fit(x, y)


def test_non_finite_loss_mid_training_restores_last_finite_epoch(monkeypatch):
    reference = quiet_fit(model(max_iter=3))
    inject(monkeypatch, after_calls=3 * 3 + 1, fault=nan_loss)  # epoch 4, step 2
    with pytest.warns(ConvergenceWarning, match="non-finite in epoch 4.*epoch 3"):
        m = model(max_iter=10).fit(X, Y)
    assert m.n_iter_ == 3
    assert all(np.isfinite(m.loss_curve_))
    # the restored weights are exactly those after epoch 3
    np.testing.assert_array_equal(m.predict(X), reference.predict(X))
    assert np.isfinite(m.score(X, Y))


def test_non_finite_loss_in_first_epoch_raises_with_advice_and_keeps_state(
    monkeypatch,
):
    m = quiet_fit(model())
    before = snapshot(m)
    inject(monkeypatch, after_calls=0, fault=nan_loss)
    with pytest.raises(FloatingPointError, match="Lower learning_rate_init"):
        m.fit(X, Y)
    assert_unchanged(m, before)


def test_data_that_overflow_float32_raise_with_advice():
    # unstandardised inputs of 1e36 overflow the float32 network at once
    m = model(standardize=False, precision="float32", activation="relu")
    with pytest.raises(FloatingPointError, match="standardize=True helps"):
        m.fit(X * 1e36, Y)
    assert not hasattr(m, "network_")


def test_warm_start_divergence_restores_and_warns(monkeypatch):
    m = quiet_fit(model(warm_start=True))
    before = m.predict(X)
    inject(monkeypatch, after_calls=0, fault=nan_loss)
    with pytest.warns(ConvergenceWarning, match="left as it was before this call"):
        m.fit(X, Y)
    np.testing.assert_array_equal(m.predict(X), before)
    assert m.n_iter_ == 6


# ------------------------------------------------------------- interrupt
def test_keyboard_interrupt_leaves_a_usable_model(monkeypatch):
    reference = quiet_fit(model(max_iter=2))
    inject(monkeypatch, after_calls=2 * 3 + 1, fault=interrupt)  # in epoch 3
    # without early stopping no best is kept: the last finished epoch stays
    with pytest.warns(UserWarning, match="after 2 epochs; .* its last finished epoch"):
        m = model(max_iter=10).fit(X, Y)
    assert m.n_iter_ == 2
    np.testing.assert_array_equal(m.predict(X), reference.predict(X))
    assert np.isfinite(m.score(X, Y))


def test_keyboard_interrupt_with_early_stopping_keeps_best_weights(monkeypatch):
    m0 = quiet_fit(model(early_stopping=True, max_iter=4))
    best = int(np.argmax(m0.validation_scores_)) + 1
    reference = quiet_fit(
        model(early_stopping=True, max_iter=best, learning_rate="constant")
    )
    # each epoch: 3 training steps (87 rows / 32); interrupt in epoch 5
    inject(monkeypatch, after_calls=4 * 3 + 1, fault=interrupt)
    with pytest.warns(UserWarning, match="interrupted.*best weights found so far"):
        m = model(early_stopping=True, max_iter=10).fit(X, Y)
    assert m.n_iter_ == 4
    np.testing.assert_array_equal(m.predict(X), reference.predict(X))


def test_keyboard_interrupt_keeps_the_best_epoch_not_the_last_finished_one(
    monkeypatch,
):
    # validation scores -0.77 -0.35 -0.08 -0.31 -0.43 -0.35 (the stopping-rule
    # test below): after an interrupt in epoch 7 the kept weights are epoch
    # 3's, the best, not epoch 6's, the last finished
    fast = {"early_stopping": True, "learning_rate": "constant"}
    fast["learning_rate_init"] = 0.05
    scores = quiet_fit(model(max_iter=6, **fast)).validation_scores_
    best = int(np.argmax(scores)) + 1
    assert best <= 4 and max(scores[best:]) < max(scores) - 0.01
    reference = quiet_fit(model(max_iter=best, **fast))
    inject(monkeypatch, after_calls=6 * 3 + 1, fault=interrupt)  # in epoch 7
    with pytest.warns(UserWarning, match="interrupted.*best weights found so far"):
        m = model(max_iter=10, **fast).fit(X, Y)
    assert m.n_iter_ == 6 and m.validation_scores_ == scores
    np.testing.assert_array_equal(m.predict(X), reference.predict(X))


def test_an_interrupted_warm_fit_does_not_claim_to_have_reached_max_iter(
    monkeypatch,
):
    # max_iter counts the epochs of one call: a warm call interrupted in its
    # second epoch ran one, whatever the model's total
    m = quiet_fit(model(max_iter=3, warm_start=True))
    inject(monkeypatch, after_calls=3 + 1, fault=interrupt)  # call's epoch 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(X, Y)
    messages = [str(w.message) for w in caught]
    assert m.n_iter_ == 4
    assert any("interrupted by the user" in s for s in messages), messages
    assert not any("max_iter" in s for s in messages), messages


# ---------------------------------------------- fitted state survives errors
@pytest.mark.parametrize("method", ["fit", "warm_fit", "partial_fit"])
def test_error_inside_training_never_loses_fitted_state(monkeypatch, method):
    if method == "partial_fit":
        m = model()
        for _ in range(3):
            m.partial_fit(X, Y)
    else:
        m = quiet_fit(model(warm_start=method == "warm_fit"))
    before = snapshot(m)
    inject(monkeypatch, after_calls=2, fault=boom)  # optimiser has stepped twice
    call = m.partial_fit if method == "partial_fit" else m.fit
    with pytest.raises(RuntimeError, match="injected failure"):
        call(X, Y)
    assert_unchanged(m, before)
    monkeypatch.undo()
    # and the model continues normally afterwards
    call(X, Y) if method == "partial_fit" else quiet_fit(m)
    assert np.isfinite(m.predict(X)).all()


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (lambda m: m.fit(np.c_[X, X], Y), "X has 4 features"),
        (lambda m: m.fit(X, np.c_[Y, Y]), "fitted on 1 outputs, but y has 2"),
        (lambda m: m.fit(X, np.where(np.arange(96) == 5, np.nan, Y)), "y contains NaN"),
        (lambda m: m.partial_fit(X, np.c_[Y, Y]), "y with 2 output"),
        (lambda m: m.partial_fit(X[:, :1], Y), "X has 1 features"),
        (
            lambda m: m.partial_fit(X, Y, sample_weight=-np.ones(96)),
            "sample_weight must be non-negative",
        ),
        (
            lambda m: m.set_params(noise_type="fixed").fit(X, Y),
            "needs fixed_noise_level",
        ),
        (lambda m: m.set_params(n_components=0).fit(X, Y), "'n_components' parameter"),
        (lambda m: m.set_params(device="gpu").fit(X, Y), "device='gpu'"),
    ],
    ids=[
        "fit-n_features",
        "warm-fit-n_outputs",
        "fit-nan",
        "partial_fit-n_outputs",
        "partial_fit-n_features",
        "partial_fit-negative-weight",
        "fixed-without-level",
        "invalid-parameter",
        "bad-device",
    ],
)
def test_validation_errors_leave_fitted_state_untouched(bad, match):
    # each case must fail its own validation (an unrelated ValueError from
    # deeper in, after the state was touched, would also have passed)
    m = quiet_fit(model(warm_start=True))
    before = snapshot(m)
    with pytest.raises(ValueError, match=match):
        bad(m)
    m.set_params(noise_type="diagonal", n_components=3, device="auto")
    assert_unchanged(m, before)


# ------------------------------------------------------------- determinism
def _weights(m):
    return {k: v.clone() for k, v in m.network_.state_dict().items()}


@pytest.mark.parametrize(
    "params",
    [
        {"noise_type": "diagonal"},
        {"noise_type": "full", "early_stopping": True},
        {"noise_type": "isotropic", "batch_size": 7},
    ],
    ids=["diagonal", "full-early-stopping", "isotropic-small-batches"],
)
def test_same_random_state_gives_bitwise_identical_fits(params):
    Y2 = np.c_[Y, np.cos(X[:, 1])]
    a = quiet_fit(model(precision="float64", **params), y_=Y2)
    b = quiet_fit(model(precision="float64", **params), y_=Y2)
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.dtype_ == torch.float64
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.loss_curve_ == b.loss_curve_
    # and the test can fail: another seed gives other weights
    c = quiet_fit(model(precision="float64", **{**params, "random_state": 1}), y_=Y2)
    assert not all(torch.equal(wa[k], _weights(c)[k]) for k in wa)


def test_random_state_instances_are_reproducible():
    a = quiet_fit(model(random_state=np.random.RandomState(3)))
    b = quiet_fit(model(random_state=np.random.RandomState(3)))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    # partial_fit too: the same sequence of calls gives the same model
    p, q = model(), model()
    for _ in range(3):
        p.partial_fit(X, Y)
        q.partial_fit(X, Y)
    np.testing.assert_array_equal(p.predict(X), q.predict(X))


def test_fit_does_not_depend_on_global_random_state():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        np.random.seed(1)
        a = quiet_fit(model())
        torch.manual_seed(2)
        np.random.seed(2)
        b = quiet_fit(model())
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_sample_is_reproducible_with_random_state():
    m = quiet_fit(model())
    np.testing.assert_array_equal(
        m.sample(X, 4, random_state=7), m.sample(X, 4, random_state=7)
    )
    assert not np.array_equal(
        m.sample(X, 4, random_state=7), m.sample(X, 4, random_state=8)
    )
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(m.sample(X, 2, g1), m.sample(X, 2, g2))


def test_nothing_touches_the_global_random_states():
    torch_before = torch.get_rng_state()
    numpy_before = np.random.get_state()
    m = quiet_fit(model(random_state=None, early_stopping=True))
    m.partial_fit(X, Y)
    m.set_params(warm_start=True)
    quiet_fit(m)
    m.predict(X)
    m.predict_dist(X).sample(3)
    m.sample(X, 3)
    m.score(X, Y)
    pickle.loads(pickle.dumps(m)).predict(X)  # rebuilding the network on load
    clone(m)
    fresh = model(random_state=None)
    fresh.partial_fit(X, Y)
    assert torch.equal(torch.get_rng_state(), torch_before)
    numpy_after = np.random.get_state()
    np.testing.assert_array_equal(numpy_after[1], numpy_before[1])
    assert numpy_after[2:] == numpy_before[2:]


# --------------------------------------------------------- stopping rules
@pytest.mark.parametrize(
    "stop",
    [
        # scores -0.77 -0.35 -0.08 -0.31 -0.43 -0.35: best epoch 3, and
        # epochs 4-6 do not improve, more than n_iter_no_change=2
        {"learning_rate_init": 0.05, "n_iter_no_change": 2, "max_iter": 50},
        # the same scores and -0.22 at epoch 7: max_iter ends the fit
        {"learning_rate_init": 0.05, "n_iter_no_change": 100, "max_iter": 7},
    ],
    ids=["patience", "max_iter"],
)
def test_early_stopping_stops_on_patience_and_restores_best_epoch(stop):
    m = quiet_fit(model(early_stopping=True, learning_rate="constant", **stop))
    scores = m.validation_scores_
    best = int(np.argmax(scores)) + 1
    if stop["max_iter"] == 50:
        # stopped when more than n_iter_no_change epochs failed to improve
        assert m.n_iter_ == best + stop["n_iter_no_change"] + 1 < 50
    else:
        assert m.n_iter_ == stop["max_iter"]
    # precondition: the best epoch is not the last, so which weights are kept
    # shows (scores after it are clearly lower)
    assert best <= m.n_iter_ - 2
    assert max(scores[best:]) < max(scores) - 0.01
    assert m.best_validation_score_ == max(scores)
    # the kept weights are those of the best epoch: a fit that ends there
    reference = quiet_fit(
        model(
            early_stopping=True,
            learning_rate="constant",
            **{**stop, "max_iter": best},
        )
    )
    assert reference.n_iter_ == best
    assert reference.validation_scores_ == scores[:best]
    np.testing.assert_array_equal(m.predict(X), reference.predict(X))
    wm, wr = _weights(m), _weights(reference)
    assert all(torch.equal(wm[k], wr[k]) for k in wm)


def test_verbose_prints_the_recorded_losses(capsys):
    m = quiet_fit(model(verbose=2, early_stopping=True, max_iter=3))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for epoch, (line, loss, score) in enumerate(
        zip(lines, m.loss_curve_, m.validation_scores_, strict=True), start=1
    ):
        assert line == (
            f"Epoch {epoch}, loss = {loss:.6f}, validation NLL = {-score:.6f}"
        )


@pytest.mark.parametrize("early_stopping", [True, False])
def test_verbose_says_why_training_stopped(capsys, early_stopping):
    # as MLPRegressor's verbose output does; with early stopping also which
    # epoch's weights were kept (the fit stops 3 epochs after its best)
    stop = {"n_iter_no_change": 2, "max_iter": 50, "learning_rate": "constant"}
    if early_stopping:
        stop["learning_rate_init"] = 0.05
    else:
        stop["tol"] = 1e9  # no epoch after the first improves by that much
    m = quiet_fit(model(verbose=2, early_stopping=early_stopping, **stop))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == m.n_iter_ + 1 < 50
    if early_stopping:
        best = int(np.argmax(m.validation_scores_)) + 1
        assert m.n_iter_ == best + 3
        assert lines[-1] == (
            "Validation NLL did not improve by tol=0 for 3 epochs: stopped after "
            f"epoch {m.n_iter_} and kept the weights of epoch {best} (validation "
            f"NLL = {-m.best_validation_score_:.6f})."
        )
    else:
        assert m.n_iter_ == 4
        assert lines[-1] == (
            "Training loss did not improve by tol=1e+09 for 3 epochs: stopped "
            "after epoch 4."
        )


def test_keyboard_interrupt_during_validation_keeps_history_consistent(monkeypatch):
    import skmdn._training as training

    real = training.mean_log_likelihood
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the validation pass of epoch 3
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "mean_log_likelihood", flaky)
    rng = np.random.default_rng(0)
    X_ = rng.normal(size=(300, 2))
    y_ = X_[:, 0] + 0.1 * rng.normal(size=300)
    m = MDNRegressor(early_stopping=True, max_iter=10, random_state=0)
    with pytest.warns(UserWarning, match="interrupted by the user after 2 epochs"):
        m.fit(X_, y_)
    assert m.n_iter_ == len(m.loss_curve_) == len(m.validation_scores_) == 2
    assert np.isfinite(m.predict(X_)).all()


# ------------------------------------------- roll-back of the whole state
def test_a_non_finite_epoch_rolls_the_optimiser_back_too(monkeypatch):
    """After a non-finite epoch Adam's moments are non-finite as well: they
    are rolled back with the weights, so training continues exactly as if
    that call had never happened (before, every later call failed again)."""
    straight = model()
    for _ in range(3):
        straight.partial_fit(X, Y)
    m = model().partial_fit(X, Y)
    inject(monkeypatch, after_calls=1, fault=nan_loss)  # the call's 2nd step
    with pytest.warns(ConvergenceWarning, match="non-finite in epoch 2"):
        m.partial_fit(X, Y)
    monkeypatch.undo()
    assert m.n_iter_ == 1 and m._optimizer_state["t"] == m.t_ == 3
    m.partial_fit(X, Y).partial_fit(X, Y)
    assert m.n_iter_ == 3
    np.testing.assert_array_equal(m.predict(X), straight.predict(X))


def test_a_non_finite_epoch_mid_fit_restores_the_optimiser_of_the_last_good_one(
    monkeypatch,
):
    """The published optimiser state (which partial_fit and warm_start
    continue from) is that of the epoch whose weights are kept, not the
    diverged one's: step count and moments of a fit that ended there."""
    reference = quiet_fit(model(max_iter=3))
    inject(monkeypatch, after_calls=3 * 3 + 1, fault=nan_loss)  # epoch 4, step 2
    with pytest.warns(ConvergenceWarning, match="non-finite in epoch 4"):
        m = model(max_iter=10).fit(X, Y)
    monkeypatch.undo()
    assert m.n_iter_ == m._optimizer_state["t"] // 3 == 3
    for key, value in reference._optimizer_state.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(m._optimizer_state[key], value), key
        else:
            assert m._optimizer_state[key] == value, key
    m.partial_fit(X, Y)
    reference.partial_fit(X, Y)
    np.testing.assert_array_equal(m.predict(X), reference.predict(X))


def test_a_non_finite_epoch_with_early_stopping_keeps_the_best_weights(
    monkeypatch,
):
    fast = {"early_stopping": True, "learning_rate_init": 0.03}
    scores = quiet_fit(model(max_iter=7, **fast)).validation_scores_
    best = int(np.argmax(scores)) + 1
    assert best < 7  # else the test could not tell the best from the last
    reference = quiet_fit(model(max_iter=best, **fast))
    inject(monkeypatch, after_calls=7 * 3 + 1, fault=nan_loss)  # in epoch 8
    with pytest.warns(ConvergenceWarning, match="best validation score"):
        m = model(max_iter=10, **fast).fit(X, Y)
    assert m.n_iter_ == 7
    np.testing.assert_array_equal(m.predict(X), reference.predict(X))
    assert m.best_validation_score_ == max(m.validation_scores_)


@pytest.mark.parametrize("warm_start", [False, True])
def test_a_non_finite_first_validation_score_raises_with_advice(warm_start):
    """One absurd target among the held-out rows (unstandardised, 1e160: its
    log-density is -inf) gave every epoch a validation score of -inf, which
    never counted as an improvement nor ran out the patience: the fit ran
    max_iter epochs and silently restored the untrained starting weights."""
    from sklearn.model_selection import train_test_split

    _, val_rows = train_test_split(np.arange(96), test_size=10, random_state=0)
    y_bad = Y.copy()
    y_bad[val_rows[0]] = 1e160
    m = model(early_stopping=True, standardize=False, warm_start=warm_start)
    if warm_start:
        quiet_fit(m)
        before = snapshot(m)
    with pytest.raises(FloatingPointError, match="validation log-likelihood is -inf"):
        m.fit(X, y_bad)
    if warm_start:
        assert_unchanged(m, before)
    else:
        assert not hasattr(m, "network_")


@pytest.mark.parametrize("bad", [float("nan"), -float("inf")])
def test_a_later_non_finite_validation_score_is_no_improvement(monkeypatch, bad):
    """A NaN (or -inf) validation score after finite ones reset the patience
    counter: the fit ran to max_iter instead of stopping and keeping the best
    epoch."""
    fast = {"early_stopping": True, "n_iter_no_change": 2, "max_iter": 30}
    real = training.mean_log_likelihood
    calls = {"n": 0}

    def later_bad(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs) if calls["n"] <= 3 else bad

    monkeypatch.setattr(training, "mean_log_likelihood", later_bad)
    m = quiet_fit(model(**fast))
    monkeypatch.undo()
    best = int(np.argmax(m.validation_scores_[:3])) + 1
    assert m.n_iter_ == 3 + fast["n_iter_no_change"] + 1
    assert m.best_validation_score_ == max(m.validation_scores_[:3])
    reference = quiet_fit(model(**{**fast, "max_iter": best}))
    np.testing.assert_array_equal(m.predict(X), reference.predict(X))


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_call_whose_first_epoch_is_non_finite_leaves_the_model_as_it_was(
    monkeypatch, method
):
    """The weights and the optimiser are rolled back to where the call began,
    so everything else stays too: before, a warm fit with early stopping
    reported best_validation_score_ = -inf for weights whose best score is
    recorded, and a partial_fit dropped the validation scores."""
    m = quiet_fit(model(early_stopping=True, warm_start=True))
    before = snapshot(m)
    scores, best = list(m.validation_scores_), m.best_validation_score_
    assert best == max(scores) > -np.inf
    inject(monkeypatch, after_calls=0, fault=nan_loss)
    message = "non-finite in epoch 7; the model was left as it was before this call"
    with pytest.warns(ConvergenceWarning, match=message):
        getattr(m, method)(X, Y)
    assert_unchanged(m, before)
    assert m.validation_scores_ == scores
    assert m.best_validation_score_ == best


@pytest.mark.parametrize("warm_start", [False, True])
def test_an_interrupt_before_any_epoch_ends_leaves_the_model_as_it_was(
    monkeypatch, warm_start
):
    m = quiet_fit(model(warm_start=warm_start))
    before = snapshot(m)
    inject(monkeypatch, after_calls=1, fault=interrupt)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, Y)
    assert_unchanged(m, before)
    fresh = model()
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X, Y)
    assert vars(fresh) == vars(model())  # still unfitted, nothing half-set


def test_a_failed_refit_keeps_the_feature_names_and_count():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b"])
    m = quiet_fit(model(), frame, Y)
    with warnings.catch_warnings():  # snapshot predicts from an array
        warnings.simplefilter("ignore", UserWarning)
        before = snapshot(m)
    with pytest.raises(ValueError, match="validation_fraction"):
        m.set_params(early_stopping=True).fit(np.ones((1, 5)), [1.0])
    assert m.n_features_in_ == 2
    assert list(m.feature_names_in_) == ["a", "b"]
    m.set_params(early_stopping="auto")
    with warnings.catch_warnings():  # snapshot predicts from an array
        warnings.simplefilter("ignore", UserWarning)
        assert_unchanged(m, before)


def test_a_failed_first_fit_leaves_the_model_unfitted():
    from sklearn.exceptions import NotFittedError

    m = MDNRegressor(early_stopping=True)
    with pytest.raises(ValueError, match="validation_fraction"):
        m.fit(np.ones((1, 2)), [1.0])
    assert not hasattr(m, "n_features_in_")
    with pytest.raises(NotFittedError):
        m.predict(np.ones((1, 2)))


# short fits on purpose: their ConvergenceWarning is not what is tested
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"n_components": 2}, "n_components=3 to 2"),
        ({"hidden_layer_sizes": [4]}, r"hidden_layer_sizes=\(8,\) to \(4,\)"),
        ({"noise_type": "fixed", "fixed_noise_level": 0.5}, "noise_type="),
        ({"precision": "float32"}, "precision='auto' to 'float32'"),
        ({"standardize": False}, "standardize=True to False"),
    ],
)
@pytest.mark.parametrize("method", ["warm_fit", "partial_fit"])
def test_continuing_a_model_under_changed_structure_is_refused(change, named, method):
    m = quiet_fit(model(warm_start=True))
    before = snapshot(m)
    m.set_params(**change)
    call = m.partial_fit if method == "partial_fit" else m.fit
    with pytest.raises(ValueError, match=f"{named}.*warm_start=False"):
        call(X, Y)
    m.set_params(**{k: model().get_params()[k] for k in change})
    assert_unchanged(m, before)
    call(X, Y)  # the same structure continues, as before
    assert m.n_iter_ == before["n_iter"] + (1 if method == "partial_fit" else 6)


# short fits on purpose: their ConvergenceWarning is not what is tested
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("method", ["warm_fit", "partial_fit"])
def test_fixed_noise_level_is_ignored_unless_the_noise_is_fixed(method):
    # documented: "Required with that noise type, ignored otherwise"
    m = quiet_fit(model(warm_start=True))
    m.set_params(fixed_noise_level=0.5)
    quiet_fit(m) if method == "warm_fit" else m.partial_fit(X, Y)
    assert m.n_iter_ == 6 + (1 if method == "partial_fit" else 6)
    # with fixed noise it is the noise level, and a change is refused
    m = quiet_fit(model(warm_start=True, noise_type="fixed", fixed_noise_level=0.1))
    m.set_params(fixed_noise_level=0.5)
    call = m.partial_fit if method == "partial_fit" else m.fit
    with pytest.raises(ValueError, match=r"fixed_noise_level=0\.1 to 0\.5"):
        call(X, Y)
    # and min_scale, documented as not applied to fixed noise, is ignored
    m.set_params(fixed_noise_level=0.1, min_scale=0.2)
    n_iter = m.n_iter_
    call(X, Y)
    assert m.n_iter_ == n_iter + (1 if method == "partial_fit" else 6)
    np.testing.assert_array_equal(m.predict_dist(X[:3]).scales, 0.1)


def test_validation_scores_stay_aligned_with_the_loss_curve():
    m = quiet_fit(model(early_stopping=True, max_iter=3))
    m.partial_fit(X, Y)  # an epoch without validation
    quiet_fit(m.set_params(warm_start=True))
    assert len(m.loss_curve_) == len(m.validation_scores_) == 7
    # as documented: counted over the model's life, each call up to max_iter
    assert m.n_iter_ == 7 > m.max_iter
    assert m.t_ == 7 * 3  # 87 training rows, 96 for partial_fit: 3 batches
    assert np.isnan(m.validation_scores_[3])
    assert np.isfinite(np.delete(m.validation_scores_, 3)).all()
    # the best of the last fit, whose weights the model holds
    assert m.best_validation_score_ == max(m.validation_scores_[4:])


def test_warnings_point_at_the_callers_line():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for estimator in (model(max_iter=1), make_pipeline(StandardScaler(), model())):
        estimator.set_params(
            **{k: 1 for k in estimator.get_params() if "max_iter" in k}
        )
        with pytest.warns(ConvergenceWarning, match="max_iter=1") as caught:
            estimator.fit(X, Y)
        assert caught[0].filename == __file__


@pytest.mark.parametrize("noise_type", ["diagonal", "full", "fixed"])
def test_a_default_device_set_by_the_user_changes_nothing(noise_type):
    """torch.set_default_device('cuda') is a common notebook line; every CPU
    tensor of skmdn names its device, so fits, pickles and predictions are
    the same. ('meta' stands in for a GPU: any tensor created there fails.)"""
    Y2 = np.c_[Y, np.cos(X[:, 1])]
    params = {"noise_type": noise_type, "fixed_noise_level": 0.1}
    reference = quiet_fit(model(**params), y_=Y2)
    torch.set_default_device("meta")
    try:
        m = quiet_fit(model(noise_regularization=0.1, **params), y_=Y2)
        m = quiet_fit(model(**params), y_=Y2)
        np.testing.assert_array_equal(m.predict(X), reference.predict(X))
        m = pickle.loads(pickle.dumps(m))
        assert np.isfinite(m.score(X, Y2)) and m.sample(X, 2).shape == (96, 2, 2)
        quiet_fit(m.set_params(warm_start=True), y_=Y2).partial_fit(X, Y2)
    finally:
        torch.set_default_device(None)

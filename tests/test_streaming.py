"""Chunked inference and thread handling: the fast paths must give the same
answers as the plain ones and leave global state alone."""

import itertools
import threading
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from skmdn import MDNRegressor
from skmdn._mixture import SAMPLE_ROWS, _logsumexp, sample_seeds
from skmdn._regressor import _PREDICT_CHUNK


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    Y = np.c_[X[:, 0] + 0.1 * rng.normal(size=300), np.sign(X[:, 1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MDNRegressor(n_components=3, max_iter=3, random_state=0).fit(X, Y)
    X_new = rng.normal(size=(2 * _PREDICT_CHUNK + 17, 3))  # three chunks
    Y_new = np.c_[X_new[:, 0], np.sign(X_new[:, 1])]
    return model, X_new, Y_new


def test_streamed_predict_score_sample_match_predict_dist(fitted):
    model, X, Y = fitted
    dist = model.predict_dist(X)
    np.testing.assert_array_equal(model.predict(X), dist.mean())
    model.set_params(point_estimate="approx_mode")
    np.testing.assert_array_equal(model.predict(X), dist.approx_mode())
    model.set_params(point_estimate="mean")
    np.testing.assert_array_equal(
        model.sample(X, 2, random_state=3), dist.sample(2, random_state=3)
    )
    assert model.score(X, Y) == pytest.approx(dist.logpdf(Y).mean(), rel=1e-12)


def test_chunk_boundaries_do_not_change_rows(fitted):
    model, X, _ = fitted
    whole = model.predict_dist(X)
    part = model.predict_dist(X[_PREDICT_CHUNK - 5 : _PREDICT_CHUNK + 5])
    np.testing.assert_allclose(
        part.means, whole.means[_PREDICT_CHUNK - 5 : _PREDICT_CHUNK + 5], rtol=1e-12
    )


@pytest.mark.parametrize("n_threads", [None, 1, 2])
def test_global_thread_setting_is_restored(fitted, n_threads):
    model, X, Y = fitted
    before = torch.get_num_threads()
    model.set_params(n_threads=n_threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[:200], Y[:200])
    model.predict(X[:10])
    assert torch.get_num_threads() == before


def test_worker_threads_give_the_same_answers(fitted, two_threads, monkeypatch):
    """Chunks run on worker threads, one torch thread each: the answers are
    bit-identical to one worker, whatever the number of workers."""
    model, X, Y = fitted
    seen = set()
    sync = {}

    def recording(real):
        def chunk(self, *args):
            seen.add(threading.get_ident())
            # the first chunks wait for each other: a pool that lets one
            # worker take every chunk (it may, if a chunk ends before the next
            # is submitted) would hang here and fail, not pass by chance
            if next(sync["calls"]) < sync["barrier"].parties:
                sync["barrier"].wait(timeout=60)
            return real(self, *args)

        return chunk

    # predict's mean takes the location-only chunks, the rest whole mixtures
    for name in ("_chunk_dist", "_chunk_locations"):
        monkeypatch.setattr(MDNRegressor, name, recording(getattr(MDNRegressor, name)))
    answers = {}
    for n_threads in (1, 2, 3, None):
        model.set_params(n_threads=n_threads)
        seen.clear()
        workers = {1: 1, 2: 2, 3: 3, None: 2}[n_threads]
        sync.update(calls=itertools.count(), barrier=threading.Barrier(workers))
        predicted = model.predict(X)
        assert len(seen) == workers
        answers[n_threads] = (
            predicted,
            model.sample(X, 2, random_state=5),
            model.score(X, Y),
        )
        assert torch.get_num_threads() == 2  # restored after the workers
    model.set_params(n_threads=None)
    for got in answers.values():
        np.testing.assert_array_equal(got[0], answers[1][0])
        np.testing.assert_array_equal(got[1], answers[1][1])
        assert got[2] == answers[1][2]


def test_an_error_in_a_worker_reaches_the_caller(two_threads):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MDNRegressor(
            precision="float32", activation="relu", max_iter=2, random_state=0
        )
        model.fit(X, X[:, 0])
    X_new = rng.normal(size=(3 * _PREDICT_CHUNK, 2))
    X_new[_PREDICT_CHUNK + 3, 1] = 1e300  # inf in float32: non-finite output
    with pytest.raises(ValueError, match=f"first: row {_PREDICT_CHUNK + 3}\\)"):
        model.predict(X_new)
    assert torch.get_num_threads() == 2


def test_sample_streams_are_independent_of_chunking(fitted):
    """Each block of SAMPLE_ROWS rows has its own stream: the draws of a block
    are those of the same block sampled alone."""
    model, X, _ = fitted
    dist = model.predict_dist(X)
    seeds = sample_seeds(7, len(X))
    whole = dist.sample(3, random_state=7)
    block = slice(SAMPLE_ROWS, 2 * SAMPLE_ROWS)
    np.testing.assert_array_equal(whole[block], dist[block]._draws(seeds[1], 3))
    # and the moments are those of the mixture (a test that the streams draw)
    draws = dist[:2000].sample(4000, random_state=0)
    mean = dist[:2000].mean()
    assert np.abs(draws.mean(axis=1) - mean).max() < 0.2


def test_logsumexp_matches_scipy_including_infinities():
    a = np.array([[-np.inf, -np.inf], [np.inf, 0.0], [-1000.0, -1001.0], [1.0, 2.0]])
    np.testing.assert_allclose(_logsumexp(a), logsumexp(a, axis=-1), rtol=1e-15)


def test_finite_check_is_not_fooled_by_an_overflowing_sum():
    # Finite parameters whose sum overflows pass; a NaN row is named.
    from skmdn._regressor import _check_finite_output

    X = np.zeros((2, 1))
    log_w = np.log(np.full((2, 2), 0.5))
    means = np.full((2, 2, 1), 1e308)
    scale = np.ones((2, 2, 1))
    with np.errstate(over="ignore"):  # the precondition: the sum overflows
        assert not np.isfinite(means.sum())
    _check_finite_output(X, 0.0, 1.0, log_w, means, scale, "float64")
    means[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"1 row.*row 1"):
        _check_finite_output(X, 0.0, 1.0, log_w, means, scale, "float64")


def test_predict_dist_carries_n_threads_to_its_block_work(
    fitted, two_threads, monkeypatch
):
    """With n_threads=1 the distribution's logpdf and sample stay on the
    calling thread; any count gives the same answers."""
    from skmdn import GaussianMixture

    model, X, Y = fitted
    seen = set()
    real = GaussianMixture._component_logpdf

    def recording(self, y):
        seen.add(threading.get_ident())
        return real(self, y)

    monkeypatch.setattr(GaussianMixture, "_component_logpdf", recording)
    answers = []
    for n_threads in (1, 2):
        model.set_params(n_threads=n_threads)
        dist = model.predict_dist(X)
        assert dist.n_threads == n_threads
        assert dist.tempered(0.5).n_threads == dist.marginal(0).n_threads == n_threads
        seen.clear()
        answers.append((dist.logpdf(Y), dist.sample(2, random_state=1)))
        if n_threads == 1:
            assert seen == {threading.get_ident()}
    model.set_params(n_threads=None)
    np.testing.assert_array_equal(answers[0][0], answers[1][0])
    np.testing.assert_array_equal(answers[0][1], answers[1][1])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_partial_fit_after_early_stopping_clears_the_validation_record():
    # partial_fit holds out no data: the validation curve and best score of
    # an earlier fit no longer describe the weights, so both become None
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 1))
    y = X[:, 0] + 0.1 * rng.normal(size=300)
    model = MDNRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    model.fit(X, y)
    assert len(model.validation_scores_) == 3
    model.partial_fit(X, y)
    assert model.validation_scores_ is None
    assert model.best_validation_score_ is None
    assert len(model.loss_curve_) == 4

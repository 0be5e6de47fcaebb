"""Model selection with scikit-learn's tools, in parallel, for real."""

import os

import numpy as np
import pytest
import sklearn
import torch
from joblib import Parallel, delayed
from scipy.stats import randint
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_validate,
)

from skmdn import MDNRegressor
from skmdn._utils import SMALL_BATCH, thread_count, torch_thread_budget
from tests.conftest import make_inverse_sine

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _base(**kw):
    params = dict(
        hidden_layer_sizes=(16,),
        learning_rate_init=1e-2,
        max_iter=30,
        random_state=0,
    )
    params.update(kw)
    return MDNRegressor(**params)


def test_grid_search_in_two_processes_picks_the_multimodal_model():
    # The inverse sine is trimodal in the middle: a 3-component model must beat
    # one Gaussian on held-out log-likelihood (the estimator's own score).
    X, y = make_inverse_sine(400, seed=0)
    grid = {"n_components": [1, 3], "noise_type": ["diagonal", "isotropic_across"]}
    search = GridSearchCV(
        _base(max_iter=20), grid, cv=KFold(2, shuffle=True, random_state=0), n_jobs=2
    )
    search.fit(X, y)
    assert search.best_params_["n_components"] == 3
    scores = search.cv_results_["mean_test_score"]
    one = np.array([p["n_components"] == 1 for p in search.cv_results_["params"]])
    assert scores[~one].min() > scores[one].max()
    # The same search in one process gives the same scores: workers are
    # deterministic and see the same data.
    serial = GridSearchCV(
        _base(max_iter=20), grid, cv=KFold(2, shuffle=True, random_state=0), n_jobs=1
    ).fit(X, y)
    np.testing.assert_allclose(serial.cv_results_["mean_test_score"], scores)


def test_randomized_search_over_components_noise_and_alpha():
    X, y = make_inverse_sine(300, seed=1)
    search = RandomizedSearchCV(
        _base(max_iter=10),
        {
            "n_components": randint(1, 4),
            "noise_type": ["diagonal", "isotropic"],
            "alpha": [1e-4, 1e-2],
        },
        n_iter=3,
        cv=2,
        n_jobs=2,
        random_state=0,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 3
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.n_components == search.best_params_["n_components"]


def _skmdn_threads_in_worker():
    """In a loky worker: fit and predict with skmdn, recording the thread
    counts skmdn uses during its training steps and its prediction blocks."""
    import skmdn._regressor as regressor
    import skmdn._training as training

    seen = {"train": [], "predict": []}
    real_step, real_blocks = training.step_loss, regressor.run_blocks

    def step(fn, workers):
        seen["train"].append((torch.get_num_threads(), workers))
        return real_step(fn, workers)

    def blocks(fn, chunks, workers):
        seen["predict"].append((torch.get_num_threads(), workers))
        return real_blocks(fn, chunks, workers)

    before = torch.get_num_threads()
    # as if torch had started before OMP_NUM_THREADS was set: skmdn must
    # still keep to the variable's budget
    cores = os.cpu_count()
    torch.set_num_threads(cores)
    training.step_loss, regressor.run_blocks = step, blocks
    try:
        X, y = make_inverse_sine(2 * SMALL_BATCH)
        model = _base(
            hidden_layer_sizes=(4,),
            max_iter=1,
            batch_size=SMALL_BATCH,  # large batches: the thread budget applies
            early_stopping=False,
        ).fit(X, y)
        model.predict(X)
        after = torch.get_num_threads()
        return os.environ.get("OMP_NUM_THREADS"), torch_thread_budget(), seen, after
    finally:
        training.step_loss, regressor.run_blocks = real_step, real_blocks
        torch.set_num_threads(before)


def test_loky_workers_do_not_oversubscribe(monkeypatch):
    # Without OMP_NUM_THREADS in the parent, joblib's loky backend gives each of
    # n_jobs workers cpu_count() // n_jobs threads; skmdn in the workers keeps
    # to that budget in training and prediction, even where torch itself was
    # set to more, so the total does not exceed the cores.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    n_jobs = 2
    results = Parallel(n_jobs=n_jobs)(
        delayed(_skmdn_threads_in_worker)() for _ in range(n_jobs)
    )
    cores = os.cpu_count()
    limit = max(cores // n_jobs, 1)
    for env, budget, seen, after in results:
        assert env is not None and int(env) == limit
        assert budget == limit
        assert len(seen["train"]) == 2 and len(seen["predict"]) == 1
        for torch_threads_, workers in seen["train"] + seen["predict"]:
            # worker threads, each with one torch thread, within the budget
            assert torch_threads_ == 1
            assert 1 <= workers <= limit
        assert after == cores  # torch's own setting is restored after


def test_fit_respects_omp_num_threads_set_after_torch_started(monkeypatch):
    # Torch reads OMP_NUM_THREADS only when its pool starts; the training loop
    # re-reads it, uses that many threads (for large batches: that many worker
    # threads, each with one torch thread) and restores torch's setting after.
    seen = []
    import skmdn._training as training

    original = training.step_loss

    def recording(*args):
        seen.append((torch.get_num_threads(), args[-1]))  # torch, workers
        return original(*args)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(training, "step_loss", recording)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert torch_thread_budget() == 1
        X, y = make_inverse_sine(2 * SMALL_BATCH)
        _base(max_iter=3, batch_size=SMALL_BATCH, early_stopping=False).fit(X, y)
        assert seen == [(1, 1)] * 6  # 2 steps an epoch, never a second thread
        assert torch.get_num_threads() == 2
        # large work (e.g. a predict chunk) gets the budget, not torch's 2
        assert thread_count(None, SMALL_BATCH) == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert thread_count(None, SMALL_BATCH) == 2
        assert thread_count(None, SMALL_BATCH - 1) == 1
        assert thread_count(2, 10) == 2
    finally:
        torch.set_num_threads(before)


def test_cross_validate_with_own_score_and_mse():
    X, y = make_inverse_sine(400, seed=2)
    cv = KFold(2, shuffle=True, random_state=0)
    result = cross_validate(
        _base(n_components=3),
        X,
        y,
        cv=cv,
        scoring={"loglik": None, "mse": "neg_mean_squared_error"},
        return_estimator=True,
        n_jobs=2,
    )
    # Independent recomputation of each fold's scores from its estimator.
    for fold, (_, test) in enumerate(cv.split(X)):
        est = result["estimator"][fold]
        dist = est.predict_dist(X[test])
        np.testing.assert_allclose(
            result["test_loglik"][fold], dist.logpdf(y[test]).mean(), rtol=1e-10
        )
        np.testing.assert_allclose(
            result["test_mse"][fold],
            -np.mean((dist.mean() - y[test]) ** 2),
            rtol=1e-10,
        )


def test_cross_validate_with_crps_and_nll_scorers():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skmdn import metrics

    scoring = {"crps": metrics.neg_crps_scorer, "nll": metrics.neg_nll_scorer}
    scoring["coverage"] = metrics.make_coverage_scorer(0.8)
    X, y = make_inverse_sine(300, seed=3)
    for estimator in (
        _base(n_components=3),
        make_pipeline(StandardScaler(), _base(n_components=3)),
    ):
        result = cross_validate(
            estimator, X, y, cv=2, scoring=scoring, return_estimator=True
        )
        for name in scoring:
            assert np.isfinite(result[f"test_{name}"]).all()
        # the NLL scorer is the estimator's own score, through the pipeline
        for fold, (_, test) in enumerate(KFold(2).split(X)):
            own = result["estimator"][fold].score(X[test], y[test])
            assert result["test_nll"][fold] == pytest.approx(own, rel=1e-12)
    with pytest.raises(TypeError, match="has no predict_dist"):
        metrics.neg_nll_scorer(StandardScaler().fit(X), X, y)


def test_distribution_scorers_in_nested_cross_validation():
    # The outer loop scores the fitted inner search (and pipelines nested in
    # pipelines): by its best estimator, on the outer test fold. Before, the
    # scorer raised inside scikit-learn, which turned every score into NaN.
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from skmdn import metrics

    X, y = make_inverse_sine(300, seed=4)
    inner = GridSearchCV(
        make_pipeline(
            FunctionTransformer(),
            make_pipeline(StandardScaler(), _base(n_components=3, max_iter=10)),
        ),
        {"pipeline__mdnregressor__n_components": [1, 3]},
        cv=2,
        scoring=metrics.neg_crps_scorer,
    )
    outer = KFold(2, shuffle=True, random_state=0)
    result = cross_validate(
        inner, X, y, cv=outer, scoring=metrics.neg_crps_scorer, return_estimator=True
    )
    for fold, (_, test) in enumerate(outer.split(X)):
        best = result["estimator"][fold].best_estimator_
        dist = best[-1][-1].predict_dist(best[-1][0].transform(X[test]))
        expected = -metrics.crps(y[test], dist)
        assert result["test_score"][fold] == pytest.approx(expected, rel=1e-12)


def _weighted_problem():
    """Heteroscedastic data, uneven sample weights and a shuffled 2-fold split."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = X[:, 0] + rng.normal(scale=np.where(X[:, 1] > 0, 0.1, 1.0))
    w = rng.uniform(0.2, 3.0, size=len(X))
    return X, y, w, KFold(2, shuffle=True, random_state=0)


@pytest.mark.skipif(
    tuple(int(v) for v in sklearn.__version__.split(".")[:2]) < (1, 8),
    reason="a Pipeline's score takes routed weights from scikit-learn 1.8 on",
)
def test_sample_weight_routed_through_a_pipeline_search():
    # With scikit-learn's metadata routing on, a search fits and scores each
    # fold with that fold's weights: each fold's test score is the weighted
    # mean log-likelihood of a pipeline fitted on the other fold's weights.
    from sklearn import config_context
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, w, cv = _weighted_problem()
    with config_context(enable_metadata_routing=True):
        model = _base(max_iter=5).set_fit_request(sample_weight=True)
        model.set_score_request(sample_weight=True)
        pipe = make_pipeline(
            StandardScaler().set_fit_request(sample_weight=True), model
        )
        result = cross_validate(pipe, X, y, cv=cv, params={"sample_weight": w})
        for score, (train, test) in zip(result["test_score"], cv.split(X), strict=True):
            fitted = clone(pipe).fit(X[train], y[train], sample_weight=w[train])
            dist = fitted[-1].predict_dist(fitted[0].transform(X[test]))
            expected = np.average(dist.logpdf(y[test]), weights=w[test])
            assert score == pytest.approx(expected, rel=1e-10)
        unweighted = cross_validate(clone(pipe), X, y, cv=cv)["test_score"]
        grid = {"mdnregressor__n_components": [1, model.n_components]}
        search = GridSearchCV(pipe, grid, cv=cv).fit(X, y, sample_weight=w)
    assert not np.allclose(result["test_score"], unweighted)  # the weights count
    # the search scored its second candidate (the pipeline as it is) the same
    splits = [search.cv_results_[f"split{i}_test_score"][1] for i in range(2)]
    np.testing.assert_allclose(splits, result["test_score"], rtol=1e-10)


def test_distribution_scorers_get_the_routed_weights():
    # With metadata routing on, skmdn's scorers score each test fold with its
    # weights, like the estimator's own score: the weights used to be dropped
    # silently, so a weighted search was judged on unweighted CRPS or NLL.
    from sklearn import config_context

    from skmdn import metrics

    X, y, w, cv = _weighted_problem()
    scoring = {"nll": metrics.neg_nll_scorer, "crps": metrics.neg_crps_scorer}
    with config_context(enable_metadata_routing=True):
        model = _base(max_iter=5).set_fit_request(sample_weight=True)
        model.set_score_request(sample_weight=True)
        result = cross_validate(
            model,
            X,
            y,
            cv=cv,
            scoring=scoring,
            params={"sample_weight": w},
            return_estimator=True,
        )
        own = cross_validate(model, X, y, cv=cv, params={"sample_weight": w})
    np.testing.assert_allclose(result["test_nll"], own["test_score"], rtol=1e-10)
    for fold, (_, test) in enumerate(cv.split(X)):
        dist = result["estimator"][fold].predict_dist(X[test])
        expected = -metrics.crps(y[test], dist, sample_weight=w[test])
        assert result["test_crps"][fold] == pytest.approx(expected, rel=1e-10)

"""Beyond one machine: dask.distributed workers and out-of-core partial_fit."""

import os

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from skmdn import MDNRegressor
from tests.conftest import make_inverse_sine

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    # distributed may warn about ports or slow shutdown on a busy machine.
    "ignore::UserWarning:distributed.*",
)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed is not installed"
    )
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _worker_threads():
    import torch

    return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()


def test_grid_search_on_a_local_dask_cluster(client):
    # Worker processes on loopback; each gets OMP_NUM_THREADS=1 from the nanny
    # and torch follows, so two workers use two cores.
    threads = client.run(_worker_threads)
    assert len(threads) == 2
    for env, n in threads.values():
        assert env == "1" and n == 1
    X, y = make_inverse_sine(400, seed=0)
    grid = {"n_components": [1, 3], "noise_type": ["diagonal", "isotropic"]}
    model = MDNRegressor(
        hidden_layer_sizes=(16,), learning_rate_init=1e-2, max_iter=20, random_state=0
    )
    cv = KFold(2, shuffle=True, random_state=0)
    with joblib.parallel_backend("dask"):
        search = GridSearchCV(model, grid, cv=cv, n_jobs=-1).fit(X, y)
    assert search.best_params_["n_components"] == 3
    # The cluster computed the same scores as a local, serial search.
    local = GridSearchCV(model, grid, cv=cv, n_jobs=1).fit(X, y)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )


def _streamed_and_batch(n_chunks=4, chunk=500, passes=4):
    X, y = make_inverse_sine(n_chunks * chunk, seed=1)
    X_test, y_test = make_inverse_sine(2000, seed=2)
    params = dict(
        n_components=3,
        hidden_layer_sizes=(16,),
        learning_rate_init=1e-2,
        batch_size=100,
        random_state=0,
    )
    batch = MDNRegressor(max_iter=passes, **params).fit(X, y)
    return X, y, X_test, y_test, params, batch


def test_dask_ml_incremental_streams_partial_fit(client):
    dask_array = pytest.importorskip("dask.array", reason="dask is not installed")
    wrappers = pytest.importorskip("dask_ml.wrappers", reason="dask-ml is absent")
    X, y, X_test, y_test, params, batch = _streamed_and_batch()
    Xd = dask_array.from_array(X, chunks=(500, 1))
    yd = dask_array.from_array(y, chunks=500)
    inc = wrappers.Incremental(MDNRegressor(**params), shuffle_blocks=False)
    for _ in range(4):  # 4 passes over 4 blocks: each block is one partial_fit
        inc.partial_fit(Xd, yd)
    streamed = inc.estimator_
    assert streamed.n_iter_ == 16
    # Streaming sees each sample as often as 4 batch epochs do: it reaches a
    # held-out log-likelihood close to the batch fit (about 0.95 nats; one
    # Gaussian reaches about 0.1 on this problem).
    ll_stream = streamed.score(X_test, y_test)
    ll_batch = batch.score(X_test, y_test)
    assert abs(ll_stream - ll_batch) < 0.1
    assert ll_stream > 0.6
    # Incremental's own score and predict delegate to the streamed model.
    np.testing.assert_allclose(
        inc.predict(dask_array.from_array(X_test, chunks=(500, 1))).compute(),
        streamed.predict(X_test),
    )


def test_plain_partial_fit_loop_over_chunks_matches_batch_fit():
    X, y, X_test, y_test, params, batch = _streamed_and_batch()
    streamed = MDNRegressor(**params)
    for _ in range(4):
        for start in range(0, len(X), 500):
            streamed.partial_fit(X[start : start + 500], y[start : start + 500])
    assert streamed.n_iter_ == 16
    assert abs(streamed.score(X_test, y_test) - batch.score(X_test, y_test)) < 0.1

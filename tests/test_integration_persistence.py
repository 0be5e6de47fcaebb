"""Saving and loading fitted models: pickle/joblib, skops, and across devices."""

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from skmdn import MDNRegressor
from tests.conftest import make_inverse_sine

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: What ``skops.io.get_untrusted_types`` reports for a fitted MDNRegressor
#: (also with a RandomState as ``random_state``): the types a user passes as
#: ``trusted`` after checking the file comes from a source they trust.
SKOPS_TRUSTED_TYPES = ["skmdn._regressor.MDNRegressor", "skmdn._training.TrainHistory"]


@pytest.fixture(scope="module", params=["diagonal", "full"])
def fitted(request):
    X, y = make_inverse_sine(200, seed=0)
    Y = np.column_stack([y, X[:, 0]]) if request.param == "full" else y
    model = MDNRegressor(
        n_components=3,
        noise_type=request.param,
        hidden_layer_sizes=(8,),
        max_iter=5,
        early_stopping=True,
        random_state=0,
    ).fit(X, Y)
    return model, X, Y


def _same_model(a, b, X, Y):
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    da, db = a.predict_dist(X), b.predict_dist(X)
    np.testing.assert_array_equal(da.log_weights, db.log_weights)
    np.testing.assert_array_equal(da.covariances, db.covariances)
    assert a.score(X, Y) == b.score(X, Y)
    np.testing.assert_array_equal(
        a.sample(X[:5], 4, random_state=1), b.sample(X[:5], 4, random_state=1)
    )
    assert a.dtype_ == b.dtype_ and a.device_ == b.device_
    assert a.loss_curve_ == b.loss_curve_ and a.n_iter_ == b.n_iter_


def test_joblib_round_trip_is_identical(fitted, tmp_path):
    model, X, Y = fitted
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    _same_model(model, loaded, X, Y)
    # Training continues identically from the loaded optimiser state.
    model_copy = pickle.loads(pickle.dumps(model))
    model_copy.partial_fit(X, Y)
    loaded.partial_fit(X, Y)
    np.testing.assert_array_equal(model_copy.predict(X), loaded.predict(X))


def test_pickle_does_not_change_the_fitted_model(fitted):
    model, X, _ = fitted
    before = model.predict(X)
    pickle.dumps(model)
    assert model.network_ is not None
    np.testing.assert_array_equal(model.predict(X), before)


def test_skops_round_trip_with_the_documented_trusted_types(fitted, tmp_path):
    sio = pytest.importorskip("skops.io", reason="skops is not installed")
    model, X, Y = fitted
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    assert sorted(sio.get_untrusted_types(file=path)) == SKOPS_TRUSTED_TYPES
    loaded = sio.load(path, trusted=SKOPS_TRUSTED_TYPES)
    _same_model(model, loaded, X, Y)
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.load(path, trusted=[])


def test_model_saved_on_cuda_loads_on_cpu_with_a_warning(fitted, monkeypatch):
    # No GPU here: simulate a file written on a CUDA machine by pickling a CPU
    # model whose fitted state says it lived on 'cuda'.
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model, X, _ = fitted
    expected = model.predict(X)
    state = model.__getstate__()
    state["device_"] = "cuda"
    buffer = io.BytesIO()
    pickle.dump(_CudaPickle(state), buffer)
    with pytest.warns(RuntimeWarning, match="'cuda', which is not available"):
        loaded = pickle.loads(buffer.getvalue())
    assert loaded.device_ == "cpu"
    assert next(loaded.network_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(loaded.predict(X), expected)


class _CudaPickle:
    """Pickles as an MDNRegressor with the given state (as saved on a GPU box)."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return (MDNRegressor.__new__, (MDNRegressor,), self.state)


def test_memory_mapped_model_predicts_and_trains_without_warnings(tmp_path):
    # joblib.load(mmap_mode="r") maps the fitted arrays read-only; skmdn only
    # reads them, so torch's "NumPy array is not writable ... undefined
    # behavior" warning must not reach the user. Torch warns once per
    # process, hence a fresh interpreter.
    X, y = make_inverse_sine(200, seed=0)
    model = MDNRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    path = tmp_path / "model.joblib"
    joblib.dump(model.fit(X, y), path)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    script = f"""
import joblib, numpy as np
from sklearn.exceptions import ConvergenceWarning
import warnings
warnings.simplefilter("error")
warnings.simplefilter("ignore", ConvergenceWarning)
X, y = np.load({str(tmp_path / "X.npy")!r}), np.load({str(tmp_path / "y.npy")!r})
loaded = joblib.load({str(path)!r}, mmap_mode="r")
assert isinstance(loaded.X_mean_, np.memmap)
expected = {model.predict(X[:5]).tolist()!r}
np.testing.assert_array_equal(loaded.predict(X[:5]), expected)
loaded.score(X, y)
loaded.partial_fit(X, y)
"""
    root = str(Path(__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]

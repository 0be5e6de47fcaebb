"""pandas in and out: DataFrames, Series and a ColumnTransformer pipeline."""

import numpy as np
import pytest
import torch
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmdn import MDNRegressor

pd = pytest.importorskip("pandas", reason="pandas is not installed")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _small(**kw):
    return MDNRegressor(
        n_components=2,
        hidden_layer_sizes=(16,),
        max_iter=kw.pop("max_iter", 5),
        random_state=0,
        **kw,
    )


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 300
    return pd.DataFrame(
        {
            "size": rng.uniform(20, 200, n),
            "age": rng.integers(0, 80, n).astype(float),
            "city": pd.Categorical(rng.choice(["north", "south", "east"], n)),
            "kind": rng.choice(["flat", "house"], n),  # object/str column
        }
    )


def test_dataframe_sets_feature_names_and_checks_them(frame):
    X = frame[["size", "age"]]
    y = pd.Series(0.01 * X["size"].to_numpy(), name="price")
    model = _small().fit(X, y)
    np.testing.assert_array_equal(model.feature_names_in_, ["size", "age"])
    assert model.n_features_in_ == 2
    # Same columns: same predictions as the numpy array (which warns).
    pred = model.predict(X)
    with pytest.warns(UserWarning, match="was fitted with feature names"):
        np.testing.assert_allclose(pred, model.predict(X.to_numpy()))
    with pytest.raises(ValueError, match="order as they were in fit"):
        model.predict(X[["age", "size"]])
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        model.predict(X.rename(columns={"age": "years"}))


def test_series_and_two_column_dataframe_targets(frame):
    X = frame[["size", "age"]]
    y1 = pd.Series(np.log(frame["size"].to_numpy()), name="log_size")
    m1 = _small().fit(X, y1)
    assert m1.predict(X).shape == (300,)
    assert m1.sample(X.iloc[:4], n_samples=3, random_state=0).shape == (4, 3)
    Y = pd.DataFrame({"a": y1.to_numpy(), "b": -y1.to_numpy()})
    m2 = _small().fit(X, Y)
    assert m2.n_outputs_ == 2
    pred = m2.predict(X)
    assert pred.shape == (300, 2)
    # The same fit as from numpy arrays (pandas is only a container).
    m2_np = _small().fit(X.to_numpy(), Y.to_numpy())
    np.testing.assert_allclose(pred, m2_np.predict(X.to_numpy()))
    assert np.isfinite(m2.score(X, Y))


def test_pipeline_with_column_transformer_on_mixed_frame(frame):
    # Price depends on a category: the pipeline must one-hot encode it to fit.
    rng = np.random.default_rng(1)
    effect = frame["city"].map({"north": 2.0, "south": 0.0, "east": -2.0})
    y = effect.to_numpy(dtype=float) + 0.3 * rng.normal(size=len(frame))
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), make_column_selector(dtype_include="number")),
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                make_column_selector(dtype_exclude="number"),
            ),
        ]
    )
    pipe = make_pipeline(
        pre, _small(max_iter=150, learning_rate_init=1e-2, n_iter_no_change=20)
    )
    pipe.set_output(transform="pandas")  # the MDN sees named columns
    pipe.fit(frame, y)
    mdn = pipe[-1]
    assert mdn.n_features_in_ == 2 + 3 + 2  # 2 numeric, 3 cities, 2 kinds
    assert list(mdn.feature_names_in_[:2]) == ["num__size", "num__age"]
    pred = pipe.predict(frame)
    # The model learned the category effect: per-city means are recovered.
    for city, value in [("north", 2.0), ("south", 0.0), ("east", -2.0)]:
        assert abs(pred[(frame["city"] == city).to_numpy()].mean() - value) < 0.3
    # The pipeline's score is the MDN's log-likelihood of the transformed X;
    # with noise sd 0.3 the true model's is about -log(0.3 sqrt(2 pi e)) = -0.2.
    assert pipe.score(frame, y) > -0.6
    # Unseen category at predict time is encoded as all zeros, not an error.
    new = frame.iloc[:3].copy()
    new["kind"] = "castle"
    assert np.isfinite(pipe.predict(new)).all()


@pytest.mark.parametrize("dtype", ["Float32", "float32[pyarrow]"])
def test_extension_float32_columns_train_as_documented(frame, dtype):
    # README (Precision): scikit-learn hands these columns over as float64, so
    # precision='auto' trains in float64; precision='float32' gives the fast
    # path with the same predictions as a numpy float32 frame.
    if "pyarrow" in dtype:
        pytest.importorskip("pyarrow")
    X32 = frame[["size", "age"]].astype("float32")
    y = np.log(frame["size"].to_numpy())
    assert _small().fit(X32.astype(dtype), y).dtype_ == torch.float64
    fast = _small(precision="float32").fit(X32.astype(dtype), y)
    assert fast.dtype_ == torch.float32
    np.testing.assert_array_equal(fast.predict(X32), _small().fit(X32, y).predict(X32))

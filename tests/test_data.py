"""Training data preparation (skmdn._data) against numpy references."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skmdn import MDNRegressor, _data
from skmdn._data import (
    _abs_max,
    pack_rows,
    weighted_mean_scale,
    weighted_quantiles,
)
from skmdn._utils import tensor_view


def _reference_mean_scale(a, w):
    """Weighted mean and standard deviation, in float64, by numpy."""
    a = np.asarray(a, dtype=np.float64)
    mean = np.average(a, axis=0, weights=w)
    return mean, np.sqrt(np.average((a - mean) ** 2, axis=0, weights=w))


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 1000 rows, so that a few thousand rows make several."""
    monkeypatch.setattr(_data, "CHUNK_ROWS", 1000)


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 129, 1000, 4097])
@pytest.mark.parametrize("columns", [1, 3])
def test_abs_max_matches_numpy(n, columns):
    a = np.random.default_rng(n).normal(size=(n, 3)) * [1.0, 1e-3, 1e3]
    a[n // 2, 1] = -50.0  # a negative extreme in the middle row
    a = a[:, 1:2].copy() if columns == 1 else a
    np.testing.assert_array_equal(
        _abs_max(torch.from_numpy(a)).numpy(), np.abs(a).max(axis=0)
    )


@pytest.mark.parametrize("n", [65, 67, 130, 131, 1001])
def test_abs_max_finds_an_extreme_in_any_row(n):
    # the halving folds the bottom rows onto the top ones: with an odd count
    # the middle row stays and the last row must still be folded in
    base = np.random.default_rng(n).uniform(-1.0, 1.0, size=(n, 2))
    for row in range(n):
        a = base.copy()
        a[row] = [-7.0, 9.0]
        got = _abs_max(torch.from_numpy(a)).numpy()
        np.testing.assert_array_equal(got, [7.0, 9.0], err_msg=f"row {row}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 999, 1000, 3500])
def test_weighted_mean_scale_matches_numpy(small_chunks, dtype, n):
    rng = np.random.default_rng(n)
    # an offset a million spreads wide (cancellation) and a negative column
    a = (rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [0.0, 1e6, -3.0]).astype(dtype)
    w = rng.uniform(0.1, 2.0, n)
    mean, scale = weighted_mean_scale(a, w)
    ref_mean, ref_scale = _reference_mean_scale(a, w)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-13)
    if n > 1:
        np.testing.assert_allclose(scale, ref_scale, rtol=1e-9)
    else:  # one row: no spread, so scale 1 (nothing to divide by)
        np.testing.assert_array_equal(scale, 1.0)


@pytest.mark.parametrize("unit", [1e200, 1e-14, 1e-300])
def test_weighted_mean_scale_extreme_units(small_chunks, unit):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2500, 2)) + np.array([3.0, 0.0])
    w = rng.uniform(0.5, 1.5, 2500)
    mean, scale = weighted_mean_scale(base * unit, w)
    ref_mean, ref_scale = _reference_mean_scale(base, w)
    np.testing.assert_allclose(mean / unit, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(scale / unit, ref_scale, rtol=1e-12)


def test_weighted_mean_scale_of_subnormal_columns(small_chunks):
    # Regression: values below 2**-1022 (subnormal) gave a unit of 2**-1030
    # whose inverse overflowed, NaN statistics, and a fit that failed with
    # "the training loss became non-finite". The reference: the same (already
    # rounded) values in units 2**-1030 larger, an exact rescaling.
    rng = np.random.default_rng(1)
    unit = 2.0**-1030
    a = (rng.normal(size=(2500, 2)) + np.array([3.0, 0.0])) * unit
    w = rng.uniform(0.5, 1.5, 2500)
    mean, scale = weighted_mean_scale(a, w)
    ref_mean, ref_scale = _reference_mean_scale(a / unit, w)
    np.testing.assert_allclose(mean / unit, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(scale / unit, ref_scale, rtol=1e-12)


def test_weighted_mean_scale_near_the_float64_limit(small_chunks):
    # largest magnitudes of 2**1023 and above: the power of two just above
    # them, 2**1024, is not a float64
    rng = np.random.default_rng(3)
    big = np.finfo(np.float64).max
    a = np.zeros((2500, 4))
    a[:, 0] = rng.uniform(-1.0, 1.0, 2500) * big
    a[:, 1] = rng.uniform(0.9, 1.0, 2500) * big
    a[:2, 2] = [9e307, 0.0]  # the rest 0
    a[:, 3] = np.where(rng.uniform(size=2500) < 0.5, -big, big)
    a[0, 3] = 2.0**1023
    w = rng.uniform(0.5, 1.5, 2500)
    mean, scale = weighted_mean_scale(a, w)
    unit = 2.0**600  # exact scaling, so that numpy's sums and squares stay finite
    ref_mean, ref_scale = _reference_mean_scale(a / unit, w)
    np.testing.assert_allclose(mean, ref_mean * unit, rtol=1e-12, atol=1e-12 * big)
    np.testing.assert_allclose(scale, ref_scale * unit, rtol=1e-12)


def test_fit_on_targets_near_the_float64_limit():
    X = np.random.default_rng(4).normal(size=(20, 1))
    y = np.linspace(0.0, 1.7e308, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MDNRegressor(max_iter=3, random_state=0).fit(X, y)
    np.testing.assert_allclose(model.y_mean_ / 2.0**600, np.mean(y / 2.0**600))
    assert np.all(np.isfinite(model.y_scale_))
    with warnings.catch_warnings():  # no spurious overflow warning either
        warnings.simplefilter("error", RuntimeWarning)
        assert np.all(np.isfinite(model.predict(X)))


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_fits_and_predictions_do_not_depend_on_the_memory_layout_of_X(precision):
    """A DataFrame's values are column-major; the same numbers row-major
    must give the same bits (sums and products round by layout)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 12)) * rng.uniform(0.1, 10, size=12)
    y = X[:, 0] + 0.1 * rng.normal(size=3000)
    XF = np.asfortranarray(X)
    assert not np.array_equal(X.mean(0), XF.mean(0))  # numpy's own sums differ

    def fit(A):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return MDNRegressor(max_iter=2, random_state=0, precision=precision).fit(
                A, y
            )

    a, b = fit(X), fit(XF)
    np.testing.assert_array_equal(a.X_mean_, b.X_mean_)
    np.testing.assert_array_equal(a.X_scale_, b.X_scale_)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.predict(X), a.predict(XF))


def test_weighted_mean_scale_constant_and_zero_columns(small_chunks):
    a = np.zeros((2500, 3))
    a[:, 1] = 7.0
    a[:, 2] = np.arange(2500)
    mean, scale = weighted_mean_scale(a, np.ones(2500))
    np.testing.assert_array_equal(mean[:2], [0.0, 7.0])
    np.testing.assert_array_equal(scale[:2], [1.0, 1.0])
    np.testing.assert_allclose(scale[2], np.arange(2500).std(), rtol=1e-13)


def test_a_small_spread_around_a_large_offset_is_not_a_constant(small_chunks):
    # 1e8 + 1e-4 noise: a spread of 1e-12 relative to the values, yet
    # thousands of float64 steps (1.5e-8 at 1e8); taking it for a constant
    # (scale 1) made the fit blind to it, e.g. min_scale 1e-3 in target
    # units, ten times the whole spread of y.
    rng = np.random.default_rng(6)
    noise = rng.normal(size=(2500, 3)) * [1e-4, 1e-6, 1e-10]
    offset = np.array([1e8, 1e6, -1e4])
    a = offset + noise
    w = rng.uniform(0.5, 2.0, 2500)
    mean, scale = weighted_mean_scale(a, w)
    # the reference on a - offset (exact), where numpy's sums lose nothing
    ref_mean, ref_scale = _reference_mean_scale(a - offset, w)
    np.testing.assert_allclose(scale, ref_scale, rtol=1e-12)
    assert np.all(np.abs(mean - (offset + ref_mean)) <= np.abs(np.spacing(offset)))
    # while a constant column stays one whatever its value and the weights
    values = [0.1, 1 / 3, 1e8 + 1 / 3, -7e-300, 1.7e308]
    const = np.tile(values, (2500, 1))
    mean, scale = weighted_mean_scale(const, w)
    np.testing.assert_array_equal(scale, 1.0)
    np.testing.assert_allclose(mean, values, rtol=1e-15)


def test_weighted_mean_scale_integer_weights_repeat_rows(small_chunks):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(1500, 2))
    counts = rng.integers(0, 4, 1500)
    weighted = weighted_mean_scale(a, counts.astype(float))
    repeated = weighted_mean_scale(np.repeat(a, counts, axis=0), np.ones(counts.sum()))
    np.testing.assert_allclose(weighted, repeated, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("subset", [False, True])
def test_pack_rows_matches_numpy(small_chunks, dtype, subset):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(2600, 4)).astype(np.float32) * 100 + 5
    Y = rng.normal(size=(2600, 2))
    w = rng.uniform(size=2600)
    rows = np.sort(rng.permutation(2600)[:2100]) if subset else None
    stats = [(rng.normal(size=k), rng.uniform(0.5, 2, k)) for k in (4, 2, 1)]
    columns = [(a, m, s) for a, (m, s) in zip([X, Y, w[:, None]], stats, strict=True)]
    packed = pack_rows(rows, columns, dtype)
    take = slice(None) if rows is None else rows
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    reference = np.hstack(
        [(a[take].astype(np.float64) - m) / s for a, m, s in columns]
    ).astype(np_dtype)  # float64 arithmetic, rounded once
    assert packed.dtype == dtype
    np.testing.assert_array_equal(packed.numpy(), reference)


@pytest.mark.parametrize("subset", [False, True])
def test_pack_rows_of_a_sparse_matrix_match_its_dense_rows(small_chunks, subset):
    # early stopping packs a subset of the rows of a CSR X (_Rows.take)
    from scipy import sparse

    rng = np.random.default_rng(4)
    X = rng.normal(size=(2600, 5)) * (rng.uniform(size=(2600, 5)) < 0.3)
    rows = np.sort(rng.permutation(2600)[:2100]) if subset else None
    mean, scale = rng.normal(size=5), rng.uniform(0.5, 2, 5)
    packed = pack_rows(rows, [(sparse.csr_matrix(X), mean, scale)], torch.float64)
    take = slice(None) if rows is None else rows
    np.testing.assert_array_equal(packed.numpy(), (X[take] - mean) / scale)


def test_inputs_are_never_written(small_chunks):
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        a = rng.normal(size=(2500, 3)).astype(dtype) * 1e3
        w = rng.uniform(size=2500)
        copies = a.copy(), w.copy()
        weighted_mean_scale(a, w)
        pack_rows(None, [(a, np.ones(3), np.full(3, 2.0))], torch.float32)
        np.testing.assert_array_equal(a, copies[0])
        np.testing.assert_array_equal(w, copies[1])


def test_tensor_view_shares_memory_when_it_can():
    a = np.arange(12.0).reshape(4, 3)
    assert tensor_view(a).data_ptr() == a.ctypes.data
    assert tensor_view(a[:, 1]).data_ptr() == a[:, 1].ctypes.data  # strided


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a[::-1],  # negative strides: torch cannot view them
        lambda a: a[:, ::-1],
        lambda a: a.astype(a.dtype.newbyteorder(">")),  # big-endian
        lambda a: np.broadcast_to(a[:1], a.shape),  # read-only
    ],
    ids=["reversed-rows", "reversed-columns", "big-endian", "read-only"],
)
def test_tensor_view_of_awkward_arrays(make):
    a = make(np.arange(12.0).reshape(4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(tensor_view(a).numpy(), a)


def test_reversed_and_read_only_input_to_the_estimator(tmp_path):
    # X[::-1] keeps negative strides through sklearn's validation, which
    # torch cannot view (predict crashed on it); a memory-mapped file opened
    # read-only made torch warn at users.
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 2))
    y = X[:, 0] + 0.1 * rng.normal(size=300)
    path = tmp_path / "X.npy"
    np.save(path, X)
    X_ro = np.load(path, mmap_mode="r")
    params = dict(max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MDNRegressor(**params).fit(X_ro, y)
        np.testing.assert_array_equal(model.predict(X_ro), model.predict(X))
        np.testing.assert_array_equal(model.predict(X[::-1]), model.predict(X)[::-1])
        on_view = MDNRegressor(**params).fit(X[::-1], y[::-1])
        on_copy = MDNRegressor(**params).fit(X[::-1].copy(), y[::-1].copy())
    np.testing.assert_array_equal(on_view.predict(X), on_copy.predict(X))


@pytest.mark.skipif(
    np.lib.NumpyVersion(np.__version__) < "2.0.0",
    reason="np.quantile takes weights from numpy 2.0 on",
)
def test_weighted_quantiles_match_numpy_inverted_cdf():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(500, 2))
    a[::7, 1] = 0.25  # ties
    w = rng.uniform(0.1, 3.0, 500)
    q = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    ours = weighted_quantiles(a, w, q)
    for j in range(2):
        ref = np.quantile(a[:, j], q, method="inverted_cdf", weights=w)
        np.testing.assert_array_equal(ours[:, j], ref)


@pytest.mark.parametrize("n", [1, 2, 7, 500, 1001])
def test_weighted_quantiles_equal_weights_match_numpy_inverted_cdf(n):
    # equal weights take the partition path (the next test compares it with
    # the sorting path: integer weights against repeated rows of weight one)
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, 2))
    a[::3, 1] = 0.25  # ties
    q = np.array([0.0, 1e-9, 0.1, 0.2, 0.5, 0.9, 1.0])
    ours = weighted_quantiles(a, np.full(n, 0.3), q)
    for j in range(2):
        ref = np.quantile(a[:, j], q, method="inverted_cdf")
        np.testing.assert_array_equal(ours[:, j], ref)


def test_weighted_quantiles_integer_weights_repeat_rows():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(300, 1))
    counts = rng.integers(0, 4, 300)
    q = (np.arange(5) + 0.5) / 5
    np.testing.assert_array_equal(
        weighted_quantiles(a, counts.astype(float), q),
        weighted_quantiles(np.repeat(a, counts, axis=0), np.ones(counts.sum()), q),
    )


def test_weighted_quantiles_random_integer_weights_repeat_rows():
    # sums of weights scaled by a non-power of two (thirds) are inexact, so
    # cumulative weights that reach q times the total exactly could fall short
    rng = np.random.default_rng(8)
    q = np.array([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1 / 3, 2 / 3])
    for _ in range(500):
        n = int(rng.integers(1, 30))
        a = rng.integers(0, 8, size=(n, 2)).astype(float)  # ties
        w = rng.integers(0, 7, n)  # a zero weight leaves its row out
        w[rng.integers(n)] += 1  # a positive total
        rep = np.repeat(a, w, axis=0)
        ours = weighted_quantiles(a, w.astype(float), q)
        for j in range(2):
            ref = np.quantile(rep[:, j], q, method="inverted_cdf")
            np.testing.assert_array_equal(ours[:, j], ref)


def test_weighted_quantiles_of_huge_weights():
    a = np.arange(4.0)[:, None]
    w = np.array([1.0, 1.0, 1.0, 3.0]) * 5e307  # their sum overflows
    q = np.array([0.25, 0.5, 0.51])
    np.testing.assert_array_equal(weighted_quantiles(a, w, q)[:, 0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "layout",
    [
        np.asfortranarray,
        lambda a: np.repeat(a, 2, axis=0)[::2],  # strided rows
        lambda a: a.astype(a.dtype.newbyteorder(">")),
        lambda a: np.ascontiguousarray(a[::-1])[::-1],  # negative strides
    ],
    ids=["fortran", "strided", "big-endian", "reversed"],
)
def test_every_memory_layout_fits_and_predicts_alike(layout):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=300)
    w = rng.uniform(0.5, 1.5, 300)
    params = dict(max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = MDNRegressor(**params).fit(X, y, sample_weight=w)
        model = MDNRegressor(**params).fit(layout(X), layout(y), layout(w))
    np.testing.assert_allclose(model.predict(layout(X)), ref.predict(X), rtol=1e-12)
    assert model.score(layout(X), layout(y)) == pytest.approx(ref.score(X, y))


def test_preparation_runs_on_one_torch_thread(monkeypatch):
    seen = []
    original = _data.tensor_view

    def spy(a):
        seen.append(torch.get_num_threads())
        return original(a)

    monkeypatch.setattr(_data, "tensor_view", spy)
    before = torch.get_num_threads()
    with _data.torch_threads(2):
        a = np.random.default_rng(8).normal(size=(50, 2))
        weighted_mean_scale(a, np.ones(50))
        pack_rows(None, [(a, np.zeros(2), np.ones(2))], torch.float32)
        assert torch.get_num_threads() == 2  # restored
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before

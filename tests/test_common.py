"""scikit-learn's common estimator checks, with no expected failures."""

import pytest
from sklearn.metrics import r2_score
from sklearn.utils.estimator_checks import _regression_dataset, parametrize_with_checks

from skmdn import MDNRegressor


# The checks fit their tiny data sets for up to max_iter=300 epochs; a
# ConvergenceWarning there says nothing about compatibility.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([MDNRegressor(random_state=0)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# float32 is not bit-stable across rows: BLAS picks its matmul kernel by the
# number of rows, so a row's float32 prediction moves by ~1e-7 relative with
# the rows predicted beside it, and 300 Adam steps amplify the rounding of a
# weighted sum versus repeated rows past these checks' rtol=1e-7.
_FLOAT32_ROUNDING = {
    "check_methods_subset_invariance": "float32 matmul rounding depends on rows",
    "check_sample_weight_equivalence_on_dense_data": "float32 rounding",
    "check_sample_weight_equivalence_on_sparse_data": "float32 rounding",
}


def _expected_failed_checks(estimator):
    return _FLOAT32_ROUNDING if estimator.precision == "float32" else {}


# Settings users grid-search over, beyond the defaults (about 60 s in all).
@parametrize_with_checks(
    [
        MDNRegressor(noise_type="full", random_state=0),
        MDNRegressor(noise_type="isotropic", random_state=0),
        MDNRegressor(point_estimate="mode", random_state=0),
        MDNRegressor(precision="float32", random_state=0),
    ],
    expected_failed_checks=_expected_failed_checks,
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_compatible_settings(estimator, check):
    check(estimator)


def test_poor_score_tag_is_the_only_relaxation():
    tags = MDNRegressor().__sklearn_tags__()
    assert tags.regressor_tags.poor_score
    assert tags.target_tags.multi_output
    assert tags.target_tags.single_output
    assert tags.input_tags.sparse  # a capability (the common checks then test it)
    assert not tags.input_tags.allow_nan


def test_r2_of_predict_on_the_common_check_data():
    # The spirit of check_regressors_train without the poor_score tag: score()
    # is a log-likelihood, so test R^2 of predict() on the check's data set.
    X, y = _regression_dataset()
    y = (y - y.mean()) / y.std()
    model = MDNRegressor(random_state=0).fit(X, y)
    assert r2_score(y, model.predict(X)) > 0.5

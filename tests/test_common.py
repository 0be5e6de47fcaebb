"""scikit-learn's common estimator checks, with no expected failures."""

from sklearn.metrics import r2_score
from sklearn.utils.estimator_checks import _regression_dataset, parametrize_with_checks

from skmdn import MDNRegressor


@parametrize_with_checks([MDNRegressor(random_state=0)])
def test_sklearn_compatible_estimator(estimator, check):
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

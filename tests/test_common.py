"""scikit-learn's common estimator checks."""

from sklearn.linear_model import Ridge
from sklearn.utils.estimator_checks import parametrize_with_checks

from skhypergrad import HypergradSearchCV


def _expected_failed_checks(estimator):
    # A check GridSearchCV is exempted from in scikit-learn's own
    # test suite (sklearn/utils/_test_common/instance_generator.py).
    return {
        "check_supervised_y_2d": "DataConversionWarning not caught",
    }


@parametrize_with_checks(
    [HypergradSearchCV(Ridge(), {"alpha": (0.1, 10.0)}, cv=2, n_init=2, n_iter=2)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)

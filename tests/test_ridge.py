"""The Ridge model: trainer parity with scikit-learn and exact hypergradients."""

import numpy as np
import pytest
from autograd.test_util import check_grads
from sklearn.datasets import load_linnerud, make_regression
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error

from skhypergrad._models._ridge import RidgeModel, _validation_loss

from ._numeric import central_difference, make_fold, value_and_grad


def _split(X, y, n_train):
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha", [1e-3, 1.0, 300.0])
@pytest.mark.parametrize("shape", [(60, 8), (30, 50)])
@pytest.mark.parametrize("n_targets", [1, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_fold_matches_sklearn_ridge(fit_intercept, alpha, shape, n_targets, weighted):
    X, y = make_regression(
        n_samples=shape[0] + 20,
        n_features=shape[1],
        n_targets=n_targets,
        noise=5.0,
        random_state=0,
    )
    y = y + 3.0
    X_train, y_train, X_val, y_val = _split(X, y, shape[0])
    weights = np.random.RandomState(0).uniform(0.5, 2, shape[0]) if weighted else None
    estimator = Ridge(fit_intercept=fit_intercept)

    fold = make_fold(RidgeModel(), estimator, X_train, y_train, X_val, y_val, weights)
    solution = fold.solve({"alpha": alpha})
    loss, ours = solution.loss, solution.fitted_estimator()
    reference = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(
        X_train, y_train, sample_weight=weights
    )

    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        ours.intercept_, reference.intercept_, rtol=1e-8, atol=1e-9
    )
    assert np.shape(ours.coef_) == np.shape(reference.coef_)
    assert np.shape(ours.intercept_) == np.shape(reference.intercept_)
    assert ours.alpha == alpha
    np.testing.assert_allclose(
        loss, mean_squared_error(y_val, reference.predict(X_val)), rtol=1e-9
    )
    np.testing.assert_allclose(ours.predict(X_val), reference.predict(X_val), rtol=1e-8)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha", [1e-2, 1.0, 50.0])
def test_hypergradient_matches_central_differences(fit_intercept, alpha):
    X, y = load_linnerud(return_X_y=True)
    X_train, y_train, X_val, y_val = _split(X, y, 14)
    fold = make_fold(
        RidgeModel(), Ridge(fit_intercept=fit_intercept), X_train, y_train, X_val, y_val
    )

    loss, grads, _ = value_and_grad(fold, {"alpha": alpha})

    def loss_at_log_alpha(log_alpha):
        return fold.solve({"alpha": float(np.exp(log_alpha))}).loss

    fd = central_difference(loss_at_log_alpha, np.log(alpha), step=1e-4)
    # d loss / d log(alpha) = alpha * d loss / d alpha; the absolute part of
    # the tolerance is the rounding error of the difference quotient.
    np.testing.assert_allclose(alpha * grads["alpha"], fd, rtol=1e-6, atol=1e-9 * loss)
    assert np.isfinite(loss)


def test_traced_loss_passes_autograd_check_grads():
    X, y = make_regression(40, 5, noise=1.0, random_state=0)
    fold = make_fold(RidgeModel(), Ridge(), X[:30], y[:30], X[30:], y[30:])
    args = fold.loss_args
    check_grads(lambda a: _validation_loss(a, *args), modes=["rev"], order=2)(0.7)


def test_empty_params_uses_the_estimators_alpha():
    X, y = make_regression(40, 5, noise=1.0, random_state=0)
    fold = make_fold(RidgeModel(), Ridge(alpha=3.0), X[:30], y[:30], X[30:], y[30:])
    loss, grads, _ = value_and_grad(fold, {})
    assert grads == {}
    reference = Ridge(alpha=3.0).fit(X[:30], y[:30])
    np.testing.assert_allclose(
        loss, mean_squared_error(y[30:], reference.predict(X[30:]))
    )


@pytest.mark.parametrize(
    "estimator, match",
    [
        (Ridge(positive=True), "positive=True"),
        (Ridge(alpha=np.array([1.0, 2.0])), "single Ridge alpha"),
    ],
)
def test_unsupported_ridge_settings(estimator, match):
    with pytest.raises(ValueError, match=match):
        RidgeModel().check_estimator(estimator)


def test_validation_weights_weigh_the_loss_and_its_gradient():
    X, y = make_regression(60, 5, noise=5.0, random_state=0)
    weights = np.random.RandomState(1).uniform(0.1, 3, 20)
    fold = make_fold(
        RidgeModel(), Ridge(), X[:40], y[:40], X[40:], y[40:], val_sample_weight=weights
    )
    loss, grads, _ = value_and_grad(fold, {"alpha": 2.0})
    predictions = Ridge(alpha=2.0).fit(X[:40], y[:40]).predict(X[40:])
    np.testing.assert_allclose(
        loss, mean_squared_error(y[40:], predictions, sample_weight=weights)
    )

    def loss_at_log_alpha(log_alpha):
        return fold.solve({"alpha": float(np.exp(log_alpha))}).loss

    fd = central_difference(loss_at_log_alpha, np.log(2.0), step=1e-4)
    np.testing.assert_allclose(2.0 * grads["alpha"], fd, rtol=1e-6)

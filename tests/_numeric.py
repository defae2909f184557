"""Numerical helpers shared by the tests."""

import pytest

from skhypergrad import FoldData


def central_difference(f, x, step):
    """Central finite difference of a scalar function ``f`` at ``x``."""
    return (f(x + step) - f(x - step)) / (2 * step)


def make_fold(
    model,
    estimator,
    X_train,
    y_train,
    X_val,
    y_val,
    sample_weight=None,
    val_sample_weight=None,
):
    """``model.fold`` on one split given as arrays."""
    return model.fold(
        estimator,
        FoldData(X_train, y_train, X_val, y_val, sample_weight, val_sample_weight),
    )


def value_and_grad(fold, params):
    """Solve ``fold`` at ``params``; the loss, its hypergradient and the solution."""
    solution = fold.solve(params, differentiate=True)
    return solution.loss, solution.hypergradient(list(params)), solution


# Warnings that some tests expect, filtered where they are expected so that
# any other warning stands out.
narrow_range = pytest.mark.filterwarnings(
    "ignore:The best point has .* the range is too narrow:UserWarning"
)
short_trainings = pytest.mark.filterwarnings(
    "ignore:.* inner trainings .* did not converge"
    ":sklearn.exceptions.ConvergenceWarning"
)
refit_short_of_the_optimum = pytest.mark.filterwarnings(
    "ignore:best_estimator_ was refit by .* above the minimum:UserWarning"
)

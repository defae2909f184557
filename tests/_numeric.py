"""Numerical helpers shared by the tests."""

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

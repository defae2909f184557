"""Implicit differentiation at an optimum, for scalar and vector hyperparameters."""

import autograd.numpy as anp
import numpy as np
import pytest

from skhypergrad._models._implicit import conjugate_gradient, implicit_hypergradient

from ._numeric import central_difference

RNG = np.random.RandomState(0)
X_TRAIN, X_VAL = RNG.normal(size=(40, 6)), RNG.normal(size=(30, 6))
TRUE = RNG.normal(size=6)
Y_TRAIN = X_TRAIN @ TRUE + RNG.normal(size=40)
Y_VAL = X_VAL @ TRUE + RNG.normal(size=30)


def _train_objective(theta, hypers):
    """Least squares with a penalty alpha * w_j on each coefficient (traced)."""
    residual = anp.dot(X_TRAIN, theta) - Y_TRAIN
    penalty = hypers["alpha"] * anp.sum(hypers["w"] * theta**2)
    return 0.5 * anp.mean(residual**2) + 0.5 * penalty


def _hessian(hypers):
    return X_TRAIN.T @ X_TRAIN / len(X_TRAIN) + np.diag(hypers["alpha"] * hypers["w"])


def _minimizer(hypers):
    return np.linalg.solve(_hessian(hypers), X_TRAIN.T @ Y_TRAIN / len(X_TRAIN))


def _validation_loss(theta):
    return anp.mean((anp.dot(X_VAL, theta) - Y_VAL) ** 2)


HYPERS = {"alpha": 0.3, "w": np.array([0.5, 1.0, 2.0, 0.1, 3.0, 1.5])}


@pytest.mark.parametrize("iterative", [False, True], ids=["direct", "cg"])
def test_scalar_and_vector_hyperparameters_match_finite_differences(iterative):
    theta = _minimizer(HYPERS)
    hessian = _hessian(HYPERS)
    if iterative:

        def solve(b):
            x, _, converged = conjugate_gradient(
                lambda v: hessian @ v, b, rtol=1e-13, max_iter=100
            )
            assert converged
            return x

    else:

        def solve(b):
            return np.linalg.solve(hessian, b)

    grads = implicit_hypergradient(
        _validation_loss, theta, solve, _train_objective, HYPERS
    )
    assert isinstance(grads["alpha"], float)
    assert grads["w"].shape == (6,)

    def loss_at(alpha, w):
        return _validation_loss(_minimizer({"alpha": alpha, "w": w}))

    expected_alpha = central_difference(lambda a: loss_at(a, HYPERS["w"]), 0.3, 1e-6)
    np.testing.assert_allclose(grads["alpha"], expected_alpha, rtol=1e-6)
    for j in range(6):
        direction = np.eye(6)[j]
        expected = central_difference(
            lambda t, d=direction: loss_at(0.3, HYPERS["w"] + t * d), 0.0, 1e-6
        )
        # The absolute part is the rounding of the difference quotient,
        # about eps * loss / step.
        np.testing.assert_allclose(grads["w"][j], expected, rtol=1e-6, atol=1e-9)


def test_conjugate_gradient_with_a_preconditioner():
    A = X_TRAIN.T @ X_TRAIN + np.diag(np.arange(1.0, 7.0))
    b = RNG.normal(size=6)
    diagonal = np.diag(A)
    x, n_iter, converged = conjugate_gradient(
        lambda v: A @ v, b, rtol=1e-12, max_iter=50, precondition=lambda r: r / diagonal
    )
    assert converged and n_iter <= 7
    np.testing.assert_allclose(A @ x, b, rtol=1e-10)
    # Out of iterations: not converged, and said so.
    _, n_iter, converged = conjugate_gradient(
        lambda v: A @ v, b, rtol=1e-12, max_iter=2
    )
    assert n_iter == 2 and not converged

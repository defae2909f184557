"""Implicit differentiation at an optimum, for any model solved to optimality.

When the trained parameters :math:`\\theta^*(\\lambda)` minimize a training
objective :math:`f(\\theta, \\lambda)`, the implicit function theorem gives
the hypergradient of a validation loss :math:`V(\\theta^*)` without
differentiating the solver:

.. math::

    H v = \\nabla_\\theta V(\\theta^*), \\qquad
    \\frac{dV}{d\\lambda} = - v^T \\, \\partial_\\lambda \\nabla_\\theta
    f(\\theta^*, \\lambda), \\qquad H = \\nabla^2_\\theta f(\\theta^*, \\lambda).

One adjoint solve serves every hyperparameter, scalar or vector-valued: the
mixed derivatives are the gradient, in :math:`\\lambda`, of the scalar
:math:`v^T \\nabla_\\theta f`, which autograd computes in one reverse pass.
The solve is injected (a Cholesky factorization, conjugate gradient on
Hessian-vector products), as in jaxopt's ``custom_root``.
"""

import autograd.numpy as anp
import numpy as np
from autograd import grad

__all__ = ["conjugate_gradient", "implicit_hypergradient"]


def implicit_hypergradient(validation_loss, theta, solve, mixed_term, hypers):
    """Derivatives of ``validation_loss`` at ``theta`` in the hyperparameters.

    Parameters
    ----------
    validation_loss : callable ``theta -> float``
        Traced validation loss.
    theta : ndarray of shape (n_params,)
        Minimizer of the training objective at ``hypers``.
    solve : callable ``b -> v``
        Solves :math:`H v = b` with the Hessian of the training objective in
        ``theta`` at ``(theta, hypers)``.
    mixed_term : callable ``(theta, hypers) -> float``
        Traced training objective, or any part of it that holds all its
        dependence on ``hypers`` (the rest has no mixed derivative).
    hypers : dict of str -> float or ndarray
        The hyperparameters to differentiate with respect to.

    Returns
    -------
    grads : dict of str -> float or ndarray
        The derivatives, shaped as ``hypers``' values.
    """
    adjoint = solve(grad(validation_loss)(theta))
    # The reverse pass multiplies the adjoint by the parameters before the
    # hyperparameter's factor: with a huge penalty both are tiny (C = 1e-210
    # gives 1e-208 each) and their product would underflow to zero. It runs
    # on the adjoint scaled to a largest entry of one, and scales back (this
    # does not help the entries far below the largest, such as a logistic
    # model's coefficients next to its unpenalized intercept).
    scale = np.max(np.abs(adjoint))
    if not (np.isfinite(scale) and scale > 0):
        scale = 1.0

    def adjoint_dot_train_grad(h):
        return anp.dot(adjoint / scale, grad(mixed_term)(theta, h))

    return {
        name: -scale * np.asarray(derivative)
        if np.ndim(derivative)
        else -scale * float(derivative)
        for name, derivative in grad(adjoint_dot_train_grad)(dict(hypers)).items()
    }


def conjugate_gradient(matvec, b, *, rtol, max_iter, precondition=None):
    """Solve ``A x = b`` for symmetric positive (semi-)definite ``A``.

    ``matvec(v)`` applies ``A`` and ``precondition(r)`` an approximate
    inverse of it. Returns the solution, the number of iterations and whether
    the residual reached ``rtol * ||b||``.
    """
    x = np.zeros_like(b)
    residual = b
    target = rtol * np.linalg.norm(b)
    z = residual if precondition is None else precondition(residual)
    direction = z
    rz = residual @ z
    for n_iter in range(max_iter):
        if np.linalg.norm(residual) <= target:
            return x, n_iter, True
        product = matvec(direction)
        curvature = direction @ product
        if not curvature > 0:
            return x, n_iter, False
        step = rz / curvature
        x = x + step * direction
        residual = residual - step * product
        z = residual if precondition is None else precondition(residual)
        rz, rz_previous = residual @ z, rz
        direction = z + (rz / rz_previous) * direction
    return x, max_iter, np.linalg.norm(residual) <= target

"""The outer optimizer for many hyperparameters: the diagonal, then L-BFGS-B.

A vector of feature weights has as many dimensions as the data has columns
(or groups): no coarse design covers that space, and the trust region of
``_optimize`` keeps a dense quasi-Newton matrix. The search runs in two
phases, in the unconstrained search space (each weight's logarithm):

1. *the diagonal*: all the weights of a vector tied to one shared value, so
   that the problem has one dimension per vector plus the scalar
   hyperparameters (``alpha``, ``C``), searched by
   :func:`~skhypergrad._optimize.minimize_in_box` (``n_init`` coarse points,
   then up to a quarter of ``n_iter`` evaluations). The hypergradient of a
   shared value is the sum of its weights' components. Its best point is
   the best single penalty, what a one-hyperparameter search would find;
2. *every weight on its own*: scipy's L-BFGS-B in the box, from that
   point, with the rest of ``n_iter``: each evaluation is a loss and its
   hypergradient. It stops when the largest component of the projected
   hypergradient falls below ``tol`` times its value at the start of this
   phase, when the loss decreases by less than ``tol`` relatively in a
   step, or when ``n_iter`` is spent.

Both phases go through the caller's memoized objective (see
``_optimize``); only the evaluations that compute count against ``n_iter``.
"""

import numpy as np
from scipy.optimize import minimize

from ._optimize import minimize_in_box

__all__ = ["minimize_many"]


class _BudgetSpent(Exception):
    """The evaluations of a phase are spent."""


class _Counted:
    """``fun``, counting the evaluations that compute and keeping the best point.

    With ``after_coarse``, the evaluations before the first hypergradient
    (the coarse pass, which ``n_iter`` does not count) are not counted.
    """

    def __init__(self, fun, budget, after_coarse=False):
        self._fun = fun
        self.budget = budget
        self.used = 0
        self._counting = not after_coarse
        self.best = None  # (value, z)

    def _count(self, z, differentiate):
        self._counting = self._counting or differentiate
        if self._counting and not self._fun.is_evaluated(z, differentiate):
            if self.used >= self.budget:
                raise _BudgetSpent
            self.used += 1

    def _keep(self, z, value):
        value = float(value)
        if np.isfinite(value) and (self.best is None or value < self.best[0]):
            self.best = (value, np.array(z, dtype=float))
        return value

    def is_evaluated(self, z, differentiate):
        return self._fun.is_evaluated(z, differentiate)

    def value(self, z):
        self._count(z, False)
        return self._keep(z, self._fun.value(z))

    def value_and_grad(self, z):
        self._count(z, True)
        value, gradient = self._fun.value_and_grad(z)
        return self._keep(z, value), np.asarray(gradient, dtype=float)


class _Tied:
    """``fun`` on the diagonal: coordinate ``d`` of ``z`` is ``t[tied[d]]``."""

    def __init__(self, fun, tied):
        self._fun = fun
        self._tied = tied
        self._n = int(tied.max()) + 1

    def full(self, t):
        return np.asarray(t, dtype=float)[self._tied]

    def is_evaluated(self, t, differentiate):
        return self._fun.is_evaluated(self.full(t), differentiate)

    def value(self, t):
        return self._fun.value(self.full(t))

    def value_and_grad(self, t):
        value, gradient = self._fun.value_and_grad(self.full(t))
        return value, np.bincount(self._tied, weights=gradient, minlength=self._n)


def minimize_many(fun, lower, upper, *, tied, n_init, n_iter, tol, random_state):
    """Minimize ``fun`` over a box of many dimensions.

    Parameters
    ----------
    fun : object
        The objective, as for :func:`~skhypergrad._optimize.minimize_in_box`.
    lower, upper : ndarray of shape (n_dims,)
        The box, in the search space.
    tied : ndarray of int of shape (n_dims,)
        The coordinate of the diagonal each dimension follows in the first
        phase: the components of one vector share one, each scalar has its
        own. Tied dimensions have the same bounds.
    n_init : int
        Points of the coarse pass along the diagonal.
    n_iter : int
        Largest number of evaluations after the coarse pass, both phases
        together.
    tol : float
        Relative tolerance of the second phase (see the module docstring).
    random_state : int, RandomState instance or None
        Draws the coarse points when the diagonal has several dimensions.
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    tied = np.asarray(tied)
    n_diagonal = int(tied.max()) + 1
    t_lower = np.array([lower[tied == k][0] for k in range(n_diagonal)])
    t_upper = np.array([upper[tied == k][0] for k in range(n_diagonal)])
    # The coarse pass is not counted in n_iter; the diagonal's refinement is.
    diagonal = _Counted(fun, np.inf, after_coarse=True)
    minimize_in_box(
        _Tied(diagonal, tied),
        t_lower,
        t_upper,
        n_init=n_init,
        n_iter=max(1, n_iter // 4) if n_iter else 0,
        tol=tol,
        random_state=random_state,
    )
    left = n_iter - diagonal.used
    if diagonal.best is None or left <= 0:
        return
    _lbfgsb(_Counted(fun, left), diagonal.best[1], lower, upper, tol=tol)


def _lbfgsb(fun, start, lower, upper, *, tol):
    """L-BFGS-B from ``start`` until ``fun``'s budget is spent or it converges."""

    def value_and_grad(z):
        value, gradient = fun.value_and_grad(z)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            # A failed point: no slope to follow. The best point is kept.
            raise _BudgetSpent
        return value, gradient

    try:
        _, gradient = value_and_grad(start)
        free = ((start > lower) | (gradient < 0)) & ((start < upper) | (gradient > 0))
        scale = np.max(np.abs(np.where(free, gradient, 0.0)), initial=0.0)
        if scale == 0:
            return
        minimize(
            value_and_grad,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(lower, upper, strict=True)),
            options={
                "gtol": tol * scale,
                "ftol": tol,
                "maxfun": fun.budget + 1,
                "maxiter": fun.budget + 1,
            },
        )
    except _BudgetSpent:
        return

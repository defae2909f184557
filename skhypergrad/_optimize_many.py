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
        self.points = []  # every finite (value, z)

    def _count(self, z, differentiate):
        self._counting = self._counting or differentiate
        if self._counting and not self._fun.is_evaluated(z, differentiate):
            if self.used >= self.budget:
                raise _BudgetSpent
            self.used += 1

    def _keep(self, z, value):
        value = float(value)
        if np.isfinite(value):
            self.points.append((value, np.array(z, dtype=float)))
            if self.best is None or value < self.best[0]:
                self.best = self.points[-1]
        return value

    def is_evaluated(self, z, differentiate):
        return self._fun.is_evaluated(z, differentiate)

    def value(self, z, exact=True):
        self._count(z, False)
        return self._keep(z, self._fun.value(z, exact))

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

    def value(self, t, exact=True):
        return self._fun.value(self.full(t), exact)

    def value_and_grad(self, t):
        value, gradient = self._fun.value_and_grad(self.full(t))
        return value, np.bincount(self._tied, weights=gradient, minlength=self._n)


def minimize_many(
    fun, lower, upper, *, tied, n_init, n_iter, tol, random_state, penalty=0.0
):
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
    penalty : float, default=0.0
        Strength of the penalty on the spread of each vector's search
        coordinates that the second phase adds to the loss (see
        :class:`_Penalized`).
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
    if diagonal.best is None:
        return
    # Restarts from the points of the diagonal, best first, one coarse cell
    # apart at least: a start can be on a plateau, where the weights are so
    # large (or so small) that changing one changes nothing.
    cell = np.max(t_upper - t_lower) / max(n_init - 1, 1)
    strength = penalty * abs(diagonal.best[0])
    starts = []
    for start_value, start in sorted(diagonal.points, key=lambda item: item[0]):
        if left < 2:
            return
        if any(np.max(np.abs(start - other)) < cell for other in starts):
            continue
        starts.append(start)
        counted = _Counted(fun, left)
        run = _Penalized(counted, tied, strength) if strength > 0 else counted
        best = _lbfgsb(run, start, lower, upper, tol=tol)
        left -= counted.used
        if best < start_value - _PROGRESS * abs(start_value):
            return


# A run of L-BFGS-B that ends having decreased the loss by less than this
# fraction of its start's restarts from another point of the diagonal.
_PROGRESS = 1e-3


class _Penalized:
    """``fun`` plus ``strength`` times the spread of each vector's coordinates.

    The spread of a vector is the mean squared deviation of its coordinates
    (the logs of its weights) from their mean: zero on the diagonal, where
    the second phase starts. ``strength`` is the penalty times the loss
    there, so that the penalty does not depend on the loss's units.
    """

    def __init__(self, fun, tied, strength):
        self._fun = fun
        self.budget = fun.budget
        self._groups = [
            np.flatnonzero(tied == k) for k in np.unique(tied) if np.sum(tied == k) > 1
        ]
        self._strength = strength

    def value_and_grad(self, z):
        value, gradient = self._fun.value_and_grad(z)
        gradient = np.array(gradient, dtype=float)
        for group in self._groups:
            deviation = z[group] - np.mean(z[group])
            value = value + self._strength * np.mean(deviation**2)
            gradient[group] += self._strength * 2 * deviation / len(group)
        return value, gradient


def _lbfgsb(fun, start, lower, upper, *, tol):
    """L-BFGS-B from ``start`` until ``fun``'s budget is spent or it converges.

    Returns the lowest value ``fun`` gave in the run (inf if none).
    """
    values = [np.inf]

    def value_and_grad(z):
        value, gradient = fun.value_and_grad(z)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            # A failed point: no slope to follow. The best point is kept.
            raise _BudgetSpent
        values.append(value)
        return value, gradient

    try:
        _, gradient = value_and_grad(start)
        free = ((start > lower) | (gradient < 0)) & ((start < upper) | (gradient > 0))
        scale = np.max(np.abs(np.where(free, gradient, 0.0)), initial=0.0)
        if scale == 0:
            return min(values)
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
        pass
    return min(values)

"""The outer optimizer: a coarse pass over the box, then L-BFGS-B.

The cross-validation loss of a model is often flat at one end of a
hyperparameter range (a huge penalty predicts a constant) and can have
several local minima. A gradient method started at one end would stop on the
plateau, so the search first evaluates the loss alone at ``n_init`` points
spread over the box (evenly on the search scale for one hyperparameter, a
Latin hypercube for more) and then follows the hypergradient from the best
of them with L-BFGS-B, which keeps every iterate inside the box.

Everything here works in the unconstrained search space (see ``_space``);
the objective is a plain callable ``(z, differentiate) -> (value, gradient)``.
"""

import numpy as np
from scipy.optimize import minimize
from scipy.stats import qmc

__all__ = ["StopSearch", "minimize_in_box"]


class StopSearch(Exception):
    """Raised by an objective to end the search; what was evaluated is kept."""


class _BudgetSpent(Exception):
    """The gradient phase has used its ``n_iter`` evaluations."""


def initial_points(lower, upper, n_init, random_state):
    """Points spread over the box ``[lower, upper]``, the first pass's.

    One dimension: ``n_init`` evenly spaced points, both ends included.
    More: a Latin hypercube, so that each hyperparameter's range is covered
    evenly too.
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    if lower.size == 1:
        grid = np.linspace(0, 1, n_init) if n_init > 1 else np.array([0.5])
        unit = grid[:, None]
    else:
        unit = qmc.LatinHypercube(d=lower.size, seed=random_state).random(n_init)
    return lower + unit * (upper - lower)


def minimize_in_box(fun, lower, upper, *, n_init, n_iter, tol, random_state):
    """Minimize ``fun`` over a box: a coarse pass, then L-BFGS-B from its best.

    Parameters
    ----------
    fun : callable
        ``fun(z, differentiate) -> (value, gradient)``, the gradient being
        ``None`` when ``differentiate`` is False. A non-finite value marks a
        failed point; the line search then steps back. May raise
        :class:`StopSearch` to end the search.
    lower, upper : array-like of shape (n_dims,)
        The box, in the search space.
    n_init : int
        Points of the coarse pass.
    n_iter : int
        Largest number of hypergradient evaluations (the first at the best
        point of the coarse pass).
    tol : float
        The gradient phase stops when the projected gradient falls below
        ``tol`` times its value at the start, or when a step decreases the
        loss by less than ``tol**2`` relatively.
    random_state : RandomState instance
        Draws the coarse points when there are several dimensions.
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    starts = initial_points(lower, upper, n_init, random_state)
    values = np.array([fun(z, False)[0] for z in starts])
    finite = np.isfinite(values)

    differentiated = {}

    def cached(z):
        # L-BFGS-B's line search comes back to points within rounding of
        # those it has seen: those cost nothing.
        key = tuple(np.round(np.asarray(z, float), 12))
        if key not in differentiated:
            if len(differentiated) >= n_iter:
                raise _BudgetSpent
            value, grad = fun(np.asarray(z, float), True)
            differentiated[key] = (float(value), np.asarray(grad, float))
        return differentiated[key]

    if n_iter == 0 or not finite.any():
        return
    best = int(np.argmin(np.where(finite, values, np.inf)))
    # A cell of the coarse pass: the spacing of its points along each axis.
    half_cell = 0.5 * np.linalg.norm(upper - lower) / max(n_init - 1, 1)
    if lower.size == 1 and n_init > 2:
        # The coarse points are a grid: the minimum near the best of them
        # lies between its neighbours, a bracket that keeps the line search
        # from wandering onto the plateaus beyond.
        lower = starts[max(best - 1, 0)]
        upper = starts[min(best + 1, n_init - 1)]

    # L-BFGS-B's first step is the gradient itself when every variable is
    # bounded, and its tolerances are absolute: scale the loss so that the
    # first step moves half a cell and the gradient tolerance is relative to
    # the gradient there, whatever the units of the loss (a mean squared
    # error of 3000 or a log-loss of 0.1).
    grad_norm = np.linalg.norm(cached(starts[best])[1])
    scale = grad_norm / half_cell if grad_norm > 0 else 0.0
    scale = scale or max(abs(values[best]), np.finfo(float).tiny)
    worst = np.max(values[finite])

    def scaled(z):
        value, grad = cached(z)
        if not np.isfinite(value):
            # Above every finite value, with no slope: the line search
            # backtracks towards the last good point.
            return 2 * (abs(worst) + abs(values[best])) / scale, np.zeros_like(z)
        return value / scale, grad / scale

    try:
        minimize(
            scaled,
            starts[best],
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(lower, upper, strict=True)),
            options={
                "maxiter": n_iter,
                # Near a minimum the loss changes with the square of the
                # gradient: stop on the gradient, not on a small decrease.
                "ftol": tol**2,
                "gtol": tol * half_cell,
            },
        )
    except _BudgetSpent:
        pass

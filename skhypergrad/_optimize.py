"""The outer optimizer: a coarse pass over the box, then gradient steps.

The cross-validation loss of a model is often flat at one end of a
hyperparameter range (a huge penalty predicts a constant) and can have
several local minima. A gradient method started at one end would stop on the
plateau, so the search first evaluates the loss alone at ``n_init`` points
spread over the box (evenly on the search scale for one hyperparameter, a
Latin hypercube for more) and then follows the hypergradient from the best
of them:

- one hyperparameter: inside the bracket formed by the best coarse point's
  neighbours, by safeguarded interpolation (cubic, secant or parabola) of
  the loss and its derivative, the one-dimensional analogue of a line
  search's zoom phase; it stops when the step falls below ``tol`` times half
  a cell, which L-BFGS-B cannot do;
- several: L-BFGS-B, which keeps every iterate inside the box.

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
    """Minimize ``fun`` over a box: a coarse pass, then gradient steps.

    Parameters
    ----------
    fun : callable
        ``fun(z, differentiate) -> (value, gradient)``, the gradient being
        ``None`` when ``differentiate`` is False. A non-finite value marks a
        failed point, which the search treats as worse than any other. May
        raise :class:`StopSearch` to end the search.
    lower, upper : array-like of shape (n_dims,)
        The box, in the search space.
    n_init : int
        Points of the coarse pass.
    n_iter : int
        Largest number of hypergradient evaluations (the first at the best
        point of the coarse pass).
    tol : float
        The gradient phase stops when the gradient falls below ``tol`` times
        its value at the start, or in one dimension when the next step would
        move less than ``tol`` times half a cell of the coarse pass.
    random_state : RandomState instance
        Draws the coarse points when there are several dimensions.
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    starts = initial_points(lower, upper, n_init, random_state)
    values = np.array([fun(z, False)[0] for z in starts])
    finite = np.isfinite(values)
    if n_iter == 0 or not finite.any():
        return
    best = int(np.argmin(np.where(finite, values, np.inf)))
    # A cell of the coarse pass: the spacing of its points along each axis.
    half_cell = 0.5 * np.linalg.norm(upper - lower) / max(n_init - 1, 1)
    if lower.size == 1:
        _refine_in_bracket(
            fun,
            starts[:, 0],
            values,
            best,
            lower[0],
            upper[0],
            n_iter=n_iter,
            gtol=tol,
            xtol=tol * half_cell,
        )
    else:
        _refine_lbfgsb(
            fun,
            starts[best],
            values[best],
            np.max(values[finite]),
            lower,
            upper,
            half_cell=half_cell,
            n_iter=n_iter,
            tol=tol,
        )


def _refine_in_bracket(fun, points, values, best, lower, upper, *, n_iter, gtol, xtol):
    """One dimension: safeguarded interpolation between the coarse points.

    The minimum near the best coarse point ``x`` lies between its neighbours
    (or the ends of the box), a bracket that keeps the search off the
    plateaus beyond. Each step evaluates a point between ``x`` and the end of
    the bracket downhill from it, predicted by a model of the loss: the
    cubic through ``x`` and that end when both have derivatives, else the
    secant of the derivative through the previous iterate, else the
    parabola through ``x``'s value and slope and that end's value, else the
    midpoint. A better point becomes ``x`` and the old one an end of the
    bracket; a worse (or failed) one becomes the end on its side. So the
    bracket always holds the best point, with higher values at both ends,
    and shrinks at every step.

    Stops when the derivative at ``x`` falls below ``gtol`` times its value
    at the start, when the next step would be shorter than ``xtol``, when
    ``x`` is at an end of the box and the loss decreases outwards, or after
    ``n_iter`` evaluations.
    """
    n_points = len(points)
    # The ends of the bracket, each (z, value, derivative or None); a value
    # of None is unknown (an end of the box that is not a coarse point).
    ends = {
        -1: (points[best - 1], values[best - 1], None)
        if best > 0
        else (lower, None, None),
        1: (
            (points[best + 1], values[best + 1], None)
            if best < n_points - 1
            else (upper, None, None)
        ),
    }

    def evaluate(z):
        value, grad = fun(np.array([z]), True)
        value, grad = float(value), float(grad[0])
        if not (np.isfinite(value) and np.isfinite(grad)):
            # Failed, or no slope to follow: worse than any other point.
            return np.inf, None
        return value, grad

    x = points[best]
    fx, gx = evaluate(x)
    if not np.isfinite(fx):
        return
    g_start = abs(gx)
    previous = None  # the last iterate before x, (z, value, derivative)
    for _ in range(n_iter - 1):
        if abs(gx) <= gtol * g_start:
            return
        side = 1 if gx < 0 else -1  # downhill
        end = ends[side]
        if abs(end[0] - x) <= xtol:
            return
        t = _trial_point(x, fx, gx, end, previous)
        if abs(t - x) < xtol:
            return
        ft, gt = evaluate(t)
        if ft < fx:
            # Better: t is the new best, x an end of the bracket.
            ends[-side] = (x, fx, gx)
            previous = (x, fx, gx)
            x, fx, gx = t, ft, gt
        else:
            ends[side] = (t, ft, gt)


def _trial_point(x, fx, gx, end, previous):
    """The next point to evaluate, between ``x`` and ``end`` (downhill).

    The minimizer of a model of the loss, kept inside the bracket: at most
    90% of the way to ``end`` for the cubic, which interpolates, and half of
    it for the other models.
    """
    e, fe, ge = end
    d = e - x
    if ge is not None and np.isfinite(fe):
        fraction = _cubic_minimizer(fx, gx * d, fe, ge * d)
        if fraction is not None:
            return x + min(fraction, 0.9) * d
    fraction = None
    if previous is not None:
        # The previous iterate is behind x, with a slope of the same sign.
        p, _, gp = previous
        curvature = (gx - gp) / (x - p)
        if curvature > 0:
            # Where the secant of the derivative crosses zero.
            fraction = -gx / (curvature * d)
        else:
            # The slope is not flattening: step out twice as far as last time.
            fraction = 2 * abs(x - p) / abs(d)
    elif np.isfinite(fe if fe is not None else np.nan):
        # Parabola through x's value and slope and the end's value; as
        # fe >= fx, its minimum is at most half way. It can be far short of
        # the minimum when the end is a steep wall: at least a tenth of the
        # way, from which the steps double.
        curvature = fe - fx - gx * d
        if curvature > 0:
            fraction = max(-gx * d / (2 * curvature), 0.1)
    if fraction is None or not fraction > 0:
        fraction = 0.5
    return x + min(fraction, 0.5) * d


def _cubic_minimizer(f0, g0, f1, g1):
    """Minimizer in (0, 1) of the cubic with these values and slopes at 0, 1.

    Returns None when the cubic has no minimum there.
    """
    # Nocedal & Wright, Numerical Optimization, eq. (3.59), on [0, 1].
    d1 = g0 + g1 - 3 * (f1 - f0)
    discriminant = d1**2 - g0 * g1
    if discriminant < 0:
        return None
    d2 = np.sqrt(discriminant)
    denominator = g1 - g0 + 2 * d2
    if denominator == 0:
        return None
    fraction = 1 - (g1 + d2 - d1) / denominator
    return fraction if 0 < fraction < 1 else None


def _refine_lbfgsb(
    fun, start, start_value, worst, lower, upper, *, half_cell, n_iter, tol
):
    """Several dimensions: L-BFGS-B from the best coarse point."""
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

    # L-BFGS-B's first step is the gradient itself when every variable is
    # bounded, and its tolerances are absolute: scale the loss so that the
    # first step moves half a cell and the gradient tolerance is relative to
    # the gradient there, whatever the units of the loss (a mean squared
    # error of 3000 or a log-loss of 0.1).
    grad_norm = np.linalg.norm(cached(start)[1])
    scale = grad_norm / half_cell if grad_norm > 0 else 0.0
    scale = scale or max(abs(start_value), np.finfo(float).tiny)

    def scaled(z):
        value, grad = cached(z)
        if not np.isfinite(value):
            # Above every finite value, with no slope: the line search
            # backtracks towards the last good point.
            return 2 * (abs(worst) + abs(start_value)) / scale, np.zeros_like(z)
        return value / scale, grad / scale

    try:
        minimize(
            scaled,
            start,
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

"""The outer optimizer: a coarse pass over the box, then gradient steps.

The cross-validation loss of a model is often flat at one end of a
hyperparameter range (a huge penalty predicts a constant) and can have
several local minima. A gradient method started at one end would stop on the
plateau, so the search first evaluates the loss alone at ``n_init`` points
spread over the box (evenly on the search scale for one hyperparameter, a
Latin hypercube for more) and then follows the hypergradient from the best
of them:

- one hyperparameter: inside the bracket formed by the best coarse point's
  neighbours, by safeguarded interpolation (cubic or secant) of
  the loss and its derivative, the one-dimensional analogue of a line
  search's zoom phase; it stops when the step falls below ``tol`` times half
  a cell (a general-purpose method would go on chasing the rounding noise
  of the hypergradient);
- several: steps in a trust region, along the quasi-Newton direction or,
  when the loss is too rough for one, the sign of the hypergradient; trial
  points are evaluated for the loss alone, and the hypergradient only where
  the loss decreased (the loss of a network's training is chaotic in its
  learning rate: its exact hypergradient can be huge at one point and small
  next to it, which poisons L-BFGS-B's steps and curvature pairs). A run
  that stalls in a local minimum of such a loss leaves the rest of the
  budget to a run from another coarse point (multi-level single linkage).

Everything here works in the unconstrained search space (see ``_space``).
The objective is memoized by the caller (the cross-validation objective
keeps every point it has evaluated): it has ``value(z, exact=True)``,
``value_and_grad(z)``, and ``is_evaluated(z, differentiate)``, which says
whether a call would be answered without computing anything. The budget
counts only the calls that compute. The coarse pass asks for
``exact=False`` (unless it evaluates values the user listed): its points
only locate the basin, and a model may then
solve them as its estimator's ``fit`` would stop (see
``DifferentiableModel.inexact_solves``); a point differentiated later is
solved again, exactly.
"""

import itertools

import numpy as np
from scipy.stats import qmc

__all__ = ["StopSearch", "minimize_in_box"]


class StopSearch(Exception):
    """Raised by an objective to end the search; what was evaluated is kept."""


# A trust-region run stalls when a failed step implies a curvature this many
# times that implied by the first failed step since the last accepted one.
# Along a smooth loss the implied curvature tends to the second derivative as
# the steps shrink; where the loss wiggles by some amount at every scale (the
# chaotic training of a network), it grows as one over the step squared: a
# hundredfold once the steps are ten times shorter.
_ROUGHNESS = 100.0


# One dimension: a step predicted to decrease the loss by less than this
# times ``tol`` times the loss is not taken (1e-9 relative by default: the
# last steps of the bracket used to gain 1e-10 to 2e-9 of a logistic
# log-loss, a 30-point grid's best point is often within 1e-7 of the
# minimum).
_NEGLIGIBLE_GAIN = 1e-3


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
    points = lower + unit * (upper - lower)
    # lower + (upper - lower) may round below upper: the ends are the ends.
    return np.where(unit == 1, upper, points)


def coarse_design(lower, upper, n_init, random_state, values=None, order=None):
    """The points of the coarse pass.

    Without ``values``, :func:`initial_points`. ``values[d]``, when not
    None, lists the coordinates that dimension ``d`` must take (the values a
    user listed, as a grid would evaluate them): every combination of the
    listed coordinates is evaluated, each with the ``n_init`` points of
    :func:`initial_points` in the other dimensions, if any. The combinations
    come in the order of ``itertools.product`` over the listed dimensions
    taken in ``order`` (by default, increasing), the last varying fastest.
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    if values is None or all(v is None for v in values):
        return initial_points(lower, upper, n_init, random_state)
    listed = [d for d in (order or range(len(values))) if values[d] is not None]
    free = [d for d, v in enumerate(values) if v is None]
    free_points = (
        initial_points(lower[free], upper[free], n_init, random_state)
        if free
        else np.zeros((1, 0))
    )
    design = []
    for combination in itertools.product(*(values[d] for d in listed)):
        for free_point in free_points:
            point = np.empty(len(lower))
            point[listed] = combination
            point[free] = free_point
            design.append(point)
    return np.array(design)


def minimize_in_box(
    fun, lower, upper, *, n_init, n_iter, tol, random_state, values=None, order=None
):
    """Minimize ``fun`` over a box: a coarse pass, then gradient steps.

    Parameters
    ----------
    fun : object
        The objective, with ``value(z, exact) -> float``, ``value_and_grad(z) ->
        (float, ndarray)`` and ``is_evaluated(z, differentiate) -> bool``
        (see the module's docstring). A non-finite value marks a failed
        point, which the search treats as worse than any other. May raise
        :class:`StopSearch` to end the search.
    lower, upper : array-like of shape (n_dims,)
        The box, in the search space.
    n_init : int
        Points of the coarse pass.
    n_iter : int
        Largest number of evaluations after the coarse pass, the first being
        the hypergradient at its best point. With one dimension, each is a
        hypergradient; with several, a trial point's loss alone or a
        hypergradient at a point that decreased the loss.
    tol : float
        The gradient phase stops when the gradient falls below ``tol`` times
        its value at the start, or when the next step would move less than
        ``tol`` times half a cell of the coarse pass (with one dimension,
        also when it would decrease the loss by less than ``tol / 1000``
        times the loss). With several
        dimensions, the start is the last point where the gradient was a
        guide to the loss (see :func:`_refine_trust_region`), and a run that
        stops on a short step restarts from another coarse point (see
        :func:`_restarted_trust_regions`).
    random_state : int, RandomState instance or None
        Draws the coarse points when there are several dimensions.
    values : list of (array-like or None), default=None
        Coordinates the coarse pass must evaluate along each dimension (see
        :func:`coarse_design`); None, or a None entry, spreads ``n_init``
        points instead.
    order : list of int, default=None
        The order in which :func:`coarse_design` enumerates the listed
        dimensions.
    """
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    starts = coarse_design(lower, upper, n_init, random_state, values, order)
    # Listed values are the user's grid: never worse than it means exactly
    # as good as its exact optimum at each of them.
    listed = values is not None and any(v is not None for v in values)
    values = np.array([fun.value(z, exact=listed) for z in starts])
    finite = np.isfinite(values)
    if n_iter == 0 or not finite.any():
        return
    # A cell of the coarse pass: the spacing of its points along each axis.
    cells = [max(len(np.unique(starts[:, d])) - 1, 1) for d in range(lower.size)]
    half_cell = 0.5 * np.linalg.norm((upper - lower) / np.array(cells))
    if lower.size == 1:
        # The bracket needs the coarse points in order (listed values come in
        # the user's).
        ordered = np.argsort(starts[:, 0], kind="stable")
        points, values = starts[ordered, 0], values[ordered]
        best = int(np.argmin(np.where(np.isfinite(values), values, np.inf)))
        _refine_in_bracket(
            fun,
            points,
            values,
            best,
            lower[0],
            upper[0],
            n_iter=n_iter,
            gtol=tol,
            xtol=tol * half_cell,
        )
    else:
        _restarted_trust_regions(
            fun,
            starts,
            values,
            lower,
            upper,
            n_iter=n_iter,
            tol=tol,
            half_cell=half_cell,
        )


def _restarted_trust_regions(
    fun, starts, values, lower, upper, *, n_iter, tol, half_cell
):
    """Several dimensions: trust-region runs from the coarse points, best first.

    The first run starts at the best coarse point. A run that converges (the
    gradient fell below ``tol`` times its start, or the quasi-Newton step
    below ``tol`` times half a cell) ends the search. A run that stalls (no
    step improves down to a radius of ``tol`` times half a cell, or the loss
    is rough at the scale of the steps, while the gradient is not small: a
    local minimum of a rough loss, or a kink) leaves the rest of the budget
    to a run from another coarse point, chosen as multi-level single linkage
    chooses its starts (Rinnooy Kan and Timmer, 1987): the best coarse point
    that has no better point, among all those evaluated so far, within the
    critical distance, here the mean distance from a coarse point to its
    nearest neighbour.
    """
    evaluated = [(z, v) for z, v in zip(starts, values, strict=True) if np.isfinite(v)]
    recorded = _Recorded(fun, evaluated)

    distances = np.linalg.norm(starts[:, None, :] - starts[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)
    critical = np.mean(distances.min(axis=1)) if len(starts) > 1 else 0.0
    left = n_iter
    for i in np.argsort(np.where(np.isfinite(values), values, np.inf)):
        if not np.isfinite(values[i]) or (left < n_iter and left < 2):
            return
        if any(
            v < values[i] and np.linalg.norm(z - starts[i]) <= critical
            for z, v in evaluated
        ):
            continue
        used, stalled = _refine_trust_region(
            recorded,
            starts[i],
            lower,
            upper,
            radius=half_cell,
            n_iter=left,
            gtol=tol,
            xtol=tol * half_cell,
        )
        left -= used
        if not stalled:
            return


class _Recorded:
    """``fun``, appending each finite ``(z, value)`` it returns to ``evaluated``.

    Multi-level single linkage chooses each restart among all the points
    evaluated so far.
    """

    def __init__(self, fun, evaluated):
        self._fun = fun
        self._evaluated = evaluated

    def is_evaluated(self, z, differentiate):
        return self._fun.is_evaluated(z, differentiate)

    def _record(self, z, value):
        if np.isfinite(value):
            self._evaluated.append((np.array(z, float), float(value)))
        return value

    def value(self, z):
        return self._record(z, self._fun.value(z))

    def value_and_grad(self, z):
        value, grad = self._fun.value_and_grad(z)
        return self._record(z, value), grad


def _refine_in_bracket(fun, points, values, best, lower, upper, *, n_iter, gtol, xtol):
    """One dimension: safeguarded interpolation between the coarse points.

    The minimum near the best coarse point ``x`` lies between its neighbours
    (or the ends of the box), a bracket that keeps the search off the
    plateaus beyond. After ``x``'s derivative, that of the end of the bracket
    downhill from it is computed too when that coarse point was solved
    exactly (its loss is known, and a model that keeps its solutions adds
    the derivative at little cost), so that the first step already
    interpolates a cubic. Each step evaluates a
    point between ``x`` and the end downhill from it, predicted by a model of
    the loss: the cubic through ``x`` and that end when both have
    derivatives, else the secant of the derivative through the previous
    iterate, else the midpoint. A better point becomes ``x`` and the old
    one an end of the bracket; a worse (or failed) one becomes the end on its
    side. So the bracket always holds the best point, with higher values at
    both ends, and shrinks at every step.

    Stops when the derivative at ``x`` falls below ``gtol`` times its value
    at the start, when the next step would be shorter than ``xtol``, or
    would decrease the loss (by the quadratic model along it) by less than
    ``_NEGLIGIBLE_GAIN * gtol`` times the loss, when ``x`` is at an end of the
    box and the loss decreases outwards, or after ``n_iter`` evaluations.
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
        value, grad = fun.value_and_grad(np.array([z]))
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
    left = n_iter - 1
    while left > 0:
        if abs(gx) <= gtol * g_start:
            return
        side = 1 if gx < 0 else -1  # downhill
        end = ends[side]
        if abs(end[0] - x) <= xtol:
            return
        if (
            end[2] is None
            and end[1] is not None
            and np.isfinite(end[1])
            and fun.is_evaluated(np.array([end[0]]), False)
        ):
            # A coarse point solved exactly, without its derivative: add it
            # (an inexact one would be solved again first: not worth it).
            fe, ge = evaluate(end[0])
            left -= 1
            if ge is not None:
                ends[side] = (end[0], fe, ge)
            continue
        t = _trial_point(x, fx, gx, end, previous)
        if abs(t - x) < xtol or -0.5 * gx * (t - x) <= _NEGLIGIBLE_GAIN * gtol * abs(
            fx
        ):
            return
        ft, gt = evaluate(t)
        left -= 1
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
    90% of the way to ``end`` for the secant through the previous iterate
    and for the cubic, which interpolate, and half of it for the other
    models; the midpoint of the bracket when there is no model yet. The
    cubic through the previous iterate and ``x`` comes first: the cubic
    through a far end of the bracket can approach the minimum from
    one side by ever shorter steps (Ridge on diabetes: 17 steps instead of
    6).
    """
    e, fe, ge = end
    d = e - x
    if previous is not None:
        t = _cubic_through(*previous, x, fx, gx)
        if t is not None and 0 < (t - x) / d < 0.9:
            return t
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
    # Else the first step, without the end's derivative: the midpoint. The
    # parabola through x's value and slope and the end's value falls far
    # short of the minimum between a plateau and a wall (a logistic C), where
    # the slope at x is small and the end high: on breast_cancer, digits,
    # make_classification and a tall 5-class problem, the midpoint took 33
    # evaluations in all, the parabola (at least a tenth of the way) 36.
    if fraction is None or not fraction > 0:
        fraction = 0.5
    return x + min(fraction, 0.5) * d


def _cubic_through(x0, f0, g0, x1, f1, g1):
    """Local minimizer of the cubic with these values and slopes at x0, x1.

    Anywhere on the line (the previous iterate and ``x``, extrapolated
    beyond ``x``). Returns None when the cubic has no local minimum.
    """
    # Nocedal & Wright, Numerical Optimization, eq. (3.59).
    d1 = g0 + g1 - 3 * (f0 - f1) / (x0 - x1)
    discriminant = d1**2 - g0 * g1
    if discriminant < 0:
        return None
    d2 = np.sign(x1 - x0) * np.sqrt(discriminant)
    denominator = g1 - g0 + 2 * d2
    if denominator == 0:
        return None
    return x1 - (x1 - x0) * (g1 + d2 - d1) / denominator


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


def _refine_trust_region(
    fun,
    start,
    lower,
    upper,
    *,
    radius,
    n_iter,
    gtol,
    xtol,
    min_ratio=0.1,
):
    """Several dimensions: quasi-Newton directions in a trust region.

    A cross-validation loss can be rough: the training of a network is
    chaotic in its learning rate, so that the loss wiggles at small scales
    and its exact gradient can be huge at one point and small next to it. A
    gradient that large poisons a line search's step and a quasi-Newton
    method's curvature pairs alike. So the gradient gives the direction of a
    step, and a trust radius, not the gradient's magnitude, its length:

    - the direction is the quasi-Newton one (BFGS, from the pairs of
      accepted steps), else the steepest descent one in the max-norm, the
      sign of the gradient (see :func:`_direction`); projected on the box;
    - the step is that of the quasi-Newton model, cut to the radius; without
      a model, a step of the radius's length;
    - a trial point is evaluated for the loss alone, as many trials of a
      rough loss fail: it is accepted if it decreases the loss, and only
      then is its gradient computed; a point evaluated already costs
      nothing. A step of the radius's length that succeeds is
      doubled, on the loss alone, while the loss keeps decreasing; the radius
      becomes the longest step that succeeded, or twice that when no longer
      one failed. A failed step of the radius's length shrinks the radius to
      the minimizer of the parabola through the values and slope along the
      step (between a tenth and a half of the step); a failed, shorter model
      step drops the model.
    - the model is dropped, and the gradient's scale reset, when the loss
      decreased by less than ``min_ratio`` times the decrease the gradient
      at the previous point predicted (to first order): that gradient was
      no guide to the loss, and a curvature pair made with it is none
      either.

    Parameters
    ----------
    fun : object
        The objective, as for :func:`minimize_in_box`.
    start : ndarray of shape (n_dims,)
        The best point of the coarse pass.
    lower, upper : ndarray of shape (n_dims,)
        The box.
    radius : float
        The first step's length.
    n_iter : int
        Largest number of evaluations, trial points and gradients together,
        the first being the gradient at ``start``.
    gtol : float
        Stops when the projected gradient falls below ``gtol`` times its
        norm at ``start``, or at the last point where the model was dropped.
    xtol : float
        Stops when the radius or the next step is shorter than ``xtol``.
    min_ratio : float, default=0.1
        Least ratio of the decrease to its first-order prediction for the
        gradient before a step to count as a guide to the loss.

    Returns
    -------
    evaluations : int
        Evaluations spent.
    stalled : bool
        Whether the run ended with a gradient that was not small: no step
        improved down to ``xtol``, the loss was rough at the scale of the
        steps (see ``_ROUGHNESS``), or a gradient was not finite.
    """
    evaluations = 0

    def evaluate(z, differentiate):
        # A step that lands on a point evaluated already (the sign of the
        # gradient often stays the same) costs nothing.
        nonlocal evaluations
        if not fun.is_evaluated(z, differentiate):
            if evaluations >= n_iter:
                raise _BudgetSpent
            evaluations += 1
        if differentiate:
            value, grad = fun.value_and_grad(z)
        else:
            value, grad = fun.value(z), None
        value = float(value)
        if not np.isfinite(value):
            return np.inf, None
        if differentiate:
            grad = np.asarray(grad, float)
            if not np.all(np.isfinite(grad)):
                return value, None
        return value, grad

    x = np.asarray(start, float)
    try:
        fx, gx = evaluate(x, True)
        if gx is None:
            return evaluations, True
        g_start = np.linalg.norm(_projected(gx, x, lower, upper))
        inverse_hessian = None
        # The curvature implied by the first failed step since the last
        # accepted one: (f(t) - f(x) - g.s) / |s|^2.
        first_failure = None
        while True:
            pg = _projected(gx, x, lower, upper)
            norm = np.linalg.norm(pg)
            if norm == 0 or norm <= gtol * g_start:
                return evaluations, False
            if radius <= xtol:
                return evaluations, True
            step = _direction(inverse_hessian, gx, pg)
            length = np.linalg.norm(step)
            full = inverse_hessian is None or length > radius
            if full:
                step *= radius / length
            t = np.clip(x + step, lower, upper)
            step = t - x
            length = np.linalg.norm(step)
            if length <= xtol:
                # (With xtol = 0, when the step is below rounding of x.) A
                # model step this short puts the minimum here: converged.
                return evaluations, full
            ft, _ = evaluate(t, False)
            if not ft < fx:
                if not full:
                    # A failed model step discredits the model, not the radius.
                    inverse_hessian = None
                    continue
                # A failed step of the radius's length: a shorter one.
                slope = pg @ step
                curvature = ft - fx - slope
                fraction = 0.5
                if np.isfinite(curvature) and curvature > 0:
                    fraction = np.clip(-slope / (2 * curvature), 0.1, 0.5)
                    implied = curvature / length**2
                    if first_failure is None:
                        first_failure = implied
                    elif implied > _ROUGHNESS * first_failure:
                        # The loss varies at this scale far more than its
                        # shape at the first failed step allows: it is rough
                        # here, and shorter steps would chase its wiggles.
                        return evaluations, True
                if fraction * length >= radius:
                    # Rounding made the step no shorter than the radius: the
                    # steps are at the resolution of x.
                    return evaluations, True
                radius = fraction * length
                inverse_hessian = None
                continue
            first_failure = None
            if full:
                # The step was cut: go further while the loss decreases. The
                # radius becomes the longest step that succeeded, or twice
                # that if no longer one failed.
                longer_failed = False
                while evaluations < n_iter:
                    further = np.clip(x + 2 * (t - x), lower, upper)
                    if np.linalg.norm(further - t) < xtol:
                        break
                    f_further, _ = evaluate(further, False)
                    if not f_further < ft:
                        longer_failed = True
                        break
                    t, ft = further, f_further
                length = np.linalg.norm(t - x)
                radius = length if longer_failed else max(radius, 2 * length)
            if evaluations >= n_iter - 1:
                # A gradient would leave no evaluation to step with it.
                return evaluations, False
            ft, gt = evaluate(t, True)
            if gt is None:
                return evaluations, True
            s = t - x
            # The first-order prediction of the decrease, against the decrease:
            # far off, the gradient at x was no guide to the loss's shape (a
            # spike of a rough loss), nor is a pair made with it.
            predicted = -(gx @ s)
            ratio = (fx - ft) / predicted if predicted > 0 else 0.0
            if ratio < min_ratio:
                # Start afresh from t, the gradient's scale included.
                inverse_hessian = None
                g_start = np.linalg.norm(_projected(gt, t, lower, upper))
            else:
                inverse_hessian = _bfgs_update(inverse_hessian, s, gt - gx)
            x, fx, gx = t, ft, gt
    except _BudgetSpent:
        return evaluations, False


def _projected(grad, z, lower, upper):
    """The gradient without the components that would leave the box."""
    blocked = ((z <= lower) & (grad > 0)) | ((z >= upper) & (grad < 0))
    return np.where(blocked, 0.0, grad)


def _direction(inverse_hessian, grad, projected):
    """The quasi-Newton step on the free variables, or steepest descent.

    Steepest descent is taken in the max-norm: every free variable moves by
    the same amount, downhill. A rough loss inflates its gradient along some
    axes (the learning rate) by orders of magnitude, and the Euclidean
    steepest descent would then move along those axes alone, leaving a
    smooth, decisive one (the penalty) where it is.
    """
    if inverse_hessian is not None:
        free = projected != 0
        step = np.zeros_like(grad)
        step[free] = -inverse_hessian[np.ix_(free, free)] @ grad[free]
        if step @ projected < 0:
            return step
    return -np.sign(projected)


def _bfgs_update(inverse_hessian, s, y):
    """BFGS update of the inverse Hessian, or None to forget it.

    The pair is dropped, and the model with it, when the curvature along
    ``s`` is not positive, which a rough loss gives as often as not.
    Without a model, the first pair scales the identity (Nocedal & Wright,
    eq. 6.20).
    """
    sy = s @ y
    if not sy > 1e-10 * np.linalg.norm(s) * np.linalg.norm(y):
        return None
    if inverse_hessian is None:
        inverse_hessian = (sy / (y @ y)) * np.eye(len(s))
    rho = 1 / sy
    v = np.eye(len(s)) - rho * np.outer(s, y)
    return v @ inverse_hessian @ v.T + rho * np.outer(s, s)

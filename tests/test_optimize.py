"""The outer optimizer, on functions whose minimum is known."""

import zlib

import numpy as np
import pytest

from skhypergrad import _optimize
from skhypergrad._optimize import (
    StopSearch,
    _cubic_minimizer,
    initial_points,
    minimize_in_box,
)


class Recorder:
    """Wraps ``z -> (value, gradient)`` as a memoized objective.

    It records every call that computes: a point's value, or its gradient
    (with the value), each once, as the cross-validation objective does.
    """

    def __init__(self, fun):
        self.fun = fun
        self.points = []
        self.differentiated = []
        # Whether each call of value() asked for an exact solve.
        self.exact = []
        self._known = {}  # tuple(z) -> whether its gradient was computed

    def is_evaluated(self, z, differentiate):
        known = self._known.get(tuple(np.asarray(z, float)))
        return known is not None and (known or not differentiate)

    def _compute(self, z, differentiate):
        if not self.is_evaluated(z, differentiate):
            self.points.append(np.array(z))
            self.differentiated.append(differentiate)
            key = tuple(np.asarray(z, float))
            self._known[key] = self._known.get(key, False) or differentiate
        return self.fun(z)

    def value(self, z, exact=True):
        self.exact.append(exact)
        return self._compute(z, False)[0]

    def value_and_grad(self, z):
        return self._compute(z, True)

    def best(self):
        values = [self.fun(z)[0] for z in self.points]
        return self.points[int(np.nanargmin(values))], np.nanmin(values)


def plateau_then_bowl(z):
    """Flat (value 1) far left, a bowl with its minimum 0 at z = 3."""
    z = z[0]
    value = 1 - np.exp(-((z - 3) ** 2) / 2)
    grad = (z - 3) * np.exp(-((z - 3) ** 2) / 2)
    return value, np.array([grad])


def test_a_plateau_at_one_end_does_not_stop_the_search():
    fun = Recorder(plateau_then_bowl)
    minimize_in_box(fun, [-10.0], [5.0], n_init=5, n_iter=20, tol=1e-8, random_state=0)
    z, value = fun.best()
    np.testing.assert_allclose(z, [3.0], atol=1e-4)
    assert value < 1e-8
    # Started on the plateau alone, a gradient method would not move.
    assert plateau_then_bowl(np.array([-10.0]))[1][0] == pytest.approx(0, abs=1e-15)


@pytest.mark.parametrize("n_init, n_iter", [(1, 0), (3, 2), (5, 7)])
def test_the_budget_is_exact(n_init, n_iter):
    fun = Recorder(lambda z: (float(np.sum((z - 0.3) ** 2)), 2 * (z - 0.3)))
    minimize_in_box(
        fun,
        [-4.0, -4.0],
        [4.0, 4.0],
        n_init=n_init,
        n_iter=n_iter,
        tol=0.0,
        random_state=0,
    )
    # The coarse pass computes the loss alone; the gradient phase spends at
    # most n_iter evaluations, trial points and hypergradients together.
    assert fun.differentiated[:n_init] == [False] * n_init
    assert 1 <= sum(fun.differentiated) <= n_iter or n_iter == 0
    assert len(fun.points) <= n_init + n_iter


def test_quadratic_in_two_dimensions():
    target = np.array([1.5, -0.5])

    def quadratic(z):
        scales = np.array([1.0, 10.0])
        return float(np.sum(scales * (z - target) ** 2)), 2 * scales * (z - target)

    fun = Recorder(quadratic)
    minimize_in_box(
        fun, [-3, -3], [3, 3], n_init=5, n_iter=30, tol=1e-8, random_state=0
    )
    z, _ = fun.best()
    np.testing.assert_allclose(z, target, atol=1e-5)


def test_several_dimensions_differentiate_only_where_the_loss_decreased():
    target = np.array([1.5, -0.5])
    fun = Recorder(lambda z: (float(np.sum((z - target) ** 2)), 2 * (z - target)))
    minimize_in_box(fun, [-3, -3], [3, 3], n_init=5, n_iter=20, tol=0, random_state=0)
    values = [fun.fun(z)[0] for z in fun.points]
    # The first hypergradient is at the best coarse point; every later one at
    # a trial point evaluated for its loss alone before, and better than
    # every point evaluated before that trial.
    first = fun.differentiated.index(True)
    assert first == 5 and values[first] == min(values[:5])
    later = [k for k in range(first + 1, len(values)) if fun.differentiated[k]]
    assert later
    for k in later:
        trial = next(
            j
            for j in range(k)
            if not fun.differentiated[j]
            and np.array_equal(fun.points[j], fun.points[k])
        )
        assert values[trial] < min(values[:trial])


def cliff_at(start, target, width=1e-7, height=1e-3):
    """A bowl at ``target`` with a cliff through ``start``, ``width`` wide.

    The loss drops by ``2 * height`` across the cliff, so that the gradient
    at ``start`` is ``height / width`` times larger than anywhere else, and
    points roughly (half a radian off) towards ``target``.
    """
    towards = (target - start) / np.linalg.norm(target - start)
    c, s = np.cos(0.5), np.sin(0.5)
    normal = np.array([[c, -s], [s, c]]) @ towards

    def fun(z):
        t = np.tanh((z - start) @ normal / width)
        value = float(np.sum((z - target) ** 2) - height * t)
        grad = 2 * (z - target) - height / width * (1 - t**2) * normal
        return value, grad

    return fun


@pytest.mark.parametrize("tol", [1e-8, 1e-3])
@pytest.mark.parametrize("seed", range(6))
def test_a_huge_gradient_at_the_start_sets_the_direction_not_the_steps(seed, tol):
    # As a network's rough CV loss can, the best coarse point has a gradient
    # 10^4 times larger than the gradient anywhere around it. Its magnitude,
    # taken for curvature, would make the next steps tiny, and taken as the
    # scale of the gradient, would stop the search at the first point with
    # an ordinary one.
    lower, upper, target = np.array([-3.0, -3.0]), np.array([3.0, 3.0]), [1.5, -0.5]
    starts = initial_points(lower, upper, 5, seed)
    start = starts[np.argmin([np.sum((z - target) ** 2) for z in starts])]
    fun = Recorder(cliff_at(start, np.array(target)))
    assert np.linalg.norm(fun.fun(start)[1]) > 1e4
    minimize_in_box(fun, lower, upper, n_init=5, n_iter=12, tol=tol, random_state=seed)
    z, _ = fun.best()
    np.testing.assert_allclose(z, target, atol=1e-4)


def rough_along_the_second_axis(z):
    """A bowl at (2, 0) whose second axis wiggles, with a gradient of 10^3."""
    value = (z[0] - 2) ** 2 + 0.1 * z[1] ** 2 + 1e-3 * np.sin(1e6 * z[1])
    grad = [2 * (z[0] - 2), 0.2 * z[1] + 1e3 * np.cos(1e6 * z[1])]
    return float(value), np.array(grad)


def test_a_rough_axis_does_not_freeze_a_smooth_one():
    # The gradient's second component is noise, a thousand times larger than
    # the first: steps along the gradient would move along the second axis
    # alone. The first axis must still find its minimum, from any start.
    errors = []
    for seed in range(20):
        fun = Recorder(rough_along_the_second_axis)
        minimize_in_box(
            fun, [-3, -3], [3, 3], n_init=5, n_iter=30, tol=1e-8, random_state=seed
        )
        errors.append(abs(fun.best()[0][0] - 2))
    # (Gradient steps, as L-BFGS-B's, end a median 0.3 and up to 0.9 away.)
    assert np.median(errors) < 0.1
    assert np.max(errors) < 0.3


@pytest.mark.parametrize("seed", range(5))
def test_a_loss_decreasing_to_a_corner_is_followed_on_the_loss_alone(seed):
    # The best point is the corner (10, 10), several radii from the best
    # coarse point: a step that succeeds is doubled while the loss decreases,
    # which costs the loss alone; a hypergradient at each step would not.
    fun = Recorder(lambda z: (float(-z[0] - 2 * z[1]), np.array([-1.0, -2.0])))
    minimize_in_box(
        fun, [0, 0], [10, 10], n_init=5, n_iter=20, tol=1e-8, random_state=seed
    )
    z, _ = fun.best()
    np.testing.assert_array_equal(z, [10, 10])
    assert sum(fun.differentiated) <= 2


def test_failed_points_make_the_search_step_back_in_two_dimensions():
    target = np.array([0.9, -0.5])

    def diverging(z):
        if z[0] > 1:
            return np.nan, np.full(2, np.nan)
        return float(np.sum((z - target) ** 2)), 2 * (z - target)

    fun = Recorder(diverging)
    minimize_in_box(
        fun, [-3, -3], [3, 3], n_init=5, n_iter=30, tol=1e-10, random_state=0
    )
    z, _ = fun.best()
    np.testing.assert_allclose(z, target, atol=1e-6)


def diverging_beyond_one(z):
    """Not smooth at its minimum (0.9, -0.5); diverged (nan) beyond z0 = 1."""
    if z[0] > 1:
        return np.nan, np.full(2, np.nan)
    d = z - np.array([0.9, -0.5])
    return float(np.sum(np.abs(d) ** 1.5)), 1.5 * np.sign(d) * np.abs(d) ** 0.5


def test_a_failed_doubling_sets_the_radius_and_no_point_is_evaluated_twice():
    # Doubling a step that succeeded crosses into the diverged region; the
    # next step from the new point must not take that failed length again.
    converged, diverged = 0, 0
    for seed in range(20):
        fun = Recorder(diverging_beyond_one)
        minimize_in_box(
            fun, [-3, -3], [3, 3], n_init=5, n_iter=30, tol=1e-10, random_state=seed
        )
        trials = [
            tuple(z)
            for z, d in zip(fun.points, fun.differentiated, strict=True)
            if not d
        ]
        assert len(set(trials)) == len(trials)
        converged += np.linalg.norm(fun.best()[0] - [0.9, -0.5]) < 1e-2
        diverged += sum(z[0] > 1 for z in fun.points[5:])
    # (Doubling the radius instead: 18 converge, after 152 diverged trials.)
    assert converged == 20
    assert diverged < 120


def test_several_dimensions_end_at_a_kink_with_no_tolerance():
    # At the minimum of a kink the gradient never vanishes and every step
    # fails, down to steps below rounding, which are the known point again.
    fun = Recorder(
        lambda z: (
            float(abs(z[0] - 0.5) + abs(z[1] + 0.25)),
            np.array([np.sign(z[0] - 0.5) or 1.0, np.sign(z[1] + 0.25) or 1.0]),
        )
    )
    minimize_in_box(fun, [-1, -1], [1, 1], n_init=5, n_iter=1000, tol=0, random_state=0)
    z, _ = fun.best()
    np.testing.assert_allclose(z, [0.5, -0.25], atol=1e-8)
    # Each run ends, and so do the restarts from the other coarse points,
    # long before the budget.
    assert len(fun.points) < 5 + 500


def kink_and_well(z):
    """A shallow kink (0.3 at a) and, away from it, a deep smooth well (0 at b)."""
    a, b = np.array([0.2, 0.2]), np.array([-0.6, -0.3])
    kink = 0.3 + np.sum(np.abs(z - a))
    well = 10 * np.sum((z - b) ** 2)
    if kink < well:
        return float(kink), np.sign(z - a) + (z == a)
    return float(well), 20 * (z - b)


def test_a_run_stalled_at_a_kink_restarts_from_a_distant_coarse_point():
    fun = Recorder(kink_and_well)
    minimize_in_box(
        fun, [-1, -1], [1, 1], n_init=5, n_iter=200, tol=1e-8, random_state=0
    )
    coarse = fun.points[:5]
    coarse_values = [kink_and_well(z)[0] for z in coarse]
    # The best coarse point is near the kink, where the first run stalls.
    assert coarse_values.index(min(coarse_values)) == 1
    z, value = fun.best()
    np.testing.assert_allclose(z, [-0.6, -0.3], atol=1e-6)
    assert value < 1e-10
    # Runs started at coarse points 1 and 2 only: point 3 has a better point
    # (the kink's run) within the critical distance, and so does every
    # other coarse point once the well is found, where the run converged and
    # the search ended before its budget.
    starts = {
        k
        for k in range(5)
        if any(
            d and np.array_equal(p, coarse[k])
            for p, d in zip(fun.points, fun.differentiated, strict=True)
        )
    }
    assert starts == {1, 2}
    assert len(fun.points) < 5 + 200


def wiggly_bowl(z):
    """A bowl with a minimum 0 at (0.3, -0.2), plus wiggles of up to 1e-3 at
    every scale, whose gradient is as large as it is random: the loss of a
    chaotic training, in miniature (a deterministic function of the point)."""
    draw = np.random.default_rng(zlib.crc32(np.asarray(z, float).tobytes()))
    target = np.array([0.3, -0.2])
    value = np.sum((z - target) ** 2) + 1e-3 * draw.random()
    return float(value), 2 * (z - target) + draw.normal(scale=0.3, size=2)


def test_a_run_stops_chasing_the_wiggles_of_a_rough_loss(monkeypatch):
    counts = {}
    default = _optimize._ROUGHNESS
    for roughness in (default, np.inf):
        monkeypatch.setattr(_optimize, "_ROUGHNESS", roughness)
        counts[roughness] = 0
        for seed in range(5):
            fun = Recorder(wiggly_bowl)
            minimize_in_box(
                fun,
                [-2, -2],
                [2, 2],
                n_init=5,
                n_iter=500,
                tol=1e-10,
                random_state=seed,
            )
            z, value = fun.best()
            # Down to the wiggles either way.
            assert value < 2e-3
            np.testing.assert_allclose(z, [0.3, -0.2], atol=0.05)
            counts[roughness] += len(fun.points)
    # Without the test, each run shrinks its steps to 1e-10 of a cell,
    # evaluating wiggles all the way down.
    assert counts[default] < 0.85 * counts[np.inf]


@pytest.mark.parametrize("fun", [wiggly_bowl, kink_and_well], ids=["wiggly", "kink"])
def test_a_hypergradient_follows_its_points_loss_within_two_evaluations(fun):
    # The MLP folds keep their last two trainings for this: apart from the
    # start of each run (a coarse point), the hypergradient is asked at one
    # of the two points evaluated just before it.
    fun = Recorder(fun)
    minimize_in_box(
        fun, [-1, -1], [1, 1], n_init=5, n_iter=60, tol=1e-8, random_state=0
    )
    coarse = fun.points[:5]
    later = [
        k
        for k in range(5, len(fun.points))
        if fun.differentiated[k]
        and not any(np.array_equal(fun.points[k], z) for z in coarse)
    ]
    assert len(later) >= 3
    for k in later:
        assert any(np.array_equal(fun.points[k], fun.points[j]) for j in (k - 1, k - 2))


def holey_bowl(z):
    """A bowl where 30% of the points fail and 20% of the gradients are NaN
    (a deterministic function of the point)."""
    draw = np.random.default_rng(zlib.crc32(np.asarray(z, float).tobytes()) + 1)
    center = np.random.default_rng(1).uniform(-1, 1, 2)
    value, grad = float(np.sum((z - center) ** 2)), 2 * (z - center)
    if draw.random() < 0.3:
        value = np.nan
    if draw.random() < 0.2:
        grad = grad * np.nan
    return value, grad


def test_a_run_ends_at_the_rounding_of_the_point_with_no_tolerance(monkeypatch):
    # Near the minimum, x + step can round to a point one unit in the last
    # place away, a step as long as twice the radius: halving the radius
    # then leaves it as it was, and the point is known, so no evaluation is
    # spent. The run must end there rather than loop.
    iterations = []
    projected = _optimize._projected

    def counted(*args):
        iterations.append(1)
        if len(iterations) > 100_000:
            raise RuntimeError("the trust region does not end")
        return projected(*args)

    monkeypatch.setattr(_optimize, "_projected", counted)
    fun = Recorder(holey_bowl)
    minimize_in_box(
        fun,
        [-1, -1],
        [1, 1],
        n_init=2,
        n_iter=200,
        tol=0,
        random_state=np.random.RandomState(1),
    )
    assert len(fun.points) <= 2 + 200


def test_a_converged_run_ends_the_search_in_several_dimensions():
    # A smooth bowl: the first run converges, no other starts.
    fun = Recorder(lambda z: (float(np.sum((z - 0.3) ** 2)), 2 * (z - 0.3)))
    minimize_in_box(
        fun, [-4.0, -4.0], [4.0, 4.0], n_init=8, n_iter=500, tol=1e-6, random_state=0
    )
    coarse = fun.points[:8]
    restarted = [
        k
        for k in range(8)
        if any(
            d and np.array_equal(p, coarse[k])
            for p, d in zip(fun.points, fun.differentiated, strict=True)
        )
    ]
    assert len(restarted) == 1 and len(fun.points) < 8 + 100


def test_minimum_on_the_boundary_stays_inside_the_box():
    fun = Recorder(lambda z: (float(z[0]), np.array([1.0])))
    minimize_in_box(fun, [-2.0], [2.0], n_init=5, n_iter=10, tol=1e-8, random_state=0)
    points = np.concatenate(fun.points)
    assert points.min() == -2.0 and points.max() <= 2.0


def test_failed_points_make_the_search_step_back():
    # The loss is undefined (training diverged) beyond z = 1.
    def diverging(z):
        if z[0] > 1:
            return np.nan, np.array([np.nan])
        return float((z[0] - 0.9) ** 2), np.array([2 * (z[0] - 0.9)])

    fun = Recorder(diverging)
    minimize_in_box(fun, [-3.0], [3.0], n_init=4, n_iter=20, tol=1e-10, random_state=0)
    z, _ = fun.best()
    np.testing.assert_allclose(z, [0.9], atol=1e-3)


@pytest.mark.parametrize("n_dims", [1, 2])
def test_stop_search_propagates(n_dims):
    class Stop(Recorder):
        def value_and_grad(self, z):
            raise StopSearch

    with pytest.raises(StopSearch):
        minimize_in_box(
            Stop(lambda z: (float(np.sum(z**2)), 2 * z)),
            [-1.0] * n_dims,
            [1.0] * n_dims,
            n_init=3,
            n_iter=3,
            tol=0,
            random_state=0,
        )


def test_initial_points_cover_each_axis():
    points = initial_points([0, 10], [1, 20], 6, random_state=0)
    assert points.shape == (6, 2)
    # Latin hypercube: one point in each sixth of each axis.
    for axis, (low, high) in enumerate([(0, 1), (10, 20)]):
        bins = np.floor((points[:, axis] - low) / (high - low) * 6)
        assert sorted(bins) == list(range(6))
    np.testing.assert_allclose(initial_points([0], [1], 3, 0)[:, 0], [0, 0.5, 1])


def steep_wall(z):
    """Asymmetric: a steep exponential wall left of the minimum at z = 0.7."""
    z = z[0]
    value = np.exp(-2 * (z - 0.7)) + 2 * (z - 0.7)
    grad = -2 * np.exp(-2 * (z - 0.7)) + 2
    return float(value), np.array([grad])


@pytest.mark.parametrize("n_init", [2, 3, 5, 9])
def test_one_dimension_converges_fast_without_repeating_a_point(n_init):
    fun = Recorder(steep_wall)
    minimize_in_box(
        fun, [-6.0], [6.0], n_init=n_init, n_iter=30, tol=1e-6, random_state=0
    )
    z, value = fun.best()
    # It stops when the next step would gain less than tol / 1000 times the
    # loss (the minimum is 1).
    assert value - 1.0 <= 1e-9
    np.testing.assert_allclose(z, [0.7], atol=1e-4)
    # Superlinear steps inside the bracket: far fewer than the budget.
    assert sum(fun.differentiated) <= 9
    # The gradient phase starts at the best coarse point (its row gets the
    # gradient), then adds the derivative of the coarse point downhill from
    # it (so that the first step interpolates a cubic); every other point is
    # new.
    calls = list(zip(fun.points, fun.differentiated, strict=True))
    differentiated = [float(p[0]) for p, d in calls if d]
    coarse = [float(p[0]) for p, d in calls if not d]
    assert differentiated[0] in coarse
    assert differentiated[1] in coarse
    assert len(set(differentiated)) == len(differentiated)
    assert not set(differentiated[2:]) & set(coarse)


def test_one_dimension_stops_at_the_noise_floor_of_the_gradient():
    # Near the minimum the gradient is rounding noise (an inner solve's
    # tolerance): the search must stop on the step size, not wander.
    rng = np.random.default_rng(0)

    def noisy(z):
        value, grad = steep_wall(z)
        return value, grad + 1e-7 * rng.standard_normal()

    fun = Recorder(noisy)
    minimize_in_box(fun, [-6.0], [6.0], n_init=5, n_iter=50, tol=1e-8, random_state=0)
    z, _ = fun.best()
    np.testing.assert_allclose(z, [0.7], atol=1e-4)
    assert sum(fun.differentiated) < 20


def test_one_dimension_stops_at_a_box_end_where_the_loss_decreases_outwards():
    fun = Recorder(lambda z: (float(z[0]), np.array([1.0])))
    minimize_in_box(fun, [-2.0], [2.0], n_init=5, n_iter=10, tol=1e-8, random_state=0)
    # The best coarse point is the lower end: its gradient says the minimum
    # is outside the box, which is the answer.
    assert sum(fun.differentiated) == 1
    assert fun.points[-1][0] == -2.0


def test_cubic_minimizer_is_exact_for_a_cubic():
    # f(t) = (t - 0.3)^2 (t + 2) on [0, 1] has its minimum at t = 0.3.
    def f(t):
        return (t - 0.3) ** 2 * (t + 2)

    def g(t):
        return 2 * (t - 0.3) * (t + 2) + (t - 0.3) ** 2

    assert _cubic_minimizer(f(0), g(0), f(1), g(1)) == pytest.approx(0.3)
    # A cubic decreasing over [0, 1] has no minimum inside.
    assert _cubic_minimizer(0.0, -1.0, -1.0, -1.0) is None


def test_one_dimension_steps_back_from_a_point_without_a_gradient():
    # A finite loss with a NaN hypergradient (a fold whose derivative failed)
    # cannot be followed: the search treats the point as failed.
    def no_slope_right_of_one(z):
        value, grad = float((z[0] - 0.9) ** 2), np.array([2 * (z[0] - 0.9)])
        return (value, np.array([np.nan])) if z[0] > 1 else (value, grad)

    fun = Recorder(no_slope_right_of_one)
    minimize_in_box(fun, [-3.0], [3.0], n_init=4, n_iter=20, tol=1e-10, random_state=0)
    assert all(np.isfinite(p[0]) for p in fun.points)
    z, _ = fun.best()
    np.testing.assert_allclose(z, [0.9], atol=1e-3)

"""SearchDisplay and plot_search: what is drawn is what the search found."""

import subprocess
import sys

import matplotlib
import numpy as np
import pytest
from scipy.special import logit
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.datasets import load_diabetes
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import (
    DifferentiableModel,
    Fold,
    HypergradSearchCV,
    SearchDisplay,
    Solution,
    cross_val_hypergrad,
    plot_search,
    register_model,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.contour import QuadContourSet  # noqa: E402

from ._numeric import narrow_range  # noqa: E402

CV = KFold(5, shuffle=True, random_state=0)
MSE = "neg_mean_squared_error"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# A model with three continuous hyperparameters, one per search scale, whose
# validation loss is a known function: the paths in the plane and the loss
# grid can be checked exactly, in milliseconds.
class ThreeKnobRegressor(RegressorMixin, BaseEstimator):
    def __init__(self, a=1.0, b=0.0, c=0.5, shift=0.0):
        self.a = a
        self.b = b
        self.c = c
        self.shift = shift

    def fit(self, X, y):
        self.loss_ = three_knob_loss(self.a, self.b, self.c, self.shift)
        return self

    def score(self, X, y):
        return -self.loss_


def three_knob_loss(a, b, c, shift):
    la = np.log(a)
    return (la - 0.5) ** 2 + (b - 1.0) ** 2 + 0.5 * la * b + logit(c) ** 2 + shift


class _ThreeKnobSolution(Solution):
    def __init__(self, fold, params):
        self._fold = fold
        self.params = dict(params)
        self.values = {**fold.estimator.get_params(), **params}
        a, b, c = self.values["a"], self.values["b"], self.values["c"]
        self.loss = float(three_knob_loss(a, b, c, self.values["shift"]) + fold.offset)

    def hypergradient(self, names):
        a, b, c = self.values["a"], self.values["b"], self.values["c"]
        grads = {
            "a": (2 * (np.log(a) - 0.5) + 0.5 * b) / a,
            "b": 2 * (b - 1.0) + 0.5 * np.log(a),
            "c": 2 * logit(c) / (c * (1 - c)),
        }
        return {k: float(grads[k]) for k in names}

    def fitted_estimator(self):
        estimator = self._fold.estimator
        fitted = clone(estimator).set_params(**{k: self.values[k] for k in "abc"})
        fitted.loss_ = self.loss
        return fitted


class _ThreeKnobFold(Fold):
    def __init__(self, estimator, y_val):
        self.estimator = estimator
        # Folds differ a little, as real ones do.
        self.offset = 1e-3 * float(np.mean(y_val))

    def solve(self, params, *, differentiate=False):
        return _ThreeKnobSolution(self, params)


class ThreeKnobModel(DifferentiableModel):
    estimator_class = ThreeKnobRegressor
    hyperparameters = {"a": "log", "b": "linear", "c": "logit"}
    loss_name = "three-knob loss"

    def fold(self, estimator, data):
        return _ThreeKnobFold(estimator, data.y_val)


@pytest.fixture(scope="module")
def three_knob_model():
    """ThreeKnobModel registered for this module's tests only."""
    register_model(ThreeKnobModel())
    yield
    from skhypergrad._models import _REGISTRY

    _REGISTRY.pop(ThreeKnobRegressor)


THREE_KNOB_GRID = {"a": (1e-2, 1e2), "b": (-2.0, 3.0), "c": (0.05, 0.9)}


@pytest.fixture(scope="module")
def diabetes_search():
    X, y = load_diabetes(return_X_y=True)
    search = HypergradSearchCV(
        make_pipeline(StandardScaler(), Ridge()),
        {"ridge__alpha": (1e-4, 1e4), "ridge__fit_intercept": [True, False]},
        scoring=MSE,
        cv=CV,
        n_iter=6,
    ).fit(X, y)
    return search, X, y


@pytest.fixture(scope="module")
def three_knob_search(three_knob_model):
    X, y = load_diabetes(return_X_y=True)
    search = HypergradSearchCV(
        ThreeKnobRegressor(),
        {**THREE_KNOB_GRID, "shift": [0.0, 1.0]},
        cv=3,
        n_init=6,
        n_iter=8,
        random_state=0,
    ).fit(X, y)
    return search, X, y


def _rows(results, search_id):
    rows = np.flatnonzero(results["search_id"] == search_id)
    return rows[np.argsort(results["outer_iter"][rows])]


def test_lines_are_the_cv_results_columns(diabetes_search):
    search, _, _ = diabetes_search
    results = search.cv_results_
    display = plot_search(search)

    assert isinstance(display, SearchDisplay)
    search_ids = np.unique(results["search_id"])
    assert len(display.lines_) == len(search_ids) == 2
    assert len(display.path_lines_) == 2
    alpha = results["param_ridge__alpha"].astype(float)
    for k, sid in enumerate(search_ids):
        rows = _rows(results, sid)
        loss = results["cv_loss"][rows]
        # Left: each evaluation as a faint marker, the best loss so far as
        # a step line.
        markers = display.evaluation_markers_[k]
        np.testing.assert_array_equal(markers.get_xdata(), results["outer_iter"][rows])
        np.testing.assert_array_equal(markers.get_ydata(), loss)
        assert markers.get_linestyle() == "None" and markers.get_alpha() < 1
        line = display.lines_[k]
        np.testing.assert_array_equal(line.get_xdata(), results["outer_iter"][rows])
        np.testing.assert_array_equal(line.get_ydata(), np.minimum.accumulate(loss))
        assert line.get_drawstyle() == "steps-post"
        # Right: the n_init=5 coarse points apart, then the points of the
        # gradient phase, as markers: no line through them in the order
        # they were evaluated.
        coarse, gradient = rows[:5], rows[5:]
        markers = display.coarse_markers_[k]
        np.testing.assert_array_equal(markers.get_xdata(), alpha[coarse])
        np.testing.assert_array_equal(markers.get_ydata(), results["cv_loss"][coarse])
        path = display.path_lines_[k]
        np.testing.assert_array_equal(path.get_xdata(), alpha[gradient])
        np.testing.assert_array_equal(path.get_ydata(), results["cv_loss"][gradient])
        assert path.get_linestyle() == "None" and path.get_marker() == "o"
    assert display.incumbent_lines_ == []
    np.testing.assert_array_equal(display.search_ids_, search_ids)
    np.testing.assert_array_equal(display.path_search_ids_, search_ids)

    best = search.best_index_
    left, right = display.best_markers_
    assert left.get_xdata()[0] == results["outer_iter"][best]
    assert left.get_ydata()[0] == results["cv_loss"][best]
    assert right.get_xdata()[0] == search.best_params_["ridge__alpha"]
    assert right.get_ydata()[0] == results["cv_loss"][best]


def test_axes_scales_labels_and_legend(diabetes_search):
    search, _, _ = diabetes_search
    display = SearchDisplay.from_estimator(search)

    assert display.ax_.shape == (2,)
    ax_iter, ax_path = display.ax_
    assert display.figure_ is ax_iter.figure is ax_path.figure
    assert ax_iter.get_xscale() == "linear"
    assert ax_path.get_xscale() == "log"
    assert ax_iter.get_xlabel() == "evaluation (outer_iter)"
    assert ax_iter.get_ylabel() == "CV loss (mean squared error)"
    assert ax_path.get_xlabel() == "ridge__alpha"
    assert ax_path.get_ylabel() == "CV loss (mean squared error)"
    # One colour per discrete candidate, named in the legends; the candidate
    # whose every point is far above the best one says so.
    worse = min(search.cv_results_["cv_loss"][search.cv_results_["search_id"] == 1])
    above = f"ridge__fit_intercept=False (best {worse:.4g}, above the axis)"
    legend = [t.get_text() for t in ax_path.get_legend().get_texts()]
    assert legend == [
        "coarse pass",
        "ridge__fit_intercept=True",
        above,
        "best_params_",
        "beyond the loss axis",
    ]
    legend = [t.get_text() for t in ax_iter.get_legend().get_texts()]
    assert legend == [
        "each evaluation",
        "ridge__fit_intercept=True",
        above,
        "end of the coarse pass",
        "best_params_",
        "beyond the loss axis",
    ]
    assert [line.get_color() for line in display.lines_] == ["C0", "C1"]
    assert [line.get_color() for line in display.path_lines_] == ["C0", "C1"]
    # The coarse pass of n_init=5 points ends between iterations 4 and 5.
    np.testing.assert_array_equal(display.coarse_line_.get_xdata(), [4.5, 4.5])
    assert display.grid_line_ is None and display.contour_ is None


def _clipped(display, ax):
    """The (x, cv_loss) of the points drawn on the edges of ``ax``, and where.

    The edges are in axes coordinates: 1.0 is the top, 0.0 the bottom.
    """
    markers = [m for m in display.clipped_markers_ if m.axes is ax]
    if not markers:
        return np.empty((0, 2)), set()
    points = np.concatenate([m.points_ for m in markers])
    return points, {float(v) for m in markers for v in m.get_ydata()}


def test_loss_axes_show_the_minimum_and_mark_what_they_clip(diabetes_search):
    search, X, y = diabetes_search
    results = search.cv_results_
    loss = results["cv_loss"]
    alpha = results["param_ridge__alpha"].astype(float)
    best = search.best_index_
    display = plot_search(search, X, y, loss_grid=20)
    ax_iter, ax_path = display.ax_

    # Right: the axis starts just under the lowest loss and spans the points
    # of the best search within a quarter of the range (two decades of
    # alpha's eight) of the best point; the far end of the range, 1e4, where
    # the loss is twice the minimum, is beyond it.
    low, high = display.loss_lim_
    assert ax_path.get_ylim() == pytest.approx((low, high))
    assert low < loss.min() < low + 0.1 * (high - low)
    best_search = results["search_id"] == results["search_id"][best]
    near = best_search & (np.abs(np.log10(alpha / alpha[best])) <= 2)
    assert loss[near].max() < high
    assert high < 0.2 * loss[best_search].max() + 0.8 * loss.min()
    # Every point above the axis is drawn on its top edge, in its search's
    # colour, and no point within it is.
    points, edges = _clipped(display, ax_path)
    above = loss > high
    assert above.sum() == len(points) > 0 and edges == {1.0}
    np.testing.assert_array_equal(np.sort(points[:, 1]), np.sort(loss[above]))
    assert alpha[best_search & (alpha == 1e4)] in points[:, 0]
    # Every point of fit_intercept=False is far above: all are on the edge.
    assert (loss[results["search_id"] == 1] > high).all()
    colors = {m.get_color() for m in display.clipped_markers_ if m.axes is ax_path}
    assert colors == {"C0", "C1"}
    assert all(not m.get_clip_on() for m in display.clipped_markers_)

    # Left: from the lowest loss to the best losses so far but for the
    # first few; the evaluations above it are on the edge too.
    low, high = display.history_lim_
    assert ax_iter.get_ylim() == pytest.approx((low, high))
    running = np.minimum.accumulate(loss[_rows(results, 0)])
    assert low < running[-1] and np.quantile(running, 0.9) < high
    points, edges = _clipped(display, ax_iter)
    assert len(points) == (loss > high).sum() and edges == {1.0}


def test_the_gradient_phase_is_drawn_over_the_best_point(diabetes_search):
    search, _, _ = diabetes_search
    display = plot_search(search)
    for markers in display.best_markers_:
        assert all(
            line.get_zorder() > markers.get_zorder() for line in display.path_lines_
        )
        assert all(line.get_zorder() > markers.get_zorder() for line in display.lines_)
    # The best point is the last point of its gradient phase, drawn on top.
    best = search.best_index_
    x, loss = display.best_markers_[1].get_xydata()[0]
    assert (x, loss) in set(map(tuple, display.path_lines_[0].get_xydata()))
    assert loss == search.cv_results_["cv_loss"][best]


def test_loss_lim_none_shows_every_point_and_a_pair_sets_both(diabetes_search):
    search, _, _ = diabetes_search
    loss = search.cv_results_["cv_loss"]
    display = plot_search(search, loss_lim=None)
    assert display.loss_lim_ is None and display.history_lim_ is None
    assert display.clipped_markers_ == []
    for ax in display.ax_:
        low, high = ax.get_ylim()
        assert low <= loss.min() and loss.max() <= high

    display = plot_search(search, loss_lim=(2900, 3100))
    assert display.loss_lim_ == display.history_lim_ == (2900.0, 3100.0)
    assert [ax.get_ylim() for ax in display.ax_] == [(2900, 3100)] * 2
    points, edges = _clipped(display, display.ax_[1])
    assert len(points) == (loss > 3100).sum() and edges == {1.0}
    display = plot_search(search, loss_lim=(3000, 3100))
    points, edges = _clipped(display, display.ax_[1])
    assert edges == {0.0, 1.0}
    assert len(points) == ((loss > 3100) | (loss < 3000)).sum()


def test_loss_grid_one_hyperparameter_is_cross_val_hypergrad(diabetes_search):
    search, X, y = diabetes_search
    display = plot_search(search, X, y, loss_grid=4)

    # Computed at the discrete point of the best search_id, over its range.
    assert search.best_params_["ridge__fit_intercept"] is True
    alphas = np.geomspace(1e-4, 1e4, 4)
    np.testing.assert_allclose(display.grid_line_.get_xdata(), alphas)
    expected = [
        cross_val_hypergrad(search.estimator, X, y, params={"ridge__alpha": a}, cv=CV)[
            0
        ]
        for a in alphas
    ]
    np.testing.assert_allclose(display.grid_line_.get_ydata(), expected, rtol=1e-10)
    # Same folds, same function: the grid passes through the coarse points.
    rows = _rows(search.cv_results_, 0)[:5]
    np.testing.assert_allclose(
        display.grid_line_.get_ydata()[[0, -1]],
        search.cv_results_["cv_loss"][rows[[0, -1]]],
        rtol=1e-10,
    )
    assert display.contour_ is None


def test_loss_grid_at_another_search_id(diabetes_search):
    search, X, y = diabetes_search
    display = plot_search(search, X, y, loss_grid=3, search_id=1)
    expected = cross_val_hypergrad(
        make_pipeline(StandardScaler(), Ridge(fit_intercept=False)),
        X,
        y,
        params={"ridge__alpha": 1.0},
        cv=CV,
    )[0]
    assert display.grid_line_.get_ydata()[1] == pytest.approx(expected, rel=1e-10)
    assert "ridge__fit_intercept=False" in display.grid_line_.get_label()


def test_two_hyperparameters_path_in_the_plane_and_contour(three_knob_search):
    search, X, y = three_knob_search
    results = search.cv_results_
    display = plot_search(search, X, y, params=["a", "b"], loss_grid=7)

    assert len(display.lines_) == 2
    for k, sid in enumerate(np.unique(results["search_id"])):
        rows = _rows(results, sid)
        points = np.c_[display.coarse_markers_[k].get_xydata()]
        np.testing.assert_array_equal(
            points, np.c_[results["param_a"][rows[:6]], results["param_b"][rows[:6]]]
        )
        path = display.path_lines_[k].get_xydata()
        np.testing.assert_array_equal(
            path, np.c_[results["param_a"][rows[6:]], results["param_b"][rows[6:]]]
        )
        assert display.path_lines_[k].get_linestyle() == "None"
        # The thin line goes through the successive best points, from the
        # best coarse one: its losses decrease.
        start = rows[np.argmin(results["cv_loss"][rows[:6]])]
        steps = display.incumbent_lines_[k].get_xydata()
        np.testing.assert_array_equal(
            steps[0], [results["param_a"][start], results["param_b"][start]]
        )
        point_rows = [
            rows[(results["param_a"][rows] == a) & (results["param_b"][rows] == b)]
            for a, b in steps
        ]
        losses = [results["cv_loss"][r].min() for r in point_rows]
        assert np.all(np.diff(losses) < 0)
        assert losses[-1] == results["cv_loss"][rows].min()
    ax_path = display.ax_[1]
    assert (ax_path.get_xscale(), ax_path.get_yscale()) == ("log", "linear")
    assert (ax_path.get_xlabel(), ax_path.get_ylabel()) == ("a", "b")

    assert display.grid_line_ is None
    assert isinstance(display.contour_, QuadContourSet)
    assert display.contour_.axes is ax_path
    assert display.colorbar_ is not None
    # The grid is the loss of the best search's discrete point, with c held
    # at its best value, on the grid of the ranges.
    a_values, b_values = display.grid_values
    np.testing.assert_allclose(a_values, np.geomspace(1e-2, 1e2, 7))
    np.testing.assert_allclose(b_values, np.linspace(-2.0, 3.0, 7))
    best_c, shift = search.best_params_["c"], search.best_params_["shift"]
    expected = three_knob_loss(a_values[:, None], b_values[None, :], best_c, shift)
    offsets = np.mean([1e-3 * y[test].mean() for _, test in KFold(3).split(X)])
    np.testing.assert_allclose(display.grid_loss, expected + offsets, rtol=1e-12)
    # The colour scale shows the loss near the best point: its levels run
    # from the lowest loss, and the higher grid values get the top colour.
    low, high = display.loss_lim_
    levels = display.contour_.levels
    assert levels[0] == pytest.approx(low) and levels[-1] == pytest.approx(high)
    assert low < results["cv_loss"].min() < high
    assert display.contour_.extend in ("max", "neither")
    if display.grid_loss.max() > high:
        assert display.contour_.extend == "max"
    best = search.best_index_
    assert display.best_markers_[1].get_xdata()[0] == results["param_a"][best]
    assert display.best_markers_[1].get_ydata()[0] == results["param_b"][best]


def test_logit_scale_and_scale_override(three_knob_search, diabetes_search):
    search, _, _ = three_knob_search
    display = plot_search(search, params="c")
    assert display.ax_[1].get_xscale() == "logit"
    display = plot_search(search, params=["b", "a"])
    assert (display.ax_[1].get_xscale(), display.ax_[1].get_yscale()) == (
        "linear",
        "log",
    )

    search, _, _ = diabetes_search
    display = plot_search(search, scales={"ridge__alpha": "linear"})
    assert display.ax_[1].get_xscale() == "linear"


def test_given_axes_and_restyling(diabetes_search):
    search, _, _ = diabetes_search
    fig, axes = plt.subplots(2, 1)
    display = plot_search(
        search,
        ax=axes,
        line_kw={"color": "black", "linestyle": "--"},
        path_kw={"marker": "s"},
        best_kw={"color": "gold"},
    )
    assert display.figure_ is fig
    assert list(display.ax_) == list(axes)
    assert all(line.get_color() == "black" for line in display.lines_)
    assert all(line.get_linestyle() == "--" for line in display.lines_)
    assert all(line.get_marker() == "s" for line in display.path_lines_)
    assert all(m.get_color() == "gold" for m in display.best_markers_)
    # Restyled after the fact through the stored artists.
    display.lines_[0].set_linewidth(4)
    (line,) = [li for li in display.ax_[0].get_lines() if li is display.lines_[0]]
    assert line.get_linewidth() == 4


def test_display_from_its_data_alone(diabetes_search):
    search, _, _ = diabetes_search
    results = search.cv_results_
    display = SearchDisplay(
        cv_results=results, params=["ridge__alpha"], scales={"ridge__alpha": "log"}
    ).plot()
    # Without best_index, the lowest cv_loss is marked; without n_init,
    # every point is drawn alike, and no coarse pass is drawn.
    best = np.argmin(results["cv_loss"])
    assert display.best_markers_[0].get_ydata()[0] == results["cv_loss"][best]
    assert display.coarse_line_ is None and display.coarse_markers_ == []
    rows = _rows(results, 0)
    np.testing.assert_array_equal(
        display.path_lines_[0].get_xdata(),
        results["param_ridge__alpha"][rows].astype(float),
    )
    assert display.ax_[0].get_ylabel() == "CV loss"
    assert display.ax_[1].get_xscale() == "log"
    assert display.path_lines_[0].get_label() == "ridge__fit_intercept=True"


# Two iterations from the coarse points stop short of the best alpha, below
# the range on the raw diabetes data: the search says so, as it should.
@narrow_range
def test_a_list_of_dicts_draws_paths_of_the_searches_that_searched(diabetes_search):
    X, y = load_diabetes(return_X_y=True)
    search = HypergradSearchCV(
        Ridge(),
        [{"alpha": (1e-2, 1e2)}, {"alpha": [1.0], "fit_intercept": [False]}],
        cv=3,
        n_iter=2,
    ).fit(X, y)
    display = plot_search(search)
    assert len(display.lines_) == 2
    np.testing.assert_array_equal(display.path_search_ids_, [0])
    with pytest.raises(ValueError, match="search 1 did not search 'alpha'"):
        plot_search(search, X, y, loss_grid=3, search_id=1)


def test_failed_grid_points_are_left_blank(diabetes_search, monkeypatch):
    search, X, y = diabetes_search
    from skhypergrad._models._ridge import _RidgeFold

    solve = _RidgeFold.solve

    def failing(self, params, **kwargs):
        if params["alpha"] > 1e3:
            raise FloatingPointError("The training diverged")
        return solve(self, params, **kwargs)

    monkeypatch.setattr(_RidgeFold, "solve", failing)
    with pytest.warns(UserWarning, match="1 of 3 grid points.*diverged"):
        display = plot_search(search, X, y, loss_grid=3)
    ydata = display.grid_line_.get_ydata()
    assert np.isfinite(ydata[:2]).all() and np.isnan(ydata[2])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"params": "ridge__fit_intercept"}, ValueError, "was not searched contin"),
        ({"params": ["ridge__alpha"] * 2}, ValueError, "one or two distinct"),
        ({"loss_grid": 5}, ValueError, "pass the X and y"),
        ({"loss_grid": 1, "X": 0, "y": 0}, ValueError, "integer of at least 2"),
        ({"loss_grid": 3, "search_id": 7, "X": 0, "y": 0}, ValueError, "between 0"),
        ({"ax": [None, None, None]}, ValueError, "sequence of two matplotlib Axes"),
        ({"scales": {"ridge__alpha": "sqrt"}}, ValueError, "must be one of"),
        ({"loss_lim": "tight"}, ValueError, "loss_lim must be 'auto', None or"),
        ({"loss_lim": (3.0, 1.0)}, ValueError, "with low < high"),
        ({"loss_lim": 3.0}, ValueError, "with low < high"),
    ],
)
def test_bad_arguments(diabetes_search, kwargs, error, match):
    search, _, _ = diabetes_search
    with pytest.raises(error, match=match):
        plot_search(search, **kwargs)


def test_more_than_two_hyperparameters_must_be_chosen(three_knob_search):
    search, _, _ = three_knob_search
    with pytest.raises(ValueError, match=r"3 continuous hyperparameters.*one or two"):
        plot_search(search)


def test_not_a_fitted_hypergrad_search():
    X, y = load_diabetes(return_X_y=True)
    with pytest.raises(NotFittedError):
        plot_search(HypergradSearchCV(Ridge(), {"alpha": (1.0, 2.0)}))
    grid = GridSearchCV(Ridge(), {"alpha": [1.0, 2.0]}, cv=2).fit(X, y)
    with pytest.raises(ValueError, match="no column 'search_id'.*GridSearchCV"):
        SearchDisplay.from_estimator(grid)
    search = HypergradSearchCV(Ridge(), {"alpha": [1.0]}, cv=2).fit(X, y)
    with pytest.raises(ValueError, match="no continuous hyperparameter"):
        plot_search(search)


@pytest.mark.parametrize(
    "draw, caller",
    [
        (lambda s: plot_search(s), "plot_search"),
        (lambda s: SearchDisplay.from_estimator(s), "SearchDisplay.from_estimator"),
        (
            lambda s: SearchDisplay(
                cv_results=s.cv_results_, params=["ridge__alpha"]
            ).plot(),
            "SearchDisplay.plot",
        ),
    ],
)
def test_missing_matplotlib_names_the_extra(diabetes_search, monkeypatch, draw, caller):
    search, _, _ = diabetes_search
    # A None entry makes `import matplotlib` raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError) as excinfo:
        draw(search)
    assert str(excinfo.value) == (
        f"{caller} requires matplotlib: pip install matplotlib, or install "
        'skhypergrad with its plot extra (pip install ".[plot]" in a checkout)'
    )


def test_importing_skhypergrad_does_not_import_matplotlib():
    code = "import sys, skhypergrad; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

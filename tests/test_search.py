"""HypergradSearchCV's contract: GridSearchCV's interface and numbers."""

import re
import warnings

import numpy as np
import pytest
import sklearn
from scipy.stats import loguniform, norm, uniform
from sklearn.base import clone
from sklearn.datasets import load_iris, load_linnerud, make_regression
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning, NotFittedError
from sklearn.linear_model import Lasso, LogisticRegression, Ridge
from sklearn.metrics import make_scorer, mean_squared_error
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    cross_val_score,
)
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV, SearchState, cross_val_hypergrad

from ._numeric import central_difference, narrow_range, short_trainings
from ._versions import numpy_at_least, requires_sklearn

CV = KFold(5, shuffle=True, random_state=0)
MSE = "neg_mean_squared_error"


def _grid_score_at(search, estimator, X, y, **kwargs):
    """GridSearchCV's best_score_ at the search's best_params_."""
    grid = GridSearchCV(
        estimator,
        {k: [v] for k, v in search.best_params_.items()},
        scoring=search.scoring,
        cv=search.cv,
        refit=search.refit,
        **kwargs,
    ).fit(X, y)
    return grid


@pytest.mark.parametrize(
    "estimator, param_grid",
    [
        (Ridge(), {"alpha": (1e-4, 1e4)}),
        (
            make_pipeline(StandardScaler(), Ridge()),
            {"ridge__alpha": (1e-4, 1e4), "ridge__fit_intercept": [True, False]},
        ),
    ],
)
@pytest.mark.parametrize("scoring", [MSE, "r2", None])
def test_best_score_matches_grid_search_at_best_params(
    diabetes, estimator, param_grid, scoring
):
    X, y = diabetes
    search = HypergradSearchCV(estimator, param_grid, scoring=scoring, cv=CV).fit(X, y)
    grid = _grid_score_at(search, estimator, X, y)
    np.testing.assert_allclose(search.best_score_, grid.best_score_, rtol=1e-8)
    for k in range(CV.get_n_splits()):
        key = f"split{k}_test_score"
        np.testing.assert_allclose(
            search.cv_results_[key][search.best_index_],
            grid.cv_results_[key][0],
            rtol=1e-8,
        )


def test_finds_at_least_the_fine_grid_optimum(diabetes):
    X, y = diabetes
    estimator = make_pipeline(StandardScaler(), Ridge())
    search = HypergradSearchCV(
        estimator, {"ridge__alpha": (1e-4, 1e4)}, scoring=MSE, cv=CV
    ).fit(X, y)
    grid = GridSearchCV(
        estimator, {"ridge__alpha": np.logspace(-4, 4, 100)}, scoring=MSE, cv=CV
    ).fit(X, y)
    assert search.best_score_ >= grid.best_score_ - 1e-9 * abs(grid.best_score_)
    assert len(search.cv_results_["params"]) < 30


def test_cv_results_has_grid_search_keys_and_its_own(diabetes):
    X, y = diabetes
    param_grid = {"ridge__alpha": (1e-3, 1e3), "ridge__fit_intercept": [True, False]}
    estimator = make_pipeline(StandardScaler(), Ridge())
    search = HypergradSearchCV(
        estimator, param_grid, cv=3, return_train_score=True, n_iter=4
    ).fit(X, y)
    grid = GridSearchCV(
        estimator,
        {"ridge__alpha": [1.0], "ridge__fit_intercept": [True, False]},
        cv=3,
        return_train_score=True,
    ).fit(X, y)

    results = search.cv_results_
    assert set(grid.cv_results_) <= set(results)
    own = set(results) - set(grid.cv_results_)
    assert own == {
        "search_id",
        "outer_iter",
        "cv_loss",
        "solved_exactly",
        "hypergrad_ridge__alpha",
    }
    n_points = len(results["params"])
    for key, value in results.items():
        assert len(value) == n_points, key
    assert isinstance(results["param_ridge__alpha"], np.ma.MaskedArray)
    assert set(results["search_id"]) == {0, 1}
    # The coarse pass (the first n_init=5 points of each search) computes the
    # loss alone; the gradient phase differentiates it, starting at the best
    # coarse point, whose row gets the hypergradient, then at the coarse
    # point downhill from it (a neighbour, so that the first step
    # interpolates a cubic): no point is repeated.
    coarse = results["outer_iter"] < 5
    hypergrads = results["hypergrad_ridge__alpha"]
    for search_id in (0, 1):
        rows = np.flatnonzero(coarse & (results["search_id"] == search_id))
        best = rows[np.argmin(results["cv_loss"][rows])]
        assert np.isfinite(hypergrads[best])
        others = rows[rows != best]
        differentiated = others[np.isfinite(hypergrads[others])]
        assert len(differentiated) <= 1
        alphas = results["param_ridge__alpha"]
        order = list(np.argsort(alphas[rows].astype(float)))
        for row in differentiated:
            position = order.index(list(rows).index(row))
            assert abs(position - order.index(list(rows).index(best))) == 1
    assert np.all(np.isfinite(hypergrads[~coarse]))
    assert np.any(~coarse)
    for search_id in (0, 1):
        alphas = results["param_ridge__alpha"][results["search_id"] == search_id]
        assert len(set(alphas)) == len(alphas)
    # The differentiated loss is the validation MSE the scorer would report.
    mse = [
        -cross_val_score(
            clone(estimator).set_params(**p), X, y, cv=3, scoring=MSE
        ).mean()
        for p in results["params"][:3]
    ]
    np.testing.assert_allclose(results["cv_loss"][:3], mse, rtol=1e-8)


def test_fitted_attributes_and_delegation(diabetes):
    X, y = diabetes
    search = HypergradSearchCV(
        make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": [1e-3, 10.0, 1e3]}
    ).fit(X, y)
    best_alpha = search.best_params_["ridge__alpha"]
    assert type(best_alpha) is float
    assert 1e-3 <= best_alpha <= 1e3
    assert isinstance(search.best_estimator_, Pipeline)
    reference = make_pipeline(StandardScaler(), Ridge(alpha=best_alpha)).fit(X, y)
    np.testing.assert_allclose(search.predict(X), reference.predict(X))
    np.testing.assert_allclose(search.score(X, y), reference.score(X, y))
    np.testing.assert_allclose(
        search.transform(X[:5]) if hasattr(search, "transform") else 0, 0
    )
    assert search.n_features_in_ == X.shape[1]
    assert search.n_splits_ == 5
    assert search.refit_time_ >= 0
    assert search.multimetric_ is False
    assert callable(search.scorer_)


@narrow_range
def test_feature_names_are_kept(diabetes):
    pd = pytest.importorskip("pandas")
    X, y = diabetes
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    search = HypergradSearchCV(Ridge(), {"alpha": (0.1, 10.0)}, n_iter=2).fit(frame, y)
    np.testing.assert_array_equal(search.feature_names_in_, frame.columns)


@narrow_range
def test_refit_false_and_callable_refit(diabetes):
    X, y = diabetes
    search = HypergradSearchCV(Ridge(), {"alpha": (1e-2, 1e2)}, refit=False, n_iter=3)
    search.fit(X, y)
    assert not hasattr(search, "best_estimator_")
    with pytest.raises(AttributeError) as error:
        search.predict(X)
    assert "refit=False" in str(error.value.__cause__)

    search = HypergradSearchCV(
        Ridge(), {"alpha": (1e-2, 1e2)}, refit=lambda results: 0, n_iter=3
    ).fit(X, y)
    assert search.best_index_ == 0
    assert not hasattr(search, "best_score_")


def test_multimetric_scoring(diabetes):
    X, y = diabetes
    scoring = {"mse": MSE, "r2": "r2"}
    search = HypergradSearchCV(
        Ridge(), {"alpha": (1e-3, 1e3)}, scoring=scoring, refit="mse", cv=CV
    ).fit(X, y)
    assert search.multimetric_
    assert {"mean_test_mse", "mean_test_r2", "rank_test_mse"} <= set(search.cv_results_)
    grid = GridSearchCV(
        Ridge(),
        {"alpha": [search.best_params_["alpha"]]},
        scoring=scoring,
        refit="mse",
        cv=CV,
    ).fit(X, y)
    np.testing.assert_allclose(search.best_score_, grid.best_score_, rtol=1e-8)

    with pytest.raises(ValueError, match="For multi-metric scoring"):
        HypergradSearchCV(Ridge(), {"alpha": (1, 2)}, scoring=scoring).fit(X, y)


@narrow_range
def test_two_dimensional_target():
    X, y = load_linnerud(return_X_y=True)
    cv = KFold(4)
    search = HypergradSearchCV(Ridge(), {"alpha": (1e-2, 1e4)}, scoring=MSE, cv=cv)
    search.fit(X, y)
    grid = _grid_score_at(search, Ridge(), X, y)
    np.testing.assert_allclose(search.best_score_, grid.best_score_, rtol=1e-8)
    assert search.predict(X).shape == y.shape


@pytest.mark.parametrize(
    "value",
    [(1e-3, 1e3), loguniform(1e-3, 1e3), uniform(1e-3, 1e3 - 1e-3)],
    ids=["tuple", "loguniform", "uniform"],
)
def test_range_forms_define_the_same_range(diabetes, value):
    X, y = diabetes
    search = HypergradSearchCV(Ridge(), {"alpha": value}, n_iter=0, n_init=3).fit(X, y)
    alphas = search.cv_results_["param_alpha"].astype(float)
    np.testing.assert_allclose(alphas, [1e-3, 1.0, 1e3], rtol=1e-10)


@pytest.mark.parametrize(
    "value",
    [
        [1e-3, 0.1, 10.0, 1e3],
        [1e3, 0.1, 1e-3, 10.0, 0.1],
        np.array([1e-3, 0.1, 10.0, 1e3]),
    ],
    ids=["list", "unsorted-list-with-duplicates", "array"],
)
def test_listed_values_are_evaluated_exactly_then_refined(diabetes, value):
    X, y = diabetes
    search = HypergradSearchCV(
        Ridge(), {"alpha": value}, scoring="neg_mean_squared_error", cv=CV
    ).fit(X, y)
    alphas = list(search.cv_results_["param_alpha"])
    # The listed values first, exactly, in their order (each once), in the
    # coarse pass; then the gradient phase, inside their range.
    listed = list(dict.fromkeys(np.asarray(value).tolist()))
    assert alphas[: len(listed)] == listed
    assert all(1e-3 <= a <= 1e3 for a in alphas)
    grid = GridSearchCV(Ridge(), {"alpha": listed}, scoring=MSE, cv=CV).fit(X, y)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"][: len(listed)],
        grid.cv_results_["mean_test_score"],
        rtol=1e-9,
    )
    assert search.best_score_ >= grid.best_score_


def test_a_2d_array_is_refused_as_grid_search_refuses_it(diabetes):
    X, y = diabetes
    with pytest.raises(ValueError, match="should be one-dimensional"):
        HypergradSearchCV(
            Ridge(), {"alpha": np.array([[0.1, 1.0], [10.0, 100.0]])}
        ).fit(X, y)


def test_a_range_object_is_a_list_of_values(diabetes):
    X, y = diabetes
    search = HypergradSearchCV(Ridge(), {"alpha": range(1, 4)}, n_iter=0, cv=CV)
    search.fit(X, y)
    assert list(search.cv_results_["param_alpha"]) == [1.0, 2.0, 3.0]


def test_discrete_values_are_enumerated_like_grid_search(diabetes):
    X, y = diabetes
    param_grid = [
        {"alpha": [2.5], "fit_intercept": [True, False]},
        {"alpha": (1e-2, 1e2), "fit_intercept": [False], "tol": [1e-4, 1e-3]},
    ]
    search = HypergradSearchCV(Ridge(), param_grid, n_iter=2, n_init=2).fit(X, y)
    params = search.cv_results_["params"]
    assert params[0] == {"alpha": 2.5, "fit_intercept": True}
    assert params[1] == {"alpha": 2.5, "fit_intercept": False}
    # Points with no range are fitted and scored by scikit-learn, exactly as
    # GridSearchCV does; they have no differentiable loss.
    grid = GridSearchCV(Ridge(), param_grid[0]).fit(X, y)
    for key in ("mean_test_score", "split0_test_score", "split4_test_score"):
        np.testing.assert_array_equal(
            search.cv_results_[key][:2], grid.cv_results_[key]
        )
    assert np.isnan(search.cv_results_["cv_loss"][:2]).all()
    # tol is not differentiable: its two values are enumerated, and alpha is
    # searched at each.
    tols = {p["tol"] for p in params[2:]}
    assert tols == {1e-4, 1e-3}
    assert all(1e-2 <= p["alpha"] <= 1e2 for p in params[2:])
    assert set(search.cv_results_["search_id"]) == {0, 1, 2, 3}
    # No hypergradient where alpha is fixed; in the coarse passes, only at
    # their best points, where the gradient phase starts.
    hypergrads = search.cv_results_["hypergrad_alpha"]
    search_ids = search.cv_results_["search_id"]
    assert not np.any(np.isfinite(hypergrads[search_ids < 2]))
    for search_id in (2, 3):
        rows = np.flatnonzero(search_ids == search_id)
        assert np.all(np.isfinite(hypergrads[rows[2:]]))
        best = rows[np.argmin(search.cv_results_["cv_loss"][rows[:2]])]
        assert np.isfinite(hypergrads[best])


def test_folds_are_split_once(diabetes):
    X, y = diabetes

    class CountingKFold(KFold):
        calls = 0

        def split(self, X, y=None, groups=None):
            CountingKFold.calls += 1
            return super().split(X, y, groups)

    # A shuffling splitter without a seed: new folds at each split call.
    cv = CountingKFold(5, shuffle=True)
    search = HypergradSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=cv, scoring=MSE)
    search.fit(X, y)
    assert CountingKFold.calls == 1
    # The same point, evaluated twice on the same folds, scores the same.
    results = search.cv_results_
    alphas = results["param_alpha"].astype(float)
    _, first = np.unique(alphas, return_index=True)
    assert (
        len(first) == len(alphas)
        or np.ptp(results["mean_test_score"][alphas == alphas[first[0]]]) == 0
    )


def test_groups_reach_the_splitter(diabetes):
    X, y = diabetes
    groups = np.arange(len(y)) % 4
    search = HypergradSearchCV(
        Ridge(), {"alpha": (1e-2, 1e2)}, cv=GroupKFold(4), scoring=MSE
    )
    search.fit(X, y, groups=groups)
    grid = GridSearchCV(
        Ridge(),
        {"alpha": [search.best_params_["alpha"]]},
        cv=GroupKFold(4),
        scoring=MSE,
    ).fit(X, y, groups=groups)
    np.testing.assert_allclose(search.best_score_, grid.best_score_, rtol=1e-8)


def test_sample_weight_reaches_the_model(diabetes):
    X, y = diabetes
    weights = np.random.RandomState(0).uniform(0.1, 3, len(y))
    estimator = make_pipeline(StandardScaler(), Ridge())
    search = HypergradSearchCV(
        estimator, {"ridge__alpha": (1e-2, 1e2)}, cv=CV, scoring=MSE
    )
    search.fit(X, y, ridge__sample_weight=weights)
    grid = _grid_score_at(search, estimator, X, y)
    grid.fit(X, y, ridge__sample_weight=weights)
    np.testing.assert_allclose(search.best_score_, grid.best_score_, rtol=1e-8)


def test_n_jobs_gives_the_same_results(diabetes):
    X, y = diabetes
    param_grid = {"alpha": (1e-3, 1e3), "fit_intercept": [True, False]}
    one = HypergradSearchCV(Ridge(), param_grid, cv=CV).fit(X, y)
    two = HypergradSearchCV(Ridge(), param_grid, cv=CV, n_jobs=2).fit(X, y)
    scores = one.cv_results_["mean_test_score"], two.cv_results_["mean_test_score"]
    if numpy_at_least("1.25"):
        np.testing.assert_array_equal(*scores)
        assert one.best_params_ == two.best_params_
    else:
        # joblib's workers run BLAS on fewer threads than this process, and
        # the OpenBLAS in NumPy < 1.25's wheels (0.3.20 in 1.23, 0.3.21 in
        # 1.24) then rounds some products differently, in the last bits,
        # which the gradient steps carry into the best alpha.
        np.testing.assert_allclose(*scores, rtol=1e-12)
        best = one.best_params_, two.best_params_
        assert best[0]["fit_intercept"] == best[1]["fit_intercept"]
        assert best[0]["alpha"] == pytest.approx(best[1]["alpha"], rel=1e-9)


def test_inputs_are_not_modified(diabetes):
    X, y = diabetes
    X, y = np.asfortranarray(X.copy()), y.copy()
    X_before, y_before = X.copy(), y.copy()
    weights = np.ones_like(y)
    search = HypergradSearchCV(
        make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": (1e-2, 1e2)}
    )
    search.fit(X, y, ridge__sample_weight=weights)
    cross_val_hypergrad(Ridge(), X, y, params={"alpha": 1.0})
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(weights, np.ones_like(y))


def test_a_failing_fold_follows_error_score(diabetes):
    X, y = diabetes

    class FailingScaler(StandardScaler):
        def fit(self, X, y=None, sample_weight=None):
            if len(X) == 353:  # the training part of the first two folds
                raise ValueError("failing on purpose")
            return super().fit(X, y, sample_weight)

    estimator = Pipeline([("scale", FailingScaler()), ("ridge", Ridge())])
    X_odd, y_odd = X[:443], y[:443]
    search = HypergradSearchCV(
        estimator,
        {"ridge__alpha": (1e-2, 1e2)},
        cv=KFold(5),
        error_score=-1.0,
        refit=False,
    )
    with pytest.warns(FitFailedWarning, match="failing on purpose"):
        search.fit(X_odd, y_odd)
    assert np.all(search.cv_results_["split0_test_score"] == -1.0)
    assert np.all(search.cv_results_["split1_test_score"] == -1.0)
    assert np.all(search.cv_results_["split2_test_score"] != -1.0)

    search.set_params(error_score="raise")
    with pytest.raises(ValueError, match="failing on purpose"):
        search.fit(X_odd, y_odd)


def test_cross_val_hypergrad_matches_cross_val_score_and_finite_differences(diabetes):
    X, y = diabetes
    estimator = make_pipeline(StandardScaler(), Ridge())
    alpha = 3.0
    loss, grads = cross_val_hypergrad(
        estimator, X, y, params={"ridge__alpha": alpha}, cv=CV
    )
    expected = -cross_val_score(
        clone(estimator).set_params(ridge__alpha=alpha), X, y, cv=CV, scoring=MSE
    ).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-10)

    def loss_at(a):
        return cross_val_hypergrad(estimator, X, y, params={"ridge__alpha": a}, cv=CV)[
            0
        ]

    fd = central_difference(loss_at, alpha, step=1e-4)
    np.testing.assert_allclose(grads["ridge__alpha"], fd, rtol=1e-6)


def test_callback_stops_the_search_and_keeps_the_best(diabetes):
    X, y = diabetes
    states = []

    def stop_after_three(state):
        states.append(state)
        return state.iteration == 2

    search = HypergradSearchCV(
        Ridge(), {"alpha": (1e-3, 1e3)}, callbacks=stop_after_three, cv=CV
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 3
    assert all(isinstance(s, SearchState) for s in states)
    assert states[-1].best_cv_loss == min(s.cv_loss for s in states)
    assert hasattr(search, "best_estimator_")


def test_verbose_prints_one_line_per_evaluation_in_order(diabetes, capsys):
    X, y = diabetes
    search = HypergradSearchCV(
        Ridge(),
        {"alpha": (1e-3, 1e3), "fit_intercept": [True, False]},
        verbose=1,
        cv=3,
        scoring="r2",
    ).fit(X, y)
    out = capsys.readouterr().out
    # The silent choice, said: the path follows the loss, the ranking the score.
    assert "follows the mean squared error; the best point is the best by 'r2'" in out
    for search_id, fixed in ((1, "True"), (2, "False")):
        prefix = f"[search {search_id}/2 (fit_intercept={fixed}), eval "
        lines = [line for line in out.splitlines() if line.startswith(prefix)]
        numbers = [int(re.match(r".*eval (\d+),", line).group(1)) for line in lines]
        rows = np.sum(search.cv_results_["search_id"] == search_id - 1)
        added = [line for line in lines if "-> hypergradient alpha: " in line]
        # One line per evaluation, numbered in order: each point, and the
        # hypergradient added later at the best coarse point and at the
        # coarse point downhill from it.
        assert len(added) in (1, 2)
        assert numbers == list(range(1, rows + 1 + len(added)))
        assert re.search(r"iter 0\] alpha=\S+ -> cv_loss=\S+ \(\d+\.\d+s\)", lines[0])
        assert all("(cv_loss=" in line for line in added)
        assert re.search(r"-> cv_loss=\S+, hypergradient alpha: \S+ \(", lines[-1])
    # The time is since fit began: it never goes back from one search to the
    # next.
    times = [float(t) for t in re.findall(r"\((\d+\.\d+)s\)$", out, re.M)]
    assert times == sorted(times)

    HypergradSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, verbose=2, cv=3, n_iter=0).fit(
        X, y
    )
    assert "[CV 3/3]" in capsys.readouterr().out


@pytest.mark.parametrize(
    "param_grid, error, match",
    [
        ({"alpha": (1.0, 1.0)}, ValueError, r"range \[1.0, 1.0\] is empty"),
        ({"alpha": (10.0, 1.0)}, ValueError, "is reversed"),
        ({"alpha": (0.0, 1.0)}, ValueError, "log scale, so its range must be positive"),
        ({"alpha": (-1.0, 1.0)}, ValueError, "log scale"),
        ({"alpha": ("a", "b")}, ValueError, "must be real numbers"),
        ({"alpha": (1.0, 2.0, 3.0)}, ValueError, "must be \\(low, high\\)"),
        ({"alpha": (1.0, np.inf)}, ValueError, "must be finite"),
        ({"alpha": norm(0, 1)}, ValueError, "only frozen scipy.stats uniform"),
        (
            {"alpha": (1.0, 2.0), "tol": loguniform(1e-4, 1e-2)},
            ValueError,
            r"'tol' is given a range \(distribution .*not a continuous hyperparameter "
            r"of Ridge.*pass a list of values",
        ),
        (
            {"alpha": (1.0, 2.0), "tol": (1e-4, 1e-2)},
            ValueError,
            r"'tol' is given a range \(tuple \(0.0001, 0.01\)\).*Ridge: alpha",
        ),
        (
            {"alpha": (1.0, 2.0), "not_a_param": [1]},
            ValueError,
            "Invalid parameter 'not_a_param'",
        ),
        ({"alpha": []}, ValueError, "need to be a non-empty sequence"),
        ([], TypeError, "non-empty dict or list of dicts"),
    ],
)
def test_bad_param_grid(diabetes, param_grid, error, match):
    X, y = diabetes
    with pytest.raises(error, match=match):
        HypergradSearchCV(Ridge(), param_grid).fit(X, y)


@pytest.mark.parametrize(
    "estimator, param_grid, match",
    [
        (
            Lasso(),
            {"alpha": (0.1, 1.0)},
            r"'alpha' is given a range \(tuple .*Lasso has no differentiable model.*"
            r"list of values.*Continuous hyperparameters: LogisticRegression: C;",
        ),
        (
            make_pipeline(StandardScaler(), Lasso()),
            {"lasso__alpha": loguniform(0.1, 1.0)},
            "Lasso has no differentiable model",
        ),
        (Ridge(positive=True), {"alpha": (0.1, 1.0)}, "positive=True"),
        (
            make_pipeline(StandardScaler(), make_pipeline(Ridge())),
            {},
            "Flatten the pipeline",
        ),
    ],
)
def test_ranges_for_unsupported_estimators_are_refused(
    diabetes, estimator, param_grid, match
):
    X, y = diabetes
    with pytest.raises(ValueError, match=match):
        HypergradSearchCV(estimator, param_grid).fit(X, y)


@pytest.mark.parametrize(
    "estimator, param_grid",
    [
        (
            Lasso(random_state=0),
            {"alpha": [0.1, 1.0, 10.0], "selection": ["cyclic", "random"]},
        ),
        (make_pipeline(StandardScaler(), Lasso()), {"lasso__alpha": [0.1, 1.0]}),
        # Settings the differentiable model refuses are fine without a range.
        (Ridge(positive=True), {"alpha": [0.5]}),
        (MLPRegressor(max_iter=5, solver="lbfgs", random_state=0), {"alpha": [1e-4]}),
    ],
)
def test_any_estimator_is_searched_as_grid_search_without_ranges(
    diabetes, estimator, param_grid
):
    X, y = diabetes
    X, y = X[:100], y[:100]
    kwargs = {"cv": CV, "scoring": MSE}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = HypergradSearchCV(estimator, param_grid, **kwargs).fit(X, y)
        grid = GridSearchCV(estimator, param_grid, **kwargs).fit(X, y)
    assert search.cv_results_["params"] == grid.cv_results_["params"]
    for key, value in grid.cv_results_.items():
        if key.endswith("_time") or key.startswith("param"):
            continue
        np.testing.assert_array_equal(search.cv_results_[key], value, err_msg=key)
    assert search.best_params_ == grid.best_params_
    assert search.best_score_ == grid.best_score_


def test_an_unseeded_network_is_fitted_when_only_discrete_values_are_searched(
    diabetes,
):
    # GridSearchCV fits it, with new random weights at each fit (D4).
    X, y = diabetes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = HypergradSearchCV(
            MLPRegressor(max_iter=5), {"hidden_layer_sizes": [(3,), (5,)]}, cv=3
        ).fit(X[:90], y[:90])
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def _with_nan(array):
    array = array.astype(float)
    array[3] = np.nan
    return array


@pytest.mark.parametrize(
    "make_data, match",
    [
        (lambda X, y: (_with_nan(X), y), "Input X contains NaN"),
        (lambda X, y: (X, _with_nan(y)), "Input y contains NaN"),
        (lambda X, y: (np.where(X > 0.1, np.inf, X), y), "Input X contains infinity"),
        (lambda X, y: (X[:-1], y), "inconsistent numbers of samples"),
        (
            lambda X, y: (X[:3], y[:3]),
            "Cannot have number of splits n_splits=5 greater",
        ),
        (lambda X, y: (X, None), "requires y to be passed"),
    ],
    ids=["nan-X", "nan-y", "inf-X", "lengths", "too-few-samples", "no-y"],
)
def test_bad_data(diabetes, make_data, match):
    X, y = make_data(*diabetes)
    with pytest.raises(ValueError, match=match):
        HypergradSearchCV(Ridge(), {"alpha": (1, 2)}).fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_init": 0}, "The 'n_init' parameter"),
        ({"n_iter": -1}, "The 'n_iter' parameter"),
        ({"tol": -1.0}, "The 'tol' parameter"),
        ({"cv": "five"}, "The 'cv' parameter"),
        ({"scoring": "not_a_scorer"}, "The 'scoring' parameter"),
        ({"error_score": "ignore"}, "The 'error_score' parameter"),
    ],
)
def test_bad_constructor_values(diabetes, params, match):
    X, y = diabetes
    with pytest.raises(ValueError, match=match):
        HypergradSearchCV(Ridge(), {"alpha": (1, 2)}, **params).fit(X, y)


def test_bad_fit_params_and_cross_val_hypergrad_params(diabetes):
    X, y = diabetes
    with pytest.raises(ValueError, match="routes only 'sample_weight'"):
        HypergradSearchCV(Ridge(), {"alpha": (1, 2)}).fit(X, y, check_input=False)
    with pytest.raises(ValueError, match="'fit_intercept' is not a differentiable"):
        cross_val_hypergrad(Ridge(), X, y, params={"fit_intercept": 1.0})
    with pytest.raises(ValueError, match="finite real number"):
        cross_val_hypergrad(Ridge(), X, y, params={"alpha": np.nan})


def test_unfitted_search_raises_not_fitted(diabetes):
    X, _ = diabetes
    with pytest.raises(NotFittedError):
        HypergradSearchCV(Ridge(), {"alpha": (1, 2)}).predict(X)


def test_nested_cross_validation(diabetes):
    X, y = diabetes
    search = HypergradSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=3, scoring=MSE)
    scores = cross_val_score(search, X, y, cv=3, scoring=MSE)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_works_on_make_regression():
    X, y = make_regression(300, 40, n_informative=10, noise=20, random_state=0)
    search = HypergradSearchCV(Ridge(), {"alpha": (1e-4, 1e4)}, cv=CV, scoring=MSE).fit(
        X, y
    )
    grid = GridSearchCV(
        Ridge(), {"alpha": np.logspace(-4, 4, 30)}, cv=CV, scoring=MSE
    ).fit(X, y)
    assert search.best_score_ >= grid.best_score_


def test_folds_are_prepared_once_per_search(diabetes, monkeypatch):
    # The factorization of each training fold does not depend on alpha: it
    # is computed once per fold and discrete point, not at each iteration.
    from skhypergrad._models._ridge import RidgeModel

    calls = []
    original = RidgeModel.fold

    def counting_fold(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RidgeModel, "fold", counting_fold)
    X, y = diabetes
    search = HypergradSearchCV(
        Ridge(), {"alpha": (1e-3, 1e3), "fit_intercept": [True, False]}, cv=CV
    ).fit(X, y)
    assert len(search.cv_results_["params"]) > 10
    assert len(calls) == 2 * CV.get_n_splits()


def _neg_mae(estimator, X, y):
    return -float(np.mean(np.abs(estimator.predict(X) - y)))


def _two_metrics(estimator, X, y):
    residuals = estimator.predict(X) - y
    return {
        "mae": -float(np.mean(np.abs(residuals))),
        "mse": -float(np.mean(residuals**2)),
    }


@pytest.mark.parametrize(
    "scoring, refit, key",
    [(_neg_mae, True, "score"), (_two_metrics, "mse", "mse")],
    ids=["callable", "callable-multimetric"],
)
def test_callable_scoring_and_iterable_cv(diabetes, scoring, refit, key):
    X, y = diabetes
    splits = list(CV.split(X))
    search = HypergradSearchCV(
        Ridge(), {"alpha": (1e-3, 1e3)}, scoring=scoring, refit=refit, cv=splits
    ).fit(X, y)
    assert search.multimetric_ is isinstance(refit, str)
    grid = GridSearchCV(
        Ridge(),
        {"alpha": [search.best_params_["alpha"]]},
        scoring=scoring,
        refit=refit,
        cv=splits,
    ).fit(X, y)
    np.testing.assert_allclose(search.best_score_, grid.best_score_, rtol=1e-8)
    best = search.cv_results_[f"mean_test_{key}"][search.best_index_]
    assert best == np.max(search.cv_results_[f"mean_test_{key}"])


def test_sample_weight_with_metadata_routing(diabetes):
    X, y = diabetes
    weights = np.random.RandomState(0).uniform(0.1, 3, len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        scoring = make_scorer(mean_squared_error, greater_is_better=False)
        scoring = scoring.set_score_request(sample_weight=False)
        estimator = Pipeline(
            [
                ("scale", StandardScaler().set_fit_request(sample_weight=True)),
                ("ridge", Ridge().set_fit_request(sample_weight=True)),
            ]
        )
        search = HypergradSearchCV(
            estimator, {"ridge__alpha": (1e-2, 1e2)}, cv=CV, scoring=scoring
        ).fit(X, y, sample_weight=weights)
        grid = GridSearchCV(
            estimator,
            {"ridge__alpha": [search.best_params_["ridge__alpha"]]},
            cv=CV,
            scoring=scoring,
        ).fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(search.best_score_, grid.best_score_, rtol=1e-8)
    # The weights reached the model: unweighted training scores differently.
    unweighted = GridSearchCV(
        make_pipeline(StandardScaler(), Ridge()),
        {"ridge__alpha": [search.best_params_["ridge__alpha"]]},
        cv=CV,
        scoring=MSE,
    ).fit(X, y)
    assert not np.isclose(unweighted.best_score_, grid.best_score_, rtol=1e-6)


@narrow_range
def test_pipelines_check_their_own_input():
    # Text, and missing values a step imputes: GridSearchCV accepts both, so
    # the search leaves the checks to the pipeline's steps.
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    docs = ["good movie", "bad movie", "great plot", "awful plot"] * 10
    labels = [1, 0, 1, 0] * 10
    search = HypergradSearchCV(
        make_pipeline(TfidfVectorizer(), LogisticRegression()),
        {"logisticregression__C": (1e-2, 1e2)},
        cv=2,
        n_iter=2,
    ).fit(docs, labels)
    assert search.predict(["good plot"]).shape == (1,)

    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"num": rng.normal(size=40), "cat": list("abcd") * 10})
    frame.loc[3, "num"] = np.nan
    target = rng.normal(size=40)
    preprocessing = ColumnTransformer(
        [("num", SimpleImputer(), ["num"]), ("cat", OneHotEncoder(), ["cat"])]
    )
    search = HypergradSearchCV(
        make_pipeline(preprocessing, Ridge()), {"ridge__alpha": (1e-2, 1e2)}, cv=2
    ).fit(frame, target)
    assert np.isfinite(search.best_score_)


def test_cross_val_hypergrad_accepts_sparse_input(diabetes):
    import scipy.sparse as sp

    X, y = diabetes
    dense = cross_val_hypergrad(Ridge(), X, y, params={"alpha": 2.0}, cv=CV)
    sparse = cross_val_hypergrad(
        Ridge(), sp.csr_matrix(X), y, params={"alpha": 2.0}, cv=CV
    )
    np.testing.assert_allclose(sparse[0], dense[0], rtol=1e-10)
    np.testing.assert_allclose(sparse[1]["alpha"], dense[1]["alpha"], rtol=1e-8)


def test_the_ends_of_a_range_are_evaluated_exactly(diabetes):
    X, y = diabetes
    search = HypergradSearchCV(
        Ridge(), {"alpha": loguniform(1e-3, 10)}, n_init=3, n_iter=0
    ).fit(X, y)
    alphas = list(search.cv_results_["param_alpha"])
    assert alphas[0] == 1e-3 and alphas[2] == 10
    assert alphas[1] == pytest.approx(0.1, rel=1e-12)


def test_weighted_scores_weigh_the_differentiated_loss(diabetes):
    # scikit-learn 1.9 forwards sample_weight to scorers that accept it: the
    # loss the search follows is weighted the same way.
    X, y = diabetes
    weights = np.random.RandomState(0).uniform(0.1, 3, len(y))
    search = HypergradSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=CV, scoring=MSE)
    search.fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(
        search.cv_results_["cv_loss"], -search.cv_results_["mean_test_score"]
    )


@short_trainings
@pytest.mark.filterwarnings(
    "ignore:Stochastic Optimizer:sklearn.exceptions.ConvergenceWarning"
)
def test_never_worse_than_the_grid_it_replaces():
    """Swapping GridSearchCV for HypergradSearchCV on the same grid and cv."""
    X, y = make_regression(120, 5, noise=10.0, random_state=0)
    mlp = make_pipeline(
        StandardScaler(),
        MLPRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0),
    )
    # Listed in another order than ParameterGrid's (sorted by name).
    param_grid = {
        "mlpregressor__learning_rate_init": [1e-3, 0.03, 0.3],
        "mlpregressor__alpha": [1e-4, 1e-2, 1.0],
    }
    grid = GridSearchCV(mlp, param_grid, scoring=MSE, cv=CV).fit(X, y)
    search = HypergradSearchCV(mlp, param_grid, scoring=MSE, cv=CV, n_iter=6)
    search.fit(X, y)
    # Every point of the grid first, in GridSearchCV's order, with its scores.
    assert search.cv_results_["params"][:9] == grid.cv_results_["params"]
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"][:9],
        grid.cv_results_["mean_test_score"],
        rtol=1e-9,
    )
    # Then the gradient phase, which finds a better point here.
    assert len(search.cv_results_["params"]) > 9
    assert search.best_score_ > grid.best_score_


def test_listed_values_combine_with_a_range(diabetes):
    X, y = diabetes
    search = HypergradSearchCV(
        make_pipeline(StandardScaler(), MLPRegressor(random_state=0, max_iter=5)),
        {
            "mlpregressor__alpha": [1e-3, 1.0],
            "mlpregressor__learning_rate_init": (1e-4, 1e-2),
        },
        cv=3,
        n_init=3,
        n_iter=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X[:80], y[:80])
    params = search.cv_results_["params"]
    # Each listed alpha with the n_init points of the range.
    assert [p["mlpregressor__alpha"] for p in params] == [1e-3] * 3 + [1.0] * 3
    rates = [p["mlpregressor__learning_rate_init"] for p in params]
    assert rates[:3] == rates[3:] and len(set(rates)) == 3


@narrow_range
@short_trainings
@pytest.mark.filterwarnings(
    "ignore:Stochastic Optimizer:sklearn.exceptions.ConvergenceWarning"
)
def test_an_unseeded_network_gets_a_seed_from_the_search(diabetes):
    """D4: random_state=None would make the CV loss random; a seed is drawn."""
    X, y = diabetes
    X = StandardScaler().fit_transform(X[:90])

    def search(random_state):
        return HypergradSearchCV(
            MLPRegressor(hidden_layer_sizes=(3,), max_iter=5),
            {"alpha": (1e-4, 1e-1)},
            cv=3,
            n_init=3,
            n_iter=2,
            random_state=random_state,
        ).fit(X, y[:90])

    first, again, other = search(None), search(None), search(1)
    seeds = {p["random_state"] for p in first.cv_results_["params"]}
    assert len(seeds) == 1 and isinstance(seeds.pop(), int)
    assert first.best_estimator_.random_state == first.best_params_["random_state"]
    assert first.cv_results_["params"] == again.cv_results_["params"]
    assert first.best_params_["random_state"] != other.best_params_["random_state"]


@short_trainings
@pytest.mark.filterwarnings(
    "ignore:Stochastic Optimizer:sklearn.exceptions.ConvergenceWarning"
)
def test_the_default_search_is_deterministic():
    """Without random_state, the coarse pass of several hyperparameters is the
    same every run, as a grid's points are."""
    X, y = make_regression(90, 4, noise=5.0, random_state=0)
    space = {
        "mlpregressor__alpha": (1e-4, 1.0),
        "mlpregressor__learning_rate_init": (1e-3, 1e-1),
        "mlpregressor__beta_1": (0.5, 0.95),
    }
    mlp = make_pipeline(
        StandardScaler(),
        MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0),
    )
    runs = [
        HypergradSearchCV(mlp, space, cv=3, n_init=4, n_iter=3).fit(X, y)
        for _ in range(2)
    ]
    for key, value in runs[0].cv_results_.items():
        if not key.endswith("_time"):
            np.testing.assert_array_equal(runs[1].cv_results_[key], value)
    seeded = HypergradSearchCV(mlp, space, cv=3, n_init=4, n_iter=0, random_state=5)
    seeded.fit(X, y)
    assert seeded.cv_results_["params"][:4] != runs[0].cv_results_["params"][:4]


def test_verbose_3_prints_grid_search_score_lines(diabetes, capsys):
    """D2: the per-fold lines GridSearchCV prints at verbose=3."""
    X, y = diabetes
    HypergradSearchCV(
        Ridge(), {"alpha": [0.1, 10.0]}, verbose=3, cv=3, n_iter=0, scoring=MSE
    ).fit(X, y)
    ours = [line for line in capsys.readouterr().out.splitlines() if "END" in line]
    GridSearchCV(Ridge(), {"alpha": [0.1, 10.0]}, verbose=3, cv=3, scoring=MSE).fit(
        X, y
    )
    theirs = [line for line in capsys.readouterr().out.splitlines() if "END" in line]

    def without_time(lines):
        return [re.sub(r"total time=.*", "", line) for line in lines]

    assert without_time(ours) == without_time(theirs)


@requires_sklearn("1.8", "l1_ratio is ignored with the default penalty='l2'")
def test_lists_of_settings_are_enumerated_and_checked_at_each_point():
    """A list of numbers for a parameter without a hypergradient is a list of
    candidates; each point is checked and fitted as what it is."""
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    cv = KFold(3, shuffle=True, random_state=0)
    grid = {"C": [0.1, 1.0], "l1_ratio": [0.0, 1.0]}
    estimator = LogisticRegression(solver="saga", tol=1e-8, max_iter=5000)
    search = HypergradSearchCV(estimator, grid, cv=cv, scoring="neg_log_loss")
    reference = GridSearchCV(estimator, grid, cv=cv, scoring="neg_log_loss")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
        reference.fit(X, y)
    rows = search.cv_results_
    for params, score in zip(
        reference.cv_results_["params"],
        reference.cv_results_["mean_test_score"],
        strict=True,
    ):
        if params["l1_ratio"] == 1.0:
            # The L1 points are fitted by scikit-learn, as GridSearchCV does,
            # not scored as if they were L2.
            i = rows["params"].index(params)
            assert np.isnan(rows["cv_loss"][i])
            np.testing.assert_allclose(rows["mean_test_score"][i], score, rtol=1e-6)
    assert search.best_score_ >= reference.best_score_ - 1e-6


def test_a_list_of_seeds_is_kept():
    X, y = make_regression(60, 3, noise=1.0, random_state=0)
    search = HypergradSearchCV(
        MLPRegressor(hidden_layer_sizes=(2,), max_iter=3),
        {"alpha": (1e-4, 1e-1), "random_state": [1, 2]},
        cv=2,
        n_init=2,
        n_iter=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert [p["random_state"] for p in search.cv_results_["params"]] == [1, 1, 2, 2]


def test_ragged_and_tuple_candidates_are_enumerated():
    X, y = make_regression(60, 3, noise=1.0, random_state=0)
    grid = {
        "hidden_layer_sizes": [(3,), (3, 2)],
        "alpha": (1e-4, 1e-1),
        "random_state": [0],
    }
    search = HypergradSearchCV(MLPRegressor(max_iter=3), grid, cv=2, n_init=2, n_iter=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    sizes = [p["hidden_layer_sizes"] for p in search.cv_results_["params"]]
    assert sizes == [(3,), (3,), (3, 2), (3, 2)]


def test_an_estimator_without_y_is_searched_as_grid_search():
    from sklearn.neighbors import KernelDensity

    X, _ = load_iris(return_X_y=True)
    grid = {"bandwidth": [0.2, 0.5, 1.0]}
    search = HypergradSearchCV(KernelDensity(), grid, cv=3).fit(X)
    reference = GridSearchCV(KernelDensity(), grid, cv=3).fit(X)
    assert search.best_params_ == reference.best_params_
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"]
    )

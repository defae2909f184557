"""Inexact solves: a LogisticRegression's coarse pass stops where lbfgs stops.

The points of the coarse pass only locate the minimum: they are solved by
L-BFGS to the estimator's ``tol``, as scikit-learn's lbfgs stops (a Ridge
solved by conjugate gradient: to its ``tol``, as ``sparse_cg`` stops). Every point
the search differentiates, the best point and the values a user lists are
solved exactly, and ``cv_results_["solved_exactly"]`` says which rows are.
"""

import copy
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV
from skhypergrad._models import _logistic, _ridge
from skhypergrad._models._logistic import LogisticRegressionModel
from skhypergrad._models._ridge import RidgeModel

from ._numeric import make_fold

CV = StratifiedKFold(3, shuffle=True, random_state=0)


@pytest.fixture(autouse=True)
def inexact_small_problems(monkeypatch):
    """Small problems are solved exactly anyway (``_SMALL_HESSIAN``): not here."""
    monkeypatch.setattr(_logistic, "_SMALL_HESSIAN", 0)


def _breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _multiclass():
    X, y = make_classification(
        300, 8, n_informative=5, n_classes=3, n_clusters_per_class=1, random_state=0
    )
    return StandardScaler().fit_transform(X), y


def _split(X, y):
    train, test = next(CV.split(X, y))
    return X[train], y[train], X[test], y[test]


def _largest_gradient(fold, solution):
    l2 = 1.0 / (solution.C * fold.weight_sum)
    _, gradient, _ = fold.objective.value_grad(solution.theta, l2)
    return np.max(np.abs(gradient))


@pytest.mark.parametrize("data", [_breast_cancer, _multiclass])
@pytest.mark.parametrize("sparse", [False, True])
def test_an_inexact_solve_stops_where_lbfgs_stops(data, sparse):
    X_train, y_train, X_val, y_val = _split(*data())
    if sparse:
        X_train, X_val = sp.csr_matrix(X_train), sp.csr_matrix(X_val)
    estimator = LogisticRegression(max_iter=1000)
    model = LogisticRegressionModel()
    fold = make_fold(model, estimator, X_train, y_train, X_val, y_val)
    exact_fold = make_fold(model, estimator, X_train, y_train, X_val, y_val)
    for C in (1e-2, 1.0, 100.0):
        inexact = fold.solve({"C": C}, exact=False)
        exact = exact_fold.solve({"C": C})
        assert not inexact.exact and exact.exact
        # lbfgs's stopping rule on the same normalized objective.
        assert _largest_gradient(fold, inexact) <= estimator.tol
        assert _largest_gradient(exact_fold, exact) <= exact_fold.gtol
        # Close to the optimum, but not at it: lbfgs's own fit from zero is
        # 2.1% above the exact validation loss at C=100 on breast_cancer, the
        # warm-started one 2.7% (both below 1e-3 elsewhere here).
        assert inexact.loss == pytest.approx(exact.loss, rel=5e-2)
        assert not np.allclose(inexact.theta, exact.theta, rtol=1e-9, atol=1e-12)
        # Scored as any solution: the fitted estimator holds its coefficients.
        fitted = inexact.fitted_estimator()
        np.testing.assert_array_equal(
            fitted.coef_.ravel(),
            inexact.theta.reshape(len(fitted.coef_), -1)[:, :-1].ravel(),
        )


def test_an_inexact_solution_is_never_differentiated():
    X_train, y_train, X_val, y_val = _split(*_breast_cancer())
    fold = make_fold(
        LogisticRegressionModel(), LogisticRegression(), X_train, y_train, X_val, y_val
    )
    inexact = fold.solve({"C": 1.0}, exact=False)
    with pytest.raises(RuntimeError, match="inexact solution has no hypergradient"):
        inexact.hypergradient(["C"])


def test_lbfgs_out_of_iterations_falls_back_to_the_exact_solve():
    X_train, y_train, X_val, y_val = _split(*_multiclass())
    estimator = LogisticRegression(max_iter=3)
    fold = make_fold(
        LogisticRegressionModel(), estimator, X_train, y_train, X_val, y_val
    )
    with warnings.catch_warnings():
        # Newton's solve may run out of its 3 iterations too: it says so.
        warnings.simplefilter("ignore", ConvergenceWarning)
        solution = fold.solve({"C": 1.0}, exact=False)
    assert solution.exact


def test_a_small_problem_is_solved_exactly_anyway(monkeypatch):
    monkeypatch.setattr(_logistic, "_SMALL_HESSIAN", 1e7)
    X_train, y_train, X_val, y_val = _split(*_breast_cancer())  # 379 x 31
    fold = make_fold(
        LogisticRegressionModel(), LogisticRegression(), X_train, y_train, X_val, y_val
    )
    assert fold.solve({"C": 1.0}, exact=False).exact
    # 1,200 x 101: 1.2e7 multiply-adds.
    X_train, y_train, X_val, y_val = _split(*make_classification(1800, 100))
    fold = make_fold(
        LogisticRegressionModel(), LogisticRegression(), X_train, y_train, X_val, y_val
    )
    assert not fold.solve({"C": 1.0}, exact=False).exact


def test_a_tol_below_the_internal_one_solves_exactly():
    X_train, y_train, X_val, y_val = _split(*_breast_cancer())
    fold = make_fold(
        LogisticRegressionModel(),
        LogisticRegression(tol=1e-14),
        X_train,
        y_train,
        X_val,
        y_val,
    )
    assert fold.solve({"C": 1.0}, exact=False).exact


def _exact_grid_scores(X, y, Cs):
    """GridSearchCV's mean test log-loss at ``Cs``, solved far below tol."""
    grid = GridSearchCV(
        LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000),
        {"C": list(Cs)},
        scoring="neg_log_loss",
        cv=CV,
    ).fit(X, y)
    return grid.cv_results_["mean_test_score"]


def _lbfgs_grid_scores(X, y, Cs):
    """GridSearchCV's mean test log-loss at ``Cs`` with lbfgs at tol=1e-4."""
    grid = GridSearchCV(
        LogisticRegression(max_iter=1000),
        {"C": list(Cs)},
        scoring="neg_log_loss",
        cv=CV,
    ).fit(X, y)
    return grid.cv_results_["mean_test_score"]


@pytest.mark.parametrize("data", [_breast_cancer, _multiclass])
def test_coarse_rows_are_lbfgs_rows_and_the_others_exact(data):
    X, y = data()
    search = HypergradSearchCV(
        LogisticRegression(max_iter=1000),
        {"C": (1e-3, 1e3)},
        scoring="neg_log_loss",
        cv=CV,
    ).fit(X, y)
    results = search.cv_results_
    exact = np.asarray(results["solved_exactly"], dtype=bool)
    Cs = [params["C"] for params in results["params"]]
    differentiated = np.isfinite(results["hypergrad_C"])
    # Only coarse rows may be inexact; every differentiated row is exact.
    assert np.all(exact[results["outer_iter"] >= search.n_init])
    assert np.all(exact[differentiated])
    assert (~exact).any()
    assert exact[search.best_index_]
    reference = _exact_grid_scores(X, y, Cs)
    scores = results["mean_test_score"]
    np.testing.assert_allclose(scores[exact], reference[exact], rtol=1e-8)
    # The inexact rows stop where GridSearchCV's lbfgs does: both are as far
    # from the exact optimum's scores as lbfgs's tol allows.
    lbfgs = _lbfgs_grid_scores(X, y, np.asarray(Cs)[~exact])
    gap_ours = np.abs(scores[~exact] - reference[~exact])
    gap_lbfgs = np.abs(lbfgs - reference[~exact])
    assert np.all(gap_ours <= np.maximum(10 * gap_lbfgs, 1e-4 * np.abs(lbfgs)))
    assert search.best_score_ == pytest.approx(reference[search.best_index_], rel=1e-8)


def test_without_gradient_phase_the_best_coarse_point_is_solved_again(capsys):
    X, y = _breast_cancer()
    search = HypergradSearchCV(
        LogisticRegression(max_iter=1000),
        {"C": (1e-3, 1e3)},
        n_iter=0,
        scoring="neg_log_loss",
        cv=CV,
        verbose=1,
    ).fit(X, y)
    results = search.cv_results_
    exact = np.asarray(results["solved_exactly"], dtype=bool)
    assert len(exact) == search.n_init
    assert exact[search.best_index_] and exact.sum() >= 1 and not exact.all()
    best_C = results["params"][search.best_index_]["C"]
    assert search.best_score_ == pytest.approx(
        _exact_grid_scores(X, y, [best_C])[0], rel=1e-8
    )
    out = capsys.readouterr().out
    assert len(re.findall(r"cv_loss=\S+ \(inexact\)", out)) == search.n_init
    assert len(re.findall(r"cv_loss=\S+ \(solved exactly\)", out)) == exact.sum()


def test_listed_values_are_solved_exactly():
    X, y = _breast_cancer()
    Cs = [1e-2, 1.0, 100.0]
    search = HypergradSearchCV(
        LogisticRegression(max_iter=1000),
        {"C": Cs},
        scoring="neg_log_loss",
        cv=CV,
    ).fit(X, y)
    results = search.cv_results_
    assert all(results["solved_exactly"])
    listed = [i for i, params in enumerate(results["params"]) if params["C"] in Cs]
    assert len(listed) == len(Cs)
    np.testing.assert_allclose(
        results["mean_test_score"][listed], _exact_grid_scores(X, y, Cs), rtol=1e-8
    )


def test_models_without_inexact_solves_report_every_row_exact():
    X, y = _breast_cancer()
    search = HypergradSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=3).fit(X, y)
    assert all(search.cv_results_["solved_exactly"])


def _sparse_regression(n=120, p=300, per_row=8, noise=0.1, seed=0):
    rng = np.random.RandomState(seed)
    X = sp.csr_matrix(
        (
            rng.rand(n * per_row),
            rng.randint(0, p, n * per_row),
            np.arange(0, n * per_row + 1, per_row),
        ),
        shape=(n, p),
    )
    return X, X @ rng.randn(p) + noise * rng.randn(n)


class _SystemOperator:
    """A Lanczos operator whose solutions stay the system's variables."""

    def __init__(self, operator):
        self.operator = operator
        self.n_observed = operator.n_observed

    def apply(self, v):
        return self.operator.apply(v)

    def lift(self, v):
        return self.operator.apply(v)[0], v


@pytest.mark.parametrize("shape", [(120, 300), (300, 40)])
def test_ridge_conjugate_gradient_stops_at_tol_when_inexact(shape, monkeypatch):
    # Conjugate gradient is chosen when no decomposition is cheaper.
    monkeypatch.setattr(_ridge, "_EXPECTED_ITERATIONS", 0)
    X, y = _sparse_regression(*shape)
    train, val = np.arange(0, shape[0], 2), np.arange(1, shape[0], 2)
    estimator = Ridge(tol=1e-3)
    fold = make_fold(RidgeModel(), estimator, X[train], y[train], X[val], y[val])
    assert fold.method == "iterative"
    exact_fold = make_fold(RidgeModel(), estimator, X[train], y[train], X[val], y[val])
    for alpha in (1e-2, 1.0):
        inexact = fold.solve({"alpha": alpha}, exact=False)
        exact = exact_fold.solve({"alpha": alpha})
        assert not inexact.exact and exact.exact
        for solution, rtol in ((inexact, estimator.tol), (exact, _ridge.CG_RTOL)):
            matvec = fold._design.kernel_dot if fold._dual else fold._design.gram_dot
            rhs = fold._rhs[:, 0]
            # The variables solved for (dual or primal), by a second pass of
            # the solution's Lanczos run that does not lift them.
            run = copy.copy(solution._fold.runs.runs[0])
            run.operator = _SystemOperator(run.operator)
            variables = run.solution(alpha, solution._steps[0], rhs)
            residual = rhs - (matvec(variables) + alpha * variables)
            assert np.linalg.norm(residual) <= 1.01 * rtol * np.linalg.norm(rhs)
        assert inexact.loss == pytest.approx(exact.loss, rel=1e-2)
        assert inexact.loss != exact.loss
        with pytest.raises(RuntimeError, match="no hypergradient"):
            inexact.hypergradient(["alpha"])


def test_ridge_decompositions_are_always_exact():
    X, y = _sparse_regression(120, 30)
    fold = make_fold(RidgeModel(), Ridge(), X[:80], y[:80], X[80:], y[80:])
    assert fold.method != "iterative"
    assert fold.solve({"alpha": 1.0}, exact=False).exact


def test_ridge_search_by_conjugate_gradient_marks_its_coarse_rows(monkeypatch):
    monkeypatch.setattr(_ridge, "_EXPECTED_ITERATIONS", 0)
    X, y = _sparse_regression(150, 400, noise=2.0)
    search = HypergradSearchCV(
        Ridge(),
        {"alpha": (1e-3, 1e3)},
        cv=3,
        scoring="neg_mean_squared_error",
    ).fit(X, y)
    results = search.cv_results_
    exact = np.asarray(results["solved_exactly"], dtype=bool)
    assert (~exact).any() and exact[search.best_index_]
    assert np.all(exact[np.isfinite(results["hypergrad_alpha"])])
    Cs = [params["alpha"] for params in results["params"]]
    # The exact rows are the dense closed form's; the others scikit-learn's
    # sparse_cg at its tol=1e-4, to that tolerance.
    dense = GridSearchCV(
        Ridge(), {"alpha": Cs}, cv=3, scoring="neg_mean_squared_error"
    ).fit(X.toarray(), y)
    reference = dense.cv_results_["mean_test_score"]
    scores = results["mean_test_score"]
    np.testing.assert_allclose(scores[exact], reference[exact], rtol=1e-8)
    np.testing.assert_allclose(scores[~exact], reference[~exact], rtol=1e-2)

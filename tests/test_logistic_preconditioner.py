"""The Kronecker preconditioner of large logistic models: a valid preconditioner,
the same solutions and hypergradients as the direct path, fewer iterations."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from skhypergrad import cross_val_hypergrad
from skhypergrad._models import _logistic_solver
from skhypergrad._models._implicit import conjugate_gradient
from skhypergrad._models._logistic import LogisticRegressionModel
from skhypergrad._models._logistic_preconditioner import KroneckerCurvature
from skhypergrad._models._logistic_solver import LogisticObjective

from ._numeric import central_difference, make_fold, value_and_grad


def _corpus(n_documents, n_terms, n_classes, seed=0):
    """Tf-idf of a small synthetic corpus: Zipfian terms, one topic a class."""
    rng = np.random.default_rng(seed)
    common = 1.0 / np.arange(1, n_terms + 1) ** 1.1
    labels = rng.integers(n_classes, size=n_documents)
    topics = rng.random((n_classes, n_terms)) < 0.05
    rows, columns = [], []
    for document, label in enumerate(labels):
        frequency = common * (1.0 + 8.0 * topics[label])
        terms = rng.choice(n_terms, size=40, p=frequency / frequency.sum())
        rows.append(np.full(len(terms), document))
        columns.append(terms)
    counts = sp.csr_matrix(
        (np.ones(40 * n_documents), (np.concatenate(rows), np.concatenate(columns))),
        shape=(n_documents, n_terms),
    )
    counts.sum_duplicates()
    return TfidfTransformer().fit_transform(counts).tocsr(), labels


def _fold(n_classes, settings=(), weighted=False, dense=False, n_terms=None):
    """A fold of 200 training documents; by default just over 1,000 parameters."""
    if n_terms is None:
        n_terms = 300 if n_classes > 2 else 1200
    X, y = _corpus(300, n_terms, n_classes)
    if dense:
        X = X.toarray()
    weights = np.random.default_rng(1).uniform(0.2, 3.0, 200) if weighted else None
    return make_fold(
        LogisticRegressionModel(),
        LogisticRegression(tol=1e-12, max_iter=500, **dict(settings)),
        X[:200],
        y[:200],
        X[200:],
        y[200:],
        sample_weight=weights,
    )


CASES = {
    "multinomial": (5, {}, False, False),
    "multinomial-weighted": (5, {}, True, False),
    "multinomial-no-intercept": (5, {"fit_intercept": False}, False, False),
    "multinomial-dense": (5, {}, False, True),
    "binary": (2, {}, False, False),
    "binary-weighted-dense": (2, {}, True, True),
    "liblinear": (2, {"solver": "liblinear", "intercept_scaling": 2.0}, False, False),
}


def _explicit(function, n):
    return np.column_stack([function(column) for column in np.eye(n)])


@pytest.mark.parametrize("power", [1.0, 0.5])
@pytest.mark.parametrize("case", CASES)
def test_preconditioner_is_symmetric_positive_definite(case, power):
    """Symmetric, positive on every direction but the flat one, which it zeroes."""
    n_classes, settings, weighted, dense = CASES[case]
    fold = _fold(n_classes, settings, weighted, dense, n_terms=40)
    solution = fold.solve({"C": 100.0})
    objective = fold.objective
    precondition = KroneckerCurvature(objective, solution._proba).preconditioner(
        solution._l2, power
    )
    matrix = _explicit(precondition, objective.n_params)
    scale = np.abs(matrix).max()
    np.testing.assert_allclose(matrix, matrix.T, rtol=0, atol=1e-12 * scale)
    flat = objective.flat_direction
    if flat is not None:
        assert np.abs(matrix @ flat).max() <= 1e-12 * scale
        # Restricted to the complement of the flat direction.
        basis = np.linalg.svd(np.eye(len(flat)) - np.outer(flat, flat))[0][:, :-1]
        matrix = basis.T @ matrix @ basis
    assert np.linalg.eigvalsh(matrix).min() > 0


@pytest.mark.parametrize("case", CASES)
def test_solves_equal_dense_solves(case):
    """HessianSolver's CG with the preconditioner, as large models solve, gives
    the solution of the dense Hessian (rtol 1e-10: the same answer)."""
    n_classes, settings, weighted, dense = CASES[case]
    fold = _fold(n_classes, settings, weighted, dense)
    objective = fold.objective
    assert objective.n_params > _logistic_solver._MAX_DIRECT_PARAMS
    solution = fold.solve({"C": 1e3})
    l2, proba = solution._l2, solution._proba
    b = objective.project(np.random.default_rng(0).standard_normal(objective.n_params))
    hessian = objective.hessian(l2, proba)
    flat = objective.flat_direction
    if flat is not None:
        hessian += np.outer(flat, flat)
    expected = np.linalg.solve(hessian, b)

    solver = _logistic_solver.HessianSolver(objective)
    assert not solver.direct
    for _ in range(3):  # both powers of the diagonal part, then the chosen one
        x, converged = solver.solve(l2, proba, b, rtol=1e-10)
        assert converged
        np.testing.assert_allclose(
            x, expected, rtol=0, atol=1e-7 * np.abs(expected).max()
        )


@pytest.mark.parametrize("n_classes, fraction", [(5, 2 / 3), (2, 0.85)])
def test_fewer_iterations_than_the_diagonal(n_classes, fraction):
    """The adjoint-like solve at a weak penalty: at most ``fraction`` of the
    iterations of the best power of the Hessian's diagonal (the class coupling
    of the multinomial is where it gains most)."""
    fold = _fold(n_classes, n_terms=1000)
    objective = fold.objective
    solution = fold.solve({"C": 1e3})
    l2, proba = solution._l2, solution._proba
    b = objective.project(np.random.default_rng(0).standard_normal(objective.n_params))
    matvec = objective.hessp(l2, proba)
    diagonal = objective.hessian_diagonal(l2, proba)
    curvature = KroneckerCurvature(objective, proba)

    def iterations(precondition):
        _, n_iter, converged = conjugate_gradient(
            matvec, b, rtol=1e-8, max_iter=10_000, precondition=precondition
        )
        assert converged
        return n_iter

    diagonal_iterations = min(
        iterations(lambda r, power=power: r / diagonal**power) for power in (1.0, 0.5)
    )
    kronecker_iterations = min(
        iterations(curvature.preconditioner(l2, power)) for power in (1.0, 0.5)
    )
    assert kronecker_iterations <= fraction * diagonal_iterations


@pytest.mark.parametrize("n_classes", [5, 2])
def test_cross_val_hypergrad_equals_the_direct_path(n_classes, monkeypatch):
    """Loss and hypergradient as the Cholesky-preconditioned path computes them
    (the same problem made small enough for it)."""
    X, y = _corpus(300, 300, n_classes)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    estimator = LogisticRegression(tol=1e-12, max_iter=500)
    params = {"C": 300.0}
    loss, grads = cross_val_hypergrad(estimator, X, y, params=params, cv=cv)
    monkeypatch.setattr(_logistic_solver, "_MAX_DIRECT_PARAMS", 10_000)
    direct_loss, direct_grads = cross_val_hypergrad(
        estimator, X, y, params=params, cv=cv
    )
    assert loss == pytest.approx(direct_loss, rel=1e-10)
    assert grads["C"] == pytest.approx(direct_grads["C"], rel=1e-6)


@pytest.mark.parametrize("case", ["multinomial", "binary-weighted-dense", "liblinear"])
def test_hypergradient_matches_central_differences(case):
    n_classes, settings, weighted, dense = CASES[case]
    fold = _fold(n_classes, settings, weighted, dense)
    assert not fold.hessian_solver.direct
    C = 300.0
    loss, grads, _ = value_and_grad(fold, {"C": C})

    def loss_at(log_C):
        # A new fold: no warm start from the nearby solves, whose extrapolation
        # along the path biases differences of losses this close.
        new_fold = _fold(n_classes, settings, weighted, dense)
        return new_fold.solve({"C": float(np.exp(log_C))}).loss

    # A step of 1e-3: its truncation error is about 1e-7 relative here, while
    # at 1e-4 the losses' own precision (their solves stop at gtol) gave up to
    # 1.7e-6 on the binary weighted case with the oldest supported releases.
    expected = central_difference(loss_at, np.log(C), 1e-3)
    assert C * grads["C"] == pytest.approx(expected, rel=1e-6)


def test_solver_pickles_with_its_preconditioner():
    """Folds go to joblib workers: the kept approximation is arrays only."""
    fold = _fold(5)
    solution = fold.solve({"C": 100.0})
    b = fold.objective.project(
        np.random.default_rng(0).standard_normal(fold.objective.n_params)
    )
    solver = fold.hessian_solver
    assert solver._curvature is not None
    copy = pickle.loads(pickle.dumps(solver))
    expected, _ = solver.solve(solution._l2, solution._proba, b, rtol=1e-10)
    x, converged = copy.solve(solution._l2, solution._proba, b, rtol=1e-10)
    assert converged
    np.testing.assert_array_equal(x, expected)


def test_a_new_objective_gets_a_new_approximation():
    """Feature weights swap the solver's objective (rescaled columns) at the
    same C: the approximation of the previous problem is not kept."""
    fold = _fold(5)
    solution = fold.solve({"C": 100.0})
    solver = fold.hessian_solver
    previous = solver._curvature
    objective = fold.objective
    scale = np.random.default_rng(0).uniform(0.5, 2.0, objective.X.shape[1])
    rescaled = LogisticObjective(
        objective.X @ sp.diags(scale),
        objective.Y,
        objective.sample_weight,
        objective.penalty,
        centered=True,
    )
    solver.objective = rescaled
    assert solver._curvature is None
    theta = solution.theta / np.tile(scale, objective.n_rows)
    _, gradient, proba = rescaled.value_grad(theta, solution._l2)
    x, converged = solver.solve(solution._l2, proba, gradient, rtol=1e-10)
    assert converged
    assert solver._curvature is not previous
    residual = rescaled.hessp(solution._l2, proba)(x) - gradient
    assert np.linalg.norm(residual) <= 1e-10 * np.linalg.norm(gradient)

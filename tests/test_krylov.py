"""Ridge by one Lanczos run per fold: every alpha from the same Krylov space."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import Ridge

from skhypergrad._models import _ridge
from skhypergrad._models._krylov import ShiftedLanczos
from skhypergrad._models._ridge import RidgeModel
from skhypergrad.utils import check_differentiable_model

from ._numeric import central_difference, make_fold

ALPHAS = [1e-3, 1e-1, 10.0, 1e3]


class _MatrixOperator:
    """A dense symmetric ``A`` observed through ``M``; solutions unlifted."""

    def __init__(self, A, M):
        self.A, self.M = A, M
        self.n_observed = M.shape[0]
        self.products = 0

    def apply(self, v):
        self.products += 1
        return self.A @ v, self.M @ v

    def lift(self, v):
        return self.A @ v, v


def _spd(n, low, high, seed=0):
    """A symmetric positive definite matrix with eigenvalues in [low, high]."""
    rng = np.random.RandomState(seed)
    basis, _ = np.linalg.qr(rng.randn(n, n))
    return (basis * np.geomspace(low, high, n)) @ basis.T


@pytest.mark.parametrize("shift", [1e-2, 1.0, 1e2])
@pytest.mark.parametrize("stored", [1000, 20], ids=["stored", "beyond"])
def test_shifted_runs_equal_the_closed_form_beyond_orthogonality(shift, stored):
    # Eigenvalues over four decades: at the smallest shift the run takes
    # more steps than the dimension, which only a basis that lost its
    # orthogonality can, and still gives conjugate gradient's solution.
    # With 20 stored steps, the larger runs go on past them.
    n = 60
    A = _spd(n, 1e-2, 1e2)
    rng = np.random.RandomState(1)
    b, M = rng.randn(n), rng.randn(7, n)
    operator = _MatrixOperator(A, M)
    run = ShiftedLanczos(operator, b, max_steps=1000, stored_steps=stored)
    k, observed, derivative = run.solve(shift, 1e-12)
    if shift == 1e-2:
        assert k > n
    assert run.nbytes <= stored * 7 * 8
    exact = np.linalg.solve(A + shift * np.eye(n), b)
    x = run.solution(shift, k, b)
    residual = b - (A @ x + shift * x)
    assert np.linalg.norm(residual) <= 10 * 1e-12 * np.linalg.norm(b)
    np.testing.assert_allclose(x, exact, rtol=1e-8, atol=1e-10 * np.abs(exact).max())
    np.testing.assert_allclose(observed, M @ exact, rtol=1e-8)
    # d/dshift (A + shift I)^-1 b = -(A + shift I)^-2 b
    np.testing.assert_allclose(
        derivative,
        -M @ np.linalg.solve(A + shift * np.eye(n), exact),
        rtol=1e-7,
    )
    # The run is shared: asking again costs no product within the stored
    # steps, and those past them again.
    products = operator.products
    assert run.solve(shift, 1e-12)[0] == k
    assert operator.products == products + max(k - stored, 0)


def test_steps_are_the_fewest_whatever_the_order_and_the_storage():
    A = _spd(40, 1e-1, 1e2, seed=3)
    rng = np.random.RandomState(2)
    b, M = rng.randn(40), rng.randn(5, 40)
    runs = [
        ShiftedLanczos(_MatrixOperator(A, M), b, max_steps=500, stored_steps=stored)
        for stored in (500, 500, 8)
    ]
    large, small = runs[0].solve(10.0, 1e-10), runs[0].solve(0.1, 1e-10)
    assert large[0] < small[0]
    for run in runs[1:]:
        for expected, shift in ((small, 0.1), (large, 10.0)):
            k, observed, derivative = run.solve(shift, 1e-10)
            assert k == expected[0]
            np.testing.assert_allclose(observed, expected[1], rtol=1e-10)
            np.testing.assert_allclose(derivative, expected[2], rtol=1e-8)


def test_a_run_stops_at_max_steps_and_at_an_invariant_space():
    A = _spd(30, 1e-1, 1e1)
    b = np.random.RandomState(0).randn(30)
    for stored in (5, 2):
        run = ShiftedLanczos(_MatrixOperator(A, np.eye(30)), b, 5, stored)
        assert run.solve(1e-3, 1e-12) is None
        assert run.n_steps == 5 and run.n_stored == stored
    # b in a 3-dimensional invariant subspace: the third step is exact.
    vectors = np.linalg.eigh(A)[1][:, [0, 15, 29]]
    run = ShiftedLanczos(_MatrixOperator(A, np.eye(30)), vectors @ [1, 2, 3], 100, 100)
    assert run.solve(1e-3, 1e-13)[0] == 3
    # The whole space: the recurrence breaks down, every shift is solved.
    for stored in (100, 0):
        run = ShiftedLanczos(
            _MatrixOperator(2 * np.eye(30), np.eye(30)), b, 100, stored
        )
        assert run.solve(1.0, 1e-14)[0] == 1 and run.exhausted
        k, observed, _ = run.solve(1e-6, 1e-20)
        assert k == 1 == run.n_steps
        np.testing.assert_allclose(observed, b / (2 + 1e-6), rtol=1e-14)
        np.testing.assert_allclose(run.solution(1e-6, 1, b), b / (2 + 1e-6))
    zero = ShiftedLanczos(_MatrixOperator(A, np.eye(30)), np.zeros(30), 100, 100)
    k, observed, _ = zero.solve(1.0, 1e-12)
    assert k == 0 and not observed.any()


def _sparse_regression(n, p, seed=0):
    rng = np.random.RandomState(seed)
    X = sp.random(n, p, density=0.2, random_state=rng, format="csr")
    X.data = 3 * X.data + 1
    y = X @ rng.randn(p) + 0.5 * rng.randn(n) + 2.0
    return X, y


def _folds(monkeypatch, shape, dense, fit_intercept=True, weights=True):
    """The same split solved by decomposition and by Lanczos runs."""
    X, y = _sparse_regression(shape[0] + 30, shape[1])
    if dense:
        X = X.toarray()
    sample_weight = (
        np.random.RandomState(2).uniform(0.5, 2.0, shape[0]) if weights else None
    )
    split = X[: shape[0]], y[: shape[0]], X[shape[0] :], y[shape[0] :]
    estimator = Ridge(fit_intercept=fit_intercept)
    exact = make_fold(RidgeModel(), estimator, *split, sample_weight)
    with monkeypatch.context() as patch:
        patch.setattr(_ridge, "_EXPECTED_ITERATIONS", 0)
        fold = make_fold(RidgeModel(), estimator, *split, sample_weight)
    assert exact.method != "iterative" and fold.method == "iterative"
    return exact, fold, split, sample_weight


# The normal equations (p <= n) and the dual system (n < p).
SHAPES = [(90, 12), (45, 70)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_lanczos_fold_equals_the_closed_form_at_small_and_large_alpha(
    shape, dense, fit_intercept, monkeypatch
):
    exact, fold, split, weights = _folds(monkeypatch, shape, dense, fit_intercept)
    for alpha in ALPHAS:
        ours = fold.solve({"alpha": alpha}, differentiate=True)
        assert isinstance(ours, _ridge._KrylovSolution)
        reference = exact.solve({"alpha": alpha}, differentiate=True)
        np.testing.assert_allclose(ours.loss, reference.loss, rtol=1e-8)
        np.testing.assert_allclose(
            ours.hypergradient(["alpha"])["alpha"],
            reference.hypergradient(["alpha"])["alpha"],
            rtol=1e-8,
        )
        # The coefficients, by the second pass, are scikit-learn's.
        fitted = ours.fitted_estimator()
        sklearn = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(
            split[0].toarray() if sp.issparse(split[0]) else split[0],
            split[1],
            sample_weight=weights,
        )
        scale = np.abs(sklearn.coef_).max()
        np.testing.assert_allclose(fitted.coef_, sklearn.coef_, atol=1e-8 * scale)
        np.testing.assert_allclose(fitted.intercept_, sklearn.intercept_, rtol=1e-8)
        # and predict the loss the search reports.
        predictions = fitted.predict(split[2])
        np.testing.assert_allclose(
            np.mean((predictions - split[3]) ** 2), ours.loss, rtol=1e-10
        )


@pytest.mark.parametrize("shape", SHAPES)
def test_lanczos_hypergradient_matches_finite_differences_and_implicit(
    shape, monkeypatch
):
    _, fold, _, _ = _folds(monkeypatch, shape, dense=False)
    for alpha in (1e-2, 3.0):
        solution = fold.solve({"alpha": alpha}, differentiate=True)
        grad = solution.hypergradient(["alpha"])["alpha"]
        # Implicit differentiation of conjugate gradient's solution (the
        # path of an alpha the runs cannot reach).
        implicit = _ridge._RidgeSolution(fold, alpha).hypergradient(["alpha"])
        np.testing.assert_allclose(grad, implicit["alpha"], rtol=1e-8)

        def loss_at_log_alpha(log_alpha):
            return fold.solve({"alpha": float(np.exp(log_alpha))}).loss

        fd = central_difference(loss_at_log_alpha, np.log(alpha), step=1e-4)
        np.testing.assert_allclose(
            alpha * grad, fd, rtol=1e-5, atol=1e-9 * solution.loss
        )


def test_beyond_the_memory_budget_the_runs_go_on(monkeypatch):
    # 30 validation rows: room for 12 steps, enough at a large alpha only.
    monkeypatch.setattr(_ridge, "KRYLOV_MAX_BYTES", 12 * 30 * 8)
    exact, fold, _, _ = _folds(monkeypatch, (45, 70), dense=False)
    large = fold.solve({"alpha": 1e3}, differentiate=True)
    small = fold.solve({"alpha": 1e-3}, differentiate=True)
    assert large._steps[0] <= 12 < small._steps[0]
    assert fold.runs.nbytes <= _ridge.KRYLOV_MAX_BYTES
    for solution in (large, small):
        assert isinstance(solution, _ridge._KrylovSolution)
        reference = exact.solve({"alpha": solution.alpha}, differentiate=True)
        np.testing.assert_allclose(solution.loss, reference.loss, rtol=1e-8)
        np.testing.assert_allclose(
            solution.hypergradient(["alpha"])["alpha"],
            reference.hypergradient(["alpha"])["alpha"],
            rtol=1e-8,
        )
        np.testing.assert_allclose(
            solution.fitted_estimator().coef_,
            reference.fitted_estimator().coef_,
            rtol=1e-8,
            atol=1e-12,
        )


def test_conjugate_gradient_takes_over_where_the_runs_cannot(monkeypatch):
    # Columns scaled over four decades: the diagonal preconditioner of
    # conjugate gradient needs 12 iterations, the unpreconditioned Lanczos
    # runs about 30.
    rng = np.random.RandomState(0)
    scales = np.logspace(-2, 2, 12)
    X = rng.randn(120, 12) * scales
    y = X @ (rng.randn(12) / scales) + rng.randn(120)
    split = X[:90], y[:90], X[90:], y[90:]
    exact = make_fold(RidgeModel(), Ridge(), *split)
    monkeypatch.setattr(_ridge, "_EXPECTED_ITERATIONS", 0)
    monkeypatch.setattr(_ridge, "CG_MAX_ITER", 20)
    fold = make_fold(RidgeModel(), Ridge(), *split)
    assert fold.method == "iterative"
    solution = fold.solve({"alpha": 1e-3}, differentiate=True)
    assert not isinstance(solution, _ridge._KrylovSolution)
    # A smaller alpha is not tried on the runs again.
    run = fold.runs.runs[0]
    monkeypatch.setattr(run, "solve", lambda *args: pytest.fail("tried again"))
    assert fold.runs.solve(1e-4, 1e-12) is None
    reference = exact.solve({"alpha": 1e-3}, differentiate=True)
    np.testing.assert_allclose(solution.loss, reference.loss, rtol=1e-8)
    np.testing.assert_allclose(
        solution.hypergradient(["alpha"])["alpha"],
        reference.hypergradient(["alpha"])["alpha"],
        rtol=1e-7,
    )


def test_inexact_solves_stop_at_tol_on_the_shared_run(monkeypatch):
    _, fold, _, _ = _folds(monkeypatch, (45, 70), dense=False)
    inexact = fold.solve({"alpha": 1e-2}, exact=False)
    exact = fold.solve({"alpha": 1e-2})
    assert not inexact.exact and exact.exact
    assert inexact._steps[0] < exact._steps[0]
    assert inexact.loss == pytest.approx(exact.loss, rel=1e-2)
    with pytest.raises(RuntimeError, match="no hypergradient"):
        inexact.hypergradient(["alpha"])


def test_constant_target_and_several_targets(monkeypatch):
    X, _ = _sparse_regression(75, 70)
    Y = np.column_stack([np.full(75, 3.0), np.random.RandomState(0).randn(75)])
    split = X[:45], Y[:45], X[45:], Y[45:]
    exact = make_fold(RidgeModel(), Ridge(), *split)
    monkeypatch.setattr(_ridge, "_EXPECTED_ITERATIONS", 0)
    fold = make_fold(RidgeModel(), Ridge(), *split)
    ours, reference = fold.solve({"alpha": 0.5}), exact.solve({"alpha": 0.5})
    assert ours._steps[0] == 0
    np.testing.assert_allclose(ours.loss, reference.loss, rtol=1e-10)
    coef = ours.fitted_estimator().coef_
    assert not coef[0].any()
    np.testing.assert_allclose(
        coef, reference.fitted_estimator().coef_, atol=1e-10 * np.abs(coef).max()
    )


def test_lanczos_folds_keep_the_model_contract_and_pickle(monkeypatch):
    X, y = _sparse_regression(90, 120)
    with monkeypatch.context() as patch:
        patch.setattr(_ridge, "_EXPECTED_ITERATIONS", 0)
        check_differentiable_model(
            RidgeModel(), Ridge(), X.toarray(), y, params={"alpha": 0.5}
        )
    _, fold, _, _ = _folds(monkeypatch, (45, 70), dense=False)
    solution = fold.solve({"alpha": 0.5})
    copied = pickle.loads(pickle.dumps(fold))
    assert copied.solve({"alpha": 0.5}).loss == solution.loss
    assert copied.solve({"alpha": 1e-3}).loss == fold.solve({"alpha": 1e-3}).loss

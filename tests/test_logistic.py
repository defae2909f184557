"""The LogisticRegression model: parity with scikit-learn, exact hypergradients,
and end to end through HypergradSearchCV and cross_val_hypergrad."""

import contextlib
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from autograd import grad, hessian, make_hvp
from sklearn.base import clone
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    make_classification,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV, cross_val_hypergrad
from skhypergrad._models import _logistic, _logistic_solver
from skhypergrad._models._implicit import conjugate_gradient, implicit_hypergradient
from skhypergrad._models._logistic import (
    LogisticRegressionModel,
    _train_objective,
    _validation_loss,
)

from ._numeric import central_difference, make_fold, value_and_grad
from ._versions import requires_sklearn, sklearn_at_least

# Before scikit-learn 1.8, fit ignores l1_ratio unless penalty="elasticnet":
# with the default penalty="l2", LogisticRegression(l1_ratio=1.0) is an L2
# model, which the search supports.
requires_l1_ratio_penalty = requires_sklearn(
    "1.8", "l1_ratio selects the penalty only from 1.8 (penalty='l2' ignores it)"
)


def _standardized(X):
    return StandardScaler().fit_transform(X)


def _dataset(name):
    """Small, bundled, seeded classification problems, split in two."""
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
    elif name == "iris":
        X, y = load_iris(return_X_y=True)
    elif name == "digits":
        X, y = load_digits(n_class=4, return_X_y=True)
        X, y = X[:300, ::4], y[:300]  # 16 pixels: keeps the reference fits fast
    elif name == "binary":
        X, y = make_classification(200, 8, n_informative=4, random_state=0)
    elif name == "multiclass":
        X, y = make_classification(
            240, 6, n_informative=4, n_classes=3, n_clusters_per_class=1, random_state=0
        )
    elif name == "strings":
        X, y = load_iris(return_X_y=True)
        y = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    elif name == "binary_strings":
        X, y = make_classification(200, 8, n_informative=4, random_state=0)
        y = np.array(["no", "yes"])[y]
    X_train, X_val, y_train, y_val = train_test_split(
        _standardized(X), y, test_size=0.3, stratify=y, random_state=0
    )
    return X_train, y_train, X_val, y_val


def _sparsified(X):
    """``X`` with its small entries zeroed (about half of them), still dense."""
    return np.where(np.abs(X) > 0.6, X, 0.0)


def _as_input(split, input_kind):
    """A split's arrays as given: dense, or sparsified and in CSR format."""
    X_train, y_train, X_val, y_val = split
    if input_kind == "sparse":
        X_train, X_val = (
            sp.csr_matrix(_sparsified(X_train)),
            sp.csr_matrix(_sparsified(X_val)),
        )
    return X_train, y_train, X_val, y_val


def _sample_weight(n):
    return np.random.RandomState(0).uniform(0.2, 3.0, n)


def _reference(estimator, X, y, sample_weight=None):
    """sklearn's own fit, solved far below its default tolerance.

    lbfgs stops on its function-decrease test near 1e-7 relative accuracy, so
    the tight reference is sklearn's newton-cholesky (the same objective);
    liblinear is its own reference.
    """
    if estimator.solver != "liblinear":
        estimator = estimator.set_params(solver="newton-cholesky")
    return estimator.set_params(tol=1e-12, max_iter=1000).fit(
        X, y, sample_weight=sample_weight
    )


PARITY_CASES = {
    "binary": ("binary", {}, False),
    "binary-no-intercept": ("binary", {"fit_intercept": False}, False),
    "multiclass": ("multiclass", {}, False),
    "multiclass-no-intercept": ("multiclass", {"fit_intercept": False}, False),
    "iris": ("iris", {}, False),
    "digits": ("digits", {}, False),
    "balanced": ("breast_cancer", {"class_weight": "balanced"}, False),
    "class-weight-dict": ("iris", {"class_weight": {0: 1.0, 1: 3.0, 2: 0.5}}, False),
    "sample-weight": ("multiclass", {}, True),
    "balanced-and-sample-weight": ("binary", {"class_weight": "balanced"}, True),
    "strings": ("strings", {"class_weight": {"setosa": 2.0}}, False),
    "binary-strings": ("binary_strings", {}, True),
    "newton-cholesky": ("multiclass", {"solver": "newton-cholesky"}, False),
    "liblinear": ("binary", {"solver": "liblinear", "intercept_scaling": 2.0}, True),
    "liblinear-no-intercept": (
        "binary",
        {"solver": "liblinear", "fit_intercept": False},
        False,
    ),
}


@pytest.mark.parametrize("input_kind", ["dense", "sparse"])
@pytest.mark.parametrize("C", [0.05, 1.0, 20.0])
@pytest.mark.parametrize("case", PARITY_CASES)
def test_fold_matches_sklearn_fit(case, C, input_kind):
    data, settings, weighted = PARITY_CASES[case]
    X_train, y_train, X_val, y_val = _as_input(_dataset(data), input_kind)
    sample_weight = _sample_weight(X_train.shape[0]) if weighted else None
    estimator = LogisticRegression(**settings)

    fold = make_fold(
        LogisticRegressionModel(),
        estimator,
        X_train,
        y_train,
        X_val,
        y_val,
        sample_weight,
    )
    solution = fold.solve({"C": C})
    loss = solution.loss
    ours = solution.fitted_estimator()
    reference = _reference(
        LogisticRegression(C=C, **settings), X_train, y_train, sample_weight
    )

    assert ours.C == C and estimator.C == 1.0
    np.testing.assert_array_equal(ours.classes_, reference.classes_)
    assert ours.coef_.shape == reference.coef_.shape
    assert np.shape(ours.intercept_) == np.shape(reference.intercept_)
    assert ours.n_features_in_ == reference.n_features_in_
    assert ours.n_iter_.shape == reference.n_iter_.shape == (1,)
    scale = np.abs(reference.coef_).max()
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(
        ours.intercept_, reference.intercept_, rtol=0, atol=1e-6 * max(scale, 1.0)
    )
    np.testing.assert_allclose(
        ours.predict_proba(X_val), reference.predict_proba(X_val), atol=1e-7
    )
    np.testing.assert_array_equal(ours.predict(X_val), reference.predict(X_val))
    # The differentiated loss is sklearn's log_loss of the fitted model.
    np.testing.assert_allclose(
        loss, log_loss(y_val, reference.predict_proba(X_val)), rtol=1e-7
    )


@pytest.mark.parametrize("case", ["binary", "iris", "balanced-and-sample-weight"])
def test_fold_matches_sklearn_default_lbfgs_to_its_tolerance(case):
    data, settings, weighted = PARITY_CASES[case]
    X_train, y_train, X_val, y_val = _dataset(data)
    sample_weight = _sample_weight(X_train.shape[0]) if weighted else None
    fold = make_fold(
        LogisticRegressionModel(),
        LogisticRegression(**settings),
        X_train,
        y_train,
        X_val,
        y_val,
        sample_weight,
    )
    solution = fold.solve({"C": 1.0})
    reference = LogisticRegression(**settings).fit(X_train, y_train, sample_weight)
    np.testing.assert_allclose(
        solution.fitted_estimator().predict_proba(X_val),
        reference.predict_proba(X_val),
        atol=1e-3,
    )


def test_empty_params_solve_at_the_estimators_C():
    X_train, y_train, X_val, y_val = _dataset("binary")
    fold = make_fold(
        LogisticRegressionModel(),
        LogisticRegression(C=0.3),
        X_train,
        y_train,
        X_val,
        y_val,
    )
    ours = fold.solve({}).fitted_estimator()
    reference = _reference(LogisticRegression(C=0.3), X_train, y_train)
    assert ours.C == 0.3
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-7)


def test_empty_params_gives_the_loss_only():
    X_train, y_train, X_val, y_val = _dataset("iris")
    fold = make_fold(
        LogisticRegressionModel(),
        LogisticRegression(C=2.0),
        X_train,
        y_train,
        X_val,
        y_val,
    )
    loss, grads, solution = value_and_grad(fold, {})
    assert grads == {}
    expected = log_loss(y_val, solution.fitted_estimator().predict_proba(X_val))
    np.testing.assert_allclose(loss, expected, rtol=1e-10)
    assert solution.fitted_estimator().C == 2.0


def test_log_loss_is_clipped_as_sklearns():
    """Confidently wrong validation samples cost -log(eps), as in log_loss."""
    rng = np.random.RandomState(0)
    X_train = rng.normal(size=(60, 2))
    y_train = (X_train[:, 0] > 0).astype(int)
    X_val = np.array([[8.0, 0.0], [-8.0, 0.0], [0.3, 0.1], [-0.2, 0.5]])
    y_val = np.array([0, 1, 1, 0])  # the first two are far on the wrong side
    fold = make_fold(
        LogisticRegressionModel(),
        LogisticRegression(tol=1e-15),
        X_train,
        y_train,
        X_val,
        y_val,
    )
    C = 100.0
    loss, grads, solution = value_and_grad(fold, {"C": C})
    proba = solution.fitted_estimator().predict_proba(X_val)
    assert proba.min() < np.finfo(float).eps  # the clip is active
    assert loss == pytest.approx(log_loss(y_val, proba), rel=1e-12)

    def loss_at(log_C):
        return fold.solve({"C": float(np.exp(log_C))}).loss

    expected = central_difference(loss_at, np.log(C), 1e-4)
    assert C * grads["C"] == pytest.approx(expected, rel=1e-5)


GRADIENT_CASES = {
    "binary": ("breast_cancer", {}, False),
    "binary-no-intercept": ("binary", {"fit_intercept": False}, False),
    "binary-weighted": ("binary", {"class_weight": "balanced"}, True),
    "multiclass": ("iris", {}, False),
    "multiclass-no-intercept": ("multiclass", {"fit_intercept": False}, False),
    "multiclass-weighted": ("multiclass", {"class_weight": {0: 2.0}}, True),
    "digits": ("digits", {}, False),
    "liblinear": ("binary", {"solver": "liblinear", "intercept_scaling": 0.5}, False),
}


@pytest.mark.parametrize("input_kind", ["dense", "sparse"])
@pytest.mark.parametrize("conjugate_gradient", [False, True], ids=["direct", "cg"])
@pytest.mark.parametrize("C", [0.01, 0.5, 30.0])
@pytest.mark.parametrize("case", GRADIENT_CASES)
def test_hypergradient_matches_central_differences(
    case, C, conjugate_gradient, input_kind, monkeypatch
):
    if conjugate_gradient:
        # Jacobi-preconditioned CG instead of the Cholesky preconditioner.
        monkeypatch.setattr(_logistic_solver, "_MAX_DIRECT_PARAMS", 0)
    data, settings, weighted = GRADIENT_CASES[case]
    X_train, y_train, X_val, y_val = _as_input(_dataset(data), input_kind)
    sample_weight = _sample_weight(X_train.shape[0]) if weighted else None
    # A tight inner tolerance, so that the finite differences are accurate.
    estimator = LogisticRegression(tol=1e-15, max_iter=500, **settings)
    fold = make_fold(
        LogisticRegressionModel(),
        estimator,
        X_train,
        y_train,
        X_val,
        y_val,
        sample_weight,
    )

    def loss_at(log_C):
        return fold.solve({"C": float(np.exp(log_C))}).loss

    log_C = np.log(C)
    loss, grads, solution = value_and_grad(fold, {"C": C})
    assert loss == pytest.approx(loss_at(log_C), rel=1e-12)
    expected = central_difference(loss_at, log_C, 1e-4)
    # d loss / d log C = C * d loss / d C
    assert C * grads["C"] == pytest.approx(expected, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("data", ["breast_cancer", "iris"])
def test_numpy_solver_matches_autograd_of_the_traced_objective(data):
    """The hand-written gradient, Hessian and HVPs equal autograd's."""
    X_train, y_train, X_val, y_val = _dataset(data)
    fold = make_fold(
        LogisticRegressionModel(), LogisticRegression(), X_train, y_train, X_val, y_val
    )
    solution = fold.solve({"C": 3.0})
    objective, theta, args = fold.objective, solution.theta, fold.train_args
    C = 3.0
    l2 = 1.0 / (C * fold.weight_sum)

    value, gradient, proba = objective.value_grad(theta, l2)
    np.testing.assert_allclose(value, _train_objective(theta, C, *args), rtol=1e-12)
    np.testing.assert_allclose(
        gradient, grad(_train_objective)(theta, C, *args), atol=1e-14
    )
    exact = hessian(_train_objective)(theta, C, *args)
    np.testing.assert_allclose(objective.hessian(l2, proba), exact, atol=1e-12)
    direction = np.random.RandomState(0).normal(size=len(theta))
    np.testing.assert_allclose(
        objective.hessp(l2, proba)(direction), exact @ direction, atol=1e-12
    )
    np.testing.assert_allclose(
        objective.hessian_diagonal(l2, proba), np.diag(exact), atol=1e-14
    )
    # At the optimum, the traced objective's gradient vanishes.
    assert np.max(np.abs(gradient)) <= fold.gtol


def _autograd_solve(train_objective, theta, hyper, train_args):
    """The generic adjoint solve: CG on autograd's Hessian-vector products."""
    hvp, _ = make_hvp(train_objective)(theta, hyper, *train_args)
    return lambda b: conjugate_gradient(hvp, b, rtol=1e-12, max_iter=10 * len(b))[0]


@pytest.mark.parametrize("data", ["breast_cancer", "iris", "digits"])
def test_adjoint_solve_matches_autograd_hessian_vector_products(data):
    X_train, y_train, X_val, y_val = _dataset(data)
    fold = make_fold(
        LogisticRegressionModel(),
        LogisticRegression(tol=1e-15),
        X_train,
        y_train,
        X_val,
        y_val,
    )
    loss, grads, solution = value_and_grad(fold, {"C": 2.0})
    theta, args = solution.theta, fold.train_args
    # The whole traced training objective as the mixed term, and autograd's
    # Hessian-vector products for the adjoint solve.
    reference = implicit_hypergradient(
        lambda theta: _validation_loss(theta, *fold.val_args),
        theta,
        _autograd_solve(_train_objective, theta, 2.0, args),
        lambda theta, h: _train_objective(theta, h["C"], *args),
        {"C": 2.0},
    )
    np.testing.assert_allclose(
        _validation_loss(theta, *fold.val_args), loss, rtol=1e-12
    )
    np.testing.assert_allclose(reference["C"], grads["C"], rtol=1e-7)


@pytest.mark.parametrize("C", [30.0, 1e3])
def test_adjoint_tolerance_leaves_the_hypergradient_exact(monkeypatch, C):
    """The adjoint's residual of 1e-8 moves the hypergradient by far less than
    finite differences can see (conjugate gradient on sparse multinomial data,
    with a weak penalty: the slowest solves)."""
    monkeypatch.setattr(_logistic_solver, "_MAX_DIRECT_PARAMS", 0)
    X_train, y_train, X_val, y_val = _as_input(_dataset("multiclass"), "sparse")

    def hypergradient(adjoint_rtol):
        monkeypatch.setattr(_logistic, "_ADJOINT_RTOL", adjoint_rtol)
        fold = make_fold(
            LogisticRegressionModel(),
            LogisticRegression(tol=1e-15),
            X_train,
            y_train,
            X_val,
            y_val,
        )
        return value_and_grad(fold, {"C": C})[1]["C"]

    assert _logistic._ADJOINT_RTOL == 1e-8
    assert hypergradient(1e-8) == pytest.approx(hypergradient(1e-14), rel=1e-6)


def test_warm_start_uses_fewer_newton_iterations():
    X_train, y_train, X_val, y_val = _dataset("digits")
    model, estimator = LogisticRegressionModel(), LogisticRegression()
    cold = make_fold(model, estimator, X_train, y_train, X_val, y_val).solve({"C": 2.2})
    warm_fold = make_fold(model, estimator, X_train, y_train, X_val, y_val)
    warm_fold.solve({"C": 2.0})
    warm = warm_fold.solve({"C": 2.2})

    assert cold.n_iter >= 4
    assert warm.n_iter <= cold.n_iter - 2
    np.testing.assert_allclose(
        warm.fitted_estimator().coef_, cold.fitted_estimator().coef_, atol=1e-6
    )


def test_warm_start_extrapolates_along_the_path():
    """After two solves, the line through them is a closer start."""
    X_train, y_train, X_val, y_val = _dataset("iris")
    model, estimator = LogisticRegressionModel(), LogisticRegression()
    previous_only = make_fold(model, estimator, X_train, y_train, X_val, y_val)
    value_and_grad(previous_only, {"C": 1.5})
    *_, from_previous = value_and_grad(previous_only, {"C": 1.8})

    extrapolated = make_fold(model, estimator, X_train, y_train, X_val, y_val)
    for C in (1.2, 1.5, 1.8):
        *_, from_line = value_and_grad(extrapolated, {"C": C})
    assert from_line.fitted_estimator().n_iter_[0] < from_previous.n_iter
    assert from_line.n_iter == from_line.fitted_estimator().n_iter_[0]


def test_cholesky_preconditioner_is_reused_across_calls(monkeypatch):
    X, y = load_digits(n_class=5, return_X_y=True)  # 5 * 65 = 325 parameters
    X_train, X_val, y_train, y_val = train_test_split(
        _standardized(X), y, test_size=0.3, stratify=y, random_state=0
    )
    fold = make_fold(
        LogisticRegressionModel(), LogisticRegression(), X_train, y_train, X_val, y_val
    )
    assert fold.hessian_solver.refresh_after == 30
    factorizations = []
    dpotrf = _logistic_solver.lapack.dpotrf

    def counted_dpotrf(*args, **kwargs):
        factorizations.append(1)
        return dpotrf(*args, **kwargs)

    monkeypatch.setattr(_logistic_solver.lapack, "dpotrf", counted_dpotrf)
    for C in np.geomspace(0.5, 2.0, 8):
        fold.solve({"C": C}).hypergradient(["C"])
    assert 1 <= len(factorizations) <= 4


@pytest.mark.parametrize("C, jacobi", [(1e-4, True), (10.0, False)])
def test_jacobi_preconditioner_only_under_a_dominant_penalty(monkeypatch, C, jacobi):
    """A strong penalty needs no factorization; a weak one factorizes at once."""
    X, y = load_digits(n_class=5, return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(
        _standardized(X), y, test_size=0.3, stratify=y, random_state=0
    )
    fold = make_fold(
        LogisticRegressionModel(), LogisticRegression(), X_train, y_train, X_val, y_val
    )
    calls = {"jacobi": 0, "cholesky": 0}
    diagonal = _logistic_solver._diagonal_preconditioner
    dpotrf = _logistic_solver.lapack.dpotrf

    def counted_diagonal(*args, **kwargs):
        calls["jacobi"] += 1
        return diagonal(*args, **kwargs)

    def counted_dpotrf(*args, **kwargs):
        calls["cholesky"] += 1
        return dpotrf(*args, **kwargs)

    monkeypatch.setattr(_logistic_solver, "_diagonal_preconditioner", counted_diagonal)
    monkeypatch.setattr(_logistic_solver.lapack, "dpotrf", counted_dpotrf)
    solution = fold.solve({"C": C})
    solution.hypergradient(["C"])
    assert (calls["jacobi"] > 0, calls["cholesky"] > 0) == (jacobi, not jacobi)
    reference = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12).fit(
        X_train, y_train
    )
    np.testing.assert_allclose(
        solution.fitted_estimator().coef_, reference.coef_, rtol=1e-5, atol=1e-7
    )


def test_multinomial_intercepts_stay_centered():
    """Shifting every intercept changes nothing; lbfgs and we keep them centered."""
    X_train, y_train, X_val, y_val = _dataset("iris")
    fold = make_fold(
        LogisticRegressionModel(), LogisticRegression(), X_train, y_train, X_val, y_val
    )
    for C in (0.1, 10.0, 1e3):
        solution = fold.solve({"C": C})
        assert abs(solution.fitted_estimator().intercept_.sum()) < 1e-10


def test_max_iter_too_small_warns():
    X_train, y_train, X_val, y_val = _dataset("breast_cancer")
    fold = make_fold(
        LogisticRegressionModel(),
        LogisticRegression(max_iter=1),
        X_train,
        y_train,
        X_val,
        y_val,
    )
    with pytest.warns(ConvergenceWarning, match=r"max_iter=1 .*Increase .*max_iter"):
        loss, grads, solution = value_and_grad(fold, {"C": 100.0})
    assert np.isfinite(loss) and np.isfinite(grads["C"])

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        value_and_grad(
            make_fold(
                LogisticRegressionModel(),
                LogisticRegression(),
                X_train,
                y_train,
                X_val,
                y_val,
            ),
            {"C": 100.0},
        )


@pytest.mark.parametrize(
    "settings",
    [
        {"penalty": "l2"},
        {"l1_ratio": 0.0},
        {"solver": "sag"},
        {"solver": "saga"},
        {"solver": "newton-cg"},
        {"solver": "liblinear", "dual": True},
        {"penalty": "l2", "solver": "liblinear"},
    ],
)
def test_supported_settings_are_accepted(settings):
    # Building the estimator and checking it warns about nothing; sklearn's
    # FutureWarning for penalty= is raised by its fit, which we never call.
    LogisticRegressionModel().check_estimator(LogisticRegression(**settings))


@pytest.mark.parametrize(
    "settings, match",
    [
        pytest.param(
            {"l1_ratio": 1.0},
            r"l1_ratio=1.0\).*L1 .*Only the L2 penalty.*C\. Set l1_ratio=0",
            marks=requires_l1_ratio_penalty,
        ),
        pytest.param(
            {"l1_ratio": 0.5, "solver": "saga"},
            r"l1_ratio=0.5\).*not differentiable",
            marks=requires_l1_ratio_penalty,
        ),
        ({"penalty": "l1", "solver": "liblinear"}, r"penalty='l1'\).*L1"),
        (
            {"penalty": "elasticnet", "l1_ratio": 0.5, "solver": "saga"},
            r"penalty='elasticnet'\).*tunable hyperparameter is C",
        ),
        ({"penalty": None}, r"penalty=None\) is not penalized.*no C.*leave penalty"),
        ({"dual": True}, r"Solver lbfgs supports only dual=False"),
    ],
)
def test_unsupported_settings_are_refused(settings, match):
    with pytest.raises(ValueError, match=match):
        LogisticRegressionModel().check_estimator(LogisticRegression(**settings))


def _single_class_fold():
    X_train, y_train, X_val, y_val = _dataset("binary")
    return X_train[y_train == 1], y_train[y_train == 1], X_val, y_val


def _unseen_label_fold():
    X_train, y_train, X_val, y_val = _dataset("iris")
    return X_train[y_train < 2], y_train[y_train < 2], X_val, y_val


def _multiclass_fold():
    return _dataset("iris")


def _continuous_fold():
    X_train, y_train, X_val, y_val = _dataset("binary")
    return X_train, y_train + 0.5, X_val, y_val


@pytest.mark.parametrize(
    "split, settings, match",
    [
        (
            _single_class_fold,
            {},
            # The class's repr ends the message: np.int64(1) with NumPy 2, 1 before.
            "This solver needs samples of at least 2 classes in the data, but the "
            "data contains only one class: " + re.escape(repr(np.int64(1))) + "$",
        ),
        (_multiclass_fold, {"solver": "liblinear"}, r"'liblinear' solver does not"),
        (_continuous_fold, {}, r"Unknown label type"),
    ],
)
def test_bad_folds_are_refused(split, settings, match):
    with pytest.raises(ValueError, match=match):
        make_fold(LogisticRegressionModel(), LogisticRegression(**settings), *split())


def test_a_class_the_training_fold_lacks_costs_the_clipped_log_loss():
    """D1: log_loss with all the labels gives the unseen class probability 0,
    clipped to eps; GridSearchCV scores such a fold, and so does the search."""
    X_train, y_train, X_val, y_val = _unseen_label_fold()
    # A tight inner tolerance, so that the finite differences are accurate.
    estimator = LogisticRegression(tol=1e-15, max_iter=500)
    fold = make_fold(
        LogisticRegressionModel(), estimator, X_train, y_train, X_val, y_val
    )
    loss, grads, solution = value_and_grad(fold, {"C": 0.7})
    proba = solution.fitted_estimator().predict_proba(X_val)
    all_labels = np.column_stack([proba, np.zeros(len(proba))])
    assert loss == pytest.approx(log_loss(y_val, all_labels, labels=[0, 1, 2]))
    # The unseen class's part does not depend on C: the gradient is that of
    # the seen samples.
    expected = central_difference(
        lambda log_C: fold.solve({"C": float(np.exp(log_C))}).loss, np.log(0.7), 1e-4
    )
    assert 0.7 * grads["C"] == pytest.approx(expected, rel=1e-5)


def test_extreme_C_gives_finite_hypergradients():
    """B7: no overflow at a huge C, no NaN at a tiny one."""
    X, y = load_breast_cancer(return_X_y=True)
    X = _standardized(X)
    cv = StratifiedKFold(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for C in (1e160, 1e300, 1e-210):
            loss, grads = cross_val_hypergrad(
                LogisticRegression(), X, y, params={"C": C}, cv=cv
            )
            assert np.isfinite(loss) and np.isfinite(grads["C"])
        # Without an intercept, the derivative at C = 1e-210 is that of the
        # linear regime of small C, exactly.
        small = [
            cross_val_hypergrad(
                LogisticRegression(fit_intercept=False), X, y, params={"C": C}, cv=cv
            )[1]["C"]
            for C in (1e-210, 1e-150)
        ]
    assert small[0] == pytest.approx(small[1], rel=1e-9)


@pytest.mark.parametrize("C", [0.0, -1.0, np.inf, np.nan])
def test_C_must_be_finite_and_positive(C):
    fold = make_fold(
        LogisticRegressionModel(), LogisticRegression(), *_dataset("binary")
    )
    with pytest.raises(ValueError, match=r"finite positive C.*got C="):
        fold.solve({"C": C})


def test_registered_for_logistic_regression():
    from skhypergrad._models import get_model

    assert isinstance(get_model(LogisticRegression()), LogisticRegressionModel)


# --- End to end, through the search layer -----------------------------------

# sklearn's lbfgs stops at tol=1e-4 up to 1% away from the optimum in
# log-loss (breast_cancer at C~0.6: 1.4e-3 relative, iris at C~64: 8.8e-3),
# while the search trains to the exact optimum. The comparisons with
# GridSearchCV therefore give both sides the same tight tol.
_TIGHT = {"tol": 1e-8, "max_iter": 1000}
# For grids reaching large C, where lbfgs needs thousands of iterations: the
# same objective and optimum, which is all the search uses.
_TIGHT_NEWTON = {"tol": 1e-8, "solver": "newton-cholesky"}


def _pipeline(**settings):
    return make_pipeline(StandardScaler(), LogisticRegression(**settings))


def _load(name):
    loader = {"breast_cancer": load_breast_cancer, "iris": load_iris}[name]
    return loader(return_X_y=True)


@pytest.mark.parametrize("scoring", ["neg_log_loss", "accuracy"])
@pytest.mark.parametrize("data", ["breast_cancer", "iris"])
def test_search_best_score_matches_grid_search(data, scoring):
    X, y = _load(data)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    estimator = _pipeline(**_TIGHT)
    search = HypergradSearchCV(
        estimator, {"logisticregression__C": (1e-4, 1e4)}, scoring=scoring, cv=cv
    ).fit(X, y)
    best_C = search.best_params_["logisticregression__C"]
    assert 1e-4 <= best_C <= 1e4

    grid = GridSearchCV(
        estimator, {"logisticregression__C": [best_C]}, scoring=scoring, cv=cv
    ).fit(X, y)
    assert search.best_score_ == pytest.approx(grid.best_score_, rel=1e-4)
    np.testing.assert_allclose(
        search.best_estimator_[-1].coef_, grid.best_estimator_[-1].coef_, rtol=1e-4
    )


def test_search_log_loss_optimum_beats_the_grid():
    """The gradient search lands at least as low as a 30-point grid."""
    X, y = _load("breast_cancer")
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    estimator = _pipeline(**_TIGHT_NEWTON)
    grid_C = np.geomspace(1e-4, 1e4, 30)
    search = HypergradSearchCV(
        estimator,
        {"logisticregression__C": (1e-4, 1e4)},
        scoring="neg_log_loss",
        cv=cv,
    ).fit(X, y)
    grid = GridSearchCV(
        estimator, {"logisticregression__C": grid_C}, scoring="neg_log_loss", cv=cv
    ).fit(X, y)
    assert search.best_score_ >= grid.best_score_ - 1e-7


@pytest.mark.parametrize("data, C", [("breast_cancer", 0.3), ("iris", 20.0)])
def test_cross_val_hypergrad_matches_finite_differences_and_sklearn(data, C):
    X, y = _load(data)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    estimator = _pipeline(tol=1e-14, max_iter=1000)

    def loss_at(log_C):
        params = {"logisticregression__C": float(np.exp(log_C))}
        return cross_val_hypergrad(estimator, X, y, params=params, cv=cv)[0]

    loss, grads = cross_val_hypergrad(
        estimator, X, y, params={"logisticregression__C": C}, cv=cv
    )
    expected = central_difference(loss_at, np.log(C), 1e-4)
    assert C * grads["logisticregression__C"] == pytest.approx(expected, rel=1e-5)

    scores = cross_val_score(
        clone(estimator).set_params(logisticregression__C=C, **_prefixed(_TIGHT)),
        X,
        y,
        cv=cv,
        scoring="neg_log_loss",
    )
    assert loss == pytest.approx(-scores.mean(), rel=1e-6)


def _prefixed(settings):
    return {f"logisticregression__{key}": value for key, value in settings.items()}


def test_old_penalty_spelling_searches_like_the_default():
    X, y = _load("breast_cancer")
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    space = {"logisticregression__C": (1e-3, 1e3)}
    default = HypergradSearchCV(_pipeline(), space, scoring="neg_log_loss", cv=cv)
    default.fit(X, y)
    old = HypergradSearchCV(
        _pipeline(penalty="l2"), space, scoring="neg_log_loss", cv=cv
    )
    # The search itself never calls LogisticRegression.fit; the final refit
    # does, and sklearn 1.8+ deprecates the penalty parameter there (before,
    # the suite's filters make any FutureWarning an error).
    if sklearn_at_least("1.8"):
        refit_warns = pytest.warns(FutureWarning, match="'penalty' was deprecated")
    else:
        refit_warns = contextlib.nullcontext()
    with refit_warns:
        old.fit(X, y)
    assert old.best_params_ == default.best_params_
    assert old.best_score_ == default.best_score_


@pytest.mark.parametrize("n_init", [1, 2, 3])
def test_search_leaves_the_flat_end_of_the_range(n_init):
    """At C=1e-8 the model predicts the class prior whatever the sample.

    With n_init=2 the coarse pass evaluates only the two ends, and the flat
    one (loss 0.66 against 0.74 at C=1e4) is where the gradient phase starts.
    """
    X, y = _load("breast_cancer")
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    estimator = _pipeline(**_TIGHT_NEWTON)
    ends = [
        cross_val_hypergrad(estimator, X, y, params={"logisticregression__C": C}, cv=cv)
        for C in (1e-8, 1e4)
    ]
    assert ends[0][0] < ends[1][0]
    assert abs(1e-8 * ends[0][1]["logisticregression__C"]) < 1e-4  # flat

    search = HypergradSearchCV(
        estimator,
        {"logisticregression__C": (1e-8, 1e4)},
        scoring="neg_log_loss",
        cv=cv,
        n_init=n_init,
    ).fit(X, y)
    grid = GridSearchCV(
        estimator,
        {"logisticregression__C": np.geomspace(1e-2, 1e2, 21)},
        scoring="neg_log_loss",
        cv=cv,
    ).fit(X, y)
    assert 1e-2 < search.best_params_["logisticregression__C"] < 1e2
    assert search.best_score_ >= grid.best_score_ - 1e-6


def test_validation_weights_weigh_the_log_loss():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    weights = np.random.RandomState(0).uniform(0.1, 3, 169)
    fold = make_fold(
        LogisticRegressionModel(),
        LogisticRegression(),
        X[:400],
        y[:400],
        X[400:],
        y[400:],
        val_sample_weight=weights,
    )
    solution = fold.solve({"C": 0.5})
    loss = solution.loss
    expected = log_loss(
        y[400:],
        solution.fitted_estimator().predict_proba(X[400:]),
        sample_weight=weights,
    )
    np.testing.assert_allclose(loss, expected, rtol=1e-10)


def test_a_refit_far_from_the_scored_optimum_is_said():
    """lbfgs at its default tol stops short of the optimum the search scored."""
    X, y = _load("breast_cancer")
    space = {"logisticregression__C": [100.0, 1000.0]}
    loose = HypergradSearchCV(_pipeline(), space, n_iter=0, scoring="neg_log_loss")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match=r"tol=0.0001.*% above the minimum"):
            loose.fit(X, y)
    tight = HypergradSearchCV(
        _pipeline(**_TIGHT_NEWTON), space, n_iter=0, scoring="neg_log_loss"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        tight.fit(X, y)


# --- Sparse input --------------------------------------------------------------


@pytest.mark.parametrize("data", ["binary", "multiclass"])
@pytest.mark.parametrize(
    "to_sparse, dtype",
    [
        (sp.csr_matrix, np.float64),
        (sp.csc_matrix, np.float64),
        (sp.coo_matrix, np.float64),
        (sp.csr_array, np.float64),
        (sp.csr_matrix, np.float32),
    ],
    ids=["csr", "csc", "coo", "csr_array", "float32"],
)
def test_sparse_input_equals_dense(data, to_sparse, dtype):
    X_train, y_train, X_val, y_val = _dataset(data)
    X_train, X_val = (
        _sparsified(X_train).astype(dtype),
        _sparsified(X_val).astype(dtype),
    )
    sample_weight = _sample_weight(X_train.shape[0])
    estimator = LogisticRegression(class_weight="balanced")
    model = LogisticRegressionModel()
    results = []
    for X_t, X_v in ((X_train, X_val), (to_sparse(X_train), to_sparse(X_val))):
        fold = make_fold(model, estimator, X_t, y_train, X_v, y_val, sample_weight)
        results.append(value_and_grad(fold, {"C": 2.5}))
    (dense_loss, dense_grads, dense), (sparse_loss, sparse_grads, sparse) = results
    assert sp.issparse(sparse._fold.objective.X)
    np.testing.assert_allclose(sparse.theta, dense.theta, rtol=0, atol=1e-10)
    assert sparse_loss == pytest.approx(dense_loss, rel=1e-12)
    assert sparse_grads["C"] == pytest.approx(dense_grads["C"], rel=1e-8)


@pytest.mark.parametrize(
    "n_classes, conjugate_gradient", [(2, True), (3, False)], ids=["cg", "direct"]
)
def test_large_C_converges_to_sklearns_optimum(
    n_classes, conjugate_gradient, monkeypatch
):
    """At C up to 1e6 (separable: more columns than rows), sparse X."""
    if conjugate_gradient:
        monkeypatch.setattr(_logistic_solver, "_MAX_DIRECT_PARAMS", 0)
    rng = np.random.RandomState(0)
    X = sp.random(150, 150, density=0.05, random_state=rng, format="csr")
    y = rng.randint(n_classes, size=150)
    X_train, y_train, X_val, y_val = X[:100], y[:100], X[100:], y[100:]
    fold = make_fold(
        LogisticRegressionModel(), LogisticRegression(), X_train, y_train, X_val, y_val
    )
    for C in (1e4, 1e5, 1e6):
        with warnings.catch_warnings():
            # The training converges; the adjoint solve of the direct path
            # can stop at its rounding floor at C = 1e6 (said by a warning).
            warnings.filterwarnings(
                "error", "The inner solve", category=ConvergenceWarning
            )
            warnings.filterwarnings(
                "ignore", "The conjugate-gradient solve", category=ConvergenceWarning
            )
            loss, grads, solution = value_and_grad(fold, {"C": C})
        ours = solution.fitted_estimator()
        reference = _reference(LogisticRegression(C=C), X_train, y_train)
        scale = np.abs(reference.coef_).max()
        np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-6 * scale)
        np.testing.assert_allclose(
            ours.predict_proba(X_val), reference.predict_proba(X_val), atol=1e-6
        )
        assert np.isfinite(grads["C"])

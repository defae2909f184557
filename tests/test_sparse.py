"""Sparse input: never densified, the same results as dense input."""

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from autograd.test_util import check_grads
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from skhypergrad import HypergradSearchCV, cross_val_hypergrad
from skhypergrad._models import _mlp_layers as layers
from skhypergrad._models import _ridge
from skhypergrad._models._mlp import MLPClassifierModel
from skhypergrad._models._ridge import RidgeModel

from ._numeric import central_difference, make_fold, narrow_range

CV = KFold(3, shuffle=True, random_state=0)
FORMATS = ["csr", "csc", "coo"]
DTYPES = [np.float64, np.float32]


def _sparse_regression(n_samples, n_features, density=0.2, seed=0):
    rng = np.random.RandomState(seed)
    X = sp.random(
        n_samples, n_features, density=density, random_state=rng, format="csr"
    )
    X.data = 3 * X.data + 1  # nonzero means: centering matters
    y = X @ rng.randn(n_features) + 0.5 * rng.randn(n_samples) + 2.0
    return X, y


@pytest.fixture
def folds_seen(monkeypatch):
    """The X_train type and method of every Ridge fold prepared."""
    seen = []
    fold = _ridge._RidgeFold.__init__

    def spy(self, estimator, data):
        fold(self, estimator, data)
        seen.append((type(data.X_train), self.method))

    monkeypatch.setattr(_ridge._RidgeFold, "__init__", spy)
    return seen


def _force_iterative(monkeypatch):
    monkeypatch.setattr(_ridge, "_EXPECTED_ITERATIONS", 0)


# Gram (p <= n), kernel (n < p) and iterative (forced): each shape's method.
RIDGE_CASES = [
    ("gram", (90, 12)),
    ("kernel", (45, 70)),
    ("iterative", (90, 12)),
    ("iterative", (45, 70)),
]


@pytest.mark.parametrize("method, shape", RIDGE_CASES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_sparse_equals_dense(
    method, shape, fmt, dtype, fit_intercept, monkeypatch, folds_seen
):
    X, y = _sparse_regression(*shape)
    X = X.astype(dtype)
    weights = np.random.RandomState(1).uniform(0.5, 2.0, shape[0])
    estimator = Ridge(fit_intercept=fit_intercept)
    kwargs = {
        "params": {"alpha": 0.7},
        "cv": CV,
        "fit_params": {"sample_weight": weights},
    }
    dense_loss, dense_grad = cross_val_hypergrad(estimator, X.toarray(), y, **kwargs)
    assert {m for _, m in folds_seen} == {"gram" if shape[1] <= shape[0] else "kernel"}
    folds_seen.clear()
    if method == "iterative":
        _force_iterative(monkeypatch)
    loss, grad = cross_val_hypergrad(estimator, X.asformat(fmt), y, **kwargs)

    assert folds_seen == [(sp.csr_matrix, method)] * 3
    np.testing.assert_allclose(loss, dense_loss, rtol=1e-8)
    np.testing.assert_allclose(grad["alpha"], dense_grad["alpha"], rtol=1e-8)


@pytest.mark.parametrize("method, shape", RIDGE_CASES)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_sparse_ridge_fold_is_the_exact_optimum(
    method, shape, fit_intercept, monkeypatch
):
    X, y = _sparse_regression(shape[0] + 30, shape[1])
    if method == "iterative":
        _force_iterative(monkeypatch)
    weights = np.random.RandomState(2).uniform(0.5, 2.0, shape[0])
    split = X[: shape[0]], y[: shape[0]], X[shape[0] :], y[shape[0] :]
    fold = make_fold(RidgeModel(), Ridge(fit_intercept=fit_intercept), *split, weights)
    assert fold.method == method
    solution = fold.solve({"alpha": 0.3})
    ours = solution.fitted_estimator()

    dense = Ridge(alpha=0.3, fit_intercept=fit_intercept).fit(
        split[0].toarray(), split[1], sample_weight=weights
    )
    np.testing.assert_allclose(ours.coef_, dense.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.intercept_, dense.intercept_, rtol=1e-8)
    np.testing.assert_allclose(
        solution.loss, mean_squared_error(split[3], ours.predict(split[2])), rtol=1e-10
    )
    # scikit-learn's sparse fit is conjugate gradient to a residual of tol:
    # the same optimum at a tight tol; its validation MSE near ours at its
    # default 1e-4.
    for tol, rtol in [(1e-12, 1e-8), (1e-4, 1e-2)]:
        fitted = Ridge(alpha=0.3, fit_intercept=fit_intercept, tol=tol).fit(
            split[0], split[1], sample_weight=weights
        )
        np.testing.assert_allclose(
            solution.loss,
            mean_squared_error(split[3], fitted.predict(split[2])),
            rtol=rtol,
        )


@pytest.mark.parametrize("method, shape", RIDGE_CASES)
def test_sparse_ridge_hypergradient_matches_central_differences(
    method, shape, monkeypatch
):
    X, y = _sparse_regression(shape[0] + 30, shape[1])
    if method == "iterative":
        _force_iterative(monkeypatch)
    split = X[: shape[0]], y[: shape[0]], X[shape[0] :], y[shape[0] :]
    fold = make_fold(RidgeModel(), Ridge(), *split)
    assert fold.method == method
    alpha = 0.3
    solution = fold.solve({"alpha": alpha}, differentiate=True)
    grad = solution.hypergradient(["alpha"])["alpha"]

    def loss_at_log_alpha(log_alpha):
        return fold.solve({"alpha": float(np.exp(log_alpha))}).loss

    fd = central_difference(loss_at_log_alpha, np.log(alpha), step=1e-4)
    # The absolute part of the tolerance is the rounding error of the
    # difference quotient.
    np.testing.assert_allclose(alpha * grad, fd, rtol=1e-5, atol=1e-9 * solution.loss)


def test_sparse_first_layer_primitives_pass_check_grads():
    X = sp.random(6, 5, density=0.4, random_state=0, format="csr")
    layout = layers.Layer(slice(0, 15), (5, 3), slice(15, 18))
    params = np.random.RandomState(0).randn(18)
    delta = np.random.RandomState(1).randn(6, 3)
    check_grads(lambda p: layers.affine(X, p, layout), modes=["fwd", "rev"], order=1)(
        params
    )
    check_grads(
        lambda p: layers.layer_gradient(X, delta, p, 0.1, 6.0, layout),
        modes=["fwd", "rev"],
        order=1,
    )(params)


def _text_classes():
    X, y = _sparse_regression(160, 30, density=0.15, seed=3)
    return X, np.digitize(y, np.quantile(y, [0.33, 0.66]))


@pytest.mark.parametrize("early_stopping", [False, True])
def test_mlp_training_on_sparse_input_is_sklearns(early_stopping):
    X, y = _text_classes()
    estimator = MLPClassifier(
        (6,),
        max_iter=8,
        batch_size=40,
        random_state=0,
        early_stopping=early_stopping,
        validation_fraction=0.2,
    )
    params = {"alpha": 1e-3, "learning_rate_init": 3e-3}
    split = X[:120], y[:120], X[120:], y[120:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", "Stochastic Optimizer")
        fold = make_fold(MLPClassifierModel(), estimator, *split)
        solution = fold.solve(params)
        reference = estimator.set_params(**params).fit(split[0], split[1])
        dense = make_fold(
            MLPClassifierModel(), estimator, split[0].toarray(), *split[1:]
        ).solve(params)
    ours = solution.fitted_estimator()
    for mine, theirs in zip(ours.coefs_, reference.coefs_, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-14)
    assert ours.n_iter_ == reference.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, reference.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(
        ours.predict_proba(split[2]), reference.predict_proba(split[2]), rtol=1e-10
    )
    np.testing.assert_allclose(solution.loss, dense.loss, rtol=1e-12)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "names", [["alpha"], ["alpha", "learning_rate_init"]], ids=["forward", "reverse"]
)
def test_mlp_sparse_equals_dense(fmt, dtype, names):
    X, y = _sparse_regression(90, 20, seed=4)
    X = X.astype(dtype)
    estimator = MLPRegressor(
        hidden_layer_sizes=(5,), max_iter=5, batch_size=30, random_state=0
    )
    params = dict(zip(names, [1e-2, 1e-3], strict=False))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Stochastic Optimizer")
        dense = cross_val_hypergrad(estimator, X.toarray(), y, params=params, cv=CV)
        ours = cross_val_hypergrad(estimator, X.asformat(fmt), y, params=params, cv=CV)
    np.testing.assert_allclose(ours[0], dense[0], rtol=1e-10)
    for name in names:
        np.testing.assert_allclose(ours[1][name], dense[1][name], rtol=1e-8)


@pytest.mark.parametrize("name", ["alpha", "learning_rate_init"])
def test_mlp_hypergradient_on_sparse_input_matches_central_differences(name):
    X, y = _text_classes()
    estimator = MLPClassifier((6,), max_iter=6, batch_size=40, random_state=0)
    fold = make_fold(
        MLPClassifierModel(), estimator, X[:120], y[:120], X[120:], y[120:]
    )
    point = {"alpha": 1e-2, "learning_rate_init": 3e-3}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Stochastic Optimizer")
        grads = fold.solve(point, differentiate=True).hypergradient(list(point))

        def loss_at_log(log_value):
            return fold.solve({**point, name: float(np.exp(log_value))}).loss

        fd = central_difference(loss_at_log, np.log(point[name]), step=1e-5)
    np.testing.assert_allclose(point[name] * grads[name], fd, rtol=1e-5)


_DOCUMENTS = [
    f"{a} {b} {c}"
    for a in ["red", "green", "blue", "grey"]
    for b in ["cat", "dog", "bird", "fish", "cow"]
    for c in ["runs", "sleeps", "eats"]
]


def test_tfidf_pipeline_matches_grid_search(folds_seen):
    rng = np.random.RandomState(0)
    docs = np.array(_DOCUMENTS)
    y = np.array([len(d) for d in docs], dtype=float) + rng.randn(len(docs))
    # A tight tol: scikit-learn's sparse Ridge is then the exact optimum too.
    pipe = make_pipeline(TfidfVectorizer(), Ridge(tol=1e-12))
    alphas = [0.1, 1.0, 10.0]
    ours = HypergradSearchCV(pipe, {"ridge__alpha": alphas}, cv=CV, n_iter=0).fit(
        docs, y
    )
    grid = GridSearchCV(pipe, {"ridge__alpha": alphas}, cv=CV).fit(docs, y)
    assert {kind for kind, _ in folds_seen} == {sp.csr_matrix}
    grid_scores = dict(
        zip(
            [p["ridge__alpha"] for p in grid.cv_results_["params"]],
            grid.cv_results_["mean_test_score"],
            strict=True,
        )
    )
    for params, score in zip(
        ours.cv_results_["params"], ours.cv_results_["mean_test_score"], strict=True
    ):
        np.testing.assert_allclose(
            score, grid_scores[params["ridge__alpha"]], rtol=1e-8
        )


def test_one_hot_pipeline_reaches_the_mlp_sparse(monkeypatch):
    seen = []
    fold = MLPClassifierModel.fold

    def spy(self, estimator, data):
        seen.append(type(data.X_train))
        return fold(self, estimator, data)

    monkeypatch.setattr(MLPClassifierModel, "fold", spy)
    rng = np.random.RandomState(0)
    X = rng.randint(0, 6, size=(120, 3))
    y = (X[:, 0] + X[:, 1] > 5).astype(int)
    pipe = make_pipeline(
        OneHotEncoder(handle_unknown="ignore"),
        MLPClassifier((4,), max_iter=5, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Stochastic Optimizer")
        loss, grad = cross_val_hypergrad(
            pipe, X, y, params={"mlpclassifier__alpha": 1e-2}, cv=CV
        )
        dense_pipe = pipe.set_params(onehotencoder__sparse_output=False)
        dense = cross_val_hypergrad(
            dense_pipe, X, y, params={"mlpclassifier__alpha": 1e-2}, cv=CV
        )
    assert seen[:3] == [sp.csr_matrix] * 3
    np.testing.assert_allclose(loss, dense[0], rtol=1e-10)
    np.testing.assert_allclose(
        grad["mlpclassifier__alpha"], dense[1]["mlpclassifier__alpha"], rtol=1e-8
    )


@narrow_range
def test_ridge_search_on_a_matrix_too_large_to_densify(folds_seen):
    # 20,000 x 2,000,000 with 3 nonzeros a row: 320 GB dense, 0.7 MB sparse.
    n, p, per_row = 20_000, 2_000_000, 3
    rng = np.random.RandomState(0)
    X = sp.csr_matrix(
        (
            rng.rand(n * per_row),
            rng.randint(0, p, n * per_row),
            np.arange(0, n * per_row + 1, per_row),
        ),
        shape=(n, p),
    )
    y = X @ rng.randn(p) + 0.1 * rng.randn(n)
    search = HypergradSearchCV(
        Ridge(),
        {"alpha": (1e-3, 1e1)},
        cv=CV,
        n_init=3,
        n_iter=2,
        scoring="neg_mean_squared_error",
        refit=False,
    )
    tracemalloc.start()
    try:
        search.fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert folds_seen == [(sp.csr_matrix, "iterative")] * 3
    # Of the order of the data (0.7 MB), the 2,000,000 coefficients of each
    # fold's kept solutions and the validation design: 400 MB, not 320 GB.
    assert peak < 400 * 2**20
    losses = search.cv_results_["cv_loss"]
    assert np.isfinite(losses).all()
    # The loss searched is the cross-validated MSE of the exact solution.
    assert np.isclose(
        -search.cv_results_["mean_test_score"][search.best_index_],
        losses[search.best_index_],
        rtol=1e-10,
    )


@pytest.mark.parametrize(
    "make_bad, error, match",
    [
        (lambda X: _with_value(X, np.nan), ValueError, "Input X contains NaN"),
        (lambda X: _with_value(X, np.inf), ValueError, "Input X contains infinity"),
    ],
)
def test_non_finite_sparse_input_is_refused_before_any_work(
    make_bad, error, match, folds_seen
):
    X, y = _sparse_regression(40, 10)
    with pytest.raises(error, match=match):
        HypergradSearchCV(Ridge(), {"alpha": (0.1, 10.0)}, cv=CV).fit(make_bad(X), y)
    assert folds_seen == []


def _with_value(X, value):
    X = X.copy()
    X.data[3] = value
    return X


def test_sparse_y_is_refused_as_scikit_learn_refuses_it(folds_seen):
    X, y = _sparse_regression(40, 10)
    y_sparse = sp.csr_matrix(y[:, None])
    with pytest.raises(TypeError, match="Sparse data was passed"):
        GridSearchCV(Ridge(), {"alpha": [1.0]}, cv=CV, error_score="raise").fit(
            X, y_sparse
        )
    with pytest.raises(TypeError, match="Sparse data was passed"):
        HypergradSearchCV(Ridge(), {"alpha": (0.1, 10.0)}, cv=CV).fit(X, y_sparse)
    assert folds_seen == []


def test_integer_sparse_input_is_converted_as_ridge_converts_it():
    rng = np.random.RandomState(0)
    X = sp.random(50, 8, density=0.4, random_state=0, format="csr")
    X.data = rng.randint(1, 5, X.nnz).astype(float)
    y = X @ rng.randn(8) + rng.randn(50)
    integer = X.astype(np.int64)
    ours = cross_val_hypergrad(Ridge(), integer, y, params={"alpha": 1.0}, cv=CV)
    floats = cross_val_hypergrad(Ridge(), X, y, params={"alpha": 1.0}, cv=CV)
    assert ours[0] == floats[0]
    assert integer.dtype == np.int64  # the user's matrix is not modified


@pytest.mark.parametrize(
    "estimator, error, match",
    [
        (Ridge(solver="svd"), ValueError, "does not support fitting the intercept"),
        (Ridge(solver="svd", fit_intercept=False), TypeError, "SVD solver does not"),
        (
            Ridge(solver="cholesky"),
            ValueError,
            "does not support fitting the intercept",
        ),
    ],
)
def test_sparse_input_refused_by_the_solver_fails_as_in_grid_search(
    estimator, error, match
):
    X, y = _sparse_regression(40, 10)
    for search in (
        GridSearchCV(estimator, {"alpha": [1.0]}, cv=CV, error_score="raise"),
        HypergradSearchCV(
            estimator, {"alpha": (0.1, 10.0)}, cv=CV, error_score="raise"
        ),
    ):
        with pytest.raises(error, match=match):
            search.fit(X, y)


@pytest.mark.parametrize("shape", [(70, 60), (40, 60)])
def test_iterative_ridge_with_several_targets_and_zero_weights(shape, monkeypatch):
    rng = np.random.RandomState(0)
    X = sp.random(shape[0] + 30, shape[1], density=0.3, random_state=1, format="csr")
    y = rng.randn(shape[0] + 30, 3)
    weights = rng.uniform(0, 2, shape[0])
    weights[:5] = 0
    split = X[: shape[0]], y[: shape[0]], X[shape[0] :], y[shape[0] :], weights
    exact = make_fold(RidgeModel(), Ridge(), *split).solve({"alpha": 0.2})
    _force_iterative(monkeypatch)
    fold = make_fold(RidgeModel(), Ridge(), *split)
    assert fold.method == "iterative"
    ours = fold.solve({"alpha": 0.2})
    np.testing.assert_allclose(ours.loss, exact.loss, rtol=1e-10)
    np.testing.assert_allclose(
        ours.hypergradient(["alpha"])["alpha"],
        exact.hypergradient(["alpha"])["alpha"],
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        ours.fitted_estimator().coef_, exact.fitted_estimator().coef_, rtol=1e-8
    )

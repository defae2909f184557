"""FeatureWeights: the transformer, its vector hypergradients and its search."""

import pickle

import numpy as np
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.datasets import load_diabetes, make_classification, make_regression
from sklearn.linear_model import Lasso, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skhypergrad import FeatureWeights, HypergradSearchCV, cross_val_hypergrad
from skhypergrad._models import FoldData
from skhypergrad._models._weighted import WEIGHTS, weighted_fold
from skhypergrad._optimize_many import minimize_many

from ._versions import checks_as_list


@checks_as_list(
    parametrize_with_checks([FeatureWeights(), FeatureWeights(weights=2.0)])
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_transform_dense_sparse_groups():
    X = np.arange(12.0).reshape(3, 4)
    transformer = FeatureWeights(weights=[2.0, 0.5], groups=[0, 1, 1, 0]).fit(X)
    expected = X * np.array([2.0, 0.5, 0.5, 2.0])
    np.testing.assert_array_equal(transformer.transform(X), expected)
    sparse_out = transformer.transform(sparse.csr_matrix(X))
    assert sparse.issparse(sparse_out)
    np.testing.assert_array_equal(sparse_out.toarray(), expected)
    assert transformer.n_groups_ == 2
    np.testing.assert_array_equal(X, np.arange(12.0).reshape(3, 4))  # unchanged
    clone = pickle.loads(pickle.dumps(transformer))
    np.testing.assert_array_equal(clone.transform(X), expected)
    names = transformer.get_feature_names_out()
    assert list(names) == ["x0", "x1", "x2", "x3"]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"weights": [1.0, 2.0]}, "weights has 2 entries but X has 3 columns"),
        ({"weights": [1.0, -2.0, 1.0]}, "finite and non-negative"),
        ({"weights": [1.0, np.nan, 1.0]}, "finite and non-negative"),
        ({"groups": [0, 1]}, "one entry per column"),
        ({"groups": [0, 1.5, 1]}, "integers from 0"),
        ({"groups": [0, -1, 1]}, "negative group"),
        ({"weights": [1.0, 2.0], "groups": [0, 1, 2]}, "groups has group 2"),
        ({"weights": [[1.0, 2.0, 3.0]]}, "1-D array"),
    ],
)
def test_bad_weights_and_groups(params, match):
    with pytest.raises(ValueError, match=match):
        FeatureWeights(**params).fit(np.ones((4, 3)))


def test_negative_scalar_weight_is_a_parameter_error():
    with pytest.raises(ValueError, match="'weights' parameter of FeatureWeights"):
        FeatureWeights(weights=-1.0).fit(np.ones((4, 3)))


def _fold(estimator, X, y, groups, n_weights, seed=0):
    rng = np.random.RandomState(seed)
    data = FoldData(
        X[:40], y[:40], X[40:], y[40:], sample_weight=rng.uniform(0.5, 2.0, 40)
    )
    return weighted_fold(estimator, data, np.ones(n_weights), groups)


def _central(fold, params, name, index, step):
    def loss(delta):
        shifted = {k: np.array(v, dtype=float) for k, v in params.items()}
        if index is None:
            shifted[name] = float(shifted[name]) + delta
        else:
            shifted[name][index] += delta
        return fold.solve(shifted).loss

    return (loss(step) - loss(-step)) / (2 * step)


CASES = [
    ("ridge", None, 6, 1),
    ("ridge", np.array([0, 1, 1, 2, 2, 0]), 3, 1),
    ("ridge", None, 6, 2),
    ("logistic", None, 6, 2),
    ("logistic", np.array([0, 1, 1, 2, 2, 0]), 3, 3),
]


@pytest.mark.parametrize("model, groups, n_weights, n_outputs", CASES)
def test_vector_hypergradient_matches_central_differences(
    model, groups, n_weights, n_outputs
):
    if model == "ridge":
        X, y = make_regression(60, 6, n_targets=n_outputs, noise=5.0, random_state=0)
        estimator, scalar, step = Ridge(), "alpha", 1e-5
    else:
        X, y = make_classification(
            60, 6, n_informative=4, n_classes=n_outputs, random_state=0
        )
        # A tight inner tolerance: the differences see the solve's error.
        estimator, scalar, step = LogisticRegression(tol=1e-13), "C", 1e-3
    fold = _fold(estimator, X, y, groups, n_weights)
    weights = np.random.RandomState(1).uniform(0.3, 3.0, n_weights)
    params = {scalar: 0.7, WEIGHTS: weights}
    grads = fold.solve(params, differentiate=True).hypergradient([scalar, WEIGHTS])
    assert grads[WEIGHTS].shape == (n_weights,)
    for index in range(n_weights):
        expected = _central(fold, params, WEIGHTS, index, step)
        assert grads[WEIGHTS][index] == pytest.approx(expected, rel=1e-5, abs=1e-8)
    assert grads[scalar] == pytest.approx(
        _central(fold, params, scalar, None, step), rel=1e-5
    )


@pytest.mark.parametrize("model", ["ridge", "logistic"])
def test_weighted_fold_matches_sklearn_on_scaled_columns(model):
    groups = np.array([0, 1, 1, 2, 2, 0])
    weights = np.array([0.2, 3.0, 1.0])
    if model == "ridge":
        X, y = make_regression(60, 6, noise=5.0, random_state=0)
        estimator, scalar = Ridge(), "alpha"
        reference = Ridge(alpha=0.7)
    else:
        X, y = make_classification(60, 6, random_state=0)
        estimator, scalar = LogisticRegression(tol=1e-13), "C"
        reference = LogisticRegression(C=0.7, tol=1e-12, solver="newton-cholesky")
    fold = _fold(estimator, X, y, groups, 3)
    ours = fold.solve({scalar: 0.7, WEIGHTS: weights}).fitted_estimator()
    sample_weight = np.random.RandomState(0).uniform(0.5, 2.0, 40)
    reference.fit(X[:40] * weights[groups], y[:40], sample_weight=sample_weight)
    np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        ours.intercept_, reference.intercept_, rtol=1e-6, atol=1e-8
    )


def _mlp(kind, solver, **params):
    settings = dict(
        hidden_layer_sizes=(3,),
        solver=solver,
        max_iter=4,
        batch_size=16,
        learning_rate_init=0.05,
        random_state=0,
        **params,
    )
    if kind == "regressor":
        return MLPRegressor(**settings)
    return MLPClassifier(**settings)


def _mlp_data(kind, n_samples=60):
    if kind == "regressor":
        X, y = make_regression(n_samples, 6, noise=5.0, random_state=0)
        return X, y / 50
    return make_classification(
        n_samples, 6, n_informative=4, n_classes=3, random_state=0
    )


MLP_CASES = [
    ("regressor", "adam", np.array([0, 1, 1, 2, 2, 0]), 3),
    ("regressor", "sgd", None, 6),
    ("classifier", "adam", None, 6),
    ("classifier", "sgd", np.array([0, 1, 1, 2, 2, 0]), 3),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind, solver, groups, n_weights", MLP_CASES)
def test_mlp_weights_hypergradient_matches_central_differences(
    kind, solver, groups, n_weights
):
    X, y = _mlp_data(kind)
    fold = _fold(_mlp(kind, solver, alpha=0.01), X, y, groups, n_weights)
    weights = np.random.RandomState(1).uniform(0.5, 2.0, n_weights)
    params = {"alpha": 0.01, WEIGHTS: weights}
    grads = fold.solve(params, differentiate=True).hypergradient(["alpha", WEIGHTS])
    assert grads[WEIGHTS].shape == (n_weights,)
    # The training is a smooth function of the weights for a fixed number
    # of epochs: central differences agree to their truncation error.
    for index in range(n_weights):
        expected = _central(fold, params, WEIGHTS, index, 1e-5)
        assert grads[WEIGHTS][index] == pytest.approx(expected, rel=1e-5, abs=1e-8)
    assert grads["alpha"] == pytest.approx(
        _central(fold, params, "alpha", None, 1e-5), rel=1e-5, abs=1e-8
    )
    # The weights alone (alpha at the estimator's 0.01): the same derivative,
    # the checkpoints kept at the solve this time.
    alone = fold.solve({WEIGHTS: weights}).hypergradient([WEIGHTS])
    np.testing.assert_allclose(alone[WEIGHTS], grads[WEIGHTS], rtol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind, solver", [("regressor", "adam"), ("classifier", "sgd")])
@pytest.mark.parametrize("as_sparse", [False, True])
def test_mlp_behind_weights_trains_as_the_pipeline(kind, solver, as_sparse):
    X, y = _mlp_data(kind)
    X[np.abs(X) < 0.5] = 0.0
    data = sparse.csr_matrix(X) if as_sparse else X
    groups = np.array([0, 1, 1, 2, 2, 0])
    weights = np.array([0.2, 3.0, 1.0])
    estimator = _mlp(kind, solver, early_stopping=True, validation_fraction=0.25)
    fold = weighted_fold(
        estimator,
        FoldData(data[:40], y[:40], data[40:], y[40:]),
        np.ones(3),
        groups,
    )
    ours = fold.solve({"alpha": 0.01, WEIGHTS: weights}).fitted_estimator()
    reference = make_pipeline(
        FeatureWeights(weights, groups=groups), clone(estimator).set_params(alpha=0.01)
    ).fit(data[:40], y[:40])
    scaled = FeatureWeights(weights, groups=groups).fit_transform(data[40:])
    for ours_part, reference_part in [
        (ours.coefs_, reference[-1].coefs_),
        (ours.intercepts_, reference[-1].intercepts_),
    ]:
        for a, b in zip(ours_part, reference_part, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert ours.n_iter_ == reference[-1].n_iter_
    np.testing.assert_allclose(
        ours.predict(scaled), reference.predict(data[40:]), rtol=1e-12
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_weights_sparse_as_dense():
    X, y = _mlp_data("regressor")
    X[np.abs(X) < 0.5] = 0.0
    weights = np.array([0.5, 2.0, 1.0, 1.5, 0.7, 1.2])
    results = []
    for data in (X, sparse.csr_matrix(X)):
        fold = weighted_fold(
            _mlp("regressor", "adam"),
            FoldData(data[:40], y[:40], data[40:], y[40:]),
            np.ones(6),
            None,
        )
        solution = fold.solve({WEIGHTS: weights}, differentiate=True)
        results.append((solution.loss, solution.hypergradient([WEIGHTS])[WEIGHTS]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_weights_search_best_estimator():
    X, y = _mlp_data("classifier", 90)
    pipe = make_pipeline(
        FeatureWeights(groups=[0, 0, 1, 1, 2, 2]), _mlp("classifier", "adam")
    )
    search = HypergradSearchCV(
        pipe, {"featureweights__weights": (0.1, 10)}, cv=3, n_init=2, n_iter=3
    ).fit(X, y)
    best = search.best_params_["featureweights__weights"]
    assert best.shape == (3,)
    fresh = clone(pipe).set_params(featureweights__weights=best).fit(X, y)
    np.testing.assert_allclose(
        search.best_estimator_.predict_proba(X), fresh.predict_proba(X), rtol=1e-12
    )


def test_cross_val_hypergrad_returns_an_array():
    X, y = load_diabetes(return_X_y=True)
    groups = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    pipe = make_pipeline(StandardScaler(), FeatureWeights(groups=groups), Ridge())
    weights = np.array([0.5, 1.0, 2.0, 3.0, 0.2])
    loss, grads = cross_val_hypergrad(
        pipe, X, y, params={"featureweights__weights": weights}, cv=3
    )
    assert grads["featureweights__weights"].shape == (5,)
    step = 1e-5
    for index in (0, 3):
        shifted = [weights.copy(), weights.copy()]
        shifted[0][index] += step
        shifted[1][index] -= step
        up, down = (
            cross_val_hypergrad(
                pipe, X, y, params={"featureweights__weights": w}, cv=3
            )[0]
            for w in shifted
        )
        expected = (up - down) / (2 * step)
        assert grads["featureweights__weights"][index] == pytest.approx(
            expected, rel=1e-5
        )
    # The same loss as the pipeline scored by scikit-learn.
    fixed = make_pipeline(
        StandardScaler(), FeatureWeights(weights, groups=groups), Ridge()
    )
    reference = GridSearchCV(
        fixed, {"ridge__alpha": [1.0]}, cv=3, scoring="neg_mean_squared_error"
    ).fit(X, y)
    assert loss == pytest.approx(-reference.best_score_, rel=1e-10)


def test_search_results_layout_and_best_estimator():
    X, y = make_regression(120, 12, n_informative=3, noise=10.0, random_state=0)
    pipe = make_pipeline(StandardScaler(), FeatureWeights(), Ridge())
    search = HypergradSearchCV(
        pipe,
        {"featureweights__weights": (1e-3, 1e3), "ridge__fit_intercept": [True, False]},
        scoring="neg_mean_squared_error",
        cv=KFold(4),
        n_init=4,
        n_iter=12,
    ).fit(X, y)
    results = search.cv_results_
    n_rows = len(results["params"])
    assert results["hypergrad_featureweights__weights"].shape == (n_rows, 12)
    best = search.best_params_["featureweights__weights"]
    assert isinstance(best, np.ndarray) and best.shape == (12,)
    assert np.all((best >= 1e-3) & (best <= 1e3))
    # The gradient phase beat the best shared weight of the diagonal.
    for sid in (0, 1):
        rows = np.flatnonzero(results["search_id"] == sid)
        coarse = rows[:4]
        assert results["cv_loss"][rows].min() < results["cv_loss"][coarse].min()
    # best_estimator_ is the user's pipeline with those weights, as a fresh fit.
    fresh = make_pipeline(
        StandardScaler(),
        FeatureWeights(best),
        Ridge(fit_intercept=search.best_params_["ridge__fit_intercept"]),
    ).fit(X, y)
    np.testing.assert_allclose(
        search.best_estimator_.predict(X), fresh.predict(X), rtol=1e-9
    )
    # The scores are GridSearchCV's at the same point.
    reference = GridSearchCV(
        fresh, {"ridge__alpha": [1.0]}, cv=KFold(4), scoring="neg_mean_squared_error"
    ).fit(X, y)
    assert search.best_score_ == pytest.approx(reference.best_score_, rel=1e-9)


def test_search_with_groups_and_logistic():
    X, y = make_classification(150, 8, n_informative=3, random_state=0)
    groups = [0, 0, 1, 1, 2, 2, 3, 3]
    pipe = make_pipeline(FeatureWeights(groups=groups), LogisticRegression(tol=1e-10))
    search = HypergradSearchCV(
        pipe,
        {"featureweights__weights": [1e-2, 1e2], "logisticregression__C": (0.01, 100)},
        scoring="neg_log_loss",
        cv=3,
        n_init=3,
        n_iter=8,
    ).fit(X, y)
    assert search.best_params_["featureweights__weights"].shape == (4,)
    assert search.cv_results_["hypergrad_featureweights__weights"].shape[1] == 4


@pytest.mark.parametrize(
    "pipe, grid, match",
    [
        (
            make_pipeline(FeatureWeights(), Lasso()),
            {"featureweights__weights": (0.1, 10)},
            "only just before a Ridge, a LogisticRegression or an MLP, and it "
            "comes before Lasso",
        ),
        (
            make_pipeline(FeatureWeights(), StandardScaler(), Ridge()),
            {"featureweights__weights": (0.1, 10)},
            "not the step just before the final estimator",
        ),
        (
            make_pipeline(FeatureWeights(), Ridge()),
            {"featureweights__weights": [0.1, 1, 10]},
            "cannot be enumerated in many dimensions",
        ),
    ],
)
def test_refused_ranges(pipe, grid, match):
    X, y = make_regression(40, 5, random_state=0)
    with pytest.raises(ValueError, match=match):
        HypergradSearchCV(pipe, grid, cv=3).fit(X, y)


def test_wrong_groups_fail_before_the_search():
    X, y = make_regression(40, 5, random_state=0)
    pipe = make_pipeline(FeatureWeights(groups=[0, 1, 1]), Ridge())
    with pytest.raises(ValueError, match="one entry per column of X, 5"):
        HypergradSearchCV(pipe, {"featureweights__weights": (0.1, 10)}, cv=3).fit(X, y)


class _Quadratic:
    """A separable quadratic with its minimum off the diagonal."""

    def __init__(self, target):
        self.target = target
        self.calls = 0

    def is_evaluated(self, z, differentiate):
        return False

    def value(self, z, exact=True):
        self.calls += 1
        return float(np.sum((z - self.target) ** 2))

    def value_and_grad(self, z):
        self.calls += 1
        return self.value(z), 2 * (z - self.target)


def test_minimize_many_reaches_an_off_diagonal_minimum_within_budget():
    target = np.array([-2.0, 0.5, 1.0, 3.0, -1.0, 2.5])
    best = []

    class Recording(_Quadratic):
        def value_and_grad(self, z):
            result = super().value_and_grad(z)
            best.append((result[0], z.copy()))
            return result

    fun = Recording(target)
    minimize_many(
        fun,
        np.full(6, -5.0),
        np.full(6, 5.0),
        tied=np.zeros(6, dtype=int),
        n_init=5,
        n_iter=30,
        tol=1e-8,
        random_state=0,
    )
    value, z = min(best, key=lambda item: item[0])
    np.testing.assert_allclose(z, target, atol=1e-4)
    # The coarse pass (5 points) and at most n_iter evaluations, plus the
    # memoized start which this objective does not memoize.
    assert fun.calls <= 5 + 30 + 1


def test_weights_penalty_keeps_the_weights_together():
    X, y = make_regression(80, 10, n_informative=2, noise=20.0, random_state=0)
    pipe = make_pipeline(StandardScaler(), FeatureWeights(), Ridge())
    spreads, losses = [], []
    for penalty in (0.0, 1.0):
        search = HypergradSearchCV(
            pipe,
            {"featureweights__weights": (1e-3, 1e3)},
            scoring="neg_mean_squared_error",
            cv=KFold(4),
            n_init=4,
            n_iter=30,
            weights_penalty=penalty,
        ).fit(X, y)
        weights = np.log(search.best_params_["featureweights__weights"])
        spreads.append(np.std(weights))
        losses.append(-search.best_score_)
    # The penalty trades CV loss for weights closer to their common value.
    assert spreads[1] < 0.5 * spreads[0]
    assert losses[1] > losses[0]


def test_weights_penalty_is_validated():
    X, y = make_regression(40, 5, random_state=0)
    search = HypergradSearchCV(Ridge(), {"alpha": (0.1, 10)}, weights_penalty=-1.0)
    with pytest.raises(ValueError, match="'weights_penalty' parameter"):
        search.fit(X, y)


def test_weights_on_worker_processes_as_in_process():
    X, y = make_classification(120, 6, n_informative=3, random_state=0)
    pipe = make_pipeline(FeatureWeights(), LogisticRegression(tol=1e-10))
    grid = {"featureweights__weights": (1e-2, 1e2)}
    results = [
        HypergradSearchCV(
            pipe, grid, scoring="neg_log_loss", cv=3, n_init=3, n_iter=6, n_jobs=n_jobs
        )
        .fit(X, y)
        .cv_results_
        for n_jobs in (1, 2)
    ]
    np.testing.assert_allclose(results[0]["cv_loss"], results[1]["cv_loss"])
    np.testing.assert_allclose(
        results[0]["hypergrad_featureweights__weights"],
        results[1]["hypergrad_featureweights__weights"],
    )


def test_sparse_input_as_dense():
    X, y = make_regression(60, 8, n_informative=3, noise=5.0, random_state=0)
    X[X < 0.3] = 0.0
    pipe = make_pipeline(FeatureWeights(), Ridge())
    grid = {"featureweights__weights": (1e-2, 1e2)}
    results = [
        HypergradSearchCV(pipe, grid, cv=3, n_init=3, n_iter=5).fit(data, y)
        for data in (X, sparse.csr_matrix(X))
    ]
    np.testing.assert_allclose(
        results[0].cv_results_["cv_loss"], results[1].cv_results_["cv_loss"]
    )

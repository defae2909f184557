"""FeatureWeights: the transformer, its vector hypergradients and its search."""

import pickle

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import load_diabetes, make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skhypergrad import FeatureWeights, HypergradSearchCV, cross_val_hypergrad
from skhypergrad._models import FoldData
from skhypergrad._models._weighted import WEIGHTS, weighted_fold
from skhypergrad._optimize_many import minimize_many


@parametrize_with_checks([FeatureWeights(), FeatureWeights(weights=2.0)])
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
            make_pipeline(FeatureWeights(), MLPRegressor()),
            {"featureweights__weights": (0.1, 10)},
            "only just before a Ridge or a LogisticRegression, and it comes "
            "before MLPRegressor",
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

    def value(self, z):
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

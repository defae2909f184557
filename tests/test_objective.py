"""The cross-validation objective: one memo, stateless folds, pickling."""

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV
from skhypergrad._models import find_model, get_model
from skhypergrad._models._ridge import RidgeModel, _RidgeFold
from skhypergrad._objective import CrossValObjective

from ._numeric import make_fold, short_trainings

pytestmark = pytest.mark.filterwarnings(
    "ignore:Stochastic Optimizer. Maximum iterations"
    ":sklearn.exceptions.ConvergenceWarning"
)


def _problem(name):
    if name == "ridge":
        X, y = load_diabetes(return_X_y=True)
        return Ridge(), X, y, {"alpha": [0.1, 3.0, 30.0]}, KFold(3)
    if name == "logistic":
        X, y = load_breast_cancer(return_X_y=True)
        estimator = make_pipeline(StandardScaler(), LogisticRegression())
        return (
            estimator,
            X,
            y,
            {"logisticregression__C": [0.05, 1.0, 20.0]},
            StratifiedKFold(3, shuffle=True, random_state=0),
        )
    X, y = load_iris(return_X_y=True)
    mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=15, random_state=0)
    return (
        make_pipeline(StandardScaler(), mlp),
        X,
        y,
        {
            "mlpclassifier__alpha": [1e-4, 1e-2, 1.0],
            "mlpclassifier__learning_rate_init": [1e-3, 1e-2, 3e-2],
        },
        StratifiedKFold(3, shuffle=True, random_state=0),
    )


def _objective(estimator, X, y, values, cv):
    return CrossValObjective(
        estimator,
        X,
        y,
        list(cv.split(X, y)),
        list(values),
        scorer=get_scorer("neg_log_loss" if len(np.unique(y)) < 5 else "r2"),
    )


def _points(values):
    names = list(values)
    return [{n: values[n][i] for n in names} for i in range(3)]


# Ridge and the MLPs are exact; a logistic solve is exact to its tolerance
# (a gradient 1e-9 times its size at zero), and its warm start depends on
# the points solved before.
@pytest.mark.parametrize(
    "name, rtol", [("ridge", 1e-12), ("logistic", 1e-7), ("mlp", 1e-12)]
)
def test_a_point_scores_the_same_in_any_order(name, rtol):
    estimator, X, y, values, cv = _problem(name)
    points = _points(values)
    forward, backward = (_objective(estimator, X, y, values, cv) for _ in range(2))
    for point in points:
        forward.evaluate(point)
    for point in points[::-1]:
        backward.evaluate(point, differentiate=True)
    # Asked again, in another order, with or without the hypergradient.
    for point in points[1:]:
        forward.evaluate(point, differentiate=True)
    for a, b in zip(forward.results, backward.results[::-1], strict=True):
        assert a.point == b.point
        np.testing.assert_allclose(a.loss, b.loss, rtol=rtol)
        for sa, sb in zip(a.splits, b.splits, strict=True):
            np.testing.assert_allclose(
                sa.scores["test_scores"], sb.scores["test_scores"], rtol=rtol
            )
    for a, b in zip(forward.results[1:], backward.results[1::-1], strict=True):
        for key in a.hypergradient:
            np.testing.assert_allclose(
                a.hypergradient[key], b.hypergradient[key], rtol=100 * rtol
            )
    assert forward.results[0].hypergradient is None


def test_each_point_is_solved_once(monkeypatch):
    X, y = load_diabetes(return_X_y=True)
    objective = _objective(Ridge(), X, y, {"alpha": None}, KFold(3))
    solves = []
    solve = _RidgeFold.solve

    def counting(self, params, **kwargs):
        solves.append(params["alpha"])
        return solve(self, params, **kwargs)

    monkeypatch.setattr(_RidgeFold, "solve", counting)
    first = objective.evaluate({"alpha": 2.0})
    assert not objective.is_evaluated({"alpha": 2.0}, differentiate=True)
    again = objective.evaluate({"alpha": 2.0}, differentiate=True)
    assert again is first and first.hypergradient is not None
    assert objective.is_evaluated({"alpha": 2.0}, differentiate=True)
    objective.evaluate({"alpha": 2.0}, differentiate=True)
    # Three folds, solved once each: the hypergradient differentiates the
    # solutions kept from the first evaluation.
    assert solves == [2.0, 2.0, 2.0]
    assert len(objective.results) == 1


@pytest.mark.parametrize("name", ["ridge", "logistic", "mlp"])
def test_folds_and_solutions_pickle(name):
    estimator, X, y, values, cv = _problem(name)
    estimator = estimator[-1] if hasattr(estimator, "steps") else estimator
    X = StandardScaler().fit_transform(X)
    train, test = next(cv.split(X, y))
    fold = make_fold(
        get_model(estimator), estimator, X[train], y[train], X[test], y[test]
    )
    point = _points(values)[1]
    params = {key.split("__")[-1]: value for key, value in point.items()}
    solution = fold.solve(params, differentiate=True)
    grads = solution.hypergradient(list(params))

    fold_copy = pickle.loads(pickle.dumps(fold))
    solution_copy = pickle.loads(pickle.dumps(solution))
    assert solution_copy.loss == solution.loss
    copied = solution_copy.hypergradient(list(params))
    resolved = fold_copy.solve(params, differentiate=True)
    np.testing.assert_allclose(resolved.loss, solution.loss, rtol=1e-10)
    for key in params:
        np.testing.assert_allclose(copied[key], grads[key], rtol=1e-10)
        np.testing.assert_allclose(
            resolved.hypergradient([key])[key], grads[key], rtol=1e-6
        )
    np.testing.assert_allclose(
        solution_copy.fitted_estimator().predict(X[test]),
        solution.fitted_estimator().predict(X[test]),
    )


@short_trainings
def test_a_range_for_a_hyperparameter_the_settings_do_not_use_is_refused(
    monkeypatch,
):
    X, y = load_diabetes(return_X_y=True)
    monkeypatch.setattr(
        RidgeModel, "fold", lambda *a: pytest.fail("no work before the error")
    )
    search = HypergradSearchCV(
        MLPRegressor(solver="adam", random_state=0), {"momentum": (0.5, 0.9)}
    )
    with pytest.raises(ValueError, match=r"'momentum' is given a range.*list of dicts"):
        search.fit(X, y)
    # In a list of dicts, each setting with its own hyperparameters.
    HypergradSearchCV(
        MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0),
        [
            {"solver": ["sgd"], "momentum": (0.5, 0.9)},
            {"solver": ["adam"], "beta_1": (0.5, 0.9)},
        ],
        cv=2,
        n_init=2,
        n_iter=0,
    ).fit(X[:60], y[:60])


def test_a_subclass_that_keeps_fit_gets_its_parents_model():
    class MyRidge(Ridge):
        def describe(self):
            return "ridge"

    class RefittingRidge(Ridge):
        def fit(self, X, y, sample_weight=None):
            return super().fit(X, y, sample_weight)

    assert isinstance(find_model(MyRidge()), RidgeModel)
    assert find_model(RefittingRidge()) is None
    with pytest.raises(ValueError, match="no differentiable model for RefittingRidge"):
        get_model(RefittingRidge())


def test_densifying_a_large_sparse_input_is_said(monkeypatch):
    from scipy import sparse

    from skhypergrad import _objective

    X, y = load_diabetes(return_X_y=True)
    # A model that does not declare accept_sparse receives dense arrays.
    monkeypatch.setattr(RidgeModel, "accept_sparse", False)
    monkeypatch.setattr(_objective, "_DENSE_BYTES_WARNING", 1000)
    with pytest.warns(UserWarning, match=r"densified in each fold, \d+ MB per fold"):
        HypergradSearchCV(Ridge(), {"alpha": (0.1, 10.0)}, n_iter=0).fit(
            sparse.csr_matrix(X), y
        )

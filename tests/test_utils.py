"""check_differentiable_model: the built-in models pass, broken models fail."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor

from skhypergrad._models._logistic import LogisticRegressionModel
from skhypergrad._models._mlp import MLPClassifierModel, MLPRegressorModel
from skhypergrad._models._ridge import RidgeModel, _RidgeFold, _RidgeSolution
from skhypergrad.utils import check_differentiable_model

# Both the replayed training and MLP*.fit warn that 20 epochs are too few.
MAX_ITER_WARNING = (
    r"ignore:Stochastic Optimizer. Maximum iterations \(20\) reached"
    ":sklearn.exceptions.ConvergenceWarning"
)


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(60, 5, n_targets=2, noise=5.0, random_state=0)
    return X, y + 3.0


@pytest.fixture(scope="module")
def classification():
    return make_classification(
        90, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=0
    )


# --- The built-in models pass ------------------------------------------------


@pytest.mark.parametrize("params", [{"alpha": 2.0}, {}])
@pytest.mark.parametrize("n_targets", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_ridge_passes(regression, params, n_targets, weighted):
    X, y = regression
    y = y[:, 0] if n_targets == 1 else y
    weights = np.random.RandomState(0).uniform(0.5, 2, len(X)) if weighted else None
    # Closed form on both sides: tight tolerances.
    check_differentiable_model(
        RidgeModel(),
        Ridge(alpha=0.5),
        X,
        y,
        params=params,
        sample_weight=weights,
        rtol=1e-6,
        estimator_rtol=1e-10,
    )


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_regression_passes(n_classes):
    X, y = make_classification(
        90, 4, n_informative=3, n_redundant=0, n_classes=n_classes, random_state=0
    )
    # The model solves to the exact optimum; newton-cholesky with a tight tol
    # reaches it too, so that the predictions agree to many digits.
    check_differentiable_model(
        LogisticRegressionModel(),
        LogisticRegression(solver="newton-cholesky", tol=1e-10),
        X,
        y,
        params={"C": 0.5},
        rtol=1e-5,
        estimator_rtol=1e-8,
    )


@pytest.mark.filterwarnings(MAX_ITER_WARNING)
@pytest.mark.parametrize(
    "solver, params",
    [
        ("sgd", {"learning_rate_init": 0.01, "momentum": 0.8}),
        ("adam", {"alpha": 1e-3, "beta_1": 0.8}),
    ],
)
@pytest.mark.parametrize("classifier", [False, True], ids=["regressor", "classifier"])
def test_mlp_passes(regression, classification, solver, params, classifier):
    if classifier:
        X, y = classification
        model, estimator_class = MLPClassifierModel(), MLPClassifier
    else:
        X, y = regression[0], regression[1][:, 0] / 100
        model, estimator_class = MLPRegressorModel(), MLPRegressor
    estimator = estimator_class(
        hidden_layer_sizes=(5,), max_iter=20, random_state=0, solver=solver
    )
    # The replay is bit-exact: the fitted networks equal MLP*.fit's, and two
    # solves of a point give the same loss.
    check_differentiable_model(
        model,
        estimator,
        X,
        y,
        params=params,
        rtol=1e-5,
        loss_rtol=1e-13,
        estimator_rtol=1e-12,
    )


# --- Broken models fail, naming the check --------------------------------------


def _ridge_model(fold_class):
    class Model(RidgeModel):
        def fold(self, estimator, data):
            return fold_class(estimator, data)

    return Model()


class _ScaledGradientSolution(_RidgeSolution):
    def hypergradient(self, names):
        return {name: 1.01 * g for name, g in super().hypergradient(names).items()}


class _ScaledGradientFold(_RidgeFold):
    def solve(self, params, *, differentiate=False):
        return _ScaledGradientSolution(self, params.get("alpha", self.estimator.alpha))


class _WrongCoefSolution(_RidgeSolution):
    def fitted_estimator(self):
        ridge = super().fitted_estimator()
        ridge.coef_ = 1.01 * ridge.coef_
        return ridge


class _WrongCoefFold(_RidgeFold):
    def solve(self, params, *, differentiate=False):
        return _WrongCoefSolution(self, params.get("alpha", self.estimator.alpha))


class _StatefulFold(_RidgeFold):
    """Warm-started from the previous solve and stopped too early: it lands
    halfway, in log(alpha), between the previous point and the one asked."""

    previous = None

    def solve(self, params, *, differentiate=False):
        alpha = params.get("alpha", self.estimator.alpha)
        reached = alpha if self.previous is None else np.sqrt(alpha * self.previous)
        self.previous = alpha
        solution = _RidgeSolution(self, reached)
        solution.params = {"alpha": float(alpha)}
        return solution


class _UnpicklableFold(_RidgeFold):
    def __init__(self, estimator, data):
        super().__init__(estimator, data)
        self.link = lambda alpha: alpha


class _SinglePrecisionLossFold(_RidgeFold):
    """Computes the loss in single precision when no gradient is coming."""

    def solve(self, params, *, differentiate=False):
        solution = super().solve(params)
        if not differentiate:
            solution.loss = float(np.float32(solution.loss))
        return solution


class _IgnoresEstimatorAlphaFold(_RidgeFold):
    def solve(self, params, *, differentiate=False):
        return _RidgeSolution(self, params.get("alpha", 1.0))


class _SetsAlphaFold(_RidgeFold):
    def solve(self, params, *, differentiate=False):
        if "alpha" in params:
            self.estimator.alpha = params["alpha"]
        return super().solve(params)


@pytest.mark.parametrize(
    "fold_class, match",
    [
        (
            _ScaledGradientFold,
            r"'hypergradient' check failed on split 0 at \{'alpha': 2.0\}: "
            r"d loss / d log\(alpha\): value .*, expected .*, difference .*, "
            r"tolerance .*central difference",
        ),
        (_WrongCoefFold, r"'fitted_estimator' check failed.*predict\(X_val\)"),
        (_StatefulFold, r"'stateless' check failed.*solve\(params\).loss after"),
        (_UnpicklableFold, r"'pickle' check failed.*do not pickle.*lambda"),
        (_SinglePrecisionLossFold, r"'loss-only solve' check failed"),
        (_IgnoresEstimatorAlphaFold, r"'default params' check failed.*3.0"),
        (_SetsAlphaFold, r"'estimator not modified' check failed.*\['alpha'\]"),
    ],
)
def test_broken_model_fails(regression, fold_class, match):
    X, y = regression
    with pytest.raises(AssertionError, match=match):
        check_differentiable_model(
            _ridge_model(fold_class), Ridge(alpha=3.0), X, y, params={"alpha": 2.0}
        )


def test_tolerance_is_relative_to_the_finite_difference(regression):
    X, y = regression
    model = _ridge_model(_ScaledGradientFold)
    # A 1% error passes a 2% relative tolerance, and fails a 0.5% one.
    check_differentiable_model(model, Ridge(), X, y, params={"alpha": 2.0}, rtol=0.02)
    with pytest.raises(AssertionError, match="'hypergradient' check"):
        check_differentiable_model(
            model, Ridge(), X, y, params={"alpha": 2.0}, rtol=0.005
        )


def test_fitted_estimator_tolerance_is_adjustable(regression):
    X, y = regression
    model = _ridge_model(_WrongCoefFold)
    check_differentiable_model(
        model, Ridge(), X, y, params={"alpha": 2.0}, estimator_rtol=0.1
    )


# --- Inputs are validated in scikit-learn's words ------------------------------


def test_unknown_hyperparameter_lists_the_model_ones(regression):
    X, y = regression
    with pytest.raises(ValueError, match=r"'C' is not a continuous.*\['alpha'\]"):
        check_differentiable_model(RidgeModel(), Ridge(), X, y, params={"C": 1.0})


def test_hyperparameter_unused_by_the_settings_is_refused(classification):
    X, y = classification
    with pytest.raises(ValueError, match=r"'momentum' is not.*\['alpha', 'beta_1'"):
        check_differentiable_model(
            MLPClassifierModel(),
            MLPClassifier(solver="adam", random_state=0),
            X,
            y,
            params={"momentum": 0.9},
        )


@pytest.mark.parametrize(
    "params, match",
    [
        ({"alpha": -1.0}, "log scale, so it must be positive"),
        ({"alpha": np.inf}, "finite real number"),
        ({"alpha": "1"}, "finite real number"),
    ],
)
def test_invalid_values_are_refused(regression, params, match):
    X, y = regression
    with pytest.raises(ValueError, match=match):
        check_differentiable_model(RidgeModel(), Ridge(), X, y, params=params)


def test_estimator_of_another_class_is_refused(regression):
    X, y = regression
    with pytest.raises(TypeError, match="RidgeModel is the model of Ridge"):
        check_differentiable_model(RidgeModel(), LogisticRegression(), X, y, params={})


def test_unsupported_settings_raise_the_model_error(regression):
    X, y = regression
    with pytest.raises(ValueError, match="positive=True"):
        check_differentiable_model(RidgeModel(), Ridge(positive=True), X, y, params={})


def test_arguments_are_validated(regression):
    X, y = regression
    with pytest.raises(ValueError, match="'model' parameter"):
        check_differentiable_model(Ridge(), Ridge(), X, y, params={})
    with pytest.raises(ValueError, match="'step' parameter"):
        check_differentiable_model(RidgeModel(), Ridge(), X, y, params={}, step=0)
    with pytest.raises(ValueError, match="Found input variables with inconsistent"):
        check_differentiable_model(RidgeModel(), Ridge(), X, y[:-1], params={})
    with pytest.raises(ValueError, match="Input X contains NaN"):
        X_nan = X.copy()
        X_nan[0, 0] = np.nan
        check_differentiable_model(RidgeModel(), Ridge(), X_nan, y, params={})


def test_stochastic_model_needs_a_random_state(regression):
    class StochasticRidgeModel(RidgeModel):
        stochastic = True

    X, y = regression
    with pytest.raises(ValueError, match="is stochastic.*integer random_state"):
        check_differentiable_model(StochasticRidgeModel(), Ridge(), X, y, params={})
    check_differentiable_model(
        StochasticRidgeModel(), Ridge(random_state=0), X, y, params={}
    )

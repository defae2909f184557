"""Regression tests of the known bugs and deviations from GridSearchCV.

Each test asserts what scikit-learn and GridSearchCV do (the same error type
and words, the same scores) and is marked ``xfail(strict=True)`` with the
bug's id while the bug is open: whoever fixes a bug removes its marker (and
its entry in test_fuzz.py's KNOWN_BUGS), since the test then passes and the
strict mark fails the suite.

B1-B10 are bugs; D1-D4 are deviations scikit-learn's own search tests would
meet behind the refusal of their estimators (see
test_sklearn_search_suite.py); N1-N2 were found by test_fuzz.py (N2, float32
data, is a deliberate difference).
"""

import io
import re
import warnings
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV, cross_val_hypergrad

from ._versions import requires_sklearn

CV = KFold(3, shuffle=True, random_state=0)
SHORT = {"n_init": 2, "n_iter": 1}

# Small searches on small data: their best point is often at an end of their
# range, which the search says.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The best point has .* the range is too narrow:UserWarning"
)


def _bug(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


def _regression(n_samples=40, n_features=5):
    return make_regression(n_samples, n_features, noise=1.0, random_state=0)


def _classification(n_samples=60):
    return make_classification(n_samples, 4, random_state=0)


def _split_scores(search, row, n_splits=3, metric="score"):
    return np.array(
        [search.cv_results_[f"split{k}_test_{metric}"][row] for k in range(n_splits)]
    )


def _grid_at(search, estimator, X, y, **kwargs):
    """GridSearchCV at the search's best point, with the search's cv."""
    return GridSearchCV(
        estimator,
        {k: [v] for k, v in search.best_params_.items()},
        cv=search.cv,
        scoring=search.scoring,
        **kwargs,
    ).fit(X, y)


@pytest.mark.parametrize("y_format", ["column", "frame"])
def test_b1_logistic_regression_column_y(y_format):
    X, y = _classification()
    y = np.array([3, 7])[y]
    y_2d = y.reshape(-1, 1) if y_format == "column" else pd.DataFrame({"t": y})
    estimator = LogisticRegression(tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's DataConversionWarning
        search = HypergradSearchCV(
            estimator, {"C": (0.01, 100.0)}, scoring="neg_log_loss", cv=CV, **SHORT
        ).fit(X, y_2d)
        grid = _grid_at(search, estimator, X, y_2d)
    np.testing.assert_allclose(
        _split_scores(search, search.best_index_), _split_scores(grid, 0), rtol=1e-6
    )


def test_b2_nan_through_a_pipeline_fails_the_folds():
    X, y = _classification()
    X[0, 0] = np.nan
    estimator = make_pipeline(StandardScaler(), LogisticRegression())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = HypergradSearchCV(
            estimator, {"logisticregression__C": (0.1, 10.0)}, cv=CV, refit=False
        ).fit(X, y)
        grid = GridSearchCV(
            estimator, {"logisticregression__C": [1.0]}, cv=CV, refit=False
        ).fit(X, y)
    # GridSearchCV: the two folds trained on the NaN fail, the third fails
    # to score it.
    assert np.all(np.isnan(_split_scores(grid, 0)))
    for row in range(len(search.cv_results_["params"])):
        assert np.all(np.isnan(_split_scores(search, row)))


@pytest.mark.parametrize(
    "values",
    [[1.0, np.nan, 10.0], np.array([1.0, np.nan, 10.0]), (1.0, np.nan), (1.0, -np.inf)],
    ids=["list", "array", "tuple-nan", "tuple-inf"],
)
def test_b3_non_finite_range_is_refused(values):
    X, y = _regression()
    search = HypergradSearchCV(Ridge(), {"alpha": values}, cv=CV, **SHORT)
    with pytest.raises(ValueError, match="'alpha'.*finite"):
        search.fit(X, y)


def test_b4_ridge_rank_deficient_tiny_alpha():
    """B4: on a rank-deficient design the solution tends to the minimum-norm
    least-squares one as alpha vanishes (numpy's lstsq), with no division of
    rounding noise by alpha. scikit-learn's Ridge at alpha=1e-30 inverts
    rounding-level singular values (its svd solver drops only those below an
    absolute 1e-15) and gives another, noise-driven value: the reference here
    is lstsq, not Ridge."""
    X, y = _regression()
    X = np.hstack([X, X[:, :2]])
    losses = []
    for train, test in CV.split(X):
        X_mean, y_mean = X[train].mean(axis=0), y[train].mean()
        coef = np.linalg.lstsq(X[train] - X_mean, y[train] - y_mean, rcond=None)[0]
        residual = (X[test] - X_mean) @ coef + y_mean - y[test]
        losses.append(np.mean(residual**2))
    for alpha in (1e-30, 1e-100, 1e-300, 0.0):
        loss, grads = cross_val_hypergrad(Ridge(), X, y, params={"alpha": alpha}, cv=CV)
        assert loss == pytest.approx(np.mean(losses), rel=1e-8)
        assert np.isfinite(grads["alpha"])


@pytest.mark.parametrize(
    "weights",
    [
        pytest.param(
            np.zeros(40),
            marks=requires_sklearn(
                "1.8", "GridSearchCV's Ridge divides by the zero sum of the weights"
            ),
        ),
        pytest.param(
            -np.ones(40),
            marks=[
                # GridSearchCV's Ridge takes the square root of the weights.
                pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt"),
                _bug(
                    "B5, a deliberate difference: GridSearchCV's Ridge fails on the "
                    "square root of negative weights ('array must not contain infs "
                    "or NaNs'); the search refuses them before any work, in "
                    "scikit-learn's words for non-negative weights (see "
                    "test_negative_sample_weight_is_refused)"
                ),
            ],
        ),
        np.ones(39),
    ],
    ids=["zeros", "negative", "wrong-length"],
)
def test_b5_sample_weight_validated(weights):
    X, y = _regression()
    # GridSearchCV's error, with error_score="raise".
    grid = GridSearchCV(Ridge(), {"alpha": [1.0]}, cv=CV, error_score="raise")
    with pytest.raises(ValueError) as expected:
        grid.fit(X, y, sample_weight=weights)
    # Its words up to the fold's own numbers (the training part's shape).
    words = re.escape(str(expected.value).split(", expected")[0])
    search = HypergradSearchCV(
        Ridge(), {"alpha": (0.1, 10.0)}, cv=CV, error_score="raise", **SHORT
    )
    with pytest.raises(ValueError, match=words) as raised:
        search.fit(X, y, sample_weight=weights)
    assert type(raised.value) is type(expected.value)


def test_b6_cross_val_hypergrad_refuses_negative_alpha():
    X, y = _regression()
    with pytest.raises(ValueError, match=r"'alpha' parameter .* range \[0.0, inf\)"):
        cross_val_hypergrad(Ridge(), X, y, params={"alpha": -1.0})


# Without a ConvergenceWarning: at C = 1e160, a Newton step past the
# tolerance once left it on a separable fold, and the solve stalled.
@pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("C", [1e160, 1e-200])
def test_b7_logistic_regression_extreme_c(C):
    X, y = _classification()
    loss, grads = cross_val_hypergrad(
        LogisticRegression(), X, y, params={"C": C}, cv=CV
    )
    assert np.isfinite(loss)
    assert np.isfinite(grads["C"])


def test_b8_empty_training_part():
    X, y = _regression()
    splits = [
        (np.array([], dtype=int), np.arange(40)),
        (np.arange(20), np.arange(20, 40)),
    ]
    kwargs = {"cv": splits, "error_score": "raise"}
    message = re.escape("Found array with 0 sample(s)")
    with pytest.raises(ValueError, match=message):
        GridSearchCV(Ridge(), {"alpha": [1.0]}, **kwargs).fit(X, y)
    search = HypergradSearchCV(Ridge(), {"alpha": (0.1, 10.0)}, **kwargs, **SHORT)
    with pytest.raises(ValueError, match=message):
        search.fit(X, y)


def test_b9_diverging_mlp_raises_as_scikit_learn():
    X, y = _regression()
    X, y = 1e3 * X, 1e3 * y
    estimator = MLPRegressor(
        hidden_layer_sizes=(3,), solver="sgd", max_iter=20, random_state=0
    )
    message = "Solver produced non-finite parameter weights"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=message):
            GridSearchCV(
                estimator, {"learning_rate_init": [1e3]}, cv=CV, error_score="raise"
            ).fit(X, y)
        search = HypergradSearchCV(
            estimator,
            {"learning_rate_init": (1e2, 1e3)},
            cv=CV,
            error_score="raise",
            **SHORT,
        )
        with pytest.raises(ValueError, match=message):
            search.fit(X, y)


def test_b10_callback_cannot_rewrite_the_results():
    X, y = _regression()

    def meddle(state):
        state.params["alpha"] = 12345.0

    search = HypergradSearchCV(
        Ridge(), {"alpha": (0.1, 10.0)}, cv=CV, callbacks=meddle, **SHORT
    ).fit(X, y)
    alphas = [params["alpha"] for params in search.cv_results_["params"]]
    np.testing.assert_array_equal(alphas, search.cv_results_["param_alpha"])
    assert all(0.1 <= alpha <= 10.0 for alpha in alphas)
    assert 0.1 <= search.best_params_["alpha"] <= 10.0


# --- Deviations scikit-learn's search tests meet behind the refusal -----------


@pytest.mark.parametrize(
    "estimator, param_grid",
    [
        (LogisticRegression(), {"C": (0.1, 10.0)}),
        (
            MLPClassifier(hidden_layer_sizes=(3,), max_iter=10, random_state=0),
            {"alpha": (1e-4, 1e-2)},
        ),
    ],
    ids=["logistic", "mlp"],
)
def test_d1_unseen_validation_class_is_scored(estimator, param_grid):
    X = np.arange(30.0).reshape(-1, 1)
    y = np.r_[np.zeros(14), np.ones(14), 2, 2]  # class 2 only in the last fold
    cv = KFold(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = HypergradSearchCV(estimator, param_grid, cv=cv, **SHORT).fit(X, y)
        grid = _grid_at(search, estimator, X, y)
    np.testing.assert_allclose(
        _split_scores(search, search.best_index_), _split_scores(grid, 0)
    )


def test_d2_verbose_3_prints_the_fold_scores():
    X, y = _regression()
    out = io.StringIO()
    with redirect_stdout(out):
        HypergradSearchCV(
            Ridge(), {"alpha": (0.1, 10.0)}, cv=CV, verbose=3, **SHORT
        ).fit(X, y)
    # GridSearchCV: "[CV 1/3] END ....alpha=0.1;, score=0.998 total time=   0.0s"
    assert re.search(r"\[CV 1/3\] END .*alpha=.*score=", out.getvalue())


def test_d3_callbacks_receive_sample_weight():
    """Fixed: each split trained at an outer iteration of a continuous search
    is a candidate-split-evaluation task with the training part's weights."""
    utils = pytest.importorskip("sklearn.callback.tests._utils")
    X, y = _regression()
    callback = utils.RecordingCallback()
    search = HypergradSearchCV(Ridge(), {"alpha": (0.1, 10.0)}, cv=CV, **SHORT)
    sample_weight = np.random.RandomState(0).randint(1, 5, size=len(y))
    search.set_callbacks(callback).fit(X, y, sample_weight=sample_weight)
    # As scikit-learn's test_search_callbacks_receive_sample_weight.
    records = {
        name: [e for e in callback.record if e["context"].task_name == name]
        for name in ["candidate-split-evaluation", "refit-with-best-params"]
    }
    for entries in records.values():
        assert entries
        for entry in entries:
            assert "sample_weight" in entry["kwargs"]["metadata"]
    # Each split's task gets the training part's rows and weights.
    train_parts = [train for train, _ in CV.split(X, y)]
    for entry in records["candidate-split-evaluation"]:
        train = train_parts[entry["context"].task_id]
        np.testing.assert_array_equal(entry["kwargs"]["X"], X[train])
        np.testing.assert_array_equal(
            entry["kwargs"]["metadata"]["sample_weight"], sample_weight[train]
        )


def test_d4_mlp_without_random_state_searched_as_grid_search():
    X, y = _regression()
    search = HypergradSearchCV(
        MLPRegressor(hidden_layer_sizes=(3,), max_iter=10),
        {"activation": ["relu", "tanh"]},
        cv=CV,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    assert len(search.cv_results_["params"]) == 2


def test_d5_cross_val_hypergrad_validates_the_estimator():
    X, y = _regression()
    with pytest.raises(ValueError, match="'solver' parameter of Ridge"):
        cross_val_hypergrad(Ridge(solver="bogus"), X, y, params={"alpha": 1.0})


def test_d5_search_validates_the_estimator():
    """Fixed: the search refuses invalid values before work, as scikit-learn's
    fit would (where GridSearchCV fails every fit)."""
    X, y = _regression()
    search = HypergradSearchCV(Ridge(solver="bogus"), {"alpha": (0.1, 10.0)}, cv=CV)
    with pytest.raises(ValueError, match="'solver' parameter of Ridge"):
        search.fit(X, y)


# --- Found by test_fuzz.py ------------------------------------------------------


@pytest.mark.parametrize("error_score", [np.nan, "raise"])
def test_n1_nan_in_validation_part_is_a_scoring_failure(error_score):
    X, y = _regression(12, 1)
    X[6, 0] = np.nan  # in the validation part of the second fold only
    estimator = make_pipeline(StandardScaler(), Ridge())
    kwargs = {"cv": KFold(2), "refit": False, "error_score": error_score}
    grid = GridSearchCV(estimator, {"ridge__alpha": [1.0]}, **kwargs)
    # A range whose one coarse point is alpha=1: the differentiable path.
    search = HypergradSearchCV(
        estimator, {"ridge__alpha": (0.5, 2.0)}, n_init=1, n_iter=0, **kwargs
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if error_score == "raise":
            with pytest.raises(ValueError, match="Input X contains NaN"):
                grid.fit(X, y)
            with pytest.raises(ValueError, match="Input X contains NaN"):
                search.fit(X, y)
            return
        grid.fit(X, y)  # every score nan, and no error
        search.fit(X, y)
    np.testing.assert_array_equal(
        _split_scores(search, 0, 2), _split_scores(grid, 0, 2)
    )


def test_n1_overflowing_predictions_are_scored():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(12, 1))
    y = X @ rng.normal(size=1) + 0.5 * rng.normal(size=12)
    estimator = MLPRegressor(
        hidden_layer_sizes=(3,), solver="sgd", momentum=0.5, max_iter=5, random_state=0
    )
    param_grid = {"alpha": [2.96e-24], "learning_rate_init": [18.8]}
    kwargs = {"cv": KFold(2), "refit": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = GridSearchCV(estimator, param_grid, **kwargs).fit(X, y)
        # A range whose one coarse point is the grid's: the differentiable path.
        search = HypergradSearchCV(
            estimator,
            {"alpha": [2.96e-24], "learning_rate_init": [18.8, 18.8 * 1.001]},
            n_iter=0,
            **kwargs,
        ).fit(X, y)
    assert np.isneginf(_split_scores(grid, 0, 2)[1])
    np.testing.assert_array_equal(
        _split_scores(search, 0, 2), _split_scores(grid, 0, 2)
    )


def test_n2_float32_scores_are_grid_search_on_float64():
    """Deliberate (documented in results.rst): the trainers compute in float64
    where scikit-learn's Ridge computes in float32, so the scores are
    GridSearchCV's on X cast to float64, and those on float32 X to float32
    rounding only."""
    X, y = make_regression(40, 5, noise=1.0, random_state=7)
    X = X.astype(np.float32)
    search = HypergradSearchCV(
        Ridge(),
        {"alpha": (1e-4, 1e-1)},
        scoring="neg_mean_squared_error",
        cv=CV,
        **SHORT,
    ).fit(X, y)
    ours = _split_scores(search, search.best_index_)
    on_float64 = _grid_at(search, Ridge(), X.astype(np.float64), y)
    np.testing.assert_allclose(ours, _split_scores(on_float64, 0), rtol=1e-10)
    on_float32 = _grid_at(search, Ridge(), X, y)
    np.testing.assert_allclose(ours, _split_scores(on_float32, 0), rtol=1e-3)
    assert search.best_estimator_.coef_.dtype == np.float32


def test_negative_sample_weight_is_refused():
    X, y = _regression()
    search = HypergradSearchCV(Ridge(), {"alpha": (0.1, 10.0)}, cv=CV, **SHORT)
    with pytest.raises(ValueError, match="Negative values in data passed to"):
        search.fit(X, y, sample_weight=-np.ones(40))

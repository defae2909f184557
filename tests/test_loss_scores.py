"""Scores that are the loss: reported without calling the scorer.

When the scorer is scikit-learn's for the model's own loss
(``neg_log_loss``, ``neg_mean_squared_error``), its value on a validation
fold is minus the loss the search already computed there. The search reports
that value; these tests check it against the scorer itself.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, make_scorer, mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV, _objective


def _log_loss(y_true, y_proba, **kwargs):
    return log_loss(y_true, y_proba, **kwargs)


def _mean_squared_error(y_true, y_pred, **kwargs):
    return mean_squared_error(y_true, y_pred, **kwargs)


# The same metrics, by scorers that are not the registry's: always called.
CALLED = {
    "neg_log_loss": make_scorer(
        _log_loss, greater_is_better=False, response_method="predict_proba"
    ),
    "neg_mean_squared_error": make_scorer(_mean_squared_error, greater_is_better=False),
}


@pytest.fixture
def scorer_calls(monkeypatch):
    """The number of calls of the scorer, in this process."""
    calls = []
    score = _objective.score

    def spy(*args, **kwargs):
        calls.append(1)
        return score(*args, **kwargs)

    monkeypatch.setattr(_objective, "score", spy)
    return calls


def _binary():
    X, y = make_classification(150, 6, random_state=0)
    return X, y


def _multiclass():
    X, y = load_iris(return_X_y=True)
    return X, y


def _regression():
    return make_regression(120, 8, noise=10.0, random_state=0)


def _two_targets():
    X, y = make_regression(120, 8, n_targets=2, noise=10.0, random_state=0)
    return X, y


CASES = {
    "binary": (LogisticRegression(), _binary, "neg_log_loss", {"C": (1e-3, 1e3)}),
    "multiclass": (
        make_pipeline(StandardScaler(), LogisticRegression()),
        _multiclass,
        "neg_log_loss",
        {"logisticregression__C": (1e-3, 1e3)},
    ),
    "liblinear": (
        LogisticRegression(solver="liblinear"),
        _binary,
        "neg_log_loss",
        {"C": (1e-3, 1e3)},
    ),
    "ridge": (Ridge(), _regression, "neg_mean_squared_error", {"alpha": (1e-3, 1e3)}),
    "ridge-two-targets": (
        Ridge(),
        _two_targets,
        "neg_mean_squared_error",
        {"alpha": (1e-3, 1e3)},
    ),
    "ridge-sparse": (
        Ridge(),
        lambda: (sp.csr_matrix(np.maximum(_regression()[0], 0)), _regression()[1]),
        "neg_mean_squared_error",
        {"alpha": (1e-3, 1e3)},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_loss_is_the_scorers_value(case, scorer_calls):
    estimator, data, scoring, space = CASES[case]
    X, y = data()
    cv = StratifiedKFold(3) if scoring == "neg_log_loss" else KFold(3)
    ours = HypergradSearchCV(estimator, space, scoring=scoring, cv=cv).fit(X, y)
    assert not scorer_calls
    called = HypergradSearchCV(estimator, space, scoring=CALLED[scoring], cv=cv).fit(
        X, y
    )
    assert len(scorer_calls) == 3 * len(called.cv_results_["params"])
    for key in ("params", "cv_loss"):
        assert len(ours.cv_results_[key]) == len(called.cv_results_[key])
    for k in range(3):
        key = f"split{k}_test_score"
        np.testing.assert_allclose(
            ours.cv_results_[key], called.cv_results_[key], rtol=1e-12, atol=1e-14
        )


def test_with_sample_weights_the_loss_is_the_weighted_score(scorer_calls):
    X, y = _regression()
    weights = np.random.RandomState(0).uniform(0.2, 3.0, len(y))
    grid = {"alpha": [0.1, 1.0, 10.0]}
    ours = HypergradSearchCV(
        Ridge(), grid, scoring="neg_mean_squared_error", cv=KFold(3)
    ).fit(X, y, sample_weight=weights)
    assert not scorer_calls
    theirs = GridSearchCV(
        Ridge(), grid, scoring="neg_mean_squared_error", cv=KFold(3)
    ).fit(X, y, sample_weight=weights)
    # The listed values are the first rows (the gradient phase follows).
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"][:3],
        theirs.cv_results_["mean_test_score"],
        rtol=1e-10,
    )


def test_a_fold_missing_a_class_calls_the_scorer(scorer_calls):
    # Class 2 has 3 samples: one validation fold of KFold(5) lacks it, where
    # log_loss cannot infer the labels, and GridSearchCV's score fails.
    X, y = make_classification(
        60, 5, n_informative=3, n_classes=3, weights=[0.5, 0.45, 0.05], random_state=0
    )
    order = np.argsort(y, kind="stable")
    X, y = X[order], y[order]
    grid = {"C": [0.1, 1.0]}
    with pytest.warns(UserWarning):
        ours = HypergradSearchCV(
            LogisticRegression(), grid, scoring="neg_log_loss", cv=KFold(5)
        ).fit(X, y)
    assert scorer_calls
    with pytest.warns(UserWarning):
        theirs = GridSearchCV(
            LogisticRegression(), grid, scoring="neg_log_loss", cv=KFold(5)
        ).fit(X, y)
    for k in range(5):
        key = f"split{k}_test_score"
        np.testing.assert_array_equal(
            np.isnan(ours.cv_results_[key]), np.isnan(theirs.cv_results_[key])
        )

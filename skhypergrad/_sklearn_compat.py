"""Every private scikit-learn name skhypergrad uses, and every version shim.

scikit-learn keeps its own shims for its dependencies in ``utils/fixes.py``;
this module does the same for scikit-learn itself, so that auditing what a new
scikit-learn release may break means reading this file and running the
minimum-versions suite (``make test-min``). Signatures that may drift are
wrapped with keyword-only arguments.

The search also calls private methods it inherits from ``BaseSearchCV``:
``_get_scorers``, ``_get_routed_params_for_fit``, ``_format_results``,
``_check_refit_for_multimetric`` and ``_select_best_index``
(``skhypergrad/_results.py`` and ``_search.py``), and scikit-learn 1.9's
``_init_callback_context`` through :func:`init_callback_context`. The
fitted estimators that the models build carry private fitted attributes that
``predict`` reads (``MLPClassifier._label_binarizer``,
``_no_improvement_count``): see :func:`set_private_fitted_attributes`.
"""

import inspect
import numbers

from sklearn.base import _fit_context
from sklearn.model_selection._search import BaseSearchCV
from sklearn.model_selection._validation import (
    _fit_and_score,
    _insert_error_scores,
    _score,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
    validate_params,
)
from sklearn.utils.class_weight import compute_class_weight as _compute_class_weight
from sklearn.utils.metadata_routing import _routing_enabled
from sklearn.utils.validation import (
    _check_method_params,
    _check_sample_weight,
    _get_feature_names,
)

__all__ = [
    "BaseSearchCV",
    "HasMethods",
    "Interval",
    "StrOptions",
    "check_method_params",
    "check_sample_weight",
    "compute_class_weight",
    "error_scores",
    "fit_and_score",
    "fit_context",
    "get_feature_names",
    "init_callback_context",
    "insert_error_scores",
    "effective_logistic_penalty",
    "routing_enabled",
    "safe_indexing",
    "score",
    "scorer_names",
    "set_private_fitted_attributes",
    "validate_estimator_params",
    "validate_parameter_constraints",
    "validate_params",
    "warn_or_raise_about_fit_failures",
]

fit_context = _fit_context
insert_error_scores = _insert_error_scores
warn_or_raise_about_fit_failures = _warn_or_raise_about_fit_failures


def safe_indexing(X, indices):
    """Rows ``indices`` of ``X``, whatever its container."""
    return _safe_indexing(X, indices)


def check_method_params(X, *, params, indices=None):
    """Index the sample-aligned entries of ``params`` (fit or score params)."""
    return _check_method_params(X, params=params, indices=indices)


_SAMPLE_WEIGHT_OPTIONS = inspect.signature(_check_sample_weight).parameters


def check_sample_weight(sample_weight, X):
    """Validate ``sample_weight`` for ``X``: 1-D, one per sample, finite,
    non-negative and not all zero, in scikit-learn's words."""
    options = {"ensure_non_negative": True}
    if "allow_all_zero_weights" in _SAMPLE_WEIGHT_OPTIONS:
        options["allow_all_zero_weights"] = False
    sample_weight = _check_sample_weight(sample_weight, X, **options)
    if not sample_weight.any():
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sample_weight


def get_feature_names(X):
    """The column names of a DataFrame-like ``X``, or None."""
    return _get_feature_names(X)


def routing_enabled():
    """Whether ``sklearn.set_config(enable_metadata_routing=True)`` is on."""
    return _routing_enabled()


def score(estimator, X, y, *, scorer, score_params, error_score):
    """Score a fitted estimator as ``_fit_and_score`` does (dict if multimetric)."""
    return _score(
        estimator,
        X,
        y,
        scorer,
        score_params=score_params,
        error_score=error_score,
    )


_FIT_AND_SCORE_TAKES_CALLBACKS = (
    "callback_ctx" in inspect.signature(_fit_and_score).parameters
)


def fit_and_score(
    estimator,
    X,
    y,
    *,
    scorer,
    train,
    test,
    parameters,
    fit_params,
    score_params,
    return_train_score,
    error_score,
    verbose,
    split_progress,
    candidate_progress,
    caller=None,
    callback_ctx=None,
):
    """Fit and score one candidate on one split, as GridSearchCV does.

    Returns the dict GridSearchCV's ``evaluate_candidates`` collects (scores,
    times, number of test samples, fit error). ``caller`` and
    ``callback_ctx`` are scikit-learn 1.9's callback task of the fit (passed
    only where it has them).
    """
    callbacks = (
        {"caller": caller, "callback_ctx": callback_ctx}
        if _FIT_AND_SCORE_TAKES_CALLBACKS
        else {}
    )
    return _fit_and_score(
        estimator,
        X,
        y,
        scorer=scorer,
        train=train,
        test=test,
        verbose=verbose,
        parameters=parameters,
        fit_params=fit_params,
        score_params=score_params,
        return_train_score=return_train_score,
        return_n_test_samples=True,
        return_times=True,
        split_progress=split_progress,
        candidate_progress=candidate_progress,
        error_score=error_score,
        **callbacks,
    )


def scorer_names(scorer):
    """The names of a multimetric scorer's metrics, or None for one metric."""
    scorers = getattr(scorer, "_scorers", None)
    return list(scorers) if isinstance(scorers, dict) else None


def public_scorer(scorer):
    """What ``BaseSearchCV.fit`` stores as ``scorer_``: the dict of a multimetric."""
    return getattr(scorer, "_scorers", scorer)


def error_scores(scorer, error_score):
    """What a failed fold scores: one number, or one per metric."""
    names = scorer_names(scorer)
    if names is not None and isinstance(error_score, numbers.Number):
        return dict.fromkeys(names, error_score)
    return error_score


def compute_class_weight(class_weight, *, classes, y, sample_weight):
    """Class weights as ``LogisticRegression.fit`` computes them (1.7+):
    balanced by the sum of the sample weights in each class."""
    return _compute_class_weight(
        class_weight, classes=classes, y=y, sample_weight=sample_weight
    )


def effective_logistic_penalty(estimator):
    """The penalty ``LogisticRegression.fit`` uses.

    From scikit-learn 1.8 ``penalty`` is deprecated (its default is the
    sentinel ``"deprecated"``) and ``l1_ratio`` alone decides.
    """
    penalty = getattr(estimator, "penalty", "l2")
    if penalty != "deprecated":
        return penalty
    l1_ratio = estimator.l1_ratio
    if l1_ratio is None or l1_ratio == 0:
        return "l2"
    return "l1" if l1_ratio == 1 else "elasticnet"


def validate_estimator_params(estimator):
    """Check ``estimator``'s parameters against its constraints, as ``fit`` does.

    Raises scikit-learn's ``InvalidParameterError`` (a ``ValueError``). An
    estimator that declares no ``_parameter_constraints`` (many third-party
    ones) is not checked.
    """
    if hasattr(estimator, "_parameter_constraints"):
        estimator._validate_params()


def set_private_fitted_attributes(estimator, **attributes):
    """Set fitted attributes that scikit-learn keeps private but reads later.

    For instance ``MLPClassifier.predict`` reads ``_label_binarizer``.
    """
    for name, value in attributes.items():
        setattr(estimator, f"_{name}", value)


def init_callback_context(estimator, **kwargs):
    """scikit-learn 1.9's callback context for ``estimator.fit``, or None.

    Older versions have no callback API.
    """
    if not hasattr(estimator, "_init_callback_context"):
        return None
    return estimator._init_callback_context(**kwargs)

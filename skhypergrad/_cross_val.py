"""cross_val_hypergrad: the CV loss and its hypergradient at one point."""

import numbers

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.utils.validation import indexable

from ._models import get_model
from ._models._weighted import supports_feature_weights
from ._objective import CrossValObjective, check_data
from ._sklearn_compat import (
    HasMethods,
    check_method_params,
    validate_estimator_params,
    validate_parameter_constraints,
)
from ._space import feature_weights_step, split_pipeline

__all__ = ["cross_val_hypergrad"]


_CONSTRAINTS = {
    "estimator": [HasMethods(["fit"])],
    "X": ["array-like", "sparse matrix"],
    "y": ["array-like"],
    "params": [dict],
    "cv": ["cv_object"],
    "groups": ["array-like", None],
    "fit_params": [dict, None],
}


def cross_val_hypergrad(
    estimator, X, y, *, params, cv=None, groups=None, fit_params=None
):
    """Mean validation loss over CV folds and its hypergradient at one point.

    Parameters
    ----------
    estimator : estimator object
        A supported scikit-learn estimator, or a pipeline whose last step is
        one. Not modified.

    X : array-like of shape (n_samples, n_features)
        Training data. Not modified.

    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Target values. Not modified.

    params : dict of str -> float or array
        Values of differentiable hyperparameters (``"alpha"``, or
        ``"ridge__alpha"`` in a pipeline). The others keep the estimator's
        values. The weights of a :class:`~skhypergrad.FeatureWeights` step
        just before a Ridge, LogisticRegression, MLPRegressor or MLPClassifier
        (``"featureweights__weights"``) are an array, one per group or
        column.

    cv : int, cross-validation generator or an iterable, default=None
        Cross-validation splitting strategy, as in
        :func:`~sklearn.model_selection.cross_validate`.

    groups : array-like of shape (n_samples,), default=None
        Group labels for the samples, for group splitters.

    fit_params : dict, default=None
        Parameters passed to ``fit``: ``sample_weight`` for the model,
        ``<step>__<param>`` for the preprocessing steps of a pipeline.

    Returns
    -------
    loss : float
        Mean over the folds of the model's validation loss: the mean squared
        error for regressors (so ``loss`` equals minus the mean
        ``neg_mean_squared_error`` score of
        :func:`~sklearn.model_selection.cross_val_score`), the log-loss for
        classifiers. The validation loss is not weighted, even when
        ``fit_params`` has a ``sample_weight`` for the training.

    grads : dict of str -> float or ndarray
        The derivative of ``loss`` with respect to each entry of ``params``,
        in that parameter's own units; an array of the weights' shape for
        FeatureWeights' weights.

    See Also
    --------
    HypergradSearchCV : Follows this gradient to tune the hyperparameters.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from skhypergrad import cross_val_hypergrad
    >>> X, y = load_diabetes(return_X_y=True)
    >>> loss, grads = cross_val_hypergrad(Ridge(), X, y, params={"alpha": 1.0})
    >>> round(loss, 1), grads["alpha"] > 0
    (3420.3, True)
    """
    # Validated here rather than by sklearn's validate_params decorator, which
    # would rename the estimator in the errors of its parameters (Ridge's
    # alpha) after this function.
    validate_parameter_constraints(
        _CONSTRAINTS,
        {
            "estimator": estimator,
            "X": X,
            "y": y,
            "params": params,
            "cv": cv,
            "groups": groups,
            "fit_params": fit_params,
        },
        caller_name="cross_val_hypergrad",
    )
    X, y, groups = indexable(X, y, groups)
    check_data(estimator, X, y)
    fit_params = check_method_params(X, params=fit_params or {})

    _, final, prefix = split_pipeline(estimator)
    model = get_model(final)
    model.check_estimator(final)
    differentiable = sorted(prefix + h for h in model.hyperparameters_for(final))
    step = feature_weights_step(estimator)
    vectors = set()
    if step is not None and supports_feature_weights(final):
        vectors = {f"{step[0]}__weights"}
        differentiable = sorted([*differentiable, *vectors])
    for name, value in params.items():
        if name in vectors:
            value = np.asarray(value, dtype=float)
            if value.ndim != 1 or not np.all(np.isfinite(value)):
                raise ValueError(
                    f"{name!r} must be a 1-D array of finite weights, got {value!r}."
                )
            continue
        if name not in differentiable:
            raise ValueError(
                f"{name!r} is not a differentiable hyperparameter of "
                f"{type(final).__name__} with its settings. Differentiable: "
                f"{differentiable}."
            )
        if not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"{name!r} must be a finite real number, got {value!r}.")
    estimator = clone(estimator).set_params(**params)
    # An invalid value (alpha=-1) fails here, in scikit-learn's words.
    validate_estimator_params(split_pipeline(estimator)[1])

    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    splits = list(cv.split(X, y, groups))
    objective = CrossValObjective(
        estimator,
        X,
        y,
        splits,
        list(params),
        fit_params=fit_params,
        error_score="raise",
    )
    result = objective.evaluate(
        {
            k: np.array(v, dtype=float) if k in vectors else float(v)
            for k, v in params.items()
        },
        differentiate=True,
    )
    return result.loss, {
        k: np.asarray(v, dtype=float) if k in vectors else float(v)
        for k, v in result.hypergradient.items()
    }

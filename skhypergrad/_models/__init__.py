"""Registry of differentiable models, keyed by scikit-learn estimator class."""

from ._base import DifferentiableModel, Fold
from ._logistic import LogisticRegressionModel
from ._mlp import MLPClassifierModel, MLPRegressorModel
from ._ridge import RidgeModel

__all__ = ["DifferentiableModel", "Fold", "get_model", "register_model"]

_REGISTRY = {}


def register_model(model):
    """Make an estimator class tunable by :class:`~skhypergrad.HypergradSearchCV`.

    Parameters
    ----------
    model : DifferentiableModel
        An instance whose ``estimator_class`` is the scikit-learn class it
        trains. A model already registered for that class is replaced.

    Returns
    -------
    model : DifferentiableModel
        The registered model, so that this can be used as a decorator-like
        call at import time.
    """
    if not isinstance(model, DifferentiableModel):
        raise TypeError(
            "register_model expects a DifferentiableModel instance, got "
            f"{type(model).__name__}."
        )
    _REGISTRY[model.estimator_class] = model
    return model


def supported_estimators():
    """Names of the estimator classes that have a differentiable model."""
    return sorted(cls.__name__ for cls in _REGISTRY)


def get_model(estimator):
    """Return the differentiable model of ``estimator``'s exact class."""
    try:
        return _REGISTRY[type(estimator)]
    except KeyError:
        raise ValueError(
            f"HypergradSearchCV has no differentiable model for "
            f"{type(estimator).__name__}. Supported estimators: "
            f"{', '.join(supported_estimators())} (alone or as the last step "
            "of a Pipeline). To add one, subclass "
            "skhypergrad.DifferentiableModel and call skhypergrad.register_model."
        ) from None


register_model(RidgeModel())
register_model(MLPRegressorModel())
register_model(MLPClassifierModel())
register_model(LogisticRegressionModel())

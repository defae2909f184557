"""Registry of differentiable models, keyed by scikit-learn estimator class."""

from ._base import DifferentiableModel, Fold, FoldData, Solution, validation_weights
from ._logistic import LogisticRegressionModel
from ._mlp import MLPClassifierModel, MLPRegressorModel
from ._ridge import RidgeModel

__all__ = [
    "DifferentiableModel",
    "Fold",
    "FoldData",
    "Solution",
    "find_model",
    "get_model",
    "register_model",
    "supported_hyperparameters",
    "validation_weights",
]

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
        The registered model, so that a module can register and keep it in
        one statement.
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


def supported_hyperparameters():
    """``"Estimator: a, b; ..."``: what each registered model differentiates."""
    return "; ".join(
        f"{cls.__name__}: {', '.join(model.hyperparameters)}"
        for cls, model in sorted(_REGISTRY.items(), key=lambda item: item[0].__name__)
    )


def find_model(estimator):
    """The differentiable model of ``estimator``, or None.

    The model of its class, or of the nearest registered base class when
    ``estimator``'s class inherits that base's ``fit`` (a subclass that only
    adds methods or changes defaults trains the same way).
    """
    cls = type(estimator)
    for base in cls.__mro__:
        model = _REGISTRY.get(base)
        if model is not None and (base is cls or cls.fit is base.fit):
            return model
    return None


def get_model(estimator):
    """Return the differentiable model of ``estimator``, or raise ValueError."""
    model = find_model(estimator)
    if model is None:
        raise ValueError(
            f"HypergradSearchCV has no differentiable model for "
            f"{type(estimator).__name__}. Supported estimators: "
            f"{', '.join(supported_estimators())} (alone or as the last step "
            "of a Pipeline). To add one, subclass "
            "skhypergrad.DifferentiableModel and call skhypergrad.register_model."
        )
    return model


register_model(RidgeModel())
register_model(MLPRegressorModel())
register_model(MLPClassifierModel())
register_model(LogisticRegressionModel())

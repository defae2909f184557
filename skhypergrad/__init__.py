"""skhypergrad: tune scikit-learn's continuous hyperparameters by gradient descent.

:class:`HypergradSearchCV` is a drop-in for
:class:`~sklearn.model_selection.GridSearchCV` that follows the derivative of
the cross-validation loss (the hypergradient) inside each continuous range,
and :func:`cross_val_hypergrad` gives that loss and derivative at one point.
"""

from ._cross_val import cross_val_hypergrad
from ._feature_weights import FeatureWeights
from ._models import (
    DifferentiableModel,
    Fold,
    FoldData,
    Solution,
    register_model,
    validation_weights,
)
from ._plot import SearchDisplay, plot_search
from ._progress import SearchState
from ._search import HypergradSearchCV

__all__ = [
    "DifferentiableModel",
    "FeatureWeights",
    "Fold",
    "FoldData",
    "HypergradSearchCV",
    "SearchDisplay",
    "SearchState",
    "Solution",
    "cross_val_hypergrad",
    "plot_search",
    "register_model",
    "validation_weights",
]

__version__ = "0.1.0.dev0"

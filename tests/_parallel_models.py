"""A model registered by a user, importable by worker processes.

Workers unpickle the estimator and its model by reference, as they would a
user's module: both are defined here, at module level, not in a test.
"""

import warnings

from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from skhypergrad import register_model
from skhypergrad._models._ridge import RidgeModel


class UsersRidge(Ridge):
    """An estimator of the user's own, with a fit of its own."""

    def fit(self, X, y, sample_weight=None):
        return super().fit(X, y, sample_weight=sample_weight)


class UsersRidgeModel(RidgeModel):
    """Its differentiable model, solved in workers."""

    estimator_class = UsersRidge
    parallel_folds = True


USERS_MODEL = register_model(UsersRidgeModel())


class RefusingScaler(StandardScaler):
    """A preprocessing step whose fit fails, in a worker as in this process."""

    def fit(self, X, y=None, sample_weight=None):
        raise ValueError("RefusingScaler refuses to fit.")


class WarningScaler(StandardScaler):
    """A preprocessing step that warns when fitted."""

    def fit(self, X, y=None, sample_weight=None):
        warnings.warn("WarningScaler was fitted.", UserWarning, stacklevel=2)
        return super().fit(X, y, sample_weight=sample_weight)

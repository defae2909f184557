"""Ridge regression: closed-form training, traced by autograd.

For a training fold with sample weights :math:`s_i`, scikit-learn's ``Ridge``
minimizes :math:`\\sum_i s_i (y_i - x_i w - b)^2 + \\alpha \\|w\\|^2`. With
``fit_intercept`` the intercept is removed by centering on the weighted
means, then the rows are scaled by :math:`\\sqrt{s_i}`. Writing the thin SVD
of the centered, scaled design as :math:`U \\operatorname{diag}(\\sigma) V^T`,

.. math::

    w(\\alpha) = V \\operatorname{diag}\\left(\\frac{\\sigma}{\\sigma^2 + \\alpha}
    \\right) U^T y_c .

The SVD, :math:`U^T y_c` and the validation design projected on :math:`V`
do not depend on :math:`\\alpha`: they are computed once per fold, and each
outer iteration costs a product with an ``(n_val, rank)`` matrix. Only
:func:`_validation_loss` is traced.
"""

import numbers

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad
from sklearn.base import clone
from sklearn.linear_model import Ridge

from ._base import DifferentiableModel, Fold


def _validation_loss(alpha, sigma, projected_val, projected_target, residual_offset):
    """Validation mean squared error of ridge at ``alpha`` (traced).

    ``projected_val @ diag(shrink) @ projected_target`` are the centered
    validation predictions, ``residual_offset`` is ``y_mean - y_val``.
    """
    shrink = sigma / (sigma**2 + alpha)
    predictions = anp.dot(projected_val, shrink[:, None] * projected_target)
    return anp.mean((predictions + residual_offset) ** 2)


class _RidgeFold(Fold):
    def __init__(self, estimator, X_train, y_train, X_val, y_val, sample_weight):
        self.estimator = estimator
        self._is_1d = y_train.ndim == 1
        y_train = y_train.reshape(len(y_train), -1)
        y_val = y_val.reshape(len(y_val), -1)
        weights = np.ones(len(X_train)) if sample_weight is None else sample_weight

        if estimator.fit_intercept:
            self._X_offset = np.average(X_train, axis=0, weights=weights)
            self._y_offset = np.average(y_train, axis=0, weights=weights)
        else:
            self._X_offset = np.zeros(X_train.shape[1])
            self._y_offset = np.zeros(y_train.shape[1])
        root_weights = np.sqrt(weights)[:, None]
        design = root_weights * (X_train - self._X_offset)
        target = root_weights * (y_train - self._y_offset)

        U, self._sigma, Vt = np.linalg.svd(design, full_matrices=False)
        self._V = Vt.T
        self._projected_target = U.T @ target
        self._projected_val = (X_val - self._X_offset) @ self._V
        self._residual_offset = self._y_offset - y_val
        self._n_features = X_train.shape[1]
        self._alpha = estimator.alpha

    def value_and_grad(self, params):
        self._alpha = params.get("alpha", self.estimator.alpha)
        loss, grad = value_and_grad(_validation_loss)(
            float(self._alpha),
            self._sigma,
            self._projected_val,
            self._projected_target,
            self._residual_offset,
        )
        grads = {"alpha": float(grad)} if "alpha" in params else {}
        return float(loss), grads

    def fitted_estimator(self):
        shrink = self._sigma / (self._sigma**2 + self._alpha)
        coef = (self._V @ (shrink[:, None] * self._projected_target)).T
        intercept = self._y_offset - coef @ self._X_offset
        ridge = clone(self.estimator).set_params(alpha=self._alpha)
        if self._is_1d:
            coef, intercept = coef[0], intercept[0]
        ridge.coef_ = coef
        ridge.intercept_ = intercept if self.estimator.fit_intercept else 0.0
        ridge.n_features_in_ = self._n_features
        ridge.n_iter_ = None
        ridge.solver_ = "svd"
        return ridge


class RidgeModel(DifferentiableModel):
    """:class:`~sklearn.linear_model.Ridge`, tuned over ``alpha``."""

    estimator_class = Ridge
    # alpha is a positive scale: searched as log(alpha).
    hyperparameters = {"alpha": "log"}
    loss = "mean squared error"

    def check_estimator(self, estimator):
        if estimator.positive:
            raise ValueError(
                "Ridge(positive=True) has no closed-form solution, so "
                "HypergradSearchCV cannot differentiate it. Set positive=False."
            )
        if not isinstance(estimator.alpha, numbers.Real):
            raise ValueError(
                "HypergradSearchCV tunes a single Ridge alpha shared by all "
                f"targets; got alpha={estimator.alpha!r}. Pass a float."
            )

    def fold(self, estimator, X_train, y_train, X_val, y_val, sample_weight=None):
        return _RidgeFold(
            estimator,
            np.asarray(X_train, dtype=np.float64),
            np.asarray(y_train, dtype=np.float64),
            np.asarray(X_val, dtype=np.float64),
            np.asarray(y_val, dtype=np.float64),
            None if sample_weight is None else np.asarray(sample_weight, float),
        )

"""Ridge regression: closed-form training, traced by autograd.

For a training fold with sample weights :math:`s_i`, scikit-learn's ``Ridge``
minimizes :math:`\\sum_i s_i (y_i - x_i w - b)^2 + \\alpha \\|w\\|^2`. With
``fit_intercept`` the intercept is removed by centering on the weighted
means, then the rows are scaled by :math:`\\sqrt{s_i}`, giving a design
:math:`D` and target :math:`t`. With the eigendecomposition
:math:`D^T D = V \\operatorname{diag}(e) V^T`,

.. math::

    w(\\alpha) = V \\operatorname{diag}\\left(\\frac{1}{e + \\alpha}\\right)
    V^T D^T t ,

and when there are fewer samples than features the same holds with the
eigendecomposition :math:`D D^T = U \\operatorname{diag}(e) U^T` and the basis
:math:`D^T U` in place of :math:`V` (scikit-learn's cholesky solver switches
between the two forms the same way).

The decomposition, the projected target and the projected validation design
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

from ._base import DifferentiableModel, Fold, validation_weights


def _validation_loss(
    alpha, eigenvalues, projected_val, projected_target, residual_offset, weights
):
    """Validation mean squared error of ridge at ``alpha`` (traced).

    ``projected_val @ diag(1 / (eigenvalues + alpha)) @ projected_target``
    are the centered validation predictions; ``residual_offset`` is
    ``y_mean - y_val``; ``weights`` (summing to one) weigh the samples, the
    targets count equally.
    """
    shrink = 1.0 / (eigenvalues + alpha)
    predictions = anp.dot(projected_val, shrink[:, None] * projected_target)
    return anp.dot(weights, anp.mean((predictions + residual_offset) ** 2, axis=1))


class _RidgeFold(Fold):
    def __init__(
        self, estimator, X_train, y_train, X_val, y_val, sample_weight, val_weights
    ):
        self.estimator = estimator
        self._val_weights = val_weights
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

        n_samples, n_features = design.shape
        if n_features <= n_samples:
            eigenvalues, self._basis = np.linalg.eigh(design.T @ design)
            self._projected_target = self._basis.T @ (design.T @ target)
        else:
            eigenvalues, U = np.linalg.eigh(design @ design.T)
            self._basis = design.T @ U
            self._projected_target = U.T @ target
        # Rounding can leave tiny negative eigenvalues of a PSD matrix.
        self._eigenvalues = np.maximum(eigenvalues, 0.0)
        self._projected_val = (X_val - self._X_offset) @ self._basis
        self._residual_offset = self._y_offset - y_val
        self._n_features = n_features
        self._alpha = estimator.alpha

    def value_and_grad(self, params):
        self._alpha = params.get("alpha", self.estimator.alpha)
        loss, grad = value_and_grad(_validation_loss)(
            float(self._alpha),
            self._eigenvalues,
            self._projected_val,
            self._projected_target,
            self._residual_offset,
            self._val_weights,
        )
        grads = {"alpha": float(grad)} if "alpha" in params else {}
        return float(loss), grads

    def fitted_estimator(self):
        shrink = 1.0 / (self._eigenvalues + self._alpha)
        coef = (self._basis @ (shrink[:, None] * self._projected_target)).T
        intercept = self._y_offset - coef @ self._X_offset
        ridge = clone(self.estimator).set_params(alpha=self._alpha)
        if self._is_1d:
            coef, intercept = coef[0], intercept[0]
        ridge.coef_ = coef
        ridge.intercept_ = intercept if self.estimator.fit_intercept else 0.0
        ridge.n_features_in_ = self._n_features
        ridge.n_iter_ = None
        ridge.solver_ = "cholesky"
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

    def fold(
        self,
        estimator,
        X_train,
        y_train,
        X_val,
        y_val,
        sample_weight=None,
        val_sample_weight=None,
    ):
        return _RidgeFold(
            estimator,
            np.asarray(X_train, dtype=np.float64),
            np.asarray(y_train, dtype=np.float64),
            np.asarray(X_val, dtype=np.float64),
            np.asarray(y_val, dtype=np.float64),
            None if sample_weight is None else np.asarray(sample_weight, float),
            validation_weights(val_sample_weight, len(X_val)),
        )

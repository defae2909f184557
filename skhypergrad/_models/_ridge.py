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

The decomposition (:class:`~._spectral.Spectrum`), the projected target and
the projected validation design do not depend on :math:`\\alpha`: they are
computed once per fold, and each solve costs a product with an
``(n_val, rank)`` matrix. Only :func:`_validation_loss` is traced.
"""

import numbers

import numpy as np
from autograd import grad
from sklearn.base import clone
from sklearn.linear_model import Ridge

from ._base import DifferentiableModel, Fold, Solution
from ._losses import squared_error, weighted_mean
from ._spectral import Spectrum, shrunk_predictions


def _validation_loss(
    alpha, eigenvalues, projected_val, projected_target, residual_offset, weights
):
    """Validation mean squared error of ridge at ``alpha`` (traced).

    ``projected_val @ diag(1 / (eigenvalues + alpha)) @ projected_target``
    are the centered validation predictions; ``residual_offset`` is
    ``y_mean - y_val``; ``weights`` (summing to one) weigh the samples, the
    targets count equally.
    """
    centered = shrunk_predictions(alpha, eigenvalues, projected_val, projected_target)
    return weighted_mean(squared_error(centered, -residual_offset), weights)


class _RidgeSolution(Solution):
    def __init__(self, fold, alpha):
        self._fold = fold
        self.alpha = float(alpha)
        self.params = {"alpha": self.alpha}
        self.loss = float(_validation_loss(self.alpha, *fold.loss_args))

    def hypergradient(self, names):
        if list(names) not in ([], ["alpha"]):
            raise ValueError(f"Ridge has no continuous hyperparameters {names}.")
        if not names:
            return {}
        return {
            "alpha": float(grad(_validation_loss)(self.alpha, *self._fold.loss_args))
        }

    def fitted_estimator(self):
        fold = self._fold
        shrink = 1.0 / (fold.eigenvalues + self.alpha)
        coef = (fold.basis @ (shrink[:, None] * fold.projected_target)).T
        intercept = fold.y_offset - coef @ fold.X_offset
        ridge = clone(fold.estimator).set_params(alpha=self.alpha)
        if fold.is_1d:
            coef, intercept = coef[0], intercept[0]
        ridge.coef_ = coef
        ridge.intercept_ = intercept if fold.estimator.fit_intercept else 0.0
        ridge.n_features_in_ = fold.n_features
        ridge.n_iter_ = None
        ridge.solver_ = "cholesky"
        return ridge


class _RidgeFold(Fold):
    def __init__(self, estimator, data):
        self.estimator = estimator
        X_train = np.asarray(data.X_train, dtype=np.float64)
        y_train = np.asarray(data.y_train, dtype=np.float64)
        X_val = np.asarray(data.X_val, dtype=np.float64)
        y_val = np.asarray(data.y_val, dtype=np.float64)
        self.is_1d = y_train.ndim == 1
        y_train = y_train.reshape(len(y_train), -1)
        y_val = y_val.reshape(len(y_val), -1)
        if data.sample_weight is None:
            weights = np.ones(len(X_train))
        else:
            weights = np.asarray(data.sample_weight, dtype=np.float64)

        if estimator.fit_intercept:
            self.X_offset = np.average(X_train, axis=0, weights=weights)
            self.y_offset = np.average(y_train, axis=0, weights=weights)
        else:
            self.X_offset = np.zeros(X_train.shape[1])
            self.y_offset = np.zeros(y_train.shape[1])
        root_weights = np.sqrt(weights)[:, None]
        design = root_weights * (X_train - self.X_offset)
        target = root_weights * (y_train - self.y_offset)

        n_samples, self.n_features = design.shape
        if self.n_features <= n_samples:
            spectrum = Spectrum(design.T @ design)
            vectors = spectrum.eigenvectors[:, spectrum.kept]
            self.basis = vectors
            self.projected_target = vectors.T @ (design.T @ target)
        else:
            spectrum = Spectrum(design @ design.T)
            vectors = spectrum.eigenvectors[:, spectrum.kept]
            self.basis = design.T @ vectors
            self.projected_target = vectors.T @ target
        # Only the directions outside the null space of the design: the
        # solution has no component along the others (see Spectrum).
        self.eigenvalues = spectrum.eigenvalues[spectrum.kept]
        # Everything the validation loss needs besides alpha.
        self.loss_args = (
            self.eigenvalues,
            (X_val - self.X_offset) @ self.basis,
            self.projected_target,
            self.y_offset - y_val,
            data.val_weights,
        )

    def solve(self, params, *, differentiate=False):
        return _RidgeSolution(self, params.get("alpha", self.estimator.alpha))


class RidgeModel(DifferentiableModel):
    """:class:`~sklearn.linear_model.Ridge`, tuned over ``alpha``."""

    estimator_class = Ridge
    # alpha is a positive scale: searched as log(alpha).
    hyperparameters = {"alpha": "log"}
    loss_name = "mean squared error"
    loss_scoring = "neg_mean_squared_error"
    # A step is an eigenbasis shrinkage: cheaper than a round trip to a worker.
    parallel_folds = False

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

    def fold(self, estimator, data):
        return _RidgeFold(estimator, data)

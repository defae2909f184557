"""Linear models behind a FeatureWeights step: one penalty per feature.

When a :class:`~skhypergrad.FeatureWeights` step whose weights are searched
comes just before a Ridge or a LogisticRegression (an MLP: see
``_weighted_mlp``), the search does not fit
it as preprocessing: the weights are hyperparameters of the model's fold,
named ``"feature_weights"`` (one per group; the columns' factors are
``s = weights[groups]``), and the hypergradient of every weight comes from
one adjoint solve.

Ridge
-----
The model trained on :math:`X S` (:math:`S = \\operatorname{diag}(s)`),
after centering and the square roots of the sample weights (design
:math:`D`, target :math:`t`, :math:`G = D^T D`, :math:`c = D^T t`), has the
coefficients :math:`b` with

.. math::

    A b = S c, \\qquad A = S G S + \\alpha I ,

and the validation predictions :math:`X_v S b` (the validation design
centered on the training means). With :math:`g` the derivative of the
validation loss in the predictions, :math:`A u = S X_v^T g` (one Cholesky
factorization serves the solve and the adjoint), :math:`\\beta = S b`:

.. math::

    \\frac{\\partial L}{\\partial s} = u \\odot (c - G \\beta)
    - b \\odot (G S u) + b \\odot (X_v^T g), \\qquad
    \\frac{\\partial L}{\\partial \\alpha} = - u^T b .

The Gram matrix :math:`G` is formed once per fold; a solve costs a Cholesky
factorization of a ``(n_features, n_features)`` matrix.

LogisticRegression
------------------
The coefficients :math:`b` of the model trained on :math:`X S` are found by
the logistic module's Newton solver (the columns scaled, warm-started from
the fold's previous solutions), and differentiated implicitly: the training
objective depends on :math:`s` through its data term (the logits are
:math:`X (s \\odot b)`), so the mixed derivative is traced on the whole
objective, and the validation loss depends on :math:`s` directly too.
"""

import warnings
from dataclasses import replace

import autograd.numpy as anp
import numpy as np
from autograd import grad
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh
from scipy.sparse import issparse
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor

from . import get_model
from ._base import Fold, Solution
from ._implicit import implicit_hypergradient
from ._logistic import (
    _ADJOINT_RTOL,
    _LogisticFold,
    _LogisticSolution,
    _pointwise_log_loss,
)
from ._logistic_solver import LogisticObjective, newton_solve
from ._losses import clipped, weighted_mean
from ._threads import blas_threads_limited
from ._weighted_mlp import WeightedMLPFold

__all__ = [
    "WEIGHTS",
    "default_weights_penalty",
    "supports_feature_weights",
    "weighted_fold",
]

# The name of the weights among a fold's hyperparameters.
WEIGHTS = "feature_weights"


# HypergradSearchCV's weights_penalty="auto", per model: the best of those
# tried on the held-out data of benchmarks/bench_many.py (Ridge: 0, 0.03, 0.1,
# 0.3 on the sparse and dense tasks; LogisticRegression: 0.1, 1, 3, 10 on the
# classification task, where 0.1 let the CV log-loss be overfitted badly: a
# log-loss can fall towards zero on nearly separable folds, a squared error
# only to the noise). The MLPs take their linear model's value, by that same
# argument rather than by a benchmark of their own: an MLPClassifier's
# validation log-loss is overfitted as the logistic one is (large input scales
# make the folds nearly separable), an MLPRegressor's squared error is not.
_DEFAULT_PENALTIES = {
    Ridge: 0.1,
    LogisticRegression: 3.0,
    MLPRegressor: 0.1,
    MLPClassifier: 3.0,
}


def default_weights_penalty(estimator):
    """The penalty on the spread of the log-weights for ``estimator``."""
    return _DEFAULT_PENALTIES.get(type(estimator), 0.1)


def supports_feature_weights(estimator):
    """Whether a FeatureWeights step before ``estimator`` can be differentiated."""
    return type(estimator) in (Ridge, LogisticRegression, MLPRegressor, MLPClassifier)


def weighted_fold(estimator, data, weights, groups):
    """The fold of ``estimator`` behind a FeatureWeights step.

    Parameters
    ----------
    estimator : Ridge, LogisticRegression, MLPRegressor or MLPClassifier
        The final estimator, unfitted.
    data : FoldData
        The split's data as the FeatureWeights step receives it.
    weights : ndarray of shape (n_groups,)
        The step's own weights: those used when ``params`` has none.
    groups : ndarray of int of shape (n_features,) or None
        The group of each column; None for a weight per column.
    """
    if isinstance(estimator, (MLPRegressor, MLPClassifier)):
        # An MLP's first layer takes sparse data as they are.
        inner = get_model(estimator).fold(estimator, data)
        return WeightedMLPFold(inner, weights, groups, WEIGHTS, _checked_weights)
    if issparse(data.X_train) or issparse(data.X_val):
        # The weighted folds work on dense arrays (Ridge's centered Gram
        # matrix, the logistic solver's scaled columns).
        data = replace(data, X_train=_dense(data.X_train), X_val=_dense(data.X_val))
    if isinstance(estimator, Ridge):
        return _WeightedRidgeFold(estimator, data, weights, groups)
    return _WeightedLogisticFold(estimator, data, weights, groups)


def _dense(X):
    return X.toarray() if issparse(X) else X


def _column_scale(weights, groups):
    return weights if groups is None else weights[groups]


def _group_sums(per_column, groups, n_groups):
    """The derivative per weight: the sum over the columns of its group."""
    if groups is None:
        return per_column
    return np.bincount(groups, weights=per_column, minlength=n_groups)


def _checked_weights(fold, params):
    weights = np.asarray(params.get(WEIGHTS, fold.weights), dtype=np.float64)
    if weights.shape != fold.weights.shape:
        raise ValueError(
            f"FeatureWeights: {len(fold.weights)} weights expected (one per "
            f"{'group' if fold.groups is not None else 'column'}), got an array "
            f"of shape {weights.shape}."
        )
    if not (np.all(np.isfinite(weights)) and np.all(weights >= 0)):
        raise ValueError("FeatureWeights: weights must be finite and non-negative.")
    return weights


# --- Ridge -------------------------------------------------------------------


class _Cholesky:
    """Solves with a symmetric positive definite matrix, or its pseudo-inverse."""

    def __init__(self, matrix):
        try:
            self._factor = cho_factor(matrix, lower=True, check_finite=False)
            self._eig = None
        except LinAlgError:
            # alpha = 0 with a rank-deficient design: the minimum-norm solution.
            values, vectors = eigh(matrix, check_finite=False)
            kept = values > len(values) * np.finfo(float).eps * max(values.max(), 0)
            inverse = np.where(kept, 1.0 / np.where(kept, values, 1.0), 0.0)
            self._eig = (vectors, inverse)

    def solve(self, b):
        if self._eig is None:
            return cho_solve(self._factor, b, check_finite=False)
        vectors, inverse = self._eig
        return vectors @ (inverse[:, None] * (vectors.T @ b))


class _WeightedRidgeSolution(Solution):
    def __init__(self, fold, alpha, weights):
        self._fold = fold
        self.alpha = alpha
        self.weights = weights
        self.params = {"alpha": alpha, WEIGHTS: weights}
        s = _column_scale(weights, fold.groups)
        self._s = s
        system = fold.gram * np.outer(s, s)
        system[np.diag_indices_from(system)] += alpha
        with blas_threads_limited():
            self._system = _Cholesky(system)
            self.coef = self._system.solve(s[:, None] * fold.cross)  # b, (p, k)
            residual = fold.X_val @ (s[:, None] * self.coef) - fold.centered_y_val
        self._residual = residual
        self.loss = float(weighted_mean(np.mean(residual**2, axis=1), fold.val_weights))

    def hypergradient(self, names):
        unknown = set(names) - {"alpha", WEIGHTS}
        if unknown:
            raise ValueError(
                f"Ridge has no continuous hyperparameters {sorted(unknown)}."
            )
        with blas_threads_limited():
            return self._hypergradient(names)

    def _hypergradient(self, names):
        fold, s, b = self._fold, self._s, self.coef
        # d loss / d predictions, then the adjoint A u = S X_v^T g.
        g = (2.0 / b.shape[1]) * fold.val_weights[:, None] * self._residual
        val_grad = fold.X_val.T @ g
        u = self._system.solve(s[:, None] * val_grad)
        grads = {}
        if "alpha" in names:
            grads["alpha"] = float(-np.sum(u * b))
        if WEIGHTS in names:
            beta = s[:, None] * b
            per_column = np.sum(
                u * (fold.cross - fold.gram @ beta)
                - b * (fold.gram @ (s[:, None] * u))
                + b * val_grad,
                axis=1,
            )
            grads[WEIGHTS] = _group_sums(per_column, fold.groups, len(self.weights))
        return grads

    def fitted_estimator(self):
        fold = self._fold
        coef = self.coef.T
        intercept = fold.y_offset - coef @ (self._s * fold.X_offset)
        ridge = clone(fold.estimator).set_params(alpha=self.alpha)
        if fold.is_1d:
            coef, intercept = coef[0], intercept[0]
        ridge.coef_ = coef
        ridge.intercept_ = intercept if fold.estimator.fit_intercept else 0.0
        ridge.n_features_in_ = len(self._s)
        ridge.n_iter_ = None
        ridge.solver_ = "cholesky"
        return ridge


class _WeightedRidgeFold(Fold):
    def __init__(self, estimator, data, weights, groups):
        self.estimator = estimator
        self.weights = np.asarray(weights, dtype=np.float64)
        self.groups = groups
        X_train = np.asarray(data.X_train, dtype=np.float64)
        y_train = np.asarray(data.y_train, dtype=np.float64)
        X_val = np.asarray(data.X_val, dtype=np.float64)
        y_val = np.asarray(data.y_val, dtype=np.float64)
        self.is_1d = y_train.ndim == 1
        y_train = y_train.reshape(len(y_train), -1)
        y_val = y_val.reshape(len(y_val), -1)
        sample_weight = (
            np.ones(len(X_train))
            if data.sample_weight is None
            else np.asarray(data.sample_weight, dtype=np.float64)
        )
        if estimator.fit_intercept:
            self.X_offset = np.average(X_train, axis=0, weights=sample_weight)
            self.y_offset = np.average(y_train, axis=0, weights=sample_weight)
        else:
            self.X_offset = np.zeros(X_train.shape[1])
            self.y_offset = np.zeros(y_train.shape[1])
        root = np.sqrt(sample_weight)[:, None]
        design = root * (X_train - self.X_offset)
        self.gram = design.T @ design
        self.cross = design.T @ (root * (y_train - self.y_offset))
        self.X_val = X_val - self.X_offset
        self.centered_y_val = y_val - self.y_offset
        self.val_weights = data.val_weights

    def solve(self, params, *, differentiate=False):
        alpha = float(params.get("alpha", self.estimator.alpha))
        return _WeightedRidgeSolution(self, alpha, _checked_weights(self, params))


# --- LogisticRegression --------------------------------------------------------


def _scaled_theta(theta, column_scale, n_columns):
    """The coefficients on the original columns: each column's times its factor."""
    return anp.ravel(anp.reshape(theta, (-1, n_columns)) * column_scale)


class _WeightedLogisticSolution(Solution):
    def __init__(self, fold, C, weights, theta, l2, proba, n_iter):
        self._fold = fold
        self.C = C
        self.weights = weights
        self.params = {"C": C, WEIGHTS: weights}
        self.theta = theta
        self._l2 = l2
        self._proba = proba
        self.n_iter = n_iter
        self._column_scale = fold.column_scale(weights)
        self.loss = (
            float(fold.validation_loss(theta, self._column_scale)) + fold.unseen_loss
            if np.all(np.isfinite(theta))
            else np.nan
        )

    def hypergradient(self, names):
        unknown = set(names) - {"C", WEIGHTS}
        if unknown:
            raise ValueError(
                "LogisticRegression has no continuous hyperparameters "
                f"{sorted(unknown)}."
            )
        if not np.all(np.isfinite(self.theta)):
            return dict.fromkeys(names, np.nan)
        fold = self._fold
        solver = fold.solver_at(self._column_scale)
        X, Y, sample_weight, penalty = fold.train_args
        groups = fold.groups
        n_columns = X.shape[1]
        intercept = np.ones(n_columns - fold.n_features_in_)

        def column_scale(weights):
            scale = weights if groups is None else weights[groups]
            return anp.concatenate([scale, intercept])

        def validation_loss(theta):
            return fold.validation_loss(theta, self._column_scale)

        def mixed_term(theta, hypers):
            # The data term depends on the weights through the logits; the
            # penalty on C (traced in log C, as the logistic module does).
            scaled = _scaled_theta(theta, column_scale(hypers["w"]), n_columns)
            data = anp.dot(sample_weight, _pointwise_log_loss(scaled, X, Y))
            return data + 0.5 * anp.exp(-hypers["log_C"]) * anp.sum(penalty * theta**2)

        def solve(b):
            return solver.solve(self._l2, self._proba, b, _ADJOINT_RTOL)[0]

        with blas_threads_limited():
            implicit = implicit_hypergradient(
                validation_loss,
                self.theta,
                solve,
                mixed_term,
                {"log_C": np.log(self.C), "w": self.weights},
            )
            direct = grad(lambda w: fold.validation_loss(self.theta, column_scale(w)))(
                self.weights
            )
        grads = {}
        if "C" in names:
            grads["C"] = float(implicit["log_C"]) / self.C
        if WEIGHTS in names:
            grads[WEIGHTS] = np.asarray(implicit["w"]) + np.asarray(direct)
        return grads

    def fitted_estimator(self):
        # The estimator trained on the scaled columns: b, as the logistic
        # module builds it from its coefficients.
        return _LogisticSolution.fitted_estimator(self)


class _WeightedLogisticFold(_LogisticFold):
    def __init__(self, estimator, data, weights, groups):
        super().__init__(estimator, data)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.groups = groups
        self._centered = self.objective.flat_direction is not None
        self._unnormalized_penalty = self.objective.penalty

    def column_scale(self, weights):
        """The factor of every column of the training design, intercept last."""
        scale = _column_scale(weights, self.groups)
        n_intercept = self.train_args[0].shape[1] - self.n_features_in_
        return np.concatenate([scale, np.ones(n_intercept)])

    def validation_loss(self, theta, column_scale):
        X_val, Y_val, weights = self.val_args
        scaled = _scaled_theta(theta, column_scale, X_val.shape[1])
        return weighted_mean(
            clipped(_pointwise_log_loss(scaled, X_val, Y_val)), weights
        )

    def solver_at(self, column_scale):
        """The Hessian solver of the training problem on the scaled columns.

        The fold's solver keeps its factorizations at earlier weights: they
        precondition conjugate gradient on the exact Hessian-vector products
        of the new problem.
        """
        X, Y, sample_weight, _ = self.train_args
        objective = LogisticObjective(
            np.asfortranarray(X * column_scale),
            Y,
            sample_weight,
            self._unnormalized_penalty,
            centered=self._centered,
        )
        self.hessian_solver.objective = objective
        return self.hessian_solver

    def solve(self, params, *, differentiate=False):
        C = params.get("C", self.estimator.C)
        if not 0 < C < np.inf:
            raise ValueError(
                "HypergradSearchCV needs a finite positive C for LogisticRegression; "
                f"got C={C!r}. Search C over a range such as (1e-4, 1e4)."
            )
        C = float(C)
        weights = _checked_weights(self, params)
        column_scale = self.column_scale(weights)
        solver = self.solver_at(column_scale)
        l2 = 1.0 / (C * self.weight_sum)
        # Warm start from the solution at the nearest point solved so far.
        key = np.concatenate([[np.log(C)], np.log(np.maximum(weights, 1e-300))])
        nearest = sorted(self._history, key=lambda item: np.sum((item[0] - key) ** 2))
        start = nearest[0][1] if nearest else np.zeros(solver.objective.n_params)
        with blas_threads_limited():
            theta, n_iter, grad_norm, proba = newton_solve(
                solver.objective,
                solver,
                start,
                l2,
                max_iter=self.estimator.max_iter,
                gtol=self.gtol,
            )
        if grad_norm > self.default_gtol and n_iter >= self.estimator.max_iter:
            warnings.warn(
                f"The inner solve of LogisticRegression(C={C:.6g}) with feature "
                f"weights stopped at max_iter={self.estimator.max_iter} Newton "
                f"iterations, with a largest gradient entry of {grad_norm:.3g}: its "
                "loss and hypergradient are inaccurate. Increase max_iter.",
                ConvergenceWarning,
                stacklevel=2,
            )
        if np.all(np.isfinite(theta)):
            self._history = [*self._history[-7:], (key, theta)]
        return _WeightedLogisticSolution(self, C, weights, theta, l2, proba, n_iter)

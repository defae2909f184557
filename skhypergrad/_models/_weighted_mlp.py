"""MLPs behind a FeatureWeights step: a learned scale of the input columns.

When a searched :class:`~skhypergrad.FeatureWeights` step comes just before
an MLPRegressor or an MLPClassifier, the network is trained on
:math:`X S` (:math:`S = \\operatorname{diag}(s)`, ``s = weights[groups]``)
exactly as scikit-learn trains it on the step's output: the scaled columns
are computed as the step computes them and handed to the training of
:mod:`._mlp_training`, which then reproduces
``make_pipeline(FeatureWeights(weights), MLP...).fit``.

The scale enters the training only through the first layer, where the data
are: in each minibatch step the pre-activation :math:`(X_b S) W_1 + b_1`
and the gradient :math:`((X_b S)^T \\Delta_1 + \\alpha W_1) / n`. With
:math:`\\bar z` and :math:`\\bar G` the cotangents of that pre-activation and
of that gradient in the reverse sweep over the training, the step adds

.. math::

    \\bar s \\mathrel{+}= \\operatorname{rowsum}\\left((X_b^T \\bar z) \\odot W_1
    + (X_b^T \\Delta_1) \\odot \\bar G / n\\right)

(rows summed over the hidden units), products of the unscaled data with
dense matrices, so a sparse :math:`X` stays data. The validation loss
depends on :math:`s` directly too, through :math:`(X_v S) W_1 = X_v (S W_1)`,
differentiated by tracing the latter. All the weights' derivatives come from
the one reverse sweep that gives those of the scalar hyperparameters.
"""

import copy

import autograd.numpy as anp
import numpy as np
from autograd import grad
from scipy import sparse
from sklearn.utils.sparsefuncs import inplace_column_scale

from . import _mlp_training as training
from ._base import Fold, Solution
from ._threads import blas_threads_limited

__all__ = ["WeightedMLPFold"]


def _scaled_columns(X, scale):
    """``X`` times ``scale`` column by column, as FeatureWeights computes it."""
    if sparse.issparse(X):
        X = X.copy()
        inplace_column_scale(X, scale)
        return X
    return X * scale


class _WeightedMLPSolution(Solution):
    def __init__(self, fold, params, weights, scale, scaled_fold, solution):
        self._fold = fold
        self._scale = scale
        self._scaled_fold = scaled_fold
        self._solution = solution
        self.weights = weights
        self.params = {**params, fold.weights_name: weights}
        self.loss = solution.loss

    def hypergradient(self, names):
        fold = self._fold
        names = list(names)
        others = [n for n in names if n != fold.weights_name]
        fold.inner.check_names(others)
        if not np.isfinite(self.loss):
            return dict.fromkeys(names, np.nan)
        scaled, solution = self._scaled_fold, self._solution
        run, hp = solution.run, solution.hp
        with np.errstate(all="ignore"), blas_threads_limited():
            if not run.checkpoints:
                run = training.train(scaled.problem, hp, keep_checkpoints=True)
            scale_bar = np.zeros(fold.inner.n_features)
            problem = scaled.problem
            X = fold.inner.problem.X
            first = problem.layout.layers[0]

            def on_step(epoch, k, tape, z_bar, coef_bar):
                nonlocal scale_bar
                X_batch = X[problem.batch_orders(epoch)[problem.batches[k]]]
                W = tape.state[first.coef].reshape(first.shape)
                G_bar = coef_bar.reshape(first.shape) / tape.n
                scale_bar = scale_bar + np.sum(
                    (X_batch.T @ z_bar) * W + (X_batch.T @ tape.deltas[0]) * G_bar,
                    axis=1,
                )

            # The sweep differentiates the scalar hyperparameters too: alpha
            # at least, so that it has one to carry (its value is dropped if
            # not asked).
            swept = others or ["alpha"]
            scalar = training.hypergradient_reverse(
                problem, run, hp, swept, scaled.validation_loss, on_step
            )
            direct = grad(self._validation_loss_in_scale)(self._scale)
        # The checkpoints have served; the weights stay for fitted_estimator.
        solution.run.checkpoints = {}
        per_column = scale_bar + direct
        grads = {name: float(g) for name, g in zip(swept, scalar, strict=True)}
        grads = {name: grads[name] for name in others}
        if fold.weights_name in names:
            grads[fold.weights_name] = fold.group_sums(per_column)
        return grads

    def _validation_loss_in_scale(self, scale):
        """The validation loss of the trained network as a function of ``s``.

        :math:`(X_v S) W_1 = X_v (S W_1)`: the scale moved onto the first
        layer's coefficients, which keeps the validation data as data.
        """
        fold, theta = self._fold, self._solution.run.theta
        first = fold.inner.layout.layers[0]
        coef = anp.reshape(theta[first.coef], first.shape) * anp.reshape(scale, (-1, 1))
        moved = anp.concatenate([anp.ravel(coef), theta[first.coef.stop :]])
        return fold.inner.validation_loss(moved)

    def fitted_estimator(self):
        return self._solution.fitted_estimator()


class WeightedMLPFold(Fold):
    """The fold of an MLP trained on columns scaled by a FeatureWeights step.

    Parameters
    ----------
    inner : _MLPFold
        The MLP's fold on the unscaled data.
    weights : ndarray of shape (n_groups,)
        The step's own weights: those used when ``params`` has none.
    groups : ndarray of int of shape (n_features,) or None
        The group of each column; None for a weight per column.
    weights_name : str
        The name of the weights among the fold's hyperparameters.
    check_weights : callable
        ``check_weights(fold, params)`` returns the checked weights.
    """

    def __init__(self, inner, weights, groups, weights_name, check_weights):
        self.inner = inner
        self.weights = np.asarray(weights, dtype=np.float64)
        self.groups = groups
        self.weights_name = weights_name
        self._check_weights = check_weights

    def column_scale(self, weights):
        """The factor of each column."""
        return weights if self.groups is None else weights[self.groups]

    def group_sums(self, per_column):
        """The derivative per weight: the sum over the columns of its group."""
        if self.groups is None:
            return per_column
        return np.bincount(self.groups, weights=per_column, minlength=len(self.weights))

    def _scaled_fold(self, scale):
        """A shallow copy of the MLP's fold whose data are scaled."""
        inner = self.inner
        scaled = copy.copy(inner)
        scaled.problem = copy.copy(inner.problem)
        scaled.problem.X = _scaled_columns(inner.problem.X, scale)
        score = inner.problem.validation_score
        if score is not None:
            scaled.problem.validation_score = copy.copy(score)
            scaled.problem.validation_score.X = _scaled_columns(score.X, scale)
        scaled._X_val = _scaled_columns(inner._X_val, scale)
        return scaled

    def solve(self, params, *, differentiate=False):
        weights = self._check_weights(self, params)
        others = {k: v for k, v in params.items() if k != self.weights_name}
        scale = self.column_scale(weights)
        scaled = self._scaled_fold(scale)
        # The weights make the sweep a reverse one, whatever the number of
        # scalar hyperparameters: the MLP's fold keeps its checkpoints as for
        # several of them (alpha at its value stands for none).
        scaled.model = copy.copy(self.inner.model)
        scaled.model.mode = "reverse"
        solution = scaled.solve(
            others or {"alpha": float(self.inner.estimator.alpha)},
            differentiate=differentiate,
        )
        return _WeightedMLPSolution(self, others, weights, scale, scaled, solution)

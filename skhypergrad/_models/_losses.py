"""Validation losses, written once for every model (traced by autograd).

Each function returns the loss of each sample (a 1-D array); a model's
validation loss is :func:`weighted_mean` of it with the weights of
:func:`~skhypergrad._models._base.validation_weights`, which sum to one: the
weighted mean over samples, the outputs of a multi-output model counting
equally (their mean, or their sum for independent binary labels).
"""

import autograd.numpy as anp
import numpy as np
from autograd.scipy.special import logsumexp
from scipy.special import xlogy

__all__ = [
    "MAX_LOG_LOSS",
    "binary_log_loss",
    "clipped",
    "multinomial_log_loss",
    "poisson_deviance",
    "squared_error",
    "weighted_mean",
]

# scikit-learn's log_loss clips probabilities to [eps, 1 - eps], so that a
# sample's loss lies in [-log(1 - eps), -log(eps)].
_EPS = np.finfo(np.float64).eps
_MIN_LOG_LOSS = -np.log1p(-_EPS)
MAX_LOG_LOSS = -np.log(_EPS)


def weighted_mean(per_sample, weights):
    """The validation loss: ``per_sample`` weighted by ``weights`` (sum one)."""
    return anp.dot(weights, per_sample)


def squared_error(predictions, y):
    """Squared error of each sample, averaged over the outputs.

    ``predictions`` and ``y`` have shape (n_samples, n_outputs).
    """
    return anp.mean((predictions - y) ** 2, axis=1)


def poisson_deviance(log_mean, y):
    """Poisson deviance of each sample, averaged over the outputs.

    ``2 (y log(y / mu) - y + mu)`` with ``mu = exp(log_mean)``.
    """
    return 2 * anp.mean(xlogy(y, y) - y * log_mean - y + anp.exp(log_mean), axis=1)


def binary_log_loss(logits, y):
    """Log-loss of labels ``y`` in {0, 1} under ``logits``, elementwise.

    Computed from the logits, so it is smooth and never infinite.
    """
    return anp.logaddexp(0.0, logits) - y * logits


def multinomial_log_loss(logits, Y):
    """Log-loss of one-hot targets ``Y`` under the softmax of ``logits``.

    ``logits`` and ``Y`` have shape (n_samples, n_classes).
    """
    return logsumexp(logits, axis=1) - anp.sum(Y * logits, axis=1)


def clipped(log_loss):
    """A log-loss bounded as scikit-learn's ``log_loss`` bounds it."""
    return anp.clip(log_loss, _MIN_LOG_LOSS, MAX_LOG_LOSS)

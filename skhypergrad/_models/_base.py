"""The contract between the search layer and a differentiable model.

A *model* tells the search how one scikit-learn estimator class is trained
and differentiated. The search layer never holds model math: it splits the
data, fits the preprocessing steps of a pipeline, asks the model for one
:class:`Fold` per cross-validation split and then only calls
:meth:`Fold.value_and_grad` (or :meth:`Fold.value`) and
:meth:`Fold.fitted_estimator`.

Adding a model is one new module with a :class:`DifferentiableModel`
subclass, plus one line in ``skhypergrad._models.__init__`` (or a call to
:func:`skhypergrad.register_model` from user code).
"""

from abc import ABC, abstractmethod

import numpy as np

__all__ = ["DifferentiableModel", "Fold", "validation_weights"]


class Fold(ABC):
    """One cross-validation split of one model, ready to be evaluated.

    A fold owns everything that does not depend on the continuous
    hyperparameters (a factorization, an encoded target, a warm start), so
    that each outer iteration only pays for what changes.
    """

    @abstractmethod
    def value_and_grad(self, params):
        """Train at ``params`` and differentiate the validation loss.

        Parameters
        ----------
        params : dict of str -> float
            Values, in the estimator's own units, of the continuous
            hyperparameters being searched. Hyperparameters not in ``params``
            keep the estimator's value. May be empty: then only the loss is
            computed.

        Returns
        -------
        loss : float
            Validation loss of the model trained on the training part of the
            fold. ``inf`` or ``nan`` when the training diverged.
        grads : dict of str -> float
            Derivative of ``loss`` with respect to each key of ``params``, in
            the same units.
        """

    def value(self, params):
        """Train at ``params`` and return the validation loss alone.

        The search's coarse pass needs no derivative. This default calls
        :meth:`value_and_grad`; a model whose derivative costs more than its
        loss overrides it.

        Parameters
        ----------
        params : dict of str -> float
            As in :meth:`value_and_grad`.

        Returns
        -------
        loss : float
        """
        return self.value_and_grad(params)[0]

    @abstractmethod
    def fitted_estimator(self):
        """Return the scikit-learn estimator trained at the last ``params``.

        It is a clone of the fold's estimator with the continuous
        hyperparameters set and the fitted attributes (``coef_``, ...) filled
        in from the differentiable trainer, so that any scikit-learn scorer
        can be applied to it without a second fit.
        """


def validation_weights(val_sample_weight, n_samples):
    """Weights of the validation samples, summing to one."""
    if val_sample_weight is None:
        return np.full(n_samples, 1.0 / n_samples)
    weights = np.asarray(val_sample_weight, dtype=np.float64)
    return weights / weights.sum()


class DifferentiableModel(ABC):
    """How one scikit-learn estimator class is trained and differentiated.

    Attributes
    ----------
    estimator_class : type
        The scikit-learn estimator class this model stands for. Matched
        exactly, not by ``isinstance``: a subclass may train differently.
    hyperparameters : dict of str -> {"log", "logit", "linear"}
        The continuous hyperparameters and the scale they are searched on.
        ``"log"`` is for positive scale parameters (searched as their
        logarithm), ``"logit"`` for values in (0, 1) (searched as their
        logit), ``"linear"`` for unbounded ones.
    loss : str
        Name of the differentiated validation loss, for messages and docs.
    """

    estimator_class = None
    hyperparameters = {}
    loss = ""

    def check_estimator(self, estimator):  # noqa: B027 - optional hook
        """Raise ``ValueError`` if ``estimator``'s settings are not supported.

        Called for every point of the discrete grid before any work starts.
        """

    @abstractmethod
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
        """Prepare one cross-validation split.

        Parameters
        ----------
        estimator : estimator instance
            An unfitted instance of :attr:`estimator_class` with the discrete
            hyperparameters already set. Not modified.
        X_train, X_val : ndarray of shape (n_samples, n_features)
            Training and validation features, already transformed by the
            preprocessing steps of a pipeline.
        y_train, y_val : ndarray
            Training and validation targets, as given by the user.
        sample_weight : ndarray of shape (n_train,), default=None
            Training sample weights passed to ``fit``.
        val_sample_weight : ndarray of shape (n_val,), default=None
            Weights of the validation samples in the validation loss: those
            the scorer receives (scikit-learn 1.9 forwards ``sample_weight``
            to scorers that accept it). ``None`` weighs them equally.

        Returns
        -------
        fold : Fold
        """

"""The contract between the search layer and a differentiable model.

A *model* tells the search how one scikit-learn estimator class is trained
and differentiated. Solving and differentiating are separate steps, as in
jaxopt's ``custom_root``:

1. :meth:`DifferentiableModel.fold` prepares one cross-validation split
   (:class:`FoldData`) once: everything that does not depend on the
   continuous hyperparameters (a factorization, an encoded target, the
   random draws of a training).
2. :meth:`Fold.solve` trains at one point of the continuous
   hyperparameters and returns a :class:`Solution`, which holds the
   validation loss and the trained parameters.
3. :meth:`Solution.hypergradient` differentiates the validation loss at that
   solution, when asked, and :meth:`Solution.fitted_estimator` builds the
   scikit-learn estimator trained there, for scoring.

A solution depends on nothing but its fold and its point: scoring or
differentiating it gives the same result in any order, at any time. A fold may
keep earlier solutions to warm-start the next solve, but never to decide
what a solution is. Folds and solutions pickle, so that they can live in a
worker process.

Adding a model is one new module with a :class:`DifferentiableModel`
subclass, plus a call to :func:`skhypergrad.register_model`;
:func:`skhypergrad.utils.check_differentiable_model` checks it.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DifferentiableModel",
    "Fold",
    "FoldData",
    "Solution",
    "validation_weights",
]


def validation_weights(val_sample_weight, n_samples):
    """Weights of the validation samples, summing to one.

    The validation loss of every model is the weighted mean of its
    per-sample losses with these weights (the mean over samples without
    ``val_sample_weight``), the targets of a multi-output model counting
    equally.
    """
    if val_sample_weight is None:
        return np.full(n_samples, 1.0 / n_samples)
    weights = np.asarray(val_sample_weight, dtype=np.float64)
    return weights / weights.sum()


@dataclass(frozen=True, eq=False)
class FoldData:
    """The data of one cross-validation split, as the model sees it.

    Parameters
    ----------
    X_train, X_val : ndarray or sparse matrix of shape (n_samples, n_features)
        Training and validation features, already transformed by the
        preprocessing steps of a pipeline: a CSR matrix when the input is
        sparse and the model declares
        :attr:`DifferentiableModel.accept_sparse`, else an ndarray.
    y_train, y_val : ndarray
        Training and validation targets, as given by the user.
    sample_weight : ndarray of shape (n_train,), default=None
        Training sample weights passed to ``fit``.
    val_sample_weight : ndarray of shape (n_val,), default=None
        Weights of the validation samples in the validation loss: those the
        scorer receives (scikit-learn forwards ``sample_weight`` to scorers
        that accept it). ``None`` weighs them equally.
    training_rows : callable or None, default=None
        ``training_rows()`` returns ``X_train`` again (equal values, a new
        array). Given when the search expects not to need the model's
        trained parameters after the fold is prepared (its scores are the
        loss): a model whose fold would keep ``X_train`` only to form them
        (Ridge on wide data) may then drop it, and index it again if asked.
    source : tuple or None, default=None
        ``(X, train, test, shared)`` when ``X_train`` and ``X_val`` are the
        rows ``train`` and ``test`` of a float64 array ``X`` (no
        preprocessing): a model may then form products of the whole ``X``
        once for all the splits of a search, and keep them in ``shared``, a
        dict that those splits share (Ridge's Gram and kernel matrices).
    """

    X_train: object
    y_train: object
    X_val: object
    y_val: object
    sample_weight: object = None
    val_sample_weight: object = None
    training_rows: object = None
    source: object = None

    @property
    def val_weights(self):
        """The validation weights, summing to one (see :func:`validation_weights`)."""
        return validation_weights(self.val_sample_weight, len(self.y_val))


class Solution(ABC):
    """A model trained at one point on one fold.

    Attributes
    ----------
    params : dict of str -> float
        The point: values, in the estimator's own units, of the continuous
        hyperparameters given to :meth:`Fold.solve`. The others keep the
        estimator's values.
    loss : float
        Validation loss of the trained model; ``inf`` or ``nan`` when the
        training diverged.
    loss_is_score : bool
        Whether ``-loss`` is exactly what scikit-learn's scorer for the
        model's :attr:`DifferentiableModel.loss_scoring` gives on the
        validation fold, with the same sample weights (to rounding): the
        search then reports it instead of calling that scorer, which for a
        small problem costs more than the training. False by default.
    exact : bool
        Whether the training was solved to the model's own tolerance, the
        one its hypergradient needs (True), or only as closely as the
        estimator's ``fit`` would stop (False, see
        :attr:`DifferentiableModel.inexact_solves`). An inexact solution is
        scored but never differentiated.
    """

    params: dict
    loss: float
    loss_is_score = False
    exact = True

    @abstractmethod
    def hypergradient(self, names):
        """Derivative of :attr:`loss` with respect to hyperparameters.

        Parameters
        ----------
        names : list of str
            Keys of :attr:`params` to differentiate with respect to.

        Returns
        -------
        grads : dict of str -> float
            The derivatives, in each hyperparameter's own units.
        """

    @abstractmethod
    def fitted_estimator(self):
        """The scikit-learn estimator trained at :attr:`params`.

        A clone of the fold's estimator with the continuous hyperparameters
        set and the fitted attributes (``coef_``, ...) filled in from the
        solution, so that any scikit-learn scorer can be applied to it
        without a second fit.
        """


class Fold(ABC):
    """One cross-validation split of one model, ready to be solved."""

    @abstractmethod
    def solve(self, params, *, differentiate=False, exact=True):
        """Train at ``params``.

        Parameters
        ----------
        params : dict of str -> float
            Values, in the estimator's own units, of the continuous
            hyperparameters being searched. Hyperparameters not in ``params``
            keep the estimator's value. May be empty.
        differentiate : bool, default=False
            Whether the caller will ask for the solution's hypergradient: a
            model whose hypergradient needs more than the loss (a record of
            the training) may then keep it.
        exact : bool, default=True
            False allows a solution only as close to the optimum as the
            estimator's own ``fit`` stops (its ``tol``), for the points the
            search evaluates to locate the minimum, not to differentiate.
            Only passed to models that declare
            :attr:`DifferentiableModel.inexact_solves`; ``differentiate`` is
            then False.

        Returns
        -------
        solution : Solution
        """


class DifferentiableModel(ABC):
    """How one scikit-learn estimator class is trained and differentiated.

    Attributes
    ----------
    estimator_class : type
        The scikit-learn estimator class this model stands for. A subclass of
        it that does not override ``fit`` trains the same way and gets this
        model too.
    hyperparameters : dict of str -> {"log", "logit", "linear"}
        Every continuous hyperparameter the model can differentiate, and the
        scale it is searched on. ``"log"`` is for positive scale parameters
        (searched as their logarithm), ``"logit"`` for values in (0, 1)
        (searched as their logit), ``"linear"`` for unbounded ones.
        :meth:`hyperparameters_for` says which of them an estimator's
        settings use.
    loss_name : str
        Name of the differentiated validation loss, for messages and docs.
    stochastic : bool
        Whether the training draws random numbers from the estimator's
        ``random_state``. The search then fixes a ``random_state`` of None
        to a seed, so that the CV loss is a function of the hyperparameters.
    loss_scoring : str or None
        The scikit-learn scoring that ranks points as the differentiated loss
        does (``"neg_mean_squared_error"``), if any: with another
        ``scoring``, the search says that the path follows the loss and the
        ranking the score.
    accept_sparse : bool
        Whether :meth:`fold` takes a ``scipy.sparse`` CSR matrix as
        ``X_train`` and ``X_val``. Sparse input (any format) then reaches
        the model as CSR, never densified; a model that does not declare it
        (the default) receives dense arrays, the search warning when the
        dense copy is large.
    parallel_folds : bool
        Whether the folds are worth solving in worker processes when the
        search has ``n_jobs`` other than 1. ``False`` keeps them in the calling
        process, for a model whose step costs less than sending it to a
        worker (Ridge's closed form takes microseconds).
    inexact_solves : bool
        Whether :meth:`Fold.solve` takes ``exact=False``: a cheaper solve,
        stopped where the estimator's ``fit`` would stop. The coarse pass of
        a one-dimensional search asks for it; every point the search
        differentiates, and the best one, are solved exactly.
    """

    estimator_class = None
    hyperparameters = {}
    loss_name = ""
    stochastic = False
    loss_scoring = None
    accept_sparse = False
    parallel_folds = True
    inexact_solves = False

    def loss_scoring_for(self, estimator):
        """The scoring equivalent to the loss at ``estimator``'s settings."""
        return self.loss_scoring

    def hyperparameters_for(self, estimator):
        """The continuous hyperparameters ``estimator``'s settings use.

        Parameters
        ----------
        estimator : estimator instance
            An instance of :attr:`estimator_class`.

        Returns
        -------
        scales : dict of str -> {"log", "logit", "linear"}
            A subset of :attr:`hyperparameters`. All of them by default; a
            model overrides this when a setting makes some unused (the
            ``momentum`` of an MLP trained with ``solver="adam"``).
        """
        return dict(self.hyperparameters)

    def refit_gap(self, estimator, data):
        """How far ``estimator``'s own fit stops from the model's solution.

        Parameters
        ----------
        estimator : estimator instance
            An instance of :attr:`estimator_class`, fitted by its own ``fit``
            on ``data.X_train``, ``data.y_train`` (and ``sample_weight``).
        data : FoldData
            That data.

        Returns
        -------
        gap : float or None
            How far the fitted estimator's training objective is above the
            model's solution at the same point, relatively, or None when the
            model reproduces ``fit`` (the default).
        """
        return None

    def check_estimator(self, estimator):  # noqa: B027 - optional hook
        """Raise ``ValueError`` if ``estimator``'s settings are not supported.

        Called for every point of the discrete grid before any work starts.

        Parameters
        ----------
        estimator : estimator instance
            An instance of :attr:`estimator_class`.
        """

    @abstractmethod
    def fold(self, estimator, data):
        """Prepare one cross-validation split.

        Parameters
        ----------
        estimator : estimator instance
            An unfitted instance of :attr:`estimator_class` with the discrete
            hyperparameters already set. Not modified.
        data : FoldData
            The split's data.

        Returns
        -------
        fold : Fold
        """

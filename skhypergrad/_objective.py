"""The cross-validation loss of one model and its hypergradient.

:class:`CrossValObjective` prepares each fold once (the preprocessing steps
of a pipeline are fitted on the training part, the model's fold precomputes
what does not depend on the hyperparameters) and then evaluates, for any
values of the continuous hyperparameters,

.. math::

    \\mathcal{L}(\\lambda) = \\frac{1}{K} \\sum_{k=1}^{K}
    \\ell\\left(w_k^*(\\lambda);\\, X_k^{\\text{val}}, y_k^{\\text{val}}\\right),
    \\qquad \\nabla_\\lambda \\mathcal{L} = \\frac{1}{K} \\sum_{k=1}^{K}
    \\nabla_\\lambda \\ell\\left(w_k^*(\\lambda)\\right),

where :math:`w_k^*(\\lambda)` are the model's parameters trained on fold
:math:`k`. It also scores the trained folds with scikit-learn scorers, so
that the search reports what :class:`~sklearn.model_selection.GridSearchCV`
would, without fitting the estimator a second time.
"""

import numbers
import time
import traceback

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection._validation import _score
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing, check_array
from sklearn.utils._tags import get_tags
from sklearn.utils.metadata_routing import _routing_enabled, process_routing
from sklearn.utils.validation import _check_method_params, _get_feature_names

from ._models import get_model
from ._space import split_pipeline

__all__ = ["CrossValObjective", "FoldResult", "check_data"]


def check_data(estimator, X, y):
    """Check the data before any work, in scikit-learn's words.

    A bare model needs finite numbers in ``X``; a pipeline's steps check
    their own input (text, missing values a step imputes), as they would in
    GridSearchCV. ``y`` must be given and finite.
    """
    if y is None:
        raise ValueError(
            "HypergradSearchCV requires y to be passed, but the target y is None."
        )
    if not isinstance(estimator, Pipeline):
        check_array(
            X,
            accept_sparse=True,
            dtype="numeric",
            ensure_all_finite=not get_tags(estimator).input_tags.allow_nan,
            input_name="X",
        )
    check_array(y, ensure_2d=False, dtype=None, input_name="y")


class FoldResult:
    """What one fold gave at one point: loss, gradient, scores and times."""

    __slots__ = ("loss", "grads", "fit_error", "fit_time", "scores")

    def __init__(self, loss, grads, fit_error, fit_time):
        self.loss = loss
        self.grads = grads
        self.fit_error = fit_error
        self.fit_time = fit_time
        self.scores = None


class _PreparedFold:
    """A fold's data, fitted preprocessing and model fold (or its error)."""

    def __init__(self, train, test, X_test, y_test, test_score_params):
        self.train = train
        self.test = test
        # Kept for scoring every point without indexing X again.
        self.X_test = X_test
        self.y_test = y_test
        self.test_score_params = test_score_params
        self.preprocessing = None
        self.model_fold = None
        self.error = None
        self.feature_names = None


class CrossValObjective:
    """Mean validation loss over cross-validation folds, with its gradient.

    Parameters
    ----------
    estimator : estimator instance
        The estimator or pipeline, with every discrete hyperparameter set.
    X, y : indexable
        The data; never modified.
    splits : list of (train, test) index arrays
        The folds, split once for the whole search.
    names : list of str
        Full names of the continuous hyperparameters to differentiate.
    fit_params : dict, default=None
        Fit parameters routed to the estimator (``sample_weight`` for the
        model, ``<step>__<param>`` for preprocessing steps).
    score_params : dict, default=None
        Parameters routed to the scorer. Their ``sample_weight`` also weighs
        the validation loss, so that the loss the search follows is weighted
        as the scores it reports.
    error_score : 'raise' or float, default=np.nan
        What a failed fold scores, as in GridSearchCV.
    """

    def __init__(
        self,
        estimator,
        X,
        y,
        splits,
        names,
        fit_params=None,
        score_params=None,
        error_score=np.nan,
    ):
        self.estimator = estimator
        self.X = X
        self.y = y
        self.splits = splits
        self.names = list(names)
        self.fit_params = fit_params or {}
        self.score_params = score_params or {}
        self.error_score = error_score

        self._preprocessing, self._final, self._prefix = split_pipeline(estimator)
        self._model = get_model(self._final)
        self._model.check_estimator(self._final)
        # Checks the fit parameters before any work.
        self._split_fit_params(self.fit_params)
        self._folds = None

    def _split_fit_params(self, params):
        """Return the preprocessing's fit parameters and the model's weights.

        Without metadata routing, as GridSearchCV passes them to a pipeline:
        ``<step>__<param>`` for the preprocessing steps and
        ``<last step>__sample_weight`` (or ``sample_weight`` for a bare
        model) for the model. With routing, as the pipeline's requests say.
        """
        if _routing_enabled():
            if self._preprocessing is None:
                return {}, params.get("sample_weight")
            routed = process_routing(self.estimator, "fit", **params)
            final_name = self.estimator.steps[-1][0]
            consumed = self._preprocessing.get_metadata_routing().consumes(
                "fit", set(params)
            )
            return (
                {key: params[key] for key in consumed},
                routed[final_name].fit.get("sample_weight"),
            )
        sample_weight_key = self._prefix + "sample_weight"
        preprocessing = {}
        for key, value in params.items():
            if key == sample_weight_key:
                continue
            if self._prefix and not key.startswith(self._prefix) and "__" in key:
                preprocessing[key] = value
                continue
            raise ValueError(
                f"Fit parameter {key!r} cannot be passed to the differentiable "
                f"{type(self._final).__name__}: HypergradSearchCV routes only "
                f"{sample_weight_key!r} to the model, and '<step>__<param>' "
                "to the preprocessing steps of a pipeline."
            )
        return preprocessing, params.get(sample_weight_key)

    def prepare(self):
        """Fit the preprocessing and precompute every fold, once."""
        self._folds = [self._prepare_fold(train, test) for train, test in self.splits]
        return self

    def _prepare_fold(self, train, test):
        X_train, y_train = _safe_indexing(self.X, train), _safe_indexing(self.y, train)
        X_test, y_test = _safe_indexing(self.X, test), _safe_indexing(self.y, test)
        fold = _PreparedFold(
            train,
            test,
            X_test,
            y_test,
            _check_method_params(self.X, params=self.score_params, indices=test),
        )
        params = _check_method_params(self.X, params=self.fit_params, indices=train)
        preprocessing_params, sample_weight = self._split_fit_params(params)
        try:
            if self._preprocessing is not None:
                fold.preprocessing = clone(self._preprocessing)
                X_train = fold.preprocessing.fit_transform(
                    X_train,
                    y_train,
                    **preprocessing_params,
                )
                X_test = fold.preprocessing.transform(X_test)
            fold.feature_names = _get_feature_names(X_train)
            fold.model_fold = self._model.fold(
                self._final,
                _dense(X_train),
                np.asarray(y_train),
                _dense(X_test),
                np.asarray(y_test),
                sample_weight=sample_weight,
                val_sample_weight=fold.test_score_params.get("sample_weight"),
            )
        except Exception:
            if self.error_score == "raise":
                raise
            fold.error = traceback.format_exc()
        return fold

    def evaluate(self, point, differentiate=True):
        """Train every fold at ``point`` and differentiate the validation loss.

        Parameters
        ----------
        point : dict of str -> float
            Values of the continuous hyperparameters, by full name.
        differentiate : bool, default=True
            Whether to compute the hypergradient too.

        Returns
        -------
        loss : float
            Mean of the folds' validation losses; ``nan`` if any fold failed.
        grads : dict of str -> float
            Its derivative with respect to each hyperparameter of ``point``;
            empty when ``differentiate`` is False.
        results : list of FoldResult
        """
        if self._folds is None:
            self.prepare()
        model_params = {name[len(self._prefix) :]: v for name, v in point.items()}
        results = [
            self._evaluate_fold(fold, model_params, differentiate)
            for fold in self._folds
        ]
        failed = any(r.fit_error is not None for r in results)
        loss = np.nan if failed else float(np.mean([r.loss for r in results]))
        grads = {
            name: np.nan if failed else float(np.mean([r.grads[key] for r in results]))
            for name, key in zip(point, model_params, strict=True)
            if differentiate
        }
        return loss, grads, results

    def _evaluate_fold(self, fold, model_params, differentiate):
        if fold.error is not None:
            return FoldResult(np.nan, {}, fold.error, 0.0)
        start = time.time()
        try:
            if differentiate:
                loss, grads = fold.model_fold.value_and_grad(model_params)
            else:
                loss, grads = fold.model_fold.value(model_params), {}
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"The training diverged: the validation loss is {loss} at "
                    f"{model_params}."
                )
        except Exception:
            if self.error_score == "raise":
                raise
            return FoldResult(np.nan, {}, traceback.format_exc(), time.time() - start)
        return FoldResult(loss, grads, None, time.time() - start)

    def fitted_estimator(self, index):
        """The estimator trained on fold ``index`` at the last evaluated point."""
        fold = self._folds[index]
        final = fold.model_fold.fitted_estimator()
        if fold.feature_names is not None:
            final.feature_names_in_ = fold.feature_names
        if fold.preprocessing is None:
            return final
        name = self.estimator.steps[-1][0]
        params = self.estimator.get_params(deep=False)
        params["steps"] = [*fold.preprocessing.steps, (name, final)]
        return Pipeline(**params)

    def score(self, results, scorer, return_train_score=False):
        """Score each fold of the last evaluated point, as GridSearchCV does.

        Fills ``FoldResult.scores`` with a dict in the layout of
        ``sklearn.model_selection._validation._fit_and_score``'s output.
        """
        for index, (fold, result) in enumerate(zip(self._folds, results, strict=True)):
            out = {
                "fit_error": result.fit_error,
                "fit_time": result.fit_time,
                "n_test_samples": len(fold.test),
            }
            if result.fit_error is not None:
                error = _error_scores(scorer, self.error_score)
                out.update(test_scores=error, score_time=0.0)
                if return_train_score:
                    out["train_scores"] = error
            else:
                estimator = self.fitted_estimator(index)
                start = time.time()
                out["test_scores"] = _score(
                    estimator,
                    fold.X_test,
                    fold.y_test,
                    scorer,
                    fold.test_score_params,
                    self.error_score,
                )
                out["score_time"] = time.time() - start
                if return_train_score:
                    params = _check_method_params(self.X, self.score_params, fold.train)
                    out["train_scores"] = _score(
                        estimator,
                        _safe_indexing(self.X, fold.train),
                        _safe_indexing(self.y, fold.train),
                        scorer,
                        params,
                        self.error_score,
                    )
            result.scores = out
        return results


def _dense(X):
    # autograd has no sparse matrices: the traced trainers see dense arrays.
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def _error_scores(scorer, error_score):
    names = getattr(scorer, "_scorers", None)
    if isinstance(names, dict) and isinstance(error_score, numbers.Number):
        return {name: error_score for name in names}
    return error_score

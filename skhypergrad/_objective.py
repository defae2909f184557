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

Every point is evaluated once: :meth:`CrossValObjective.evaluate` keeps the
losses, scores and hypergradients of every point it has evaluated (a
:class:`PointResult` each), and each split keeps the solutions of its last
few points, so that a hypergradient asked at a point whose loss was computed
before differentiates the solution found then instead of solving again.
"""

import time
import traceback
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scipy.sparse import issparse
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline
from sklearn.utils import check_array, get_tags
from sklearn.utils.metadata_routing import process_routing
from sklearn.utils.parallel import Parallel, delayed

from ._feature_weights import check_groups, group_weights, with_weights
from ._models import FoldData, get_model
from ._models._weighted import WEIGHTS, weighted_fold
from ._parallel import IN_PROCESS
from ._sklearn_compat import (
    check_method_params,
    check_sample_weight,
    error_scores,
    fit_and_score,
    get_feature_names,
    routing_enabled,
    safe_indexing,
    score,
)
from ._space import feature_weights_step, split_pipeline

__all__ = [
    "CrossValObjective",
    "GridPoint",
    "PointResult",
    "Split",
    "SplitResult",
    "SplitSetting",
    "check_data",
    "model_input",
]

# Solutions each split keeps, most recent first: a hypergradient is asked of
# a point whose loss was computed one or two evaluations before (a trust
# region's accepted step, after a longer trial), or of the best coarse point
# (a logistic fold solves it again quickly from its warm starts).
_KEPT_SOLUTIONS = 2


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


@dataclass
class SplitResult:
    """What one split gave at one point: loss, gradient, scores and times.

    ``scores`` has the layout of the output of
    ``sklearn.model_selection._validation._fit_and_score``.
    """

    loss: float
    grads: dict
    fit_error: str = None
    fit_time: float = 0.0
    scores: dict = None
    exact: bool = True


@dataclass
class PointResult:
    """One evaluated point: the CV loss, its hypergradient and each split's."""

    point: dict
    loss: float
    splits: list
    hypergradient: dict = None
    # False while the point is solved only as the estimator's fit would stop
    # (see DifferentiableModel.inexact_solves).
    exact: bool = True

    @property
    def failed(self):
        return any(split.fit_error is not None for split in self.splits)


def point_key(point):
    """A hashable key of a point (a dict of numbers or arrays)."""
    return tuple(
        (name, tuple(np.ravel(value).tolist())) for name, value in point.items()
    )


@dataclass(frozen=True, eq=False)
class SplitSetting:
    """What the splits of one objective share.

    Attributes
    ----------
    estimator : estimator instance
        The estimator or pipeline, with every discrete hyperparameter set.
    model : DifferentiableModel
        The model of its final step (given, not looked up, so that a worker
        process needs no registry).
    error_score, scorer, return_train_score
        As for :class:`CrossValObjective`.
    weights_step : tuple or None
        ``(name, FeatureWeights)`` of a FeatureWeights step just before the
        model whose weights are searched: it is not preprocessing, its
        weights are the fold's hyperparameters (see ``_models/_weighted``).
    """

    estimator: object
    model: object
    error_score: object
    scorer: object
    return_train_score: bool
    weights_step: object = None
    # Whether the scorer is scikit-learn's for the model's loss_scoring (see
    # Solution.loss_is_score).
    scores_loss: bool = False
    # What the models' folds compute once for all the splits (see
    # FoldData.source).
    shared: dict = field(default_factory=dict)


class Split:
    """One cross-validation split: prepared once, then solved at any point.

    Self-contained, so that it can live in a worker process for a whole
    search: :meth:`prepare` fits the preprocessing and the model's fold on
    the data, :meth:`evaluate` solves, differentiates and scores one point,
    :meth:`hypergradient` differentiates a point solved before. Only
    hyperparameters go in and a :class:`SplitResult` comes out. The split
    keeps the solutions of its last few points.

    Parameters
    ----------
    setting : SplitSetting
    train, test : ndarray of int
        Row indices of the split.
    fit_params : dict
        The preprocessing steps' fit parameters, already indexed by ``train``.
    sample_weight : ndarray or None
        The model's training sample weights, already indexed.
    test_score_params, train_score_params : dict
        The scorer's parameters, indexed by ``test`` and by ``train`` (the
        latter only with ``return_train_score``).
    first : bool
        Whether this is the first split of its objective (it warns about
        densified input for all of them).
    """

    def __init__(
        self,
        setting,
        train,
        test,
        *,
        fit_params,
        sample_weight,
        test_score_params,
        train_score_params=None,
        first=False,
    ):
        self.setting = setting
        self.train, self.test = train, test
        self.fit_params = fit_params
        self.sample_weight = sample_weight
        self.test_score_params = test_score_params
        self.train_score_params = train_score_params
        self.first = first
        self.X_test = self.y_test = None
        # The data, kept (not copied) instead of the validation part when the
        # scores are expected to be the loss.
        self._data = None
        # The raw training part, kept only to score it (return_train_score).
        self.X_train = self.y_train = None
        self.preprocessing = None
        self.model_fold = None
        self.error = None
        self.feature_names = None
        self.finite_validation = True
        self.feature_weights = None
        self.solutions = OrderedDict()

    def prepare(self, X, y):
        """Fit the preprocessing and the model's fold on the training part."""
        setting = self.setting
        preprocessing, final, _ = split_pipeline(setting.estimator)
        if setting.weights_step is not None:
            steps = setting.estimator.steps
            preprocessing = setting.estimator[:-2] if len(steps) > 2 else None
        X_train = safe_indexing(X, self.train)
        y_train = safe_indexing(y, self.train)
        X_test, y_test = safe_indexing(X, self.test), safe_indexing(y, self.test)
        # With scores that are the loss, the scorer is called only where a
        # solution's loss is not its score (rare: a diverged training):
        # the validation part is then indexed again from the data, instead
        # of being kept for the whole search. Without a scorer, it is not
        # needed (nor are the trained parameters).
        unscored = setting.scorer is None or self._scores_are_loss()
        if not unscored:
            self.X_test, self.y_test = X_test, y_test
        elif setting.scorer is not None:
            self._data = (X, y)
        if setting.return_train_score:
            self.X_train, self.y_train = X_train, y_train
        try:
            if preprocessing is not None:
                self.preprocessing = clone(preprocessing)
                X_train = self.preprocessing.fit_transform(
                    X_train, y_train, **self.fit_params
                )
                X_test = self.preprocessing.transform(X_test)
            self.feature_names = get_feature_names(X_train)
            if setting.weights_step is not None:
                try:
                    self.feature_weights = clone(setting.weights_step[1]).fit(X_train)
                except ValueError as error:
                    # Weights or groups that do not fit the columns: an error
                    # of the search's settings, not a failed fit.
                    raise _BadFeatureWeights(str(error)) from error
            # What the final estimator's fit would check: its input after the
            # preprocessing steps (NaN passed through, an empty training part).
            # The validation part is checked when it is scored, as in
            # GridSearchCV: NaN there fails the scores, not the fit.
            X_train = check_array(
                X_train,
                accept_sparse=True,
                dtype="numeric",
                ensure_all_finite=not get_tags(final).input_tags.allow_nan,
                estimator=final,
                input_name="X",
            )
            X_test = check_array(
                X_test, accept_sparse=True, dtype="numeric", ensure_all_finite=False
            )
            values = X_test.data if hasattr(X_test, "toarray") else X_test
            self.finite_validation = bool(np.isfinite(values).all())
            if self.first and issparse(X_train) and not setting.model.accept_sparse:
                _warn_densifying(final, X_train, X_test)
            data = FoldData(
                X_train=model_input(setting.model, X_train),
                y_train=np.asarray(y_train),
                X_val=model_input(setting.model, X_test),
                y_val=np.asarray(y_test),
                sample_weight=self.sample_weight,
                val_sample_weight=self.test_score_params.get("sample_weight"),
                training_rows=partial(
                    _training_rows, X, self.train, setting.model, X_train.dtype
                )
                if unscored and preprocessing is None
                else None,
                source=(X, self.train, self.test, setting.shared)
                if preprocessing is None
                and isinstance(X, np.ndarray)
                and X.dtype == np.float64
                and X.ndim == 2
                else None,
            )
            if self.feature_weights is not None:
                fitted = self.feature_weights
                self.model_fold = weighted_fold(
                    final,
                    data,
                    group_weights(fitted.weights, fitted.groups, fitted.n_features_in_),
                    None
                    if fitted.groups is None
                    else check_groups(fitted.groups, fitted.n_features_in_),
                )
            else:
                self.model_fold = setting.model.fold(final, data)
        except _BadFeatureWeights:
            raise
        except Exception:
            if setting.error_score == "raise":
                raise
            self.error = traceback.format_exc()
        return self

    def n_feature_weights(self):
        """The number of weights of the searched FeatureWeights step, or None."""
        return None if self.feature_weights is None else self.feature_weights.n_groups_

    def solution(self, params, differentiate, exact=True):
        """The model's solution at ``params``, kept or solved now.

        ``exact=False`` is passed on to a model that declares
        ``inexact_solves``; a kept inexact solution is solved again when an
        exact one is asked for.
        """
        key = point_key(params)
        solution = self.solutions.get(key)
        if solution is None or (exact and not solution.exact):
            # FeatureWeights' weighted folds always solve exactly.
            inexact = self.setting.model.inexact_solves and self.feature_weights is None
            if exact or differentiate or not inexact:
                solution = self.model_fold.solve(params, differentiate=differentiate)
            else:
                solution = self.model_fold.solve(params, exact=False)
        self.solutions[key] = solution
        self.solutions.move_to_end(key, last=False)
        while len(self.solutions) > _KEPT_SOLUTIONS:
            self.solutions.popitem()
        return solution

    def evaluate(self, params, differentiate, exact=True):
        """Solve at ``params`` (the model's names), differentiate and score.

        ``exact=False`` allows an inexact solve (see :meth:`solution`).

        Returns
        -------
        result : SplitResult
            The loss, the hypergradient if asked, whether the solve was
            exact, and with a scorer the scores in ``_fit_and_score``'s
            layout.
        """
        result = self._solve(params, differentiate, exact)
        if self.setting.scorer is not None:
            self._score(result, params)
        return result

    def _solve(self, params, differentiate, exact):
        if self.error is not None:
            return SplitResult(np.nan, {}, self.error)
        start = time.time()
        try:
            solution = self.solution(params, differentiate, exact)
            if not self.finite_validation:
                # Trained, but its validation part has NaN or infinite values:
                # no loss, and the scorer fails as in GridSearchCV.
                return SplitResult(np.nan, {}, None, time.time() - start)
            if not np.isfinite(solution.loss):
                # A diverged training fails in the model's words when it
                # builds the fitted estimator (an MLP's non-finite weights, as
                # its fit says). A finite model whose validation predictions
                # overflow was trained: its scores say so, as GridSearchCV's.
                solution.fitted_estimator()
                return SplitResult(solution.loss, {}, None, time.time() - start)
            grads = solution.hypergradient(list(params)) if differentiate else {}
        except Exception:
            if self.setting.error_score == "raise":
                raise
            return SplitResult(np.nan, {}, traceback.format_exc(), time.time() - start)
        return SplitResult(
            solution.loss, grads, None, time.time() - start, exact=solution.exact
        )

    def hypergradient(self, params):
        """The hypergradient at ``params``, solved before for its loss alone."""
        try:
            solution = self.solution(params, differentiate=True)
            return solution.hypergradient(list(params))
        except Exception:
            if self.setting.error_score == "raise":
                raise
            return dict.fromkeys(params, np.nan)

    def fitted_estimator(self, params):
        """The estimator (a pipeline if given one) trained at ``params``."""
        # The solution just scored or solved, exact or not.
        final = self.solution(params, False, exact=False).fitted_estimator()
        if self.feature_names is not None:
            final.feature_names_in_ = self.feature_names
        steps = [] if self.preprocessing is None else list(self.preprocessing.steps)
        if self.feature_weights is not None:
            weights = with_weights(self.feature_weights, params[WEIGHTS])
            steps.append((self.setting.weights_step[0], weights))
        if not steps:
            return final
        estimator = self.setting.estimator
        name = estimator.steps[-1][0]
        pipeline_params = estimator.get_params(deep=False)
        pipeline_params["steps"] = [*steps, (name, final)]
        return Pipeline(**pipeline_params)

    def _scores_are_loss(self):
        """Whether the test scores are expected to be ``-loss``: the scorer
        of the model's own loss, with no score parameter but the sample
        weights (which the loss weighs with), and without training scores
        to compute."""
        setting = self.setting
        return (
            setting.scores_loss
            and not setting.return_train_score
            and set(self.test_score_params) <= {"sample_weight"}
        )

    def _loss_is_score(self, params):
        """Whether the test score is ``-loss`` (see ``Solution.loss_is_score``):
        scores expected to be the loss, on a finite validation part, of a
        solution whose loss is its score."""
        return (
            self._scores_are_loss()
            and self.finite_validation
            and self.solution(params, False, False).loss_is_score
        )

    def _validation_part(self):
        """The raw validation part ``(X_test, y_test)``, kept or indexed again."""
        if self.X_test is not None:
            return self.X_test, self.y_test
        X, y = self._data
        return safe_indexing(X, self.test), safe_indexing(y, self.test)

    def _score(self, result, params):
        """Score at ``params``, as GridSearchCV's _fit_and_score."""
        setting = self.setting
        out = {
            "fit_error": result.fit_error,
            "fit_time": result.fit_time,
            "n_test_samples": len(self.test),
        }
        if result.fit_error is not None:
            error = error_scores(setting.scorer, setting.error_score)
            out.update(test_scores=error, score_time=0.0)
            if setting.return_train_score:
                out["train_scores"] = error
        elif self._loss_is_score(params):
            # The scorer would compute the loss again: -loss is its value.
            start = time.time()
            out["test_scores"] = -float(self.solution(params, False, False).loss)
            out["score_time"] = time.time() - start
        else:
            estimator = self.fitted_estimator(params)
            X_test, y_test = self._validation_part()
            start = time.time()
            out["test_scores"] = score(
                estimator,
                X_test,
                y_test,
                scorer=setting.scorer,
                score_params=self.test_score_params,
                error_score=setting.error_score,
            )
            out["score_time"] = time.time() - start
            if setting.return_train_score:
                out["train_scores"] = score(
                    estimator,
                    self.X_train,
                    self.y_train,
                    scorer=setting.scorer,
                    score_params=self.train_score_params,
                    error_score=setting.error_score,
                )
        result.scores = out


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
    scorer : callable or None, default=None
        Scores each new point's folds as GridSearchCV does; None scores
        nothing.
    return_train_score : bool, default=False
        Whether the scores include the training folds'.
    engine : engine or None, default=None
        Where the splits are prepared and solved (see
        :func:`skhypergrad._parallel.split_engine`); None solves them in this
        process, as does a model whose folds are too cheap for workers
        (``parallel_folds = False``).

    Attributes
    ----------
    results : list of PointResult
        Every evaluated point, in the order of their first evaluation.
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
        scorer=None,
        return_train_score=False,
        engine=None,
    ):
        self.estimator = estimator
        self.X = X
        self.y = y
        self.splits = splits
        self.names = list(names)
        self.fit_params = fit_params or {}
        self.score_params = score_params or {}
        self.error_score = error_score
        self.scorer = scorer
        self.return_train_score = return_train_score
        self.engine = engine

        self._preprocessing, self._final, self._prefix = split_pipeline(estimator)
        self._model = get_model(self._final)
        # A FeatureWeights step just before the model whose weights are
        # searched: its weights are the fold's hyperparameters.
        self._weights_step = feature_weights_step(estimator)
        if self._weights_step is not None and self._weights_name not in self.names:
            self._weights_step = None
        # Checks the fit parameters before any work.
        _, sample_weight = self._split_fit_params(self.fit_params)
        if sample_weight is not None:
            check_sample_weight(sample_weight, X)
        self._setting = SplitSetting(
            estimator,
            self._model,
            error_score,
            scorer,
            return_train_score,
            self._weights_step,
            scores_loss=_scores_loss(scorer, self._model, self._final),
        )
        self._pool = None
        self._memo = {}
        self.results = []

    def _split_fit_params(self, params):
        """Return the preprocessing's fit parameters and the model's weights.

        Without metadata routing, as GridSearchCV passes them to a pipeline:
        ``<step>__<param>`` for the preprocessing steps and
        ``<last step>__sample_weight`` (or ``sample_weight`` for a bare
        model) for the model. With routing, as the pipeline's requests say.
        """
        if routing_enabled():
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
        """Fit the preprocessing and precompute every fold, once.

        The splits are prepared where the objective's engine runs them (in
        this process, or in worker processes, where they stay until
        :meth:`close`).
        """
        if self._pool is None:
            splits = [
                self._split(train, test, first=k == 0)
                for k, (train, test) in enumerate(self.splits)
            ]
            engine = self.engine if self._model.parallel_folds else None
            self._pool = (engine or IN_PROCESS).start(splits, self.X, self.y)
        return self

    @property
    def _weights_name(self):
        return f"{self._weights_step[0]}__weights"

    def vector_sizes(self):
        """``{name: number of weights}`` of the searched FeatureWeights step.

        The number of groups, or the number of columns the step receives
        from the preprocessing fitted on the first split (the first that
        did not fail). Call after :meth:`prepare`.
        """
        if self._weights_step is None:
            return {}
        counts = self.prepare()._pool.run(
            "n_feature_weights", [(k, ()) for k in range(len(self.splits))]
        )
        for count in counts:
            if count is not None:
                return {self._weights_name: count}
        groups = self._weights_step[1].groups
        if groups is not None:
            return {self._weights_name: int(np.max(groups)) + 1}
        # Every split failed before the step: no weight can be evaluated.
        return {self._weights_name: 1}

    def close(self):
        """Free the prepared splits (and the workers' memory they hold)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._setting.shared.clear()

    def _split(self, train, test, first):
        """One split, with its parameters indexed here, to be prepared."""
        params = check_method_params(self.X, params=self.fit_params, indices=train)
        preprocessing_params, sample_weight = self._split_fit_params(params)
        return Split(
            self._setting,
            train,
            test,
            fit_params=preprocessing_params,
            sample_weight=sample_weight,
            test_score_params=check_method_params(
                self.X, params=self.score_params, indices=test
            ),
            train_score_params=check_method_params(
                self.X, params=self.score_params, indices=train
            )
            if self.return_train_score
            else None,
            first=first,
        )

    def _model_params(self, point):
        return {
            WEIGHTS
            if self._weights_step is not None and name == self._weights_name
            else name[len(self._prefix) :]: value
            for name, value in point.items()
        }

    def is_evaluated(self, point, differentiate=False, exact=True):
        """Whether :meth:`evaluate` would return a result without computing."""
        result = self._memo.get(point_key(point))
        return (
            result is not None
            and (result.exact or not (exact or differentiate))
            and (not differentiate or result.hypergradient is not None)
        )

    def evaluate(self, point, differentiate=False, exact=True):
        """The CV loss at ``point``, and its hypergradient if asked.

        Each point is solved once: a point evaluated before is returned as
        it was, with its hypergradient added if it is asked now. A point
        solved inexactly is solved again, exactly, when an exact result or
        the hypergradient is asked: its result is updated in place (the
        same row, with the exact loss and scores).

        Parameters
        ----------
        point : dict of str -> float
            Values of the continuous hyperparameters, by full name.
        differentiate : bool, default=False
            Whether to compute the hypergradient too.
        exact : bool, default=True
            False allows the folds of a model that declares
            ``inexact_solves`` to be solved only as closely as the
            estimator's ``fit`` would stop; ignored when ``differentiate``.

        Returns
        -------
        result : PointResult
            ``loss`` is the mean of the folds' validation losses (``nan`` if
            any fold failed); ``hypergradient`` its derivative with respect
            to each hyperparameter of ``point`` (None until asked).
        """
        self.prepare()
        exact = exact or differentiate
        key = point_key(point)
        result = self._memo.get(key)
        if result is None:
            result = self._solve(point, differentiate, exact)
            self._memo[key] = result
            self.results.append(result)
        elif exact and not result.exact:
            again = self._solve(point, differentiate, exact)
            for name in ("loss", "splits", "hypergradient", "exact"):
                setattr(result, name, getattr(again, name))
        elif differentiate and result.hypergradient is None:
            self._differentiate(result)
        return result

    def _solve(self, point, differentiate, exact):
        model_params = self._model_params(point)
        splits = self._pool.run(
            "evaluate",
            [
                (k, (model_params, differentiate, exact))
                for k in range(len(self.splits))
            ],
        )
        failed = any(s.fit_error is not None for s in splits)
        result = PointResult(
            point=dict(point),
            loss=np.nan if failed else float(np.mean([s.loss for s in splits])),
            splits=splits,
            exact=all(s.exact for s in splits),
        )
        if differentiate:
            result.hypergradient = self._mean_gradient(result, model_params)
        return result

    def _differentiate(self, result):
        """Add the hypergradient to a point evaluated for its loss alone."""
        model_params = self._model_params(result.point)
        if np.isfinite(result.loss):
            trained = [
                k
                for k, split_result in enumerate(result.splits)
                if split_result.fit_error is None
            ]
            grads = self._pool.run(
                "hypergradient", [(k, (model_params,)) for k in trained]
            )
            for k, split_grads in zip(trained, grads, strict=True):
                result.splits[k].grads = split_grads
        result.hypergradient = self._mean_gradient(result, model_params)

    def _mean_gradient(self, result, model_params):
        return {
            name: np.nan
            if result.failed or not np.isfinite(result.loss)
            else np.mean([s.grads[key] for s in result.splits], axis=0)
            for name, key in zip(result.point, model_params, strict=True)
        }


class GridPoint:
    """A point with no continuous range, fitted and scored as GridSearchCV does.

    An estimator without a differentiable model, or a point where only
    discrete values are searched, is evaluated by scikit-learn's own
    ``_fit_and_score`` on each split: its scores, errors, warnings and
    verbose lines are GridSearchCV's. It has no differentiable loss: the
    result's ``loss`` is nan.

    Parameters
    ----------
    estimator : estimator instance
        The user's estimator, unfitted.
    point : dict
        The parameters to set on it.
    X, y, splits, fit_params, score_params, error_score, scorer, return_train_score
        As for :class:`CrossValObjective`; ``fit_params`` and
        ``score_params`` are passed whole, as GridSearchCV passes them.
    verbose : int
        scikit-learn's verbosity for each fit.
    candidate_progress : tuple of int
        ``(index, count)`` of this point among the search's.
    caller, callback_contexts : estimator and list, default=None
        The search, and the "candidate-split-evaluation" task of scikit-learn
        1.9's callbacks of each split, as GridSearchCV passes them.
    n_jobs, pre_dispatch : int and str, default=None and "2*n_jobs"
        The splits are fitted in parallel through joblib, as GridSearchCV
        fits them.
    """

    def __init__(
        self,
        estimator,
        point,
        X,
        y,
        splits,
        *,
        fit_params,
        score_params,
        error_score,
        scorer,
        return_train_score,
        verbose,
        candidate_progress,
        caller=None,
        callback_contexts=None,
        n_jobs=None,
        pre_dispatch="2*n_jobs",
    ):
        self.estimator = estimator
        self.n_jobs, self.pre_dispatch = n_jobs, pre_dispatch
        self.caller = caller
        self.callback_contexts = callback_contexts or [None] * len(splits)
        self.point = point
        self.X, self.y, self.splits = X, y, splits
        self.fit_params = fit_params or {}
        self.score_params = score_params or {}
        self.error_score = error_score
        self.scorer = scorer
        self.return_train_score = return_train_score
        self.verbose = verbose
        self.candidate_progress = candidate_progress
        self.results = []

    def prepare(self):
        return self

    def close(self):
        pass

    def is_evaluated(self, point, differentiate=False, exact=True):
        return bool(self.results)

    def evaluate(self, point=None, differentiate=False, exact=True):
        """Fit and score every split once; the same result afterwards."""
        if not self.results:
            parallel = Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch)
            outs = parallel(
                delayed(fit_and_score)(
                    clone(self.estimator),
                    self.X,
                    self.y,
                    scorer=self.scorer,
                    train=train,
                    test=test,
                    parameters=self.point,
                    fit_params=self.fit_params,
                    score_params=self.score_params,
                    return_train_score=self.return_train_score,
                    error_score=self.error_score,
                    verbose=self.verbose,
                    split_progress=(k, len(self.splits)),
                    candidate_progress=self.candidate_progress,
                    caller=self.caller,
                    callback_ctx=self.callback_contexts[k],
                )
                for k, (train, test) in enumerate(self.splits)
            )
            splits = [
                SplitResult(np.nan, {}, out["fit_error"], out["fit_time"], out)
                for out in outs
            ]
            self.results.append(
                PointResult(point={}, loss=np.nan, splits=splits, hypergradient={})
            )
        return self.results[0]


class _BadFeatureWeights(ValueError):
    """FeatureWeights' weights or groups do not fit the columns it receives."""


# Sparse input whose dense copy takes more than this per fold is said to be
# densified: below, the copy costs less than scikit-learn's own fits.
_DENSE_BYTES_WARNING = 100 * 2**20


def _scores_loss(scorer, model, final):
    """Whether ``scorer`` is scikit-learn's for the model's loss, negated."""
    scoring = None if model is None else model.loss_scoring_for(final)
    if scoring is None or isinstance(scorer, dict):
        return False
    return repr(scorer) == repr(get_scorer(scoring))


def _warn_densifying(final, X_train, X_test):
    """Say that sparse input is densified, when that costs memory."""
    n_bytes = 8 * (X_train.shape[0] + X_test.shape[0]) * X_train.shape[1]
    if n_bytes < _DENSE_BYTES_WARNING:
        return
    warnings.warn(
        f"The differentiable {type(final).__name__} works on dense arrays: the "
        f"sparse input it receives ({X_train.shape[1]} columns) is densified in "
        f"each fold, {n_bytes / 2**20:.0f} MB per fold. Reduce the number of "
        "columns (max_features of a vectorizer, a SelectKBest step) if that is "
        "more than memory allows.",
        UserWarning,
        stacklevel=5,
    )


def _training_rows(X, train, model, dtype):
    """A split's training part as its model received it, indexed again from
    ``X`` (a split without preprocessing, whose input was checked)."""
    X_train = check_array(
        safe_indexing(X, train),
        accept_sparse=True,
        dtype=dtype,
        ensure_all_finite=False,
    )
    return model_input(model, X_train)


def model_input(model, X):
    """``X`` as ``model`` takes it: CSR if sparse and accepted, else dense."""
    if issparse(X):
        return X.tocsr() if model.accept_sparse else X.toarray()
    return np.asarray(X)

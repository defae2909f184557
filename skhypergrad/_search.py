"""HypergradSearchCV: GridSearchCV's interface, gradient steps inside ranges."""

import numbers
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import _fit_context, clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.model_selection._validation import (
    _insert_error_scores,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _check_method_params, indexable

from ._objective import CrossValObjective, check_data
from ._optimize import StopSearch, minimize_in_box
from ._space import expand_param_grid

__all__ = ["HypergradSearchCV", "SearchState"]


@dataclass
class SearchState:
    """What a callback sees after each outer iteration.

    Attributes
    ----------
    search_id : int
        Index of the point of the discrete grid being searched.
    iteration : int
        Outer iteration within that search, from 0 (the coarse pass
        included): the row's ``outer_iter`` in ``cv_results_``. The
        hypergradient at a coarse point where a run of the gradient phase
        starts (the best one, and the restarts of several hyperparameters)
        is reported with that point's iteration.
    params : dict
        The hyperparameters just evaluated, discrete ones included.
    cv_loss : float
        Mean validation loss over the folds at ``params``.
    hypergradient : dict of str -> float
        Derivative of ``cv_loss`` with respect to each continuous
        hyperparameter, in its own units.
    best_params : dict
        The point with the lowest ``cv_loss`` in this search so far.
    best_cv_loss : float
    elapsed : float
        Seconds since the search of this point of the grid started.
    """

    search_id: int
    iteration: int
    params: dict
    cv_loss: float
    hypergradient: dict
    best_params: dict
    best_cv_loss: float
    elapsed: float


@dataclass
class _Evaluation:
    params: dict
    out: list
    cv_loss: float
    hypergradient: dict
    iteration: int
    search_id: int


@dataclass
class _Subsearch:
    """One continuous search, at one point of the discrete grid."""

    objective: CrossValObjective
    subspace: object
    search_id: int
    seed: int
    callback_ctx: object = None
    evaluations: list = field(default_factory=list)


class HypergradSearchCV(BaseSearchCV):
    """Search continuous hyperparameters by gradient descent on the CV loss.

    A drop-in for :class:`~sklearn.model_selection.GridSearchCV`. For each
    continuous hyperparameter given as a range, the search follows the
    hypergradient, the derivative of the mean validation loss over the
    cross-validation folds, computed with autograd through the model's
    training. Discrete hyperparameters are enumerated as GridSearchCV would,
    and a continuous search runs at each of their combinations. Every
    evaluated point is scored with ``scoring`` exactly as GridSearchCV scores
    it, and the best one is refit on the whole data.

    Supported estimators, alone or as the last step of a
    :class:`~sklearn.pipeline.Pipeline`, with their continuous
    hyperparameters:

    - :class:`~sklearn.linear_model.Ridge`: ``alpha``;
    - :class:`~sklearn.linear_model.LogisticRegression` (L2 penalty):
      ``C``;
    - :class:`~sklearn.neural_network.MLPRegressor` and
      :class:`~sklearn.neural_network.MLPClassifier` (``solver="sgd"`` or
      ``"adam"``): ``alpha`` and ``learning_rate_init``, ``momentum`` for
      sgd, ``beta_1`` and ``beta_2`` for adam.

    :func:`~skhypergrad.register_model` adds others.

    Parameters
    ----------
    estimator : estimator object
        A supported scikit-learn estimator, or a pipeline whose last step is
        one. The steps before the last are fitted on each training fold and
        are not differentiated.

    param_grid : dict or list of dicts
        Parameter names (``"ridge__alpha"`` inside a pipeline) mapped to:

        - for a differentiable hyperparameter, a range: a tuple
          ``(low, high)``, a list or array of two or more numbers (searched
          over ``[min, max]``), or a frozen ``scipy.stats.uniform`` or
          ``loguniform`` distribution (searched over its support). Scale
          parameters such as ``alpha`` are searched on a log scale and need a
          positive range;
        - anything else: a list of values, enumerated as GridSearchCV does.
          A one-element list fixes a value.

        A list of dicts searches each dict's space in turn.

    scoring : str, callable, list, tuple or dict, default=None
        What to report and rank, as in GridSearchCV. The search itself
        follows the model's differentiable validation loss (mean squared
        error for regressors, log-loss for classifiers); ``scoring`` decides
        which evaluated point is best.

    n_jobs : int, default=None
        Number of jobs to run in parallel: the continuous searches at
        different points of the discrete grid run in parallel; the folds of
        one search run in turn. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context. ``-1`` means all processors.

    refit : bool, str, or callable, default=True
        Refit the estimator with the best found parameters on the whole
        dataset, as in GridSearchCV.

    cv : int, cross-validation generator or an iterable, default=None
        Determines the cross-validation splitting strategy, as in
        GridSearchCV. The folds are split once and reused by every outer
        iteration, so a shuffling splitter without a seed is fine.

    verbose : int, default=0
        ``1`` prints one line per outer iteration, ``2`` adds a line per
        fold.

    pre_dispatch : int or str, default='2*n_jobs'
        Controls the number of jobs dispatched during parallel execution.

    error_score : 'raise' or numeric, default=np.nan
        Score of a fold whose training fails or diverges. With ``'raise'``
        the error is raised.

    return_train_score : bool, default=False
        Whether ``cv_results_`` includes training scores.

    n_init : int, default=5
        Points of the coarse pass that starts each continuous search: evenly
        spread on the search scale for one hyperparameter, a Latin hypercube
        for several. The coarse pass computes the CV loss alone; the gradient
        phase starts from the best of its points, which keeps the search off
        plateaus at the ends of the range.

    n_iter : int, default=20
        Largest number of evaluations after the coarse pass, for each point
        of the discrete grid, the first being the hypergradient at its best
        point. With one hyperparameter, each is a hypergradient. With
        several, each is either the CV loss alone at a trial point of a
        trust region, or the hypergradient at a trial point that decreased
        the loss. ``0`` evaluates only the coarse points.

    tol : float, default=1e-6
        The gradient phase stops when the projected hypergradient on the
        search scale falls below ``tol`` times its value at the start of the
        gradient phase, or when the next step would move less than ``tol``
        times half the spacing of the coarse points. With several
        hyperparameters, the start is the last point where the hypergradient
        before it predicted the decrease of the loss (within a factor of
        ten): a rough loss resets it; and a run that ends on a short step
        while the hypergradient is not small, or where the loss is rough at
        the scale of its steps (a local minimum of a rough loss), leaves the
        rest of ``n_iter`` to a run from another coarse point, one with no
        better point near it (see the user guide's page on the optimizer).

    random_state : int, RandomState instance or None, default=None
        Draws the coarse points when several hyperparameters are searched.

    callbacks : callable or list of callables, default=None
        Called after each outer iteration with a :class:`SearchState`; a
        callback that returns ``True`` stops the search, and the best point
        found so far is refit. With ``n_jobs`` other than 1, callbacks run in
        the worker processes and stop the search of their own point of the
        discrete grid only.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        One row per evaluated point, with every key GridSearchCV has
        (``mean_test_score``, ``split0_test_score``, ``param_<name>``,
        ``params``, ...) and:

        - ``search_id``: the point of the discrete grid searched;
        - ``outer_iter``: the outer iteration within that search;
        - ``cv_loss``: the mean validation loss that was differentiated;
        - ``hypergrad_<name>``: its derivative with respect to each
          continuous hyperparameter (``nan`` where not searched, and where
          the loss alone was computed: the coarse pass except the points
          where a run of the gradient phase starts (its best point and,
          with several hyperparameters, the coarse points a stalled run
          restarted from), and, with several hyperparameters, the trial
          points that did not decrease the loss).

    best_estimator_ : estimator
        The user's estimator refit on the whole data with ``best_params_``.
        Not available if ``refit=False``.

    best_score_ : float
        Mean cross-validated score of the best point.

    best_params_ : dict
        The best point. Continuous values are Python floats.

    best_index_ : int
        Row of ``cv_results_`` of the best point.

    scorer_ : function or a dict
        Scorer function used on the held out data.

    n_splits_ : int
        The number of cross-validation splits.

    refit_time_ : float
        Seconds used for refitting the best model on the whole dataset.

    multimetric_ : bool
        Whether or not the scorers compute several metrics.

    classes_ : ndarray of shape (n_classes,)
        The classes labels, for classifiers.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column
        names.

    See Also
    --------
    cross_val_hypergrad : The CV loss and its hypergradient at one point.
    sklearn.model_selection.GridSearchCV : Exhaustive search over a grid.
    sklearn.linear_model.RidgeCV : Ridge with efficient leave-one-out or
        cross-validated alpha selection.

    Notes
    -----
    For continuous hyperparameters :math:`\\lambda`, the search minimizes the
    mean validation loss over the :math:`K` folds,

    .. math::

        \\mathcal{L}(\\lambda) = \\frac{1}{K} \\sum_{k=1}^{K}
        \\ell\\left(w_k^*(\\lambda);\\, X_k^{\\text{val}},
        y_k^{\\text{val}}\\right),

    where :math:`w_k^*(\\lambda)` are the parameters trained on fold
    :math:`k`. Its gradient is obtained by differentiating the training
    with autograd: in closed form for ridge, by implicit differentiation at
    the optimum for logistic regression, and through the training loop, with
    its stopping epochs held fixed, for multi-layer perceptrons.

    The search space is a box on the log scale (or logit scale for values in
    (0, 1)). A coarse pass of ``n_init`` points, where only the loss is
    computed, is followed by ``n_iter`` evaluations from the best of them:
    safeguarded interpolation inside the bracket of its neighbours for one
    hyperparameter, quasi-Newton steps in a trust region for several.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from skhypergrad import HypergradSearchCV
    >>> X, y = load_diabetes(return_X_y=True)
    >>> search = HypergradSearchCV(Ridge(), {"alpha": (1e-4, 1e2)},
    ...                            scoring="neg_mean_squared_error", cv=5)
    >>> search = search.fit(X, y)
    >>> round(search.best_params_["alpha"], 4), round(float(-search.best_score_), 1)
    (0.0005, 2993.0)
    """

    _parameter_constraints: dict = {
        **BaseSearchCV._parameter_constraints,
        "param_grid": [dict, list],
        "n_init": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "callbacks": [callable, list, None],
    }

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
        n_init=5,
        n_iter=20,
        tol=1e-6,
        random_state=None,
        callbacks=None,
    ):
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_grid = param_grid
        self.n_init = n_init
        self.n_iter = n_iter
        self.tol = tol
        self.random_state = random_state
        self.callbacks = callbacks

    def _run_search(self, evaluate_candidates):
        # BaseSearchCV's evaluate_candidates refits the estimator for every
        # candidate and fold and re-splits the data at each call; fit below
        # drives the search itself and scores the traced models instead.
        raise NotImplementedError(
            "HypergradSearchCV runs its own search in fit; it has no candidate "
            "list to hand to evaluate_candidates."
        )

    @_fit_context(
        # HypergradSearchCV.estimator is not validated yet
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y=None, **params):
        """Search the hyperparameters, then refit the best point.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. Not modified.

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values. Not modified.

        **params : dict of str -> object
            Parameters passed to the ``fit`` method of the estimator (for the
            model itself, only ``sample_weight``), the scorer and the CV
            splitter (``groups``).

        Returns
        -------
        self : object
            Instance of fitted estimator.
        """
        scorers, refit_metric = self._get_scorers()
        X, y = indexable(X, y)
        check_data(self.estimator, X, y)
        params = _check_method_params(X, params=params)
        routed_params = self._get_routed_params_for_fit(params)

        subspaces = expand_param_grid(self.estimator, self.param_grid)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = list(cv.split(X, y, **routed_params.splitter.split))
        self.n_splits_ = len(splits)

        # scikit-learn's callbacks (1.9+): the search is a task, each point of
        # the discrete grid a subtask, each outer iteration a subtask of it.
        root_ctx = _begin(
            self._init_callback_context(max_subtasks=1 + (self.refit is not False))
            if hasattr(self, "_init_callback_context")
            else None,
            self,
            X=X,
            y=y,
        )
        search_ctx = _begin(
            root_ctx
            and root_ctx.subcontext(
                task_name="search",
                max_subtasks=len(subspaces),
                sequential_subtasks=False,
            ),
            self,
        )
        rng = check_random_state(self.random_state)
        subsearches = [
            _Subsearch(
                objective=CrossValObjective(
                    clone(self.estimator).set_params(**clone(s.fixed, safe=False)),
                    X,
                    y,
                    splits,
                    [r.name for r in s.ranges],
                    fit_params=routed_params.estimator.fit,
                    score_params=routed_params.scorer.score,
                    error_score=self.error_score,
                ),
                subspace=s,
                search_id=i,
                seed=rng.randint(np.iinfo(np.int32).max),
                callback_ctx=search_ctx
                and search_ctx.subcontext(
                    task_name="continuous search",
                    task_id=i,
                    max_subtasks=self.n_init + self.n_iter if s.ranges else 1,
                ),
            )
            for i, s in enumerate(subspaces)
        ]
        if self.verbose > 0:
            names = sorted({r.name for s in subspaces for r in s.ranges})
            print(
                f"Searching {', '.join(names) or 'no continuous hyperparameter'} "
                f"at each of {len(subspaces)} discrete candidates, on "
                f"{self.n_splits_} folds"
            )

        run = _SearchRunner(
            owner=self,
            scorer=scorers,
            return_train_score=self.return_train_score,
            n_init=self.n_init,
            n_iter=self.n_iter,
            tol=self.tol,
            verbose=self.verbose,
            callbacks=_as_list(self.callbacks),
        )
        subsearches, interrupted = self._run_subsearches(run, subsearches)
        _end(search_ctx, self)

        evaluations = [e for s in subsearches for e in s.evaluations]
        if interrupted:
            if not evaluations:
                raise KeyboardInterrupt
            warnings.warn(
                f"The search was interrupted after {len(evaluations)} evaluated "
                "points; the best of them is kept"
                + (" and refit." if self.refit else "."),
                UserWarning,
                stacklevel=2,
            )
        out = [fold for e in evaluations for fold in e.out]
        _warn_or_raise_about_fit_failures(out, self.error_score)
        if callable(self.scoring):
            _insert_error_scores(out, self.error_score)
        results = self._format_results(
            [e.params for e in evaluations],
            self.n_splits_,
            out,
            _more_results(evaluations, subspaces),
        )

        # From here on, as BaseSearchCV.fit once its candidates are evaluated.
        first_test_score = out[0]["test_scores"]
        self.multimetric_ = isinstance(first_test_score, dict)
        if callable(self.scoring) and self.multimetric_:
            self._check_refit_for_multimetric(first_test_score)
            refit_metric = self.refit

        if self.refit or not self.multimetric_:
            self.best_index_ = self._select_best_index(
                self.refit, refit_metric, results
            )
            if not callable(self.refit):
                self.best_score_ = results[f"mean_test_{refit_metric}"][
                    self.best_index_
                ]
            self.best_params_ = results["params"][self.best_index_]

        if self.refit:
            self._refit(X, y, routed_params.estimator.fit, root_ctx)

        self.scorer_ = getattr(scorers, "_scorers", scorers)
        self.cv_results_ = results
        _end(root_ctx, self, X=X, y=y)
        return self

    def _run_subsearches(self, run, subsearches):
        """Run every continuous search; say whether it was interrupted."""
        if self.n_jobs not in (None, 1):
            parallel = Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch)
            return parallel(
                delayed(_run_and_return)(run, s) for s in subsearches
            ), False
        # In process, a search cut short keeps every point evaluated.
        try:
            for subsearch in subsearches:
                if run(subsearch):
                    break
        except KeyboardInterrupt:
            return subsearches, True
        return subsearches, False

    def _refit(self, X, y, fit_params, root_ctx):
        """Fit the user's estimator at best_params_ on all the data."""
        # The parameters are cloned too: they may be estimators (a step of a
        # pipeline searched over), as in BaseSearchCV.
        self.best_estimator_ = clone(self.estimator).set_params(
            **clone(self.best_params_, safe=False)
        )
        refit_ctx = root_ctx and root_ctx.subcontext(task_name="refit-with-best-params")
        with (
            refit_ctx.propagate_callback_context(self.best_estimator_)
            if refit_ctx
            else nullcontext()
        ):
            _begin(refit_ctx, self, X=X, y=y)
            start = time.time()
            self.best_estimator_.fit(X, y, **fit_params)
            self.refit_time_ = time.time() - start
        if hasattr(self.best_estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.best_estimator_.feature_names_in_
        _end(refit_ctx, self, X=X, y=y)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The traced trainers compute with NumPy.
        tags.array_api_support = False
        return tags


def _more_results(evaluations, subspaces):
    """The columns cv_results_ has beyond GridSearchCV's."""
    more_results = {
        "search_id": [e.search_id for e in evaluations],
        "outer_iter": [e.iteration for e in evaluations],
        "cv_loss": [e.cv_loss for e in evaluations],
    }
    for name in sorted({r.name for s in subspaces for r in s.ranges}):
        more_results[f"hypergrad_{name}"] = [
            e.hypergradient.get(name, np.nan) for e in evaluations
        ]
    return more_results


def _begin(ctx, estimator, **kwargs):
    """Open a scikit-learn callback task, if callbacks are in use."""
    return (
        None
        if ctx is None
        else ctx.call_on_fit_task_begin(estimator=estimator, **kwargs)
    )


def _end(ctx, estimator, **kwargs):
    """Close a callback task; True when a callback asks to stop."""
    return (
        False
        if ctx is None
        else ctx.call_on_fit_task_end(estimator=estimator, **kwargs)
    )


def _as_list(callbacks):
    if callbacks is None:
        return []
    return list(callbacks) if isinstance(callbacks, list) else [callbacks]


def _run_and_return(run, subsearch):
    run(subsearch)
    return subsearch


@dataclass
class _SearchRunner:
    """Runs one continuous search and records every evaluated point."""

    owner: object
    scorer: object
    return_train_score: bool
    n_init: int
    n_iter: int
    tol: float
    verbose: int
    callbacks: list

    def __call__(self, subsearch):
        """Search; return True when a callback asked to stop everything."""
        ranges = subsearch.subspace.ranges
        _begin(subsearch.callback_ctx, self.owner)
        objective = subsearch.objective.prepare()
        start = time.time()
        # The evaluations by point: the gradient phase starts at the best
        # coarse point, whose row then gets its hypergradient.
        seen = {}

        def evaluate(z, differentiate):
            iteration_ctx = _begin(
                subsearch.callback_ctx
                and subsearch.callback_ctx.subcontext(task_name="outer iteration"),
                self.owner,
            )
            point = {
                r.name: float(r.from_unconstrained(zi))
                for r, zi in zip(ranges, z, strict=True)
            }
            loss, grads, folds = objective.evaluate(point, differentiate)
            key = tuple(point.values())
            evaluation = seen.get(key)
            if evaluation is None:
                objective.score(folds, self.scorer, self.return_train_score)
                evaluation = _Evaluation(
                    params={**subsearch.subspace.fixed, **point},
                    out=[fold.scores for fold in folds],
                    cv_loss=loss,
                    hypergradient=grads,
                    iteration=len(subsearch.evaluations),
                    search_id=subsearch.search_id,
                )
                subsearch.evaluations.append(evaluation)
                seen[key] = evaluation
            elif differentiate:
                # Trained and scored already: only the hypergradient is new.
                evaluation.hypergradient = grads
            stop = self._report(subsearch, evaluation, folds, time.time() - start)
            if _end(iteration_ctx, self.owner) or stop:
                raise StopSearch
            if not differentiate:
                return loss, None
            grad_z = np.array(
                [
                    grads[r.name] * r.derivative(zi)
                    for r, zi in zip(ranges, z, strict=True)
                ]
            )
            return loss, grad_z

        try:
            if not ranges:
                evaluate(np.zeros(0), False)
            else:
                minimize_in_box(
                    evaluate,
                    [r.bounds[0] for r in ranges],
                    [r.bounds[1] for r in ranges],
                    n_init=self.n_init,
                    n_iter=self.n_iter,
                    tol=self.tol,
                    random_state=subsearch.seed,
                )
        except StopSearch:
            return True
        finally:
            _end(subsearch.callback_ctx, self.owner)
            # The prepared folds are not needed any more: free them (and do
            # not send them back from a worker process).
            subsearch.objective = None
        return False

    def _report(self, subsearch, evaluation, folds, elapsed):
        if self.verbose > 0:
            names = [r.name for r in subsearch.subspace.ranges]
            values = ", ".join(f"{k}={evaluation.params[k]:.4g}" for k in names)
            gradient = evaluation.hypergradient
            norm = (
                f"{np.linalg.norm(list(gradient.values())):.3g}"
                if gradient
                else "- (loss only)"
            )
            print(
                f"[search {subsearch.search_id + 1}, iter {evaluation.iteration}] "
                f"{values}; cv_loss={evaluation.cv_loss:.6g}, "
                f"|hypergrad|={norm} ({elapsed:.2f}s)"
            )
        if self.verbose > 1:
            for k, fold in enumerate(folds):
                status = "failed" if fold.fit_error else f"loss={fold.loss:.6g}"
                print(f"    [CV {k + 1}/{len(folds)}] {status} ({fold.fit_time:.3f}s)")
        if self.callbacks:
            done = [e for e in subsearch.evaluations if np.isfinite(e.cv_loss)]
            best = min(done, key=lambda e: e.cv_loss) if done else evaluation
            state = SearchState(
                search_id=subsearch.search_id,
                iteration=evaluation.iteration,
                params=evaluation.params,
                cv_loss=evaluation.cv_loss,
                hypergradient=evaluation.hypergradient,
                best_params=best.params,
                best_cv_loss=best.cv_loss,
                elapsed=elapsed,
            )
            # Every callback sees every state, even when one asks to stop.
            return any([bool(callback(state)) for callback in self.callbacks])
        return False

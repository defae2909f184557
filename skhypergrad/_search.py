"""HypergradSearchCV: GridSearchCV's interface, gradient steps inside ranges.

``fit`` reads as ``BaseSearchCV.fit``: validate, expand the space into one
continuous search per point of the discrete grid, build each one's
cross-validation objective, run the outer optimizer on it, format the
evaluated points as ``cv_results_``, choose the best, refit.
"""

import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import check_cv
from sklearn.utils import check_random_state
from sklearn.utils.validation import indexable

from ._models import DifferentiableModel, FoldData, find_model
from ._models._weighted import default_weights_penalty
from ._objective import (
    CrossValObjective,
    GridPoint,
    check_data,
    model_input,
    point_key,
)
from ._optimize import StopSearch, minimize_in_box
from ._optimize_many import minimize_many
from ._parallel import split_engine
from ._progress import Progress, format_value
from ._results import Evaluation, format_results, select_best
from ._sklearn_compat import (
    BaseSearchCV,
    Interval,
    StrOptions,
    check_method_params,
    fit_context,
    public_scorer,
)
from ._space import expand_param_grid, split_pipeline, with_params

__all__ = ["HypergradSearchCV"]


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

        - for a differentiable hyperparameter, a list, array or ``range``
          of two or more numbers: every value is evaluated as GridSearchCV
          evaluates it, then the gradient phase refines inside
          ``[min, max]``, so the search is never worse than the grid;
          a tuple ``(low, high)`` or a frozen ``scipy.stats.uniform`` or
          ``loguniform`` distribution: a range, searched from ``n_init``
          coarse points. Scale parameters such as ``alpha`` are searched on
          a log scale and need positive values;
        - anything else: a list of values, enumerated as GridSearchCV does.
          A one-element list fixes a value. An estimator without a
          differentiable model is searched exactly as GridSearchCV searches
          it.

        A list of dicts searches each dict's space in turn. The user guide's
        page on the parameter space has the details.

    scoring : str, callable, list, tuple or dict, default=None
        What to report and rank, as in GridSearchCV. The search itself
        follows the model's differentiable validation loss (mean squared
        error for regressors, log-loss for classifiers); ``scoring`` decides
        which evaluated point is best.

    n_jobs : int, default=None
        Number of worker processes that solve the folds of each outer step
        in parallel. Each fold is prepared once in a worker (preprocessing,
        factorizations) and stays there for the search; each step sends the
        hyperparameters and gets back losses, hypergradients and scores. The
        outer optimizer, verbose output, ``callbacks`` and interrupts stay in
        the calling process, and ``cv_results_`` is the same as with
        ``n_jobs=1``. The searches at the points of the discrete grid run one
        after the other; points fitted by scikit-learn alone run their folds
        in parallel, as GridSearchCV does. ``None`` means 1 unless in a
        :obj:`joblib.parallel_backend` context; ``-1`` means all processors.
        Under ``joblib.parallel_backend("dask")`` with a
        :class:`distributed.Client` connected, the folds run on the dask
        cluster's workers. A model whose folds cost less than a round trip to
        a worker (Ridge) solves them in the calling process. See the user
        guide's page on scaling out.

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
        Controls the number of jobs dispatched during parallel execution, as
        in GridSearchCV, for the points fitted by scikit-learn alone. The
        continuous searches ignore it: each step sends one task per fold to
        the worker that holds the fold.

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
        plateaus at the ends of the range. Listed values replace the points
        of their hyperparameter: each is evaluated.

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
        times half the spacing of the coarse points (with one
        hyperparameter, also when it would decrease the loss by less than
        ``tol / 1000`` times the loss). With several
        hyperparameters, the start is the last point where the hypergradient
        before it predicted the decrease of the loss (within a factor of
        ten): a rough loss resets it; and a run that ends on a short step
        while the hypergradient is not small, or where the loss is rough at
        the scale of its steps (a local minimum of a rough loss), leaves the
        rest of ``n_iter`` to a run from another coarse point, one with no
        better point near it (see the user guide's page on the optimizer).

    weights_penalty : float or "auto", default="auto"
        Only for the weights of a :class:`~skhypergrad.FeatureWeights` step
        given a range: the penalty on their spread that the search adds to
        the CV loss it follows after the diagonal (all weights equal),
        ``weights_penalty * L0 * mean((log w - mean(log w)) ** 2)`` with
        ``L0`` the CV loss at the diagonal's best point. With many weights
        and few samples, the CV loss alone is overfitted; the penalty keeps
        the weights near their common value unless the loss says otherwise
        (see the user guide's page on many hyperparameters). ``"auto"`` is
        0.1 before a Ridge or an MLPRegressor and 3 before a
        LogisticRegression or an MLPClassifier (whose log-loss can be
        driven towards zero on nearly separable folds);
        ``0`` follows the CV loss alone. The scores and ``cv_loss`` reported
        are never penalized.

    random_state : int, RandomState instance or None, default=None
        Draws the coarse points when several hyperparameters are searched,
        and the seed of an MLP whose ``random_state`` is None (kept in the
        ``params`` of its rows). None is deterministic, as a grid is: it
        draws what ``0`` draws.

    callbacks : callable or list of callables, default=None
        Called after each outer iteration with a :class:`SearchState`; a
        callback that returns ``True`` stops the search, and the best point
        found so far is refit. Callbacks run in the calling process, whatever
        ``n_jobs``.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        One row per evaluated point, with every key GridSearchCV has
        (``mean_test_score``, ``split0_test_score``, ``param_<name>``,
        ``params``, ...) and:

        - ``search_id``: the point of the discrete grid searched;
        - ``outer_iter``: the outer iteration within that search;
        - ``cv_loss``: the mean validation loss that was differentiated
          (``nan`` for a point fitted by scikit-learn: no continuous
          hyperparameter there, or no differentiable model);
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
        "weights_penalty": [
            Interval(numbers.Real, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
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
        weights_penalty="auto",
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
        self.weights_penalty = weights_penalty
        self.random_state = random_state
        self.callbacks = callbacks

    def _run_search(self, evaluate_candidates, **kwargs):
        # BaseSearchCV's evaluate_candidates refits the estimator for every
        # candidate and fold and re-splits the data at each call; fit below
        # drives the search itself and scores the traced models instead.
        raise NotImplementedError(
            "HypergradSearchCV runs its own search in fit; it has no candidate "
            "list to hand to evaluate_candidates."
        )

    @fit_context(
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
        params = check_method_params(X, params=params)
        routed_params = self._get_routed_params_for_fit(params)

        subspaces = expand_param_grid(
            self.estimator, self.param_grid, random_state=self._random_state()
        )
        if any(s.ranges for s in subspaces):
            # What the differentiable models need; a search fitted by
            # scikit-learn alone checks its data as GridSearchCV does.
            check_data(self.estimator, X, y)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = list(cv.split(X, y, **routed_params.splitter.split))
        self.n_splits_ = len(splits)

        progress = Progress(
            self,
            subspaces,
            splits,
            X,
            y,
            loss_note=self._loss_note(subspaces),
            sample_weight=params.get("sample_weight"),
            fit_sample_weight=routed_params.estimator.fit.get("sample_weight"),
        )
        rng = check_random_state(self._random_state())
        engine = split_engine(self.n_jobs)
        subsearches = [
            _Subsearch(
                objective=self._objective(
                    s,
                    i,
                    len(subspaces),
                    X,
                    y,
                    splits,
                    routed_params,
                    scorers,
                    progress.split_contexts[i],
                    engine,
                ),
                subspace=s,
                search_id=i,
                seed=rng.randint(np.iinfo(np.int32).max),
                progress=progress.for_subsearch(i),
            )
            for i, s in enumerate(subspaces)
        ]
        run = _SearchRunner(
            n_init=self.n_init,
            n_iter=self.n_iter,
            tol=self.tol,
            weights_penalty=self.weights_penalty,
        )
        subsearches, interrupted = self._run_subsearches(run, subsearches)
        progress.end_search()
        # With their vectors' sizes, known once the data was seen.
        subspaces = [s.subspace for s in subsearches]

        for subsearch in subsearches:
            _warn_about_convergence(subsearch, len(subsearches))
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
        results, first_test_score = format_results(
            self, evaluations, subspaces, self.n_splits_
        )
        select_best(self, results, refit_metric, first_test_score)
        _warn_about_bounds(self, results, subspaces)
        if self.refit:
            self._refit(X, y, routed_params.estimator.fit, progress)
            self._warn_about_refit(X, y, routed_params.estimator.fit, results)
        self.scorer_ = public_scorer(scorers)
        self.cv_results_ = results
        self._subspaces = subspaces
        progress.end()
        return self

    def _loss_note(self, subspaces):
        """What the verbose header says when the ranking is not by the loss."""
        notes = set()
        for subspace in subspaces:
            if not subspace.ranges:
                continue
            final = split_pipeline(with_params(self.estimator, subspace.fixed))[1]
            model = find_model(final)
            equivalent = model.loss_scoring_for(final)
            ranking = self.refit if isinstance(self.refit, str) else self.scoring
            if ranking != equivalent or callable(self.refit):
                shown = "the estimator's score" if ranking is None else repr(ranking)
                notes.add(
                    f"The gradient phase follows the {model.loss_name}; the best "
                    f"point is the best by {shown}, which may be another point "
                    f"(scoring={equivalent!r} ranks as the loss does)."
                )
        return " ".join(sorted(notes)) or None

    def _random_state(self):
        """The search's random stream: fixed when ``random_state`` is None.

        A search is deterministic by default, as GridSearchCV is: None
        draws the same coarse points and seeds as 0 does.
        """
        return 0 if self.random_state is None else self.random_state

    def _objective(
        self,
        subspace,
        index,
        n_subspaces,
        X,
        y,
        splits,
        routed_params,
        scorer,
        callback_contexts,
        engine,
    ):
        """What evaluates the points of one subspace."""
        if not subspace.ranges:
            # Nothing continuous: fitted and scored as GridSearchCV does.
            return GridPoint(
                self.estimator,
                subspace.fixed,
                X,
                y,
                splits,
                fit_params=routed_params.estimator.fit,
                score_params=routed_params.scorer.score,
                error_score=self.error_score,
                scorer=scorer,
                return_train_score=self.return_train_score,
                verbose=self.verbose,
                candidate_progress=(index, n_subspaces),
                caller=self,
                callback_contexts=callback_contexts,
                n_jobs=self.n_jobs,
                pre_dispatch=self.pre_dispatch,
            )
        return CrossValObjective(
            with_params(self.estimator, subspace.fixed),
            X,
            y,
            splits,
            subspace.names,
            fit_params=routed_params.estimator.fit,
            score_params=routed_params.scorer.score,
            error_score=self.error_score,
            scorer=scorer,
            return_train_score=self.return_train_score,
            engine=engine,
        )

    def _run_subsearches(self, run, subsearches):
        """Run every continuous search; say whether it was interrupted.

        The searches run one after the other in this process, their splits
        wherever the engine puts them: a search cut short keeps every point
        evaluated.
        """
        try:
            for subsearch in subsearches:
                if run(subsearch):
                    break
        except KeyboardInterrupt:
            return subsearches, True
        return subsearches, False

    def _refit(self, X, y, fit_params, progress):
        """Fit the user's estimator at best_params_ on all the data."""
        # The parameters are cloned too: they may be estimators (a step of a
        # pipeline searched over), as in BaseSearchCV.
        self.best_estimator_ = with_params(self.estimator, self.best_params_)
        with progress.refit_context(self.best_estimator_):
            start = time.time()
            self.best_estimator_.fit(X, y, **fit_params)
            self.refit_time_ = time.time() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_

    def _warn_about_refit(self, X, y, fit_params, results):
        """Warn when the refit stops far from the solution that was scored."""
        if "cv_loss" not in results or not np.isfinite(
            results["cv_loss"][self.best_index_]
        ):
            return  # scored by scikit-learn's own fit: the refit is the same
        preprocessing, final, prefix = split_pipeline(self.best_estimator_)
        model = find_model(final)
        if model is None or model.refit_gap is DifferentiableModel.refit_gap:
            return
        Xt = X if preprocessing is None else preprocessing.transform(X)
        data = FoldData(
            model_input(model, Xt),
            np.asarray(y),
            model_input(model, Xt),
            np.asarray(y),
            sample_weight=fit_params.get(prefix + "sample_weight"),
        )
        gap = model.refit_gap(final, data)
        if gap is not None and gap > _REFIT_GAP:
            settings = ", ".join(
                f"{k}={final.get_params()[k]!r}"
                for k in ("solver", "tol", "max_iter")
                if k in final.get_params()
            )
            warnings.warn(
                f"best_estimator_ was refit by {type(final).__name__}.fit "
                f"({settings}), which stops {gap:.2%} above the minimum of its "
                "training objective: the search scored the minimum. Tighten "
                "tol (or raise max_iter) for a refit closer to what was "
                "scored; see the user guide's 'Which scores are exact'.",
                UserWarning,
                stacklevel=4,
            )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The traced trainers compute with NumPy.
        tags.array_api_support = False
        return tags


# The relative excess of the refit's training objective above which a refit
# is said to differ from what was scored (lbfgs at its default tol stops
# 0.01% above at C=1 on breast_cancer, 0.2% at C=100).
_REFIT_GAP = 1e-3


@dataclass
class _Subsearch:
    """One continuous search, at one point of the discrete grid."""

    objective: CrossValObjective
    subspace: object
    search_id: int
    seed: int
    progress: object
    evaluations: list = field(default_factory=list)
    # (point, message) of each ConvergenceWarning of its inner trainings.
    convergence_warnings: list = field(default_factory=list)


class _SearchFunction:
    """One continuous search's CV loss as a function of the search space.

    What the outer optimizer calls: ``z`` is mapped to the hyperparameters,
    the objective (memoized by point) evaluates them, the first evaluation of
    each point becomes a row, and each evaluation that computed something is
    reported. The hypergradient is carried to the search space.
    """

    def __init__(self, subsearch):
        self._subsearch = subsearch
        self._rows = {}
        self._start = time.time()

    def is_evaluated(self, z, differentiate, exact=True):
        point = self._subsearch.subspace.to_point(z)
        return self._subsearch.objective.is_evaluated(point, differentiate, exact)

    def value(self, z, exact=True):
        return self._evaluate(z, False, exact).loss

    def value_and_grad(self, z):
        result = self._evaluate(z, True)
        return result.loss, self._subsearch.subspace.gradient_in_z(
            result.hypergradient, z
        )

    def solve_best_exactly(self):
        """Solve the point of lowest CV loss again, exactly, if it was not.

        The coarse pass may solve its points inexactly; the best one decides
        the answer (and ``best_score_`` with the loss as the score). Solved
        again, its loss may rise above that of another inexact point, which
        is then solved again too.
        """
        while True:
            finite = [e for e in self._subsearch.evaluations if np.isfinite(e.cv_loss)]
            if not finite:
                return
            best = min(finite, key=lambda e: e.cv_loss)
            if best.result.exact:
                return
            self._evaluate_point(dict(best.result.point), False, True)

    def _evaluate(self, z, differentiate, exact=True):
        return self._evaluate_point(
            self._subsearch.subspace.to_point(z), differentiate, exact
        )

    def _evaluate_point(self, point, differentiate, exact):
        subsearch = self._subsearch
        objective = subsearch.objective
        if objective.is_evaluated(point, differentiate, exact):
            return objective.evaluate(point, differentiate, exact)
        tasks = subsearch.progress.begin_iteration()
        if subsearch.subspace.ranges:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = objective.evaluate(point, differentiate, exact)
            _collect_warnings(caught, subsearch.convergence_warnings, point)
        else:
            # Fitted by scikit-learn: its warnings as GridSearchCV shows them.
            result = objective.evaluate(point, differentiate, exact)
        key = point_key(point)
        evaluation = self._rows.get(key)
        new = evaluation is None
        if new:
            evaluation = self._rows[key] = Evaluation(
                params={**subsearch.subspace.fixed, **point},
                result=result,
                iteration=len(subsearch.evaluations),
                search_id=subsearch.search_id,
            )
            subsearch.evaluations.append(evaluation)
        if subsearch.progress.end_iteration(
            tasks,
            evaluation,
            subsearch.evaluations,
            time.time() - self._start,
            new,
        ):
            raise StopSearch
        return result


def _warn_about_bounds(search, results, subspaces):
    """Warn when the best point is on a bound and the loss decreases beyond it."""
    best = getattr(search, "best_index_", None)
    if best is None or "search_id" not in results:
        return
    subspace = subspaces[results["search_id"][best]]
    params = results["params"][best]
    for r in subspace.ranges:
        if r.vector:
            # Many weights end on a bound (a feature the model does best
            # without): that says nothing about the range.
            continue
        gradient = results[f"hypergrad_{r.name}"][best]
        value = params[r.name]
        if value == r.low and gradient > 0:
            side, bound, way = "lower", r.low, "below"
        elif value == r.high and gradient < 0:
            side, bound, way = "upper", r.high, "above"
        else:
            continue
        warnings.warn(
            f"The best point has {r.name}={bound:.6g}, the {side} end of its "
            f"range, where the CV loss still decreases outwards (hypergradient "
            f"{gradient:.3g}): the range is too narrow. Widen it {way} "
            f"{bound:.6g}.",
            UserWarning,
            stacklevel=4,
        )


def _collect_warnings(caught, convergence, point):
    """Keep the convergence warnings of inner trainings; warn the others again.

    A search trains hundreds of times: the ConvergenceWarnings of those
    trainings are summed up in one warning per search instead (see
    :func:`_warn_about_convergence`).
    """
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            convergence.append((point, str(warning.message)))
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def _warn_about_convergence(subsearch, n_subsearches):
    """One ConvergenceWarning for the inner trainings of one search."""
    messages = subsearch.convergence_warnings
    if not messages:
        return
    points = {point_key(point): point for point, _ in messages}
    shown = "; ".join(
        ", ".join(f"{k}={format_value(v)}" for k, v in point.items())
        for point in list(points.values())[:3]
    ) + ("; ..." if len(points) > 3 else "")
    which = f"search {subsearch.search_id + 1} of {n_subsearches}"
    fixed = ", ".join(f"{k}={v!r}" for k, v in subsearch.subspace.fixed.items())
    warnings.warn(
        f"{len(messages)} inner trainings of {which}"
        + (f" ({fixed})" if fixed else "")
        + f" did not converge, at {len(points)} of its "
        f"{len(subsearch.evaluations)} points ({shown}). The first said: "
        f"{messages[0][1]}",
        ConvergenceWarning,
        stacklevel=4,
    )


@dataclass
class _SearchRunner:
    """Runs one continuous search and records every evaluated point."""

    n_init: int
    n_iter: int
    tol: float
    weights_penalty: object = "auto"

    def _weights_penalty(self, subsearch):
        if self.weights_penalty != "auto":
            return self.weights_penalty
        final = split_pipeline(subsearch.objective.estimator)[1]
        return default_weights_penalty(final)

    def __call__(self, subsearch):
        """Search; return True when a callback asked to stop everything."""
        subsearch.progress.begin()
        subsearch.objective.prepare()
        if subsearch.subspace.has_vectors:
            subsearch.subspace = subsearch.subspace.sized(
                subsearch.objective.vector_sizes()
            )
        fun = _SearchFunction(subsearch)
        try:
            if not subsearch.subspace.ranges:
                fun.value(np.zeros(0))
            elif subsearch.subspace.has_vectors:
                lower, upper = subsearch.subspace.bounds
                minimize_many(
                    fun,
                    lower,
                    upper,
                    tied=subsearch.subspace.tied,
                    n_init=self.n_init,
                    n_iter=self.n_iter,
                    tol=self.tol,
                    random_state=subsearch.seed,
                    penalty=self._weights_penalty(subsearch),
                )
            else:
                lower, upper = subsearch.subspace.bounds
                minimize_in_box(
                    fun,
                    lower,
                    upper,
                    n_init=self.n_init,
                    n_iter=self.n_iter,
                    tol=self.tol,
                    random_state=subsearch.seed,
                    values=subsearch.subspace.values_z,
                    order=subsearch.subspace.grid_order,
                )
            fun.solve_best_exactly()
        except StopSearch:
            return True
        finally:
            subsearch.progress.end()
            # The prepared folds are not needed any more: free them, in the
            # workers too.
            subsearch.objective.close()
            subsearch.objective = None
        return False

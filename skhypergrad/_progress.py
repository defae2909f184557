"""What a search shows while it runs: verbose lines, callbacks, sklearn's tasks.

Three channels report each evaluated point, and all three live here:

- ``verbose``: one line per outer iteration (``1``), plus one per fold (``2``);
- ``callbacks=``: user functions called with a :class:`SearchState`; one
  that returns True stops the search;
- scikit-learn 1.9's callback API (``set_callbacks``): the search is a task,
  each point of the discrete grid a subtask, each outer iteration a subtask
  of that, and the refit a subtask of the search. Each split trained at an
  outer iteration is a "candidate-split-evaluation" task of it, as each
  split of each candidate is in GridSearchCV, with the training part's data
  and ``sample_weight``.
"""

import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from joblib.logger import short_format_time

from ._sklearn_compat import init_callback_context, safe_indexing

__all__ = ["Progress", "SearchState", "format_value"]


def format_value(value, precision=4):
    """A hyperparameter's value (or derivative) for a line of text.

    A vector (FeatureWeights' weights) is summed up by its size, its range
    and its geometric mean, or its norm for a derivative that may be
    negative.
    """
    if np.ndim(value) == 0:
        return f"{value:.{precision}g}"
    value = np.asarray(value, dtype=float)
    if value.size == 0:
        return "[]"
    if value.size <= 4:
        return "[" + ", ".join(f"{v:.{precision}g}" for v in value) + "]"
    if np.all(value > 0):
        centre = f"geometric mean {np.exp(np.mean(np.log(value))):.3g}"
    else:
        centre = f"norm {np.linalg.norm(value):.3g}"
    return f"[{value.size} values in {value.min():.3g}..{value.max():.3g}, {centre}]"


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


def _score_line(index, n_splits, params, out):
    """GridSearchCV's line for one fold at ``verbose > 2`` (``_fit_and_score``)."""
    start = f"[CV {index + 1}/{n_splits}] END "
    message = ", ".join(f"{k}={params[k]}" for k in sorted(params))
    message += ";" if message else ""
    test, train = out["test_scores"], out.get("train_scores")
    if isinstance(test, dict):
        for name in sorted(test):
            message += f" {name}: ("
            if train is not None:
                message += f"train={train[name]:.3f}, "
            message += f"test={test[name]:.3f})"
    elif train is not None:
        message += f", score=(train={train:.3f}, test={test:.3f})"
    else:
        message += f", score={test:.3f}"
    total = out["fit_time"] + out["score_time"]
    message += f" total time={short_format_time(total)}"
    return start + "." * (80 - len(start) - len(message)) + message


class Progress:
    """The reporting of one ``fit`` of a search, on every channel.

    Parameters
    ----------
    search : HypergradSearchCV
        The search being fitted (its ``verbose``, ``callbacks``, ``refit``,
        ``n_init`` and ``n_iter``, and scikit-learn's callback context).
    subspaces : list of Subspace
        The continuous searches, one per point of the discrete grid.
    n_splits : int
    X, y :
        The data, for scikit-learn's callbacks.
    """

    def __init__(
        self,
        search,
        subspaces,
        splits,
        X,
        y,
        loss_note=None,
        sample_weight=None,
        fit_sample_weight=None,
    ):
        n_splits = len(splits)
        self.search = search
        self.start = time.time()
        self.verbose = search.verbose
        self._subspaces = subspaces
        self.callbacks = _as_list(search.callbacks)
        self._X, self._y = X, y
        self._split_tasks = _SplitTasks(X, y, splits, fit_sample_weight)
        # As GridSearchCV, the tasks that fit receive the sample weights.
        self._metadata = (
            None if sample_weight is None else {"sample_weight": sample_weight}
        )
        self._root = _begin(
            init_callback_context(search, max_subtasks=1 + (search.refit is not False)),
            search,
            X=X,
            y=y,
            metadata=self._metadata,
        )
        self._search_ctx = _begin(
            self._root
            and self._root.subcontext(
                task_name="search",
                max_subtasks=sum(1 if s.ranges else n_splits for s in subspaces),
                sequential_subtasks=False,
            ),
            search,
        )
        # A continuous search is a task, each outer iteration a subtask of
        # it; a point fitted by scikit-learn is one task per split, as each
        # candidate of GridSearchCV ("candidate-split-evaluation").
        self.subsearch_contexts, self.split_contexts = [], []
        task_id = 0
        for s in subspaces:
            if s.ranges or self._search_ctx is None:
                self.subsearch_contexts.append(
                    self._search_ctx
                    and self._search_ctx.subcontext(
                        task_name="continuous search",
                        task_id=task_id,
                        # A coarse point solved inexactly may be solved
                        # again, exactly, once (see inexact_solves).
                        max_subtasks=2 * s.n_coarse(search.n_init) + search.n_iter,
                    )
                )
                self.split_contexts.append(None)
                task_id += 1
                continue
            self.subsearch_contexts.append(None)
            self.split_contexts.append(
                [
                    self._search_ctx.subcontext(
                        task_name="candidate-split-evaluation", task_id=task_id + k
                    )
                    for k in range(n_splits)
                ]
            )
            task_id += n_splits
        if self.verbose > 0:
            names = sorted({r.name for s in subspaces for r in s.ranges})
            print(
                f"Searching {', '.join(names) or 'no continuous hyperparameter'} "
                f"at each of {len(subspaces)} discrete candidates, on "
                f"{n_splits} folds"
            )
            if loss_note:
                print(loss_note)

    def for_subsearch(self, search_id):
        """The reporter of one continuous search, to run where it runs."""
        fixed = self._subspaces[search_id].fixed
        name = f"search {search_id + 1}/{len(self._subspaces)}"
        if len(self._subspaces) > 1 and fixed:
            name += " (" + ", ".join(f"{k}={_short(v)}" for k, v in fixed.items()) + ")"
        return _SubsearchProgress(
            owner=self.search,
            search_id=search_id,
            name=name,
            start=self.start,
            ctx=self.subsearch_contexts[search_id],
            verbose=self.verbose,
            callbacks=self.callbacks,
            split_tasks=self._split_tasks,
        )

    def end_search(self):
        _end(self._search_ctx, self.search)

    def refit_context(self, estimator):
        """A context in which ``estimator`` is refit, as a subtask of the search."""
        ctx = self._root and self._root.subcontext(task_name="refit-with-best-params")
        return _RefitTask(ctx, self.search, estimator, self._X, self._y, self._metadata)

    def end(self):
        _end(self._root, self.search, X=self._X, y=self._y, metadata=self._metadata)


class _RefitTask:
    def __init__(self, ctx, search, estimator, X, y, metadata):
        self._ctx, self._search, self._estimator = ctx, search, estimator
        self._X, self._y, self._metadata = X, y, metadata
        self._propagate = (
            ctx.propagate_callback_context(estimator) if ctx else nullcontext()
        )

    def __enter__(self):
        self._propagate.__enter__()
        _begin(self._ctx, self._search, X=self._X, y=self._y, metadata=self._metadata)
        return self

    def __exit__(self, *exc):
        self._propagate.__exit__(*exc)
        if exc[0] is None:
            _end(self._ctx, self._search, X=self._X, y=self._y, metadata=self._metadata)
        return False


@dataclass
class _SubsearchProgress:
    """The reporting of one continuous search.

    Each evaluation that computed something is one verbose line, numbered in
    the order evaluated: a new point's loss (and its hypergradient when it
    was computed with it; "inexact" when the coarse pass solved it only as
    the estimator's fit would stop), or, at a point evaluated before, which
    the line names by its row (``iter``), the hypergradient added later or
    the loss of the exact solve that replaced an inexact one.
    """

    owner: object
    search_id: int
    name: str
    start: float
    ctx: object
    verbose: int
    callbacks: list
    split_tasks: object = None
    n_evaluations: int = 0

    def begin(self):
        _begin(self.ctx, self.owner)

    def end(self):
        _end(self.ctx, self.owner)

    def begin_iteration(self):
        """Open the task of one outer iteration and those of its splits;
        return what :meth:`end_iteration` closes.

        Only continuous searches have a task (points fitted by scikit-learn
        have GridSearchCV's split tasks instead).
        """
        if self.ctx is None:
            return None
        n_splits = len(self.split_tasks)
        ctx = _begin(
            self.ctx.subcontext(
                task_name="outer iteration",
                max_subtasks=n_splits,
                sequential_subtasks=False,
            ),
            self.owner,
        )
        splits = [
            _begin(
                ctx.subcontext(task_name="candidate-split-evaluation", task_id=k),
                self.owner,
                **self.split_tasks.task_kwargs(k),
            )
            for k in range(n_splits)
        ]
        return ctx, splits

    def end_iteration(self, tasks, evaluation, evaluations, elapsed, new):
        """Report ``evaluation``; True when a callback asks to stop.

        ``tasks`` is what :meth:`begin_iteration` returned. ``new`` says
        whether the point was evaluated for the first time (else only its
        hypergradient is new).
        """
        self.n_evaluations += 1
        stop = False
        if tasks is not None:
            ctx, splits = tasks
            # Every task is closed, even when a callback asks to stop.
            stop = any(
                [
                    _end(split, self.owner, **self.split_tasks.task_kwargs(k))
                    for k, split in enumerate(splits)
                ]
            )
        stop = self._report(evaluation, evaluations, elapsed, new) or stop
        return (tasks is not None and _end(tasks[0], self.owner)) or stop

    def _report(self, evaluation, evaluations, elapsed, new):
        names = list(evaluation.hypergradient_names)
        since_fit = time.time() - self.start
        if self.verbose > 0 and not names:
            # Fitted by scikit-learn, which printed its own lines.
            print(
                f"[{self.name}] no continuous hyperparameter: fitted and scored "
                f"as GridSearchCV ({since_fit:.2f}s)"
            )
        elif self.verbose > 0:
            print(self._line(evaluation, names, new, since_fit))
        if self.verbose > 1 and names and new:
            splits = evaluation.result.splits
            for k, split in enumerate(splits):
                status = "failed" if split.fit_error else f"loss={split.loss:.6g}"
                print(
                    f"    [CV {k + 1}/{len(splits)}] {status} ({split.fit_time:.3f}s)"
                )
                if self.verbose > 2:
                    print(_score_line(k, len(splits), evaluation.params, split.scores))
        if not self.callbacks:
            return False
        done = [e for e in evaluations if np.isfinite(e.cv_loss)]
        best = min(done, key=lambda e: e.cv_loss) if done else evaluation
        state = SearchState(
            search_id=self.search_id,
            iteration=evaluation.iteration,
            params=dict(evaluation.params),
            cv_loss=evaluation.cv_loss,
            hypergradient=dict(evaluation.hypergradient),
            best_params=dict(best.params),
            best_cv_loss=best.cv_loss,
            elapsed=elapsed,
        )
        # Every callback sees every state, even when one asks to stop.
        return any([bool(callback(state)) for callback in self.callbacks])

    def _line(self, evaluation, names, new, since_fit):
        values = ", ".join(f"{k}={format_value(evaluation.params[k])}" for k in names)
        gradient = evaluation.hypergradient
        derivatives = ", ".join(
            f"{k}: {format_value(gradient[k], 3)}" for k in gradient
        )
        where = f"eval {self.n_evaluations}, iter {evaluation.iteration}"
        if new:
            what = f"cv_loss={evaluation.cv_loss:.6g}"
            if gradient:
                what += f", hypergradient {derivatives}"
            elif not evaluation.result.exact:
                what += " (inexact)"
        elif gradient:
            what = f"hypergradient {derivatives} (cv_loss={evaluation.cv_loss:.6g})"
        else:
            what = f"cv_loss={evaluation.cv_loss:.6g} (solved exactly)"
        return f"[{self.name}, {where}] {values} -> {what} ({since_fit:.2f}s)"


@dataclass(frozen=True)
class _SplitTasks:
    """What the callback task of each split receives, as in ``_fit_and_score``:
    the training part of the data and of the estimator's ``sample_weight``."""

    X: object
    y: object
    splits: list
    sample_weight: object = None

    def __len__(self):
        return len(self.splits)

    def task_kwargs(self, k):
        train = self.splits[k][0]
        return {
            "X": safe_indexing(self.X, train),
            "y": None if self.y is None else safe_indexing(self.y, train),
            "metadata": None
            if self.sample_weight is None
            else {"sample_weight": safe_indexing(self.sample_weight, train)},
        }


def _short(value):
    """A discrete value, short enough for a progress line."""
    text = type(value).__name__ if hasattr(value, "get_params") else repr(value)
    return text if len(text) <= 30 else text[:27] + "..."

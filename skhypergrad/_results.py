"""From evaluated points to ``cv_results_`` and the best point.

Each point a search evaluates becomes one row of ``cv_results_`` with every
key :class:`~sklearn.model_selection.GridSearchCV` has, built by
``BaseSearchCV._format_results`` from the folds' scores, plus the columns of
:func:`more_results`. :func:`select_best` then does what ``BaseSearchCV.fit``
does once its candidates are evaluated (scikit-learn 1.9,
``model_selection/_search.py``, from ``first_test_score``).
"""

from dataclasses import dataclass

import numpy as np

from ._sklearn_compat import insert_error_scores, warn_or_raise_about_fit_failures

__all__ = ["Evaluation", "format_results", "select_best"]


@dataclass
class Evaluation:
    """One evaluated point of one continuous search: a row of ``cv_results_``.

    Parameters
    ----------
    params : dict
        The point, discrete hyperparameters included.
    result : PointResult
        Its CV loss, hypergradient and the folds' scores.
    iteration : int
        Its outer iteration within its search, from 0.
    search_id : int
        The point of the discrete grid searched.
    """

    params: dict
    result: object
    iteration: int
    search_id: int

    @property
    def cv_loss(self):
        return self.result.loss

    @property
    def hypergradient(self):
        """The hypergradient by name; empty where the loss alone was computed."""
        return self.result.hypergradient or {}

    @property
    def hypergradient_names(self):
        return list(self.result.point)

    @property
    def out(self):
        """The folds' scores, in the layout of ``_fit_and_score``'s output."""
        return [split.scores for split in self.result.splits]


def more_results(evaluations, subspaces):
    """The columns ``cv_results_`` has beyond GridSearchCV's.

    None when no continuous search ran (an estimator without a differentiable
    model, or discrete values only): ``cv_results_`` is then GridSearchCV's,
    key for key.
    """
    if not any(s.ranges for s in subspaces):
        return None
    columns = {
        "search_id": [e.search_id for e in evaluations],
        "outer_iter": [e.iteration for e in evaluations],
        "cv_loss": [e.cv_loss for e in evaluations],
        "solved_exactly": [e.result.exact for e in evaluations],
    }
    for name in sorted({r.name for s in subspaces for r in s.ranges}):
        sizes = {
            r.size for s in subspaces for r in s.ranges if r.vector and r.name == name
        }
        values = [e.hypergradient.get(name, np.nan) for e in evaluations]
        columns[f"hypergrad_{name}"] = (
            _vector_column(values, sizes.pop()) if len(sizes) == 1 else values
        )
    return columns


def _vector_column(values, size):
    """The hypergradients of a vector: an (n_rows, size) array, nan-filled.

    Rows where the loss alone was computed, or the vector was not searched,
    are nan. Vectors of different sizes (another preprocessing at another
    point of the grid) stay an object column.
    """
    column = np.full((len(values), size), np.nan)
    for row, value in enumerate(values):
        if np.ndim(value) == 1 and len(value) == size:
            column[row] = value
    # np.asarray of a list of rows keeps the 2-D shape in _format_results.
    return list(column)


def format_results(search, evaluations, subspaces, n_splits):
    """``cv_results_`` of ``evaluations``, as ``BaseSearchCV`` formats them.

    Warns (or raises, with ``error_score="raise"``) about failed folds first,
    as GridSearchCV does.
    """
    out = [fold for e in evaluations for fold in e.out]
    warn_or_raise_about_fit_failures(out, search.error_score)
    if callable(search.scoring):
        insert_error_scores(out, search.error_score)
    results = search._format_results(
        [e.params for e in evaluations],
        n_splits,
        out,
        more_results(evaluations, subspaces),
    )
    return results, out[0]["test_scores"]


def select_best(search, results, refit_metric, first_test_score):
    """Set ``multimetric_`` and the ``best_*`` attributes, as GridSearchCV."""
    search.multimetric_ = isinstance(first_test_score, dict)
    if callable(search.scoring) and search.multimetric_:
        search._check_refit_for_multimetric(first_test_score)
        refit_metric = search.refit

    if search.refit or not search.multimetric_:
        search.best_index_ = search._select_best_index(
            search.refit, refit_metric, results
        )
        if not callable(search.refit):
            search.best_score_ = results[f"mean_test_{refit_metric}"][
                search.best_index_
            ]
        search.best_params_ = results["params"][search.best_index_]

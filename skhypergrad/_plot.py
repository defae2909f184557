"""Plots of a fitted HypergradSearchCV: the CV loss and the path of the search.

matplotlib is an optional dependency (``pip install skhypergrad[plot]``): it
is imported only when something is drawn, never when skhypergrad is imported.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.utils.validation import check_is_fitted, indexable

from ._models import get_model
from ._objective import CrossValObjective, check_data
from ._sklearn_compat import check_method_params
from ._space import split_pipeline

__all__ = ["SearchDisplay", "plot_search"]

_SCALES = ("log", "logit", "linear")


def _check_matplotlib(caller_name):
    """Raise an ImportError naming the extra to install if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"{caller_name} requires matplotlib: pip install skhypergrad[plot]"
        ) from e


class SearchDisplay:
    """Plot of a search: CV loss by outer iteration, and the path it followed.

    The figure has two panels. The left one draws ``cv_results_["cv_loss"]``
    against ``cv_results_["outer_iter"]``, one line per ``search_id`` (one
    per point of the discrete grid). The right one draws the path of the
    search over one or two continuous hyperparameters: for one, the CV loss
    against the hyperparameter's value; for two, the points in the plane of
    the two hyperparameters. The points of the coarse pass are drawn as
    hollow markers, and the gradient phase as a line from the best of them
    through the points it evaluated, in order. Optionally, the CV loss
    computed on a grid is drawn under the path, as a line or as filled
    contours. The best point (``best_index_``) is marked on both panels.

    It is recommended to create a display with :meth:`from_estimator` or
    :func:`plot_search`. All parameters are stored as attributes.

    Parameters
    ----------
    cv_results : dict of ndarray
        The ``cv_results_`` of a fitted
        :class:`~skhypergrad.HypergradSearchCV`: the columns ``search_id``,
        ``outer_iter``, ``cv_loss`` and ``param_<name>``,
        ``hypergrad_<name>`` for each name in ``params`` are used.

    params : list of str
        One or two continuous hyperparameters, by their names in
        ``param_grid`` (``"ridge__alpha"`` in a pipeline).

    scales : dict of str -> {"log", "logit", "linear"}, default=None
        Axis scale of each hyperparameter in ``params``: the scale it was
        searched on. Missing names are drawn on a linear axis.

    best_index : int, default=None
        Row of ``cv_results`` to mark as the best point. ``None`` marks the
        row with the lowest finite ``cv_loss``.

    n_init : int, default=None
        Points of the coarse pass that started each search. When given, a
        dotted vertical line separates the coarse pass from the gradient
        steps on the left panel, and on the right panel the coarse points are
        drawn apart (hollow markers) from the path of the gradient phase,
        which starts at the best of them.

    loss_name : str, default="CV loss"
        Label of the loss axis.

    grid_values : tuple of ndarray, default=None
        Values of each hyperparameter in ``params`` at which ``grid_loss``
        was computed, one 1-D array per hyperparameter.

    grid_loss : ndarray of shape (n,) or (n_0, n_1), default=None
        CV loss on the grid ``grid_values``: ``grid_loss[i, j]`` at
        ``(grid_values[0][i], grid_values[1][j])`` for two hyperparameters.
        Drawn under the path when given.

    grid_search_id : int, default=None
        The ``search_id`` whose discrete hyperparameters ``grid_loss`` was
        computed with, for the legend.

    Attributes
    ----------
    figure_ : matplotlib Figure
        Figure containing the two panels.

    ax_ : ndarray of matplotlib Axes of shape (2,)
        ``ax_[0]``: CV loss by outer iteration; ``ax_[1]``: the search path.

    lines_ : list of matplotlib Line2D
        CV loss against the outer iteration, one line per ``search_id``, in
        the order of ``search_ids_``.

    path_lines_ : list of matplotlib Line2D
        The path of each search that searched every hyperparameter in
        ``params``, in the order of ``path_search_ids_``: CV loss against the
        value (one hyperparameter) or the second hyperparameter against the
        first (two). With ``n_init``, the path of the gradient phase: the best
        point of the coarse pass, then the points evaluated after the coarse
        pass, in order (a run restarted from another coarse point continues
        the same line, from its first step away from that point, whose row is
        the coarse one); without, every evaluated point in order.

    coarse_markers_ : list of matplotlib Line2D
        The points of the coarse pass of each search of ``path_lines_``, as
        markers; empty without ``n_init``.

    best_markers_ : list of two matplotlib Line2D
        The best point on the left and on the right panel.

    grid_line_ : matplotlib Line2D or None
        The CV loss on the grid, for one hyperparameter and a grid.

    contour_ : matplotlib QuadContourSet or None
        Filled contours of the CV loss on the grid, for two hyperparameters
        and a grid.

    colorbar_ : matplotlib Colorbar or None
        Colorbar of ``contour_``.

    coarse_line_ : matplotlib Line2D or None
        The vertical line at the end of the coarse pass, when ``n_init`` is
        given and a search went past it.

    search_ids_ : ndarray of int
        The ``search_id`` of each line of ``lines_``.

    path_search_ids_ : ndarray of int
        The ``search_id`` of each line of ``path_lines_``.

    See Also
    --------
    plot_search : Create a :class:`SearchDisplay` from a fitted search.
    HypergradSearchCV : The search whose results are drawn.
    cross_val_hypergrad : The CV loss at one point, used for the grid.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from skhypergrad import HypergradSearchCV, SearchDisplay
    >>> X, y = load_diabetes(return_X_y=True)
    >>> search = HypergradSearchCV(Ridge(), {"alpha": (1e-4, 1e4)}, cv=5).fit(X, y)
    >>> display = SearchDisplay.from_estimator(search, X, y, loss_grid=30)
    >>> len(display.lines_), display.ax_[1].get_xscale()
    (1, 'log')
    >>> plt.show()
    """

    def __init__(
        self,
        *,
        cv_results,
        params,
        scales=None,
        best_index=None,
        n_init=None,
        loss_name="CV loss",
        grid_values=None,
        grid_loss=None,
        grid_search_id=None,
    ):
        self.cv_results = cv_results
        self.params = params
        self.scales = scales
        self.best_index = best_index
        self.n_init = n_init
        self.loss_name = loss_name
        self.grid_values = grid_values
        self.grid_loss = grid_loss
        self.grid_search_id = grid_search_id

    def plot(
        self,
        ax=None,
        *,
        line_kw=None,
        path_kw=None,
        best_kw=None,
        grid_kw=None,
        contour_kw=None,
        colorbar=True,
    ):
        """Draw the two panels.

        Parameters
        ----------
        ax : sequence of two matplotlib Axes, default=None
            Axes for the CV loss by outer iteration and for the search path.
            ``None`` creates a figure with two side-by-side axes.

        line_kw : dict, default=None
            Keyword arguments of :meth:`matplotlib.axes.Axes.plot` for the
            lines of the left panel, applied to every ``search_id``.

        path_kw : dict, default=None
            Keyword arguments of :meth:`matplotlib.axes.Axes.plot` for the
            search paths of the right panel.

        best_kw : dict, default=None
            Keyword arguments of :meth:`matplotlib.axes.Axes.plot` for the
            markers of the best point.

        grid_kw : dict, default=None
            Keyword arguments of :meth:`matplotlib.axes.Axes.plot` for the CV
            loss on the grid, for one hyperparameter.

        contour_kw : dict, default=None
            Keyword arguments of :meth:`matplotlib.axes.Axes.contourf` for
            the CV loss on the grid, for two hyperparameters.

        colorbar : bool, default=True
            Whether to add a colorbar to the contours.

        Returns
        -------
        display : SearchDisplay
            The display, with the matplotlib objects as attributes.
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        results = self.cv_results
        params = _check_params_arg(self.params, list(_searched_names(results)))
        scales = {name: "linear" for name in params}
        scales.update({k: v for k, v in (self.scales or {}).items() if k in scales})
        for name, scale in scales.items():
            if scale not in _SCALES:
                raise ValueError(
                    f"The scale of {name!r} must be one of {_SCALES}, got {scale!r}."
                )

        if ax is None:
            fig, ax = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
        ax = np.asarray(ax, dtype=object).ravel()
        if ax.shape != (2,):
            raise ValueError(
                f"ax must be a sequence of two matplotlib Axes (the CV loss by "
                f"iteration and the search path), got {len(ax)}."
            )
        ax_iter, ax_path = ax
        self.figure_ = ax_iter.figure
        self.ax_ = ax

        search_id = np.asarray(results["search_id"])
        outer_iter = np.asarray(results["outer_iter"])
        cv_loss = np.asarray(results["cv_loss"], dtype=float)
        self.search_ids_ = np.unique(search_id)
        best = self._best_row(cv_loss)
        colors = {sid: f"C{k % 10}" for k, sid in enumerate(self.search_ids_)}
        labels = _search_labels(results, self.search_ids_)

        # Left: CV loss against the outer iteration, one line per search.
        self.lines_ = []
        for sid in self.search_ids_:
            rows = _rows(search_id, outer_iter, sid)
            kw = {"marker": "o", "markersize": 4, "color": colors[sid]}
            kw.update(label=labels[sid], **(line_kw or {}))
            (line,) = ax_iter.plot(outer_iter[rows], cv_loss[rows], **kw)
            self.lines_.append(line)
        self.coarse_line_ = None
        if (
            self.n_init is not None
            and len(outer_iter)
            and outer_iter.max() >= self.n_init
        ):
            self.coarse_line_ = ax_iter.axvline(
                self.n_init - 0.5,
                color="0.5",
                linestyle=":",
                linewidth=1,
                label="end of the coarse pass",
            )
        ax_iter.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_iter.set(
            xlabel="outer iteration",
            ylabel=self.loss_name,
            title="CV loss by outer iteration",
        )

        # Right: the path over the searched hyperparameters.
        values = {name: _param_values(results, name) for name in params}
        searched = {name: _searched_ids(results, name) for name in params}
        self.path_search_ids_ = np.array(
            [
                sid
                for sid in self.search_ids_
                if all(sid in searched[n] for n in params)
            ],
            dtype=int,
        )
        self.grid_line_ = self.contour_ = self.colorbar_ = None
        self._plot_grid(ax_path, params, grid_kw, contour_kw, colorbar, labels)
        self.path_lines_, self.coarse_markers_ = [], []
        coarse_rows = {}
        for sid in self.path_search_ids_:
            path = _rows(search_id, outer_iter, sid)
            label = labels[sid]
            if self.n_init is not None:
                coarse_rows[sid], path = path[: self.n_init], path[self.n_init :]
                # The gradient phase starts from the best coarse point.
                losses = np.nan_to_num(cv_loss[coarse_rows[sid]], nan=np.inf)
                path = np.concatenate([[coarse_rows[sid][np.argmin(losses)]], path])
                if len(self.search_ids_) == 1:
                    label = "gradient phase"
            kw = {"marker": "o", "markersize": 4, "color": colors[sid]}
            kw.update(label=label, **(path_kw or {}))
            (line,) = ax_path.plot(*self._xy(values, cv_loss, params, path), **kw)
            self.path_lines_.append(line)
        for k, (sid, rows) in enumerate(coarse_rows.items()):
            (markers,) = ax_path.plot(
                *self._xy(values, cv_loss, params, rows),
                marker="o",
                markersize=6,
                linestyle="none",
                markerfacecolor="white",
                color=colors[sid],
                label="_nolegend_" if k else "coarse pass",
            )
            self.coarse_markers_.append(markers)

        kw = {
            "marker": "*",
            "markersize": 15,
            "color": "crimson",
            "markeredgecolor": "black",
            "linestyle": "none",
            "label": "best_params_",
            "zorder": 4,
        }
        kw.update(best_kw or {})
        self.best_markers_ = []
        if best is not None:
            (marker,) = ax_iter.plot([outer_iter[best]], [cv_loss[best]], **kw)
            self.best_markers_.append(marker)
            (marker,) = ax_path.plot(*self._xy(values, cv_loss, params, [best]), **kw)
            self.best_markers_.append(marker)

        ax_path.set_xscale(scales[params[0]])
        ax_path.set_xlabel(params[0])
        if len(params) == 1:
            ax_path.set_ylabel(self.loss_name)
        else:
            ax_path.set_yscale(scales[params[1]])
            ax_path.set_ylabel(params[1])
        ax_path.set_title("search path")
        ax_iter.legend(fontsize="small")
        ax_path.legend(fontsize="small")
        return self

    @staticmethod
    def _xy(values, cv_loss, params, rows):
        """Coordinates of ``rows`` on the path panel."""
        x = values[params[0]][rows]
        return x, (cv_loss[rows] if len(params) == 1 else values[params[1]][rows])

    def _best_row(self, cv_loss):
        if self.best_index is not None:
            return int(self.best_index)
        if not np.isfinite(cv_loss).any():
            return None
        return int(np.nanargmin(np.where(np.isfinite(cv_loss), cv_loss, np.nan)))

    def _plot_grid(self, ax, params, grid_kw, contour_kw, colorbar, labels):
        if self.grid_loss is None:
            return
        grid_loss = np.asarray(self.grid_loss, dtype=float)
        grid_values = [np.asarray(v, dtype=float) for v in self.grid_values]
        expected = tuple(len(v) for v in grid_values)
        if len(grid_values) != len(params) or grid_loss.shape != expected:
            raise ValueError(
                f"grid_loss has shape {grid_loss.shape}, but grid_values give a "
                f"grid of shape {expected} for params {params}."
            )
        where = ""
        if self.grid_search_id is not None and len(labels) > 1:
            where = f" ({labels.get(self.grid_search_id, self.grid_search_id)})"
        if len(params) == 1:
            kw = {"color": "0.6", "linewidth": 2, "zorder": 1}
            kw.update(label=f"CV loss on a grid{where}", **(grid_kw or {}))
            (self.grid_line_,) = ax.plot(grid_values[0], grid_loss, **kw)
            return
        kw = {"levels": 20, "cmap": "Greys_r", "alpha": 0.7, "zorder": 0}
        kw.update(contour_kw or {})
        self.contour_ = ax.contourf(grid_values[0], grid_values[1], grid_loss.T, **kw)
        if colorbar:
            self.colorbar_ = ax.figure.colorbar(self.contour_, ax=ax)
            self.colorbar_.set_label(f"{self.loss_name}{where}")

    @classmethod
    def from_estimator(
        cls,
        search,
        X=None,
        y=None,
        *,
        params=None,
        loss_grid=None,
        search_id=None,
        groups=None,
        fit_params=None,
        scales=None,
        ax=None,
        line_kw=None,
        path_kw=None,
        best_kw=None,
        grid_kw=None,
        contour_kw=None,
        colorbar=True,
    ):
        """Plot the CV loss and the path of a fitted search.

        Parameters
        ----------
        search : HypergradSearchCV
            A fitted search.

        X : array-like of shape (n_samples, n_features), default=None
            The data the search was fitted on. Needed only with
            ``loss_grid``.

        y : array-like of shape (n_samples,) or (n_samples, n_outputs), \
default=None
            The targets the search was fitted on. Needed only with
            ``loss_grid``.

        params : str or list of str, default=None
            One or two of the continuous hyperparameters searched (those with
            a ``hypergrad_<name>`` column in ``cv_results_``). ``None`` takes
            them all, when there are at most two.

        loss_grid : int, default=None
            When given, the CV loss is also computed with
            :func:`~skhypergrad.cross_val_hypergrad` at ``loss_grid`` points
            per hyperparameter, spread evenly over the searched range on the
            search scale (``loss_grid ** 2`` points for two
            hyperparameters), and drawn under the path. Needs ``X`` and
            ``y``. Hyperparameters searched but not drawn are held at their
            values at the best point of the search.

        search_id : int, default=None
            The point of the discrete grid whose hyperparameters the loss
            grid is computed with. ``None`` takes the ``search_id`` of the
            best point.

        groups : array-like of shape (n_samples,), default=None
            Group labels given to the search's ``fit``, for group splitters.

        fit_params : dict, default=None
            Fit parameters given to the search's ``fit`` (``sample_weight``).

        scales : dict of str -> {"log", "logit", "linear"}, default=None
            Axis scales that replace the search scales of the
            hyperparameters: by default, a hyperparameter searched as its
            logarithm (``alpha``, ``C``) is drawn on a log axis, one searched
            as its logit on a logit axis.

        ax : sequence of two matplotlib Axes, default=None
            Axes for the CV loss by outer iteration and for the search path.
            ``None`` creates a figure with two side-by-side axes.

        line_kw, path_kw, best_kw, grid_kw, contour_kw : dict, default=None
            Keyword arguments for the artists; see :meth:`plot`.

        colorbar : bool, default=True
            Whether to add a colorbar to the contours.

        Returns
        -------
        display : SearchDisplay
            The display, with the matplotlib objects as attributes.

        Notes
        -----
        The loss grid splits ``X, y`` again with the search's ``cv``. With an
        integer, a splitter that does not shuffle or a seeded one, the folds
        are those of the search, and the grid and the path show the same
        function; with an unseeded shuffling splitter they are not.

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> from sklearn.datasets import load_diabetes
        >>> from sklearn.linear_model import Ridge
        >>> from skhypergrad import HypergradSearchCV, SearchDisplay
        >>> X, y = load_diabetes(return_X_y=True)
        >>> search = HypergradSearchCV(
        ...     Ridge(), {"alpha": (1e-4, 1e4), "fit_intercept": [True, False]},
        ...     cv=5,
        ... ).fit(X, y)
        >>> display = SearchDisplay.from_estimator(search, X, y, loss_grid=25)
        >>> len(display.lines_), display.grid_line_ is not None
        (2, True)
        >>> plt.show()
        """
        _check_matplotlib(f"{cls.__name__}.from_estimator")
        check_is_fitted(search, "cv_results_")
        results = search.cv_results_
        missing = [
            c for c in ("search_id", "outer_iter", "cv_loss") if c not in results
        ]
        if missing:
            raise ValueError(
                f"cv_results_ has no column {missing[0]!r}: {cls.__name__} draws "
                "the results of a fitted skhypergrad.HypergradSearchCV, got a "
                f"{type(search).__name__}."
            )
        params = _check_params_arg(params, list(_searched_names(results)))

        subspaces = search._subspaces
        search_scales = {}
        for subspace in subspaces:
            for r in subspace.ranges:
                search_scales.setdefault(r.name, r.scale)
        search_scales.update(scales or {})

        best_index = getattr(search, "best_index_", None)
        grid_values = grid_loss = grid_search_id = None
        if loss_grid is not None:
            if best_index is None and search_id is None:
                raise ValueError(
                    "The search has no best_index_ (refit=False with several "
                    "metrics): pass search_id to choose the discrete "
                    "hyperparameters of the loss grid."
                )
            grid_search_id = (
                int(results["search_id"][best_index])
                if search_id is None
                else int(search_id)
            )
            grid_values, grid_loss = _loss_grid(
                search,
                subspaces,
                grid_search_id,
                params,
                loss_grid,
                X,
                y,
                groups,
                fit_params,
            )

        display = cls(
            cv_results=results,
            params=params,
            scales=search_scales,
            best_index=best_index,
            n_init=getattr(search, "n_init", None),
            loss_name=_loss_name(search.estimator),
            grid_values=grid_values,
            grid_loss=grid_loss,
            grid_search_id=grid_search_id,
        )
        return display.plot(
            ax=ax,
            line_kw=line_kw,
            path_kw=path_kw,
            best_kw=best_kw,
            grid_kw=grid_kw,
            contour_kw=contour_kw,
            colorbar=colorbar,
        )


def plot_search(search, X=None, y=None, **kwargs):
    """Plot the CV loss by outer iteration and the path of a fitted search.

    A shortcut for :meth:`SearchDisplay.from_estimator`.

    Parameters
    ----------
    search : HypergradSearchCV
        A fitted search.

    X : array-like of shape (n_samples, n_features), default=None
        The data the search was fitted on. Needed only with ``loss_grid``.

    y : array-like of shape (n_samples,) or (n_samples, n_outputs), \
default=None
        The targets the search was fitted on. Needed only with
        ``loss_grid``.

    **kwargs : dict
        Keyword arguments of :meth:`SearchDisplay.from_estimator`:
        ``params``, ``loss_grid``, ``search_id``, ``ax``, ...

    Returns
    -------
    display : SearchDisplay
        The display, with the matplotlib objects as attributes.

    See Also
    --------
    SearchDisplay : The display and its attributes.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from skhypergrad import HypergradSearchCV, plot_search
    >>> X, y = load_diabetes(return_X_y=True)
    >>> search = HypergradSearchCV(Ridge(), {"alpha": (1e-4, 1e4)}, cv=5).fit(X, y)
    >>> display = plot_search(search, X, y, loss_grid=30)
    >>> display.ax_[1].get_xlabel()
    'alpha'
    >>> plt.show()
    """
    _check_matplotlib("plot_search")
    return SearchDisplay.from_estimator(search, X, y, **kwargs)


def _searched_names(results):
    return [c[len("hypergrad_") :] for c in results if c.startswith("hypergrad_")]


def _check_params_arg(params, available):
    if params is None:
        if not available:
            raise ValueError(
                "The search has no continuous hyperparameter (no hypergrad_<name> "
                "column in cv_results_): there is no path to draw."
            )
        if len(available) > 2:
            raise ValueError(
                f"The search has {len(available)} continuous hyperparameters "
                f"{available}; pass params with one or two of them."
            )
        return list(available)
    params = [params] if isinstance(params, str) else list(params)
    if not 1 <= len(params) <= 2 or len(set(params)) != len(params):
        raise ValueError(
            f"params must name one or two distinct hyperparameters, got {params}."
        )
    for name in params:
        if name not in available:
            raise ValueError(
                f"{name!r} was not searched continuously; the searched "
                f"hyperparameters are {available}."
            )
    return params


def _rows(search_id, outer_iter, sid):
    rows = np.flatnonzero(search_id == sid)
    return rows[np.argsort(outer_iter[rows], kind="stable")]


def _param_values(results, name):
    column = np.ma.asarray(results[f"param_{name}"])
    values = np.full(len(column), np.nan)
    ok = ~np.ma.getmaskarray(column)
    values[ok] = np.ma.getdata(column)[ok].astype(float)
    return values


def _searched_ids(results, name):
    """search_ids that searched ``name``: those with a hypergradient for it."""
    grads = np.asarray(results[f"hypergrad_{name}"], dtype=float)
    return set(np.asarray(results["search_id"])[~np.isnan(grads)].tolist())


def _search_labels(results, search_ids):
    """A legend label per search_id: its discrete hyperparameters."""
    if len(search_ids) == 1:
        return {search_ids[0]: "evaluated points"}
    continuous = set(_searched_names(results))
    search_id = np.asarray(results["search_id"])
    labels = {}
    for sid in search_ids:
        first = int(np.flatnonzero(search_id == sid)[0])
        fixed = results["params"][first]
        text = ", ".join(
            f"{k}={_short(v)}" for k, v in fixed.items() if k not in continuous
        )
        labels[sid] = text or f"search {sid}"
    return labels


def _short(value):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{value:.3g}"
    if hasattr(value, "get_params"):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


def _loss_name(estimator):
    try:
        _, final, _ = split_pipeline(estimator)
        loss = get_model(final).loss_name
    except ValueError:
        loss = ""
    return f"CV loss ({loss})" if loss else "CV loss"


def _grid_axis(r, n):
    """``n`` values spread evenly over a range on its search scale."""
    return r.from_unconstrained(np.linspace(*r.bounds, n))


def _loss_grid(search, subspaces, search_id, params, n, X, y, groups, fit_params):
    """CV loss of the search's estimator at ``search_id`` on a grid of ``params``."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 2:
        raise ValueError(f"loss_grid must be an integer of at least 2, got {n!r}.")
    if X is None or y is None:
        raise ValueError(
            "loss_grid computes the CV loss on a grid, which needs the data: "
            "pass the X and y the search was fitted on."
        )
    if not 0 <= search_id < len(subspaces):
        raise ValueError(
            f"search_id must be between 0 and {len(subspaces) - 1}, got {search_id}."
        )
    subspace = subspaces[search_id]
    ranges = {r.name: r for r in subspace.ranges}
    absent = [name for name in params if name not in ranges]
    if absent:
        raise ValueError(
            f"search {search_id} did not search {absent[0]!r}; pass the "
            "search_id of a search that did."
        )
    grid_values = tuple(_grid_axis(ranges[name], n) for name in params)

    # Hyperparameters searched but not drawn stay at the search's best point.
    results = search.cv_results_
    rows = np.flatnonzero(np.asarray(results["search_id"]) == search_id)
    best = getattr(search, "best_index_", None)
    if best not in rows:
        cv_loss = np.asarray(results["cv_loss"], dtype=float)[rows]
        best = rows[np.nanargmin(np.where(np.isfinite(cv_loss), cv_loss, np.inf))]
    others = {
        name: results["params"][best][name] for name in ranges if name not in params
    }
    X, y, groups = indexable(X, y, groups)
    estimator = clone(search.estimator).set_params(
        **clone(subspace.fixed, safe=False), **others
    )
    cv = check_cv(search.cv, y, classifier=is_classifier(search.estimator))
    splits = list(cv.split(X, y, groups))
    points = np.stack(np.meshgrid(*grid_values, indexing="ij"), axis=-1)
    points = points.reshape(-1, len(params))
    losses = np.full(len(points), np.nan)
    check_data(estimator, X, y)
    # The folds are prepared once for the whole grid.
    objective = CrossValObjective(
        estimator,
        X,
        y,
        splits,
        list(params),
        fit_params=check_method_params(X, params=fit_params or {}),
        error_score="raise",
    )
    error = None
    for k, point in enumerate(points):
        try:
            losses[k] = objective.evaluate(
                {name: float(v) for name, v in zip(params, point, strict=True)}
            ).loss
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as e:
            # A point where training diverges is a hole in the grid.
            error = e
    if error is not None:
        if np.isnan(losses).all():
            raise error
        warnings.warn(
            f"The CV loss could not be computed at {np.isnan(losses).sum()} of "
            f"{len(losses)} grid points, left blank; the last error was: {error}",
            UserWarning,
            stacklevel=3,
        )
    return grid_values, losses.reshape(tuple(len(v) for v in grid_values))

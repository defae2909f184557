"""Plots of a fitted HypergradSearchCV: its progress and the path of the search.

matplotlib is an optional dependency (the ``plot`` extra: ``pip install
".[plot]"`` in a checkout): it is imported only when something is drawn,
never when skhypergrad is imported.
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
from ._space import split_pipeline, to_search_scale

__all__ = ["SearchDisplay", "plot_search"]

_SCALES = ("log", "logit", "linear")

# With loss_lim="auto", the loss axis spans the losses of the points within
# this fraction of the searched range (on the search scale) of the best point.
_WINDOW = 0.25
_MARGIN = 0.06


def _check_matplotlib(caller_name):
    """Raise an ImportError naming what to install if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"{caller_name} requires matplotlib: pip install matplotlib, or "
            'install skhypergrad with its plot extra (pip install ".[plot]" '
            "in a checkout)"
        ) from e


class SearchDisplay:
    """Plot of a search: the best CV loss so far, and the points it evaluated.

    The figure has two panels. The left one shows the progress of the
    search, as an optimization history: each evaluation's
    ``cv_results_["cv_loss"]`` as a faint marker against
    ``cv_results_["outer_iter"]``, and the lowest CV loss found so far as a
    step line, one per ``search_id`` (one per point of the discrete grid).
    The right one shows the points evaluated over one or two continuous
    hyperparameters: for one, the CV loss against the hyperparameter's value;
    for two, the points in the plane of the two hyperparameters, with a thin
    line through the successive best points. The points of the coarse pass
    are hollow markers, those of the gradient phase filled ones, drawn above
    the marker of the best point (``best_index_``), which is shown on both
    panels. Optionally, the CV loss computed on a grid is drawn under the
    points, as a line or as filled contours. Each ``search_id`` has its own
    colour, named in the legend by its discrete hyperparameters.

    The loss axes (and the colour scale of the contours) are chosen to show
    the minimum: by default the right panel spans the losses of the points
    near the best one and the left panel the best losses so far, but for
    the first few; the points beyond them are drawn on the edge of the axis
    as triangles (``clipped_markers_``). ``loss_lim`` sets them otherwise.

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
        phase on the left panel, and on the right panel the coarse points are
        drawn as hollow markers, apart from the points of the gradient phase.

    loss_name : str, default="CV loss"
        Label of the loss axis.

    grid_values : tuple of ndarray, default=None
        Values of each hyperparameter in ``params`` at which ``grid_loss``
        was computed, one 1-D array per hyperparameter.

    grid_loss : ndarray of shape (n,) or (n_0, n_1), default=None
        CV loss on the grid ``grid_values``: ``grid_loss[i, j]`` at
        ``(grid_values[0][i], grid_values[1][j])`` for two hyperparameters.
        Drawn under the points when given.

    grid_search_id : int, default=None
        The ``search_id`` whose discrete hyperparameters ``grid_loss`` was
        computed with, for the legend.

    Attributes
    ----------
    figure_ : matplotlib Figure
        Figure containing the two panels.

    ax_ : ndarray of matplotlib Axes of shape (2,)
        ``ax_[0]``: the best CV loss so far by evaluation; ``ax_[1]``: the
        evaluated points over the hyperparameters.

    lines_ : list of matplotlib Line2D
        The lowest CV loss found so far against ``outer_iter``, a step line
        per ``search_id``, in the order of ``search_ids_``.

    evaluation_markers_ : list of matplotlib Line2D
        The CV loss of each evaluation against ``outer_iter``, faint
        markers, one Line2D per ``search_id`` in the order of
        ``search_ids_``.

    path_lines_ : list of matplotlib Line2D
        The points of each search that searched every hyperparameter in
        ``params``, as markers with no line, in the order of
        ``path_search_ids_``: CV loss against the value (one hyperparameter)
        or the second hyperparameter against the first (two). With
        ``n_init``, the points evaluated after the coarse pass (the gradient
        phase); without, every evaluated point.

    incumbent_lines_ : list of matplotlib Line2D
        For two hyperparameters, a thin line per search of ``path_lines_``
        through the successive best points of that search, from the best
        point of the coarse pass (with ``n_init``) or its first point: the
        way the search went downhill. Empty for one hyperparameter.

    coarse_markers_ : list of matplotlib Line2D
        The points of the coarse pass of each search of ``path_lines_``, as
        hollow markers; empty without ``n_init``.

    best_markers_ : list of two matplotlib Line2D
        The best point on the left and on the right panel.

    clipped_markers_ : list of matplotlib Line2D
        The evaluated points whose CV loss lies beyond the loss axis, drawn
        on its edge as triangles pointing outwards, in the colour of their
        ``search_id``: one Line2D per panel with a loss axis, search and
        edge that has such points (on the left panel, and on the right one
        for one hyperparameter). Each has a ``points_`` attribute, the
        ``(x, cv_loss)`` of the points it stands for.

    history_lim_ : tuple of two floats or None
        The limits of the loss axis of the left panel, or ``None`` when they
        were left to matplotlib (``loss_lim=None``).

    loss_lim_ : tuple of two floats or None
        The limits of the loss axis of the right panel (one hyperparameter)
        or of the colour scale of the contours (two), or ``None`` when they
        were left to matplotlib (``loss_lim=None``).

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
    >>> low, high = display.loss_lim_
    >>> bool(low < search.cv_results_["cv_loss"].min() < high)
    True
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
        loss_lim="auto",
    ):
        """Draw the two panels.

        Parameters
        ----------
        ax : sequence of two matplotlib Axes, default=None
            Axes for the best CV loss so far and for the evaluated points.
            ``None`` creates a figure with two side-by-side axes.

        line_kw : dict, default=None
            Keyword arguments of :meth:`matplotlib.axes.Axes.plot` for the
            step lines of the left panel, applied to every ``search_id``.

        path_kw : dict, default=None
            Keyword arguments of :meth:`matplotlib.axes.Axes.plot` for the
            points of the gradient phase on the right panel.

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

        loss_lim : "auto", None or (float, float), default="auto"
            Limits of the loss axes and of the colour scale of the contours.
            With ``"auto"``, each starts at the lowest CV loss. On the right
            panel, it goes up to the highest CV loss of the points of the
            best point's ``search_id`` that lie within a quarter of the
            searched range of the best point, on the search scale (with two
            hyperparameters, the points of the grid count too): the far end
            of a range, where the loss is often much higher, does not
            flatten the minimum. On the left panel, it goes up to the 90th
            percentile of the best losses so far of that ``search_id``, so
            that a bad first point does not hide the progress after it.
            ``None`` leaves the limits to matplotlib, which shows every
            point; a pair sets both. The points beyond the limits are drawn
            on the edge of the axis (``clipped_markers_``).

        Returns
        -------
        display : SearchDisplay
            The display, with the matplotlib objects as attributes.
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt
        from matplotlib import patheffects
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
            fig, ax = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
        ax = np.asarray(ax, dtype=object).ravel()
        if ax.shape != (2,):
            raise ValueError(
                f"ax must be a sequence of two matplotlib Axes (the best CV loss "
                f"so far and the evaluated points), got {len(ax)}."
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
        single = len(self.search_ids_) == 1
        vector = _vector_param(results, params)
        values = {name: _param_values(results, name) for name in params if not vector}
        searched = {name: _searched_ids(results, name) for name in params}
        self.path_search_ids_ = np.array(
            [
                sid
                for sid in self.search_ids_
                if all(sid in searched[n] for n in params)
            ],
            dtype=int,
        )
        self.history_lim_, self.loss_lim_ = self._loss_lims(
            loss_lim,
            [] if vector else params,
            scales,
            values,
            cv_loss,
            search_id,
            outer_iter,
            best,
        )
        self.clipped_markers_ = []

        # Left: the best CV loss so far, as in an optimization history.
        self.lines_, self.evaluation_markers_ = [], []
        for sid in self.search_ids_:
            rows = _rows(search_id, outer_iter, sid)
            x, loss = outer_iter[rows], cv_loss[rows]
            (markers,) = ax_iter.plot(
                x,
                loss,
                linestyle="none",
                marker="o",
                markersize=4,
                alpha=0.35,
                color=colors[sid],
                label="each evaluation" if sid == self.search_ids_[0] else None,
                zorder=2,
            )
            self.evaluation_markers_.append(markers)
            label = "best so far" if single else labels[sid]
            kw = {
                "drawstyle": "steps-post",
                "linewidth": 2,
                "color": colors[sid],
                "zorder": 3,
                "label": _above(label, loss, self.history_lim_),
            }
            kw.update(line_kw or {})
            (line,) = ax_iter.plot(x, _running_min(loss), **kw)
            self.lines_.append(line)
            on_top = best is not None and sid == search_id[best]
            self._clip(ax_iter, x, loss, colors[sid], self.history_lim_, on_top)
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
            xlabel="evaluation (outer_iter)",
            ylabel=self.loss_name,
            title="best CV loss so far",
        )

        # Right: the evaluated points over the searched hyperparameters.
        self.grid_line_ = self.contour_ = self.colorbar_ = None
        if vector:
            return self._plot_vector(ax_iter, ax_path, vector, best, best_kw)
        self._plot_grid(ax_path, params, grid_kw, contour_kw, colorbar, labels)
        self.path_lines_, self.coarse_markers_, self.incumbent_lines_ = [], [], []
        for k, sid in enumerate(self.path_search_ids_):
            rows = _rows(search_id, outer_iter, sid)
            coarse, gradient = rows[:0], rows
            if self.n_init is not None:
                coarse, gradient = rows[: self.n_init], rows[self.n_init :]
            label = labels[sid]
            if single and self.n_init is not None:
                label = "gradient phase"
            if len(params) == 1:
                label = _above(label, cv_loss[rows], self.loss_lim_)
            if len(coarse):
                (markers,) = ax_path.plot(
                    *self._xy(values, cv_loss, params, coarse),
                    marker="o",
                    markersize=7,
                    linestyle="none",
                    markerfacecolor="white",
                    markeredgewidth=1.5,
                    color=colors[sid],
                    label="coarse pass" if k == 0 else None,
                    zorder=3,
                )
                self.coarse_markers_.append(markers)
            kw = {
                "marker": "o",
                "markersize": 5,
                "linestyle": "none",
                "color": colors[sid],
                "markeredgecolor": "white",
                "markeredgewidth": 0.6,
                "zorder": 4,
                "label": label,
            }
            kw.update(path_kw or {})
            (line,) = ax_path.plot(*self._xy(values, cv_loss, params, gradient), **kw)
            self.path_lines_.append(line)
            if len(params) == 2:
                start = rows if not len(coarse) else _start(coarse, gradient, cv_loss)
                steps = start[_improvements(cv_loss[start])]
                (incumbent,) = ax_path.plot(
                    *self._xy(values, cv_loss, params, steps),
                    color=colors[sid],
                    linewidth=1.5,
                    # A white edge keeps the line visible over the contours.
                    path_effects=[
                        patheffects.withStroke(linewidth=3.5, foreground="white")
                    ],
                    zorder=3.5,
                    label="successive best points" if k == 0 else None,
                )
                self.incumbent_lines_.append(incumbent)
            else:
                x, loss = values[params[0]][rows], cv_loss[rows]
                on_top = best is not None and sid == search_id[best]
                self._clip(ax_path, x, loss, colors[sid], self.loss_lim_, on_top)

        kw = {
            "marker": "*",
            "markersize": 17,
            "color": "gold",
            "markeredgecolor": "black",
            "markeredgewidth": 1,
            "linestyle": "none",
            "label": "best_params_",
            # Under the points of the gradient phase, which end there.
            "zorder": 2.5,
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
            ax_path.set_title("evaluated points")
        else:
            ax_path.set_yscale(scales[params[1]])
            ax_path.set_ylabel(params[1])
            ax_path.set_title("evaluated points, and the way downhill")
        if self.history_lim_ is not None:
            ax_iter.set_ylim(*self.history_lim_)
        if self.loss_lim_ is not None and len(params) == 1:
            ax_path.set_ylim(*self.loss_lim_)
        for panel in {m.axes for m in self.clipped_markers_}:
            # One legend entry for every clipped point, in neutral grey.
            panel.plot(
                [],
                [],
                marker="^",
                linestyle="none",
                color="0.45",
                label="beyond the loss axis",
            )
        ax_iter.legend(fontsize="small")
        ax_path.legend(fontsize="small")
        return self

    def _plot_vector(self, ax_iter, ax_path, name, best, best_kw):
        """A vector of weights: its components at the best point, as stems."""
        self.path_lines_, self.coarse_markers_, self.incumbent_lines_ = [], [], []
        self.best_markers_ = []
        kw = {"marker": "*", "markersize": 17, "color": "gold"}
        kw.update(
            markeredgecolor="black", linestyle="none", label="best_params_", zorder=2.5
        )
        kw.update(best_kw or {})
        if best is not None:
            cv_loss = np.asarray(self.cv_results["cv_loss"], dtype=float)
            outer_iter = np.asarray(self.cv_results["outer_iter"])
            (marker,) = ax_iter.plot([outer_iter[best]], [cv_loss[best]], **kw)
            self.best_markers_.append(marker)
            weights = np.asarray(self.cv_results["params"][best][name], dtype=float)
            index = np.arange(len(weights))
            stems = ax_path.vlines(index, 0, weights, color="C0", linewidth=1.5)
            (heads,) = ax_path.plot(
                index, weights, "o", color="C0", markersize=4, label="at best_params_"
            )
            self.path_lines_.append(heads)
            self.stems_ = stems
            if (self.scales or {}).get(name) == "log" and np.all(weights > 0):
                ax_path.set_yscale("log")
                stems.set_segments(
                    [
                        [(i, weights.min() / 2), (i, w)]
                        for i, w in zip(index, weights, strict=True)
                    ]
                )
            if len(weights) <= 30:
                ax_path.set_xticks(index)
        ax_path.set(
            xlabel="component (column or group)",
            ylabel=name,
            title="the weights at the best point",
        )
        if self.history_lim_ is not None:
            ax_iter.set_ylim(*self.history_lim_)
        ax_iter.legend(fontsize="small")
        ax_path.legend(fontsize="small")
        return self

    def _clip(self, ax, x, loss, color, lim, on_top=False):
        """Draw the points beyond the loss axis on its edge, as triangles."""
        if lim is None:
            return
        low, high = lim
        for beyond, edge, marker in [
            (loss > high, 1.0, "^"),
            (loss < low, 0.0, "v"),
        ]:
            if not beyond.any():
                continue
            (markers,) = ax.plot(
                x[beyond],
                np.full(beyond.sum(), edge),
                # x in data coordinates, y on the edge of the axes.
                transform=ax.get_xaxis_transform(),
                marker=marker,
                markersize=7,
                linestyle="none",
                color=color,
                markeredgecolor="white",
                markeredgewidth=0.5,
                clip_on=False,
                # The best point's search over the others at the same place.
                zorder=5.5 if on_top else 5,
            )
            markers.points_ = np.c_[x[beyond], loss[beyond]]
            self.clipped_markers_.append(markers)

    def _loss_lims(
        self, loss_lim, params, scales, values, cv_loss, search_id, outer_iter, best
    ):
        """The limits of the left and right loss axes (None: matplotlib's)."""
        if loss_lim is None:
            return None, None
        if not isinstance(loss_lim, str):
            try:
                low, high = (float(v) for v in loss_lim)
            except (TypeError, ValueError):
                low = high = np.nan
            if not low < high:
                raise ValueError(
                    "loss_lim must be 'auto', None or (low, high) with low < "
                    f"high, got {loss_lim!r}."
                )
            return (low, high), (low, high)
        if loss_lim != "auto":
            raise ValueError(
                f"loss_lim must be 'auto', None or (low, high), got {loss_lim!r}."
            )
        finite = np.isfinite(cv_loss)
        if best is None or not finite.any():
            return None, None
        lowest = float(cv_loss[finite].min())
        rows = np.flatnonzero((search_id == search_id[best]) & finite)

        # Right: the points of the best point's search near it, on the search
        # scale of each hyperparameter (and, for two, the grid's).
        coords = [_to_search_scale(values[name][rows], scales[name]) for name in params]
        losses = cv_loss[rows]
        center = [_to_search_scale(values[name][best], scales[name]) for name in params]
        if (
            len(params) == 2
            and self.grid_loss is not None
            and self.grid_search_id in (None, search_id[best])
        ):
            grid = np.meshgrid(
                *(np.asarray(v, dtype=float) for v in self.grid_values),
                indexing="ij",
            )
            grid_loss = np.ravel(np.asarray(self.grid_loss, dtype=float))
            keep = np.isfinite(grid_loss)
            coords = [
                np.concatenate([c, _to_search_scale(g.ravel()[keep], scales[name])])
                for c, g, name in zip(coords, grid, params, strict=True)
            ]
            losses = np.concatenate([losses, grid_loss[keep]])
        near = np.ones(len(losses), dtype=bool)
        for c, z in zip(coords, center, strict=True):
            ok = np.isfinite(c)
            span = np.ptp(c[ok]) if ok.any() else 0.0
            near &= ok & (np.abs(c - z) <= _WINDOW * span)
        high = float(losses[near].max()) if near.any() else lowest
        if not high > lowest:
            high = float(losses.max())
        right = _with_margin(lowest, high)

        # Left: the best losses so far of that search, but for the first few.
        order = rows[np.argsort(outer_iter[rows], kind="stable")]
        running = _running_min(cv_loss[order])
        high = float(np.quantile(running, 0.9))
        left = _with_margin(lowest, high) if high > lowest else right
        return left, right

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
            kw = {
                "color": "0.6",
                "linewidth": 2,
                "zorder": 1,
                "label": f"CV loss on a grid{where}",
            }
            kw.update(grid_kw or {})
            (self.grid_line_,) = ax.plot(grid_values[0], grid_loss, **kw)
            return
        kw = {"levels": 20, "cmap": "Greys_r", "alpha": 0.7, "zorder": 0}
        if self.loss_lim_ is not None:
            low, high = self.loss_lim_
            finite = grid_loss[np.isfinite(grid_loss)]
            kw["levels"] = np.linspace(low, high, 21)
            beyond_high = len(finite) and finite.max() > high
            beyond_low = len(finite) and finite.min() < low
            kw["extend"] = {
                (True, True): "both",
                (True, False): "max",
                (False, True): "min",
            }.get((bool(beyond_high), bool(beyond_low)), "neither")
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
        loss_lim="auto",
    ):
        """Plot the progress of a fitted search and the points it evaluated.

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
            Axes for the best CV loss so far and for the evaluated points.
            ``None`` creates a figure with two side-by-side axes.

        line_kw, path_kw, best_kw, grid_kw, contour_kw : dict, default=None
            Keyword arguments for the artists; see :meth:`plot`.

        colorbar : bool, default=True
            Whether to add a colorbar to the contours.

        loss_lim : "auto", None or (float, float), default="auto"
            Limits of the loss axis; see :meth:`plot`. ``None`` shows every
            point.

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
        subspaces = getattr(search, "_subspaces", None)
        if subspaces is not None and not any(s.ranges for s in subspaces):
            raise ValueError(
                f"{cls.__name__} draws a search's continuous hyperparameters, and "
                "this search had no continuous hyperparameter: it was fitted and "
                "scored as GridSearchCV does, and its cv_results_ are GridSearchCV's."
            )
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
        if loss_grid is not None and _vector_param(results, params):
            raise ValueError(
                "loss_grid draws the CV loss over one or two hyperparameters; "
                f"{params[0]!r} is a vector of weights: leave loss_grid=None."
            )
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
            loss_lim=loss_lim,
        )


def plot_search(search, X=None, y=None, **kwargs):
    """Plot the progress of a fitted search and the points it evaluated.

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
        ``params``, ``loss_grid``, ``search_id``, ``loss_lim``, ``ax``, ...

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


def _running_min(loss):
    """The lowest finite loss so far at each evaluation (nan before the first)."""
    return np.fmin.accumulate(np.where(np.isfinite(loss), loss, np.nan))


def _start(coarse, gradient, cv_loss):
    """The rows of the gradient phase, after the best point of the coarse pass."""
    losses = np.nan_to_num(cv_loss[coarse], nan=np.inf)
    return np.concatenate([[coarse[np.argmin(losses)]], gradient]).astype(int)


def _improvements(loss):
    """Where the loss is lower than every loss before it."""
    loss = np.where(np.isfinite(loss), loss, np.inf)
    before = np.concatenate([[np.inf], np.minimum.accumulate(loss)[:-1]])
    return loss < before


def _above(label, loss, lim):
    """``label``, saying so when every point is above the axis ``lim``."""
    finite = loss[np.isfinite(loss)]
    if lim is None or not len(finite) or finite.min() <= lim[1]:
        return label
    return f"{label} (best {finite.min():.4g}, above the axis)"


def _with_margin(low, high):
    """Axis limits that show ``low`` and ``high`` with a little room."""
    if not high > low:
        # A flat loss: any scale that shows it.
        high = low + max(abs(low), 1.0) * 1e-3
    margin = _MARGIN * (high - low)
    return low - margin, high + margin


def _to_search_scale(values, scale):
    """Values on the scale they were searched on, where distances compare."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return to_search_scale(values, scale)


def _param_values(results, name):
    column = np.ma.asarray(results[f"param_{name}"])
    values = np.full(len(column), np.nan)
    ok = ~np.ma.getmaskarray(column)
    values[ok] = np.ma.getdata(column)[ok].astype(float)
    return values


def _searched_ids(results, name):
    """search_ids that searched ``name``: those with a hypergradient for it."""
    grads = np.asarray(results[f"hypergrad_{name}"], dtype=float)
    searched = ~np.isnan(grads).reshape(len(grads), -1).all(axis=1)
    return set(np.asarray(results["search_id"])[searched].tolist())


def _vector_param(results, params):
    """The vector (FeatureWeights' weights) in ``params``, or None.

    A vector is drawn alone: its weights at the best point, as stems.
    """
    vectors = [n for n in params if np.ndim(results.get(f"hypergrad_{n}", [])) == 2]
    if not vectors:
        return None
    if len(params) > 1:
        raise ValueError(
            f"{vectors[0]!r} is a vector of weights, drawn alone as its values "
            f"at the best point: pass params={vectors[0]!r}."
        )
    return vectors[0]


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

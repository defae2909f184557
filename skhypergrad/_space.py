"""The search space: which hyperparameters are searched continuously, and how.

A ``param_grid`` entry is *continuous* when its estimator declares the
hyperparameter differentiable and the entry describes a range: a tuple
``(low, high)``, a frozen ``scipy.stats.uniform`` / ``loguniform``
distribution (its support), or a list, array or ``range`` of two or more
numbers (its range is ``[min, max]``, and the coarse pass evaluates the
listed values exactly). Every other entry is enumerated exactly as
:class:`~sklearn.model_selection.GridSearchCV` would; a point with no
continuous entry is fitted and scored by scikit-learn, as GridSearchCV does.

The outer optimizer works in an unconstrained space: a positive scale
parameter (``alpha``, ``C``) is searched as its logarithm, so that equal
steps are equal ratios and the value stays positive; a value in (0, 1)
(``beta_1``) is searched as its logit, so that it never reaches 0 or 1.

The ``weights`` of a :class:`~skhypergrad.FeatureWeights` step just before a
Ridge, a LogisticRegression or an MLP are a *vector* range: a tuple, a list of two
numbers or a distribution gives the range of every weight, each searched on
a log scale. The number of weights (the groups, or the columns the step
receives) is known once the preprocessing is fitted on the first split: the
subspace is then :meth:`Subspace.sized`.
"""

import numbers
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import expit, logit
from sklearn.base import clone
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state

from ._feature_weights import FeatureWeights
from ._models import find_model, supported_hyperparameters
from ._models._weighted import supports_feature_weights
from ._sklearn_compat import validate_estimator_params

__all__ = [
    "ContinuousRange",
    "Subspace",
    "expand_param_grid",
    "feature_weights_step",
    "from_search_scale",
    "search_scale_derivative",
    "split_pipeline",
    "to_search_scale",
    "with_params",
]

_DISTRIBUTIONS = {"uniform", "loguniform", "reciprocal"}


def to_search_scale(value, scale):
    """``value`` on its search scale: its log, its logit, or itself."""
    value = np.asarray(value, dtype=float)
    if scale == "log":
        return np.log(value)
    if scale == "logit":
        return logit(value)
    return value


def from_search_scale(z, scale):
    """The value whose search coordinate is ``z``: the inverse of the above."""
    if scale == "log":
        return np.exp(z)
    if scale == "logit":
        return expit(z)
    return np.asarray(z, dtype=float)


def search_scale_derivative(value, scale):
    """``d value / d z`` at ``value``: carries a hypergradient to the scale."""
    if scale == "log":
        return value
    if scale == "logit":
        return value * (1 - value)
    return np.ones_like(value)


@dataclass(frozen=True)
class ContinuousRange:
    """A hyperparameter searched continuously over ``[low, high]``.

    Parameters
    ----------
    name : str
        The full parameter name, as given in ``param_grid``.
    low, high : float
        The range, in the parameter's own units.
    scale : {"log", "logit", "linear"}
        How the range is mapped to the unconstrained search space.
    values : tuple of float, default=None
        The values a list gave, in its order, each once: the coarse pass
        evaluates them exactly, as a grid would. None for a tuple or a
        distribution.
    vector : bool, default=False
        Whether the hyperparameter is a vector (FeatureWeights' weights),
        every component searched in ``[low, high]``.
    size : int, default=1
        The number of components: 1 for a scalar; for a vector, 0 until the
        subspace is :meth:`Subspace.sized`.
    """

    name: str
    low: float
    high: float
    scale: str
    values: tuple = None
    vector: bool = False
    size: int = 1

    def to_unconstrained(self, value):
        return to_search_scale(value, self.scale)

    def from_unconstrained(self, z):
        value = from_search_scale(z, self.scale)
        # exp(log(high)) may round away from high: the ends of the search
        # space are the ends of the range, and the listed values the values,
        # exactly.
        low_z, high_z = self.bounds
        z = np.asarray(z)
        value = np.where(z <= low_z, self.low, value)
        value = np.where(z >= high_z, self.high, value)
        if self.values is not None:
            for listed, listed_z in zip(self.values, self.values_z, strict=True):
                value = np.where(z == listed_z, listed, value)
        return np.clip(value, self.low, self.high)

    @property
    def values_z(self):
        """The listed values in the unconstrained space, or None."""
        if self.values is None:
            return None
        return self.to_unconstrained(self.values)

    def derivative(self, z):
        """d value / d z, to carry a hypergradient into the search space."""
        return search_scale_derivative(self.from_unconstrained(z), self.scale)

    @property
    def bounds(self):
        """The range in the unconstrained space."""
        return tuple(float(b) for b in self.to_unconstrained([self.low, self.high]))


@dataclass(frozen=True)
class Subspace:
    """One point of the discrete grid and the continuous ranges searched there.

    Parameters
    ----------
    fixed : dict
        The discrete hyperparameters' values.
    ranges : tuple of ContinuousRange
        The continuous hyperparameters, in the order of the search space's
        axes.
    """

    fixed: dict
    ranges: tuple

    @property
    def names(self):
        return [r.name for r in self.ranges]

    @property
    def has_vectors(self):
        """Whether a range is a vector (the optimizer for many dimensions)."""
        return any(r.vector for r in self.ranges)

    def sized(self, sizes):
        """This subspace with the vector ranges' sizes, ``{name: size}``."""
        ranges = tuple(
            replace(r, size=int(sizes[r.name])) if r.vector else r for r in self.ranges
        )
        return replace(self, ranges=ranges)

    @property
    def tied(self):
        """The coordinate of the diagonal each dimension follows (one per range)."""
        return np.repeat(np.arange(len(self.ranges)), [r.size for r in self.ranges])

    @property
    def slices(self):
        """The coordinates of each range in the search space, as slices."""
        ends = np.cumsum([0, *(r.size for r in self.ranges)])
        return [slice(a, b) for a, b in zip(ends[:-1], ends[1:], strict=True)]

    @property
    def values_z(self):
        """The listed values of each range in the search space (or None)."""
        return [r.values_z for r in self.ranges]

    @property
    def grid_order(self):
        """The axes by name: the order in which ParameterGrid enumerates them."""
        return sorted(range(len(self.ranges)), key=lambda d: self.ranges[d].name)

    def n_coarse(self, n_init):
        """How many points the coarse pass evaluates (see ``coarse_design``)."""
        if not self.ranges:
            return 1
        listed = [len(r.values) for r in self.ranges if r.values is not None]
        free = len(listed) < len(self.ranges)
        return int(np.prod(listed)) * (n_init if free else 1)

    @property
    def bounds(self):
        """Lower and upper bounds of the search space, as two arrays."""
        lower, upper = zip(*(r.bounds for r in self.ranges), strict=True)
        sizes = [r.size for r in self.ranges]
        return np.repeat(lower, sizes), np.repeat(upper, sizes)

    def to_point(self, z):
        """The continuous hyperparameters at ``z``, in their own units.

        A vector range's value is an array.
        """
        z = np.asarray(z, dtype=float)
        return {
            r.name: r.from_unconstrained(z[part]).astype(float)
            if r.vector
            else float(r.from_unconstrained(z[part][0]))
            for r, part in zip(self.ranges, self.slices, strict=True)
        }

    def gradient_in_z(self, grads, z):
        """Carry a hypergradient in the parameters' units to the search space."""
        z = np.asarray(z, dtype=float)
        return np.concatenate(
            [
                np.ravel(np.asarray(grads[r.name], dtype=float) * r.derivative(z[part]))
                for r, part in zip(self.ranges, self.slices, strict=True)
            ]
        )


def split_pipeline(estimator):
    """Return ``(preprocessing, final_estimator, prefix)``.

    ``preprocessing`` is the pipeline of all steps but the last, or ``None``
    for a bare estimator; ``prefix`` is what the final estimator's parameter
    names carry in the pipeline (``"ridge__"``).
    """
    if not isinstance(estimator, Pipeline):
        return None, estimator, ""
    name, final = estimator.steps[-1]
    if isinstance(final, Pipeline):
        raise ValueError(
            "HypergradSearchCV differentiates the last step of a Pipeline, and "
            f"that step ({name!r}) is itself a Pipeline. Flatten the pipeline "
            "so that its last step is the model."
        )
    preprocessing = estimator[:-1] if len(estimator.steps) > 1 else None
    return preprocessing, final, f"{name}__"


def feature_weights_step(estimator):
    """``(name, step)`` of a FeatureWeights just before the last step, or None."""
    if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2:
        return None
    name, step = estimator.steps[-2]
    return (name, step) if isinstance(step, FeatureWeights) else None


def _weights_names(estimator):
    """The ``<step>__weights`` names of every FeatureWeights step of a pipeline."""
    if not isinstance(estimator, Pipeline):
        return set()
    return {
        f"{name}__weights"
        for name, step in estimator.steps
        if isinstance(step, FeatureWeights)
    }


def _refuse_weights(name, estimator):
    """A range for the weights of a FeatureWeights step that cannot be searched."""
    _, final, _ = split_pipeline(estimator)
    step = name[: -len("__weights")]
    where = (
        f"it comes before {type(final).__name__}, whose feature weights "
        "HypergradSearchCV cannot differentiate (only Ridge, "
        "LogisticRegression, MLPRegressor and MLPClassifier)"
        if (feature_weights_step(estimator) or ("",))[0] == step
        else "it is not the step just before the final estimator"
    )
    raise ValueError(
        f"Parameter {name!r} is given a range, but the FeatureWeights step "
        f"{step!r} can be searched only just before a Ridge, a "
        f"LogisticRegression or an MLP, and {where}. Move the step, or pass a list of "
        "weights to enumerate them as GridSearchCV does."
    )


def _is_range_like(value):
    """A list, 1-D array or ``range`` of two or more numbers."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and len(value) >= 2 and value.dtype.kind in "iuf"
    if isinstance(value, (list, range)):
        return len(value) >= 2 and all(_is_number(v) for v in value)
    return False


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_float(value):
    """``float(value)``, or inf for an integer too large for a float."""
    try:
        return float(value)
    except OverflowError:
        return np.inf


def _is_distribution(value):
    return hasattr(value, "rvs") and hasattr(value, "support")


def _parse_range(name, value, scale, vector=False):
    if vector and not (isinstance(value, tuple) or _is_distribution(value)):
        if len(value) != 2:
            raise ValueError(
                f"Parameter {name!r} is a vector of feature weights: give the "
                "range of every weight as (low, high), a list of two numbers or "
                f"a distribution, got a list of {len(value)} values, which "
                "cannot be enumerated in many dimensions."
            )
        value = tuple(sorted(_as_float(v) for v in value))
    if _is_distribution(value):
        dist_name = getattr(getattr(value, "dist", None), "name", type(value).__name__)
        if dist_name not in _DISTRIBUTIONS:
            raise ValueError(
                f"Parameter {name!r}: only frozen scipy.stats uniform and "
                f"loguniform distributions define a search range, got {dist_name}."
            )
        low, high = (float(b) for b in value.support())
        listed = None
    else:
        values = list(np.ravel(value)) if not isinstance(value, tuple) else list(value)
        if isinstance(value, tuple) and len(values) != 2:
            raise ValueError(
                f"Parameter {name!r}: a tuple range must be (low, high), got {value!r}."
            )
        if not all(_is_number(v) for v in values):
            raise ValueError(
                f"Parameter {name!r}: range bounds must be real numbers, got {value!r}."
            )
        values = [_as_float(v) for v in values]
        if not all(np.isfinite(values)):
            what = "range bounds" if isinstance(value, tuple) else "values"
            raise ValueError(
                f"Parameter {name!r}: {what} must be finite numbers, got {value!r}."
            )
        low, high = min(values), max(values)
        if isinstance(value, tuple) and values[0] > values[1]:
            raise ValueError(
                f"Parameter {name!r}: the range {value!r} is reversed; pass "
                "(low, high) with low < high."
            )
        # In the user's order, as GridSearchCV evaluates them; each once.
        listed = None if isinstance(value, tuple) else tuple(dict.fromkeys(values))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(
            f"Parameter {name!r}: range bounds must be finite, got [{low}, {high}]."
        )
    if not low < high:
        raise ValueError(
            f"Parameter {name!r}: the range [{low}, {high}] is empty; pass "
            "low < high, or a one-element list to fix the value."
        )
    if scale == "log" and low <= 0:
        raise ValueError(
            f"Parameter {name!r} is searched on a log scale, so its range must "
            f"be positive; got [{low}, {high}]. Use a positive lower bound "
            "such as 1e-6."
        )
    if scale == "logit" and not (0 < low and high < 1):
        raise ValueError(
            f"Parameter {name!r} is a value in (0, 1) searched on a logit "
            f"scale; its range must lie strictly inside (0, 1), got "
            f"[{low}, {high}]."
        )
    if vector:
        return ContinuousRange(name, low, high, scale, vector=True, size=0)
    return ContinuousRange(name, low, high, scale, listed)


def with_params(estimator, params):
    """A clone of ``estimator`` with ``params`` set (cloned too, as GridSearchCV).

    ``set_params`` is not called without parameters: some estimators (the
    mock classifiers of scikit-learn's tests) require theirs.
    """
    estimator = clone(estimator)
    return estimator.set_params(**clone(params, safe=False)) if params else estimator


def _model_at(estimator, point):
    """``(final estimator, prefix, model or None)`` of ``estimator`` at ``point``."""
    candidate = with_params(estimator, point)
    _, final, prefix = split_pipeline(candidate)
    return final, prefix, find_model(final)


def _refuse_unused(name, final, point, usable):
    """A range for a hyperparameter the settings at ``point`` do not use."""
    settings = ", ".join(f"{k}={v!r}" for k, v in point.items())
    raise ValueError(
        f"Parameter {name!r} is given a range, but {type(final).__name__} does "
        "not use it" + (f" at {settings}" if settings else "") + "; the "
        f"hyperparameters it differentiates there are {sorted(usable)}. To "
        "search settings that use different hyperparameters, pass a list of "
        "dicts, one per setting, e.g. [{'solver': ['sgd'], 'momentum': (0.5, "
        "0.99)}, {'solver': ['adam'], 'beta_1': (0.5, 0.99)}]."
    )


def _checked(estimator, point, rng):
    """The discrete point of a continuous search, checked and seeded.

    A stochastic model whose ``random_state`` is None at ``point`` would draw
    new weights at every fit: the CV loss would have no gradient. It gets a
    seed drawn from the search's random stream, kept in the point's params.
    Raises ValueError for settings the model does not support.
    """
    final, prefix, model = _model_at(estimator, point)
    if model.stochastic and final.get_params().get("random_state") is None:
        seed = int(rng.randint(np.iinfo(np.int32).max))
        point = {**point, prefix + "random_state": seed}
        final.set_params(random_state=seed)
    model.check_estimator(final)
    return point


def expand_param_grid(estimator, param_grid, random_state=None):
    """Split ``param_grid`` into the subspaces to search, validating it all.

    Every point of the discrete grid is checked (parameter names, supported
    model, ranges, the estimator's parameters) before any work starts. A
    point with no continuous range (an estimator without a differentiable
    model, or discrete values only) is a subspace without ranges: it is
    fitted and scored as GridSearchCV does. The points of each dict come in
    ``ParameterGrid``'s order.

    Parameters
    ----------
    estimator : estimator instance
    param_grid : dict or list of dicts
    random_state : int, RandomState instance or None, default=None
        Draws the seeds of stochastic models whose ``random_state`` is None.

    Returns
    -------
    subspaces : list of Subspace
    """
    if isinstance(param_grid, dict):
        param_grid = [param_grid]
    if not isinstance(param_grid, list) or not param_grid:
        raise TypeError(
            f"param_grid must be a non-empty dict or list of dicts, got {param_grid!r}."
        )
    rng = check_random_state(random_state)
    subspaces = []
    for grid in param_grid:
        if not isinstance(grid, dict):
            raise TypeError(f"param_grid entries must be dicts, got {grid!r}.")
        subspaces.extend(_expand_dict(estimator, grid, rng))
    return subspaces


def _expand_dict(estimator, grid, rng):
    """The subspaces of one dict of ``param_grid``, in ParameterGrid's order."""
    explicit = {
        k: v for k, v in grid.items() if isinstance(v, tuple) or _is_distribution(v)
    }
    numbers = {k: v for k, v in grid.items() if k not in explicit and _is_range_like(v)}
    # Entries that cannot be ranges: they decide the model and its settings.
    settings = {k: v for k, v in grid.items() if k not in explicit and k not in numbers}
    found = [
        item
        for fixed in ParameterGrid(settings or [{}])
        for item in _points_at(estimator, fixed, explicit, numbers)
    ]
    if not any(continuous for _, continuous, _ in found):
        return _enumerated(estimator, grid)
    discrete = {k: v for k, v in grid.items() if not any(k in c for _, c, _ in found)}
    order = list(ParameterGrid(discrete or [{}]))
    found.sort(key=lambda item: _position(item[0], order))
    return [
        subspace
        for point, continuous, usable in found
        for subspace in _subspaces_at(estimator, point, continuous, usable, rng)
    ]


def _points_at(estimator, fixed, explicit, numbers):
    """The discrete points at the settings ``fixed``, with their continuous entries.

    Returns a list of ``(point, continuous entries, usable scales)``: the
    lists of numbers for the differentiable hyperparameters the settings use
    are ranges, those of other parameters candidates to enumerate.
    """
    final, prefix, model = _model_at(estimator, fixed)
    usable = (
        {prefix + n: scale for n, scale in model.hyperparameters_for(final).items()}
        if model is not None
        else {}
    )
    declared = {prefix + n for n in model.hyperparameters} if model else set()
    at_fixed = with_params(estimator, fixed)
    step = feature_weights_step(at_fixed)
    if step is not None and model is not None and supports_feature_weights(final):
        # A vector of weights, each a positive scale: searched as its log.
        usable[f"{step[0]}__weights"] = "log"
    for name, value in explicit.items():
        if name in _weights_names(at_fixed) and name not in usable:
            _refuse_weights(name, at_fixed)
        if name in declared and name not in usable:
            _refuse_unused(name, final, fixed, usable)
        if name not in usable:
            _as_candidates(at_fixed, name, value, usable)  # refuses
    continuous = {k: v for k, v in {**numbers, **explicit}.items() if k in usable}
    candidates = {
        k: _as_candidates(at_fixed, k, v, usable)
        for k, v in numbers.items()
        if k not in usable
    }
    return [
        ({**fixed, **extra}, continuous, usable)
        for extra in ParameterGrid(candidates or [{}])
    ]


def _subspaces_at(estimator, point, continuous, usable, rng):
    """The subspaces of one discrete point: one search, or grid points."""
    if not continuous:
        # Only discrete values here: fitted by scikit-learn, as GridSearchCV
        # fits it, whatever the model supports.
        return [Subspace(point, ())]
    try:
        point = _checked(estimator, point, rng)
    except ValueError:
        if any(
            isinstance(v, tuple) or _is_distribution(v) for v in continuous.values()
        ):
            raise
        # Settings the model cannot differentiate (an L1 penalty) and lists
        # only: their values are fitted by scikit-learn, as GridSearchCV fits
        # them.
        here = {**{k: [v] for k, v in point.items()}, **continuous}
        return [Subspace(p, ()) for p in ParameterGrid(here)]
    vectors = _weights_names(estimator)
    ranges = tuple(
        _parse_range(k, v, usable[k], vector=k in vectors)
        for k, v in continuous.items()
    )
    candidate = clone(estimator).set_params(
        **clone(point, safe=False), **{r.name: r.low for r in ranges}
    )
    # Invalid values fail here, in scikit-learn's words, and not in every
    # fold; without ranges, scikit-learn's fit fails them, as in GridSearchCV.
    validate_estimator_params(split_pipeline(candidate)[1])
    return [Subspace(point, ranges)]


def _position(point, order):
    """The index of ``point`` in the list of dicts ``order``."""
    for index, other in enumerate(order):
        if point.keys() == other.keys() and all(
            point[k] is other[k] or _equal(point[k], other[k]) for k in point
        ):
            return index
    return len(order)


def _equal(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _enumerated(estimator, grid):
    """The points of ``grid`` with no continuous range, as ParameterGrid's."""
    points = list(ParameterGrid(grid))
    for point in points:
        # Let scikit-learn name any unknown parameter, in its words.
        with_params(estimator, point)
    return [Subspace(point, ()) for point in points]


def _as_candidates(estimator, name, value, scales):
    """The values of a parameter that has no hypergradient, to enumerate."""
    if _is_distribution(value) or isinstance(value, tuple):
        if name not in estimator.get_params(deep=True):
            # Let scikit-learn name the unknown parameter, in its words.
            clone(estimator).set_params(**{name: None})
        _, final, _ = split_pipeline(estimator)
        where = (
            f"{type(final).__name__} has no differentiable model"
            if find_model(final) is None
            else f"it is not a continuous hyperparameter of {type(final).__name__} "
            f"(those searched here: {sorted(scales)})"
        )
        form = "distribution" if _is_distribution(value) else "tuple"
        raise ValueError(
            f"Parameter {name!r} is given a range ({form} {value!r}), but {where}, "
            "so HypergradSearchCV searches it as GridSearchCV does: pass a list "
            f"of values to enumerate, such as {name!r}: [...]. Continuous "
            f"hyperparameters: {supported_hyperparameters()}."
        )
    return list(np.ravel(value)) if isinstance(value, np.ndarray) else list(value)

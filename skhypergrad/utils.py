"""Tools for writing a differentiable model.

:func:`check_differentiable_model` checks a new
:class:`~skhypergrad.DifferentiableModel` against finite differences and
against scikit-learn, the way autograd's ``check_grads`` checks a gradient
and scikit-learn's ``check_estimator`` checks an estimator.
"""

import numbers
import pickle

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.utils import check_array, check_consistent_length, check_X_y
from sklearn.utils.validation import check_is_fitted

from ._models import DifferentiableModel, FoldData
from ._sklearn_compat import HasMethods, Interval, validate_params
from ._space import from_search_scale, search_scale_derivative, to_search_scale

__all__ = ["check_differentiable_model"]

# The methods whose outputs the fitted estimator must share with the reference.
_PREDICT_METHODS = ("predict", "predict_proba", "decision_function")
# How far from the point the statelessness check solves, on the search scale.
_FAR = 0.5


def _to_search_scale(value, scale):
    return float(to_search_scale(value, scale))


def _from_search_scale(z, scale):
    return float(from_search_scale(z, scale))


def _derivative_of_value(value, scale):
    """``d value / d z`` for the search coordinate ``z`` of ``value``."""
    return float(search_scale_derivative(value, scale))


def _number(value):
    return f"{value:.12g}" if isinstance(value, numbers.Real) else repr(value)


class _Checker:
    """The checks of one split; every failure names the check and the split."""

    def __init__(self, model, estimator, data, params, scales, split, tolerances):
        self.model = model
        self.estimator = estimator
        self.data = data
        self.params = params
        self.names = list(params)
        self.scales = scales
        self.split = split
        (
            self.rtol,
            self.atol,
            self.step,
            self.loss_rtol,
            self.estimator_rtol,
            self.estimator_atol,
        ) = tolerances

    # --- Reporting ---------------------------------------------------------

    def fail(self, check, message):
        raise AssertionError(
            f"check_differentiable_model: the {check!r} check failed on split "
            f"{self.split} at {self.params}: {message}"
        )

    def compare(self, check, what, value, expected, tolerance, hint=""):
        difference = abs(value - expected)
        if not difference <= tolerance:
            self.fail(
                check,
                f"{what}: value {_number(value)}, expected {_number(expected)}, "
                f"difference {difference:.3g}, tolerance {tolerance:.3g}."
                + (f" {hint}" if hint else ""),
            )

    def compare_loss(self, check, what, solution, expected, hint=""):
        self.compare(
            check,
            what,
            float(solution.loss),
            expected,
            self.loss_rtol * abs(expected),
            hint,
        )

    def in_search_scale(self, grads):
        """Derivatives in the search coordinates, where ``atol`` is defined."""
        return {
            name: grads[name]
            * _derivative_of_value(self.params[name], self.scales[name])
            for name in self.names
        }

    def hypergradient(self, check, solution):
        grads = solution.hypergradient(list(self.names))
        if not isinstance(grads, dict) or set(grads) != set(self.names):
            self.fail(
                check,
                f"hypergradient({self.names}) returned {grads!r}; expected a "
                f"dict with the keys {self.names}.",
            )
        return self.in_search_scale({name: float(grads[name]) for name in grads})

    def compare_hypergradients(self, check, what, grads, expected, hint=""):
        for name in self.names:
            self.compare(
                check,
                f"{what}, d loss / d {self.scales[name]}({name})",
                grads[name],
                expected[name],
                self.rtol * abs(expected[name]) + self.floor(self.step),
                hint,
            )

    def floor(self, step):
        """Absolute part of a hypergradient tolerance (see ``atol``)."""
        return (self.atol + self.loss_rtol / step) * abs(self.loss)

    def compare_outputs(self, check, what, outputs, expected, rtol, atol, hint=""):
        for method, reference in expected.items():
            value = outputs.get(method)
            if value is None:
                self.fail(check, f"{what} has no {method}, the reference has.")
            value, reference = np.asarray(value), np.asarray(reference)
            if value.shape != reference.shape:
                self.fail(
                    check,
                    f"{what}.{method}(X_val) has the shape {value.shape}, "
                    f"expected {reference.shape}.",
                )
            if not np.issubdtype(reference.dtype, np.number):
                different = np.flatnonzero(np.ravel(value != reference))
                if len(different):
                    i = different[0]
                    self.fail(
                        check,
                        f"{what}.{method}(X_val) differs at {len(different)} "
                        f"samples; first at flat index {i}: value "
                        f"{np.ravel(value)[i]!r}, expected {np.ravel(reference)[i]!r}."
                        + (f" {hint}" if hint else ""),
                    )
                continue
            differences = np.abs(value - reference)
            i = int(np.argmax(differences)) if differences.size else 0
            tolerance = rtol * np.max(np.abs(reference), initial=0.0) + atol
            if differences.size and not differences.flat[i] <= tolerance:
                self.compare(
                    check,
                    f"{what}.{method}(X_val) at flat index {i} (the largest "
                    "difference)",
                    float(value.flat[i]),
                    float(reference.flat[i]),
                    tolerance,
                    hint,
                )

    # --- The checks --------------------------------------------------------

    def fresh_fold(self):
        return self.model.fold(self.estimator, self.data)

    def solve(self, fold, point, differentiate=False):
        return fold.solve(dict(point), differentiate=differentiate)

    def run(self):
        self.own = _own_values(self.estimator, self.scales)
        before = self.estimator.get_params(deep=False)
        for check in (
            self.check_solution,
            self.check_loss_only_solve,
            self.check_stateless,
            self.check_default_params,
            self.check_fitted_estimator,
            self.check_hypergradient,
            self.check_pickle,
        ):
            check()
            after = self.estimator.get_params(deep=False)
            changed = sorted(k for k in before if not _same(after.get(k), before[k]))
            if changed:
                self.fail(
                    "estimator not modified",
                    f"during the {check.__name__[len('check_') :]!r} checks, "
                    f"model.fold or the fold changed the estimator's {changed}: "
                    f"{ {k: before[k] for k in changed} } became "
                    f"{ {k: after.get(k) for k in changed} }. Work on a clone.",
                )

    def check_solution(self):
        """A fresh fold solved once, for its loss and hypergradient."""
        solution = self.solve(self.fresh_fold(), self.params, differentiate=True)
        self.loss = float(solution.loss)
        if not np.isfinite(self.loss):
            self.fail("solution", f"the validation loss is {self.loss}.")
        for name, value in self.params.items():
            given = getattr(solution, "params", {}).get(name)
            if given is None or float(given) != value:
                self.fail(
                    "solution",
                    f"solution.params[{name!r}] is {given!r}, expected {value!r}.",
                )
        self.grads = self.hypergradient("solution", solution)
        for name, value in self.grads.items():
            if not np.isfinite(value):
                self.fail("solution", f"the hypergradient of {name!r} is {value}.")
        self.fitted = solution.fitted_estimator()
        self.outputs = _outputs(self.fitted, self.data.X_val)

    def check_loss_only_solve(self):
        """``solve(params)`` has the loss of ``solve(params, differentiate=True)``."""
        self.fold = self.fresh_fold()
        self.first = self.solve(self.fold, self.params)
        self.compare_loss(
            "loss-only solve",
            "solve(params).loss on a new fold",
            self.first,
            self.loss,
            "It must equal solve(params, differentiate=True).loss on another "
            "new fold: differentiate may only keep more of the training, and a "
            "fold's random draws must come from the estimator's random_state.",
        )

    def check_stateless(self):
        """Solving elsewhere changes neither a solution nor the next solve."""
        far = {
            name: _from_search_scale(
                _to_search_scale(value, self.scales[name]) + _FAR, self.scales[name]
            )
            for name, value in {**self.own, **self.params}.items()
        }
        self.solve(self.fold, far)
        hint = (
            f"The fold had been solved at {far} in between: a solution may depend "
            "only on its fold and its point, not on the fold's later solves."
        )
        grads = self.hypergradient("stateless", self.first)
        self.compare_hypergradients(
            "stateless",
            "the first solution's hypergradient, asked after another solve",
            grads,
            self.grads,
            hint,
        )
        self.compare_outputs(
            "stateless",
            "the first solution's fitted_estimator(), built after another solve,",
            _outputs(self.first.fitted_estimator(), self.data.X_val),
            self.outputs,
            self.loss_rtol,
            0.0,
            hint,
        )
        self.compare_loss(
            "stateless",
            "solve(params).loss after another solve",
            self.solve(self.fold, self.params),
            self.loss,
            hint,
        )

    def check_default_params(self):
        """``solve({})`` solves at the estimator's own values."""
        own = self.own
        default = self.solve(self.fold, {})
        self.compare_loss(
            "default params",
            "solve({}).loss",
            default,
            float(self.solve(self.fold, own).loss),
            f"solve({{}}) must solve at the estimator's own values {own}.",
        )
        grads = default.hypergradient([])
        if grads != {}:
            self.fail(
                "default params", f"solve({{}}).hypergradient([]) returned {grads!r}."
            )

    def check_fitted_estimator(self):
        """``fitted_estimator()`` predicts as scikit-learn's ``fit`` at the point."""
        fitted = self.fitted
        if type(fitted) is not type(self.estimator):
            self.fail(
                "fitted_estimator",
                f"fitted_estimator() returned a {type(fitted).__name__}, expected "
                f"a {type(self.estimator).__name__}.",
            )
        fitted_params = fitted.get_params(deep=False)
        for name, value in self.params.items():
            if float(fitted_params[name]) != value:
                self.fail(
                    "fitted_estimator",
                    f"fitted_estimator().{name} is {fitted_params[name]!r}, "
                    f"expected {value!r}.",
                )
        check_is_fitted(fitted)
        data = self.data
        fit_params = {}
        if data.sample_weight is not None:
            fit_params["sample_weight"] = data.sample_weight
        reference = (
            clone(self.estimator)
            .set_params(**self.params)
            .fit(data.X_train, data.y_train, **fit_params)
        )
        self.compare_outputs(
            "fitted_estimator",
            "fitted_estimator()",
            self.outputs,
            _outputs(reference, data.X_val),
            self.estimator_rtol,
            self.estimator_atol,
            "The reference is clone(estimator).set_params(**params).fit(X_train, "
            "y_train): give the estimator a tight tol, or loosen "
            "estimator_rtol / estimator_atol.",
        )

    def check_hypergradient(self):
        """The hypergradient against central differences on the search scale.

        A step that straddles a kink of the loss (a ReLU unit switching on a
        training sample) spoils a central difference: when the first step
        fails, a step ten times smaller is tried before failing.
        """
        for name in self.names:
            tries = []
            for step in (self.step, self.step / 10):
                expected, one_sided = self.central_difference(name, step)
                tolerance = self.rtol * abs(expected) + self.floor(step)
                tries.append((step, expected, tolerance, one_sided))
                if abs(self.grads[name] - expected) <= tolerance:
                    break
            else:
                scale = self.scales[name]
                (step, expected, tolerance, one_sided), retry = tries
                self.compare(
                    "hypergradient",
                    f"d loss / d {scale}({name})",
                    self.grads[name],
                    expected,
                    tolerance,
                    f"Expected is the central difference with step {step} on "
                    f"the {scale} scale (one-sided: {one_sided[0]:.9g} and "
                    f"{one_sided[1]:.9g}); with step {retry[0]:g} it is "
                    f"{retry[1]:.9g} (tolerance {retry[2]:.3g}). Tolerance = "
                    "rtol * |expected| + (atol + loss_rtol / step) * |loss| "
                    f"with rtol={self.rtol}, atol={self.atol}, "
                    f"loss_rtol={self.loss_rtol}, loss={self.loss:.9g}.",
                )

    def central_difference(self, name, step):
        """The central and the two one-sided differences of the loss."""
        scale = self.scales[name]
        z = _to_search_scale(self.params[name], scale)
        losses = []
        for zi in (z + step, z - step):
            point = {**self.params, name: _from_search_scale(zi, scale)}
            losses.append(float(self.solve(self.fold, point).loss))
        if not np.all(np.isfinite(losses)):
            self.fail(
                "hypergradient",
                f"the loss is {losses} at {scale}({name}) +- {step}; pass a "
                "smaller step.",
            )
        upper, lower = losses
        return (upper - lower) / (2 * step), (
            (upper - self.loss) / step,
            (self.loss - lower) / step,
        )

    def check_pickle(self):
        """A fold and a solution live on in another process."""
        solution = self.solve(self.fold, self.params)
        try:
            fold, solution = pickle.loads(pickle.dumps((self.fold, solution)))
        except Exception as e:  # noqa: BLE001 - any failure to round-trip
            self.fail(
                "pickle",
                f"the fold and its solution do not pickle: {type(e).__name__}: {e}",
            )
        self.compare_loss(
            "pickle", "the unpickled solution's loss", solution, self.loss
        )
        self.compare_hypergradients(
            "pickle",
            "the unpickled solution's hypergradient (asked after unpickling)",
            self.hypergradient("pickle", solution),
            self.grads,
        )
        self.compare_loss(
            "pickle",
            "the unpickled fold's solve(params).loss",
            self.solve(fold, self.params),
            self.loss,
        )


def _outputs(estimator, X):
    """The outputs on ``X`` of the prediction methods ``estimator`` has."""
    return {
        method: getattr(estimator, method)(X)
        for method in _PREDICT_METHODS
        if hasattr(estimator, method)
    }


def _same(a, b):
    """Whether a parameter of the estimator is unchanged (same object or value)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and other ambiguous comparisons
        return False


def _own_values(estimator, scales):
    """The estimator's own values of the hyperparameters that are numbers.

    A hyperparameter whose default is a rule (``gamma=None``) is left out.
    """
    params = estimator.get_params(deep=False)
    return {
        name: float(params[name])
        for name in scales
        if isinstance(params[name], numbers.Real) and not isinstance(params[name], bool)
    }


def _check_params(model, estimator, params):
    """The point's values as floats, or ValueError in the search's words."""
    scales = model.hyperparameters_for(estimator)
    checked = {}
    for name, value in params.items():
        if name not in scales:
            raise ValueError(
                f"{name!r} is not a continuous hyperparameter of "
                f"{type(estimator).__name__} with its settings. "
                f"{type(model).__name__}().hyperparameters_for(estimator) gives "
                f"{sorted(scales)}."
            )
        if not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"{name!r} must be a finite real number, got {value!r}.")
        scale = scales[name]
        if scale == "log" and not value > 0:
            raise ValueError(
                f"{name!r} is searched on a log scale, so it must be positive; "
                f"got {value!r}."
            )
        if scale == "logit" and not 0 < value < 1:
            raise ValueError(
                f"{name!r} is searched on a logit scale, so it must lie strictly "
                f"inside (0, 1); got {value!r}."
            )
        checked[name] = float(value)
    return checked, scales


@validate_params(
    {
        "model": [DifferentiableModel],
        "estimator": [HasMethods(["fit", "get_params"])],
        "X": ["array-like"],
        "y": ["array-like"],
        "params": [dict],
        "cv": ["cv_object"],
        "sample_weight": ["array-like", None],
        "rtol": [Interval(numbers.Real, 0, None, closed="left")],
        "atol": [Interval(numbers.Real, 0, None, closed="left")],
        "step": [Interval(numbers.Real, 0, None, closed="neither")],
        "loss_rtol": [Interval(numbers.Real, 0, None, closed="left")],
        "estimator_rtol": [Interval(numbers.Real, 0, None, closed="left")],
        "estimator_atol": [Interval(numbers.Real, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def check_differentiable_model(
    model,
    estimator,
    X,
    y,
    *,
    params,
    cv=3,
    sample_weight=None,
    rtol=1e-4,
    atol=0.0,
    step=1e-3,
    loss_rtol=1e-9,
    estimator_rtol=1e-7,
    estimator_atol=0.0,
):
    """Check that a differentiable model keeps the contract the search relies on.

    For each split of ``cv``, the model's fold is built from the split's
    data (a :class:`~skhypergrad.FoldData`) and solved at ``params``, and
    the following are checked, in this order (each failure names its check):

    ``'solution'``
        A new fold solved at ``params`` with ``differentiate=True`` has a
        finite loss, ``solution.params`` holds ``params``, and
        ``solution.hypergradient(list(params))`` returns a finite value for
        each of them. This solution is the reference of the checks below.
    ``'loss-only solve'``
        ``fold.solve(params).loss`` on another new fold equals the reference
        loss: ``differentiate=True`` may keep more of the training, but not
        change it.
    ``'stateless'``
        After the fold is solved at another point, the first solution's
        hypergradient and its fitted estimator's predictions are still the
        reference's, and solving at ``params`` again gives the same loss.
    ``'default params'``
        ``fold.solve({})`` has the loss of a solve at the estimator's own
        values of the hyperparameters, and its ``hypergradient([])`` is
        ``{}``.
    ``'fitted_estimator'``
        ``solution.fitted_estimator()`` is an instance of the estimator's
        class with ``params`` set, is fitted, and its ``predict`` (and
        ``predict_proba``, ``decision_function`` when the reference has them)
        on the validation part agree with those of
        ``clone(estimator).set_params(**params).fit(X_train, y_train)``.
    ``'hypergradient'``
        The derivative of the loss with respect to each hyperparameter of
        ``params``, on its search scale (the logarithm for ``"log"``, the
        logit for ``"logit"``, the value for ``"linear"``), against the
        central difference of the loss with step ``step`` on that scale.
    ``'pickle'``
        The fold and a solution round-trip through :mod:`pickle`; the
        unpickled solution has the reference's loss and hypergradient and
        the unpickled fold solves to the same loss.
    ``'estimator not modified'``
        After each of the checks above, ``estimator``'s parameters are as
        they were: ``model.fold`` and the fold work on clones.

    Parameters
    ----------
    model : DifferentiableModel
        The model to check (an instance, registered or not).

    estimator : estimator instance
        An unfitted instance of ``model.estimator_class``, with the settings
        to check the model at. Not modified.

    X : array-like of shape (n_samples, n_features)
        Training data, split by ``cv``. A few dozen to a few hundred samples
        are enough.

    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Target values.

    params : dict of str -> float
        The point to check at: values, in the estimator's own units, of
        some of the continuous hyperparameters of
        ``model.hyperparameters_for(estimator)``. The others keep the
        estimator's values. ``{}`` checks the model at the estimator's own
        values, without the hypergradient check.

    cv : int, cross-validation generator or an iterable, default=3
        The splits to check on, as in
        :func:`~sklearn.model_selection.cross_validate`: an integer is a
        :class:`~sklearn.model_selection.StratifiedKFold` for a classifier
        and a :class:`~sklearn.model_selection.KFold` otherwise.

    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights: the training part's are passed to the model's fold
        and to the reference's ``fit``, the validation part's weigh the
        validation loss (as the search does when the scorer takes
        ``sample_weight``).

    rtol : float, default=1e-4
        Relative tolerance of the hypergradient checks. A derivative ``g`` on
        the search scale (``d loss / d log(alpha)`` for a ``"log"``
        hyperparameter) passes against its expected value ``e`` when

        ``|g - e| <= rtol * |e| + (atol + loss_rtol / step) * |loss|``.

        The absolute floor is in the units of the loss, as a derivative on
        the search scale is: ``loss_rtol * |loss| / step`` bounds the error
        of a central difference of two losses accurate to ``loss_rtol``, and
        it also lets a derivative close to zero pass.

    atol : float, default=0.0
        Additional absolute floor of the hypergradient tolerance, as a
        fraction of ``|loss|``.

    step : float, default=1e-3
        Step of the central differences, on the search scale. Their
        truncation error is of order ``step**2``. When the check fails at
        ``step``, it is tried again at ``step / 10`` before failing: a
        piecewise-smooth loss (a ReLU network) has kinks that a step can
        straddle.

    loss_rtol : float, default=1e-9
        Relative accuracy of the loss. It is the tolerance of the checks
        that compare two solves of the same point (and the stateless check's
        predictions): a fold may warm-start its solver from earlier
        solutions, so that these agree to the solver's accuracy rather than
        bit for bit. It also sets the floor of the hypergradient tolerance
        (see ``rtol``).

    estimator_rtol : float, default=1e-7
        Tolerance of the ``'fitted_estimator'`` check, relative to the scale
        of each output: an output passes when its largest difference from
        the reference's is at most ``estimator_rtol * max|reference| +
        estimator_atol``. Labels (non-numeric outputs) must be equal. When
        the estimator's own ``fit`` is iterative, it stops at its ``tol``:
        give the estimator a tight ``tol`` (and a large ``max_iter``) so that
        the comparison measures the model rather than the reference's
        solver, or loosen this tolerance.

    estimator_atol : float, default=0.0
        Absolute part of the ``'fitted_estimator'`` tolerance.

    Returns
    -------
    None
        The function returns nothing when every check passes.

    Raises
    ------
    AssertionError
        On the first failed check, with a message naming the check, the
        split, the point, the hyperparameter or output concerned, and the
        value, the expected value, their difference and the tolerance.

    See Also
    --------
    skhypergrad.register_model : Make a checked model available to the search.
    skhypergrad.DifferentiableModel : The protocol checked here.

    Notes
    -----
    Each split costs about ``10 + 2 * len(params)`` solves and three
    hypergradients, plus one ``fit`` of the reference estimator. A failure
    of the ``'hypergradient'`` check close to its tolerance may be the
    finite difference's: try another ``step`` before doubting the model.

    The validation loss itself is not compared with a scikit-learn metric
    (the checker does not know which loss a model differentiates); the
    ``'fitted_estimator'`` check compares what the scorers see.

    The ``'pickle'`` check uses the standard :mod:`pickle`, which finds a
    class by its module and name: a model's classes defined in a module or a
    script pass, those defined in code run by ``exec`` or a doctest do not.

    The example :ref:`sphx_glr_auto_examples_plot_kernel_ridge_model.py`
    writes a model for :class:`~sklearn.kernel_ridge.KernelRidge` and checks
    it.
    """
    if not isinstance(estimator, model.estimator_class):
        raise TypeError(
            f"{type(model).__name__} is the model of "
            f"{getattr(model.estimator_class, '__name__', model.estimator_class)}"
            f"; got a {type(estimator).__name__} estimator."
        )
    model.check_estimator(estimator)
    if (
        getattr(model, "stochastic", False)
        and estimator.get_params().get("random_state") is None
    ):
        raise ValueError(
            f"{type(model).__name__} is stochastic and the estimator's "
            "random_state is None: each fold would draw new random numbers. Pass "
            "an integer random_state (HypergradSearchCV fixes one the same way)."
        )
    X, y = check_X_y(X, y, multi_output=True, y_numeric=False)
    if sample_weight is not None:
        sample_weight = check_array(
            sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight"
        )
        check_consistent_length(X, sample_weight)
    params, scales = _check_params(model, estimator, params)

    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    tolerances = (rtol, atol, step, loss_rtol, estimator_rtol, estimator_atol)
    for split, (train, test) in enumerate(cv.split(X, y)):
        data = FoldData(
            X_train=X[train],
            y_train=y[train],
            X_val=X[test],
            y_val=y[test],
            sample_weight=None if sample_weight is None else sample_weight[train],
            val_sample_weight=None if sample_weight is None else sample_weight[test],
        )
        _Checker(model, estimator, data, params, scales, split, tolerances).run()

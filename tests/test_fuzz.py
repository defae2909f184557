"""Property-based fuzzing of HypergradSearchCV and cross_val_hypergrad.

Hypothesis generates searches (parameter grids with ranges given as tuples,
lists, arrays and distributions, enumerated parameters and lists of dicts;
data of several shapes, dtypes and containers; cv objects, scorings, refit
values, sample weights, error_score, callbacks) over Ridge,
LogisticRegression, MLPRegressor and MLPClassifier, alone or after a
StandardScaler, and checks the outcome rules:

- the search succeeds with sane results: every key of GridSearchCV's
  ``cv_results_`` present, every evaluated point inside its range (or among
  its listed values), the scores of the best point (of the first one when
  there is no best) equal GridSearchCV's with the same cv at that point (to
  ``rtol=1e-6``; ``nan`` exactly where GridSearchCV gives ``nan``), and no
  input array modified. Not compared: a fold where scikit-learn's classifier
  ties two classes (rounding breaks the tie either way), and a logistic
  regression at C > 1e6 (no optimum to speak of on separable data);
- or it raises: a ValueError or TypeError before any work (no callback
  called yet); after work, an error that GridSearchCV raises too over the
  points the search evaluated ("All the fits failed"), or the refit's error
  where scikit-learn's fit raises it at the best point. An invalid range
  (reversed tuple, empty, non-finite, out of the parameter's domain) must be
  refused before work, with a ValueError, a non-finite one in words saying
  so.

``cross_val_hypergrad`` is checked against central finite differences at
random points, and must refuse invalid values with a ValueError.

Budgets: the hypothesis profiles registered in tests/conftest.py. ``ci``
(the default) runs 150 derandomized examples per test, the same at each run,
the module in well under a minute on 2 cores. A larger budget::

    SKHYPERGRAD_FUZZ=large python -m pytest tests/test_fuzz.py \\
        --hypothesis-show-statistics -p no:cacheprovider

(``large``: 2,000 examples per test, random at each run; any other
number, ``SKHYPERGRAD_FUZZ=500``, sets the examples per test.) The
statistics list the outcome of each example as a hypothesis ``event``.

Known bugs: a generated case that hits one (its predicate in
``KNOWN_BUGS`` matches the case and the deviation found) is reported as an
event ``known bug B<n>`` and passes, so that the suite stays green while the
bug is open; each has a strict-xfail regression test in test_known_bugs.py.
Fixing a bug means deleting its entry here too.
"""

import copy
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from hypothesis import event, given, note
from hypothesis import strategies as st
from scipy.stats import loguniform, uniform
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, make_scorer, r2_score
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    ShuffleSplit,
    StratifiedKFold,
    check_cv,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from skhypergrad import HypergradSearchCV, cross_val_hypergrad

from ._versions import requires_sklearn

# --- The generated cases ------------------------------------------------------

MODELS = {
    "ridge": (Ridge, "regression"),
    "logistic": (LogisticRegression, "classification"),
    "mlp_regressor": (MLPRegressor, "regression"),
    "mlp_classifier": (MLPClassifier, "classification"),
}
# Continuous hyperparameters and their domain: "log" for a positive scale,
# "unit" for a value in (0, 1).
CONTINUOUS = {
    "ridge": {"alpha": "log"},
    "logistic": {"C": "log"},
    "mlp_regressor": {"alpha": "log", "learning_rate_init": "log"},
    "mlp_classifier": {"alpha": "log", "learning_rate_init": "log"},
}
_MLP_BY_SOLVER = {"sgd": {"momentum": "unit"}, "adam": {"beta_1": "unit"}}
METRICS = {
    "regression": ["r2", "neg_mean_squared_error", "neg_mean_absolute_error"],
    "classification": ["accuracy", "neg_log_loss", "balanced_accuracy", "f1_macro"],
}


@dataclass(frozen=True)
class Case:
    """One generated search; ``build()`` makes its objects.

    Every field is a plain value, so that a falsifying example printed by
    hypothesis is a reproducer: ``run_case(Case(...))`` replays the checks,
    ``Case(...).build()`` gives the search's arguments.
    """

    model: str
    pipeline: bool
    settings: tuple  # (name, value) pairs of the estimator
    n_samples: int
    n_features: int
    seed: int
    dtype: str  # "float64", "float32", "int"
    frame: bool  # X as a DataFrame
    nan_cell: bool
    duplicate_column: bool
    n_classes: int
    labels: str  # "int", "shifted", "str"
    rare_class: bool  # the last class has 2 samples
    y_format: str  # "1d", "column", "frame", "list"
    grid: tuple  # of dicts as tuples of (name, spec)
    cv: tuple
    scoring: object
    refit: object
    sample_weight: str
    error_score: object
    return_train_score: bool
    n_init: int
    n_iter: int
    callback: str  # "count", "stop", "mutate"

    @property
    def task(self):
        return MODELS[self.model][1]

    @property
    def prefix(self):
        if not self.pipeline:
            return ""
        return MODELS[self.model][0].__name__.lower() + "__"

    def estimator(self):
        model = MODELS[self.model][0](**dict(self.settings))
        return make_pipeline(StandardScaler(), model) if self.pipeline else model

    def data(self):
        rng = np.random.RandomState(self.seed)
        X = rng.normal(size=(self.n_samples, self.n_features))
        if self.duplicate_column:
            X = np.hstack([X, X[:, :1]])
        w = rng.normal(size=X.shape[1])
        score = X @ w + 0.5 * rng.normal(size=self.n_samples)
        if self.task == "regression":
            y = score
        else:
            # Balanced classes: the quantiles of a noisy linear score; or
            # the last class of 2 samples only.
            ranks = np.argsort(np.argsort(score))
            y_index = ranks * self.n_classes // self.n_samples
            if self.rare_class:
                y_index = np.minimum(y_index, self.n_classes - 2)
                y_index[np.argsort(score)[-2:]] = self.n_classes - 1
            names = {
                "int": np.arange(3),
                "shifted": np.array([3, 7, 9]),
                "str": np.array(["ant", "bee", "cat"]),
            }[self.labels]
            y = names[y_index]
        if self.dtype == "int":
            X = np.round(3 * X).astype(np.int64)
        else:
            X = X.astype(self.dtype)
            if self.nan_cell:
                X[self.n_samples // 2, 0] = np.nan
        if self.frame:
            X = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        if self.y_format == "column":
            y = y.reshape(-1, 1)
        elif self.y_format == "frame":
            y = pd.DataFrame({"target": y})
        elif self.y_format == "list":
            y = y.tolist()
        weights = {
            "none": None,
            "positive": rng.uniform(0.5, 2.0, self.n_samples),
            "integer": rng.randint(1, 4, self.n_samples)
            * (rng.rand(self.n_samples) > 0.2),
            "zeros": np.zeros(self.n_samples),
            "negative": -rng.uniform(0.5, 2.0, self.n_samples),
            "wrong_length": np.ones(self.n_samples - 1),
        }[self.sample_weight]
        fit_params = {} if weights is None else {self.prefix + "sample_weight": weights}
        return X, y, fit_params

    def param_grid(self):
        grids = [{name: _materialize(spec) for name, spec in g} for g in self.grid]
        return grids[0] if len(grids) == 1 else grids

    def equivalent_grid(self):
        """The grid with every range replaced by a list of its ends."""
        grids = [{name: _ends(spec) for name, spec in g} for g in self.grid]
        return grids[0] if len(grids) == 1 else grids

    def splits(self, X, y):
        """The cv argument of the search, and a list of its splits."""
        kind, *args = self.cv
        if kind == "int":
            cv = args[0]
        elif kind == "kfold":
            k, shuffle, seed = args
            cv = KFold(k, shuffle=shuffle, random_state=seed if shuffle else None)
        elif kind == "stratified":
            k, shuffle, seed = args
            cv = StratifiedKFold(
                k, shuffle=shuffle, random_state=seed if shuffle else None
            )
        elif kind == "shuffle":
            n, test_size, seed = args
            cv = ShuffleSplit(n, test_size=test_size, random_state=seed)
        else:  # "list" or "iterator" of KFold's splits
            k, empty_train = args
            splits = list(KFold(k).split(X))
            if empty_train:
                splits[0] = (np.array([], dtype=int), np.arange(self.n_samples))
            return (iter(splits) if kind == "iterator" else splits), splits
        classifier = self.task == "classification"
        try:
            splits = list(check_cv(cv, _ravel(y), classifier=classifier).split(X, y))
        except ValueError:
            splits = None  # e.g. StratifiedKFold on a continuous target
        return cv, splits

    def scorer(self):
        kind, *names = self.scoring
        if kind == "none":
            return None
        if kind == "str":
            return names[0]
        if kind == "make_scorer":
            metric = r2_score if self.task == "regression" else accuracy_score
            return make_scorer(metric)
        if kind == "function":
            return _score_method
        if kind == "list":
            return list(names)
        return {f"m{i}": name for i, name in enumerate(names)}

    def build(self):
        """estimator, param_grid, X, y, fit_params and the search's kwargs."""
        X, y, fit_params = self.data()
        cv, _ = self.splits(X, y)
        kwargs = {
            "scoring": self.scorer(),
            "refit": self.refit,
            "cv": cv,
            "error_score": self.error_score,
            "return_train_score": self.return_train_score,
            "n_init": self.n_init,
            "n_iter": self.n_iter,
            # The coarse points of several hyperparameters are drawn: the
            # same at every run, so that a run again evaluates the same.
            "random_state": self.seed,
        }
        return self.estimator(), self.param_grid(), X, y, fit_params, kwargs


def _score_method(estimator, X, y):
    """A callable scorer: the estimator's own score."""
    return estimator.score(X, y)


def _ravel(y):
    return np.asarray(y).ravel() if np.asarray(y).ndim == 2 else y


def _materialize(spec):
    kind, *values = spec
    if kind == "tuple":
        return tuple(values)
    if kind == "list" or kind == "enum":
        return list(values)
    if kind == "array":
        return np.array(values)
    low, high = values
    if kind == "loguniform":
        return loguniform(low, high)
    return uniform(low, high - low)  # "uniform"


def _ends(spec):
    kind, *values = spec
    if kind in ("tuple", "list", "array"):
        return list(values)
    if kind == "enum":
        return list(values)
    return [values[0], values[1]]


def _range_values(spec):
    """The values a range spec bounds, or None for an enumerated one."""
    kind, *values = spec
    return None if kind == "enum" else values


def _invalid_range(spec, domain):
    """Why a range spec must be refused, or None."""
    kind, *values = spec
    if kind == "enum":
        return None
    if kind == "tuple" and len(values) != 2:
        return "tuple of other than 2 values"
    if not all(math.isfinite(v) for v in values):
        return "non-finite"
    if kind == "tuple" and values[0] > values[1]:
        return "reversed"
    low, high = min(values), max(values)
    if not low < high:
        return "empty"
    if domain == "log" and low <= 0:
        return "not positive"
    if domain == "unit" and not (0 < low and high < 1):
        return "outside (0, 1)"
    return None


# --- Strategies ---------------------------------------------------------------


def _one_in(n):
    """True once in about ``n`` draws (``st.integers`` draws 0 far more often)."""
    return st.sampled_from([False] * (n - 1) + [True])


# Where a range's ends are drawn, as powers of ten, for "log" hyperparameters.
_LOG_ENDS = {
    "alpha": ((-6, 0), (0.5, 4)),
    "C": ((-4, 0), (0.5, 4)),
    "learning_rate_init": ((-4, -2), (-1.5, 0.5)),
}


def _finite_range(name, domain, extreme=False):
    if domain == "unit":
        return st.tuples(st.floats(0.05, 0.6), st.floats(0.65, 0.99))
    if extreme:
        low = st.sampled_from([-300, -250, -35, -31])
        high = st.sampled_from([100, 160, 200])
    else:
        low, high = (st.floats(*ends) for ends in _LOG_ENDS[name])
    return st.tuples(low, high).map(lambda lh: (10.0 ** lh[0], 10.0 ** lh[1]))


@st.composite
def range_specs(draw, name, domain):
    """A range for a continuous hyperparameter, now and then an invalid one."""
    extreme = draw(_one_in(20))
    low, high = draw(_finite_range(name, domain, extreme))
    kind = draw(st.sampled_from(["tuple", "list", "array", "loguniform", "uniform"]))
    if domain == "unit" and kind == "loguniform":
        kind = "uniform"
    invalid = draw(_one_in(10))
    if kind in ("loguniform", "uniform"):
        return (kind, low, high)
    if kind == "tuple":
        values = [low, high]
    else:
        middle = draw(st.lists(st.floats(low, high), max_size=2))
        values = draw(st.permutations([low, high, *middle]))
    if invalid:
        how = draw(st.sampled_from(["nan", "inf", "reversed", "empty", "negative"]))
        if how == "nan":
            values[draw(st.integers(0, len(values) - 1))] = math.nan
        elif how == "inf":
            values[-1] = draw(st.sampled_from([math.inf, -math.inf]))
        elif how == "reversed":
            values = [high, low] if kind == "tuple" else values
        elif how == "empty":
            values = [low, low]
        else:
            values[0] = -low
    return (kind, *values)


@st.composite
def cases(draw):
    model = draw(st.sampled_from(list(MODELS)))
    task = MODELS[model][1]
    pipeline = draw(st.booleans())
    continuous = dict(CONTINUOUS[model])
    settings_ = {}
    enumerable = {}
    if model == "ridge":
        settings_["solver"] = draw(st.sampled_from(["auto", "svd", "cholesky"]))
        enumerable["fit_intercept"] = [True, False]
        enumerable["tol"] = [1e-4, 1e-3]
    elif model == "logistic":
        # Tight, so that scikit-learn's fits reach the optimum the search
        # trains to (see test_logistic.py).
        settings_.update(
            solver=draw(st.sampled_from(["lbfgs", "newton-cholesky"])),
            tol=1e-10,
            max_iter=10_000,
        )
        enumerable["fit_intercept"] = [True, False]
        enumerable["class_weight"] = [None, "balanced"]
    else:
        solver = draw(st.sampled_from(["adam", "sgd"]))
        continuous.update(_MLP_BY_SOLVER[solver])
        settings_.update(
            hidden_layer_sizes=(3,),
            max_iter=draw(st.integers(3, 20)),
            random_state=draw(st.integers(0, 3)),
            solver=solver,
        )
        enumerable["activation"] = ["relu", "tanh", "logistic", "identity"]
        enumerable["batch_size"] = [8, 16, "auto"]
        enumerable["shuffle"] = [True, False]
    n_grids = draw(st.integers(1, 2))
    grid = []
    prefix = MODELS[model][0].__name__.lower() + "__" if pipeline else ""
    for _ in range(n_grids):
        names = draw(
            st.lists(st.sampled_from(sorted(continuous)), unique=True, max_size=2)
        )
        entries = [
            (prefix + name, draw(range_specs(name, continuous[name]))) for name in names
        ]
        # A one-element list fixes a continuous value.
        for name in sorted(set(continuous) - set(names)):
            if draw(_one_in(6)):
                low, high = draw(_finite_range(name, continuous[name]))
                entries.append((prefix + name, ("enum", low)))
        for name, values in enumerable.items():
            if draw(_one_in(4)):
                chosen = draw(
                    st.lists(
                        st.sampled_from(values), min_size=1, max_size=2, unique=True
                    )
                )
                entries.append((prefix + name, ("enum", *chosen)))
        grid.append(tuple(entries))

    n_classes = draw(st.sampled_from([2, 3])) if task == "classification" else 0
    n_samples = draw(st.integers(12, 48))
    dtype = draw(st.sampled_from(["float64", "float32", "int"]))
    cv_kind = draw(st.sampled_from(["int", "kfold", "stratified", "shuffle", "list"]))
    if cv_kind == "list" and draw(st.booleans()):
        cv_kind = "iterator"
    if cv_kind == "stratified" and task == "regression" and not draw(_one_in(5)):
        cv_kind = "kfold"  # now and then, to be refused
    k = draw(st.integers(2, 4))
    if cv_kind == "int":
        cv = ("int", k)
    elif cv_kind in ("kfold", "stratified"):
        cv = (cv_kind, k, draw(st.booleans()), draw(st.integers(0, 9)))
    elif cv_kind == "shuffle":
        cv = ("shuffle", k, draw(st.sampled_from([0.25, 0.5])), draw(st.integers(0, 9)))
    else:
        cv = (cv_kind, k, draw(_one_in(20)))

    metrics = METRICS[task]
    scoring_kind = draw(
        st.sampled_from(["none", "str", "make_scorer", "function", "list", "dict"])
    )
    if scoring_kind == "str":
        scoring = ("str", draw(st.sampled_from(metrics)))
    elif scoring_kind in ("list", "dict"):
        scoring = (
            scoring_kind,
            *draw(
                st.lists(st.sampled_from(metrics), min_size=2, max_size=2, unique=True)
            ),
        )
    else:
        scoring = (scoring_kind,)
    if scoring_kind in ("list", "dict"):
        names = scoring[1:] if scoring_kind == "list" else ["m0", "m1"]
        refit = draw(st.sampled_from([False, *names]))
    else:
        refit = draw(st.booleans())

    return Case(
        model=model,
        pipeline=pipeline,
        settings=tuple(sorted(settings_.items())),
        n_samples=n_samples,
        n_features=draw(st.integers(1, 4)),
        seed=draw(st.integers(0, 2**16)),
        dtype=dtype,
        frame=draw(st.booleans()),
        nan_cell=draw(_one_in(15)),
        duplicate_column=draw(_one_in(6)),
        n_classes=n_classes,
        labels=draw(st.sampled_from(["int", "shifted", "str"])),
        rare_class=draw(_one_in(5)),
        y_format=draw(st.sampled_from(["1d", "1d", "column", "frame", "list"])),
        grid=tuple(grid),
        cv=cv,
        scoring=scoring,
        refit=refit,
        sample_weight=draw(
            st.sampled_from(["zeros", "negative", "wrong_length"])
            if draw(_one_in(8))
            else st.sampled_from(["none", "none", "positive", "integer"])
        ),
        error_score=draw(st.sampled_from([np.nan, "raise", -1.0])),
        return_train_score=draw(st.booleans()),
        n_init=draw(st.integers(1, 3)),
        n_iter=draw(st.integers(0, 3)),
        callback=draw(
            st.sampled_from(["stop", "mutate"])
            if draw(_one_in(4))
            else st.just("count")
        ),
    )


# --- The outcome rules --------------------------------------------------------


class Deviation(AssertionError):
    """An outcome that breaks the rules; ``kind`` names the rule."""

    def __init__(self, kind, detail=""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def _domains(case):
    """Full parameter name -> domain of the case's continuous parameters."""
    domains = dict(CONTINUOUS[case.model])
    if case.model.startswith("mlp"):
        domains.update(_MLP_BY_SOLVER[dict(case.settings)["solver"]])
    return {case.prefix + name: domain for name, domain in domains.items()}


def _invalid_ranges(case):
    domains = _domains(case)
    return [
        (name, why)
        for g in case.grid
        for name, spec in g
        if (why := _invalid_range(spec, domains.get(name))) is not None
    ]


def _assert_unchanged(before, after):
    for old, new in zip(before, after, strict=True):
        if isinstance(old, pd.DataFrame):
            pd.testing.assert_frame_equal(old, new)
        elif isinstance(old, np.ndarray):
            assert old.dtype == new.dtype
            np.testing.assert_array_equal(old, new)
        elif isinstance(old, dict):
            _assert_unchanged(list(old.values()), list(new.values()))
        else:
            assert old == new


def _reference(case, estimator, param_grid, splits, kwargs, float64=False):
    """GridSearchCV with the search's settings: (search, error).

    ``float64``: on X cast to float64, as the search trains.
    """
    cv = splits if case.cv[0] == "iterator" else kwargs["cv"]
    grid = GridSearchCV(
        clone(estimator),
        param_grid,
        scoring=kwargs["scoring"],
        refit=kwargs["refit"],
        cv=cv,
        error_score=kwargs["error_score"],
        return_train_score=kwargs["return_train_score"],
    )
    X, y, fit_params = case.data()
    if float64:
        X = X.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return grid.fit(X, y, **fit_params), None
        except Exception as exc:
            return None, exc


def _check_points(case, results):
    """Every evaluated point lies in its range, or among its listed values."""
    specs = {}
    for g in case.grid:
        for name, spec in g:
            specs.setdefault(name, []).append(spec)
    keys = [{name for name, _ in g} for g in case.grid]
    for params in results["params"]:
        if set(params) not in keys:
            raise Deviation("point with other parameters than a grid", repr(params))
        for name, value in params.items():
            allowed = False
            for kind, *values in specs[name]:
                if kind == "enum":
                    allowed |= any(value is v or value == v for v in values)
                elif kind in ("loguniform", "uniform"):
                    low, high = _materialize((kind, *values)).support()
                    allowed |= low <= value <= high
                else:
                    allowed |= min(values) <= value <= max(values)
            if not allowed:
                raise Deviation("point outside its range", f"{name}={value!r}")


def _score_mismatch(case, search, row, reference):
    """The first score of the row that is not GridSearchCV's, as a Deviation."""
    results, expected = search.cv_results_, reference.cv_results_
    rtol = 1e-6
    for key in expected:
        if not (key.startswith(("split", "mean_test", "mean_train"))):
            continue
        ours, theirs = float(results[key][row]), float(expected[key][0])
        if np.isinf(theirs) and ours == _numeric(case.error_score):
            return Deviation(
                "error_score where GridSearchCV gives an infinite score",
                f"{key}: {ours} against {theirs}",
            )
        if np.isnan(theirs) != np.isnan(ours):
            return Deviation(
                "finite where GridSearchCV gives nan"
                if np.isnan(theirs)
                else "nan where GridSearchCV is finite"
                if np.isfinite(theirs)
                else "nan where GridSearchCV gives an infinite score",
                f"{key}: {ours} against {theirs}",
            )
        if not np.isclose(ours, theirs, rtol=rtol, atol=1e-12, equal_nan=True):
            deviation = Deviation(
                "score differs from GridSearchCV's", f"{key}: {ours} against {theirs}"
            )
            deviation.relative = abs(ours - theirs) / max(abs(theirs), 1e-300)
            return deviation
    if hasattr(search, "best_score_") and hasattr(reference, "best_score_"):
        ours, theirs = search.best_score_, reference.best_score_
        if not np.isclose(ours, theirs, rtol=rtol, atol=1e-12, equal_nan=True):
            return Deviation(
                "best_score_ differs from GridSearchCV's", f"{ours} against {theirs}"
            )
    return None


def _tied_decision(case, estimator, params, split):
    """Whether scikit-learn's classifier trained on the split ties two classes.

    A tie (integer features make them) is broken by rounding: the search's
    model and scikit-learn's may predict either class (so do two of
    scikit-learn's own solvers).
    """
    X, y, fit_params = case.data()
    X, y = np.asarray(X), _ravel(np.asarray(y, dtype=object))
    train, test = split
    model = clone(estimator).set_params(**params)
    weights = {k: v[train] for k, v in fit_params.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(X[train], y[train].tolist(), **weights)
            proba = np.sort(model.predict_proba(X[test]), axis=1)
        except Exception:
            return False
    return bool(np.any(proba[:, -1] - proba[:, -2] < 1e-6))


# Above this C, a logistic regression on separable data has no optimum to
# speak of: the solvers stop at different points of a ray.
_ILL_POSED_C = 1e6


def _compare_with_grid_search(case, search, estimator, splits, kwargs):
    """Compare a row (the best one, or the first) with GridSearchCV's scores."""
    results = search.cv_results_
    row = getattr(search, "best_index_", 0)
    params = results["params"][row]
    if hasattr(search, "best_params_") and search.best_params_ != params:
        raise Deviation("best_params_ is not the best row's params")
    reference, error = _reference(
        case, estimator, {k: [v] for k, v in params.items()}, splits, kwargs
    )
    if error is not None:
        scores = [
            results[key][row] for key in results if "_test_" in key and "split" in key
        ]
        failed = np.isnan(scores) | np.equal(scores, _numeric(case.error_score))
        if isinstance(error, ValueError) and np.all(failed):
            return "searched"  # all of that point's fits failed, as in GridSearchCV
        if case.dtype == "float32":
            # scikit-learn's Ridge overflows in float32 at a huge alpha (its
            # Gram matrix plus alpha); the search trains in float64: is it
            # GridSearchCV's on float64 X?
            reference, error64 = _reference(
                case,
                estimator,
                {k: [v] for k, v in params.items()},
                splits,
                kwargs,
                True,
            )
            if (
                error64 is None
                and _score_mismatch(case, search, row, reference) is None
            ):
                raise Deviation(
                    "float32 X: GridSearchCV's float32 fits fail where its float64 "
                    "ones give the search's scores",
                    f"{type(error).__name__}: {error}",
                )
        raise Deviation(
            "GridSearchCV raises at the searched point",
            f"{type(error).__name__}: {error}",
        )
    missing = set(reference.cv_results_) - set(results)
    if missing:
        raise Deviation("cv_results_ lacks GridSearchCV's keys", sorted(missing))
    n_rows = len(results["params"])
    if any(len(value) != n_rows for value in results.values()):
        raise Deviation("cv_results_ columns of different lengths")
    if case.model == "logistic" and params.get(case.prefix + "C", 1.0) > _ILL_POSED_C:
        return f"searched; scores not compared at C > {_ILL_POSED_C:g}"
    mismatch = _score_mismatch(case, search, row, reference)
    if mismatch is not None and case.dtype == "float32":
        # The search trains in float64: is it GridSearchCV's on float64 X?
        reference, error = _reference(
            case, estimator, {k: [v] for k, v in params.items()}, splits, kwargs, True
        )
        # A pipeline's steps before the model compute in float32 in both.
        close = case.pipeline and getattr(mismatch, "relative", 1.0) < 1e-4
        if close or (
            error is None and _score_mismatch(case, search, row, reference) is None
        ):
            raise Deviation(
                "float32 X: scores of GridSearchCV on float64 X, not on float32 X",
                str(mismatch),
            )
    if mismatch is not None and case.task == "classification":
        split = re.match(r"split(\d+)_", str(mismatch).split(": ", 1)[1])
        if split and _tied_decision(
            case, estimator, params, splits[int(split.group(1))]
        ):
            return "searched; a tie between two classes, broken either way"
    if mismatch is not None:
        raise mismatch
    return "searched"


def _numeric(error_score):
    return error_score if isinstance(error_score, float) else np.nan


def _evaluated_points(case):
    """The points the search evaluates, error_score=nan and refit=False."""
    estimator, param_grid, X, y, fit_params, kwargs = case.build()
    points = {}

    def record(state):
        points.setdefault(repr(state.params), dict(state.params))
        return case.callback == "stop" and len(points) >= 2

    kwargs.update(error_score=np.nan, refit=False, callbacks=record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            HypergradSearchCV(estimator, param_grid, **kwargs).fit(X, y, **fit_params)
        except Exception:
            pass
    return [{k: [v] for k, v in p.items()} for p in points.values()]


def _refit_fails_as_sklearn(case, kwargs, error):
    """Whether ``error`` is the refit's, as scikit-learn's fit raises it.

    The search is run again without refit, and the estimator is fitted on
    the whole data at the best point, as GridSearchCV would refit it there.
    """
    refit = kwargs["refit"]
    if refit is False:
        return False
    estimator, param_grid, X, y, fit_params, kwargs = case.build()
    search = HypergradSearchCV(estimator, param_grid, **{**kwargs, "refit": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            search.fit(X, y, **fit_params)
        except Exception:
            return False
        metric = refit if isinstance(refit, str) else "score"
        best = int(np.argmin(search.cv_results_[f"rank_test_{metric}"]))
        params = search.cv_results_["params"][best]
        try:
            clone(estimator).set_params(**params).fit(X, y, **fit_params)
        except Exception as exc:
            return type(exc) is type(error)
    return False


def run_case(case):
    """Run the search of ``case``; raise a Deviation if it breaks a rule.

    Returns the outcome's name.
    """
    estimator, param_grid, X, y, fit_params, kwargs = case.build()
    _, splits = case.splits(X, y)
    before = copy.deepcopy([X, y, fit_params])
    calls = []
    names = set(_domains(case))

    def callback(state):
        calls.append(state.iteration)
        if case.callback == "mutate":
            for name in names & set(state.params):
                state.params[name] = 12345.0
        return case.callback == "stop" and len(calls) >= 2

    search = HypergradSearchCV(estimator, param_grid, callbacks=callback, **kwargs)
    error = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            search.fit(X, y, **fit_params)
        except Exception as exc:
            error = exc
    try:
        _assert_unchanged(before, [X, y, fit_params])
    except AssertionError as exc:
        raise Deviation("input modified", str(exc)) from exc

    invalid = _invalid_ranges(case)
    if error is not None:
        note(f"raised {type(error).__name__}: {error}")
        if calls and _refit_fails_as_sklearn(case, kwargs, error):
            return "refit raised, as scikit-learn's fit at the best point"
        refused = isinstance(error, (ValueError, TypeError))
        if not calls and refused:
            if invalid:
                name, why = invalid[0]
                if why == "non-finite" and repr(name) in str(error):
                    if "finite" not in str(error):
                        raise Deviation(
                            "non-finite range refused in other words", str(error)
                        )
                return "refused an invalid range"
            return "refused before work"
        if invalid:
            raise Deviation("invalid range accepted", repr(invalid))
        # GridSearchCV over the points the search evaluated.
        points = _evaluated_points(case) or case.equivalent_grid()
        reference, reference_error = _reference(case, estimator, points, splits, kwargs)
        if reference_error is not None:
            if type(reference_error) is type(error) or (
                refused and isinstance(reference_error, (ValueError, TypeError))
            ):
                return "raised, as GridSearchCV"
            raise Deviation(
                f"raises {type(error).__name__} where GridSearchCV raises "
                f"{type(reference_error).__name__}",
                f"{error} against {reference_error}",
            ) from error
        if not refused:
            raise Deviation(f"raises {type(error).__name__}", str(error)) from error
        scores = np.array(
            [v for k, v in reference.cv_results_.items() if k.startswith("split")],
            dtype=float,
        )
        if not np.any(np.isfinite(scores)):
            raise Deviation(
                "raises where GridSearchCV's fits succeed, scoring none finite",
                f"{type(error).__name__}: {error}",
            ) from error
        raise Deviation(
            "raises after work where GridSearchCV succeeds",
            f"{type(error).__name__}: {error}",
        ) from error
    if invalid:
        raise Deviation("invalid range accepted", repr(invalid))
    _check_points(case, search.cv_results_)
    return _compare_with_grid_search(case, search, estimator, splits, kwargs)


# --- Known bugs -----------------------------------------------------------------


def _range_bounds(case, short_name):
    bounds = [
        v
        for g in case.grid
        for name, spec in g
        if name == case.prefix + short_name and (values := _range_values(spec))
        for v in values
    ]
    return bounds


KNOWN_BUGS = {
    # id: (predicate(case, deviation) -> bool, what is wrong)
    # B1-B3, B5, B7-B10, D1 and N1 are fixed: their cases must now pass.
    "B4": (
        lambda case, d: (
            case.model == "ridge"
            and case.duplicate_column
            and min(_range_bounds(case, "alpha"), default=1) <= 1e-28
        ),
        "deliberate: on a rank-deficient design at alpha <= 1e-28 the search "
        "gives the minimum-norm least-squares solution; scikit-learn's Ridge "
        "divides rounding-level singular values by alpha",
    ),
    "N2": (
        lambda case, d: (
            d.kind.startswith("float32 X")
            or (case.dtype == "float32" and d.kind.startswith("score differs"))
        ),
        "deliberate (results.rst): float32 X: the scores are GridSearchCV's on X "
        "cast to float64, not on X (the search trains in float64, scikit-learn's "
        "Ridge and MLPs in float32)",
    ),
}


def _known_bug(case, deviation):
    for bug, (predicate, _) in KNOWN_BUGS.items():
        if predicate(case, deviation):
            return bug
    return None


# Its comparisons with GridSearchCV (error words, scores to 1e-6 where the
# reference's lbfgs stops at its tol) were made against scikit-learn 1.9.
@requires_sklearn("1.9", "the outcome rules compare with scikit-learn 1.9's")
@given(case=cases())
def test_search_outcome_rules(case):
    try:
        outcome = run_case(case)
    except Deviation as deviation:
        bug = _known_bug(case, deviation)
        if bug is None:
            raise
        note(f"known bug {bug}: {deviation}")
        outcome = f"known bug {bug}"
    event(outcome)


# --- cross_val_hypergrad --------------------------------------------------------

# Where the points are drawn, as powers of ten, for "log" hyperparameters.
_LOG_POINTS = {"alpha": (-3.0, 3.0), "C": (-2.0, 2.0), "learning_rate_init": (-3, -1)}
_MLP_ALPHA_POINTS = (-5.0, -1.0)


@st.composite
def small_cases(draw, smooth=True):
    """A Case for cross_val_hypergrad: small data, a smooth model."""
    model = draw(st.sampled_from(list(MODELS)))
    settings_ = {}
    if model.startswith("mlp"):
        max_iter = draw(st.integers(3, 15))
        settings_.update(
            hidden_layer_sizes=(3,),
            max_iter=max_iter,
            random_state=draw(st.integers(0, 3)),
            solver=draw(st.sampled_from(["adam", "sgd"])),
            # Smooth activations, and no early stop: the central differences
            # must see the same training epochs as the hypergradient.
            activation=draw(
                st.sampled_from(["tanh", "logistic", "identity"])
                if smooth
                else st.sampled_from(["relu", "tanh"])
            ),
            n_iter_no_change=max_iter + 1,
            batch_size=draw(st.sampled_from([8, "auto"])),
        )
    task = MODELS[model][1]
    k = draw(st.integers(2, 3))
    return Case(
        model=model,
        pipeline=draw(st.booleans()),
        settings=tuple(sorted(settings_.items())),
        n_samples=draw(st.integers(16, 40)),
        n_features=draw(st.integers(1, 4)),
        seed=draw(st.integers(0, 2**16)),
        dtype="float64",
        frame=False,
        nan_cell=False,
        duplicate_column=False,
        n_classes=draw(st.sampled_from([2, 3])) if task == "classification" else 0,
        labels="int",
        rare_class=False,
        y_format="1d",
        grid=(),
        # A classifier's folds stratified: a class missing from a training
        # fold is refused (D1).
        cv=draw(
            st.sampled_from(
                [("int", k), ("kfold", k, True, 0), ("kfold", k, False, 0)]
                if task == "regression"
                else [("int", k), ("stratified", k, True, 0)]
            )
        ),
        scoring=("none",),
        refit=True,
        sample_weight=draw(st.sampled_from(["none", "positive"])),
        error_score=np.nan,
        return_train_score=False,
        n_init=1,
        n_iter=0,
        callback="count",
    )


@st.composite
def hypergrad_points(draw):
    case = draw(small_cases())
    domains = _domains(case)
    names = draw(st.lists(st.sampled_from(sorted(domains)), min_size=1, unique=True))
    point = {}
    for name in names:
        short = name[len(case.prefix) :]
        if domains[name] == "unit":
            point[name] = draw(st.floats(0.5, 0.95))
        else:
            low, high = (
                _MLP_ALPHA_POINTS
                if short == "alpha" and case.model.startswith("mlp")
                else _LOG_POINTS[short]
            )
            point[name] = 10.0 ** draw(st.floats(low, high))
    return case, point


# Relative tolerance of the hypergradient against central differences: ridge
# is in closed form; the logistic regression's inner solve and the MLPs'
# training are exact to about 1e-9 of the loss, which the differences (steps
# of 1e-4) magnify to about 1e-5.
_FD_RTOL = {
    "ridge": 1e-5,
    "logistic": 1e-3,
    "mlp_regressor": 1e-3,
    "mlp_classifier": 1e-3,
}


@given(example=hypergrad_points())
def test_cross_val_hypergrad_matches_finite_differences(example):
    case, point = example
    X, y, fit_params = case.data()
    cv, _ = case.splits(X, y)
    estimator = case.estimator()
    domains = _domains(case)

    def loss_at(params):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cross_val_hypergrad(
                estimator, X, y, params=params, cv=cv, fit_params=fit_params
            )

    loss, grads = loss_at(point)
    assert np.isfinite(loss)
    assert set(grads) == set(point)
    for name, value in point.items():
        if domains[name] == "log":
            step = 1e-4  # in log units
            up, down = value * np.exp(step), value * np.exp(-step)
            analytic = value * grads[name]
        else:
            step = 1e-5
            up, down = value + step, value - step
            analytic = grads[name]
        difference = (
            loss_at({**point, name: up})[0] - loss_at({**point, name: down})[0]
        ) / (2 * step)
        note(f"{name}: hypergradient {analytic!r}, central difference {difference!r}")
        # Rounding in the loss, magnified by the step, bounds the absolute part.
        atol = 1e-9 * abs(loss) / step
        assert (
            abs(analytic - difference) <= _FD_RTOL[case.model] * abs(difference) + atol
        )


@st.composite
def invalid_points(draw):
    case = draw(small_cases(smooth=False))
    domains = _domains(case)
    name = draw(st.sampled_from(sorted(domains)))
    value = draw(
        st.sampled_from(
            [-1.0, -1e-3, 0.0, 1.0, 1.5, math.nan, math.inf, -math.inf, True, "0.1"]
        )
    )
    return case, {name: value}


def _sklearn_rejects(case, params):
    """Whether scikit-learn's fit refuses these values, or they are not finite."""
    (value,) = params.values()
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return True
    X, y, _ = case.data()
    estimator = case.estimator().set_params(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            estimator.fit(X, y)
        except InvalidParameterError:
            return True
        except Exception:
            return False  # a valid value that fails otherwise (diverges)
    return False


# Known bugs of cross_val_hypergrad, as KNOWN_BUGS above.
KNOWN_HYPERGRAD_BUGS = {
    # id: (predicate(case, params, invalid, error) -> bool, what is wrong)
    # B6 and B9 are fixed: their cases must now pass.
}


@given(example=invalid_points())
def test_cross_val_hypergrad_refuses_invalid_values(example):
    case, params = example
    X, y, fit_params = case.data()
    cv, _ = case.splits(X, y)
    invalid = _sklearn_rejects(case, params)
    error = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cross_val_hypergrad(
                case.estimator(), X, y, params=params, cv=cv, fit_params=fit_params
            )
    except Exception as exc:
        error = exc
    if isinstance(error, (ValueError, TypeError)):
        event("refused")
        return
    for bug, (predicate, _) in KNOWN_HYPERGRAD_BUGS.items():
        if predicate(case, params, invalid, error):
            event(f"known bug {bug}")
            return
    if error is not None:
        raise error
    assert not invalid, f"{params} accepted, though scikit-learn refuses it"
    event("accepted a value scikit-learn accepts")

"""scikit-learn's own GridSearchCV tests, run against HypergradSearchCV.

The installed ``sklearn/model_selection/tests/test_search.py`` is imported
(not copied) with ``GridSearchCV`` replaced by :class:`HypergradSearchCV`, a
thin subclass of the library's class (below), and its test functions are
collected here, so that each one's outcome is reported under this module:

- the tests that do not involve ``GridSearchCV`` (``RandomizedSearchCV``,
  ``HalvingGridSearchCV``, ``ParameterGrid``, ... alone) are deselected;
- the tests listed in ``EXPECTED_TO_DIFFER`` are expected to fail, with
  ``xfail(strict=True)``: one that starts passing fails the suite, so that
  its entry is removed. A listed test must fail the way its reason says
  (its error matches the reason's ``signature``): failing another way fails
  the suite too;
- every other test must pass.

Run this module alone with ``-rxXf`` to see each outcome and reason. The
list was made against scikit-learn 1.9.1: another version's tests may need
entries added or removed, which the strict marks and
``test_expected_to_differ_names_tests_of_sklearn`` point out.
"""

import ast
import functools
import importlib
import importlib.util
import re
import sys
from collections.abc import Collection
from dataclasses import dataclass

import pytest
import sklearn.model_selection

import skhypergrad

from ._versions import requires_sklearn

SKLEARN_MODULE = "sklearn.model_selection.tests.test_search"

# scikit-learn's tests make estimators fail, scores undefined and solvers stop
# early on purpose, and their GridSearchCV runs warn alike: this module checks
# their outcomes, not their warnings.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore::UserWarning",
        "ignore::RuntimeWarning",
        "ignore::sklearn.exceptions.ConvergenceWarning",
        "ignore::sklearn.exceptions.UndefinedMetricWarning",
    ),
    # The list of expected differences is that of scikit-learn 1.9's tests;
    # another release's tests (and their needs: SciPy 1.14 for the array API
    # tests) would need their own.
    requires_sklearn("1.9", "EXPECTED_TO_DIFFER is made for scikit-learn 1.9's tests"),
]


class EstimatorRefused(Exception):
    """HypergradSearchCV refused the estimator (it has no differentiable model).

    Deliberately not a ValueError: scikit-learn's tests that expect a
    ValueError for other reasons (bad data, a failing classifier with
    ``error_score="raise"``) must not pass because of the refusal.
    """


class HypergradSearchCV(skhypergrad.HypergradSearchCV):
    """skhypergrad.HypergradSearchCV, standing in for GridSearchCV.

    Its only change: the refusal of an estimator without a differentiable
    model is raised as :class:`EstimatorRefused` (see there). Its name makes
    the test ids read ``[HypergradSearchCV]`` where scikit-learn's read
    ``[GridSearchCV]``; it is defined at module level so that it pickles.
    """

    def fit(self, X, y=None, **params):
        try:
            return super().fit(X, y, **params)
        except ValueError as exc:
            if "has no differentiable model for" in str(exc):
                raise EstimatorRefused(str(exc)) from exc
            raise


@dataclass(frozen=True)
class Difference:
    """Why a test of scikit-learn is expected to fail here.

    ``signature`` is a regular expression that the failure (the message of
    the exception or of one it was raised from or while handling) matches.
    """

    reason: str
    signature: str


# The differences that remain (scikit-learn 1.9.1's tests): before the search
# fitted estimators without a differentiable model as GridSearchCV does, 78
# of its tests failed on the refusal of their estimators.
HARNESS = Difference(
    "the harness imports scikit-learn's test module a second time, so that its "
    "MockClassifier is not the class pickle finds by name",
    r"Can't pickle .*MockClassifier",
)

DIFFERENCES = [HARNESS]

# Test (with its parameters) -> why it fails with HypergradSearchCV.
EXPECTED_TO_DIFFER = {
    "test_pickle": HARNESS,
}


def _failure_matches(exc, signature):
    """Whether ``exc``, or an exception in its chain, matches ``signature``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if re.search(signature, f"{type(exc).__name__}: {exc}"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class _ExpectedDifference(Exception):
    """Raised from a failure that matches a known difference's signature."""


_DIFFERENCE_ERRORS = {
    d: type(f"Differs_{i}", (_ExpectedDifference,), {"__doc__": d.reason})
    for i, d in enumerate(DIFFERENCES)
}


def _classifying_failures(function):
    """``function``, its failures matching a known difference re-raised as
    that difference's error, which the test's xfail mark expects."""

    @functools.wraps(function)
    def test(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (Exception, pytest.fail.Exception) as exc:
            for difference in DIFFERENCES:
                if _failure_matches(exc, difference.signature):
                    raise _DIFFERENCE_ERRORS[difference](difference.reason) from exc
            raise

    # Parametrize marks must hold collections (pytest 9 deprecates
    # iterators, which scikit-learn's array API test uses).
    marks = getattr(test, "pytestmark", [])
    for i, mark in enumerate(marks):
        if (
            mark.name == "parametrize"
            and len(mark.args) > 1
            and not isinstance(mark.args[1], Collection)
        ):
            argnames, argvalues = mark.args[:2]
            marks[i] = pytest.mark.parametrize(
                argnames, list(argvalues), *mark.args[2:], **mark.kwargs
            ).mark
    return test


def _load_sklearn_suite():
    """scikit-learn's test module, imported with GridSearchCV replaced."""
    spec = importlib.util.find_spec(SKLEARN_MODULE)
    if spec is None:
        pytest.skip(
            f"scikit-learn is installed without its tests ({SKLEARN_MODULE})",
            allow_module_level=True,
        )
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    # The modules it imports first, with the real GridSearchCV, so that only
    # the test module itself sees the replacement.
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            importlib.import_module(node.module)
    saved = sys.modules.pop(SKLEARN_MODULE, None)
    original = sklearn.model_selection.GridSearchCV
    sklearn.model_selection.GridSearchCV = HypergradSearchCV
    try:
        # An ordinary import, so that pytest rewrites its asserts.
        module = importlib.import_module(SKLEARN_MODULE)
    finally:
        sklearn.model_selection.GridSearchCV = original
        if saved is None:
            sys.modules.pop(SKLEARN_MODULE, None)
        else:
            sys.modules[SKLEARN_MODULE] = saved
    assert module.GridSearchCV is HypergradSearchCV
    return module


def _global_names(code):
    """Global names that a function's code (nested ones included) reads."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _global_names(const)
    return names


def _involves_grid_search(item):
    """Whether a test of scikit-learn's module uses GridSearchCV."""
    function = item.function.__wrapped__
    if "GridSearchCV" in _global_names(function.__code__):
        return True
    params = getattr(item, "callspec", None)
    values = params.params.values() if params else ()
    return any(
        value is HypergradSearchCV or isinstance(value, HypergradSearchCV)
        for value in values
    )


def select_and_mark(item):
    """Keep ``item`` if it involves GridSearchCV; mark the expected failures.

    Called for this module's items by tests/conftest.py.
    """
    if item.originalname not in _SKLEARN_TESTS:
        return True  # this module's own
    _COLLECTED.add(item.name)
    if not _involves_grid_search(item):
        return False
    difference = EXPECTED_TO_DIFFER.get(item.name)
    if difference is not None:
        item.add_marker(
            pytest.mark.xfail(
                strict=True,
                reason=difference.reason,
                raises=_DIFFERENCE_ERRORS[difference],
            )
        )
    return True


sklearn_suite = _load_sklearn_suite()
_SKLEARN_TESTS = {
    name: _classifying_failures(value)
    for name, value in vars(sklearn_suite).items()
    if name.startswith("test_") and callable(value)
}
globals().update(_SKLEARN_TESTS)
# The names of the items of scikit-learn's tests collected, involving
# GridSearchCV or not.
_COLLECTED = set()


def test_expected_to_differ_names_tests_of_sklearn():
    """Every entry of EXPECTED_TO_DIFFER names a test of scikit-learn."""
    if not {name.partition("[")[0] for name in _COLLECTED} >= set(_SKLEARN_TESTS):
        pytest.skip("scikit-learn's tests were not all collected")
    assert not set(EXPECTED_TO_DIFFER) - _COLLECTED

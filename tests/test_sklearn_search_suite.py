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

SKLEARN_MODULE = "sklearn.model_selection.tests.test_search"


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


REFUSED = Difference(
    "estimator without a differentiable model is refused; to be searched as "
    "GridSearchCV searches it",
    # The refusal itself, or a check made before it that assumes a
    # differentiable supervised model: set_params() with no argument (which
    # MockClassifier rejects with KeyError 'foo_param'), X of at most 2
    # dimensions (CheckingClassifier takes 4-D X), y required (KernelDensity).
    r"has no differentiable model for"
    r"|KeyError: 'foo_param'"
    r"|Found array with dim 4, while dim <= 2 is required"
    r"|requires y to be passed, but the target y is None",
)

DIFFERENCES = [REFUSED]

# Test (with its parameters) -> why it fails with HypergradSearchCV.
EXPECTED_TO_DIFFER = {
    name: REFUSED
    for name in [
        "test_grid_search",  # MockClassifier
        "test_grid_search_pipeline_steps",  # LinearRegression
        "test_SearchCV_with_fit_params[HypergradSearchCV]",  # CheckingClassifier
        "test_grid_search_no_score",  # LinearSVC
        "test_grid_search_score_method",  # LinearSVC
        "test_grid_search_groups",  # LinearSVC
        "test_classes__property",  # LinearSVC
        "test_trivial_cv_results_attr",  # MockClassifier
        "test_no_refit",  # MockClassifier
        "test_grid_search_one_grid_point",  # SVC
        "test_grid_search_when_param_grid_includes_range",  # MockClassifier
        "test_grid_search_sparse[csr_matrix]",  # LinearSVC
        "test_grid_search_sparse[csr_array]",  # LinearSVC
        "test_grid_search_sparse_scoring[csr_matrix]",  # LinearSVC
        "test_grid_search_sparse_scoring[csr_array]",  # LinearSVC
        "test_grid_search_precomputed_kernel",  # SVC
        # SVC. It would pass without EstimatorRefused: the refusal is a
        # ValueError, like the error it expects for a non-square kernel.
        "test_grid_search_precomputed_kernel_error_nonsquare",
        "test_refit",  # BrokenClassifier
        "test_refit_callable",  # LinearSVC
        "test_refit_callable_invalid_type",  # LinearSVC
        "test_refit_callable_out_bound[HypergradSearchCV--1]",  # LinearSVC
        "test_refit_callable_out_bound[HypergradSearchCV-2]",  # LinearSVC
        "test_refit_callable_multi_metric",  # LinearSVC
        "test_gridsearch_nd",  # CheckingClassifier on 4-D X
        "test_X_as_list",  # CheckingClassifier
        "test_y_as_list",  # CheckingClassifier
        "test_pandas_input",  # CheckingClassifier
        "test_unsupervised_grid_search",  # KMeans
        "test_gridsearch_no_predict",  # KernelDensity, no y
        "test_grid_search_cv_results",  # SVC
        "test_search_default_iid[HypergradSearchCV-specialized_params0]",  # SVC
        "test_grid_search_cv_results_multimetric",  # SVC
        "test_search_cv_score_samples_error[search_cv1]",  # DecisionTreeClassifier
        "test_search_cv_score_samples_method[search_cv1]",  # LocalOutlierFactor
        "test_search_cv_results_rank_tie_breaking",  # SVC
        "test_search_cv_results_none_param",  # DecisionTreeRegressor
        "test_search_cv_timing",  # LinearSVC
        "test_grid_search_correct_score_results",  # LinearSVC
        "test_pickle",  # MockClassifier
        "test_grid_search_with_multioutput_data",  # DecisionTreeRegressor
        "test_predict_proba_disabled",  # SVC
        "test_grid_search_allows_nans",  # MockClassifier
        "test_grid_search_failing_classifier",  # FailingClassifier
        "test_grid_search_classifier_all_fits_fail",  # FailingClassifier
        # FailingClassifier. It would pass without EstimatorRefused: the
        # refusal is a ValueError, like the classifier's error it expects.
        "test_grid_search_failing_classifier_raise",
        "test_stochastic_gradient_loss_param",  # SGDClassifier
        "test_search_train_scores_set_to_false",  # LinearSVC
        "test_grid_search_cv_splits_consistency",  # LinearSVC
        "test_transform_inverse_transform_round_trip",  # MockClassifier
        "test_custom_run_search",  # DecisionTreeRegressor
        "test_searchcv_raise_warning_with_non_finite_score"
        "[HypergradSearchCV-specialized_params0-False]",  # DummyClassifier
        "test_searchcv_raise_warning_with_non_finite_score"
        "[HypergradSearchCV-specialized_params0-True]",  # DummyClassifier
        "test_callable_multimetric_confusion_matrix",  # LinearSVC
        "test_callable_multimetric_same_as_list_of_strings",  # LinearSVC
        "test_callable_single_metric_same_as_single_string",  # LinearSVC
        "test_callable_multimetric_error_on_invalid_key",  # LinearSVC
        "test_callable_multimetric_error_failing_clf",  # FailingClassifier
        "test_callable_multimetric_clf_all_fits_fail",  # FailingClassifier
        "test_n_features_in",  # HistGradientBoostingClassifier
        # KNeighborsClassifier
        "test_search_cv_pairwise_property_equivalence_of_precomputed",
        "test_scalar_fit_param[HypergradSearchCV-param_search0]",  # TestEstimator
        # _FitParamClassifier
        "test_scalar_fit_param_compat[HypergradSearchCV-param_search0]",
        "test_search_cv_using_minimal_compatible_estimator"
        "[MinimalRegressor-HypergradSearchCV]",
        "test_search_cv_using_minimal_compatible_estimator"
        "[MinimalClassifier-HypergradSearchCV]",
        # LinearSVC. Behind the refusal, known deviation D2: verbose=3 prints
        # no per-fold score line.
        "test_search_cv_verbose_3[True]",
        "test_search_cv_verbose_3[False]",
        "test_search_estimator_param[HypergradSearchCV-param_grid]",  # LinearSVC
        "test_search_html_repr",  # DummyClassifier
        # LinearSVC
        "test_multi_metric_search_forwards_metadata[HypergradSearchCV-param_grid]",
        # LinearSVC
        "test_score_rejects_params_with_no_routing_enabled"
        "[HypergradSearchCV-param_grid]",
        "test_cv_results_dtype_issue_29074",  # a meta-estimator
        "test_search_with_estimators_issue_29157",  # LinearRegression
        # LinearDiscriminantAnalysis
        "test_array_api_search_cv_classifier[HypergradSearchCV-numpy-None-None]",
        # The callback tests' estimators. Behind the refusal, known deviation
        # D3: the task tree of set_callbacks differs from GridSearchCV's, and
        # no task receives the sample_weight metadata.
        "test_search_callbacks_no_propagation[search0-True]",
        "test_search_callbacks_no_propagation[search0-False]",
        "test_search_callbacks_propagation[search0-True]",
        "test_search_callbacks_propagation[search0-False]",
        "test_search_callbacks_receive_sample_weight",
        "test_search_callbacks_receive_search_instance[search0]",
        "test_search_callbacks_with_partial_fit_failures",  # MayFailClassifier
    ]
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

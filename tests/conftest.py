import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from sklearn.datasets import load_diabetes

# Hypothesis budgets (tests/test_fuzz.py): "ci" by default, the same examples
# at every run; SKHYPERGRAD_FUZZ=large for 2,000 random examples per test, or
# SKHYPERGRAD_FUZZ=<number> for that many. No deadline: fits vary in time.
_FUZZ_CHECKS = {
    "deadline": None,
    # Not the explain phase: it reruns a failing example hundreds of times.
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}
settings.register_profile(
    "ci", max_examples=150, derandomize=True, database=None, **_FUZZ_CHECKS
)
settings.register_profile("large", max_examples=2000, **_FUZZ_CHECKS)
_fuzz = os.environ.get("SKHYPERGRAD_FUZZ", "ci")
if _fuzz.isdigit():
    settings.register_profile("custom", max_examples=int(_fuzz), **_FUZZ_CHECKS)
    _fuzz = "custom"
settings.load_profile(_fuzz)


@pytest.fixture(scope="session")
def diabetes():
    return load_diabetes(return_X_y=True)


def pytest_configure(config):
    # A mark of scikit-learn's test_search.py (test_sklearn_search_suite.py).
    config.addinivalue_line("markers", "thread_unsafe: not to run in threads")


def pytest_collection_modifyitems(config, items):
    # A test module may select and mark its own items with a function
    # select_and_mark(item) -> keep: test_sklearn_search_suite.py keeps the
    # tests of scikit-learn that involve GridSearchCV.
    selected, deselected = [], []
    for item in items:
        select = getattr(getattr(item, "module", None), "select_and_mark", None)
        (selected if select is None or select(item) else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected

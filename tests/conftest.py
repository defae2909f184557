import pytest
from sklearn.datasets import load_diabetes


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

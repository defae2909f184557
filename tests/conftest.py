import pytest
from sklearn.datasets import load_diabetes


@pytest.fixture(scope="session")
def diabetes():
    return load_diabetes(return_X_y=True)

"""Versions of the dependencies, for tests of what only newer releases do.

``make test`` runs the suite on the newest releases, ``make test-min`` on the
oldest that pyproject.toml accepts (``requirements/min.txt``). A test of
behaviour that a dependency added in a later release is skipped below it
with :func:`requires_sklearn`, never weakened above it.
"""

import numpy as np
import pytest
import sklearn
from packaging.version import Version


def _release(version):
    """The release a version string belongs to: "1.9.0rc1" and "1.9.0" alike."""
    return Version(Version(version).base_version)


SKLEARN_VERSION = _release(sklearn.__version__)
NUMPY_VERSION = _release(np.__version__)


def sklearn_at_least(version):
    return SKLEARN_VERSION >= Version(version)


def numpy_at_least(version):
    return NUMPY_VERSION >= Version(version)


def requires_sklearn(version, reason):
    """Skip a test of behaviour that scikit-learn ``version`` introduced."""
    return pytest.mark.skipif(
        not sklearn_at_least(version),
        reason=f"scikit-learn < {version}: {reason}",
    )


def checks_as_list(parametrize):
    """The same parametrization, its argument values in a list.

    scikit-learn < 1.9's ``parametrize_with_checks`` gives
    ``pytest.mark.parametrize`` a generator of checks, which pytest 9.1+
    deprecates (an error under this suite's filters).
    """
    names, values = parametrize.args
    return pytest.mark.parametrize(names, list(values), **parametrize.kwargs)

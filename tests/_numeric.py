"""Numerical helpers shared by the tests."""


def central_difference(f, x, step):
    """Central finite difference of a scalar function ``f`` at ``x``."""
    return (f(x + step) - f(x - step)) / (2 * step)

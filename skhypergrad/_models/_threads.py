"""BLAS held to one thread while a model solves and differentiates.

The solves of the models multiply arrays of a few thousand entries by vectors
or a few columns, many times: too little work to share between BLAS threads,
whose synchronization then dominates, the most when other processes load the
machine (oversubscription). On 2 cores, one thread made a logistic fold's
solve and hypergradient 1.5-10x faster. ``benchmarks/bench_threads.py``
compares each model in the default environment with a single-threaded one.
"""

import functools

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads_limited", "threads_limited"]

_BLAS_THREADS = 1


@functools.cache
def _threadpool_controller():
    return ThreadpoolController()


def blas_threads_limited():
    """A context in which BLAS runs on ``_BLAS_THREADS`` threads."""
    return _threadpool_controller().limit(limits=_BLAS_THREADS, user_api="blas")


def threads_limited(n_threads):
    """A context in which BLAS and OpenMP run on ``n_threads`` threads."""
    return _threadpool_controller().limit(limits=n_threads)

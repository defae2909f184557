"""Where the splits of a search live: this process, loky workers, or dask.

The unit of work is a *split* (:class:`skhypergrad._objective.Split`): one
fold of one point of the discrete grid. It is prepared once (preprocessing,
the model's fold, its factorizations) where it will be solved, and stays
there for the whole search; each outer step sends the hyperparameters and
gets back losses, hypergradients, scores and times. The outer optimizer,
the memo of evaluated points, verbose lines, callbacks and interrupts stay in
the calling process.

Three engines run the same split code:

- in process (``n_jobs=1``, and models whose folds are too cheap to ship,
  ``DifferentiableModel.parallel_folds = False``);
- loky, on one machine: joblib's reusable executor gives a task to any of its
  workers, and a split's state lives in one process, so each worker is a
  single-process ``loky.ProcessPoolExecutor`` that owns a fixed set of splits
  in a registry keyed by the search's token. Large arrays, DataFrames and
  sparse matrices reach the workers as memory maps, not copies. A worker
  that dies is replaced and its splits are prepared again; workers idle for
  5 minutes are shut down, as joblib's are;
- dask.distributed, under ``joblib.parallel_backend("dask")``: ``X`` and
  ``y`` are scattered to every worker once; each prepared split is the result
  of a future held on a worker, and each step is a task on that future, run
  where it is held. If a worker dies, the scheduler prepares its splits again
  elsewhere from the future's lineage.
"""

import os
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import joblib
import numpy as np
import scipy.sparse as sp
from sklearn import config_context, get_config

from ._models._threads import threads_limited

__all__ = ["IN_PROCESS", "split_engine"]

# Data larger than this reaches loky workers as memory maps: joblib's
# default ``max_nbytes="1M"``, which joblib reads as 1024**2 bytes.
_MEMMAP_BYTES = 2**20

# Seconds between checks that the dask workers running a step are alive.
_DASK_POLL = 1.0

# How long a search whose dask workers all died waits for one to come back,
# in seconds, at each of its tries to prepare its splits again.
_DASK_WORKER_WAIT = 60

# Seconds after which the loky workers of searches no longer running are
# shut down (joblib's reusable executor lets its workers idle as long).
_IDLE_TIMEOUT = 300

# How many times the workers of one search may be replaced after dying
# before the search stops.
_MAX_RESTARTS = 3

_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def split_engine(n_jobs):
    """The engine that runs the splits of a search with ``n_jobs``.

    ``n_jobs=1`` runs them in this process, as does joblib's threading
    backend; under ``joblib.parallel_backend("dask")``, any other ``n_jobs``
    runs them on the dask cluster; otherwise on
    ``joblib.effective_n_jobs(n_jobs)`` loky workers (none when that is 1).
    """
    if n_jobs == 1:
        return IN_PROCESS
    backend, _ = joblib.parallel.get_active_backend()
    if getattr(backend, "uses_threads", False):
        # The threading backend (and joblib's own workers, whose nested
        # calls use it): the folds would fight for the GIL; solved here.
        return IN_PROCESS
    client = getattr(backend, "client", None)
    if client is not None and type(backend).__name__ == "DaskDistributedBackend":
        return _DaskEngine(client)
    n_workers = joblib.effective_n_jobs(n_jobs)
    return _LokyEngine(n_workers) if n_workers > 1 else IN_PROCESS


class _InProcessEngine:
    """Splits prepared and solved in this process, one after the other.

    BLAS and OpenMP run on one thread meanwhile, as in the models' solves: a
    fold's factorizations and products are too small to share between
    threads, whose synchronization then costs more than they save, the most
    when other processes load the machine (benchmarks/bench_parallel.py).
    """

    def start(self, splits, X, y):
        with threads_limited(1):
            return _InProcessPool([split.prepare(X, y) for split in splits])


IN_PROCESS = _InProcessEngine()


class _InProcessPool:
    def __init__(self, splits):
        self._splits = splits

    def run(self, method, calls):
        """``getattr(split, method)(*args)`` for each ``(index, args)``."""
        with threads_limited(1):
            return [getattr(self._splits[k], method)(*args) for k, args in calls]

    def close(self):
        self._splits = None


def _rewarn(caught):
    """Warn again, here, what a worker caught."""
    for message, category, filename, lineno in caught:
        warnings.warn_explicit(message, category, filename, lineno)


class _Hosted:
    """A split held by a worker, with the warnings not yet sent back."""

    def __init__(self, split, caught):
        self.split = split
        self.caught = caught

    def call(self, method, args, config, threads):
        with _worker_context(config, threads) as caught:
            result = getattr(self.split, method)(*args)
        pending, self.caught = self.caught, []
        return result, pending + _as_tuples(caught)


@contextmanager
def _worker_context(config, threads):
    """scikit-learn's configuration of the caller, the worker's share of
    threads, and the warnings recorded to be sent back."""
    with (
        config_context(**config),
        threads_limited(threads),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        yield caught


def _as_tuples(caught):
    return [(w.message, w.category, w.filename, w.lineno) for w in caught]


def _prepare_hosted(split, X, y, config, threads):
    """A split prepared on a worker (dask: the result of a held future)."""
    with _worker_context(config, threads) as caught:
        split.prepare(_load(X), _load(y))
    return _Hosted(split, _as_tuples(caught))


def _call_hosted(hosted, method, args, config, threads):
    return hosted.call(method, args, config, threads)


# ----------------------------------------------------------------- loky ----

# In each loky worker: the splits it owns, by search token and split index.
_WORKER_SPLITS = {}


def _prepare_on_worker(token, splits, X, y, config, threads):
    _WORKER_SPLITS.setdefault(token, {})
    for k, split in splits.items():
        _WORKER_SPLITS[token][k] = _prepare_hosted(split, X, y, config, threads)


def _call_on_worker(token, k, method, args, config, threads):
    return _WORKER_SPLITS[token][k].call(method, args, config, threads)


def _release_on_worker(token):
    _WORKER_SPLITS.pop(token, None)


class _Memmapped:
    """Data dumped to a file, whose arrays workers load as read-only maps."""

    def __init__(self, path):
        self.path = path

    def load(self):
        return joblib.load(self.path, mmap_mode="r")


def _load(data):
    return data.load() if isinstance(data, _Memmapped) else data


# Sparse formats whose arrays are numeric, and so can be mapped.
_MAPPED_SPARSE = ("csr", "csc", "coo", "bsr", "dia")

_UNSET = object()


def _joblib_setting(key, default):
    """A setting of the innermost ``joblib.parallel_config``, else ``default``."""
    config = getattr(getattr(joblib.parallel, "_backend", None), "config", None)
    value = (config or {}).get(key, _UNSET)
    # joblib marks the settings left alone with sentinels of their defaults.
    if value is _UNSET or hasattr(value, "default_value"):
        return default
    return value


def _mapped_nbytes(data):
    """The bytes of ``data`` that a memory map would share among workers."""
    if isinstance(data, np.ndarray):
        return 0 if data.dtype == object else data.nbytes
    if sp.issparse(data):
        if data.format not in _MAPPED_SPARSE:
            return 0
        return sum(a.nbytes for a in vars(data).values() if isinstance(a, np.ndarray))
    if type(data).__module__.startswith("pandas") and hasattr(data, "ndim"):
        # Numeric columns are mapped; text and object columns are copied.
        frame = data.to_frame() if data.ndim == 1 else data
        return int(frame.select_dtypes("number").memory_usage(index=False).sum())
    return 0


# Single-process loky executors, reused from search to search as joblib
# reuses its workers; replaced when one breaks, shut down when surplus to a
# later search or idle for _IDLE_TIMEOUT seconds.
_EXECUTORS = []
_LOCK = threading.Lock()
# Searches running on the executors, and the timer that shuts them down.
_running = 0
_idle_timer = None


def _searches_start(n_workers):
    """A search starts on ``n_workers`` executors: the surplus ones go."""
    global _running, _idle_timer
    with _LOCK:
        _running += 1
        if _idle_timer is not None:
            _idle_timer.cancel()
            _idle_timer = None
        if _running == 1:
            for executor in _EXECUTORS[n_workers:]:
                if executor is not None:
                    executor.shutdown(wait=False)
            del _EXECUTORS[n_workers:]


def _searches_end():
    """A search ends: if none runs, the executors go after _IDLE_TIMEOUT."""
    global _running, _idle_timer
    with _LOCK:
        _running -= 1
        if _running == 0:
            timer = threading.Timer(_IDLE_TIMEOUT, _shut_down_idle)
            timer.args = (timer,)
            timer.daemon = True
            _idle_timer = timer
            timer.start()


def _shut_down_idle(timer):
    global _idle_timer
    with _LOCK:
        if timer is not _idle_timer or _running:
            return  # a search started meanwhile
        _idle_timer = None
        for executor in _EXECUTORS:
            if executor is not None:
                executor.shutdown(wait=False)
        _EXECUTORS.clear()


def _executor(index, threads):
    from joblib.externals.loky import ProcessPoolExecutor

    while len(_EXECUTORS) <= index:
        _EXECUTORS.append(None)
    if _EXECUTORS[index] is None:
        _EXECUTORS[index] = ProcessPoolExecutor(
            max_workers=1, env=dict.fromkeys(_THREAD_VARIABLES, str(threads))
        )
    return _EXECUTORS[index]


def _replace_executor(index, threads):
    broken = _EXECUTORS[index]
    _EXECUTORS[index] = None
    if broken is not None:
        broken.shutdown(wait=False, kill_workers=True)
    return _executor(index, threads)


class _LokyEngine:
    """Splits owned by ``n_workers`` single-process loky executors."""

    def __init__(self, n_workers):
        self.n_workers = n_workers

    def start(self, splits, X, y):
        return _LokyPool(splits, X, y, min(self.n_workers, len(splits)))


class _LokyPool:
    def __init__(self, splits, X, y, n_workers):
        self._token = uuid.uuid4().hex
        self._splits = splits
        self._owner = [k % n_workers for k in range(len(splits))]
        # The cores this process may use (cgroup quotas, affinity).
        self._threads = max(1, joblib.cpu_count() // n_workers)
        self._config = get_config()
        self._folder = None
        self._X, self._y = self._shared(X), self._shared(y)
        self._restarts = 0
        # How many times each worker was replaced during this search.
        self._generation = [0] * n_workers
        self._open = True
        _searches_start(n_workers)
        try:
            prepared = [self._prepare(w) for w in range(n_workers)]
            for w, future in enumerate(prepared):
                try:
                    future.result()
                except (BrokenProcessPool, CancelledError) as error:
                    self._restart(w, error)
        except BaseException:
            # A preparation failed (error_score="raise"), or an interrupt.
            self.close()
            raise

    def _shared(self, data):
        """``data``, or a memory map of it if large (joblib's settings)."""
        max_nbytes = _joblib_setting("max_nbytes", _MEMMAP_BYTES)
        if isinstance(max_nbytes, str):
            max_nbytes = joblib.disk.memstr_to_bytes(max_nbytes)
        nbytes = _mapped_nbytes(data)
        if max_nbytes is None or nbytes == 0 or nbytes < max_nbytes:
            return data
        if self._folder is None:
            folder = _joblib_setting("temp_folder", None)
            self._folder = tempfile.mkdtemp(
                prefix="skhypergrad-",
                dir=folder or os.environ.get("JOBLIB_TEMP_FOLDER"),
            )
        path = os.path.join(self._folder, f"{len(os.listdir(self._folder))}.pkl")
        joblib.dump(data, path)
        return _Memmapped(path)

    def _prepare(self, worker):
        mine = {
            k: split for k, split in enumerate(self._splits) if self._owner[k] == worker
        }
        args = (self._token, mine, self._X, self._y, self._config, self._threads)
        try:
            return _executor(worker, self._threads).submit(_prepare_on_worker, *args)
        except BrokenProcessPool:
            # Broken before this search (an interrupt reached the workers).
            return _replace_executor(worker, self._threads).submit(
                _prepare_on_worker, *args
            )

    def _restart(self, worker, error):
        """Replace a dead worker and prepare its splits again."""
        while True:
            self._restarts += 1
            if self._restarts > _MAX_RESTARTS:
                raise RuntimeError(
                    f"Worker processes of the search died {self._restarts} times "
                    "(out of memory, or killed): the search stops. Use fewer "
                    "n_jobs, or less data per fold."
                ) from error
            self._generation[worker] += 1
            _replace_executor(worker, self._threads)
            try:
                self._prepare(worker).result()
                return
            except (BrokenProcessPool, CancelledError) as again:
                error = again

    def run(self, method, calls):
        """``split.method(*args)`` for each ``(index, args)``, on its worker."""
        submitted = [self._submit(k, method, args) for k, args in calls]
        results = []
        for (k, args), (generation, future) in zip(calls, submitted, strict=True):
            while True:
                try:
                    result, caught = future.result()
                    break
                except (BrokenProcessPool, CancelledError) as error:
                    # Its worker died: replaced once, then the call again.
                    if generation == self._generation[self._owner[k]]:
                        self._restart(self._owner[k], error)
                    generation, future = self._submit(k, method, args)
            _rewarn(caught)
            results.append(result)
        return results

    def _submit(self, k, method, args):
        worker = self._owner[k]
        while True:
            generation = self._generation[worker]
            try:
                future = _executor(worker, self._threads).submit(
                    _call_on_worker,
                    self._token,
                    k,
                    method,
                    args,
                    self._config,
                    self._threads,
                )
                return generation, future
            except BrokenProcessPool as error:
                self._restart(worker, error)

    def close(self):
        if not self._open:
            return
        self._open = False
        for worker in range(len(self._generation)):
            try:
                _executor(worker, self._threads).submit(_release_on_worker, self._token)
            except BrokenProcessPool:
                _replace_executor(worker, self._threads)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        _searches_end()


# ----------------------------------------------------------------- dask ----


class _DaskEngine:
    """Splits held as futures on the workers of a dask cluster."""

    def __init__(self, client):
        self.client = client

    def start(self, splits, X, y):
        return _DaskPool(self.client, splits, X, y)


class _DaskPool:
    def __init__(self, client, splits, X, y):
        self._client = client
        self._config = get_config()
        # Dask's workers run one BLAS thread per task by default (its nanny
        # sets OMP_NUM_THREADS=1...); the evaluations hold to that too.
        self._threads = 1
        # Keys that name the splits, on the dashboard and in task streams.
        self._key = f"skhypergrad-{uuid.uuid4().hex[:8]}"
        self._n_steps = 0
        self._restarts = 0
        self._start(splits, X, y)

    def _start(self, splits, X, y):
        """Scatter the data and prepare the splits on the workers."""
        from distributed import wait

        client = self._client
        self._unprepared, self._X, self._y = splits, X, y
        # The worker where each split's steps run, by split index.
        self._home = {}
        # Every worker gets the data, so that any of them can prepare a split
        # again if the one holding it dies.
        self._data = client.scatter([X, y], broadcast=True, hash=False)
        workers = sorted(client.ncores())
        self._splits = [
            client.submit(
                _prepare_hosted,
                split,
                *self._data,
                self._config,
                self._threads,
                key=f"{self._key}-prepare{self._restarts}-split{k}",
                workers=[workers[k % len(workers)]],
                allow_other_workers=True,
            )
            for k, split in enumerate(splits)
        ]
        wait(self._splits)
        for future in self._splits:
            if future.status == "error":
                future.result()

    def run(self, method, calls):
        """``split.method(*args)`` for each ``(index, args)``, where it is held."""
        while True:
            try:
                return self._run(method, calls)
            except CancelledError as error:
                # The scheduler gave up a split: the workers that held it and
                # the data died. Scattered again and prepared again.
                self._prepare_again(error)

    def _prepare_again(self, error):
        """Scatter the data and prepare every split again, on the workers
        that are alive; the search stops after ``_MAX_RESTARTS`` tries."""
        while True:
            self._restarts += 1
            if self._restarts > _MAX_RESTARTS:
                raise RuntimeError(
                    f"The dask workers of the search lost its data "
                    f"{self._restarts} times: the search stops."
                ) from error
            self._client.cancel(self._splits)
            try:
                # Workers restarted by their nannies may not be back yet, and
                # the scheduler may still list dead ones: a scatter to one of
                # them fails (CommClosedError, an OSError) and is tried again.
                self._client.wait_for_workers(1, timeout=_DASK_WORKER_WAIT)
                self._start(self._unprepared, self._X, self._y)
                return
            except OSError as again:
                error = again
                time.sleep(_DASK_POLL)

    def _run(self, method, calls):
        from distributed import wait

        self._n_steps += 1
        held = self._client.who_has([self._splits[k] for k, _ in calls])
        futures = [self._step(k, method, args, 0, held) for k, args in calls]
        # A step runs only on the worker holding its split, so that work
        # stealing cannot move it to a copy of the split. If that worker
        # dies, the step would wait for it forever: it is sent again, to
        # where the scheduler prepares the split again from its lineage.
        attempts = [0] * len(calls)
        while True:
            try:
                wait(futures, timeout=_DASK_POLL)
                break
            except TimeoutError:
                pass
            alive = set(self._client.ncores())
            for i, (k, args) in enumerate(calls):
                home = self._home.get(k)
                if not futures[i].done() and home is not None and home not in alive:
                    self._client.cancel(futures[i])
                    attempts[i] += 1
                    held = self._client.who_has([self._splits[k]])
                    futures[i] = self._step(k, method, args, attempts[i], held)
        results = []
        for result, caught in self._client.gather(futures):
            _rewarn(caught)
            results.append(result)
        return results

    def _step(self, k, method, args, attempt, held):
        """The task of ``split.method(*args)`` on the worker holding split k."""
        split = self._splits[k]
        holders = sorted(held.get(split.key, ()))
        # One copy: the one that ran the last steps, with their warm starts.
        home = self._home.get(k) if self._home.get(k) in holders else None
        home = home or (holders[0] if holders else None)
        self._home[k] = home
        retry = f"r{attempt}" if attempt else ""
        return self._client.submit(
            _call_hosted,
            split,
            method,
            args,
            self._config,
            self._threads,
            key=f"{self._key}-{method}{self._n_steps}{retry}-split{k}",
            workers=None if home is None else [home],
            allow_other_workers=False,
        )

    def close(self):
        self._client.cancel(self._splits)
        self._splits = self._data = self._X = self._y = None

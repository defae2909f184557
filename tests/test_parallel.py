"""n_jobs and dask: the folds of each step in workers, the search here.

Every search is compared with the same search with ``n_jobs=1``: the rows of
``cv_results_`` (points, losses, hypergradients, scores) are equal to 1e-10,
and the ``workers`` fixture checks that the folds were solved in workers, so
that a search falling back to this process fails. The dask tests start a
real two-process ``LocalCluster``.
"""

import os
import signal
import time
import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV, _parallel
from skhypergrad._models._ridge import RidgeModel

from ._parallel_models import RefusingScaler, UsersRidge, WarningScaler
from .test_progress import RecordingCallback, requires_callback_api

CV = 3
# The columns that must not depend on where the folds were solved.
_SCORED = ("params", "cv_loss", "mean_test", "std_test", "split")
_COMPARED = (*_SCORED, "hypergrad_")


@pytest.fixture(scope="module")
def distributed():
    return pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client(distributed):
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


class _Workers:
    """The engines started, and where each split was solved."""

    def __init__(self):
        self.started = []
        self.solved = {}

    def places(self):
        return set().union(*self.solved.values())

    def assert_solved_in(self, n_workers, n_splits=CV):
        """Every split solved in a worker, ``n_workers`` of them in all."""
        assert sorted(self.solved) == list(range(n_splits))
        assert os.getpid() not in self.places()
        assert len(self.places()) == n_workers


@pytest.fixture
def workers(monkeypatch):
    """Records the loky pids and dask workers that solved splits."""
    record = _Workers()

    def spy_start(engine_class, name):
        start = engine_class.start

        def spied(engine, *args):
            record.started.append(name)
            return start(engine, *args)

        monkeypatch.setattr(engine_class, "start", spied)

    def spy_run(pool_class, where):
        run = pool_class.run

        def spied(pool, method, calls):
            results = run(pool, method, calls)
            for k, _ in calls:
                record.solved.setdefault(k, set()).add(where(pool, k))
            return results

        monkeypatch.setattr(pool_class, "run", spied)

    def loky_pid(pool, k):
        return _parallel._EXECUTORS[pool._owner[k]].submit(os.getpid).result()

    spy_start(_parallel._LokyEngine, "loky")
    spy_start(_parallel._DaskEngine, "dask")
    spy_run(_parallel._LokyPool, loky_pid)
    spy_run(_parallel._DaskPool, lambda pool, k: pool._home[k])
    return record


def _regression():
    return make_regression(n_samples=90, n_features=6, noise=10, random_state=0)


def _searches():
    """(estimator, param_grid, X, y) of each model, small."""
    X_cancer, y_cancer = load_breast_cancer(return_X_y=True)
    X_cancer, y_cancer = X_cancer[::3], y_cancer[::3]
    X_reg, y_reg = _regression()
    X_clf, y_clf = make_classification(
        n_samples=90, n_features=6, n_informative=4, random_state=0
    )
    mlp = {"hidden_layer_sizes": (4,), "max_iter": 40, "random_state": 0}
    return {
        "ridge": (Ridge(), {"alpha": (1e-3, 1e3)}, X_reg, y_reg),
        "users_model": (UsersRidge(), {"alpha": (1e-3, 1e3)}, X_reg, y_reg),
        "logistic": (
            make_pipeline(StandardScaler(), LogisticRegression()),
            {"logisticregression__C": (1e-2, 1e2)},
            X_cancer,
            y_cancer,
        ),
        "mlp_regressor": (
            make_pipeline(StandardScaler(), MLPRegressor(**mlp)),
            {"mlpregressor__alpha": (1e-4, 1.0)},
            X_reg,
            y_reg / 100,
        ),
        "mlp_classifier": (
            MLPClassifier(**mlp),
            {"alpha": (1e-4, 1.0), "learning_rate_init": (1e-3, 1e-1)},
            X_clf,
            y_clf,
        ),
    }


def _fit(name, **params):
    estimator, param_grid, X, y = _searches()[name]
    search = HypergradSearchCV(
        estimator, param_grid, cv=CV, n_init=3, n_iter=3, **params
    )
    with warnings.catch_warnings():
        # The short MLP trainings do not converge, wherever they run.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return search.fit(X, y)


def assert_same_rows(
    ours, theirs, rtol=1e-10, n_rows=None, compared=_COMPARED, rows=None
):
    """The rows of two cv_results_ agree, times aside.

    The first ``n_rows`` rows, or those listed in ``rows``.
    """
    keys = [key for key in theirs if key.startswith(compared)]
    assert keys and set(keys) <= set(ours)
    if rows is None:
        rows = range(len(theirs["params"]))[:n_rows]
        assert len(ours["params"][:n_rows]) == len(rows)

    def pick(column):
        return [column[i] for i in rows]

    for key in keys:
        if key == "params":
            for a, b in zip(pick(ours[key]), pick(theirs[key]), strict=True):
                assert a.keys() == b.keys()
                np.testing.assert_allclose(
                    list(a.values()), list(b.values()), rtol=rtol
                )
        else:
            np.testing.assert_allclose(
                np.asarray(pick(ours[key]), dtype=float),
                np.asarray(pick(theirs[key]), dtype=float),
                rtol=rtol,
                atol=rtol,
                err_msg=key,
            )


_REFERENCES = {}


def _reference(name):
    if name not in _REFERENCES:
        _REFERENCES[name] = _fit(name, n_jobs=1).cv_results_
    return _REFERENCES[name]


@pytest.mark.parametrize("name", list(_searches()))
def test_n_jobs_gives_the_results_of_one_process(name, workers):
    assert_same_rows(_fit(name, n_jobs=2).cv_results_, _reference(name))
    if name == "ridge":
        assert not workers.solved  # cheap folds, solved here
    else:
        workers.assert_solved_in(2)


def test_all_processors_give_the_results_of_one_process(workers):
    assert_same_rows(_fit("logistic", n_jobs=-1).cv_results_, _reference("logistic"))
    n_workers = min(CV, joblib.effective_n_jobs(-1))
    if n_workers == 1:
        assert not workers.solved  # one core: solved here
    else:
        workers.assert_solved_in(n_workers)


@pytest.mark.parametrize("name", list(_searches()))
def test_dask_gives_the_results_of_one_process(client, name, workers):
    with joblib.parallel_backend("dask"):
        search = _fit(name)
    assert_same_rows(search.cv_results_, _reference(name))
    if name == "ridge":
        assert not workers.solved
    else:
        workers.assert_solved_in(2)
        assert workers.places() <= set(client.ncores())


def test_dask_prepares_each_split_once_and_steps_where_it_is(
    client, distributed, monkeypatch
):
    submitted = []
    submit = client.submit

    def spied(*args, **kwargs):
        # The search's tasks; the refit's own pass through (an older
        # scikit-learn's LogisticRegression.fit goes through joblib, so dask).
        key = kwargs.get("key")
        if isinstance(key, str) and key.startswith("skhypergrad-"):
            submitted.append((key, kwargs["allow_other_workers"]))
        return submit(*args, **kwargs)

    monkeypatch.setattr(client, "submit", spied)
    with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        search = _fit("logistic")
    # The steps may not be stolen by workers holding no split or a copy.
    steps = [strict for key, strict in submitted if "prepare" not in key]
    assert steps and not any(steps)
    # Keys: skhypergrad-<id>-prepare0-split<k>, skhypergrad-<id>-<step>-split<k>.
    where = {}
    for task in stream.data:
        if not str(task["key"]).startswith("skhypergrad-"):
            continue  # older releases of distributed record transfers too
        what, split = str(task["key"]).rsplit("-", 2)[1:]
        what = "prepare" if what.startswith("prepare") else what
        where.setdefault(split, {}).setdefault(what, set()).add(task["worker"])
    assert sorted(where) == [f"split{k}" for k in range(CV)]
    n_steps = len(search.cv_results_["params"])
    for tasks in where.values():
        prepared = tasks.pop("prepare")
        assert len(prepared) == 1
        assert len(tasks) >= n_steps
        # Every step of a split on the worker that prepared it.
        assert set().union(*tasks.values()) == prepared


def test_cheap_folds_stay_in_the_calling_process(monkeypatch):
    def no_workers(*args):
        raise AssertionError("Ridge's folds were sent to workers")

    monkeypatch.setattr(_parallel._LokyEngine, "start", no_workers)
    assert not RidgeModel.parallel_folds
    assert_same_rows(_fit("ridge", n_jobs=2).cv_results_, _reference("ridge"))


def test_the_threading_backend_solves_the_folds_here(monkeypatch):
    def no_workers(*args):
        raise AssertionError("the folds were sent to worker processes")

    monkeypatch.setattr(_parallel._LokyEngine, "start", no_workers)
    with joblib.parallel_backend("threading", n_jobs=2):
        search = _fit("logistic")
    assert_same_rows(search.cv_results_, _reference("logistic"))


def _spy_dump(monkeypatch):
    dumped = []
    dump = joblib.dump
    monkeypatch.setattr(
        _parallel.joblib,
        "dump",
        lambda data, path: (
            dumped.append((type(data).__name__, path)) or dump(data, path)
        ),
    )
    return dumped


def test_large_arrays_reach_loky_workers_as_memory_maps(monkeypatch, workers):
    monkeypatch.setattr(_parallel, "_MEMMAP_BYTES", 0)
    dumped = _spy_dump(monkeypatch)
    assert_same_rows(_fit("logistic", n_jobs=2).cv_results_, _reference("logistic"))
    workers.assert_solved_in(2)
    assert len(dumped) == 2  # X and y, once for the search
    assert not any(os.path.exists(path) for _, path in dumped)  # removed after


def test_dataframes_reach_loky_workers_as_memory_maps(monkeypatch, workers, tmp_path):
    pd = pytest.importorskip("pandas")
    estimator, param_grid, X, y = _searches()["logistic"]
    X = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    dumped = _spy_dump(monkeypatch)
    search = HypergradSearchCV(
        estimator, param_grid, cv=CV, n_init=3, n_iter=3, n_jobs=2
    )
    with joblib.parallel_config(temp_folder=str(tmp_path), max_nbytes=0):
        search.fit(X, pd.Series(y))
    workers.assert_solved_in(2)
    assert [kind for kind, _ in dumped] == ["DataFrame", "Series"]
    # In joblib's temp_folder, removed after the search.
    assert all(path.startswith(str(tmp_path)) for _, path in dumped)
    assert not any(os.path.exists(path) for _, path in dumped)
    assert_same_rows(search.cv_results_, _reference("logistic"))
    assert list(search.feature_names_in_) == list(X.columns)


def test_sparse_matrices_reach_loky_workers_as_memory_maps(monkeypatch, workers):
    sparse = pytest.importorskip("scipy.sparse")
    estimator, param_grid, X, y = _searches()["mlp_regressor"]
    estimator = estimator[-1]  # the MLP receives X sparse
    param_grid = {"alpha": param_grid["mlpregressor__alpha"]}
    X = sparse.csr_matrix(np.where(np.abs(X) > 1, X, 0))
    dumped = _spy_dump(monkeypatch)
    searches = []
    for n_jobs in (1, 2):
        search = HypergradSearchCV(
            estimator, param_grid, cv=CV, n_init=3, n_iter=3, n_jobs=n_jobs
        )
        with (
            joblib.parallel_config(max_nbytes=0),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", ConvergenceWarning)
            searches.append(search.fit(X, y / 100))
    workers.assert_solved_in(2)
    # Only by the search with workers: X and y.
    assert [kind for kind, _ in dumped] == ["csr_matrix", "ndarray"]
    assert_same_rows(searches[1].cv_results_, searches[0].cv_results_)


def test_max_nbytes_none_sends_copies(monkeypatch, workers):
    monkeypatch.setattr(_parallel, "_MEMMAP_BYTES", 0)
    dumped = _spy_dump(monkeypatch)
    with joblib.parallel_config(max_nbytes=None):
        assert_same_rows(_fit("logistic", n_jobs=2).cv_results_, _reference("logistic"))
    workers.assert_solved_in(2)
    assert not dumped


def test_a_callback_stops_the_search_from_the_calling_process(workers):
    stopped_at = 2
    states = []

    def stop(state):
        states.append(state.iteration)
        return state.iteration == stopped_at

    search = _fit("logistic", n_jobs=2, callbacks=stop)
    assert states == list(range(stopped_at + 1))
    assert len(search.cv_results_["params"]) == stopped_at + 1
    # The rows so far; a hypergradient the full search added later aside, and
    # the coarse points it solved again exactly, which agree to lbfgs's tol.
    ours, reference = search.cv_results_, _reference("logistic")
    same = [
        i
        for i in range(stopped_at + 1)
        if ours["solved_exactly"][i] == reference["solved_exactly"][i]
    ]
    assert same
    assert_same_rows(ours, reference, rows=same, compared=_SCORED)
    np.testing.assert_allclose(
        ours["cv_loss"], reference["cv_loss"][: stopped_at + 1], rtol=1e-2
    )
    assert hasattr(search, "best_estimator_")
    workers.assert_solved_in(2)


@requires_callback_api
def test_sklearn_callbacks_see_the_tasks_of_one_process_and_can_stop(workers):
    tasks = []
    for n_jobs in (1, 2):
        estimator, param_grid, X, y = _searches()["logistic"]
        callback = RecordingCallback(stop_at_iteration=3)
        search = HypergradSearchCV(estimator, param_grid, cv=CV, n_jobs=n_jobs)
        search.set_callbacks(callback)
        search.fit(X, y)
        assert len(search.cv_results_["params"]) == 3
        tasks.append((callback.begun, callback.ended))
    assert tasks[0] == tasks[1]
    workers.assert_solved_in(2)


def test_an_interrupt_keeps_the_points_evaluated_in_workers(workers):
    def interrupt(state):
        if state.iteration == 3:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted after 4 evaluated points"):
        search = _fit("mlp_classifier", n_jobs=2, callbacks=interrupt)
    assert len(search.cv_results_["params"]) == 4
    assert_same_rows(
        search.cv_results_, _reference("mlp_classifier"), n_rows=4, compared=_SCORED
    )
    best = search.cv_results_["params"][search.best_index_]
    assert search.best_estimator_.get_params()["alpha"] == best["alpha"]
    workers.assert_solved_in(2)


def _kill_once(pid_of_a_worker, at_iteration=2):
    killed = []

    def kill(state):
        if state.iteration == at_iteration and not killed:
            killed.append(pid_of_a_worker())
            os.kill(killed[0], signal.SIGKILL)

    return kill, killed


def test_a_killed_loky_worker_is_replaced_and_the_search_goes_on():
    _fit("logistic", n_jobs=2)  # the workers exist
    kill, killed = _kill_once(
        lambda: _parallel._EXECUTORS[0].submit(os.getpid).result()
    )
    search = _fit("logistic", n_jobs=2, callbacks=kill)
    assert killed
    assert _parallel._EXECUTORS[0].submit(os.getpid).result() != killed[0]
    # Prepared again, the logistic folds lost their warm starts: the same
    # optima, to the solver's tolerance.
    assert_same_rows(search.cv_results_, _reference("logistic"), rtol=1e-6)


def test_a_worker_dead_between_searches_is_replaced():
    _fit("logistic", n_jobs=2)
    pid = _parallel._EXECUTORS[1].submit(os.getpid).result()
    os.kill(pid, signal.SIGKILL)
    assert_same_rows(_fit("logistic", n_jobs=2).cv_results_, _reference("logistic"))


def test_workers_that_keep_dying_stop_the_search_clearly(monkeypatch):
    monkeypatch.setattr(_parallel, "_MAX_RESTARTS", 0)
    _fit("logistic", n_jobs=2)
    kill, killed = _kill_once(
        lambda: _parallel._EXECUTORS[1].submit(os.getpid).result()
    )
    with pytest.raises(RuntimeError, match="Worker processes of the search died"):
        _fit("logistic", n_jobs=2, callbacks=kill)


def test_a_killed_dask_worker_loses_nothing(client, workers):
    client.wait_for_workers(2)
    first = sorted(client.ncores())[0]
    kill, killed = _kill_once(lambda: client.run(os.getpid)[first])
    with joblib.parallel_backend("dask"):
        search = _fit("logistic", callbacks=kill)
    assert killed
    assert_same_rows(search.cv_results_, _reference("logistic"), rtol=1e-6)
    assert workers.started == ["dask"]
    assert sorted(workers.solved) == list(range(CV))


def test_a_dask_step_sent_to_a_dead_worker_is_sent_again(client, monkeypatch):
    # The scheduler names a holder that is gone by the time the step is sent.
    monkeypatch.setattr(_parallel, "_DASK_POLL", 0.1)
    gone = "tcp://127.0.0.1:9"
    who_has = client.who_has
    lied = []

    def stale_who_has(futures):
        held = who_has(futures)
        if len(futures) > 1 and not lied:
            lied.append(gone)
            return dict.fromkeys(held, (gone,))
        return held

    keys = []
    submit = client.submit

    def spied(*args, **kwargs):
        keys.append(kwargs["key"])
        return submit(*args, **kwargs)

    monkeypatch.setattr(client, "who_has", stale_who_has)
    monkeypatch.setattr(client, "submit", spied)
    with joblib.parallel_backend("dask"):
        search = _fit("logistic")
    assert lied
    # The first step of each split, restricted to the gone worker, sent again.
    assert sorted(key.rsplit("-", 2)[1:] for key in keys if "r1-" in key) == [
        ["evaluate1r1", f"split{k}"] for k in range(CV)
    ]
    assert_same_rows(search.cv_results_, _reference("logistic"))


def test_a_dask_cluster_that_loses_every_worker_gets_the_data_again(client, workers):
    client.wait_for_workers(2)  # one may be back from the test before
    killed = []

    def kill_all(state):
        if state.iteration == 2 and not killed:
            killed.extend(client.run(os.getpid).values())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    with joblib.parallel_backend("dask"):
        search = _fit("logistic", callbacks=kill_all)
    assert len(killed) == 2
    assert_same_rows(search.cv_results_, _reference("logistic"), rtol=1e-6)
    assert workers.started == ["dask"]
    assert sorted(workers.solved) == list(range(CV))


def test_an_error_in_a_worker_is_raised_here(workers):
    X, y = _regression()
    search = HypergradSearchCV(
        make_pipeline(RefusingScaler(), UsersRidge()),
        {"usersridge__alpha": (1e-3, 1e3)},
        cv=CV,
        n_jobs=2,
        error_score="raise",
    )
    with pytest.raises(ValueError, match="RefusingScaler refuses to fit"):
        search.fit(X, y)
    assert workers.started == ["loky"]


def test_warnings_in_workers_are_warned_here(workers):
    X, y = _regression()
    counts = []
    for n_jobs in (1, 2):
        search = HypergradSearchCV(
            make_pipeline(WarningScaler(), UsersRidge()),
            {"usersridge__alpha": (1e-3, 1e3)},
            cv=CV,
            n_jobs=n_jobs,
            n_iter=0,
        )
        with pytest.warns(UserWarning, match="WarningScaler was fitted") as caught:
            search.fit(X, y)
        counts.append(sum("WarningScaler" in str(w.message) for w in caught))
    # Each fold's, and the refit's.
    assert counts == [CV + 1, CV + 1]
    workers.assert_solved_in(2)


def _pids():
    return [executor.submit(os.getpid).result() for executor in _parallel._EXECUTORS]


def _wait_for(condition):
    """Polls until ``condition()`` holds, for at most a minute."""
    for _ in range(600):
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_idle_workers_are_shut_down_and_started_again(monkeypatch, workers):
    monkeypatch.setattr(_parallel, "_IDLE_TIMEOUT", 0.1)
    _fit("logistic", n_jobs=2)
    before = workers.places()
    assert _wait_for(lambda: not _parallel._EXECUTORS)
    assert_same_rows(_fit("logistic", n_jobs=2).cv_results_, _reference("logistic"))
    assert len(workers.places()) == 4  # two new workers
    assert not before & set(_pids())


def test_workers_surplus_to_a_search_are_shut_down(workers):
    _fit("logistic", n_jobs=3)
    workers.assert_solved_in(3)
    surplus = _parallel._EXECUTORS[2]
    _fit("logistic", n_jobs=2)
    assert len(_parallel._EXECUTORS) == 2
    with pytest.raises(RuntimeError, match="after shutdown"):
        surplus.submit(os.getpid)

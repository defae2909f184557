"""n_jobs and dask: the folds of each step in workers, the search here.

Every search is compared with the same search with ``n_jobs=1``: the rows of
``cv_results_`` (points, losses, hypergradients, scores) are equal to 1e-10.
The dask tests start a real two-process ``LocalCluster``.
"""

import os
import signal
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


def assert_same_rows(ours, theirs, rtol=1e-10, n_rows=None, compared=_COMPARED):
    """The rows of two cv_results_ agree, times aside."""
    keys = [key for key in theirs if key.startswith(compared)]
    assert keys and set(keys) <= set(ours)
    rows = slice(None, n_rows)
    assert len(ours["params"][rows]) == len(theirs["params"][rows])
    for key in keys:
        if key == "params":
            for a, b in zip(ours[key][rows], theirs[key][rows], strict=True):
                assert a.keys() == b.keys()
                np.testing.assert_allclose(
                    list(a.values()), list(b.values()), rtol=rtol
                )
        else:
            np.testing.assert_allclose(
                np.asarray(ours[key][rows], dtype=float),
                np.asarray(theirs[key][rows], dtype=float),
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
def test_n_jobs_gives_the_results_of_one_process(name):
    assert_same_rows(_fit(name, n_jobs=2).cv_results_, _reference(name))


def test_all_processors_give_the_results_of_one_process():
    assert_same_rows(_fit("logistic", n_jobs=-1).cv_results_, _reference("logistic"))


@pytest.mark.parametrize("name", list(_searches()))
def test_dask_gives_the_results_of_one_process(client, name):
    with joblib.parallel_backend("dask"):
        search = _fit(name)
    assert_same_rows(search.cv_results_, _reference(name))


def test_dask_prepares_each_split_once_and_steps_where_it_is(client, distributed):
    with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        search = _fit("logistic")
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


def test_large_arrays_reach_loky_workers_as_memory_maps(monkeypatch):
    monkeypatch.setattr(_parallel, "_MEMMAP_BYTES", 0)
    dumped = []
    dump = joblib.dump
    monkeypatch.setattr(
        _parallel.joblib,
        "dump",
        lambda data, path: dumped.append(path) or dump(data, path),
    )
    assert_same_rows(_fit("logistic", n_jobs=2).cv_results_, _reference("logistic"))
    assert len(dumped) == 2  # X and y, once for the search
    assert not any(os.path.exists(path) for path in dumped)  # removed after


def test_a_callback_stops_the_search_from_the_calling_process():
    stopped_at = 2
    states = []

    def stop(state):
        states.append(state.iteration)
        return state.iteration == stopped_at

    search = _fit("logistic", n_jobs=2, callbacks=stop)
    assert states == list(range(stopped_at + 1))
    assert len(search.cv_results_["params"]) == stopped_at + 1
    # The rows so far; a hypergradient the full search added later aside.
    assert_same_rows(
        search.cv_results_,
        _reference("logistic"),
        n_rows=stopped_at + 1,
        compared=_SCORED,
    )
    assert hasattr(search, "best_estimator_")


@requires_callback_api
def test_sklearn_callbacks_see_the_tasks_of_one_process_and_can_stop():
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


def test_an_interrupt_keeps_the_points_evaluated_in_workers():
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


def test_a_killed_dask_worker_loses_nothing(client):
    client.wait_for_workers(2)
    first = sorted(client.ncores())[0]
    kill, killed = _kill_once(lambda: client.run(os.getpid)[first])
    with joblib.parallel_backend("dask"):
        search = _fit("logistic", callbacks=kill)
    assert killed
    assert_same_rows(search.cv_results_, _reference("logistic"), rtol=1e-6)


def test_a_dask_cluster_that_loses_every_worker_gets_the_data_again(client):
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


def test_an_error_in_a_worker_is_raised_here():
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


def test_warnings_in_workers_are_warned_here():
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

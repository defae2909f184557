"""Following a search while it runs: verbose, callbacks, interruption."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from skhypergrad import HypergradSearchCV

from ._versions import requires_sklearn

CV = KFold(3, shuffle=True, random_state=0)


requires_callback_api = requires_sklearn(
    "1.9", "no callback API (sklearn.callback, set_callbacks)"
)


class RecordingCallback:
    """A scikit-learn FitCallback that records the tasks it sees."""

    def __init__(self, stop_at_iteration=None):
        self.stop_at_iteration = stop_at_iteration
        self.begun, self.ended = [], []

    def setup(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        self.begun.append(context.task_name)

    def on_fit_task_end(self, estimator, context):
        self.ended.append(context.task_name)
        return (
            context.task_name == "outer iteration"
            and self.ended.count("outer iteration") == self.stop_at_iteration
        )

    def teardown(self, estimator, context):
        pass


@requires_callback_api
def test_each_outer_iteration_is_a_sklearn_callback_task(diabetes):
    X, y = diabetes
    callback = RecordingCallback()
    search = HypergradSearchCV(
        Ridge(), {"alpha": (1e-3, 1e3), "fit_intercept": [True, False]}, cv=CV
    )
    search.set_callbacks(callback)
    search.fit(X, y)
    # One task per evaluation: each point, and in each of the two searches the
    # hypergradient added at the best coarse point, where the gradient phase
    # starts, and at the coarse point downhill from it (if it gets that far).
    coarse = search.cv_results_["outer_iter"] < 5
    n_evaluations = len(search.cv_results_["params"]) + int(
        np.sum(np.isfinite(search.cv_results_["hypergrad_alpha"][coarse]))
    )
    assert callback.begun.count("outer iteration") == n_evaluations
    assert callback.ended.count("outer iteration") == n_evaluations
    # Each trains every split: a task each, as each candidate's in GridSearchCV.
    n_split_tasks = n_evaluations * search.n_splits_
    assert callback.begun.count("candidate-split-evaluation") == n_split_tasks
    assert callback.ended.count("candidate-split-evaluation") == n_split_tasks
    assert callback.begun.count("continuous search") == 2
    assert callback.ended.count("continuous search") == 2
    assert callback.begun.count("refit-with-best-params") == 1
    assert callback.ended[-1] == "fit"


@requires_callback_api
def test_a_sklearn_callback_can_stop_the_search(diabetes):
    X, y = diabetes
    search = HypergradSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=CV)
    search.set_callbacks(RecordingCallback(stop_at_iteration=2))
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert hasattr(search, "best_estimator_")


@requires_callback_api
def test_progress_bar_follows_the_search(diabetes):
    pytest.importorskip("rich")
    from sklearn.callback import ProgressBar

    X, y = diabetes
    search = HypergradSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=CV)
    search.set_callbacks(ProgressBar())
    # As from GridSearchCV: the refit Ridge itself takes no callbacks.
    with pytest.warns(UserWarning, match="Ridge does not support callbacks"):
        search.fit(X, y)
    assert search.best_params_["alpha"] > 0


def test_interrupting_keeps_what_was_found(diabetes):
    X, y = diabetes

    def interrupt(state):
        if state.iteration == 3:
            raise KeyboardInterrupt

    search = HypergradSearchCV(
        Ridge(), {"alpha": (1e-3, 1e3)}, cv=CV, callbacks=[interrupt], scoring="r2"
    )
    with pytest.warns(UserWarning, match="interrupted after 4 evaluated points"):
        search.fit(X, y)
    results = search.cv_results_
    assert len(results["params"]) == 4
    assert search.best_index_ == int(np.argmax(results["mean_test_score"]))
    assert search.best_estimator_.alpha == search.best_params_["alpha"]


def test_interrupting_at_the_first_point_keeps_it(diabetes):
    X, y = diabetes

    def interrupt(state):
        raise KeyboardInterrupt

    search = HypergradSearchCV(
        Ridge(), {"alpha": (1e-3, 1e3)}, cv=CV, callbacks=interrupt
    )
    # The first point is recorded before callbacks run, so it is kept.
    with pytest.warns(UserWarning, match="interrupted after 1 evaluated points"):
        search.fit(X, y)


def test_html_representation_shows_the_estimator(diabetes):
    X, y = diabetes
    search = HypergradSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=CV)
    assert "estimator: Ridge" in search._repr_html_()
    search.fit(X, y)
    assert "best_estimator_: Ridge" in search._repr_html_()

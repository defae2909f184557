"""The MLP's reverse sweep: recomputed steps, cut records and their memory."""

import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from skhypergrad._models import _mlp_training as training
from skhypergrad._models._mlp import MLPClassifierModel, MLPRegressorModel

from ._numeric import make_fold

N_TRAIN = 150

SETTINGS = {
    "adam": {"solver": "adam"},
    "sgd-nesterov": {"solver": "sgd", "momentum": 0.8},
    "sgd-adaptive": {
        "solver": "sgd",
        "learning_rate": "adaptive",
        "nesterovs_momentum": False,
        "tol": 10.0,
        "n_iter_no_change": 1,
    },
    "early-stopping": {"solver": "adam", "early_stopping": True, "tol": 0.0},
}


def _fold(name, sample_weight=None, **settings):
    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16, y[:200]
    estimator = MLPClassifier(
        (8,), max_iter=7, batch_size=40, random_state=0, **SETTINGS[name], **settings
    )
    return make_fold(
        MLPClassifierModel("reverse"),
        estimator,
        X[:N_TRAIN],
        y[:N_TRAIN],
        X[N_TRAIN:],
        y[N_TRAIN:],
        sample_weight,
    )


def _hp(fold, **values):
    hp = {
        name: float(getattr(fold.estimator, name)) for name in training.HYPERPARAMETERS
    }
    hp.update(values)
    return hp


def _train(fold, hp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return training.train(fold.problem, hp, keep_checkpoints=True)


@pytest.mark.parametrize("name", ["adam", "sgd-nesterov", "sgd-adaptive"])
def test_recomputed_steps_give_the_trained_states(name):
    fold = _fold(name)
    hp = _hp(fold, alpha=0.01)
    run = _train(fold, hp)
    n_batches = len(fold.problem.batches)
    assert n_batches == 4 and run.snapshot == 7
    if name == "sgd-adaptive":
        assert max(run.divisions) > 0
    # From the first checkpoint, in stretches that start and end inside
    # epochs: the same states, to the last bit, as the training's.
    assert run.checkpoints[0] is None  # the initial state, not kept
    state = fold.problem.initial_state()
    for first, stop in [(0, 3), (3, 9), (9, 10), (10, 4 * n_batches)]:
        state = training._run_steps(fold.problem, hp, run, state, first, stop)
    np.testing.assert_array_equal(state, run.checkpoints[4])
    state = training._run_steps(
        fold.problem, hp, run, state, 4 * n_batches, 7 * n_batches
    )
    np.testing.assert_array_equal(state[: fold.layout.n_params], run.theta)


def _sweep(fold, hp, names):
    """The hypergradient and the steps swept, with what each carried back."""
    run = _train(fold, hp)
    swept = []

    def on_step(epoch, k, tape, z_bar, coef_bar):
        swept.append((epoch, k, tape.state.sum(), z_bar.sum(), coef_bar.sum()))

    grad = training.hypergradient_reverse(
        fold.problem, run, hp, names, fold.validation_loss, on_step
    )
    return grad, swept


@pytest.mark.parametrize("name", list(SETTINGS))
@pytest.mark.parametrize("weighted", [False, True])
def test_cut_sweep_equals_the_whole_record(name, weighted, monkeypatch):
    weights = np.random.RandomState(1).uniform(0.5, 2, N_TRAIN) if weighted else None
    fold = _fold(name, weights)
    hp = _hp(fold, alpha=0.01)
    names = training.solver_hyperparameters(fold.estimator.solver)
    with np.errstate(all="ignore"):
        reference, reference_steps = _sweep(fold, hp, names)
        # Every checkpoint kept and every epoch recorded whole: the steps are
        # swept last to first.
        n_batches = len(fold.problem.batches)
        n_epochs = reference_steps[0][0] + 1
        assert [step[:2] for step in reference_steps] == [
            (epoch, k)
            for epoch in range(n_epochs - 1, -1, -1)
            for k in range(n_batches - 1, -1, -1)
        ]
        assert np.all(reference != 0)
        for fanout in (2, 3):
            # Every third epoch kept, records cut down to single steps.
            monkeypatch.setattr(training, "_CHECKPOINT_BYTES", 1)
            monkeypatch.setattr(training, "_TAPE_BYTES", 1)
            monkeypatch.setattr(training, "_FANOUT", fanout)
            grad, steps = _sweep(fold, hp, names)
            np.testing.assert_array_equal(grad, reference)
            assert steps == reference_steps


def test_the_cut_sweep_holds_a_few_states(monkeypatch):
    # 30 minibatch steps an epoch. Recording a whole epoch holds 30 states
    # and gradients; cut into records of at most 2 steps, the sweep holds
    # the kept checkpoints, a few states per level of cutting and the record.
    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16, y[:200]
    estimator = MLPRegressor(
        (64,), max_iter=4, batch_size=5, random_state=0, solver="adam"
    )
    fold = make_fold(
        MLPRegressorModel("reverse"),
        estimator,
        X[:N_TRAIN],
        y[:N_TRAIN],
        X[N_TRAIN:],
        y[N_TRAIN:],
    )
    problem = fold.problem
    hp = _hp(fold, alpha=0.01)
    names = ["alpha", "learning_rate_init"]
    state_nbytes = 8 * (problem.layout.n_params + problem.n_moments)
    assert len(problem.batches) == 30

    def sweep_peak():
        run = _train(fold, hp)
        kept = sum(s.nbytes for s in run.checkpoints.values() if s is not None)
        tracemalloc.start()
        try:
            grad = training.hypergradient_reverse(
                problem, run, hp, names, fold.validation_loss
            )
            return grad, (tracemalloc.get_traced_memory()[1] + kept) / state_nbytes
        finally:
            tracemalloc.stop()

    whole, whole_peak = sweep_peak()
    monkeypatch.setattr(training, "_TAPE_BYTES", 2 * problem.step_record_nbytes)
    cut, cut_peak = sweep_peak()
    np.testing.assert_array_equal(cut, whole)
    # In states: 3 checkpoints (the first state is made again), then 4 / 3
    # (a state and a gradient) for each step recorded.
    assert whole_peak > 3 + 30 * 4 / 3
    # 3 checkpoints, 2 + 2 + 1 first states of parts (30 steps cut in 3
    # parts of 10, cut in parts of 4, cut in parts of 2), a record of 2
    # steps, and the sweep's working arrays (a few states).
    assert cut_peak < 3 + 5 + 3 + 8

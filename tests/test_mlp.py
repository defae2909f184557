"""The MLP models: scikit-learn's training replayed exactly, exact hypergradients."""

import warnings

import numpy as np
import pytest
from autograd.test_util import check_grads
from sklearn.base import clone
from sklearn.datasets import (
    load_digits,
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.metrics import log_loss, mean_poisson_deviance, mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV, cross_val_hypergrad
from skhypergrad._models import _REGISTRY
from skhypergrad._models import _mlp as mlp
from skhypergrad._models import _mlp_layers as layers
from skhypergrad._models import _mlp_training as training
from skhypergrad._models._mlp import MLPClassifierModel, MLPRegressorModel
from skhypergrad._objective import CrossValObjective

from ._numeric import central_difference, make_fold, value_and_grad
from ._versions import requires_sklearn

N_TRAIN = 150


def _digits():
    X, y = load_digits(return_X_y=True)
    return X[:200] / 16, y[:200]


def _binary():
    return make_classification(200, 6, random_state=0)


def _strings():
    X, y = _digits()
    return X, np.array(["cat", "dog", "emu"])[y % 3]


def _multilabel():
    return make_multilabel_classification(200, 8, n_classes=3, random_state=0)


def _regression(n_targets=1):
    X, y = make_regression(200, 8, noise=5.0, n_targets=n_targets, random_state=0)
    return X, y / y.std(axis=0)


def _regression_2d():
    return _regression(2)


def _counts():
    X, _ = _regression()
    rate = np.exp(X[:, :2] @ np.array([0.3, -0.2]))
    return X, np.random.RandomState(0).poisson(rate).astype(float)


DATA = {
    "digits": (_digits, MLPClassifier),
    "binary": (_binary, MLPClassifier),
    "strings": (_strings, MLPClassifier),
    "multilabel": (_multilabel, MLPClassifier),
    "regression": (_regression, MLPRegressor),
    "regression-2d": (_regression_2d, MLPRegressor),
    "counts": (_counts, MLPRegressor),
}
MODELS = {MLPClassifier: MLPClassifierModel, MLPRegressor: MLPRegressorModel}


def _problem(data, **settings):
    make_data, estimator_class = DATA[data]
    X, y = make_data()
    params = {"hidden_layer_sizes": (8,), "max_iter": 25, "random_state": 0}
    if data == "counts":
        params["loss"] = "poisson"
    params.update(settings)
    estimator = estimator_class(**params)
    split = (X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:])
    return estimator, MODELS[estimator_class](), split


def _fit_both(estimator, model, split, sample_weight=None, params=None):
    """Our fold, its solution's fitted estimator and scikit-learn's, with warnings."""
    X_train, y_train, X_val, y_val = split
    with warnings.catch_warnings(record=True) as ours_caught:
        warnings.simplefilter("always")
        fold = make_fold(
            model, estimator, X_train, y_train, X_val, y_val, sample_weight
        )
        loss, _, solution = value_and_grad(fold, params or {})
    with warnings.catch_warnings(record=True) as reference_caught:
        warnings.simplefilter("always")
        reference = clone(estimator).set_params(**(params or {}))
        reference.fit(X_train, y_train, sample_weight=sample_weight)
    categories = [
        sorted(
            {
                type(w.message).__name__
                for w in caught
                if w.category is not RuntimeWarning
            }
        )
        for caught in (ours_caught, reference_caught)
    ]
    return fold, solution, loss, solution.fitted_estimator(), reference, categories


PARITY_CASES = [
    ("digits", {}),
    ("digits", {"solver": "sgd"}),
    ("digits", {"solver": "sgd", "nesterovs_momentum": False, "momentum": 0.5}),
    ("digits", {"solver": "sgd", "momentum": 0.0}),
    ("digits", {"batch_size": 17}),
    ("digits", {"early_stopping": True, "n_iter_no_change": 3, "max_iter": 60}),
    ("digits", {"tol": 1e-2, "n_iter_no_change": 2, "max_iter": 200}),
    ("digits", {"activation": "tanh", "hidden_layer_sizes": (6, 5)}),
    ("digits", {"activation": "logistic", "shuffle": False}),
    ("digits", {"activation": "identity", "hidden_layer_sizes": ()}),
    ("binary", {}),
    (
        "binary",
        {"solver": "sgd", "learning_rate": "invscaling", "learning_rate_init": 0.5},
    ),
    ("binary", {"early_stopping": True, "validation_fraction": 0.2, "max_iter": 60}),
    ("strings", {}),
    ("strings", {"solver": "sgd", "early_stopping": True, "n_iter_no_change": 2}),
    ("multilabel", {}),
    ("multilabel", {"early_stopping": True, "solver": "sgd"}),
    ("regression", {}),
    ("regression", {"solver": "sgd", "learning_rate_init": 0.01}),
    (
        "regression",
        {
            "solver": "sgd",
            "learning_rate": "adaptive",
            "learning_rate_init": 0.01,
            "tol": 1e-2,
            "n_iter_no_change": 2,
            "max_iter": 80,
        },
    ),
    (
        "regression",
        {
            "early_stopping": True,
            "learning_rate_init": 0.03,
            "n_iter_no_change": 3,
            "max_iter": 100,
        },
    ),
    ("regression", {"tol": 1e-2, "n_iter_no_change": 1, "max_iter": 300}),
    ("regression", {"batch_size": 1000}),
    ("regression-2d", {"activation": "tanh", "batch_size": 32}),
    ("counts", {}),
    ("counts", {"solver": "sgd", "learning_rate_init": 0.01}),
]


def _parity_param(data, settings):
    marks = []
    if data == "strings" and settings.get("early_stopping"):
        # The reference fit itself fails: scoring the validation set calls
        # np.isnan on the predicted labels, strings here.
        marks.append(
            requires_sklearn(
                "1.9", "MLPClassifier(early_stopping=True).fit fails on string labels"
            )
        )
    settings_id = "-".join(f"{k}={v}" for k, v in settings.items()) or "default"
    return pytest.param(data, settings, id=f"{data}-{settings_id}", marks=marks)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(
    "data, settings", [_parity_param(data, settings) for data, settings in PARITY_CASES]
)
def test_training_replays_sklearn_fit(data, settings, weighted):
    estimator, model, split = _problem(data, **settings)
    weights = np.random.RandomState(1).uniform(0.5, 2, N_TRAIN) if weighted else None
    _, _, loss, ours, reference, warned = _fit_both(estimator, model, split, weights)

    for mine, theirs in zip(
        ours.coefs_ + ours.intercepts_,
        reference.coefs_ + reference.intercepts_,
        strict=True,
    ):
        assert mine.shape == theirs.shape
        np.testing.assert_allclose(
            mine, theirs, rtol=1e-6, atol=1e-6 * np.abs(theirs).max()
        )
    assert len(ours.coefs_) == len(reference.coefs_)
    assert warned[0] == warned[1]  # ConvergenceWarning, batch-size UserWarning
    for name in (
        "n_iter_",
        "t_",
        "n_outputs_",
        "n_layers_",
        "out_activation_",
        "n_features_in_",
    ):
        assert getattr(ours, name) == getattr(reference, name), name
    np.testing.assert_allclose(ours.loss_curve_, reference.loss_curve_, rtol=1e-9)
    assert ours.loss_ == pytest.approx(reference.loss_, rel=1e-9)
    if estimator.early_stopping:
        assert ours.best_loss_ is None and reference.best_loss_ is None
        np.testing.assert_allclose(
            ours.validation_scores_, reference.validation_scores_
        )
        assert ours.best_validation_score_ == reference.best_validation_score_
    else:
        assert ours.best_loss_ == pytest.approx(reference.best_loss_, rel=1e-9)
        assert ours.validation_scores_ is None and ours.best_validation_score_ is None

    X_val, y_val = split[2], split[3]
    if isinstance(estimator, MLPClassifier):
        np.testing.assert_array_equal(ours.classes_, reference.classes_)
        np.testing.assert_array_equal(ours.predict(X_val), reference.predict(X_val))
        proba = reference.predict_proba(X_val)
        np.testing.assert_allclose(
            ours.predict_proba(X_val), proba, rtol=1e-6, atol=1e-12
        )
        if data == "multilabel":
            eps = np.finfo(float).eps
            p = np.clip(proba, eps, 1 - eps)
            expected = -np.mean(
                np.sum(y_val * np.log(p) + (1 - y_val) * np.log(1 - p), 1)
            )
        else:
            expected = log_loss(y_val, proba, labels=reference.classes_)
    else:
        prediction = reference.predict(X_val)
        np.testing.assert_allclose(
            ours.predict(X_val), prediction, rtol=1e-6, atol=1e-9
        )
        if data == "counts":
            expected = mean_poisson_deviance(y_val, prediction)
        else:
            expected = mean_squared_error(y_val, prediction)
    # The validation loss is that of scikit-learn's metric on the fitted
    # model (up to the clipping of log_loss).
    assert loss == pytest.approx(expected, rel=1e-7)


def test_parity_cases_exercise_the_stopping_rules():
    # The parity cases above must exercise what they claim: tol stopping
    # before max_iter, divisions of the adaptive learning rate, and an
    # early-stopping snapshot before the last epoch.
    for data, settings in PARITY_CASES:
        if "tol" in settings:
            estimator, model, split = _problem(data, **settings)
            _, solution, *_ = _fit_both(estimator, model, split)
            assert solution.run.n_iter < settings["max_iter"], settings
            if settings.get("learning_rate") == "adaptive":
                assert solution.run.divisions[-1] > 0

    estimator, model, split = _problem(
        "regression",
        early_stopping=True,
        learning_rate_init=0.03,
        n_iter_no_change=3,
        max_iter=100,
    )
    _, solution, *_ = _fit_both(estimator, model, split)
    assert 0 < solution.run.snapshot < solution.run.n_iter


def test_random_state_instance_is_copied_like_clone():
    estimator, model, split = _problem(
        "digits", random_state=np.random.RandomState(3), max_iter=5
    )
    with pytest.warns(ConvergenceWarning):
        solution = make_fold(model, estimator, *split).solve({})
        again = make_fold(model, estimator, *split).solve({})
    with pytest.warns(ConvergenceWarning):
        reference = clone(estimator).fit(split[0], split[1])
    for ours in (solution.fitted_estimator(), again.fitted_estimator()):
        np.testing.assert_allclose(ours.coefs_[0], reference.coefs_[0], rtol=1e-6)


def test_fitted_estimator_has_the_searched_values():
    estimator, model, split = _problem("digits", solver="sgd", max_iter=3)
    fold = make_fold(model, estimator, *split)
    params = {"alpha": 0.3, "learning_rate_init": 0.02, "momentum": 0.5}
    with pytest.warns(ConvergenceWarning):
        _, _, solution = value_and_grad(fold, params)
    fitted = solution.fitted_estimator()
    assert {k: fitted.get_params()[k] for k in params} == params
    assert fitted.get_params()["beta_1"] == estimator.beta_1
    with pytest.warns(ConvergenceWarning):
        reference = clone(estimator).set_params(**params).fit(split[0], split[1])
    np.testing.assert_allclose(fitted.coefs_[1], reference.coefs_[1], rtol=1e-6)


# ---------------------------------------------------------------------------
# Hypergradients
# ---------------------------------------------------------------------------

LOGIT = {"momentum", "beta_1", "beta_2"}


def _search_scale_derivative(fold, params, name, step=1e-4):
    """Central difference of the loss in log (or logit) of ``name``."""
    if name in LOGIT:
        to_user = lambda s: 1 / (1 + np.exp(-s))  # noqa: E731
        start = np.log(params[name] / (1 - params[name]))
    else:
        to_user, start = np.exp, np.log(params[name])
    n_iter = []

    def loss_at(s):
        loss, _, solution = value_and_grad(fold, {**params, name: float(to_user(s))})
        n_iter.append((solution.run.n_iter, solution.run.snapshot))
        return loss

    fd = central_difference(loss_at, start, step)
    # The stopping epoch and the snapshot are held fixed by the
    # hypergradient: the difference quotient is only comparable if they did
    # not change between the two points.
    assert n_iter[0] == n_iter[1]
    return fd


GRADIENT_CASES = [
    ("digits", {}),
    ("binary", {}),
    ("multilabel", {}),
    ("regression", {}),
    ("regression-2d", {"activation": "logistic", "hidden_layer_sizes": (6, 4)}),
    ("counts", {}),
    ("regression", {"early_stopping": True, "max_iter": 12, "n_iter_no_change": 3}),
    ("digits", {"learning_rate": "invscaling", "sample_weight": True}),
]


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize(
    "data, settings",
    GRADIENT_CASES,
    ids=[f"{d}-{'-'.join(s) or 'default'}" for d, s in GRADIENT_CASES],
)
def test_hypergradient_matches_central_differences(data, settings, solver):
    settings = dict(settings)
    weighted = settings.pop("sample_weight", False)
    estimator, model, split = _problem(
        data,
        solver=solver,
        activation=settings.pop("activation", "tanh"),
        max_iter=settings.pop("max_iter", 8),
        batch_size=40,
        **settings,
    )
    weights = np.random.RandomState(1).uniform(0.5, 2, N_TRAIN) if weighted else None
    fold = make_fold(model, estimator, *split, sample_weight=weights)
    if solver == "sgd":
        params = {"alpha": 0.01, "learning_rate_init": 0.05, "momentum": 0.7}
    else:
        params = {
            "alpha": 0.01,
            "learning_rate_init": 0.01,
            "beta_1": 0.8,
            "beta_2": 0.95,
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        loss, grads, _ = value_and_grad(fold, params)
        assert np.isfinite(loss)
        for name, value in params.items():
            scale = value * (1 - value) if name in LOGIT else value
            fd = _search_scale_derivative(fold, params, name)
            np.testing.assert_allclose(
                scale * grads[name], fd, rtol=1e-5, atol=1e-9 * loss
            )


SWEEP_CASES = [
    ("digits", {"activation": "relu", "early_stopping": True}),
    ("digits", {"activation": "tanh", "early_stopping": True}),
    ("digits", {"activation": "identity", "hidden_layer_sizes": ()}),
    ("digits", {"activation": "logistic", "hidden_layer_sizes": (6, 5)}),
    ("digits", {"activation": "tanh", "sample_weight": True}),
    ("binary", {"activation": "tanh"}),
    ("multilabel", {"activation": "relu", "hidden_layer_sizes": (6, 5)}),
    ("regression-2d", {"activation": "tanh", "sample_weight": True}),
    ("counts", {"activation": "logistic"}),
]


@pytest.mark.parametrize(
    "solver, nesterov",
    [("sgd", True), ("sgd", False), ("adam", True)],
    ids=["sgd-nesterov", "sgd", "adam"],
)
@pytest.mark.parametrize(
    "data, settings",
    SWEEP_CASES,
    ids=[f"{d}-{'-'.join(f'{k}={v}' for k, v in s.items())}" for d, s in SWEEP_CASES],
)
def test_forward_and_reverse_modes_agree(data, settings, solver, nesterov, monkeypatch):
    # Reverse mode sweeps the steps backwards by hand (_step_vjp); forward
    # mode is autograd's, through the traced steps. Every network shape,
    # output and weighting must give the same derivatives.
    settings = dict(settings)
    weighted = settings.pop("sample_weight", False)
    estimator, model, split = _problem(
        data,
        solver=solver,
        max_iter=6,
        batch_size=40,
        nesterovs_momentum=nesterov,
        **settings,
    )
    weights = np.random.RandomState(1).uniform(0.5, 2, N_TRAIN) if weighted else None
    names = ("alpha", "learning_rate_init", "momentum" if solver == "sgd" else "beta_2")
    if solver == "adam":
        names += ("beta_1",)
    params = {name: 0.5 * getattr(estimator, name) + 0.01 for name in names}
    model_class = type(model)
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for mode in ("reverse", "forward"):
            fold = make_fold(
                model_class(mode), estimator, *split, sample_weight=weights
            )
            results.append(value_and_grad(fold, params)[:2])
        # Keep only every k-th checkpoint, recompute the others.
        monkeypatch.setattr(training, "_CHECKPOINT_BYTES", 1)
        fold = make_fold(
            model_class("reverse"), estimator, *split, sample_weight=weights
        )
        results.append(value_and_grad(fold, params)[:2])
    (loss, reference), *others = results
    assert all(reference.values())
    for other_loss, other in others:
        assert other_loss == loss
        for name in names:
            assert other[name] == pytest.approx(reference[name], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_hypergradient_after_the_loss_at_the_same_point_trains_once(mode, monkeypatch):
    estimator, _, split = _problem("digits", max_iter=6, batch_size=40)
    params = {"alpha": 0.01, "learning_rate_init": 0.01, "beta_1": 0.8}
    names = list(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fold = make_fold(MLPClassifierModel(mode), estimator, *split)
        expected = value_and_grad(fold, params)[:2]
        trainings = []
        original = training.train
        monkeypatch.setattr(
            training,
            "train",
            lambda *args, **kwargs: trainings.append(1) or original(*args, **kwargs),
        )
        fold = make_fold(MLPClassifierModel(mode), estimator, *split)
        solution = fold.solve(params)
        assert solution.hypergradient(names) == expected[1]
        assert solution.loss == expected[0] and len(trainings) == 1
        # Elsewhere, or once the checkpoints were used, it trains again.
        assert solution.hypergradient(names) == expected[1]
        fold.solve({**params, "alpha": 0.02})
        assert len(trainings) == 2 + (mode == "reverse")
        # The search keeps the last two solutions of each split, not more.
        monkeypatch.setitem(_REGISTRY, MLPClassifier, MLPClassifierModel(mode))
        X, y = _digits()
        cv = [(np.arange(N_TRAIN), np.arange(N_TRAIN, len(X)))]
        objective = CrossValObjective(estimator, X, y, cv, names)
        del trainings[:]
        objective.evaluate(params)
        objective.evaluate({**params, "alpha": 0.03})
        result = objective.evaluate(params, differentiate=True)
        assert (result.loss, result.hypergradient) == expected and len(trainings) == 2
        objective.evaluate({**params, "alpha": 0.04})
        objective.evaluate({**params, "alpha": 0.05})
        objective.evaluate({**params, "alpha": 0.03}, differentiate=True)
        assert len(trainings) == 5
        # Checkpoints too large to keep for a hypergradient that may never be
        # asked: one asked anyway trains again, unless it was announced.
        monkeypatch.setattr(mlp, "_KEPT_CHECKPOINT_BYTES", 1)
        del trainings[:]
        solution = fold.solve(params)
        assert solution.hypergradient(names) == expected[1]
        assert solution.loss == expected[0]
        assert len(trainings) == 1 + (mode == "reverse")
        del trainings[:]
        solution = fold.solve(params, differentiate=True)
        assert solution.hypergradient(names) == expected[1] and len(trainings) == 1


def test_auto_mode_picks_forward_for_one_hyperparameter():
    assert MLPRegressorModel().mode_for(1) == "forward"
    assert MLPRegressorModel().mode_for(3) == "reverse"
    assert MLPRegressorModel("forward").mode_for(3) == "forward"


def test_empty_params_gives_the_loss_only():
    estimator, model, split = _problem("regression", max_iter=3)
    fold = make_fold(model, estimator, *split)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        loss, grads, _ = value_and_grad(fold, {})
    assert grads == {} and np.isfinite(loss)


def test_divergence_gives_a_non_finite_loss_and_nan_gradient():
    estimator, model, split = _problem(
        "regression", solver="sgd", learning_rate_init=100.0, max_iter=20
    )
    fold = make_fold(model, estimator, *split)
    params = {"alpha": 1e-4, "learning_rate_init": 100.0, "momentum": 0.9}
    loss, grads, solution = value_and_grad(fold, params)
    assert not np.isfinite(loss)
    # No gradient at a diverged training: nan, as for every model.
    assert set(grads) == {"alpha", "learning_rate_init", "momentum"}
    assert all(np.isnan(g) for g in grads.values())
    assert solution.run.n_iter < 20  # stopped at the first non-finite weights
    # scikit-learn's fit fails on the same settings, and so does our model.
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            clone(estimator).set_params(**params).fit(split[0], split[1])
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        solution.fitted_estimator()
    # A reasonable point after a diverged one works again.
    with pytest.warns(ConvergenceWarning):
        loss, grads, _ = value_and_grad(fold, {**params, "learning_rate_init": 1e-3})
    assert np.isfinite(loss) and all(np.isfinite(list(grads.values())))


def test_divergence_with_early_stopping_keeps_the_best_snapshot():
    # scikit-learn restores the best finite snapshot (here after the first
    # epoch, before the weights blow up), so its fit succeeds; so does ours,
    # and the hypergradient is that of the snapshot.
    estimator, model, split = _problem(
        "regression",
        solver="sgd",
        learning_rate_init=100.0,
        max_iter=15,
        early_stopping=True,
    )
    params = {"alpha": 1e-4, "learning_rate_init": 100.0}
    with np.errstate(all="ignore"):
        fold, solution, loss, ours, reference, _ = _fit_both(
            estimator, model, split, params=params
        )
    np.testing.assert_allclose(ours.coefs_[0], reference.coefs_[0], rtol=1e-6)
    assert np.isinf(ours.validation_scores_[-1]) or np.isnan(
        ours.validation_scores_[-1]
    )
    assert solution.run.snapshot == 1 and np.isfinite(loss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, grads, _ = value_and_grad(fold, params)
    assert all(np.isfinite(list(grads.values())))


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "estimator, match",
    [
        (
            MLPRegressor(solver="lbfgs", random_state=0),
            "solver='lbfgs'.*Use solver='adam'",
        ),
        (MLPClassifier(random_state=None), "random_state=None.*integer random_state"),
        (MLPRegressor(random_state=0, warm_start=True), "warm_start=True"),
        (MLPClassifier(random_state=0, alpha=-1.0), "'alpha' parameter"),
        (MLPRegressor(loss="absolute_error", random_state=0), "'loss' parameter"),
    ],
    ids=["lbfgs", "random_state-None", "warm_start", "negative-alpha", "bad-loss"],
)
def test_check_estimator_refuses(estimator, match):
    with pytest.raises(ValueError, match=match):
        MODELS[type(estimator)]().check_estimator(estimator)


@pytest.mark.parametrize(
    "data, settings, params, match",
    [
        (
            "regression",
            {},
            {"gamma": 1.0},
            "no continuous hyperparameter \\['gamma'\\]",
        ),
        ("regression", {}, {"momentum": 0.5}, "not used by solver='adam'"),
        ("digits", {"solver": "sgd"}, {"beta_1": 0.5}, "not used by solver='sgd'"),
    ],
    ids=["unknown", "momentum-with-adam", "beta-with-sgd"],
)
def test_solve_refuses(data, settings, params, match):
    estimator, model, split = _problem(data, max_iter=2, **settings)
    fold = make_fold(model, estimator, *split)
    with pytest.raises(ValueError, match=match):
        fold.solve(params)


def test_fold_errors():
    estimator, model, (X_train, y_train, X_val, y_val) = _problem("digits")
    # D1: a class the training fold lacks costs the clipped log-loss of
    # probability 0 (scikit-learn's log_loss with all the labels).
    fold = make_fold(model, estimator, X_train, np.minimum(y_train, 8), X_val, y_val)
    unseen = y_val == 9
    assert unseen.any()
    assert fold.unseen_loss == pytest.approx(
        unseen.mean() * -np.log(np.finfo(float).eps)
    )
    with pytest.raises(ValueError, match="validation set is too small"):
        make_fold(
            model,
            estimator.set_params(early_stopping=True),
            X_train[:10],
            y_train[:10],
            X_val,
            y_val,
        )
    # A fitted estimator is a solution's: an untrained fold has none to give.
    fold = make_fold(model, clone(estimator), X_train, y_train, X_val, y_val)
    assert not hasattr(fold, "fitted_estimator")
    with pytest.raises(ValueError, match="mode must be"):
        MLPClassifierModel(mode="backward")


# ---------------------------------------------------------------------------
# The primitives
# ---------------------------------------------------------------------------


@pytest.fixture
def layer_data():
    rng = np.random.RandomState(0)
    layout = training.NetworkLayout([4, 3, 2])
    params = rng.normal(size=layout.n_params)
    return rng, layout, params


@pytest.mark.parametrize("name", ["identity", "relu", "tanh", "logistic"])
def test_layer_primitives_pass_check_grads(layer_data, name):
    rng, layout, params = layer_data
    # check_grads draws its directions from numpy's global stream.
    np.random.seed(0)  # noqa: NPY002
    hidden, last = layout.layers
    a = rng.uniform(0.1, 0.9, size=(5, 4))
    delta = rng.normal(size=(5, 2))
    h = rng.uniform(0.1, 0.9, size=(5, 3))  # a hidden output away from ReLU's kink
    z = rng.normal(size=(5, 3)) + 0.5 * np.sign(rng.normal(size=(5, 3)))
    modes = ["fwd", "rev"]
    check_grads(layers.affine, (0, 1), modes, order=1)(a, params, hidden)
    check_grads(layers.activation, 0, modes, order=1)(z, name)
    check_grads(layers.hidden_delta, (0, 1, 3), modes, order=1)(
        delta, params, last, h, name
    )
    check_grads(layers.layer_gradient, (0, 1, 2, 3), modes, order=1)(
        h, delta, params, 0.3, 5.0, last
    )


@pytest.mark.parametrize("name", ["identity", "exp", "logistic", "softmax"])
def test_output_activation_passes_check_grads(name):
    np.random.seed(0)  # noqa: NPY002 (check_grads uses the global stream)
    z = np.random.RandomState(1).normal(size=(5, 3))
    check_grads(layers.output_activation, 0, ["fwd", "rev"], order=1)(z, name)


def test_optimizer_primitives_pass_check_grads():
    np.random.seed(0)  # noqa: NPY002 (check_grads uses the global stream)
    rng = np.random.RandomState(0)
    n = 7
    # Values of order one: check_grads also accepts an absolute error of 1e-6.
    state = np.concatenate([3 * rng.normal(size=2 * n), rng.uniform(0.1, 1, size=n)])
    grad = 3 * rng.normal(size=n)
    rates = -rng.uniform(1, 3, size=4)
    modes = ["fwd", "rev"]
    check_grads(layers.adam_update, (0, 1, 2, 4, 5), modes, order=1)(
        state, grad, rates, 2, 0.8, 0.95, 1e-8
    )
    for nesterov in (True, False):
        check_grads(layers.sgd_update, (0, 1, 2, 3), modes, order=1)(
            state[: 2 * n], grad, 1.5, 0.7, nesterov
        )
    steps = np.arange(3, 9)
    check_grads(training._adam_rates, (0, 1, 2), modes, order=1)(0.01, 0.8, 0.95, steps)


def test_adam_dead_unit_has_zero_sensitivity():
    # A weight whose gradient has always been exactly zero (a dead ReLU unit)
    # has v = 0: its update and the derivatives through it are 0, not nan.
    n = 3
    state = np.zeros(3 * n)
    grad = np.array([0.0, 1.0, -2.0])
    rates = np.array([-0.1])
    args = (state, grad, rates, 0, 0.9, 0.999, 1e-8)
    from autograd import make_vjp

    vjp, ans = make_vjp(layers.adam_update, (0, 1, 2, 4, 5))(*args)
    assert ans[0] == 0.0
    for g in vjp(np.ones(3 * n)):
        assert np.all(np.isfinite(g))


def test_adam_rates_are_sklearns_scalar_values():
    steps = np.arange(1, 500)
    rates = training._adam_rates(0.001, 0.9, 0.999, steps)
    expected = [-(0.001 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)) for t in range(1, 500)]
    np.testing.assert_array_equal(rates, expected)


# ---------------------------------------------------------------------------
# Through the search layer
# ---------------------------------------------------------------------------


def _digits_pipeline(max_iter=15, **settings):
    mlp = MLPClassifier(
        hidden_layer_sizes=(16,), random_state=0, max_iter=max_iter, **settings
    )
    return make_pipeline(StandardScaler(), mlp)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_search_best_score_matches_grid_search_at_best_params():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    search = HypergradSearchCV(
        _digits_pipeline(),
        {
            "mlpclassifier__alpha": (1e-6, 1e1),
            "mlpclassifier__learning_rate_init": (1e-4, 1e-1),
        },
        cv=KFold(3),
        n_init=4,
        n_iter=4,
        random_state=0,
    ).fit(X, y)
    assert search.best_score_ > 0.8
    assert np.isfinite(search.cv_results_["hypergrad_mlpclassifier__alpha"]).any()

    grid = GridSearchCV(
        _digits_pipeline(),
        {name: [value] for name, value in search.best_params_.items()},
        cv=KFold(3),
    ).fit(X, y)
    assert search.best_score_ == pytest.approx(grid.best_score_, rel=1e-6)
    # The refit best estimator is scikit-learn's own fit at best_params_.
    np.testing.assert_allclose(
        search.best_estimator_.predict_proba(X), grid.best_estimator_.predict_proba(X)
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_cross_val_hypergrad_matches_finite_differences_and_log_loss():
    X, y = load_digits(return_X_y=True)
    X, y = X[:240], y[:240]
    pipeline = _digits_pipeline(max_iter=6, activation="tanh", solver="sgd")
    params = {
        "mlpclassifier__alpha": 0.01,
        "mlpclassifier__learning_rate_init": 0.02,
        "mlpclassifier__momentum": 0.8,
    }
    loss, grads = cross_val_hypergrad(pipeline, X, y, params=params, cv=KFold(3))

    scores = cross_val_score(
        clone(pipeline).set_params(**params), X, y, cv=KFold(3), scoring="neg_log_loss"
    )
    assert loss == pytest.approx(-scores.mean(), rel=1e-7)
    for name, value in params.items():
        step = 1e-5 * min(value, 1 - value)

        def loss_at(v, name=name):
            return cross_val_hypergrad(
                pipeline, X, y, params={**params, name: v}, cv=KFold(3)
            )[0]

        fd = central_difference(loss_at, value, step)
        np.testing.assert_allclose(grads[name], fd, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_cross_val_hypergrad_of_the_regressor_is_the_cv_mean_squared_error():
    X, y = _regression()
    regressor = MLPRegressor(hidden_layer_sizes=(8,), random_state=0, max_iter=10)
    params = {"alpha": 0.1, "learning_rate_init": 0.01, "beta_1": 0.8}
    loss, grads = cross_val_hypergrad(regressor, X, y, params=params, cv=3)
    scores = cross_val_score(
        clone(regressor).set_params(**params),
        X,
        y,
        cv=3,
        scoring="neg_mean_squared_error",
    )
    assert loss == pytest.approx(-scores.mean(), rel=1e-9)
    assert set(grads) == set(params) and all(np.isfinite(list(grads.values())))


def test_a_diverging_training_scores_error_score_and_the_search_steps_back():
    X, y = make_regression(120, 5, noise=1.0, random_state=0)
    estimator = make_pipeline(
        StandardScaler(),
        MLPRegressor(
            hidden_layer_sizes=(8,),
            solver="sgd",
            max_iter=30,
            random_state=0,
        ),
    )
    # With relu and sgd, learning rates of 1 and more send the weights to
    # inf/NaN.
    search = HypergradSearchCV(
        estimator,
        {"mlpregressor__learning_rate_init": (1e-4, 1e2)},
        scoring="neg_mean_squared_error",
        cv=KFold(3),
        n_init=4,
        n_iter=6,
        error_score=-1e12,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # The words of MLPRegressor.fit (B9).
        with pytest.warns(FitFailedWarning, match="non-finite parameter weights"):
            search.fit(X, y)
    results = search.cv_results_
    failed = ~np.isfinite(results["cv_loss"])
    assert failed.any() and (~failed).any()
    np.testing.assert_array_equal(results["mean_test_score"][failed], -1e12)
    # The best point is one whose training did not diverge, and the gradient
    # phase after a failed point evaluated finite ones again.
    assert np.isfinite(results["cv_loss"][search.best_index_])
    assert search.best_params_["mlpregressor__learning_rate_init"] < 1.0
    assert np.isfinite(results["cv_loss"][results["outer_iter"] >= 4]).all()


def test_validation_weights_weigh_the_loss():
    X, y = make_regression(80, 4, noise=1.0, random_state=0)
    y = y / y.std()
    weights = np.random.RandomState(0).uniform(0.1, 3, 30)
    estimator = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    fold = make_fold(
        MLPRegressorModel(),
        estimator,
        X[:50],
        y[:50],
        X[50:],
        y[50:],
        val_sample_weight=weights,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        solution = fold.solve({})
    loss = solution.loss
    expected = mean_squared_error(
        y[50:], solution.fitted_estimator().predict(X[50:]), sample_weight=weights
    )
    np.testing.assert_allclose(loss, expected, rtol=1e-10)

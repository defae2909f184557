"""Multi-layer perceptrons: scikit-learn's stochastic training, differentiated.

:class:`~sklearn.neural_network.MLPRegressor` and
:class:`~sklearn.neural_network.MLPClassifier` with ``solver="sgd"`` or
``solver="adam"`` are trained by :mod:`._mlp_training`, which replays
``_fit_stochastic`` step for step. This module is the scikit-learn facing
half: it checks the estimator's settings, draws everything random from the
estimator's ``random_state`` exactly as ``fit`` draws it (initial weights,
early-stopping split, batch order), encodes the targets, and builds the
fitted estimator.

For a training fold and hyperparameters :math:`\\lambda`, the weights
:math:`w(\\lambda)` are those of :math:`T` optimizer steps
:math:`s_{t+1} = \\Phi_t(s_t, \\lambda)` from a fixed initial state, where
:math:`T` and the early-stopping snapshot are decided by the run at
:math:`\\lambda` and then held fixed. The hypergradient of the validation
loss :math:`L` is

.. math::

    \\frac{dL}{d\\lambda} = \\sum_{t<T} \\bar s_{t+1}^T
    \\frac{\\partial \\Phi_t}{\\partial \\lambda}, \\qquad
    \\bar s_t = \\left(\\frac{\\partial \\Phi_t}{\\partial s_t}\\right)^T
    \\bar s_{t+1}, \\qquad \\bar s_T = \\nabla_s L,

computed by a backward sweep over the epochs, each run again from a
per-epoch checkpoint and reversed step by step (reverse mode), or by
forward mode, one pass per hyperparameter.
"""

import copy
import warnings
from itertools import pairwise

import numpy as np
from scipy import sparse
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d, shuffle

from . import _mlp_training as training
from ._base import DifferentiableModel, Fold, validation_weights

__all__ = ["MLPClassifierModel", "MLPRegressorModel"]

# The last trainings a fold keeps, and the largest checkpoints of a loss-only
# training kept with them: the trust region asks for the hypergradient at a
# point whose loss alone it computed one or two evaluations before (two when
# a longer step failed after it).
_KEPT_RUNS = 2
_KEPT_CHECKPOINT_BYTES = 16 * 2**20

# Which solver uses which continuous hyperparameter.
_SOLVER_HYPERPARAMETERS = {
    "sgd": ("alpha", "learning_rate_init", "momentum"),
    "adam": ("alpha", "learning_rate_init", "beta_1", "beta_2"),
}


class _BatchOrders:
    """Sample order of each epoch, drawn as ``_fit_stochastic`` draws it.

    The random stream does not depend on the continuous hyperparameters, so
    the orders are drawn once per fold, on demand, and shared by every run.
    """

    def __init__(self, n_samples, random_state, shuffle_samples):
        self._random_state = random_state
        self._shuffle = shuffle_samples
        self._orders = []
        self._last = np.arange(n_samples, dtype=int)

    def __call__(self, epoch):
        if not self._shuffle:
            return self._last
        while len(self._orders) <= epoch:
            self._last = shuffle(self._last, random_state=self._random_state)
            self._orders.append(self._last)
        return self._orders[epoch]


class _MLPFold(Fold):
    """One cross-validation split of an MLP; see :class:`_MLPModel.fold`."""

    def __init__(
        self,
        model,
        estimator,
        X_train,
        y_train,
        X_val,
        y_val,
        sample_weight,
        val_weights,
    ):
        self.model = model
        self.estimator = estimator
        self._val_weights = val_weights
        self._n_features = X_train.shape[1]
        y_train, self._y_val, out_activation, loss = model._encode(
            self, estimator, y_train, y_val
        )
        self._n_outputs = y_train.shape[1]
        self._X_val = X_val
        self._out_activation = out_activation

        hidden = estimator.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        self._layout = training.NetworkLayout(
            [self._n_features, *hidden, self._n_outputs]
        )

        # The random stream of fit: _init_coef for each layer, then the
        # early-stopping split, then one shuffle per epoch.
        random_state = check_random_state(copy.deepcopy(estimator.random_state))
        factor = 2.0 if estimator.activation == "logistic" else 6.0
        coefs, intercepts = [], []
        for fan_in, fan_out in pairwise(self._layout.layer_units):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coefs.append(random_state.uniform(-bound, bound, (fan_in, fan_out)))
            intercepts.append(random_state.uniform(-bound, bound, fan_out))
        initial_theta = self._layout.pack(coefs, intercepts)

        validation_score = None
        if estimator.early_stopping:
            stratify = y_train if model._stratify and self._n_outputs == 1 else None
            train_idx, val_idx = train_test_split(
                np.arange(len(X_train)),
                random_state=random_state,
                test_size=estimator.validation_fraction,
                stratify=stratify,
            )
            if len(val_idx) < 2:
                raise ValueError(
                    "The validation set is too small. Increase "
                    "'validation_fraction' or the size of your dataset."
                )
            weight_es = None if sample_weight is None else sample_weight[val_idx]
            validation_score = model._early_stopping_score(
                self, X_train[val_idx], y_train[val_idx], weight_es
            )
            X_train, y_train = X_train[train_idx], y_train[train_idx]
            if sample_weight is not None:
                sample_weight = sample_weight[train_idx]

        n_samples = X_train.shape[0]
        if estimator.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if estimator.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than "
                    "sample size. It is going to be clipped",
                    stacklevel=3,
                )
            batch_size = int(np.clip(estimator.batch_size, 1, n_samples))

        self._problem = training.TrainingProblem(
            layout=self._layout,
            initial_theta=initial_theta,
            X=X_train,
            y=y_train,
            sample_weight=sample_weight,
            batch_orders=_BatchOrders(n_samples, random_state, estimator.shuffle),
            batch_size=batch_size,
            activation=estimator.activation,
            out_activation=out_activation,
            loss=loss,
            settings={
                name: getattr(estimator, name)
                for name in (
                    "solver",
                    "learning_rate",
                    "power_t",
                    "nesterovs_momentum",
                    "epsilon",
                    "max_iter",
                    "tol",
                    "n_iter_no_change",
                )
            },
            validation_score=validation_score,
        )
        self._kept = []  # (hp, run) of the last trainings, oldest first

    @property
    def _hp(self):
        """The hyperparameters of the last training, or None."""
        return self._kept[-1][0] if self._kept else None

    @property
    def _run(self):
        """The last training (the one :meth:`fitted_estimator` returns), or None."""
        return self._kept[-1][1] if self._kept else None

    def _predict_output(self, theta, X):
        return training.predict(
            theta, self._layout, X, self.estimator.activation, self._out_activation
        )

    def _validation_loss(self, theta):
        return training.validation_loss(
            theta,
            self._layout,
            self._X_val,
            self._y_val,
            self.estimator.activation,
            self.model._validation_kind(self._out_activation),
            self._val_weights,
        )

    def _hyperparameters(self, params):
        solver = self.estimator.solver
        unknown = sorted(set(params) - set(training.HYPERPARAMETERS))
        if unknown:
            raise ValueError(
                f"{type(self.estimator).__name__} has no continuous "
                f"hyperparameter {unknown}; the differentiable ones are "
                f"{list(training.HYPERPARAMETERS)}."
            )
        unused = sorted(set(params) - set(_SOLVER_HYPERPARAMETERS[solver]))
        if unused:
            raise ValueError(
                f"{unused} is not used by solver={solver!r}, so the validation "
                "loss does not depend on it. With this solver, tune "
                f"{list(_SOLVER_HYPERPARAMETERS[solver])}."
            )
        hp = {
            name: float(getattr(self.estimator, name))
            for name in training.HYPERPARAMETERS
        }
        hp.update({name: float(value) for name, value in params.items()})
        return hp

    def _train(self, params, keep_checkpoints):
        """Train at ``params``; return the run and its validation loss.

        The last ``_KEPT_RUNS`` trainings are kept: a hypergradient asked at
        a point whose loss alone was computed just before (the search's
        trust region does so at every step it accepts) uses that training
        instead of repeating it.
        """
        hp = self._hyperparameters(params)
        kept = [
            run
            for kept_hp, run in self._kept
            if kept_hp == hp and (run.checkpoints or not keep_checkpoints)
        ]
        if kept:
            run = kept[0]
        else:
            run = training.train(self._problem, hp, keep_checkpoints=keep_checkpoints)
            if run.reached_max_iter:
                warnings.warn(
                    "Stochastic Optimizer: Maximum iterations "
                    f"({self.estimator.max_iter}) reached and the optimization "
                    "hasn't converged yet. Increase max_iter to train to "
                    "convergence (the hypergradient is exact either way).",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        others = [(k, r) for k, r in self._kept if k != hp]
        self._kept = [*others, (hp, run)][-_KEPT_RUNS:]
        if run.diverged:
            return run, float("nan")
        return run, float(self._validation_loss(run.theta))

    def value(self, params):
        # Keep the checkpoints a hypergradient at this point would need, when
        # they are small enough to hold between calls.
        keep = (
            bool(params)
            and self.model._mode(len(params)) == "reverse"
            and self._problem.checkpoints_nbytes <= _KEPT_CHECKPOINT_BYTES
        )
        with np.errstate(all="ignore"):
            return self._train(params, keep_checkpoints=keep)[1]

    def value_and_grad(self, params):
        names = list(params)
        mode = self.model._mode(len(names))
        with np.errstate(all="ignore"):
            run, loss = self._train(
                params, keep_checkpoints=bool(names) and mode == "reverse"
            )
            grad = np.zeros(len(names))
            if names and np.isfinite(loss):
                hypergradient = (
                    training.hypergradient_reverse
                    if mode == "reverse"
                    else training.hypergradient_forward
                )
                grad = hypergradient(
                    self._problem, run, self._hp, names, self._validation_loss
                )
            # Free the checkpoints; the weights stay for fitted_estimator.
            run.checkpoints = {}
        return loss, {name: float(g) for name, g in zip(names, grad, strict=True)}

    def fitted_estimator(self):
        if self._run is None:
            raise ValueError("Call value_and_grad before fitted_estimator.")
        run = self._run
        if run.diverged or not np.isfinite(run.theta).all():
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        estimator = clone(self.estimator).set_params(
            **{
                name: self._hp[name]
                for name in _SOLVER_HYPERPARAMETERS[self.estimator.solver]
            }
        )
        coefs, intercepts = self._layout.unpack(run.theta)
        estimator.coefs_ = [np.array(c) for c in coefs]
        estimator.intercepts_ = [np.array(b) for b in intercepts]
        estimator.n_features_in_ = self._n_features
        estimator.n_outputs_ = self._n_outputs
        estimator.n_layers_ = self._layout.n_layers
        estimator.out_activation_ = self._out_activation
        estimator.n_iter_ = run.n_iter
        estimator.t_ = run.t
        estimator.loss_ = run.loss_curve[-1]
        estimator.loss_curve_ = list(run.loss_curve)
        estimator.best_loss_ = run.best_loss
        estimator._no_improvement_count = run.no_improvement_count
        if self.estimator.early_stopping:
            estimator.validation_scores_ = list(run.validation_scores)
            estimator.best_validation_score_ = run.best_validation_score
        else:
            estimator.validation_scores_ = None
            estimator.best_validation_score_ = None
        self.model._set_fitted_targets(self, estimator)
        return estimator


class _MLPModel(DifferentiableModel):
    """What MLPRegressor and MLPClassifier models share.

    Parameters
    ----------
    mode : {"auto", "reverse", "forward"}, default="auto"
        How hypergradients are computed. ``"reverse"`` sweeps the epochs
        backwards from per-epoch checkpoints (one traced pass whatever the
        number of hyperparameters); ``"forward"`` uses one forward-mode pass
        per hyperparameter and keeps no checkpoints. ``"auto"`` uses forward
        mode for a single hyperparameter and reverse mode otherwise.
    """

    # Positive scales are searched as their logarithm; momentum and Adam's
    # decay rates live in (0, 1) and are searched as their logit.
    hyperparameters = {
        "alpha": "log",
        "learning_rate_init": "log",
        "momentum": "logit",
        "beta_1": "logit",
        "beta_2": "logit",
    }
    _stratify = False

    def __init__(self, mode="auto"):
        if mode not in ("auto", "reverse", "forward"):
            raise ValueError(
                f"mode must be 'auto', 'reverse' or 'forward', got {mode!r}."
            )
        self.mode = mode

    def _mode(self, n_hyperparameters):
        if self.mode != "auto":
            return self.mode
        return "forward" if n_hyperparameters <= 1 else "reverse"

    def check_estimator(self, estimator):
        name = type(estimator).__name__
        estimator._validate_params()
        if estimator.solver == "lbfgs":
            raise ValueError(
                f"{name}(solver='lbfgs') is not supported: scipy's L-BFGS-B "
                "cannot be traced, and its line search makes the weights of a "
                "training limited to max_iter a discontinuous function of "
                "alpha. Use solver='adam' or solver='sgd', whose training "
                "HypergradSearchCV differentiates exactly."
            )
        if estimator.random_state is None:
            raise ValueError(
                f"{name}(random_state=None) draws new initial weights and batch "
                "orders at every fit, so its cross-validation loss is a random "
                "function of the hyperparameters and has no gradient. Pass an "
                "integer random_state."
            )
        if estimator.warm_start:
            raise ValueError(
                f"{name}(warm_start=True) starts each fit from the weights of "
                "the previous one, which the hypergradient cannot follow. Set "
                "warm_start=False."
            )

    def fold(
        self,
        estimator,
        X_train,
        y_train,
        X_val,
        y_val,
        sample_weight=None,
        val_sample_weight=None,
    ):
        def dense(X):
            X = X.toarray() if sparse.issparse(X) else X
            return np.asarray(X, dtype=np.float64)

        return _MLPFold(
            self,
            estimator,
            dense(X_train),
            np.asarray(y_train),
            dense(X_val),
            np.asarray(y_val),
            None if sample_weight is None else np.asarray(sample_weight, np.float64),
            validation_weights(val_sample_weight, len(X_val)),
        )


class MLPRegressorModel(_MLPModel):
    """:class:`~sklearn.neural_network.MLPRegressor`, ``solver="sgd"`` or ``"adam"``.

    Tuned over ``alpha`` and ``learning_rate_init``, plus ``momentum`` (sgd)
    or ``beta_1`` and ``beta_2`` (adam). The validation loss is the mean
    squared error with ``loss="squared_error"`` and the mean Poisson deviance
    with ``loss="poisson"``.
    """

    estimator_class = MLPRegressor
    loss = "mean squared error (mean Poisson deviance for loss='poisson')"

    def _encode(self, fold, estimator, y_train, y_val):
        y_train = np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1)
        y_val = np.asarray(y_val, dtype=np.float64).reshape(len(y_val), -1)
        if estimator.loss == "poisson":
            return y_train, y_val, "exp", "poisson"
        return y_train, y_val, "identity", "squared_error"

    def _validation_kind(self, out_activation):
        return "poisson" if out_activation == "exp" else "squared_error"

    def _early_stopping_score(self, fold, X, y, sample_weight):
        def score(theta):
            y_pred = fold._predict_output(theta, X)
            if y_pred.shape[1] == 1:
                y_pred = y_pred.ravel()
            if not np.isfinite(y_pred).all():
                return np.nan
            return r2_score(y, y_pred, sample_weight=sample_weight)

        return score

    def _set_fitted_targets(self, fold, estimator):
        pass


class MLPClassifierModel(_MLPModel):
    """:class:`~sklearn.neural_network.MLPClassifier`, ``solver="sgd"`` or ``"adam"``.

    Binary, multiclass and multilabel targets, with any labels. Tuned over
    ``alpha`` and ``learning_rate_init``, plus ``momentum`` (sgd) or
    ``beta_1`` and ``beta_2`` (adam). The validation loss is the mean
    log-loss, computed from the logits without clipping (for multilabel
    targets, the binary log-losses of the labels summed).
    """

    estimator_class = MLPClassifier
    loss = "log-loss"
    _stratify = True

    def _encode(self, fold, estimator, y_train, y_val):
        if y_train.ndim == 2 and y_train.shape[1] == 1:
            y_train = column_or_1d(y_train)
        binarizer = LabelBinarizer().fit(y_train)
        fold._label_binarizer = binarizer
        if binarizer.y_type_ == "multilabel-indicator":
            if y_val.ndim != 2 or y_val.shape[1] != len(binarizer.classes_):
                raise ValueError(
                    f"The validation targets have shape {y_val.shape}, but the "
                    f"training targets are {len(binarizer.classes_)} labels."
                )
        else:
            if y_val.ndim == 2 and y_val.shape[1] == 1:
                y_val = column_or_1d(y_val)
            unseen = np.setdiff1d(np.unique(y_val), binarizer.classes_)
            if len(unseen):
                raise ValueError(
                    f"The validation fold has classes {unseen.tolist()} that the "
                    "training fold does not have, so their log-loss is infinite. "
                    "Use a stratified cross-validation, such as StratifiedKFold."
                )
        # fit trains on binarizer.transform(y).astype(bool).
        Y_train, Y_val = (
            binarizer.transform(y).astype(bool).astype(np.float64)
            for y in (y_train, y_val)
        )
        out_activation = "softmax" if binarizer.y_type_ == "multiclass" else "logistic"
        loss = "log_loss" if out_activation == "softmax" else "binary_log_loss"
        return Y_train, Y_val, out_activation, loss

    def _validation_kind(self, out_activation):
        return out_activation

    def _early_stopping_score(self, fold, X, y, sample_weight):
        binarizer = fold._label_binarizer
        y_true = binarizer.inverse_transform(y)

        def score(theta):
            output = fold._predict_output(theta, X)
            if output.shape[1] == 1:
                output = output.ravel()
            y_pred = binarizer.inverse_transform(output)
            if (
                np.issubdtype(y_pred.dtype, np.floating)
                and not np.isfinite(y_pred).all()
            ):
                return np.nan
            return accuracy_score(y_true, y_pred, sample_weight=sample_weight)

        return score

    def _set_fitted_targets(self, fold, estimator):
        estimator._label_binarizer = fold._label_binarizer
        estimator.classes_ = fold._label_binarizer.classes_

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

from .._sklearn_compat import set_private_fitted_attributes, validate_estimator_params
from . import _mlp_training as training
from ._base import DifferentiableModel, Fold, Solution
from ._losses import MAX_LOG_LOSS
from ._threads import blas_threads_limited

__all__ = ["MLPClassifierModel", "MLPRegressorModel"]

# A solution computed for its loss alone keeps the checkpoints a reverse
# sweep needs when they take at most this much memory: a hypergradient asked
# of it later then costs the sweep alone, not a second training.
_KEPT_CHECKPOINT_BYTES = 16 * 2**20


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


class _RegressionTargets:
    """Targets of an MLPRegressor: floats, an identity or exp output."""

    def __init__(self, estimator, y_train, y_val):
        # Every validation sample is "seen": there are no classes.
        self.seen = np.ones(len(y_val), dtype=bool)
        self.Y_train = np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1)
        self.Y_val = np.asarray(y_val, dtype=np.float64).reshape(len(y_val), -1)
        if estimator.loss == "poisson":
            self.out_activation, self.loss, self.validation_kind = (
                "exp",
                "poisson",
                "poisson",
            )
        else:
            self.out_activation = "identity"
            self.loss = self.validation_kind = "squared_error"

    def decode(self, Y):
        """The targets ``_score`` compares predictions with."""
        return Y

    def early_stopping_score(self, outputs, y, sample_weight):
        """``MLPRegressor._score`` on the held-out part: R^2."""
        if outputs.shape[1] == 1:
            outputs = outputs.ravel()
        if not np.isfinite(outputs).all():
            return np.nan
        return r2_score(y, outputs, sample_weight=sample_weight)

    def set_fitted(self, estimator):
        """Fitted attributes that depend on the targets: none."""


class _ClassificationTargets:
    """Targets of an MLPClassifier, binarized as ``fit`` binarizes them."""

    def __init__(self, estimator, y_train, y_val):
        if y_train.ndim == 2 and y_train.shape[1] == 1:
            y_train = column_or_1d(y_train)
        binarizer = self.binarizer = LabelBinarizer().fit(y_train)
        self.seen = np.ones(len(y_val), dtype=bool)
        if binarizer.y_type_ == "multilabel-indicator":
            if y_val.ndim != 2 or y_val.shape[1] != len(binarizer.classes_):
                raise ValueError(
                    f"The validation targets have shape {y_val.shape}, but the "
                    f"training targets are {len(binarizer.classes_)} labels."
                )
        else:
            if y_val.ndim == 2 and y_val.shape[1] == 1:
                y_val = column_or_1d(y_val)
            # A class the training fold lacks: see ``unseen``.
            self.seen = np.isin(y_val, binarizer.classes_)
            y_val = y_val[self.seen]
        # fit trains on binarizer.transform(y).astype(bool).
        self.Y_train, self.Y_val = (
            binarizer.transform(y).astype(bool).astype(np.float64)
            for y in (y_train, y_val)
        )
        self.out_activation = (
            "softmax" if binarizer.y_type_ == "multiclass" else "logistic"
        )
        self.validation_kind = self.out_activation
        self.loss = (
            "log_loss" if self.out_activation == "softmax" else "binary_log_loss"
        )

    def decode(self, Y):
        """The labels ``_score`` compares predictions with."""
        return self.binarizer.inverse_transform(Y)

    def early_stopping_score(self, outputs, y, sample_weight):
        """``MLPClassifier._score`` on the held-out part: accuracy."""
        if outputs.shape[1] == 1:
            outputs = outputs.ravel()
        y_pred = self.binarizer.inverse_transform(outputs)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return accuracy_score(y, y_pred, sample_weight=sample_weight)

    def set_fitted(self, estimator):
        """``classes_`` and the binarizer ``predict`` reads."""
        set_private_fitted_attributes(estimator, label_binarizer=self.binarizer)
        estimator.classes_ = self.binarizer.classes_


class _EarlyStoppingScore:
    """``validation_score(theta)`` of a training with early stopping."""

    def __init__(self, targets, layout, activation, X, y, sample_weight):
        self.targets = targets
        self.layout = layout
        self.activation = activation
        self.X = X
        self.y = targets.decode(y)
        self.sample_weight = sample_weight

    def __call__(self, theta):
        outputs = training.predict(
            theta,
            self.layout,
            self.X,
            self.activation,
            self.targets.out_activation,
        )
        return self.targets.early_stopping_score(outputs, self.y, self.sample_weight)


class _MLPSolution(Solution):
    """A network trained at one point; its hypergradient sweeps the training."""

    def __init__(self, fold, params, hp, run):
        self._fold = fold
        self.params = dict(params)
        self.hp = hp
        self.run = run
        self.loss = (
            np.nan
            if run.diverged
            else float(fold.validation_loss(run.theta)) + fold.unseen_loss
        )

    def hypergradient(self, names):
        fold = self._fold
        names = list(names)
        fold.check_names(names)
        if not names:
            return {}
        if not np.isfinite(self.loss):
            return dict.fromkeys(names, np.nan)
        mode = fold.model.mode_for(len(names))
        run = self.run
        if mode == "reverse" and not run.checkpoints:
            # Trained for the loss alone, without the checkpoints: train
            # again with them (the training is deterministic).
            with np.errstate(all="ignore"), blas_threads_limited():
                run = training.train(fold.problem, self.hp, keep_checkpoints=True)
        sweep = (
            training.hypergradient_reverse
            if mode == "reverse"
            else training.hypergradient_forward
        )
        with np.errstate(all="ignore"), blas_threads_limited():
            grad = sweep(fold.problem, run, self.hp, names, fold.validation_loss)
        # The checkpoints have served; the weights stay for fitted_estimator.
        self.run.checkpoints = {}
        return {name: float(g) for name, g in zip(names, grad, strict=True)}

    def fitted_estimator(self):
        fold, run = self._fold, self.run
        if run.diverged or not np.isfinite(run.theta).all():
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        estimator = clone(fold.estimator).set_params(
            **{
                name: self.hp[name]
                for name in training.solver_hyperparameters(fold.estimator.solver)
            }
        )
        coefs, intercepts = fold.layout.unpack(run.theta)
        estimator.coefs_ = [np.array(c) for c in coefs]
        estimator.intercepts_ = [np.array(b) for b in intercepts]
        estimator.n_features_in_ = fold.n_features
        estimator.n_outputs_ = fold.n_outputs
        estimator.n_layers_ = fold.layout.n_layers
        estimator.out_activation_ = fold.targets.out_activation
        estimator.n_iter_ = run.n_iter
        estimator.t_ = run.t
        estimator.loss_ = run.loss_curve[-1]
        estimator.loss_curve_ = list(run.loss_curve)
        estimator.best_loss_ = run.best_loss
        set_private_fitted_attributes(
            estimator, no_improvement_count=run.no_improvement_count
        )
        if fold.estimator.early_stopping:
            estimator.validation_scores_ = list(run.validation_scores)
            estimator.best_validation_score_ = run.best_validation_score
        else:
            estimator.validation_scores_ = None
            estimator.best_validation_score_ = None
        fold.targets.set_fitted(estimator)
        return estimator


class _MLPFold(Fold):
    """One cross-validation split of an MLP; see :meth:`_MLPModel.fold`."""

    def __init__(self, model, estimator, data):
        self.model = model
        self.estimator = estimator

        def as_float(X):
            # A sparse X stays sparse: the first layer's primitives
            # (_mlp_layers.affine, layer_gradient) multiply it as data.
            if sparse.issparse(X):
                return sparse.csr_matrix(X, dtype=np.float64)
            return np.asarray(X, dtype=np.float64)

        X_train, X_val = as_float(data.X_train), as_float(data.X_val)
        sample_weight = (
            None
            if data.sample_weight is None
            else np.asarray(data.sample_weight, np.float64)
        )
        self.n_features = X_train.shape[1]
        self.targets = model.targets_class(
            estimator, np.asarray(data.y_train), np.asarray(data.y_val)
        )
        y_train = self.targets.Y_train
        self.n_outputs = y_train.shape[1]
        # A validation sample of a class the training fold lacks has the loss
        # scikit-learn's log_loss gives it with all the labels: probability
        # 0, clipped to eps. It depends on no hyperparameter.
        seen = self.targets.seen
        self._val_weights = data.val_weights[seen]
        self.unseen_loss = float(data.val_weights[~seen].sum() * MAX_LOG_LOSS)
        self._X_val = X_val[seen]

        hidden = estimator.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        self.layout = training.NetworkLayout([self.n_features, *hidden, self.n_outputs])

        # The random stream of fit: _init_coef for each layer, then the
        # early-stopping split, then one shuffle per epoch.
        random_state = check_random_state(copy.deepcopy(estimator.random_state))
        factor = 2.0 if estimator.activation == "logistic" else 6.0
        coefs, intercepts = [], []
        for fan_in, fan_out in pairwise(self.layout.layer_units):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coefs.append(random_state.uniform(-bound, bound, (fan_in, fan_out)))
            intercepts.append(random_state.uniform(-bound, bound, fan_out))
        initial_theta = self.layout.pack(coefs, intercepts)

        validation_score = None
        if estimator.early_stopping:
            stratify = y_train if model.stratify and self.n_outputs == 1 else None
            train_idx, val_idx = train_test_split(
                np.arange(X_train.shape[0]),
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
            validation_score = _EarlyStoppingScore(
                self.targets,
                self.layout,
                estimator.activation,
                X_train[val_idx],
                y_train[val_idx],
                weight_es,
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

        self.problem = training.TrainingProblem(
            layout=self.layout,
            initial_theta=initial_theta,
            X=X_train,
            y=y_train,
            sample_weight=sample_weight,
            batch_orders=_BatchOrders(n_samples, random_state, estimator.shuffle),
            batch_size=batch_size,
            activation=estimator.activation,
            out_activation=self.targets.out_activation,
            loss=self.targets.loss,
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

    def validation_loss(self, theta):
        """The validation loss of the network ``theta`` (traced)."""
        return training.validation_loss(
            theta,
            self.layout,
            self._X_val,
            self.targets.Y_val,
            self.estimator.activation,
            self.targets.validation_kind,
            self._val_weights,
        )

    def check_names(self, names):
        """Refuse hyperparameters the estimator's solver does not use."""
        solver = self.estimator.solver
        unknown = sorted(set(names) - set(training.HYPERPARAMETERS))
        if unknown:
            raise ValueError(
                f"{type(self.estimator).__name__} has no continuous "
                f"hyperparameter {unknown}; the differentiable ones are "
                f"{list(training.HYPERPARAMETERS)}."
            )
        used = training.solver_hyperparameters(solver)
        unused = sorted(set(names) - set(used))
        if unused:
            raise ValueError(
                f"{unused} is not used by solver={solver!r}, so the validation "
                f"loss does not depend on it. With this solver, tune {used}."
            )

    def solve(self, params, *, differentiate=False):
        self.check_names(list(params))
        hp = {
            name: float(getattr(self.estimator, name))
            for name in training.HYPERPARAMETERS
        }
        hp.update({name: float(value) for name, value in params.items()})
        # Keep the checkpoints of a reverse sweep when a hypergradient is
        # coming, or, when they are small, in case one is.
        reverse = bool(params) and self.model.mode_for(len(params)) == "reverse"
        keep = reverse and (
            differentiate or self.problem.checkpoints_nbytes <= _KEPT_CHECKPOINT_BYTES
        )
        with np.errstate(all="ignore"), blas_threads_limited():
            run = training.train(self.problem, hp, keep_checkpoints=keep)
        if run.reached_max_iter:
            warnings.warn(
                "Stochastic Optimizer: Maximum iterations "
                f"({self.estimator.max_iter}) reached and the optimization "
                "hasn't converged yet. Increase max_iter to train to "
                "convergence (the hypergradient is exact either way).",
                ConvergenceWarning,
                stacklevel=2,
            )
        with np.errstate(all="ignore"):
            return _MLPSolution(self, params, hp, run)


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

    hyperparameters = {
        name: scale for name, (scale, _) in training.HYPERPARAMETERS.items()
    }
    targets_class = None
    stratify = False
    stochastic = True
    accept_sparse = True

    def __init__(self, mode="auto"):
        if mode not in ("auto", "reverse", "forward"):
            raise ValueError(
                f"mode must be 'auto', 'reverse' or 'forward', got {mode!r}."
            )
        self.mode = mode

    def mode_for(self, n_hyperparameters):
        """How to differentiate with respect to this many hyperparameters."""
        if self.mode != "auto":
            return self.mode
        return "forward" if n_hyperparameters <= 1 else "reverse"

    def hyperparameters_for(self, estimator):
        used = training.solver_hyperparameters(estimator.solver)
        return {name: self.hyperparameters[name] for name in used}

    def check_estimator(self, estimator):
        name = type(estimator).__name__
        validate_estimator_params(estimator)
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
                "integer random_state (HypergradSearchCV draws one from its own "
                "random_state)."
            )
        if estimator.warm_start:
            raise ValueError(
                f"{name}(warm_start=True) starts each fit from the weights of "
                "the previous one, which the hypergradient cannot follow. Set "
                "warm_start=False."
            )

    def fold(self, estimator, data):
        return _MLPFold(self, estimator, data)


class MLPRegressorModel(_MLPModel):
    """:class:`~sklearn.neural_network.MLPRegressor`, ``solver="sgd"`` or ``"adam"``.

    Tuned over ``alpha`` and ``learning_rate_init``, plus ``momentum`` (sgd)
    or ``beta_1`` and ``beta_2`` (adam). The validation loss is the mean
    squared error with ``loss="squared_error"`` and the mean Poisson deviance
    with ``loss="poisson"``.
    """

    estimator_class = MLPRegressor
    loss_name = "mean squared error (mean Poisson deviance for loss='poisson')"
    targets_class = _RegressionTargets

    def loss_scoring_for(self, estimator):
        if estimator.loss == "poisson":
            return "neg_mean_poisson_deviance"
        return "neg_mean_squared_error"


class MLPClassifierModel(_MLPModel):
    """:class:`~sklearn.neural_network.MLPClassifier`, ``solver="sgd"`` or ``"adam"``.

    Binary, multiclass and multilabel targets, with any labels. Tuned over
    ``alpha`` and ``learning_rate_init``, plus ``momentum`` (sgd) or
    ``beta_1`` and ``beta_2`` (adam). The validation loss is the mean
    log-loss, computed from the logits without clipping (for multilabel
    targets, the binary log-losses of the labels summed).
    """

    estimator_class = MLPClassifier
    loss_name = "log-loss"
    loss_scoring = "neg_log_loss"
    targets_class = _ClassificationTargets
    stratify = True

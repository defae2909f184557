"""
==============================================
Adding a model: kernel ridge's alpha and gamma
==============================================

:class:`~skhypergrad.HypergradSearchCV` tunes the estimators it has a
*model* for: a :class:`~skhypergrad.DifferentiableModel` that trains the
estimator at any values of its continuous hyperparameters and differentiates
the validation loss. This example adds one for
:class:`~sklearn.kernel_ridge.KernelRidge` with an RBF kernel, tuned over
the penalty ``alpha`` and the kernel width ``gamma``, checks it with
:func:`~skhypergrad.utils.check_differentiable_model`, registers it, and
compares the search with :class:`~sklearn.model_selection.GridSearchCV`.
"""

# %%
# The model
# ---------
# Kernel ridge fits the dual coefficients :math:`c = (K + \alpha I)^{-1} y`,
# with the kernel :math:`K_{ij} = \exp(-\gamma \|x_i - x_j\|^2)` of the
# training samples, and predicts :math:`K_{\text{val}}\, c` with the kernel
# between the validation and the training samples. The squared distances do
# not depend on the hyperparameters: the fold computes them once. Each solve
# forms the kernel and solves the linear system, in ``autograd.numpy``
# (without updating arrays in place), so that autograd differentiates the
# validation loss through ``solve`` when the hypergradient is asked.
#
# A fold of a model is built once per cross-validation split from a
# :class:`~skhypergrad.FoldData`; its :meth:`~skhypergrad.Fold.solve`
# returns a :class:`~skhypergrad.Solution`, which holds the validation loss
# and gives the hypergradient and the scikit-learn estimator trained there.
# A solution depends only on its fold and its point, and both pickle.
import time

import autograd.numpy as anp
import matplotlib.pyplot as plt
import numpy as np
from autograd import grad
from sklearn.base import clone
from sklearn.datasets import make_friedman1
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.model_selection import GridSearchCV, KFold

from skhypergrad import (
    DifferentiableModel,
    Fold,
    HypergradSearchCV,
    Solution,
    plot_search,
    register_model,
)
from skhypergrad.utils import check_differentiable_model


def dual_coef(alpha, gamma, sq_dist, Y):
    """Kernel ridge's dual coefficients (traced by autograd)."""
    kernel = anp.exp(-gamma * sq_dist)
    return anp.linalg.solve(kernel + alpha * anp.eye(len(Y)), Y)


def validation_loss(hp, fold):
    """Validation mean squared error at ``hp = {"alpha": ..., "gamma": ...}``."""
    coef = dual_coef(hp["alpha"], hp["gamma"], fold.sq_dist_train, fold.Y_train)
    predictions = anp.dot(anp.exp(-hp["gamma"] * fold.sq_dist_val), coef)
    per_sample = anp.mean((predictions - fold.Y_val) ** 2, axis=1)
    return anp.dot(fold.val_weights, per_sample)


class KernelRidgeSolution(Solution):
    def __init__(self, fold, params, hp):
        self.fold, self.params, self.hp = fold, params, hp
        self.loss = float(validation_loss(hp, fold))

    def hypergradient(self, names):
        grads = grad(validation_loss)(self.hp, self.fold)
        return {name: float(grads[name]) for name in names}

    def fitted_estimator(self):
        fold = self.fold
        hp = self.hp
        coef = dual_coef(hp["alpha"], hp["gamma"], fold.sq_dist_train, fold.Y_train)
        estimator = clone(fold.estimator).set_params(**self.params)
        estimator.dual_coef_ = coef[:, 0] if fold.y_is_1d else coef
        estimator.X_fit_ = fold.X_train
        estimator.n_features_in_ = fold.X_train.shape[1]
        return estimator


class KernelRidgeFold(Fold):
    def __init__(self, estimator, data):
        if data.sample_weight is not None:
            raise ValueError("This KernelRidge model does not support sample_weight.")
        self.estimator = estimator
        self.X_train = np.asarray(data.X_train, dtype=np.float64)
        X_val = np.asarray(data.X_val, dtype=np.float64)
        y_train = np.asarray(data.y_train, dtype=np.float64)
        self.y_is_1d = y_train.ndim == 1
        self.Y_train = y_train.reshape(len(y_train), -1)
        self.Y_val = np.asarray(data.y_val, dtype=np.float64).reshape(len(X_val), -1)
        self.val_weights = data.val_weights
        self.sq_dist_train = euclidean_distances(self.X_train, squared=True)
        self.sq_dist_val = euclidean_distances(X_val, self.X_train, squared=True)

    def solve(self, params, *, differentiate=False):
        # Nothing to keep for the hypergradient: it traces the loss again.
        gamma = self.estimator.gamma  # None means 1 / n_features, as in sklearn
        hp = {
            "alpha": float(self.estimator.alpha),
            "gamma": 1.0 / self.X_train.shape[1] if gamma is None else float(gamma),
        }
        hp.update(params)
        return KernelRidgeSolution(self, dict(params), hp)


class KernelRidgeModel(DifferentiableModel):
    estimator_class = KernelRidge
    hyperparameters = {"alpha": "log", "gamma": "log"}
    loss_name = "mean squared error"

    def check_estimator(self, estimator):
        if estimator.kernel != "rbf" or np.ndim(estimator.alpha) != 0:
            raise ValueError(
                "This model supports KernelRidge(kernel='rbf') with a scalar "
                f"alpha; got kernel={estimator.kernel!r}, alpha={estimator.alpha!r}."
            )

    def fold(self, estimator, data):
        return KernelRidgeFold(estimator, data)


# %%
# Checking it
# -----------
# :func:`~skhypergrad.utils.check_differentiable_model` solves the model on
# each split of ``cv`` and checks its hypergradient against central finite
# differences on the log scale, its fitted estimator's predictions against
# ``KernelRidge.fit`` at the same point, and that solving is deterministic,
# stateless and picklable. It raises an ``AssertionError`` naming the check,
# the split and the numbers when something is wrong.
#
# The data are 300 samples of Friedman's first regression problem, a smooth
# non-linear function of five of its ten features plus noise, standardized
# (kernel ridge has no intercept, so the target is centered too).
X, y = make_friedman1(n_samples=300, noise=2.0, random_state=0)
X = (X - X.mean(axis=0)) / X.std(axis=0)
y = (y - y.mean()) / y.std()

model = KernelRidgeModel()
check_differentiable_model(
    model, KernelRidge(kernel="rbf"), X, y, params={"alpha": 0.1, "gamma": 0.05}
)
print("check_differentiable_model: every check passed")

# %%
# Searching with it
# -----------------
# Once registered, the model serves every ``KernelRidge`` given to the search,
# which follows the hypergradient in the plane of ``log(alpha)`` and
# ``log(gamma)``.
register_model(model)

cv = KFold(5, shuffle=True, random_state=0)
scoring = "neg_mean_squared_error"
start = time.perf_counter()
search = HypergradSearchCV(
    KernelRidge(kernel="rbf"),
    {"alpha": (1e-3, 1e1), "gamma": (1e-3, 1e0)},
    scoring=scoring,
    cv=cv,
    random_state=0,
).fit(X, y)
search_time = time.perf_counter() - start

# %%
# ``best_score_`` is the score GridSearchCV gives at ``best_params_``: the
# estimators the model builds are scored by scikit-learn itself. A 7 x 7 grid
# over the same box evaluates three times as many points, and its best point
# is the grid point nearest to the minimum.
at_best = GridSearchCV(
    KernelRidge(kernel="rbf"),
    {name: [value] for name, value in search.best_params_.items()},
    scoring=scoring,
    cv=cv,
).fit(X, y)
assert np.isclose(at_best.best_score_, search.best_score_, rtol=1e-8)

start = time.perf_counter()
grid = GridSearchCV(
    KernelRidge(kernel="rbf"),
    {"alpha": np.logspace(-3, 1, 7), "gamma": np.logspace(-3, 0, 7)},
    scoring=scoring,
    cv=cv,
).fit(X, y)
grid_time = time.perf_counter() - start

print(f"{'':19} {'alpha':>8} {'gamma':>8} {'CV MSE':>8} {'points':>7} {'seconds':>8}")
for name, result, seconds in [
    ("HypergradSearchCV", search, f"{search_time:8.2f}"),
    ("GridSearchCV, 1x1", at_best, ""),
    ("GridSearchCV, 7x7", grid, f"{grid_time:8.2f}"),
]:
    print(
        f"{name:19} {result.best_params_['alpha']:8.3g} "
        f"{result.best_params_['gamma']:8.3g} {-result.best_score_:8.4f} "
        f"{len(result.cv_results_['params']):7d} {seconds}"
    )

# %%
# The path of the search over the CV loss (the contours are computed with the
# new model on a 10 x 10 grid, on the same folds): the coarse pass samples the
# box, and the gradient phase starts from its best point and settles in the
# basin of the loss, where a larger ``gamma`` (a narrower kernel) goes with a
# larger ``alpha``.
plot_search(search, X, y, loss_grid=10)
plt.show()

"""L2-penalized logistic regression: Newton solves, implicit differentiation.

The training objective
----------------------
For a training fold with sample weights :math:`s_i` (``sample_weight`` times
the class weights), scikit-learn's ``LogisticRegression`` with the L2 penalty
minimizes

.. math::

    C \\sum_i s_i \\ell(y_i, x_i W^T + b) + \\tfrac12 \\|W\\|_F^2 ,

where :math:`\\ell` is the log-loss and the intercept :math:`b` is not
penalized. Binary targets have one row of coefficients (the logit of
``classes_[1]``); three classes or more use the full softmax with one row per
class. lbfgs, newton-cg and newton-cholesky minimize this objective divided
by :math:`C \\sum_i s_i` (``LinearModelLoss`` with
``l2_reg_strength = 1 / (C * sw_sum)``), sag and saga the same objective
scaled by ``1 / n_samples``, liblinear the objective itself with the
intercept penalized as an extra feature of value ``intercept_scaling``. All
have the same minimizer, and the solvers differ only in how closely they
approach it. This module always returns the exact minimizer (to a tolerance
far below ``tol``), which is what the derivative below is the derivative of.

Solving and differentiating are separate
----------------------------------------
*How to solve* (not traced, in ``_logistic_solver``): a damped, inexact
Newton method on hand-written numpy derivatives, warm-started from the
previous solutions of the same fold: the nearest one, or the line through the
two nearest (in :math:`\\log C`) when that starts closer.

*How to differentiate* (traced by autograd): :func:`_validation_loss` and
:func:`_penalty_term` are written in ``autograd.numpy``, and
:func:`~._implicit.implicit_hypergradient` applies the implicit function
theorem at the optimum :math:`\theta^*` (with :math:`\theta = (W, b)` and
:math:`f` the normalized training objective):

.. math::

    H v = \nabla_\theta L_{val}(\theta^*), \\qquad
    \frac{d L_{val}}{d C} = - v^T \\, \\partial_C \nabla_\theta f(\theta^*, C),
    \\qquad H = \nabla^2_\theta f(\theta^*, C).

The mixed derivative is traced on the penalty term alone, since the data
term does not depend on :math:`C`. The adjoint system is solved by the
solver's :class:`~._logistic_solver.HessianSolver` at :math:`\theta^*`,
whose Hessian-vector products are those of :func:`_train_objective` (the
tests check both against autograd) at a fraction of the cost.

With a multinomial model and an intercept, adding a constant to all the
intercepts changes nothing, so the Hessian is singular along that direction.
The intercepts are kept centered (as lbfgs, started from zero, keeps them),
and the right-hand sides are orthogonal to that direction.
"""

import numbers
import warnings

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive
from scipy import optimize, sparse
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.utils import column_or_1d
from sklearn.utils.multiclass import check_classification_targets

from .._sklearn_compat import compute_class_weight, effective_logistic_penalty
from ._base import DifferentiableModel, Fold, Solution
from ._implicit import implicit_hypergradient
from ._logistic_solver import (
    HessianSolver,
    LogisticObjective,
    best_start,
    newton_solve,
)
from ._losses import (
    MAX_LOG_LOSS,
    binary_log_loss,
    clipped,
    multinomial_log_loss,
    weighted_mean,
)
from ._threads import blas_threads_limited

# The inner solve stops when the largest gradient entry of the normalized
# objective falls below this fraction of its value at zero (or below ``tol``
# if that is smaller). Newton converges quadratically, so this costs about one
# iteration more than sklearn's default ``tol=1e-4``, and the loss and the
# hypergradient are accurate to many digits.
_GTOL_RELATIVE = 1e-9

# Relative residual of the conjugate-gradient solve of the adjoint system.
# The hypergradient's relative error is about this: 3e-9 to 1.9e-8 on a fold
# of 5,000 20-class tf-idf documents at C = 100 to 4,000 (3e-11 to 8e-11 at
# 1e-10, for 22% more iterations).
_ADJOINT_RTOL = 1e-8
# Solutions kept per fold for warm starts.
_WARM_STARTS = 32
# Below this many multiply-adds to form the Hessian (n_samples * n_params**2),
# Newton's exact solve costs little more than L-BFGS's inexact one, which
# would be solved again if differentiated: the coarse pass solves exactly.
# breast_cancer (455 x 31, 4e5): 0.12 s exact against 0.15 s inexact;
# make_classification 4,000 x 101 (4e7): 0.57 s against 0.50 s.
_SMALL_HESSIAN = 1e7


# --- Traced by autograd ----------------------------------------------------


def _pointwise_log_loss(theta, X, Y):
    """Log-loss of each sample under the linear model ``theta`` (traced).

    ``theta`` is the ravelled ``(n_rows, n_columns)`` array of coefficients,
    intercept last when ``X`` has a column of ones. Binary targets have one
    row and ``Y`` in {0, 1}; multiclass targets are one-hot encoded.
    """
    coef = anp.reshape(theta, (-1, X.shape[1])).T
    raw = _sparse_product(X, coef) if sparse.issparse(X) else anp.dot(X, coef)
    if Y.ndim == 1:
        return binary_log_loss(raw[:, 0], Y)
    return multinomial_log_loss(raw, Y)


@primitive
def _sparse_product(X, coef):
    """``X @ coef`` for a sparse ``X`` (data, not traced); first order only."""
    return X @ coef


defvjp(_sparse_product, None, lambda ans, X, coef: lambda g: X.T @ g)


def _train_objective(theta, C, X, Y, sample_weight, penalty):
    """sklearn's training objective divided by ``C * sum(s)`` (traced).

    ``sample_weight`` is normalized to sum to one; ``penalty`` holds, for each
    entry of ``theta``, its L2 weight divided by ``sum(s)``: ``1 / sum(s)``
    for coefficients, 0 for intercepts (``1 / (intercept_scaling**2 *
    sum(s))`` for liblinear's penalized intercept). The numpy solver
    minimizes this function; the tests check its derivatives against
    autograd's of this one.
    """
    data_term = anp.dot(sample_weight, _pointwise_log_loss(theta, X, Y))
    return data_term + _penalty_term(theta, C, penalty)


def _penalty_term(theta, C, penalty):
    """The part of :func:`_train_objective` that depends on ``C`` (traced)."""
    return 0.5 / C * anp.sum(penalty * theta**2)


def _validation_loss(theta, X, Y, weights):
    """Log-loss on the validation fold, clipped as sklearn's (traced).

    ``weights`` weigh the samples and sum to one.
    """
    return weighted_mean(clipped(_pointwise_log_loss(theta, X, Y)), weights)


# --- The solution, the fold and the model ----------------------------------


class _LogisticSolution(Solution):
    """The minimizer at one C, differentiated implicitly when asked.

    Exact unless ``exact=False``: then stopped where scikit-learn's lbfgs
    stops, and never differentiated.
    """

    def __init__(self, fold, C, theta, l2, proba, n_iter, exact=True):
        self._fold = fold
        self.C = C
        self.params = {"C": C}
        self.theta = theta
        self._l2 = l2
        self._proba = proba
        self.n_iter = n_iter
        self.exact = exact
        self.loss = (
            float(_validation_loss(theta, *fold.val_args)) + fold.unseen_loss
            if np.all(np.isfinite(theta))
            else np.nan
        )
        self.loss_is_score = fold.loss_is_score and np.isfinite(self.loss)

    def hypergradient(self, names):
        if list(names) not in ([], ["C"]):
            raise ValueError(
                f"LogisticRegression has no continuous hyperparameters {names}."
            )
        if not names:
            return {}
        if not self.exact:
            raise RuntimeError(
                "An inexact solution has no hypergradient: solve it exactly."
            )
        if not np.all(np.isfinite(self.theta)):
            return {"C": np.nan}
        fold = self._fold
        converged = True

        def solve(b):
            nonlocal converged
            solution, converged = fold.hessian_solver.solve(
                self._l2, self._proba, b, _ADJOINT_RTOL
            )
            return solution

        def validation_loss(theta):
            return _validation_loss(theta, *fold.val_args)

        def mixed_term(theta, hypers):
            # Only the penalty depends on C: the mixed derivative of the
            # training objective is that of the penalty, traced without the
            # data, in log C: 1 / C**2 would overflow for C beyond 1e154 and
            # below 1e-154, while C * dL/dC stays finite.
            return 0.5 * anp.exp(-hypers["log_C"]) * anp.sum(fold.penalty * theta**2)

        with blas_threads_limited():
            grads = implicit_hypergradient(
                validation_loss,
                self.theta,
                solve,
                mixed_term,
                {"log_C": np.log(self.C)},
            )
        if not converged:
            warnings.warn(
                f"The conjugate-gradient solve of the adjoint system of "
                f"LogisticRegression(C={self.C:.6g}) did not converge: the "
                "hypergradient is inaccurate. The training problem is very "
                "ill-conditioned: scale the features or lower the upper bound of C.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return {"C": grads["log_C"] / self.C}

    def fitted_estimator(self):
        fold = self._fold
        if not np.all(np.isfinite(self.theta)):
            raise ValueError(
                f"The training diverged at C={self.C:.6g}: non-finite coefficients."
            )
        coef = self.theta.reshape(fold.objective.n_rows, -1)
        model = clone(fold.estimator).set_params(C=self.C)
        model.classes_ = fold.classes_
        model.coef_ = coef[:, : fold.n_features_in_].copy()
        if fold.estimator.fit_intercept:
            model.intercept_ = coef[:, -1].copy()
        elif fold.estimator.solver == "liblinear":
            model.intercept_ = 0.0  # as sklearn's liblinear path sets it
        else:
            model.intercept_ = np.zeros(len(coef))
        model.n_features_in_ = fold.n_features_in_
        model.n_iter_ = np.array([self.n_iter], dtype=np.int32)
        return model


def _as_float_array(X):
    """``X`` in float64: a dense array, or a CSR matrix if sparse."""
    if sparse.issparse(X):
        return sparse.csr_matrix(X, dtype=np.float64)
    return np.asarray(X, dtype=np.float64)


def _with_ones(X):
    """``X`` with a last column of ones (the intercept's), sparse if ``X`` is.

    A dense result is column-major (see :func:`_column_major`).
    """
    if sparse.issparse(X):
        return sparse.hstack([X, np.ones((X.shape[0], 1))], format="csr")
    # One copy: X.T into the rows of a row-major array, then its transpose
    # (18 ms on 80,000 x 50, against 28 ms for a column-major copy then a
    # concatenation).
    design = np.empty((X.shape[1] + 1, X.shape[0]))
    design[:-1] = X.T
    design[-1] = 1.0
    return design.T


def _column_major(X):
    """A column-major copy of a dense ``X`` (``X`` itself if it is one).

    The products with ``X`` and ``X.T`` of the solves were 25% faster
    (multinomial digits) than with a row-major copy. Made as the transpose
    of a row-major copy of ``X.T``: ``np.asfortranarray`` took 4 to 7 times
    longer on 80,000 x 51.
    """
    return np.ascontiguousarray(X.T).T


class _LogisticFold(Fold):
    def __init__(self, estimator, data):
        self.estimator = estimator
        X_train, X_val = _as_float_array(data.X_train), _as_float_array(data.X_val)
        # As LogisticRegression.fit: a column vector is ravelled, with a
        # DataConversionWarning.
        y_train = column_or_1d(data.y_train, warn=True)
        y_val = column_or_1d(data.y_val)
        check_classification_targets(y_train)
        self.classes_, y_index = np.unique(y_train, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but "
                f"the data contains only one class: {self.classes_[0]!r}"
            )
        if estimator.solver == "liblinear" and n_classes > 2:
            raise ValueError(
                "The 'liblinear' solver does not support multiclass classification"
                " (n_classes >= 3). Either use another solver or wrap the "
                "estimator in a OneVsRestClassifier to keep applying a "
                "one-versus-rest scheme."
            )
        val_index = np.searchsorted(self.classes_, y_val)
        seen = (val_index < n_classes) & (
            self.classes_[np.minimum(val_index, n_classes - 1)] == y_val
        )
        # A validation sample of a class the training fold lacks has the
        # loss scikit-learn's log_loss gives it with all the labels: its
        # probability 0, clipped to eps. It does not depend on C.
        val_weights = data.val_weights
        self.unseen_loss = float(val_weights[~seen].sum() * MAX_LOG_LOSS)
        # scikit-learn's log_loss scorer infers the labels from y_val: it
        # computes this loss when y_val has every class of the training part
        # and no other (else it fails, or scores another problem).
        self.loss_is_score = bool(seen.all() and len(np.unique(val_index)) == n_classes)
        X_val, val_index, val_weights = X_val[seen], val_index[seen], val_weights[seen]

        n_samples, self.n_features_in_ = X_train.shape
        if data.sample_weight is None:
            weights = np.ones(n_samples)
        else:
            weights = np.array(data.sample_weight, dtype=np.float64)
        if estimator.class_weight is not None:
            class_weight = compute_class_weight(
                estimator.class_weight,
                classes=self.classes_,
                y=y_train,
                sample_weight=weights,
            )
            weights = weights * class_weight[y_index]
        weight_sum = weights.sum()

        fit_intercept = estimator.fit_intercept
        # Coefficient rows: one for a binary target (the logit of classes_[1]),
        # one per class for the multinomial.
        n_rows = 1 if n_classes == 2 else n_classes
        penalty = np.ones((n_rows, self.n_features_in_ + int(fit_intercept)))
        if fit_intercept:
            # liblinear penalizes the intercept as the coefficient of an
            # extra feature equal to intercept_scaling.
            penalty[:, -1] = (
                1.0 / estimator.intercept_scaling**2
                if estimator.solver == "liblinear"
                else 0.0
            )
            X_train = _with_ones(X_train)
            X_val = _with_ones(X_val)
        elif not sparse.issparse(X_train):
            X_train = _column_major(X_train)
        if n_rows == 1:
            Y_train = y_index.astype(np.float64)
            Y_val = val_index.astype(np.float64)
        else:
            Y_train = np.eye(n_classes)[y_index]
            Y_val = np.eye(n_classes)[val_index]

        # The arguments of the traced functions besides theta and C: the
        # training objective's (normalized weights and penalty, see
        # _train_objective) and the validation loss's.
        self.train_args = (
            X_train,
            Y_train,
            weights / weight_sum,
            penalty.ravel() / weight_sum,
        )
        self.penalty = self.train_args[-1]
        self.val_args = (X_val, Y_val, val_weights)
        self.objective = LogisticObjective(
            X_train,
            Y_train,
            weights / weight_sum,
            penalty.ravel(),
            centered=fit_intercept and n_rows > 1 and penalty[0, -1] == 0,
        )
        self.weight_sum = weight_sum
        self.hessian_solver = HessianSolver(self.objective)
        _, gradient_at_zero, _ = self.objective.value_grad(
            np.zeros(self.objective.n_params), 0.0
        )
        # Floored so that a target with no signal (gradient ~0 at zero) does
        # not ask for a gradient below its rounding noise.
        self.default_gtol = _GTOL_RELATIVE * max(np.max(np.abs(gradient_at_zero)), 1e-5)
        self.gtol = min(estimator.tol, self.default_gtol)
        # (log C, theta) of the recent solves, for warm starts only: a
        # solution is the minimizer at its C, wherever the solve started.
        self._history = []

    def solve(self, params, *, differentiate=False, exact=True):
        """Solve the training problem at ``C``, warm-started.

        Exactly by Newton's method, or with ``exact=False`` by L-BFGS with
        the estimator's ``tol`` and scikit-learn's other lbfgs settings
        (``_inexact_solve``), which the coarse pass asks for: unless the
        problem is small enough for Newton to cost about as much.
        """
        C = params.get("C", self.estimator.C)
        if not (isinstance(C, numbers.Real) and 0 < C < np.inf):
            raise ValueError(
                "HypergradSearchCV needs a finite positive C for LogisticRegression; "
                f"got C={C!r}. Search C over a range such as (1e-4, 1e4)."
            )
        C = float(C)
        max_iter = self.estimator.max_iter
        l2 = 1.0 / (C * self.weight_sum)
        # Warm start from the solution at the nearest C solved so far (the
        # search comes back near the best point of its coarse pass after
        # visiting the far end of the range) or, often closer, from the line
        # through the two nearest solutions (as functions of log C).
        nearest = sorted(self._history, key=lambda item: abs(item[0] - np.log(C)))
        start = nearest[0][1] if nearest else np.zeros(self.objective.n_params)
        alternatives = ()
        if len(nearest) >= 2:
            (log_C0, theta0), (log_C1, theta1) = nearest[1], nearest[0]
            if log_C1 != log_C0:
                slope = (theta1 - theta0) / (log_C1 - log_C0)
                alternatives = (theta1 + slope * (np.log(C) - log_C1),)
        small = self.objective.X.shape[0] * self.objective.n_params**2 < _SMALL_HESSIAN
        if not (exact or small) and self.estimator.tol > self.gtol:
            with blas_threads_limited():
                inexact = self._inexact_solve(start, alternatives, l2)
            if inexact is not None:
                theta, n_iter, proba = inexact
                self._remember(C, theta)
                return _LogisticSolution(self, C, theta, l2, proba, n_iter, exact=False)
        with blas_threads_limited():
            theta, n_iter, grad_norm, proba = newton_solve(
                self.objective,
                self.hessian_solver,
                start,
                l2,
                max_iter=max_iter,
                gtol=self.gtol,
                alternative_starts=alternatives,
            )
        # Warn when out of iterations, or stalled (no decrease above rounding
        # level) before the default tolerance: a tighter tol may be unreachable.
        if (n_iter >= max_iter and grad_norm > self.gtol) or (
            grad_norm > self.default_gtol
        ):
            stopped = (
                f"stopped at max_iter={max_iter} Newton iterations"
                if n_iter >= max_iter
                else f"stalled after {n_iter} Newton iterations"
            )
            warnings.warn(
                f"The inner solve of LogisticRegression(C={C:.6g}) on a "
                f"cross-validation fold {stopped}, with a largest gradient entry of "
                f"{grad_norm:.3g} above the tolerance {self.gtol:.3g}: its loss and "
                "hypergradient are inaccurate. Increase LogisticRegression's "
                "max_iter, or scale the features (StandardScaler).",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._remember(C, theta)
        return _LogisticSolution(self, C, theta, l2, proba, n_iter)

    def _remember(self, C, theta):
        """Keep ``theta`` to warm-start the next solves."""
        if np.all(np.isfinite(theta)):
            self._history = [*self._history[-(_WARM_STARTS - 1) :], (np.log(C), theta)]
        else:
            self._history = []

    def _inexact_solve(self, start, alternatives, l2):
        """L-BFGS where scikit-learn's lbfgs stops, or None if it does not.

        The stopping rule of ``LogisticRegression(solver="lbfgs")`` on the
        same normalized objective: the largest gradient entry below the
        estimator's ``tol``, or a relative decrease below ``64 eps``, within
        ``max_iter`` iterations. Only a solve whose largest gradient entry
        reached ``tol`` is returned: the point is then as accurate as
        GridSearchCV's fit makes it, and a few times cheaper than Newton's
        exact solve (an L-BFGS iteration costs a gradient; a Newton step
        forms or applies the Hessian many times). Otherwise None, and the
        exact solve takes over.
        """
        objective = self.objective
        start = best_start(objective, l2, (start, *alternatives))[0]
        result = optimize.minimize(
            lambda theta: objective.value_grad(theta, l2)[:2],
            start,
            method="L-BFGS-B",
            jac=True,
            options={
                "maxiter": self.estimator.max_iter,
                "maxls": 50,
                "gtol": self.estimator.tol,
                "ftol": 64 * np.finfo(float).eps,
            },
        )
        theta = objective.project(result.x)
        _, gradient, proba = objective.value_grad(theta, l2)
        if not (
            np.all(np.isfinite(theta))
            and np.max(np.abs(gradient)) <= self.estimator.tol
        ):
            return None
        return theta, int(result.nit), proba


class LogisticRegressionModel(DifferentiableModel):
    """:class:`~sklearn.linear_model.LogisticRegression` (L2), tuned over ``C``.

    Binary and multinomial targets, ``fit_intercept``, ``class_weight`` and
    ``sample_weight`` are supported. Every solver minimizes the same L2
    objective (liblinear with its penalized intercept), and the exact
    minimizer is used whatever the solver: the fitted coefficients agree with
    scikit-learn's to the solver's ``tol``. ``max_iter`` bounds the Newton
    iterations of each inner solve (``n_iter_`` of the fitted estimators
    counts them); ``tol`` is only used when it is tighter than the internal
    tolerance, since a loose solve gives a wrong gradient. ``penalty="l2"``
    (deprecated by scikit-learn 1.8) is accepted; L1 and elastic-net
    penalties, ``penalty=None`` and ``C=np.inf`` are refused.
    """

    estimator_class = LogisticRegression
    # scipy.sparse X stays sparse: the solves need only products with X.
    accept_sparse = True
    # The coarse pass is solved as lbfgs would stop (_LogisticFold.solve).
    inexact_solves = True
    # C is a positive scale: searched as log(C).
    hyperparameters = {"C": "log"}
    loss_name = "log-loss"
    loss_scoring = "neg_log_loss"

    def check_estimator(self, estimator):
        penalty = effective_logistic_penalty(estimator)
        if penalty in ("l1", "elasticnet"):
            given = (
                f"l1_ratio={estimator.l1_ratio!r}"
                if estimator.penalty == "deprecated"
                else f"penalty={estimator.penalty!r}"
            )
            raise ValueError(
                f"LogisticRegression({given}) has an L1 term in its penalty, which "
                "is not differentiable, so HypergradSearchCV cannot tune it. Only "
                "the L2 penalty (l1_ratio=0, the default) is supported, and its "
                "tunable hyperparameter is C. Set l1_ratio=0, or tune l1_ratio with "
                "GridSearchCV."
            )
        if penalty is None:
            raise ValueError(
                "LogisticRegression(penalty=None) is not penalized, so it has no C "
                "to tune. HypergradSearchCV tunes C of the L2 penalty (l1_ratio=0, "
                "the default): leave penalty unset."
            )
        if estimator.dual and estimator.solver != "liblinear":
            raise ValueError(
                f"Solver {estimator.solver} supports only dual=False, got dual=True."
            )

    def fold(self, estimator, data):
        return _LogisticFold(estimator, data)

    def refit_gap(self, estimator, data):
        """How far above the optimum's objective the solver stops, relatively.

        scikit-learn's solvers stop at ``tol`` (lbfgs at 1e-4 by default),
        while the search scores the exact optimum: ``(f(fitted) - f(optimum))
        / f(optimum)``, with ``f(optimum)`` floored at a thousandth of
        ``f(0)`` where the optimum is near zero (separable data).
        """
        fold = _LogisticFold(estimator, data)
        coef = np.atleast_2d(estimator.coef_)
        if estimator.fit_intercept:
            intercept = np.ravel(estimator.intercept_)[:, None]
            coef = np.hstack([coef, intercept])
        coef = coef.ravel()
        # Newton's solve starts from the fitted coefficients, a few steps
        # from the optimum.
        fold._remember(estimator.C, fold.objective.project(coef))
        optimum = fold.solve({})
        l2 = 1.0 / (optimum.C * fold.weight_sum)
        fitted_value = fold.objective.value_grad(coef, l2)[0]
        best_value = fold.objective.value_grad(optimum.theta, l2)[0]
        start_value = fold.objective.value_grad(np.zeros_like(optimum.theta), l2)[0]
        scale = max(abs(best_value), 1e-3 * abs(start_value))
        return float((fitted_value - best_value) / scale)

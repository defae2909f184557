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
*How to solve* (not traced): :class:`_LogisticObjective` evaluates the
normalized objective, its gradient, Hessian and Hessian-vector products with
hand-written, vectorized numpy, and :func:`_newton_solve` minimizes it with a
damped, inexact Newton method. Warm starts come from the previous solutions
of the same fold: the last one, or the line through the last two (in
:math:`\\log C`) when that starts closer. :class:`_HessianSolver` solves the
Newton systems by conjugate gradient on exact Hessian-vector products,
preconditioned by the Hessian's diagonal while that suffices (a strong
penalty), then by a Cholesky factorization of the Hessian at an earlier
point: the nearest of the last few, which successive outer iterations reuse
(a new one is made when CG stops converging fast); large models keep the
diagonal.

*How to differentiate* (traced by autograd): :func:`_train_objective` and
:func:`_validation_loss` are written in ``autograd.numpy``, and
:func:`_implicit_value_and_grad` applies the implicit function theorem at the
optimum :math:`\\theta^*` (with :math:`\\theta = (W, b)` and :math:`f` the
normalized training objective):

.. math::

    H v = \\nabla_\\theta L_{val}(\\theta^*), \\qquad
    \\frac{d L_{val}}{d C} = - v^T \\, \\partial_C \\nabla_\\theta f(\\theta^*, C),
    \\qquad H = \\nabla^2_\\theta f(\\theta^*, C).

autograd computes :math:`\\nabla_\\theta L_{val}` and the mixed derivative
:math:`v^T \\partial_C \\nabla_\\theta f`, traced on the penalty term alone
since the data term does not depend on :math:`C`. The adjoint system is solved by
:class:`_HessianSolver` at :math:`\\theta^*`, whose Hessian-vector products
are the same as autograd's (the tests check the derivative against a solve
by conjugate gradient on autograd's products) at a fraction of the cost.

With a multinomial model and an intercept, adding a constant to all the
intercepts changes nothing, so the Hessian is singular along that direction.
The intercepts are kept centered (as lbfgs, started from zero, keeps them),
and the right-hand sides are orthogonal to that direction.
"""

import functools
import numbers
import warnings

import autograd.numpy as anp
import numpy as np
from autograd import grad, value_and_grad
from autograd.scipy.special import logsumexp
from scipy.linalg import blas, eigh, lapack
from scipy.special import expit
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from threadpoolctl import ThreadpoolController

from ._base import DifferentiableModel, Fold, validation_weights

# Up to this many parameters ((n_classes or 1) * (n_features + 1)), systems
# with the Hessian are preconditioned by the Cholesky factorization of the
# Hessian at an earlier point: forming it costs n_samples * n_params**2 flops,
# a Hessian-vector product 4 * n_samples * n_params. The factorization is
# reused until conjugate gradient needs more than n_params / 10 iterations
# (at least 5, at most 30): matrix products run faster per flop than
# matrix-vector ones, and on breast_cancer (31 parameters), a 100-feature
# binary problem (101) and digits (650) this was near the fastest.
# Above _MAX_DIRECT_PARAMS, the Hessian's diagonal is the preconditioner.
_MAX_DIRECT_PARAMS = 1000
_REFRESH_RANGE = (5, 30)
# Factorizations kept per fold (up to 8 MB each).
_FACTORS_KEPT = 3

# The inner solve stops when the largest gradient entry of the normalized
# objective falls below this fraction of its value at zero (or below ``tol``
# if that is smaller). Newton converges quadratically, so this costs about one
# iteration more than sklearn's default ``tol=1e-4``, and the loss and the
# hypergradient are accurate to many digits.
_GTOL_RELATIVE = 1e-9

# Relative residual of the conjugate-gradient solve of the adjoint system.
_ADJOINT_RTOL = 1e-10
# Solutions kept per fold for warm starts.
_WARM_STARTS = 32

# The solves multiply (n_samples, n_features + 1) arrays by vectors or a few
# columns: too little work to share between BLAS threads. One thread made a
# fold's value_and_grad 1.5-10x faster on 2 cores (the most when other
# processes load the machine).
_BLAS_THREADS = 1

# sklearn's log_loss clips probabilities to [eps, 1 - eps].
_EPS = np.finfo(np.float64).eps
_MIN_LOG_LOSS = -np.log1p(-_EPS)
_MAX_LOG_LOSS = -np.log(_EPS)


# --- Traced by autograd ----------------------------------------------------


def _pointwise_log_loss(theta, X, Y):
    """Log-loss of each sample under the linear model ``theta`` (traced).

    ``theta`` is the ravelled ``(n_rows, n_columns)`` array of coefficients,
    intercept last when ``X`` has a column of ones. Binary targets have one
    row and ``Y`` in {0, 1}; multiclass targets are one-hot encoded.
    """
    raw = anp.dot(X, anp.reshape(theta, (-1, X.shape[1])).T)
    if Y.ndim == 1:
        raw = raw[:, 0]
        return anp.logaddexp(0.0, raw) - Y * raw
    return logsumexp(raw, axis=1) - anp.sum(Y * raw, axis=1)


def _train_objective(theta, C, X, Y, sample_weight, penalty):
    """sklearn's training objective divided by ``C * sum(s)`` (traced).

    ``sample_weight`` is normalized to sum to one; ``penalty`` holds, for each
    entry of ``theta``, its L2 weight divided by ``sum(s)``: ``1 / sum(s)``
    for coefficients, 0 for intercepts (``1 / (intercept_scaling**2 *
    sum(s))`` for liblinear's penalized intercept).
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
    return anp.dot(
        weights,
        anp.clip(_pointwise_log_loss(theta, X, Y), _MIN_LOG_LOSS, _MAX_LOG_LOSS),
    )


def _implicit_value_and_grad(
    train_objective, validation_loss, theta, hyper, train_args, val_args, solve
):
    """Validation loss at the optimum and its derivative in ``hyper``.

    ``theta`` minimizes ``train_objective(., hyper, *train_args)``, so
    :math:`\\nabla_\\theta f(\\theta^*(\\lambda), \\lambda) = 0` and, by the
    implicit function theorem and the adjoint :math:`H v = \\nabla_\\theta V`,
    :math:`dV/d\\lambda = -v^T \\partial_\\lambda \\nabla_\\theta f`. Nothing of
    the solver that found ``theta`` is differentiated.

    Parameters
    ----------
    train_objective : callable ``(theta, hyper, *train_args) -> float``
        Traced training objective, or any part of it that holds all its
        dependence on ``hyper`` (the rest has no mixed derivative).
    validation_loss : callable ``(theta, *val_args) -> float``
        Traced validation loss.
    theta : ndarray of shape (n_params,)
        Minimizer of the training objective at ``hyper``.
    hyper : float
        The hyperparameter.
    train_args, val_args : tuple
        Remaining arguments of the two functions.
    solve : callable ``b -> v``
        Solves :math:`H v = b` with the Hessian of the training objective in
        ``theta`` at ``(theta, hyper)``.

    Returns
    -------
    value : float
    derivative : float
    """
    value, val_grad = value_and_grad(validation_loss)(theta, *val_args)
    adjoint = solve(val_grad)

    def adjoint_dot_train_grad(h):
        return anp.dot(adjoint, grad(train_objective)(theta, h, *train_args))

    return value, -grad(adjoint_dot_train_grad)(hyper)


# --- Not traced: the solver ------------------------------------------------


def _conjugate_gradient(matvec, b, *, rtol, max_iter, precondition=None):
    """Solve ``A x = b`` for symmetric positive (semi-)definite ``A``.

    ``precondition(r)`` applies an approximate inverse of ``A``. Returns the
    solution, the number of iterations and whether the residual reached
    ``rtol * ||b||``.
    """
    x = np.zeros_like(b)
    residual = b
    target = rtol * np.linalg.norm(b)
    z = residual if precondition is None else precondition(residual)
    direction = z
    rz = residual @ z
    for n_iter in range(max_iter):
        if np.linalg.norm(residual) <= target:
            return x, n_iter, True
        product = matvec(direction)
        curvature = direction @ product
        if not curvature > 0:
            return x, n_iter, False
        step = rz / curvature
        x = x + step * direction
        residual = residual - step * product
        z = residual if precondition is None else precondition(residual)
        rz, rz_previous = residual @ z, rz
        direction = z + (rz / rz_previous) * direction
    return x, max_iter, np.linalg.norm(residual) <= target


class _LogisticObjective:
    """The normalized training objective in numpy: value, gradient, Hessian.

    Mirrors :func:`_train_objective`, with ``l2 = 1 / (C * sum(s))`` and
    ``w = s / sum(s)``. With ``p`` the predicted probabilities and ``r`` the
    penalty weights, in the binary case

    .. math::

        f = \\sum_i w_i \\ell_i + \\tfrac{l_2}{2} \\sum_j r_j \\theta_j^2, \\quad
        \\nabla f = X^T (w \\odot (p - y)) + l_2 r \\odot \\theta, \\quad
        H = X^T \\operatorname{diag}(w \\odot p \\odot (1 - p)) X + l_2
        \\operatorname{diag}(r);

    the multinomial Hessian has the blocks
    :math:`X^T \\operatorname{diag}(w \\odot (p_k \\delta_{kl} - p_k p_l)) X
    + l_2 \\delta_{kl} \\operatorname{diag}(r)`.
    """

    def __init__(self, X, Y, sample_weight, penalty, centered):
        self.X = X
        self.Y = Y
        self.sample_weight = sample_weight
        self.penalty = penalty
        self.n_rows = 1 if Y.ndim == 1 else Y.shape[1]
        self.n_params = self.n_rows * X.shape[1]
        # Unit vector along which the objective is flat (all the intercepts
        # shifted together), or None.
        self.flat_direction = None
        if centered:
            flat = np.zeros((self.n_rows, X.shape[1]))
            flat[:, -1] = 1.0 / np.sqrt(self.n_rows)
            self.flat_direction = flat.ravel()

    def project(self, theta):
        """Remove the flat direction (center the multinomial intercepts)."""
        if self.flat_direction is None:
            return theta
        return theta - (theta @ self.flat_direction) * self.flat_direction

    def value_grad(self, theta, l2):
        """Objective and gradient at ``theta``, and the probabilities."""
        X, Y, w = self.X, self.Y, self.sample_weight
        penalized = self.penalty * theta
        if Y.ndim == 1:
            raw = X @ theta
            loss = np.logaddexp(0.0, raw) - Y * raw
            proba = expit(raw)
            gradient = X.T @ (w * (proba - Y))
        else:
            raw = X @ theta.reshape(self.n_rows, -1).T
            top = raw.max(axis=1)
            log_norm = top + np.log(np.exp(raw - top[:, None]).sum(axis=1))
            loss = log_norm - np.einsum("ij,ij->i", Y, raw)
            proba = np.exp(raw - log_norm[:, None])
            gradient = ((w[:, None] * (proba - Y)).T @ X).ravel()
        value = w @ loss + 0.5 * l2 * (penalized @ theta)
        return value, gradient + l2 * penalized, proba

    def hessian(self, l2, proba):
        """Dense Hessian at the point where ``proba`` was computed."""
        X, w = self.X, self.sample_weight
        if proba.ndim == 1:
            hessian = X.T @ ((w * proba * (1.0 - proba))[:, None] * X)
        else:
            n_samples, n_columns = X.shape
            # -sum_i w_i (p_i kron x_i)(p_i kron x_i)^T, plus the diagonal blocks
            # X^T diag(w p_k) X.
            outer = np.sqrt(w)[:, None, None] * proba[:, :, None] * X[:, None, :]
            outer = outer.reshape(n_samples, -1)
            hessian = -(outer.T @ outer)
            for k in range(self.n_rows):
                block = slice(k * n_columns, (k + 1) * n_columns)
                hessian[block, block] += X.T @ ((w * proba[:, k])[:, None] * X)
        hessian[np.diag_indices_from(hessian)] += l2 * self.penalty
        return hessian

    def hessian_diagonal(self, l2, proba):
        """Diagonal of the Hessian."""
        proba = proba.reshape(len(proba), -1)
        curvature = self.sample_weight[:, None] * proba * (1.0 - proba)
        return ((self.X**2).T @ curvature).T.ravel() + l2 * self.penalty

    def hessp(self, l2, proba):
        """Hessian-vector product at the point where ``proba`` was computed."""
        X = self.X
        ridge = l2 * self.penalty
        if proba.ndim == 1:
            curvature = self.sample_weight * proba * (1.0 - proba)

            def product(v):
                return X.T @ (curvature * (X @ v)) + ridge * v

        else:
            weighted = self.sample_weight[:, None] * proba

            def product(v):
                raw = X @ v.reshape(self.n_rows, -1).T
                centered = raw - np.einsum("ij,ij->i", proba, raw)[:, None]
                return ((weighted * centered).T @ X).ravel() + ridge * v

        return product


class _HessianSolver:
    """Solves systems with the training Hessian at the current point.

    Conjugate gradient on exact Hessian-vector products (``2 n_samples
    n_params`` flops each), preconditioned:

    - up to ``_MAX_DIRECT_PARAMS`` parameters, by a Cholesky factorization of
      the Hessian at an earlier point (``n_samples n_params**2`` flops to form):
      of the ``_FACTORS_KEPT`` most recent ones, the one whose penalty is
      nearest. The outer iterations move C by small steps, so one
      factorization serves several Newton steps and adjoint solves, and the
      gradient phase comes back near the points of the coarse pass. A new
      one is made at the current point when CG needs more than
      ``refresh_after`` iterations. Before the first factorization, the
      Hessian's diagonal is tried first: with a strong penalty it is all the
      preconditioning needed;
    - above that, by the Hessian's diagonal.
    """

    def __init__(self, objective):
        self.objective = objective
        self.direct = objective.n_params <= _MAX_DIRECT_PARAMS
        self.refresh_after = int(np.clip(objective.n_params // 10, *_REFRESH_RANGE))
        self._factors = []  # (log l2, solve with the factor), oldest first
        self.n_factorizations = 0

    def _refresh(self, l2, proba):
        objective = self.objective
        hessian = objective.hessian(l2, proba)
        if objective.flat_direction is not None:
            # Make the flat direction an eigenvector of eigenvalue 1 so that
            # the matrix is invertible; right-hand sides are orthogonal to it.
            hessian += np.outer(objective.flat_direction, objective.flat_direction)
        self.n_factorizations += 1
        factor, info = lapack.dpotrf(hessian, lower=1, clean=1)
        if info == 0:
            # Two triangular solves with BLAS: LAPACK's potrs costs 3-4 times
            # more for one right-hand side (0.26 ms against 0.07 ms with
            # 650 parameters), and CG applies this at every iteration.
            def solve(b):
                return blas.dtrsv(
                    factor, blas.dtrsv(factor, b, lower=1), lower=1, trans=1
                )

        else:
            # Numerically singular (huge C on separable data): pseudo-inverse.
            eigenvalues, eigenvectors = eigh(hessian, check_finite=False)
            cutoff = _EPS * len(eigenvalues) * max(eigenvalues.max(), 0.0)
            kept = eigenvalues > cutoff
            inverse = np.zeros_like(eigenvalues)
            inverse[kept] = 1.0 / eigenvalues[kept]

            def solve(b):
                return eigenvectors @ (inverse * (eigenvectors.T @ b))

        self._factors = [*self._factors[-(_FACTORS_KEPT - 1) :], (np.log(l2), solve)]
        return solve

    def _nearest_factor(self, l2):
        if not self._factors:
            return None
        return min(self._factors, key=lambda item: abs(item[0] - np.log(l2)))[1]

    def solve(self, l2, proba, b, rtol):
        """Solve ``H x = b`` to a relative residual ``rtol``.

        Returns the solution and whether it reached ``rtol``.
        """
        matvec = self.objective.hessp(l2, proba)

        def conjugate_gradient(precondition, max_iter):
            x, _, converged = _conjugate_gradient(
                matvec, b, rtol=rtol, max_iter=max_iter, precondition=precondition
            )
            return self.objective.project(x), converged

        if not self.direct:
            return conjugate_gradient(self._diagonal(l2, proba), 10 * len(b))
        x, converged = conjugate_gradient(
            self._nearest_factor(l2) if self._factors else self._diagonal(l2, proba),
            self.refresh_after,
        )
        if converged:
            return x, True
        # The Hessian here: CG converges in a few iterations, rounding aside.
        return conjugate_gradient(self._refresh(l2, proba), self.refresh_after)

    def _diagonal(self, l2, proba):
        """The Jacobi preconditioner at the current point."""
        diagonal = self.objective.hessian_diagonal(l2, proba)
        diagonal = np.maximum(diagonal, _EPS * max(diagonal.max(), 1.0))
        return lambda r: r / diagonal


def _newton_solve(
    objective, hessian_solver, theta, l2, *, max_iter, gtol, alternative_starts=()
):
    """Minimize ``objective`` at ``l2`` from ``theta`` by damped Newton.

    The start is ``theta`` or, if one has a smaller gradient, one of
    ``alternative_starts``. Each step solves the Newton system with
    ``hessian_solver`` to a relative residual
    ``min(0.5, sqrt(||g|| / ||g_start||))`` (superlinear convergence), then
    backtracks until the Armijo condition holds. Near the optimum, rounding
    errors in the objective can hide a real decrease: a step that decreases
    the gradient is then accepted.

    Returns
    -------
    theta : ndarray
    n_iter : int
        Number of Newton steps taken.
    grad_norm : float
        Largest absolute gradient entry at ``theta``.
    proba : ndarray
        Predicted training probabilities at ``theta``.
    """
    starts = [
        (start, *objective.value_grad(start, l2))
        for start in (theta, *alternative_starts)
    ]
    theta, value, gradient, proba = min(
        starts, key=lambda start: np.max(np.abs(start[2]))
    )
    grad_norm = start_norm = np.max(np.abs(gradient))
    n_iter = 0
    while grad_norm > gtol and n_iter < max_iter and np.isfinite(value):
        # The forcing term is relative to the start: an absolute one would
        # ask for tight solves from the first step when the gradient is small
        # in absolute terms (a large C), for no faster convergence.
        direction, _ = hessian_solver.solve(
            l2, proba, -gradient, rtol=min(0.5, np.sqrt(grad_norm / start_norm))
        )
        slope = gradient @ direction
        if not slope < 0:  # rounding noise only
            break
        n_iter += 1
        scale = 1.0
        for _ in range(50):
            candidate = theta + scale * direction
            new_value, new_gradient, new_proba = objective.value_grad(candidate, l2)
            new_grad_norm = np.max(np.abs(new_gradient))
            if new_value <= value + 1e-4 * scale * slope or (
                new_value <= value + 16 * _EPS * abs(value)
                and new_grad_norm < grad_norm
            ):
                break
            scale *= 0.5
        else:  # no decrease above rounding level: as good as it gets
            break
        theta, value, gradient, proba = candidate, new_value, new_gradient, new_proba
        grad_norm = new_grad_norm
    return theta, n_iter, grad_norm, proba


# --- The fold and the model ------------------------------------------------


@functools.cache
def _threadpool_controller():
    return ThreadpoolController()


def _blas_threads_limited():
    return _threadpool_controller().limit(limits=_BLAS_THREADS, user_api="blas")


def _effective_penalty(estimator):
    """The penalty ``estimator.fit`` uses, as sklearn 1.8+ resolves it."""
    penalty = getattr(estimator, "penalty", "l2")
    if penalty != "deprecated":
        return penalty
    l1_ratio = estimator.l1_ratio
    if l1_ratio is None or l1_ratio == 0:
        return "l2"
    return "l1" if l1_ratio == 1 else "elasticnet"


class _LogisticFold(Fold):
    def __init__(
        self, estimator, X_train, y_train, X_val, y_val, sample_weight, val_weights
    ):
        self.estimator = estimator
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
        unseen = (val_index >= n_classes) | (
            self.classes_[np.minimum(val_index, n_classes - 1)] != y_val
        )
        if np.any(unseen):
            raise ValueError(
                f"The validation fold contains the labels {np.unique(y_val[unseen])}, "
                f"absent from its training fold (classes {self.classes_}), so its "
                "log-loss is infinite. Use a stratified splitter such as "
                "StratifiedKFold, or drop the rare classes."
            )

        n_samples, self.n_features_in_ = X_train.shape
        if sample_weight is None:
            weights = np.ones(n_samples)
        else:
            weights = np.array(sample_weight, dtype=np.float64)
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
            X_train = np.hstack([X_train, np.ones((n_samples, 1))])
            X_val = np.hstack([X_val, np.ones((len(X_val), 1))])
        # Column-major: the products with X and X.T of the solves were 25%
        # faster (multinomial digits) than with a row-major copy.
        X_train = np.asfortranarray(X_train)
        if n_rows == 1:
            Y_train = y_index.astype(np.float64)
            Y_val = val_index.astype(np.float64)
        else:
            Y_train = np.eye(n_classes)[y_index]
            Y_val = np.eye(n_classes)[val_index]

        self._train_args = (
            X_train,
            Y_train,
            weights / weight_sum,
            penalty.ravel() / weight_sum,
        )
        self._val_args = (X_val, Y_val, val_weights)
        self._objective = _LogisticObjective(
            X_train,
            Y_train,
            weights / weight_sum,
            penalty.ravel(),
            centered=fit_intercept and n_rows > 1 and penalty[0, -1] == 0,
        )
        self._weight_sum = weight_sum
        self._hessian_solver = _HessianSolver(self._objective)
        _, gradient_at_zero, _ = self._objective.value_grad(
            np.zeros(self._objective.n_params), 0.0
        )
        # Floored so that a target with no signal (gradient ~0 at zero) does
        # not ask for a gradient below its rounding noise.
        self._default_gtol = _GTOL_RELATIVE * max(
            np.max(np.abs(gradient_at_zero)), 1e-5
        )
        self._gtol = min(estimator.tol, self._default_gtol)
        self._history = []  # (log C, solution) of the recent solves
        self._C = None
        self._n_iter = 0

    def _train(self, C):
        """Solve the training problem at ``C``, from the last solution."""
        if not (isinstance(C, numbers.Real) and 0 < C < np.inf):
            raise ValueError(
                "HypergradSearchCV needs a finite positive C for LogisticRegression; "
                f"got C={C!r}. Search C over a range such as (1e-4, 1e4)."
            )
        C = float(C)
        max_iter = self.estimator.max_iter
        l2 = 1.0 / (C * self._weight_sum)
        # Warm start from the solution at the nearest C solved so far (the
        # search comes back near the best point of its coarse pass after
        # visiting the far end of the range) or, often closer, from the line
        # through the two nearest solutions (as functions of log C).
        nearest = sorted(self._history, key=lambda item: abs(item[0] - np.log(C)))
        start = nearest[0][1] if nearest else np.zeros(self._objective.n_params)
        alternatives = ()
        if len(nearest) >= 2:
            (log_C0, theta0), (log_C1, theta1) = nearest[1], nearest[0]
            if log_C1 != log_C0:
                slope = (theta1 - theta0) / (log_C1 - log_C0)
                alternatives = (theta1 + slope * (np.log(C) - log_C1),)
        theta, n_iter, grad_norm, proba = _newton_solve(
            self._objective,
            self._hessian_solver,
            start,
            l2,
            max_iter=max_iter,
            gtol=self._gtol,
            alternative_starts=alternatives,
        )
        # Warn when out of iterations, or stalled (no decrease above rounding
        # level) before the default tolerance: a tighter tol may be unreachable.
        if (n_iter >= max_iter and grad_norm > self._gtol) or (
            grad_norm > self._default_gtol
        ):
            stopped = (
                f"stopped at max_iter={max_iter} Newton iterations"
                if n_iter >= max_iter
                else f"stalled after {n_iter} Newton iterations"
            )
            warnings.warn(
                f"The inner solve of LogisticRegression(C={C:.6g}) on a "
                f"cross-validation fold {stopped}, with a largest gradient entry of "
                f"{grad_norm:.3g} above the tolerance {self._gtol:.3g}: its loss and "
                "hypergradient are inaccurate. Increase LogisticRegression's "
                "max_iter, or scale the features (StandardScaler).",
                ConvergenceWarning,
                stacklevel=4,
            )
        if np.all(np.isfinite(theta)):
            self._history = [*self._history[-(_WARM_STARTS - 1) :], (np.log(C), theta)]
        else:
            self._history = []
        self._C, self._n_iter, self._solution = C, n_iter, theta
        return theta, l2, proba

    def value(self, params):
        with _blas_threads_limited():
            theta, _, _ = self._train(params.get("C", self.estimator.C))
            return float(_validation_loss(theta, *self._val_args))

    def value_and_grad(self, params):
        with _blas_threads_limited():
            return self._value_and_grad(params)

    def _value_and_grad(self, params):
        theta, l2, proba = self._train(params.get("C", self.estimator.C))
        if "C" not in params:
            return float(_validation_loss(theta, *self._val_args)), {}
        if not np.all(np.isfinite(theta)):
            return np.nan, {"C": np.nan}
        converged = True

        def solve(b):
            nonlocal converged
            solution, converged = self._hessian_solver.solve(
                l2, proba, b, _ADJOINT_RTOL
            )
            return solution

        # Only the penalty depends on C: the mixed derivative of the training
        # objective is that of the penalty, traced without the data.
        *_, penalty = self._train_args
        loss, derivative = _implicit_value_and_grad(
            _penalty_term,
            _validation_loss,
            theta,
            self._C,
            (penalty,),
            self._val_args,
            solve,
        )
        if not converged:
            warnings.warn(
                f"The conjugate-gradient solve of the adjoint system of "
                f"LogisticRegression(C={self._C:.6g}) did not converge: the "
                "hypergradient is inaccurate. The training problem is very "
                "ill-conditioned: scale the features or lower the upper bound of C.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return float(loss), {"C": float(derivative)}

    def fitted_estimator(self):
        if self._C is None:
            with _blas_threads_limited():
                self._train(self.estimator.C)
        coef = self._solution.reshape(self._objective.n_rows, -1)
        model = clone(self.estimator).set_params(C=self._C)
        model.classes_ = self.classes_
        model.coef_ = coef[:, : self.n_features_in_].copy()
        if self.estimator.fit_intercept:
            model.intercept_ = coef[:, -1].copy()
        elif self.estimator.solver == "liblinear":
            model.intercept_ = 0.0  # as sklearn's liblinear path sets it
        else:
            model.intercept_ = np.zeros(len(coef))
        model.n_features_in_ = self.n_features_in_
        model.n_iter_ = np.array([self._n_iter], dtype=np.int32)
        return model


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
    # C is a positive scale: searched as log(C).
    hyperparameters = {"C": "log"}
    loss = "log-loss"

    def check_estimator(self, estimator):
        penalty = _effective_penalty(estimator)
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
        self.check_estimator(estimator)
        return _LogisticFold(
            estimator,
            np.asarray(X_train, dtype=np.float64),
            np.asarray(y_train),
            np.asarray(X_val, dtype=np.float64),
            np.asarray(y_val),
            sample_weight,
            validation_weights(val_sample_weight, len(X_val)),
        )

"""The L2-penalized logistic training problem, solved in numpy (not traced).

:class:`LogisticObjective` evaluates the normalized training objective (see
``_logistic``), its gradient, Hessian and Hessian-vector products with
hand-written, vectorized numpy; :func:`newton_solve` minimizes it with a
damped, inexact Newton method; :class:`HessianSolver` solves the Newton
systems and the adjoint system of the hypergradient by conjugate gradient on
exact Hessian-vector products, preconditioned by the Hessian's diagonal while
that suffices (a strong penalty), then by a Cholesky factorization of the
Hessian at an earlier point: the nearest of the last few, which successive
solves reuse (a new one is made when CG stops converging fast); large models
use a Kronecker approximation of the Hessian made at each new penalty
(:mod:`._logistic_preconditioner`).
"""

import functools

import numpy as np
from scipy import sparse
from scipy.linalg import blas, eigh, lapack
from scipy.special import expit

from ._implicit import conjugate_gradient
from ._logistic_preconditioner import KroneckerCurvature

__all__ = ["HessianSolver", "LogisticObjective", "best_start", "newton_solve"]

# reused until conjugate gradient needs more than n_params / 10 iterations
# (at least 5, at most 30): matrix products run faster per flop than
# matrix-vector ones, and on breast_cancer (31 parameters), a 100-feature
# binary problem (101) and digits (650) this was near the fastest.
# Above _MAX_DIRECT_PARAMS, a Kronecker approximation is the preconditioner.
_MAX_DIRECT_PARAMS = 1000
_REFRESH_RANGE = (5, 30)
# Factorizations kept per fold (up to 8 MB each).
_FACTORS_KEPT = 3
# Above _MAX_DIRECT_PARAMS, each power of the diagonal part of the Kronecker
# preconditioner is tried on this many CG solves to at most _RECORDED_RTOL
# (see HessianSolver._diagonal_power).
_TRIALS = 2
_RECORDED_RTOL = 1e-2


_EPS = np.finfo(np.float64).eps
# At a large C, newton_solve goes on below its gradient tolerance (see there).
_STEP_RTOL = 1e-8
_DISTANCE_RTOL = 1e-6
_EXTRA_STEPS = 5


class LogisticObjective:
    """The normalized training objective in numpy: value, gradient, Hessian.

    Mirrors ``_logistic._train_objective``, with ``l2 = 1 / (C * sum(s))`` and
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
        self._Y_by_class = None if Y.ndim == 1 else np.ascontiguousarray(Y.T)
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
            # Classes by samples: reductions over the few classes then run
            # along rows, 2.2 times faster in all than over the last axis
            # (100,000 x 50, 5 classes).
            coef = theta.reshape(self.n_rows, -1)
            raw = (X @ coef.T).T if sparse.issparse(X) else coef @ X.T
            top = raw.max(axis=0)
            shifted = np.exp(raw - top)
            norm = shifted.sum(axis=0)
            loss = top + np.log(norm) - (self._Y_by_class * raw).sum(axis=0)
            proba = shifted / norm
            residual = (proba - self._Y_by_class) * w
            gradient = (
                (X.T @ residual.T).T if sparse.issparse(X) else residual @ X
            ).ravel()
            proba = proba.T
        value = w @ loss + 0.5 * l2 * (penalized @ theta)
        return value, gradient + l2 * penalized, proba

    def _gram(self, curvature):
        """``X^T diag(curvature) X`` as a dense array."""
        X = self.X
        if sparse.issparse(X):
            return (X.T @ X.multiply(curvature[:, None]).tocsr()).toarray()
        return X.T @ (curvature[:, None] * X)

    def hessian(self, l2, proba):
        """Dense Hessian at the point where ``proba`` was computed."""
        w = self.sample_weight
        if proba.ndim == 1:
            hessian = self._gram(w * proba * (1.0 - proba))
        else:
            # Block (k, l): X^T diag(w p_k (delta_kl - p_l)) X, each pair once.
            n_columns = self.X.shape[1]
            hessian = np.empty((self.n_params, self.n_params))
            for k in range(self.n_rows):
                for m in range(k + 1):
                    curvature = w * proba[:, k] * (float(k == m) - proba[:, m])
                    block = self._gram(curvature)
                    rows = slice(k * n_columns, (k + 1) * n_columns)
                    columns = slice(m * n_columns, (m + 1) * n_columns)
                    hessian[rows, columns] = block
                    hessian[columns, rows] = block.T
        hessian[np.diag_indices_from(hessian)] += l2 * self.penalty
        return hessian

    def gram_diagonal(self, curvature):
        """The diagonal of ``X^T diag(c) X`` for each column ``c`` of ``curvature``.

        ``curvature`` of shape (n_samples,) or (n_samples, k); the result has
        shape (n_columns,) or (k, n_columns).
        """
        X = self.X
        squared = X.multiply(X) if sparse.issparse(X) else X**2
        return np.asarray(squared.T @ curvature).T

    def hessian_diagonal(self, l2, proba):
        """Diagonal of the Hessian."""
        proba = proba.reshape(len(proba), -1)
        curvature = self.sample_weight[:, None] * proba * (1.0 - proba)
        return self.gram_diagonal(curvature).ravel() + l2 * self.penalty

    def hessp(self, l2, proba):
        """Hessian-vector product at the point where ``proba`` was computed."""
        X = self.X
        ridge = l2 * self.penalty
        if proba.ndim == 1:
            curvature = self.sample_weight * proba * (1.0 - proba)

            def product(v):
                return X.T @ (curvature * (X @ v)) + ridge * v

        else:
            # Classes by samples, as in value_grad.
            by_class = np.ascontiguousarray(proba.T)
            weighted = by_class * self.sample_weight
            is_sparse = sparse.issparse(X)

            def product(v):
                coef = v.reshape(self.n_rows, -1)
                raw = (X @ coef.T).T if is_sparse else coef @ X.T
                centered = weighted * (raw - (by_class * raw).sum(axis=0))
                out = (X.T @ centered.T).T if is_sparse else centered @ X
                return out.ravel() + ridge * v

        return product


class HessianSolver:
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
    - above that, by a Kronecker approximation of the Hessian
      (:class:`~._logistic_preconditioner.KroneckerCurvature`, a few vectors
      of ``n_columns``), made at the first solve at each penalty: it serves
      the Newton steps and the adjoint solve at that penalty.
    """

    def __init__(self, objective):
        self._objective = objective
        self.direct = objective.n_params <= _MAX_DIRECT_PARAMS
        self.refresh_after = int(np.clip(objective.n_params // 10, *_REFRESH_RANGE))
        # (log l2, factor), oldest first; a factor is ("cholesky", L) or
        # ("pseudo-inverse", eigenvectors, inverse eigenvalues): arrays, so
        # that the solver pickles.
        self._factors = []
        # Large models: the Kronecker approximation and the penalty it was
        # made at; for each power of its diagonal part, the (iterations,
        # decades of residual) of its CG solves.
        self._curvature = None
        self._curvature_l2 = None
        self._records = {1.0: [], 0.5: []}

    @property
    def objective(self):
        """The training objective whose Hessian this solves with."""
        return self._objective

    @objective.setter
    def objective(self, objective):
        # A new problem (feature weights rescale the columns): the factors of
        # small models still precondition it well; the Kronecker
        # approximation is made again.
        self._objective = objective
        self._curvature = None

    def _refresh(self, l2, proba):
        objective = self.objective
        hessian = objective.hessian(l2, proba)
        if objective.flat_direction is not None:
            # Make the flat direction an eigenvector of eigenvalue 1 so that
            # the matrix is invertible; right-hand sides are orthogonal to it.
            hessian += np.outer(objective.flat_direction, objective.flat_direction)
        lower, info = lapack.dpotrf(hessian, lower=1, clean=1)
        if info == 0:
            factor = ("cholesky", lower)
        else:
            # Numerically singular (huge C on separable data): pseudo-inverse.
            eigenvalues, eigenvectors = eigh(hessian, check_finite=False)
            cutoff = _EPS * len(eigenvalues) * max(eigenvalues.max(), 0.0)
            kept = eigenvalues > cutoff
            inverse = np.zeros_like(eigenvalues)
            inverse[kept] = 1.0 / eigenvalues[kept]
            factor = ("pseudo-inverse", eigenvectors, inverse)
        self._factors = [*self._factors[-(_FACTORS_KEPT - 1) :], (np.log(l2), factor)]
        return functools.partial(_apply_factor, factor)

    def _nearest_factor(self, l2):
        _, factor = min(self._factors, key=lambda item: abs(item[0] - np.log(l2)))
        return functools.partial(_apply_factor, factor)

    def solve(self, l2, proba, b, rtol):
        """Solve ``H x = b`` to a relative residual ``rtol``.

        Returns the solution and whether it reached ``rtol``.
        """
        matvec = self.objective.hessp(l2, proba)

        def preconditioned(precondition, max_iter):
            x, _, converged = conjugate_gradient(
                matvec, b, rtol=rtol, max_iter=max_iter, precondition=precondition
            )
            return self.objective.project(x), converged

        if not self.direct:
            if self._curvature is None or l2 != self._curvature_l2:
                self._curvature = KroneckerCurvature(self.objective, proba)
                self._curvature_l2 = l2
            power = self._diagonal_power()
            x, n_iter, converged = conjugate_gradient(
                matvec,
                b,
                rtol=rtol,
                max_iter=10 * len(b),
                precondition=self._curvature.preconditioner(l2, power),
            )
            if converged and n_iter > 0 and rtol <= _RECORDED_RTOL:
                self._records[power].append((n_iter, -np.log10(rtol)))
            return self.objective.project(x), converged
        converged = False
        if self._factors:
            x, converged = preconditioned(self._nearest_factor(l2), self.refresh_after)
        else:
            # Before the first factorization, the Hessian's diagonal where the
            # penalty outweighs the data on it: the Hessian is then near its
            # diagonal, which is all conjugate gradient needs. Otherwise the
            # diagonal was no help: the first exact solve of digits (650
            # parameters) at C = 1 spent 150 of its 606 Hessian-vector
            # products on it before factorizing anyway.
            diagonal = self.objective.hessian_diagonal(l2, proba)
            penalty = l2 * self.objective.penalty
            penalized = penalty > 0
            if np.all(penalty[penalized] >= (diagonal - penalty)[penalized]):
                x, converged = preconditioned(
                    _diagonal_preconditioner(diagonal), self.refresh_after
                )
        if converged:
            return x, True
        # The Hessian here: CG converges in a few iterations, rounding aside.
        return preconditioned(self._refresh(l2, proba), self.refresh_after)

    def _diagonal_power(self):
        """The power of the preconditioner's diagonal part for the next CG solve.

        Power 1 corrects the features' scales; on normalized rows with a long
        tail of rare columns (tf-idf) it spreads the spectrum instead, and CG
        needed 1.2 to 1.3 times more iterations on the adjoint system than
        with the square root (20 classes, 5,000 terms, C from 100 to 4,000;
        1.7 to 1.9 times with the Hessian's diagonal alone). Each candidate
        is tried on ``_TRIALS`` tight solves of the fold, then the one that
        needed fewer iterations per decade of residual is kept.
        """
        for power, records in self._records.items():
            if len(records) < _TRIALS:
                return power
        return min(
            self._records,
            key=lambda power: (
                sum(n for n, _ in self._records[power])
                / sum(decades for _, decades in self._records[power])
            ),
        )


def _diagonal_preconditioner(diagonal):
    """The Hessian's ``diagonal`` as a preconditioner (Jacobi)."""
    diagonal = np.maximum(diagonal, _EPS * max(diagonal.max(), 1.0))
    return lambda r: r / diagonal


def _apply_factor(factor, b):
    """Solve with a factor made by :meth:`HessianSolver._refresh`."""
    if factor[0] == "cholesky":
        # Two triangular solves with BLAS: LAPACK's potrs costs 3-4 times
        # more for one right-hand side (0.26 ms against 0.07 ms with 650
        # parameters), and CG applies this at every iteration.
        lower = factor[1]
        return blas.dtrsv(lower, blas.dtrsv(lower, b, lower=1), lower=1, trans=1)
    _, eigenvectors, inverse = factor
    return eigenvectors @ (inverse * (eigenvectors.T @ b))


def best_start(objective, l2, candidates):
    """The candidate start with the smallest largest gradient entry.

    Returns it with the objective's value, gradient and probabilities there.
    """
    starts = [(start, *objective.value_grad(start, l2)) for start in candidates]
    return min(starts, key=lambda start: np.max(np.abs(start[2])))


def newton_solve(
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
    theta, value, gradient, proba = best_start(
        objective, l2, (theta, *alternative_starts)
    )
    grad_norm = start_norm = np.max(np.abs(gradient))
    n_iter = 0
    # Near the optimum, ||theta - optimum|| <= ||gradient|| / lambda_min, and
    # the Hessian's smallest eigenvalue is at least the penalty's, l2 times
    # the smallest penalty weight: at a large C, a gradient below gtol can
    # leave theta far from the optimum (1e-3 relative at C = 1e6). While
    # that bound exceeds _DISTANCE_RTOL relative to theta, up to
    # _EXTRA_STEPS more Newton steps are taken, until one is shorter than
    # _STEP_RTOL relative to theta (the step estimates the distance; rounding
    # errors in the direction, the condition number times eps, can keep it
    # longer).
    ridge = l2 * np.min(objective.penalty[objective.penalty > 0], initial=np.inf)
    step_size, extra_steps = np.inf, 0

    def far(theta, gradient):
        scale = max(np.max(np.abs(theta)), 1.0)
        return np.linalg.norm(gradient) > _DISTANCE_RTOL * ridge * scale

    while (
        grad_norm > gtol
        or (
            step_size > _STEP_RTOL
            and extra_steps < _EXTRA_STEPS
            and far(theta, gradient)
        )
    ) and (n_iter < max_iter and np.isfinite(value)):
        extra_steps += grad_norm <= gtol
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
        if grad_norm <= gtol < new_grad_norm:
            # An extra step that leaves the tolerance is no refinement: on
            # separable data at C = 1e160, one along a direction of almost no
            # curvature raised the gradient from 1e-12 to 3e-2, and the solve
            # stalled there.
            break
        step_size = np.max(np.abs(scale * direction)) / max(
            np.max(np.abs(candidate)), 1.0
        )
        theta, value, gradient, proba = candidate, new_value, new_gradient, new_proba
        grad_norm = new_grad_norm
    return theta, n_iter, grad_norm, proba

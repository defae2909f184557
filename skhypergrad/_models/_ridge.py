"""Ridge regression: exact or iterative training, differentiated.

For a training fold with sample weights :math:`s_i`, scikit-learn's ``Ridge``
minimizes :math:`\\sum_i s_i (y_i - x_i w - b)^2 + \\alpha \\|w\\|^2`. With
``fit_intercept`` the intercept is removed by centering on the weighted
means, then the rows are scaled by :math:`\\sqrt{s_i}`, giving a design
:math:`D` and target :math:`t` (:class:`~._design.CenteredDesign`: a sparse
``X`` is centered implicitly, never densified). The solution is

.. math::

    w(\\alpha) = (D^T D + \\alpha I)^{-1} D^T t .

Three ways to it, chosen per fold by :func:`ridge_method` from the size
:math:`m = \\min(n, p)` of the smaller of the Gram matrix :math:`D^T D`
(:math:`p \\times p`) and the kernel matrix :math:`D D^T` (:math:`n \\times
n`), and the number of stored entries of ``X``:

- ``"gram"`` (:math:`p \\le n`): with the eigendecomposition
  :math:`D^T D = V \\operatorname{diag}(e) V^T`,
  :math:`w(\\alpha) = V \\operatorname{diag}(1 / (e + \\alpha)) V^T D^T t`;
- ``"kernel"`` (:math:`n < p`): the same with
  :math:`D D^T = U \\operatorname{diag}(e) U^T` and the basis :math:`D^T U`
  (scikit-learn's cholesky solver switches between the two forms the same
  way);
- ``"iterative"`` (the decomposition too large or too slow): the normal
  equations :math:`(D^T D + \\alpha I) w = D^T t` when :math:`p \\le n`, or
  the dual system :math:`(D D^T + \\alpha I) c = t`, :math:`w = D^T c`, when
  :math:`n < p` (vectors of the smaller size), solved for every
  :math:`\\alpha` by one Lanczos run per target (:mod:`._krylov`): the
  validation predictions of conjugate gradient's solution at any
  :math:`\\alpha`, and their exact derivative, from the run's tridiagonal
  matrix and its steps observed on the validation rows. Each
  :math:`\\alpha` is solved to a relative residual of ``CG_RTOL`` (the
  coarse pass: to the estimator's ``tol``, where scikit-learn's
  ``sparse_cg`` stops, see ``DifferentiableModel.inexact_solves``), the
  run extended as far as that needs. Where the runs cannot converge in
  ``CG_MAX_ITER`` steps, conjugate gradient preconditioned by the diagonal
  solves that :math:`\\alpha`, warm-started from the nearest solution found
  before, and the hypergradient is by implicit differentiation with one
  adjoint solve (:func:`~._implicit.implicit_hypergradient`):
  :math:`dL/d\\alpha = -u^T \\theta` with :math:`H u = \\nabla_\\theta L`,
  :math:`\\theta` the solved variables (:math:`w` or :math:`c`) and
  :math:`H` their system's matrix.

In the spectral ways the decomposition and the projected target do not
depend on :math:`\\alpha`: they are computed once per fold, and each solve
costs a product of the validation part with the coefficients (``"gram"``)
or of an ``(n_val, rank)`` matrix with the solution in the eigenbasis
(``"kernel"``); only :func:`_validation_loss` is traced. A dense fold's
Gram or kernel matrix is formed without a centered copy of ``X``
(:class:`~._design.DenseDesign`), from products of the whole data shared by
the splits when they are rows of one array (:func:`_shared_products`).
"""

import numbers
import warnings

import autograd.numpy as anp
import numpy as np
from autograd import grad
from scipy import sparse
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from ._base import DifferentiableModel, Fold, Solution
from ._design import (
    CenteredDesign,
    DenseDesign,
    data_product,
    transpose_product,
)
from ._implicit import conjugate_gradient, implicit_hypergradient
from ._krylov import RidgeRuns
from ._losses import squared_error, weighted_mean
from ._spectral import Spectrum
from ._threads import blas_threads_limited

__all__ = ["RidgeModel", "ridge_method"]

# The largest Gram or kernel matrix decomposed: 4,096 x 4,096 takes 128 MB
# (twice that with its eigenvectors).
EIGEN_MAX_SIZE = 4096
# Iterations a search is expected to cost a fold, for the choice of method:
# about 30 conjugate-gradient solves (losses and adjoints) of 300 iterations.
# The Lanczos runs take fewer (one run of a few thousand steps at most); the
# figure is kept so that the choice of method stays as it was.
_EXPECTED_ITERATIONS = 10_000
# The conjugate gradient's relative residual, and its iteration budget.
CG_RTOL = 1e-12
CG_MAX_ITER = 10_000
# The memory a fold's Lanczos runs may keep: n_val floats a step (a run per
# target). 128 MB is 838 steps with 20,000 validation rows; an alpha that
# needs more steps goes on past them, again for each such alpha.
KRYLOV_MAX_BYTES = 128 * 2**20


def ridge_method(n_samples, n_features, n_stored):
    """How a fold is solved: "gram", "kernel" or "iterative".

    The eigendecomposition of the smaller of the Gram (``n_features``
    squared) and kernel (``n_samples`` squared) matrices, of size
    ``m = min(n_samples, n_features)``, when it takes at most
    ``EIGEN_MAX_SIZE`` rows and costs (about ``10 m**3`` operations) less
    than the conjugate gradients of a search (about 10,000 iterations of
    ``4 n_stored + 10 m`` operations, ``n_stored`` the stored entries of
    ``X``); else conjugate gradient. A tall or wide dense ``X`` with a small
    ``m`` is decomposed; a sparse ``X`` with both sizes in the thousands is
    solved iteratively.
    """
    m = min(n_samples, n_features)
    decomposition = 10.0 * m**3
    iterations = _EXPECTED_ITERATIONS * (4.0 * n_stored + 10.0 * m)
    if m > EIGEN_MAX_SIZE or decomposition > iterations:
        return "iterative"
    return "gram" if n_features <= n_samples else "kernel"


def _validation_loss(
    alpha,
    eigenvalues,
    basis,
    projected_target,
    val_rows,
    val_offset,
    residual_offset,
    weights,
):
    """Validation mean squared error of ridge at ``alpha`` (traced).

    The solution in the eigenbasis is
    ``diag(1 / (eigenvalues + alpha)) @ projected_target``, its coefficients
    ``basis`` times that (the solution itself when ``basis`` is None), and
    ``val_rows @ coef - val_offset @ coef`` the centered validation
    predictions; ``residual_offset`` is ``y_mean - y_val``; ``weights``
    (summing to one) weigh the samples, the targets count equally.
    """
    shrunk = (1.0 / (eigenvalues + alpha))[:, None] * projected_target
    coef = shrunk if basis is None else anp.dot(basis, shrunk)
    return _coef_loss(coef, val_rows, val_offset, residual_offset, weights)


def _coef_loss(coef, X_val, X_offset, residual_offset, weights):
    """Validation mean squared error of the coefficients ``coef`` (traced).

    ``coef`` has shape (n_features, n_targets); ``X_val`` may be sparse.
    """
    centered = data_product(X_val, coef) - anp.dot(X_offset, coef)
    return weighted_mean(squared_error(centered, -residual_offset), weights)


class _RidgeSolution(Solution):
    def __init__(self, fold, alpha, exact=True):
        self._fold = fold
        self.alpha = float(alpha)
        self.params = {"alpha": self.alpha}
        # Only conjugate gradient can stop early, at the estimator's tol.
        self.exact = exact or fold.method != "iterative"
        if fold.method == "iterative":
            self._coef, self.n_iter, self._variables = fold.coefficients(
                self.alpha,
                rtol=CG_RTOL if self.exact else max(fold.estimator.tol, CG_RTOL),
            )
        else:
            # The spectral loss needs no coefficients: they are formed when
            # asked (on a wide fold, a product with the whole design).
            self._coef, self.n_iter, self._variables = None, None, None
        self.loss = fold.loss(self.alpha, self._coef)
        # The mean squared error, weighted and averaged over the targets as
        # mean_squared_error does.
        self.loss_is_score = bool(np.isfinite(self.loss))

    @property
    def coef(self):
        """The coefficients, of shape (n_features, n_targets)."""
        if self._coef is None:
            self._coef = self._fold.coefficients(self.alpha)[0]
        return self._coef

    def hypergradient(self, names):
        if list(names) not in ([], ["alpha"]):
            raise ValueError(f"Ridge has no continuous hyperparameters {names}.")
        if not names:
            return {}
        if not self.exact:
            raise RuntimeError(
                "An inexact solution has no hypergradient: solve it exactly."
            )
        return {"alpha": self._alpha_derivative()}

    def _alpha_derivative(self):
        return self._fold.hypergradient(self.alpha, self._variables)

    def fitted_estimator(self):
        fold = self._fold
        coef = self.coef.T
        intercept = fold.y_offset - coef @ fold.X_offset
        ridge = clone(fold.estimator).set_params(alpha=self.alpha)
        if fold.is_1d:
            coef, intercept = coef[0], intercept[0]
        ridge.coef_ = coef
        ridge.intercept_ = intercept if fold.estimator.fit_intercept else 0.0
        ridge.n_features_in_ = fold.n_features
        ridge.n_iter_ = self.n_iter
        ridge.solver_ = "sparse_cg" if fold.method == "iterative" else "cholesky"
        return ridge


class _KrylovSolution(_RidgeSolution):
    """A solution read off the fold's Lanczos runs (see ``_krylov``): the
    loss and its derivative from the runs' steps, the coefficients (for
    ``fitted_estimator`` only) by a second pass of the recurrence."""

    def __init__(self, fold, alpha, solved, exact):
        self._fold = fold
        self.alpha = float(alpha)
        self.params = {"alpha": self.alpha}
        self.exact = exact
        self._steps, self.loss, self._derivative = solved
        self.n_iter = max(self._steps)
        self.loss_is_score = bool(np.isfinite(self.loss))
        self._coef = None

    @property
    def coef(self):
        if self._coef is None:
            with blas_threads_limited():
                self._coef = self._fold.runs.coefficients(self.alpha, self._steps)
        return self._coef

    def _alpha_derivative(self):
        return self._derivative


def _check_sparse_solver(estimator):
    """Refuse sparse input as ``Ridge.fit`` refuses it with this solver."""
    if estimator.fit_intercept and estimator.solver not in (
        "auto",
        "lbfgs",
        "lsqr",
        "sag",
        "sparse_cg",
    ):
        raise ValueError(
            f"solver='{estimator.solver}' does not support fitting the intercept "
            "on sparse data. Please set the solver to 'auto' or "
            "'lsqr', 'sparse_cg', 'sag', 'lbfgs' "
            "or set `fit_intercept=False`"
        )
    if estimator.solver == "svd":
        raise TypeError("SVD solver does not support sparse inputs currently")


def _shared_products(data, kernel, X_val, root_weights):
    """The uncentered products of a dense fold, from those of the whole data.

    With ``data.source`` (the fold's parts are rows of one array ``X``), the
    kernel matrix ``X X^T`` of all the rows is formed once for all the
    splits (``n`` squared entries, no more than ``X``): a fold's training
    kernel ``R X_t X_t^T R`` and cross product ``X_v X_t^T R`` are blocks of
    it, where each fold would form them anew (five folds: five times the
    multiply-adds). For the Gram matrix, without sample weights and when
    the training and validation rows partition ``X``, ``X^T X`` is formed
    once and each fold's is ``X^T X - X_v^T X_v``. None where the fold
    forms its own.

    Returns
    -------
    products : tuple or None
        ``(uncentered, cross)``: the fold's uncentered Gram or kernel matrix,
        and for the kernel the validation rows' product ``X_v X_t^T R``.
    """
    if data.source is None:
        return None
    X, train, test, shared = data.source
    train, test = _indices(train, len(X)), _indices(test, len(X))
    if kernel:
        if "ridge_kernel" not in shared:
            shared["ridge_kernel"] = X @ X.T
        full = shared["ridge_kernel"]
        block = full[np.ix_(train, train)]
        block *= np.multiply.outer(root_weights, root_weights)
        return block, full[np.ix_(test, train)] * root_weights
    counts = np.bincount(np.concatenate([train, test]), minlength=len(X))
    if np.any(root_weights != 1.0) or np.any(counts != 1):
        return None
    if "ridge_gram" not in shared:
        shared["ridge_gram"] = X.T @ X
    return shared["ridge_gram"] - X_val.T @ X_val, None


def _indices(rows, n_samples):
    """Row indices, from indices or a boolean mask."""
    rows = np.asarray(rows)
    return np.flatnonzero(rows) if rows.dtype == bool else rows % n_samples


class _RidgeFold(Fold):
    def __init__(self, estimator, data):
        self.estimator = estimator
        if sparse.issparse(data.X_train):
            _check_sparse_solver(estimator)
            X_train = sparse.csr_matrix(data.X_train, dtype=np.float64)
            X_val = sparse.csr_matrix(data.X_val, dtype=np.float64)
        else:
            X_train = np.asarray(data.X_train, dtype=np.float64)
            X_val = np.asarray(data.X_val, dtype=np.float64)
        y_train = np.asarray(data.y_train, dtype=np.float64)
        y_val = np.asarray(data.y_val, dtype=np.float64)
        self.is_1d = y_train.ndim == 1
        y_train = y_train.reshape(len(y_train), -1)
        y_val = y_val.reshape(len(y_val), -1)
        n_samples, self.n_features = X_train.shape
        if data.sample_weight is None:
            weights = np.ones(n_samples)
        else:
            weights = np.asarray(data.sample_weight, dtype=np.float64)

        if estimator.fit_intercept:
            if sparse.issparse(X_train):
                self.X_offset = (X_train.T @ weights) / weights.sum()
            else:
                # A matrix-vector product: np.average multiplies a copy of X.
                self.X_offset = (weights @ X_train) / weights.sum()
            self.y_offset = np.average(y_train, axis=0, weights=weights)
        else:
            self.X_offset = np.zeros(self.n_features)
            self.y_offset = np.zeros(y_train.shape[1])
        root_weights = np.sqrt(weights)
        design = CenteredDesign(X_train, self.X_offset, root_weights)
        target = root_weights[:, None] * (y_train - self.y_offset)
        residual_offset = self.y_offset - y_val
        n_stored = X_train.nnz if sparse.issparse(X_train) else X_train.size
        self.method = ridge_method(n_samples, self.n_features, n_stored)

        if self.method == "iterative":
            self._design = design
            # The dual system when it is the smaller: vectors of n_samples.
            self._dual = n_samples < self.n_features
            if self._dual:
                self._rhs = target
                self._diagonal = design.squared_row_norms()
            else:
                self._rhs = design.rdot(target)
                self._diagonal = design.squared_column_norms()
            self._warm_starts = {}
            # One Lanczos run per target serves every alpha; conjugate
            # gradient only an alpha the runs cannot reach in CG_MAX_ITER
            # steps.
            self.runs = RidgeRuns(
                design,
                self._rhs,
                X_val,
                self._dual,
                residual_offset,
                data.val_weights,
                CG_MAX_ITER,
                KRYLOV_MAX_BYTES,
            )
            self._coef_loss_args = (
                X_val,
                self.X_offset,
                residual_offset,
                data.val_weights,
            )
            return

        kernel = self.method == "kernel"
        shared = None
        if sparse.issparse(X_train):
            matrix = design.gram() if self.method == "gram" else design.kernel()
        else:
            # The products of X itself, centered by a rank-one correction:
            # no centered copy of X (see DenseDesign), and taken from those of
            # the whole data when the splits share them.
            shared = _shared_products(data, kernel, X_val, root_weights)
            design, matrix = DenseDesign.with_matrix(
                X_train,
                self.X_offset,
                root_weights,
                kernel=kernel,
                uncentered=None if shared is None else shared[0],
            )
        spectrum = Spectrum(matrix)
        del matrix
        vectors = spectrum.eigenvectors[:, spectrum.kept]
        if self.method == "gram":
            basis = vectors
            projected_target = vectors.T @ design.rdot(target)
            # The validation predictions are X_val @ coef - xbar @ coef: a
            # product with X_val itself costs what one with its projection on
            # the eigenvectors (n_val x rank, with rank up to n_features)
            # would, without forming that projection.
            if sparse.issparse(X_val):
                val_rows, val_offset = X_val, self.X_offset
            else:
                val_rows, val_offset = design.validation_rows(X_val)
        else:
            projected_target = vectors.T @ target
            # D^T U (n_features, rank) would cost n_features * n_samples * rank
            # to form (0.8 s a fold on 800 x 50,000) and as much memory as D:
            # keep the design and U, and apply D^T to the few coefficients
            # asked for.
            basis = None
            self._design = design
            if shared is None:
                cross = design.cross(X_val)
            else:
                cross = design.cross(X_val, product=shared[1])
            val_rows = cross @ vectors
            val_offset = np.zeros(val_rows.shape[1])
            if data.training_rows is not None and not sparse.issparse(X_train):
                # Coefficients are not expected to be asked: the design is
                # indexed again if they are, instead of being kept.
                design.release(data.training_rows)
        self._basis, self._vectors = basis, vectors
        # Only the directions outside the null space of the design: the
        # solution has no component along the others (see Spectrum).
        self.eigenvalues = spectrum.eigenvalues[spectrum.kept]
        self.projected_target = projected_target
        # Everything the validation loss needs besides alpha.
        self.loss_args = (
            self.eigenvalues,
            basis,
            projected_target,
            val_rows,
            val_offset,
            residual_offset,
            data.val_weights,
        )

    def coefficients(self, alpha, rtol=CG_RTOL):
        """The coefficients (n_features, n_targets) at ``alpha``.

        Conjugate gradient stops at the relative residual ``rtol``.
        Also the conjugate gradient's iterations and the variables it solved
        for (the coefficients, or the dual variables), None for the
        spectral methods.
        """
        if self.method != "iterative":
            shrunk = (1.0 / (self.eigenvalues + alpha))[:, None] * self.projected_target
            if self._basis is None:
                return self._design.rdot(self._vectors @ shrunk), None, None
            return self._basis @ shrunk, None, None
        start = self._nearest_warm_start(alpha)
        with blas_threads_limited():
            variables, n_iter = self._solve(alpha, self._rhs, start, rtol)
        self._warm_starts[alpha] = variables
        while len(self._warm_starts) > _KEPT_WARM_STARTS:
            self._warm_starts.pop(next(iter(self._warm_starts)))
        coef = self._design.rdot(variables) if self._dual else variables
        return coef, n_iter, variables

    def loss(self, alpha, coef):
        if self.method != "iterative":
            return float(_validation_loss(alpha, *self.loss_args))
        return float(_coef_loss(coef, *self._coef_loss_args))

    def hypergradient(self, alpha, variables):
        if self.method != "iterative":
            return float(grad(_validation_loss)(alpha, *self.loss_args))
        shape = variables.shape

        def validation_loss(theta):
            theta = anp.reshape(theta, shape)
            coef = transpose_product(self._design, theta) if self._dual else theta
            return _coef_loss(coef, *self._coef_loss_args)

        def solve(b):
            return self._solve(alpha, b.reshape(shape), None)[0].ravel()

        def penalty(theta, hypers):
            # The part of the training objective that depends on alpha:
            # 1/2 ||D w - t||^2 + alpha/2 ||w||^2 in the coefficients, or
            # 1/2 c^T (D D^T + alpha I) c - t^T c in the dual variables.
            return 0.5 * hypers["alpha"] * anp.dot(theta, theta)

        with blas_threads_limited():
            grads = implicit_hypergradient(
                validation_loss, variables.ravel(), solve, penalty, {"alpha": alpha}
            )
        return float(grads["alpha"])

    def _nearest_warm_start(self, alpha):
        if not self._warm_starts:
            return None
        nearest = min(self._warm_starts, key=lambda a: abs(np.log(a / alpha)))
        return self._warm_starts[nearest]

    def _solve(self, alpha, rhs, start, rtol=CG_RTOL):
        """Solve ``(D^T D + alpha I) x = rhs`` (or ``D D^T``: dual) by columns."""
        design = self._design
        inverse_diagonal = 1.0 / (self._diagonal + alpha)

        def matvec(v):
            if self._dual:
                return design.kernel_dot(v) + alpha * v
            return design.gram_dot(v) + alpha * v

        columns, n_iter = [], 0
        for j in range(rhs.shape[1]):
            b = rhs[:, j]
            x0 = np.zeros_like(b) if start is None else start[:, j]
            residual = b - matvec(x0) if start is not None else b
            norm_b, norm_r = np.linalg.norm(b), np.linalg.norm(residual)
            if norm_r <= rtol * norm_b or norm_r == 0:
                columns.append(x0)
                continue
            step, iterations, converged = conjugate_gradient(
                matvec,
                residual,
                rtol=rtol * norm_b / norm_r,
                max_iter=CG_MAX_ITER,
                precondition=lambda r: inverse_diagonal * r,
            )
            n_iter = max(n_iter, iterations)
            if not converged:
                warnings.warn(
                    f"Ridge's conjugate gradient at alpha={alpha:.3g} did not "
                    f"reach a relative residual of {rtol:g} in {CG_MAX_ITER} "
                    "iterations (an ill-conditioned design at a small alpha). "
                    "Raise the lower bound of alpha's range.",
                    ConvergenceWarning,
                    stacklevel=4,
                )
            columns.append(x0 + step)
        return np.stack(columns, axis=1), n_iter

    def solve(self, params, *, differentiate=False, exact=True):
        """Solve at ``alpha``; with ``exact=False``, the Lanczos run (or
        conjugate gradient) stops at the estimator's ``tol``, as
        scikit-learn's ``sparse_cg`` does."""
        alpha = params.get("alpha", self.estimator.alpha)
        if self.method == "iterative":
            rtol = CG_RTOL if exact else max(self.estimator.tol, CG_RTOL)
            with blas_threads_limited():
                solved = self.runs.solve(alpha, rtol)
            if solved is not None:
                return _KrylovSolution(self, alpha, solved, exact)
        return _RidgeSolution(self, alpha, exact=exact)


# Iterative solutions a fold keeps as warm starts for the next solve.
_KEPT_WARM_STARTS = 2


class RidgeModel(DifferentiableModel):
    """:class:`~sklearn.linear_model.Ridge`, tuned over ``alpha``.

    Dense or sparse input; see :func:`ridge_method` for how a fold is solved.
    """

    estimator_class = Ridge
    # alpha is a positive scale: searched as log(alpha).
    hyperparameters = {"alpha": "log"}
    loss_name = "mean squared error"
    loss_scoring = "neg_mean_squared_error"
    accept_sparse = True
    # A step is an eigenbasis shrinkage: cheaper than a round trip to a worker.
    parallel_folds = False
    # Conjugate gradient solves the coarse pass to tol, as sparse_cg stops.
    inexact_solves = True

    def check_estimator(self, estimator):
        if estimator.positive:
            raise ValueError(
                "Ridge(positive=True) has no closed-form solution, so "
                "HypergradSearchCV cannot differentiate it. Set positive=False."
            )
        if not isinstance(estimator.alpha, numbers.Real):
            raise ValueError(
                "HypergradSearchCV tunes a single Ridge alpha shared by all "
                f"targets; got alpha={estimator.alpha!r}. Pass a float."
            )

    def fold(self, estimator, data):
        return _RidgeFold(estimator, data)

"""The centered, weighted design of a linear model, applied without forming it.

scikit-learn's ``Ridge`` centers sparse input implicitly: it never subtracts
the column means from a sparse ``X`` (that would fill it in), but applies
:math:`X - \\mathbf{1} \\bar x^T` as an operator. :class:`CenteredDesign` does
the same for the design of a weighted least-squares problem,

.. math::

    D = S^{1/2} (X - \\mathbf{1} \\bar x^T), \\qquad
    D v = S^{1/2} (X v - \\mathbf{1} \\, \\bar x^T v), \\qquad
    D^T u = X^T S^{1/2} u - \\bar x \\, (\\mathbf{1}^T S^{1/2} u),

where :math:`S` holds the sample weights and :math:`\\bar x` the weighted
column means (zero without an intercept). Its Gram matrix :math:`D^T D` and
kernel matrix :math:`D D^T` are formed from products of ``X`` with itself,
with a rank-one correction for the centering, so that a sparse ``X`` is never
densified. A dense ``X`` is centered explicitly by :class:`CenteredDesign`,
on first use. :class:`DenseDesign` forms the Gram or kernel matrix of a dense
``X`` with the same rank-one correction, without a centered copy, where the
correction keeps the digits (see ``CANCELLATION_LIMIT``).

:func:`data_product` is ``X @ W`` as an autograd primitive: the product of a
data matrix (sparse or dense, never differentiated) with traced weights;
:func:`transpose_product` is :math:`D^T U` likewise.
"""

from functools import cached_property

import numpy as np
from autograd.extend import defjvp_argnums, defvjp_argnums, primitive
from scipy import sparse

__all__ = [
    "CANCELLATION_LIMIT",
    "CenteredDesign",
    "DenseDesign",
    "centered_product",
    "data_product",
    "transpose_product",
]


@primitive
def data_product(X, W):
    """``X @ W`` for a data matrix ``X`` (sparse or dense) and traced ``W``."""
    return X @ W


def _data_product_vjp(argnums, ans, args, kwargs):
    X, _ = args
    if argnums != (1,):
        raise NotImplementedError("data_product does not differentiate the data X.")
    return lambda g: [X.T @ g]


def _data_product_jvp(argnums, gs, ans, args, kwargs):
    X, _ = args
    if argnums != (1,):
        raise NotImplementedError("data_product does not differentiate the data X.")
    return X @ gs[0]


defvjp_argnums(data_product, _data_product_vjp)
defjvp_argnums(data_product, _data_product_jvp)


@primitive
def transpose_product(design, U):
    """``design.rdot(U)``, :math:`D^T U`, for traced ``U``."""
    return design.rdot(U)


defvjp_argnums(
    transpose_product, lambda argnums, ans, args, kwargs: lambda g: [args[0].dot(g)]
)


def centered_product(X, offset, M):
    """``(X - offset) @ M``, without densifying a sparse ``X``."""
    if sparse.issparse(X):
        return X @ M - offset @ M
    return (X - offset) @ M


class CenteredDesign:
    """:math:`D = S^{1/2} (X - \\mathbf{1} \\bar x^T)`, sparse or dense ``X``.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features), float64
    offset : ndarray of shape (n_features,)
        The column means subtracted (zeros without an intercept).
    root_weights : ndarray of shape (n_samples,)
        Square roots of the sample weights.
    """

    def __init__(self, X, offset, root_weights):
        self.is_sparse = sparse.issparse(X)
        self.offset = offset
        self.root_weights = root_weights
        if self.is_sparse:
            # S^(1/2) X keeps X's sparsity pattern.
            self._scaled = sparse.csr_matrix(X.multiply(root_weights[:, None]))
            # Its transpose, a CSC view made once: conjugate gradient takes
            # one product with it per iteration, and making the view each
            # time (with its format checks) was a tenth of a sparse Ridge
            # search.
            self._scaled_t = self._scaled.T
            self._dense = None
            self._kernel_shift = None
        else:
            self._scaled = None
            self._X = X
        self.shape = X.shape

    @cached_property
    def _dense(self):
        """The centered, weighted copy of a dense ``X``, made on first use."""
        # One pass over X without sample weights (their roots are ones).
        dense = self._X - self.offset
        if np.any(self.root_weights != 1.0):
            dense *= self.root_weights[:, None]
        return dense

    def dot(self, V):
        """``D @ V`` for ``V`` of shape (n_features,) or (n_features, k)."""
        if not self.is_sparse:
            return self._dense @ V
        shift = self.offset @ V
        root = self.root_weights if V.ndim == 1 else self.root_weights[:, None]
        return self._scaled @ V - root * shift

    def rdot(self, U):
        """``D.T @ U`` for ``U`` of shape (n_samples,) or (n_samples, k)."""
        if not self.is_sparse:
            return self._dense.T @ U
        total = self.root_weights @ U
        return self._scaled_t @ U - np.multiply.outer(self.offset, total)

    def gram_dot(self, v):
        """``D.T @ (D @ v)`` for ``v`` of shape (n_features,)."""
        return self.rdot(self.dot(v))

    def kernel_dot(self, v):
        """``D @ (D.T @ v)`` for ``v`` of shape (n_samples,).

        For a sparse ``X``, with one product by ``X.T`` and one by ``X`` and
        no other pass over vectors of ``n_features``:
        ``S^(1/2) X u - r (xbar^T u) - (S^(1/2) X xbar)(r^T v)
        + ||xbar||^2 r (r^T v)`` with ``u = X^T S^(1/2) v``.
        """
        return self.kernel_dot_split(v)[0]

    def kernel_dot_split(self, v):
        """``D @ (D.T @ v)``, and ``D.T @ v`` as ``u - s * offset``.

        Returns the product, ``u``, ``s`` and ``offset @ u``: other rows can
        then be applied to ``D.T @ v`` as ``A @ u - s * (A @ offset)``, and
        centered ones, without a pass over a vector of ``n_features`` (for a
        dense ``X``, ``s`` is zero).
        """
        if not self.is_sparse:
            u = self._dense.T @ v
            return self._dense @ u, u, 0.0, self.offset @ u
        if self._kernel_shift is None:
            self._kernel_shift = self._scaled @ self.offset
            self._offset_norm2 = self.offset @ self.offset
        r = self.root_weights
        u = self._scaled_t @ v
        total = r @ v
        shift = self.offset @ u
        product = self._scaled @ u
        product -= (shift - self._offset_norm2 * total) * r
        product -= total * self._kernel_shift
        return product, u, float(total), float(shift)

    def gram(self):
        """``D.T @ D``, dense (n_features, n_features)."""
        if not self.is_sparse:
            return self._dense.T @ self._dense
        gram = (self._scaled.T @ self._scaled).toarray()
        # X^T S X - (1^T S 1) xbar xbar^T: X^T S 1 = (1^T S 1) xbar.
        total_weight = self.root_weights @ self.root_weights
        return gram - total_weight * np.outer(self.offset, self.offset)

    def kernel(self):
        """``D @ D.T``, dense (n_samples, n_samples)."""
        if not self.is_sparse:
            return self._dense @ self._dense.T
        return self.cross(self._scaled, self.root_weights)

    def cross(self, A, a_root=None):
        """``(A - 1 xbar^T) @ D.T`` for data rows ``A``, dense.

        With ``a_root``, the rows of ``A`` are already scaled by it (as
        ``S^(1/2) X`` is) and the centering is scaled likewise.
        """
        if not self.is_sparse:
            return centered_product(A, self.offset, self._dense.T)
        product = A @ self._scaled.T
        product = product.toarray() if sparse.issparse(product) else product
        r = self.root_weights
        a_shift = A @ self.offset  # (A xbar) for each row of A
        xbar_sq = self.offset @ self.offset
        a_r = np.ones(A.shape[0]) if a_root is None else a_root
        # (A - a_r xbar^T)(X - 1 xbar^T)^T S^(1/2), with A's rows scaled by a_r:
        # A X^T S^(1/2) - (A xbar)(S^(1/2) 1)^T - a_r (S^(1/2) X xbar)^T
        # + (xbar^T xbar) a_r (S^(1/2) 1)^T.
        x_shift = self._scaled @ self.offset
        return (
            product
            - np.outer(a_shift, r)
            - np.outer(a_r, x_shift)
            + xbar_sq * np.outer(a_r, r)
        )

    def squared_row_norms(self):
        """The diagonal of ``D @ D.T``."""
        if not self.is_sparse:
            return np.einsum("ij,ij->i", self._dense, self._dense)
        squares = np.asarray(self._scaled.multiply(self._scaled).sum(axis=1)).ravel()
        r = self.root_weights
        # s_i ||x_i - xbar||^2 = ||r_i x_i||^2 - 2 r_i (r_i x_i) . xbar + s_i ||xbar||^2
        return (
            squares
            - 2 * r * (self._scaled @ self.offset)
            + r**2 * (self.offset @ self.offset)
        )

    def squared_column_norms(self):
        """The diagonal of ``D.T @ D``."""
        if not self.is_sparse:
            return np.einsum("ij,ij->j", self._dense, self._dense)
        squares = np.asarray(self._scaled.multiply(self._scaled).sum(axis=0)).ravel()
        column_sums = np.asarray(self._scaled.T @ self.root_weights).ravel()
        total_weight = self.root_weights @ self.root_weights
        # sum_i s_i (x_ij - xbar_j)^2 = sum s x^2 - 2 xbar sum s x + W xbar^2
        return squares - 2 * self.offset * column_sums + total_weight * self.offset**2


# A dense design is centered implicitly, by a rank-one correction of the
# products of X, unless some column (Gram matrix) or row (kernel matrix) of
# X has a sum of squares more than this many times its centered one (a column
# whose mean is 30 times its standard deviation): the correction would then
# cancel that many times the rounding error of the products, and the design
# is centered explicitly instead, at the cost of a copy of X.
CANCELLATION_LIMIT = 1e3


class DenseDesign:
    """:math:`D = S^{1/2} (X - \\mathbf{1} \\bar x^T)` for a dense ``X``, with
    its Gram or kernel matrix, formed without a centered copy of ``X``.

    With ``r`` the square roots of the sample weights, ``R = diag(r)`` and
    ``W = r^T r``:

    .. math::

        D^T D = X^T S X - W \\bar x \\bar x^T, \\qquad
        D D^T = R X X^T R - a r^T - r a^T + \\|\\bar x\\|^2 r r^T,

    with :math:`a = R X \\bar x`, from one symmetric product of ``R X`` (a copy
    of ``X`` only with sample weights). Where the correction would cancel
    more than ``CANCELLATION_LIMIT`` times the rounding error of the product
    (a column, or for the kernel a row, dominated by the mean), the design is
    centered explicitly instead, as :class:`CenteredDesign` does.

    Build it with :meth:`with_matrix`.

    Attributes
    ----------
    implicit : bool
        Whether the centering is the rank-one correction (no centered copy).
    """

    def __init__(self, rows, offset, root_weights, implicit):
        # S^(1/2) X (implicit), or the centered design D itself.
        self._rows = rows
        self.offset = offset
        self.root_weights = root_weights
        self.implicit = implicit
        self._training_rows = None

    @classmethod
    def with_matrix(cls, X, offset, root_weights, *, kernel=False, uncentered=None):
        """The design of ``X`` and its Gram matrix (or kernel matrix).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features), float64
            Not modified; kept by reference (not copied) without sample
            weights.
        offset : ndarray of shape (n_features,)
            The weighted column means subtracted (zeros without an
            intercept).
        root_weights : ndarray of shape (n_samples,)
            Square roots of the sample weights.
        kernel : bool, default=False
            Whether to form the kernel matrix ``D @ D.T`` (n_samples squared)
            instead of the Gram matrix ``D.T @ D`` (n_features squared).
        uncentered : ndarray or None, default=None
            The product ``X.T @ S @ X`` (or ``S^(1/2) X X.T S^(1/2)``), if
            already known: it is not formed again.

        Returns
        -------
        design : DenseDesign
        matrix : ndarray
            ``D.T @ D``, or ``D @ D.T`` with ``kernel=True``.
        """
        r = root_weights
        rows = X * r[:, None] if np.any(r != 1.0) else X
        if uncentered is None:
            uncentered = rows @ rows.T if kernel else rows.T @ rows
        if not np.any(offset):
            return cls(rows, offset, r, implicit=True), uncentered
        if kernel:
            shift = rows @ offset
            matrix = (
                uncentered
                - np.outer(shift, r)
                - np.outer(r, shift)
                + (offset @ offset) * np.outer(r, r)
            )
        else:
            matrix = uncentered - (r @ r) * np.outer(offset, offset)
        if np.all(np.diag(uncentered) <= CANCELLATION_LIMIT * np.diag(matrix)):
            return cls(rows, offset, r, implicit=True), matrix
        centered = X - offset
        if rows is not X:
            centered *= r[:, None]
        design = cls(centered, offset, r, implicit=False)
        return design, design._product(kernel)

    def _product(self, kernel):
        rows = self._rows
        return rows @ rows.T if kernel else rows.T @ rows

    def release(self, training_rows):
        """Drop the design's rows; ``training_rows()`` gives ``X`` again
        when they are needed (see ``FoldData.training_rows``)."""
        self._rows = None
        self._training_rows = training_rows

    def _current_rows(self):
        if self._rows is not None:
            return self._rows
        X = np.asarray(self._training_rows(), dtype=np.float64)
        r = self.root_weights[:, None]
        if not self.implicit:
            return (X - self.offset) * r
        return X * r if np.any(r != 1.0) else X

    def rdot(self, U):
        """``D.T @ U`` for ``U`` of shape (n_samples, k)."""
        rows = self._current_rows()
        if not self.implicit:
            return rows.T @ U
        return rows.T @ U - np.outer(self.offset, self.root_weights @ U)

    def cross(self, A, product=None):
        """``(A - 1 xbar^T) @ D.T`` for dense data rows ``A``.

        ``product`` is ``A @ X.T @ S^(1/2)``, if already known.
        """
        rows = self._current_rows()
        if not self.implicit:
            return centered_product(A, self.offset, rows.T)
        r = self.root_weights
        # A X^T R - (A xbar - ||xbar||^2) r^T - 1 (R X xbar)^T
        product = A @ rows.T if product is None else product.copy()
        product -= np.outer(A @ self.offset - self.offset @ self.offset, r)
        product -= rows @ self.offset
        return product

    def validation_rows(self, A):
        """``(rows, offset)`` whose ``rows @ w - offset @ w`` are the centered
        predictions ``(A - 1 xbar^T) @ w`` of data rows ``A`` (not copied
        when the centering is implicit)."""
        if self.implicit:
            return A, self.offset
        return A - self.offset, np.zeros_like(self.offset)

"""Shrinkage in an eigenbasis: ridge-type solutions for every penalty at once.

A ridge-type solution :math:`(G + \\alpha I)^{-1} b` with a positive
semi-definite :math:`G = U \\operatorname{diag}(e) U^T` is
:math:`U \\operatorname{diag}(1 / (e + \\alpha)) U^T b`. After one
eigendecomposition, the solution at any :math:`\\alpha` costs a scaling of
:math:`U^T b` and a product with :math:`U`. Ridge uses it with
:math:`G = D^T D` (or :math:`D D^T` for wide designs).
"""

import numpy as np

__all__ = ["Spectrum"]


class Spectrum:
    """The eigendecomposition of a positive semi-definite matrix.

    Parameters
    ----------
    gram : ndarray of shape (n, n)
        The matrix; only its lower triangle is read.

    Attributes
    ----------
    eigenvalues : ndarray of shape (n,)
        Those at the rounding level of the largest (the null space of a
        rank-deficient design, and rounding's tiny negative ones) are zero.
    eigenvectors : ndarray of shape (n, n)
    kept : ndarray of bool, shape (n,)
        The eigenvalues above the rounding level. A solution has no
        component along the others: as the penalty vanishes it tends to the
        minimum-norm least-squares solution, as scikit-learn's does, instead
        of dividing rounding noise by the penalty.
    """

    def __init__(self, gram):
        eigenvalues, self.eigenvectors = np.linalg.eigh(gram)
        cutoff = len(eigenvalues) * np.finfo(float).eps * max(eigenvalues.max(), 0.0)
        self.kept = eigenvalues > cutoff
        self.eigenvalues = np.where(self.kept, eigenvalues, 0.0)

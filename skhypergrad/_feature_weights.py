"""FeatureWeights: scale each column (or group of columns) by a weight.

Placed just before a linear model, the weight :math:`w_j` of a column is a
penalty of its own: ridge on :math:`X \\operatorname{diag}(w)` is the
generalized ridge with penalty :math:`\\alpha / w_j^2` on feature
:math:`j`'s coefficient. :class:`~skhypergrad.HypergradSearchCV` searches
every weight at once when ``param_grid`` gives the step's ``weights`` a
range (see the user guide's page on many hyperparameters).
"""

import copy
import numbers

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.sparsefuncs import inplace_column_scale
from sklearn.utils.validation import check_is_fitted, validate_data

from ._sklearn_compat import Interval, fit_context

__all__ = ["FeatureWeights"]


class FeatureWeights(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Multiply each column of X by a weight, one weight per column or group.

    Column ``j`` of the output is column ``j`` of ``X`` times
    ``weights[groups[j]]`` (``weights[j]`` without ``groups``). Sparse input
    stays sparse; missing values pass through.

    Before a :class:`~sklearn.linear_model.Ridge` or
    :class:`~sklearn.linear_model.LogisticRegression`, a weight :math:`w` on
    a column acts as the penalty :math:`\\alpha / w^2` (or :math:`1 / (C
    w^2)`) on that column's coefficient: a weight near zero removes the
    column, a large one leaves it almost unpenalized. Give its ``weights``
    a range in :class:`~skhypergrad.HypergradSearchCV`'s ``param_grid``
    (``{"featureweights__weights": (1e-3, 1e3)}``) to tune a penalty per
    column, or per group of columns, by their hypergradient.

    Parameters
    ----------
    weights : float or array-like of shape (n_groups,), default=None
        Non-negative, finite weights. None multiplies by one; a number
        multiplies every column by it. An array has one weight per column,
        or one per group when ``groups`` is given.

    groups : array-like of int of shape (n_features,), default=None
        The group of each column, integers from 0 to ``n_groups - 1``. None
        puts each column in its own group. With a scalar ``weights`` (or
        None), ``n_groups`` is ``max(groups) + 1``.

    Attributes
    ----------
    scale_ : ndarray of shape (`n_features_in_`,)
        The factor of each column: ``weights[groups[j]]``.

    n_groups_ : int
        Number of weights: the groups, or the columns without ``groups``.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string
        column names.

    See Also
    --------
    HypergradSearchCV : Tunes the weights by gradient descent on the CV loss.

    Notes
    -----
    With :math:`W = \\operatorname{diag}(w)` and :math:`\\beta = W b`,

    .. math::

        \\min_b \\|y - X W b\\|^2 + \\alpha \\|b\\|^2 =
        \\min_\\beta \\|y - X \\beta\\|^2 + \\alpha \\sum_j \\beta_j^2 / w_j^2 .

    Examples
    --------
    >>> import numpy as np
    >>> from skhypergrad import FeatureWeights
    >>> X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    >>> FeatureWeights(weights=[10.0, 0.5], groups=[0, 1, 1]).fit_transform(X)
    array([[10. ,  1. ,  1.5],
           [40. ,  2.5,  3. ]])
    """

    _parameter_constraints: dict = {
        "weights": ["array-like", Interval(numbers.Real, 0, None, closed="left"), None],
        "groups": ["array-like", None],
    }

    def __init__(self, weights=None, groups=None):
        self.weights = weights
        self.groups = groups

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the weights and groups against the columns of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted transformer.
        """
        validate_data(
            self,
            X,
            accept_sparse=("csr", "csc"),
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan",
        )
        self.scale_ = column_scale(self.weights, self.groups, self.n_features_in_)
        self.n_groups_ = len(
            group_weights(self.weights, self.groups, self.n_features_in_)
        )
        return self

    def transform(self, X):
        """Multiply each column of ``X`` by its weight.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The data to scale. Not modified.

        Returns
        -------
        X_scaled : {ndarray, sparse matrix} of shape (n_samples, n_features)
            The scaled data, sparse if ``X`` is.
        """
        check_is_fitted(self)
        X = validate_data(
            self,
            X,
            accept_sparse=("csr", "csc"),
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan",
            reset=False,
            copy=True,
        )
        scale = self.scale_.astype(X.dtype, copy=False)
        if sparse.issparse(X):
            inplace_column_scale(X, scale)
            return X
        X *= scale
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def check_groups(groups, n_features):
    """``groups`` as an int array of length ``n_features``, or ValueError."""
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n_features:
        raise ValueError(
            "FeatureWeights: groups must have one entry per column of X, "
            f"{n_features}; got an array of shape {groups.shape}."
        )
    if groups.dtype.kind not in "iu" and not (
        groups.dtype.kind == "f"
        and np.all(np.isfinite(groups))
        and np.all(groups == np.round(groups))
    ):
        raise ValueError(
            f"FeatureWeights: groups must be integers from 0 to n_groups - 1, got "
            f"{groups.tolist()[:10]}{'...' if len(groups) > 10 else ''}."
        )
    groups = groups.astype(np.intp)
    if len(groups) and groups.min() < 0:
        raise ValueError(
            "FeatureWeights: groups must be integers from 0 to n_groups - 1, got "
            f"the negative group {int(groups.min())}."
        )
    return groups


def group_weights(weights, groups, n_features):
    """The weight of each group (of each column without ``groups``), checked."""
    groups = None if groups is None else check_groups(groups, n_features)
    n_groups = n_features if groups is None else int(groups.max(initial=-1)) + 1
    if weights is None:
        return np.ones(n_groups)
    weights = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(
            "FeatureWeights: weights must be finite and non-negative, got "
            f"{np.ravel(weights).tolist()[:10]}."
        )
    if weights.ndim == 0:
        return np.full(n_groups, float(weights))
    if weights.ndim != 1:
        raise ValueError(
            "FeatureWeights: weights must be a number or a 1-D array, got an "
            f"array of shape {weights.shape}."
        )
    if groups is None and len(weights) != n_features:
        raise ValueError(
            f"FeatureWeights: weights has {len(weights)} entries but X has "
            f"{n_features} columns. Pass one weight per column, or groups= to "
            "share weights between columns."
        )
    if groups is not None and len(weights) < n_groups:
        raise ValueError(
            f"FeatureWeights: groups has group {n_groups - 1}, but weights has "
            f"only {len(weights)} entries: groups must be integers from 0 to "
            "len(weights) - 1."
        )
    return weights


def column_scale(weights, groups, n_features):
    """The factor of each column: ``weights[groups[j]]``."""
    per_group = group_weights(weights, groups, n_features)
    if groups is None:
        return per_group.copy()
    return per_group[check_groups(groups, n_features)]


def with_weights(fitted, weights):
    """A copy of a fitted FeatureWeights whose weights are ``weights``.

    The search scores many weights on one fold: the copy keeps the fitted
    attributes of ``fitted`` (the columns and their names) and sets
    ``scale_`` as ``fit`` would.
    """
    weighted = copy.copy(fitted)
    weighted.set_params(weights=np.array(weights, dtype=np.float64))
    weighted.scale_ = column_scale(
        weighted.weights, fitted.groups, fitted.n_features_in_
    )
    return weighted

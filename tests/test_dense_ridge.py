"""Dense Ridge without copies: the design centered implicitly, the validation
part and the wide design not kept when the scores are the loss."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import get_scorer, mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold

from skhypergrad import FoldData
from skhypergrad._models._design import CANCELLATION_LIMIT, DenseDesign
from skhypergrad._models._ridge import RidgeModel
from skhypergrad._objective import CrossValObjective

from ._numeric import central_difference, value_and_grad


def _data(shape, shift, n_targets=1, seed=0):
    """Features with column means ``shift`` (a scalar, or ``[value]`` for the
    first column's)."""
    rng = np.random.RandomState(seed)
    if np.ndim(shift):
        # One column shifted: the first.
        shift = np.r_[shift, np.zeros(shape[1] - 1)]
    X = rng.randn(*shape) * rng.uniform(0.5, 2.0, shape[1]) + shift
    coef = rng.randn(shape[1], n_targets)
    y = X @ coef + rng.randn(shape[0], n_targets) + 3.0
    return X, y[:, 0] if n_targets == 1 else y


def _explicit(X, sample_weight):
    """The centered weighted design and column means, formed explicitly."""
    offset = np.average(X, axis=0, weights=sample_weight)
    return np.sqrt(sample_weight)[:, None] * (X - offset), offset


# A mean 5 times the standard deviation keeps the implicit centering; 1e4
# times loses more digits than CANCELLATION_LIMIT allows, in every column or
# in one.
SHIFTS = {
    "centered": (0.0, True),
    "moderate": (5.0, True),
    "large": (1e4, False),
    "one-large-column": ([1e4], False),
}


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape, kernel", [((50, 8), False), ((12, 8), True)])
def test_dense_design_matches_the_explicit_centering(shift, weighted, shape, kernel):
    values, implicit = SHIFTS[shift]
    X, _ = _data(shape, values)
    X_before = X.copy()
    rng = np.random.RandomState(1)
    sample_weight = rng.uniform(0.5, 2.0, shape[0]) if weighted else np.ones(shape[0])
    D, offset = _explicit(X, sample_weight)

    design, matrix = DenseDesign.with_matrix(
        X, offset, np.sqrt(sample_weight), kernel=kernel
    )

    assert design.implicit is implicit
    expected = D @ D.T if kernel else D.T @ D
    scale = np.abs(expected).max()
    np.testing.assert_allclose(matrix, expected, rtol=0, atol=1e-12 * scale)
    U = rng.randn(shape[0], 2)
    np.testing.assert_allclose(
        design.rdot(U), D.T @ U, rtol=0, atol=1e-12 * np.abs(D.T @ U).max()
    )
    A = X[:5] + rng.randn(5, shape[1])
    cross = (A - offset) @ D.T
    np.testing.assert_allclose(
        design.cross(A), cross, rtol=0, atol=1e-12 * np.abs(cross).max()
    )
    w = rng.randn(shape[1], 2)
    rows, row_offset = design.validation_rows(A)
    predictions = (A - offset) @ w
    np.testing.assert_allclose(
        rows @ w - row_offset @ w,
        predictions,
        rtol=0,
        atol=1e-12 * np.abs(predictions).max(),
    )
    np.testing.assert_array_equal(X, X_before)


def test_cancellation_limit_decides_per_column():
    # One column whose mean is just under, then just over, the limit.
    X, _ = _data((200, 3), 0.0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    for factor, implicit in [(0.9, True), (1.1, False)]:
        ratio = factor * CANCELLATION_LIMIT
        shifted = X + np.r_[np.sqrt(ratio - 1.0), 0.0, 0.0]
        offset = shifted.mean(axis=0)
        design, _ = DenseDesign.with_matrix(shifted, offset, np.ones(200))
        assert design.implicit is implicit


def _split(X, y, n_train):
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


@pytest.mark.parametrize("shift", ["moderate", "large", "one-large-column"])
@pytest.mark.parametrize("shape", [(60, 8), (20, 30)])
@pytest.mark.parametrize("n_targets", [1, 2])
def test_fold_on_shifted_data_matches_sklearn(shift, shape, n_targets):
    X, y = _data((shape[0] + 15, shape[1]), SHIFTS[shift][0], n_targets)
    X_train, y_train, X_val, y_val = _split(X, y, shape[0])
    weights = np.random.RandomState(2).uniform(0.5, 2.0, shape[0])
    fold = RidgeModel().fold(
        Ridge(), FoldData(X_train, y_train, X_val, y_val, sample_weight=weights)
    )
    assert fold.method == ("gram" if shape[1] <= shape[0] else "kernel")
    for alpha in [1e-3, 1.0, 100.0]:
        solution = fold.solve({"alpha": alpha})
        ours = solution.fitted_estimator()
        reference = Ridge(alpha=alpha).fit(X_train, y_train, sample_weight=weights)
        np.testing.assert_allclose(ours.coef_, reference.coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(ours.intercept_, reference.intercept_, rtol=1e-8)
        np.testing.assert_allclose(
            solution.loss,
            mean_squared_error(y_val, reference.predict(X_val)),
            rtol=1e-8,
        )


@pytest.mark.parametrize("shape", [(60, 8), (20, 30)])
def test_fold_at_the_cancellation_limit_matches_sklearn(shape):
    # Every column's mean just under the limit: centered implicitly, the
    # most digits it loses.
    X, y = _data((shape[0] + 15, shape[1]), 0.0, n_targets=2)
    train = X[: shape[0]]
    X = (X - train.mean(axis=0)) / train.std(axis=0) + np.sqrt(0.5 * CANCELLATION_LIMIT)
    X_train, y_train, X_val, y_val = _split(X, y, shape[0])
    design, _ = DenseDesign.with_matrix(
        X_train, X_train.mean(axis=0), np.ones(shape[0]), kernel=shape[0] < shape[1]
    )
    assert design.implicit
    fold = RidgeModel().fold(Ridge(), FoldData(X_train, y_train, X_val, y_val))
    for alpha in [1e-3, 1.0, 100.0]:
        solution = fold.solve({"alpha": alpha})
        reference = Ridge(alpha=alpha).fit(X_train, y_train)
        np.testing.assert_allclose(
            solution.fitted_estimator().coef_, reference.coef_, rtol=1e-8, atol=1e-10
        )
        np.testing.assert_allclose(
            solution.loss,
            mean_squared_error(y_val, reference.predict(X_val)),
            rtol=1e-8,
        )


@pytest.mark.parametrize("shift", ["centered", "moderate", "large"])
@pytest.mark.parametrize("shape", [(60, 8), (20, 30)])
def test_hypergradient_on_shifted_data_matches_central_differences(shift, shape):
    X, y = _data((shape[0] + 15, shape[1]), SHIFTS[shift][0], n_targets=2)
    X_train, y_train, X_val, y_val = _split(X, y, shape[0])
    weights = np.random.RandomState(3).uniform(0.5, 2.0, shape[0])
    fold = RidgeModel().fold(
        Ridge(), FoldData(X_train, y_train, X_val, y_val, sample_weight=weights)
    )
    for alpha in [1e-2, 3.0]:
        loss, grads, _ = value_and_grad(fold, {"alpha": alpha})

        def loss_at_log_alpha(log_alpha):
            return fold.solve({"alpha": float(np.exp(log_alpha))}).loss

        fd = central_difference(loss_at_log_alpha, np.log(alpha), step=1e-4)
        np.testing.assert_allclose(
            alpha * grads["alpha"], fd, rtol=1e-6, atol=1e-9 * loss
        )


@pytest.mark.parametrize("shift", ["centered", "large"])
@pytest.mark.parametrize("weighted", [False, True])
def test_wide_fold_drops_its_design_and_indexes_it_again(shift, weighted):
    X, y = _data((40, 60), SHIFTS[shift][0], n_targets=2)
    train, val = np.arange(30), np.arange(30, 40)
    weights = np.random.RandomState(4).uniform(0.5, 2.0, 30) if weighted else None
    calls = []

    def training_rows():
        calls.append(1)
        return X[train]

    kept = RidgeModel().fold(
        Ridge(), FoldData(X[train], y[train], X[val], y[val], sample_weight=weights)
    )
    dropped = RidgeModel().fold(
        Ridge(),
        FoldData(
            X[train],
            y[train],
            X[val],
            y[val],
            sample_weight=weights,
            training_rows=training_rows,
        ),
    )
    assert dropped.method == "kernel"
    assert dropped._design._rows is None
    assert kept._design._rows is not None
    solution = dropped.solve({"alpha": 0.5}, differentiate=True)
    reference = kept.solve({"alpha": 0.5}, differentiate=True)
    assert solution.loss == reference.loss
    assert solution.hypergradient(["alpha"]) == reference.hypergradient(["alpha"])
    assert calls == []
    np.testing.assert_allclose(solution.coef, reference.coef, rtol=1e-12, atol=1e-14)
    assert calls == [1]


@pytest.mark.parametrize("shape", [(60, 8), (20, 30)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shift", ["centered", "large"])
@pytest.mark.parametrize("partition", [True, False])
def test_fold_from_the_shared_products_equals_its_own(
    shape, weighted, shift, partition
):
    n = shape[0] + 15
    X, y = _data((n, shape[1]), SHIFTS[shift][0], n_targets=2)
    rows = np.random.RandomState(5).permutation(n)
    train, test = rows[: shape[0]], rows[shape[0] :]
    if not partition:
        # Rows left out (ShuffleSplit), and negative indices.
        test = test[:10] - n
    weights = np.random.RandomState(6).uniform(0.5, 2.0, shape[0]) if weighted else None
    shared = {}

    def fold(source):
        data = FoldData(
            X[train], y[train], X[test], y[test], sample_weight=weights, source=source
        )
        return RidgeModel().fold(Ridge(), data)

    own, from_shared = fold(None), fold((X, train, test, shared))
    kernel = shape[0] < shape[1]
    assert set(shared) == (
        {"ridge_kernel"}
        if kernel
        else {"ridge_gram"}
        if partition and not weighted
        else set()
    )
    for alpha in [1e-3, 1.0, 100.0]:
        ours = from_shared.solve({"alpha": alpha}, differentiate=True)
        reference = own.solve({"alpha": alpha}, differentiate=True)
        np.testing.assert_allclose(ours.loss, reference.loss, rtol=1e-10)
        np.testing.assert_allclose(
            ours.hypergradient(["alpha"])["alpha"],
            reference.hypergradient(["alpha"])["alpha"],
            rtol=1e-7,
            atol=1e-9 * reference.loss,
        )
        np.testing.assert_allclose(ours.coef, reference.coef, rtol=1e-9, atol=1e-11)


def _objective(X, y, scoring):
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    return CrossValObjective(
        Ridge(), X, y, splits, ["alpha"], scorer=get_scorer(scoring)
    ), splits


def _grid_scores(X, y, splits, scoring, alpha):
    grid = GridSearchCV(Ridge(), {"alpha": [alpha]}, scoring=scoring, cv=splits)
    results = grid.fit(X, y).cv_results_
    return [results[f"split{k}_test_score"][0] for k in range(len(splits))]


@pytest.mark.parametrize("shape", [(60, 8), (30, 50)])
@pytest.mark.parametrize(
    "scoring, kept", [("neg_mean_squared_error", False), ("r2", True)]
)
def test_splits_keep_the_validation_part_only_for_a_scorer(shape, scoring, kept):
    X, y = _data(shape, 2.0)
    objective, splits = _objective(X, y, scoring)
    result = objective.evaluate({"alpha": 2.0})
    for split in objective._pool._splits:
        assert (split.X_test is not None) is kept
        if split.model_fold.method == "kernel":
            # The wide design is kept only to form coefficients for a scorer.
            assert (split.model_fold._design._rows is not None) is kept
    np.testing.assert_allclose(
        [s.scores["test_scores"] for s in result.splits],
        _grid_scores(X, y, splits, scoring, 2.0),
        rtol=1e-9,
    )
    objective.close()


def test_without_a_scorer_splits_keep_neither_part():
    X, y = _data((30, 50), 2.0)
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    objective = CrossValObjective(Ridge(), X, y, splits, ["alpha"])
    objective.evaluate({"alpha": 2.0}, differentiate=True)
    for split in objective._pool._splits:
        assert split.X_test is None and split._data is None
        assert split.model_fold._design._rows is None
    objective.close()


def test_a_loss_that_is_not_the_score_indexes_the_validation_part_again(
    monkeypatch,
):
    # A solution whose loss is not its score (a diverged training's) is
    # scored by the scorer, on the validation part indexed again.
    from skhypergrad._models import _ridge

    X, y = _data((30, 50), 2.0)
    monkeypatch.setattr(_ridge._RidgeSolution, "loss_is_score", False)
    original = _ridge._RidgeSolution.__init__

    def not_the_score(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.loss_is_score = False

    monkeypatch.setattr(_ridge._RidgeSolution, "__init__", not_the_score)
    objective, splits = _objective(X, y, "neg_mean_squared_error")
    result = objective.evaluate({"alpha": 2.0})
    assert all(split.X_test is None for split in objective._pool._splits)
    np.testing.assert_allclose(
        [s.scores["test_scores"] for s in result.splits],
        _grid_scores(X, y, splits, "neg_mean_squared_error", 2.0),
        rtol=1e-9,
    )
    objective.close()

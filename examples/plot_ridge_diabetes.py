"""
=======================================================
Tuning Ridge's alpha: HypergradSearchCV vs GridSearchCV
=======================================================

:class:`~skhypergrad.HypergradSearchCV` replaces
:class:`~sklearn.model_selection.GridSearchCV` in a pipeline: instead of
trying 30 values of ``alpha``, it follows the derivative of the
cross-validation loss inside the range. Both searches use the same folds and
the same scoring, so their numbers can be compared directly.
"""

# %%
# The data and the two searches
# -----------------------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV

X, y = load_diabetes(return_X_y=True)
pipeline = make_pipeline(StandardScaler(), Ridge())
cv = KFold(5, shuffle=True, random_state=0)
scoring = "neg_mean_squared_error"

start = time.perf_counter()
hypergrad = HypergradSearchCV(
    pipeline, {"ridge__alpha": (1e-4, 1e4)}, scoring=scoring, cv=cv
).fit(X, y)
hypergrad_time = time.perf_counter() - start

start = time.perf_counter()
grid = GridSearchCV(
    pipeline, {"ridge__alpha": np.logspace(-4, 4, 30)}, scoring=scoring, cv=cv
).fit(X, y)
grid_time = time.perf_counter() - start

print(f"{'':18} {'best alpha':>12} {'CV MSE':>10} {'points':>7} {'seconds':>8}")
for name, search, seconds in [
    ("HypergradSearchCV", hypergrad, hypergrad_time),
    ("GridSearchCV", grid, grid_time),
]:
    print(
        f"{name:18} {search.best_params_['ridge__alpha']:12.4g} "
        f"{-search.best_score_:10.2f} {len(search.cv_results_['params']):7d} "
        f"{seconds:8.3f}"
    )

# %%
# The path of the search
# ----------------------
# Each row of ``cv_results_`` is a point the search evaluated: five coarse
# points over the range, then gradient steps from the best of them. The grid
# curve shows the same cross-validation loss.
results = hypergrad.cv_results_
fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogx(
    grid.cv_results_["param_ridge__alpha"].astype(float),
    -grid.cv_results_["mean_test_score"],
    color="0.6",
    label="GridSearchCV (30 points)",
)
ax.semilogx(
    results["param_ridge__alpha"].astype(float),
    results["cv_loss"],
    "o-",
    label="HypergradSearchCV iterates",
)
ax.set_xlabel("alpha")
ax.set_ylabel("cross-validated MSE")
ax.legend()
fig.tight_layout()
plt.show()

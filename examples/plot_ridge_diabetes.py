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

from skhypergrad import HypergradSearchCV, plot_search

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
# The points evaluated
# --------------------
# :func:`~skhypergrad.plot_search` draws the search: on the left, the best
# cross-validated MSE found after each evaluation (each evaluation is a faint
# dot); on the right, the points evaluated over ``alpha``: five coarse points
# over the range (hollow), then the gradient steps from the best of them
# (filled), which end on the star, ``best_params_``. The loss axes show the
# minimum; the points far above it (``alpha=1e4``) are drawn on the top edge
# as triangles. GridSearchCV's 30 points, on the same folds, lie on the same
# curve.
display = plot_search(hypergrad)
display.ax_[1].plot(
    grid.cv_results_["param_ridge__alpha"].astype(float),
    -grid.cv_results_["mean_test_score"],
    ".-",
    color="0.6",
    linewidth=1,
    zorder=1,
    label="GridSearchCV (30 points)",
)
display.ax_[1].legend(fontsize="small")

# sphinx_gallery_start_ignore
# ``make demo`` runs this file as a script with a file name, where the
# figure is saved: with the Agg backend, plt.show() shows nothing.
import os  # noqa: E402
import sys  # noqa: E402

if len(sys.argv) > 1:
    os.makedirs(os.path.dirname(os.path.abspath(sys.argv[1])), exist_ok=True)
    display.figure_.savefig(sys.argv[1], dpi=100)
    print(f"Figure saved to {sys.argv[1]}")
# sphinx_gallery_end_ignore
plt.show()

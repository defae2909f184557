"""
====================================
The path of a hyperparameter search
====================================

:class:`~skhypergrad.HypergradSearchCV` records every point it evaluates in
``cv_results_``: a coarse pass over the range, then gradient steps from the
best of those points. :func:`~skhypergrad.plot_search` draws that path over
the cross-validation loss, which shows what the search did and whether the
range was wide enough.
"""

# %%
# One hyperparameter: Ridge's alpha
# ---------------------------------
# ``alpha`` is searched on a log scale over ``(1e-4, 1e4)``. With
# ``loss_grid=60`` the display also computes the CV loss at 60 values of
# ``alpha`` (with :func:`~skhypergrad.cross_val_hypergrad`, on the same folds)
# and draws it under the path. This grid is only for the picture: the search
# itself evaluated a dozen points.
import warnings

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV, plot_search

X, y = load_diabetes(return_X_y=True)
cv = KFold(5, shuffle=True, random_state=0)
search = HypergradSearchCV(
    make_pipeline(StandardScaler(), Ridge()),
    {"ridge__alpha": (1e-4, 1e4)},
    scoring="neg_mean_squared_error",
    cv=cv,
).fit(X, y)

display = plot_search(search, X, y, loss_grid=60)
plt.show()

# %%
# On the left, the progress of the search: the CV loss of each evaluation
# (faint dots) and the best one so far (the step line), the five points of
# the coarse pass (``alpha`` = 1e-4, 1e-2, 1, 1e2, 1e4) before the dotted
# line, the gradient phase after it. On the right, the same points over
# ``alpha``: the hollow markers are the coarse pass, the filled ones the
# gradient phase, which starts from the best coarse point, stays between its
# neighbours and ends on the star, ``best_params_``.
#
# The loss axes show the minimum: the right one spans the losses of the
# points within two decades of the best ``alpha`` (a quarter of the range),
# the left one the best losses so far. The point at ``alpha=1e4``, where the
# loss is twice as high, would flatten everything else; it is drawn on the
# top edge, as a triangle.
#
# Each row of ``cv_results_`` is one point, with the loss that was
# differentiated and its derivative:
results = pd.DataFrame(search.cv_results_)
results[["outer_iter", "param_ridge__alpha", "cv_loss", "hypergrad_ridge__alpha"]]

# %%
# The whole range of the loss
# ---------------------------
# ``loss_lim=None`` leaves the loss axes to matplotlib, which shows every
# point: the loss rises steeply beyond ``alpha=10``, and the minimum is a
# flat line. A pair ``loss_lim=(low, high)`` sets both axes.
display = plot_search(search, X, y, loss_grid=60, loss_lim=None)
plt.show()

# %%
# Discrete hyperparameters: one colour per candidate
# --------------------------------------------------
# A discrete hyperparameter is enumerated, and a continuous search runs at
# each of its values. Each candidate gets its own colour, named in the
# legend. Without its intercept, the ridge regression's loss is nine times
# higher everywhere: its points are all on the top edge of the axes, and the
# legend gives its best loss.
search = HypergradSearchCV(
    make_pipeline(StandardScaler(), Ridge()),
    {"ridge__alpha": (1e-4, 1e4), "ridge__fit_intercept": [True, False]},
    scoring="neg_mean_squared_error",
    cv=cv,
).fit(X, y)

display = plot_search(search, X, y, loss_grid=60)
plt.show()

# %%
# Two hyperparameters: an MLP's alpha and learning rate
# -----------------------------------------------------
# With two continuous hyperparameters the path is drawn in their plane, over
# filled contours of the CV loss when ``loss_grid`` is given (``loss_grid**2``
# trainings per fold, so keep it small). Here a small MLPClassifier on the
# breast cancer data, trained for 30 epochs of Adam: the CV loss is its
# log-loss. The short training is on purpose, to keep the example fast, so
# scikit-learn's convergence warnings are silenced.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_breast_cancer(return_X_y=True)
mlp = make_pipeline(
    StandardScaler(),
    MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0),
)
search = HypergradSearchCV(
    mlp,
    {
        "mlpclassifier__alpha": (1e-5, 1e1),
        "mlpclassifier__learning_rate_init": (1e-4, 1e-1),
    },
    scoring="neg_log_loss",
    cv=StratifiedKFold(3, shuffle=True, random_state=0),
    n_init=6,
    n_iter=10,
    random_state=0,
).fit(X, y)

display = plot_search(search, X, y, loss_grid=8, contour_kw={"cmap": "viridis"})
plt.show()

# %%
# The coarse pass is a Latin hypercube over the box (hollow markers), and the
# gradient phase starts from its best point; the thin line goes through the
# successive best points, the way the search went downhill. The colour scale
# spans the loss near the best point: the regions where it is higher have
# the top colour. A learning rate too small for 30
# epochs leaves the network undertrained: the loss is high at the bottom of
# the plane and falls steeply with ``learning_rate_init``, which is where the
# gradient phase moves. The penalty ``alpha`` matters little until it is
# large, so the hypergradient barely moves it.
for name, value in search.best_params_.items():
    print(f"{name} = {value:.3g}")

# sphinx_gallery_thumbnail_number = 4

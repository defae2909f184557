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
# On the left, the CV loss at each outer iteration: the five points of the
# coarse pass (``alpha`` = 1e-4, 1e-2, 1, 1e2, 1e4) and, after the dotted
# line, the gradient phase, which starts from the best of them and stays
# within its neighbours. On the right, the same points over ``alpha``: the
# hollow markers are the coarse pass, the line the gradient phase, the star
# ``best_params_``.
#
# Each row of ``cv_results_`` is one point, with the loss that was
# differentiated and its derivative:
results = pd.DataFrame(search.cv_results_)
results[["outer_iter", "param_ridge__alpha", "cv_loss", "hypergrad_ridge__alpha"]]

# %%
# Zooming in
# ----------
# The display keeps what it drew (``figure_``, ``ax_``, ``lines_``,
# ``path_lines_``, ``grid_line_``, ...), so it can be restyled after the
# fact. Here the path panel is narrowed to the values of ``alpha`` the
# gradient phase visited, on a finer loss grid: the steps close in on the
# minimum of the loss, where the hypergradient vanishes.
display = plot_search(search, X, y, loss_grid=300)
gradient_phase = results[results.outer_iter >= search.n_init]
alphas = gradient_phase.param_ridge__alpha.astype(float)
low, high = alphas.min() / 2, alphas.max() * 2
grid_alpha, grid_loss = display.grid_line_.get_data()
shown = grid_loss[(grid_alpha >= low) & (grid_alpha <= high)]
margin = 0.1 * (shown.max() - shown.min())
display.ax_[1].set_xlim(low, high)
display.ax_[1].set_ylim(shown.min() - margin, shown.max() + margin)
display.ax_[1].set_title("search path, around the minimum")
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
# gradient phase starts from its best point. A learning rate too small for 30
# epochs leaves the network undertrained: the loss is high at the bottom of
# the plane and falls steeply with ``learning_rate_init``, which is where the
# gradient phase moves. The penalty ``alpha`` matters little until it is
# large, so the hypergradient barely moves it.
for name, value in search.best_params_.items():
    print(f"{name} = {value:.3g}")

# sphinx_gallery_thumbnail_number = 3

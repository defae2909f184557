"""
====================================================
Tuning LogisticRegression's C by implicit gradients
====================================================

For a logistic regression, the hypergradient comes from the implicit
function theorem at the trained optimum: no solver iteration is unrolled.
This example tunes ``C`` on the breast cancer data, reports accuracy as
:class:`~sklearn.model_selection.GridSearchCV` would, and compares the
cross-validated log-loss with
:class:`~sklearn.linear_model.LogisticRegressionCV` (30 values of ``C``,
selected by log-loss) on the same folds.
"""

# %%
# The search
# ----------
# ``scoring="accuracy"`` decides what is reported and which point is best;
# the search itself follows the derivative of the validation log-loss.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import HypergradSearchCV, plot_search

X, y = load_breast_cancer(return_X_y=True)
cv = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
pipeline = make_pipeline(StandardScaler(), LogisticRegression())

start = time.perf_counter()
search = HypergradSearchCV(
    pipeline, {"logisticregression__C": (1e-4, 1e4)}, scoring="accuracy", cv=cv
).fit(X, y)
search_time = time.perf_counter() - start

start = time.perf_counter()
reference = make_pipeline(
    StandardScaler(),
    LogisticRegressionCV(
        Cs=np.logspace(-4, 4, 30),
        cv=cv,
        scoring="neg_log_loss",
        l1_ratios=(0.0,),
        use_legacy_attributes=False,
    ),
).fit(X, y)
reference_time = time.perf_counter() - start

# %%
# Both chosen values of ``C``, scored on the same folds by the same
# ``cross_val_score``.
for name, C, seconds in [
    ("HypergradSearchCV", search.best_params_["logisticregression__C"], search_time),
    ("LogisticRegressionCV", float(np.ravel(reference[-1].C_)[0]), reference_time),
]:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C))
    log_loss = -cross_val_score(model, X, y, cv=cv, scoring="neg_log_loss").mean()
    accuracy = cross_val_score(model, X, y, cv=cv, scoring="accuracy").mean()
    print(
        f"{name:21} C={C:9.4g}  CV log-loss={log_loss:.5f}  "
        f"CV accuracy={accuracy:.4f}  {seconds:.2f}s"
    )

# %%
# The evaluated points
# --------------------
# The first five points are the coarse pass over the range (hollow markers);
# the next ones are the gradient steps (filled), drawn over the CV log-loss
# on a 30-point grid of ``C``. The log-loss has a clear minimum between
# ``C=0.1`` and ``C=10``; the ends of the range, far above it, are drawn on
# the top edge of the axis. On the left, the best log-loss found so far: the
# coarse pass finds the basin, and the gradient phase settles its bottom.
plot_search(search, X, y, loss_grid=30)
plt.show()

# %%
# Each row of ``cv_results_`` has the loss that was differentiated, its
# derivative (``nan`` in the coarse pass, which computes the loss alone) and
# the accuracy that ``scoring`` asked for.
results = search.cv_results_
for i in np.argsort(results["outer_iter"]):
    print(
        f"{results['outer_iter'][i]:3d}  "
        f"C={results['param_logisticregression__C'][i]:10.4g}  "
        f"log-loss={results['cv_loss'][i]:.5f}  "
        f"d/dC={results['hypergrad_logisticregression__C'][i]:10.3g}  "
        f"accuracy={results['mean_test_score'][i]:.4f}"
    )

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

from skhypergrad import HypergradSearchCV

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
# The first five rows are the coarse pass over the range; the next ones are
# the gradient steps. The hypergradient is ``nan`` in the coarse pass, which
# computes the loss alone.
results = search.cv_results_
C_values = results["param_logisticregression__C"].astype(float)
fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogx(C_values, results["cv_loss"], "o", color="0.6", label="evaluated")
gradient_phase = results["outer_iter"] >= search.n_init
ax.semilogx(
    C_values[gradient_phase],
    results["cv_loss"][gradient_phase],
    "o-",
    label="gradient phase",
)
ax.set_xlabel("C")
ax.set_ylabel("CV log-loss")
ax.legend()
fig.tight_layout()
plt.show()

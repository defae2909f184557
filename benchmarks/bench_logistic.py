"""Tuning LogisticRegression's C: HypergradSearchCV against scikit-learn.

For each dataset (standardized once, up front), every method searches C over
(1e-4, 1e4) on the same StratifiedKFold(5, shuffle=True, random_state=0)
splits, in this one process, scored by the CV log-loss:

- HypergradSearchCV (gradient steps on the CV log-loss),
- GridSearchCV on a 30-point log grid,
- LogisticRegressionCV(Cs=30) on the same grid (warm-started path),
- RandomizedSearchCV with 30 draws from loguniform(1e-4, 1e4).

The C each one chooses is then evaluated by the same ``cross_validate`` on the
same splits (newton-cholesky at tol=1e-10, so that solver noise does not blur
the comparison), for its CV log-loss and accuracy. Times are wall-clock, the
best of ``--repeat`` runs (3 by default), and ratios are relative to
HypergradSearchCV. On a small machine, run it single-threaded
(``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1``): with two threads per process,
scikit-learn's fits were several times slower from oversubscription.

``--timings`` also prints the cost of one fold's solve and hypergradient (cold,
and warm after a nearby C) and of a Hessian-vector product, hand-written
numpy against autograd's.

Usage::

    python benchmarks/bench_logistic.py [--datasets digits ...]
        [--repeat 3] [--output results.json] [--timings]
"""

import argparse
import inspect
import json
import time
import warnings

import numpy as np
from autograd import make_hvp
from scipy.stats import loguniform
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    StratifiedKFold,
    cross_validate,
)
from sklearn.preprocessing import StandardScaler

from skhypergrad import FoldData, HypergradSearchCV
from skhypergrad._models._logistic import LogisticRegressionModel, _train_objective
from skhypergrad._models._threads import blas_threads_limited

LOW, HIGH, N_POINTS = 1e-4, 1e4, 30
MAX_ITER = 1000


def load(name):
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
    elif name == "digits":
        X, y = load_digits(return_X_y=True)
    elif name == "classification":
        X, y = make_classification(5000, 100, random_state=0)
    else:
        raise ValueError(f"unknown dataset {name!r}")
    return StandardScaler().fit_transform(X), y


def splits_of(X, y):
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    return list(cv.split(X, y))


def run_hypergrad(X, y, splits):
    search = HypergradSearchCV(
        LogisticRegression(max_iter=MAX_ITER),
        {"C": (LOW, HIGH)},
        scoring="neg_log_loss",
        cv=splits,
    ).fit(X, y)
    n_evaluations = len(search.cv_results_["params"])
    return search.best_params_["C"], {"evaluations": n_evaluations}


def run_grid(X, y, splits):
    search = GridSearchCV(
        LogisticRegression(max_iter=MAX_ITER),
        {"C": np.geomspace(LOW, HIGH, N_POINTS)},
        scoring="neg_log_loss",
        cv=splits,
    ).fit(X, y)
    return search.best_params_["C"], {"evaluations": N_POINTS}


def run_logistic_cv(X, y, splits):
    options = {}
    parameters = inspect.signature(LogisticRegressionCV).parameters
    if "use_legacy_attributes" in parameters:
        options["use_legacy_attributes"] = False  # sklearn >= 1.9
    if "l1_ratios" in parameters:
        options["l1_ratios"] = (0.0,)
    model = LogisticRegressionCV(
        Cs=np.geomspace(LOW, HIGH, N_POINTS),
        cv=splits,
        scoring="neg_log_loss",
        max_iter=MAX_ITER,
        **options,
    ).fit(X, y)
    return float(np.ravel(model.C_)[0]), {"evaluations": N_POINTS}


def run_random(X, y, splits):
    search = RandomizedSearchCV(
        LogisticRegression(max_iter=MAX_ITER),
        {"C": loguniform(LOW, HIGH)},
        n_iter=N_POINTS,
        scoring="neg_log_loss",
        cv=splits,
        random_state=0,
    ).fit(X, y)
    return search.best_params_["C"], {"evaluations": N_POINTS}


METHODS = {
    "HypergradSearchCV": run_hypergrad,
    "GridSearchCV (30)": run_grid,
    "LogisticRegressionCV (30)": run_logistic_cv,
    "RandomizedSearchCV (30)": run_random,
}


def evaluate(C, X, y, splits):
    """CV log-loss and accuracy of C, the same way for every method."""
    scores = cross_validate(
        LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10, max_iter=100),
        X,
        y,
        cv=splits,
        scoring=["neg_log_loss", "accuracy"],
    )
    return -scores["test_neg_log_loss"].mean(), scores["test_accuracy"].mean()


def benchmark(name, repeat):
    X, y = load(name)
    splits = splits_of(X, y)
    rows = []
    for method, run in METHODS.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            # The best of `repeat` runs, so that a busy moment of the machine
            # does not decide a ratio.
            seconds = np.inf
            for _ in range(repeat):
                start = time.perf_counter()
                C, extra = run(X, y, splits)
                seconds = min(seconds, time.perf_counter() - start)
        log_loss, accuracy = evaluate(C, X, y, splits)
        rows.append(
            {
                "dataset": name,
                "shape": list(X.shape),
                "n_classes": len(np.unique(y)),
                "method": method,
                "seconds": seconds,
                "C": float(C),
                "cv_log_loss": float(log_loss),
                "cv_accuracy": float(accuracy),
                "convergence_warnings": sum(
                    issubclass(w.category, ConvergenceWarning) for w in caught
                )
                // repeat,
                **extra,
            }
        )
    reference = rows[0]["seconds"]
    for row in rows:
        row["time_ratio"] = row["seconds"] / reference
    return rows


def fold_timings(name, n_warm=5):
    """Per-fold cost of a solve and hypergradient, and of one Hessian-vector product."""
    X, y = load(name)
    model, estimator = LogisticRegressionModel(), LogisticRegression(max_iter=MAX_ITER)
    cold, warm, numpy_hvp, autograd_hvp = [], [], [], []
    for train, test in splits_of(X, y):
        fold = model.fold(estimator, FoldData(X[train], y[train], X[test], y[test]))
        start = time.perf_counter()
        solution = fold.solve({"C": 1.0}, differentiate=True)
        solution.hypergradient(["C"])
        cold.append(time.perf_counter() - start)
        for C in np.exp(0.2 * np.arange(1, n_warm + 1)):
            start = time.perf_counter()
            fold.solve({"C": float(C)}, differentiate=True).hypergradient(["C"])
            warm.append(time.perf_counter() - start)

        objective, theta = fold.objective, solution.theta
        _, _, proba = objective.value_grad(theta, 1.0)
        product = objective.hessp(1.0, proba)
        traced, _ = make_hvp(_train_objective)(theta, 1.0, *fold.train_args)
        direction = np.ones_like(theta)
        for times, function in ((numpy_hvp, product), (autograd_hvp, traced)):
            with blas_threads_limited():  # as in the solves
                start = time.perf_counter()
                for _ in range(20):
                    function(direction)
                times.append((time.perf_counter() - start) / 20)
    return {
        "dataset": name,
        "n_params": int(fold.objective.n_params),
        "cold_ms": 1e3 * float(np.mean(cold)),
        "warm_ms": 1e3 * float(np.mean(warm)),
        "numpy_hvp_us": 1e6 * float(np.mean(numpy_hvp)),
        "autograd_hvp_us": 1e6 * float(np.mean(autograd_hvp)),
    }


def markdown(rows):
    lines = [
        "| dataset | method | time (s) | ratio | C | CV log-loss | CV accuracy |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} {tuple(row['shape'])} | {row['method']} | "
            f"{row['seconds']:.2f} | {row['time_ratio']:.2f} | {row['C']:.4g} | "
            f"{row['cv_log_loss']:.5f} | {row['cv_accuracy']:.4f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["breast_cancer", "digits", "classification"],
        choices=["breast_cancer", "digits", "classification"],
    )
    parser.add_argument("--output", help="write the results as JSON to this path")
    parser.add_argument(
        "--timings", action="store_true", help="also time one fold's calls"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="time each search as the best of N runs"
    )
    args = parser.parse_args()

    rows = [row for name in args.datasets for row in benchmark(name, args.repeat)]
    print(markdown(rows))
    results = {"search": rows}
    if args.timings:
        timings = [fold_timings(name) for name in args.datasets]
        print()
        print(
            "| dataset | params | cold call (ms) | warm call (ms) | HVP numpy (us) "
            "| HVP autograd (us) |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for t in timings:
            print(
                f"| {t['dataset']} | {t['n_params']} | {t['cold_ms']:.1f} | "
                f"{t['warm_ms']:.1f} | {t['numpy_hvp_us']:.0f} | "
                f"{t['autograd_hvp_us']:.0f} |"
            )
        results["fold_timings"] = timings
    if args.output:
        with open(args.output, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()

"""Ridge: HypergradSearchCV against GridSearchCV, RandomizedSearchCV and RidgeCV.

Every method searches alpha over the same range on the same folds, in one
process. The alpha each one picks is then scored by the same
``cross_val_score`` on those folds, so the CV MSE column compares like with
like.

Run ``python benchmarks/bench_ridge.py`` (``--output results.json`` also
writes the table as JSON; ``--quick`` for the small datasets only; each
search is timed as the best of ``--repeat`` runs, 3 by default).
"""

import argparse
import json
import time

import numpy as np
from scipy.stats import loguniform
from sklearn.datasets import load_diabetes, make_regression
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_val_score,
)

from skhypergrad import HypergradSearchCV

LOW, HIGH, N_POINTS = 1e-4, 1e4, 30


def datasets(quick):
    yield "diabetes (442x10)", load_diabetes(return_X_y=True)
    yield (
        "make_regression (2000x200)",
        make_regression(2000, 200, n_informative=50, noise=30, random_state=0),
    )
    if not quick:
        yield (
            "make_regression (10000x500)",
            make_regression(10000, 500, n_informative=100, noise=30, random_state=0),
        )


def searches(splits):
    grid = np.logspace(np.log10(LOW), np.log10(HIGH), N_POINTS)
    mse = "neg_mean_squared_error"
    return {
        "HypergradSearchCV": HypergradSearchCV(
            Ridge(), {"alpha": (LOW, HIGH)}, scoring=mse, cv=splits
        ),
        f"GridSearchCV ({N_POINTS} points)": GridSearchCV(
            Ridge(), {"alpha": grid}, scoring=mse, cv=splits
        ),
        f"RandomizedSearchCV ({N_POINTS} draws)": RandomizedSearchCV(
            Ridge(),
            {"alpha": loguniform(LOW, HIGH)},
            n_iter=N_POINTS,
            scoring=mse,
            cv=splits,
            random_state=0,
        ),
        f"RidgeCV(cv=5, {N_POINTS} alphas)": RidgeCV(
            alphas=grid, cv=splits, scoring=mse
        ),
    }


def chosen_alpha(search):
    if isinstance(search, RidgeCV):
        return float(search.alpha_)
    return float(search.best_params_["alpha"])


def run(quick, repeat):
    rows = []
    for name, (X, y) in datasets(quick):
        splits = list(KFold(5, shuffle=True, random_state=0).split(X))
        for method, search in searches(splits).items():
            # The best of `repeat` runs, so that the first method timed does
            # not pay the process's warm-up.
            seconds = np.inf
            for _ in range(repeat):
                start = time.perf_counter()
                search.fit(X, y)
                seconds = min(seconds, time.perf_counter() - start)
            alpha = chosen_alpha(search)
            cv_mse = -cross_val_score(
                Ridge(alpha=alpha), X, y, cv=splits, scoring="neg_mean_squared_error"
            ).mean()
            n_points = (
                len(search.cv_results_["params"])
                if hasattr(search, "cv_results_")
                else N_POINTS
            )
            rows.append(
                dict(
                    dataset=name,
                    method=method,
                    seconds=seconds,
                    alpha=alpha,
                    cv_mse=cv_mse,
                    points=n_points,
                )
            )
    return rows


def print_table(rows):
    print(
        "| dataset | method | time (s) | time / HypergradSearchCV | points | alpha "
        "| CV MSE |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        reference = next(
            r["seconds"]
            for r in rows
            if r["dataset"] == row["dataset"] and r["method"] == "HypergradSearchCV"
        )
        print(
            f"| {row['dataset']} | {row['method']} | {row['seconds']:.3f} | "
            f"{row['seconds'] / reference:.1f}x | {row['points']} | "
            f"{row['alpha']:.4g} | {row['cv_mse']:.6f} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="also write the rows as JSON to this path")
    parser.add_argument("--quick", action="store_true", help="small datasets only")
    parser.add_argument(
        "--repeat", type=int, default=3, help="time each search as the best of N runs"
    )
    args = parser.parse_args()
    rows = run(args.quick, args.repeat)
    print_table(rows)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

"""Searches with n_jobs=1, n_jobs=2 and a dask LocalCluster(2), side by side.

Each measurement runs in a fresh process: it builds the data, starts the
workers with a small search (joblib and dask keep their workers between
fits; the start-up is reported apart), then times one search and reports its
wall time, the peak memory of the calling process and of each worker. The
methods are interleaved, ``--repeat`` times; the table gives the minimum and
the spread (max - min) of the wall times, and the ratios of minima.

Rows (the same splits and seeds for every method):

- ``mlp``: MLPClassifier(hidden_layer_sizes=(64,), max_iter=100) on digits
  (standardized), alpha and learning_rate_init, KFold(4);
- ``logistic``: LogisticRegression(max_iter=1000) on digits, C, KFold(5);
- ``ridge``: Ridge on make_regression(2000, 200), alpha, KFold(5) (Ridge
  keeps its folds in the calling process: ``parallel_folds = False``).

``--threads default`` runs with the environment as it is (BLAS picks its
threads); ``--threads single`` with ``OPENBLAS_NUM_THREADS=1``
(``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` too). The wall times include the
refit of the best point by the estimator's own ``fit``, which runs in the
environment as it is (its time, with ``n_jobs=1``, is in the last column).

Projection: from the ``n_jobs=1`` MLP search, the cost of one fold's step
is ``c = T1 / (S K)`` (``S`` steps, ``K`` folds: the calling process's own
work is included, and the folds are assumed to cost the same). The overhead
of a step's round trip to the workers, ``o``, is measured on a search whose
folds cost microseconds (Ridge on 200 x 10, sent to workers for the
measurement): its time per step with ``n_jobs=2`` minus half that with
``n_jobs=1``. A search on ``w`` workers with 5 folds then takes
``S (ceil(5 / w) c + o)``.
GridSearchCV's 25 candidates (5 alpha x 5 learning_rate_init) x 5 folds are
projected the same way from its measured time per fit: ``ceil(125 / w) c_g``
(no overhead: optimistic for GridSearchCV).

Usage::

    python benchmarks/bench_parallel.py [--quick] [--repeat 3]
        [--rows mlp logistic ridge] [--threads default single] [--no-dask]

``--quick`` repeats once and projects GridSearchCV from 2 x 2 candidates.
The output is markdown tables.
"""

import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

CASE = r"""
import json, os, resource, sys, time, warnings
import numpy as np
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from skhypergrad import HypergradSearchCV
from skhypergrad import _parallel

ROW, METHOD, GRID_SIDE = sys.argv[1], sys.argv[2], int(sys.argv[3])
warnings.simplefilter("ignore", ConvergenceWarning)


def case(row):
    if row == "ridge":
        X, y = make_regression(n_samples=2000, n_features=200, noise=20.0,
                               random_state=0)
        return Ridge(), {"alpha": (1e-3, 1e3)}, X, y, KFold(5), {}
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    if row == "logistic":
        return (LogisticRegression(max_iter=1000), {"C": (1e-3, 1e3)}, X, y,
                KFold(5, shuffle=True, random_state=0), {"scoring": "neg_log_loss"})
    mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=100, random_state=0)
    return (mlp, {"alpha": (1e-5, 1e-1), "learning_rate_init": (1e-4, 1e-2)}, X, y,
            KFold(4, shuffle=True, random_state=0), {"scoring": "neg_log_loss"})


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def search(n_jobs, X, y, estimator, grid, cv, kwargs):
    steps = []  # a callback is called once per step that computed something
    s = HypergradSearchCV(estimator, grid, cv=cv, n_jobs=n_jobs,
                          callbacks=lambda state: steps.append(1), **kwargs)
    start = time.perf_counter()
    s.fit(X, y)
    return time.perf_counter() - start, s, len(steps)


if METHOD == "overhead":
    # The round trip of a step to the workers: a search whose folds cost
    # microseconds (Ridge, sent to workers nonetheless), n_jobs=2 against 1.
    from skhypergrad._models._ridge import RidgeModel
    RidgeModel.parallel_folds = True
    X, y = make_regression(n_samples=200, n_features=10, noise=1.0, random_state=0)
    walls = {}
    for n_jobs in (2, 1, 2, 1, 2, 1):
        wall, s, steps = search(n_jobs, X, y, Ridge(), {"alpha": (1e-3, 1e3)},
                                KFold(5), {})
        walls.setdefault(n_jobs, []).append(wall / steps)
    print(json.dumps({"per_step_1": min(walls[1]), "per_step_2": min(walls[2])}))
    sys.exit()

estimator, grid, X, y, cv, kwargs = case(ROW)
out = {}
if METHOD == "gridsearch":
    from sklearn.model_selection import GridSearchCV
    side = GRID_SIDE
    pgrid = {name: list(np.geomspace(low, high, side))
             for name, (low, high) in grid.items()}
    g = GridSearchCV(estimator, pgrid, cv=cv, **kwargs)
    start = time.perf_counter()
    g.fit(X, y)
    out["wall"] = time.perf_counter() - start
    out["fits"] = len(g.cv_results_["params"]) * cv.get_n_splits()
    out["peak_mb"] = peak_mb()
    print(json.dumps(out))
    sys.exit()

if METHOD == "dask":
    from distributed import Client, LocalCluster
    import joblib
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    context = joblib.parallel_backend("dask")
    n_jobs = None
else:
    import contextlib
    context = contextlib.nullcontext()
    n_jobs = int(METHOD)

with context:
    small = slice(0, 200)
    start = time.perf_counter()
    HypergradSearchCV(estimator, grid, cv=cv, n_jobs=n_jobs, n_init=1, n_iter=0,
                      **kwargs).fit(X[small], y[small])
    out["startup"] = time.perf_counter() - start
    wall, s, steps = search(n_jobs, X, y, estimator, grid, cv, kwargs)
    out["wall"] = wall
    r = s.cv_results_
    out["refit"] = s.refit_time_
    out["rows"] = len(r["params"])
    out["steps"] = steps
    out["best_loss"] = float(np.nanmin(r["cv_loss"]))
    out["peak_mb"] = peak_mb()
    if METHOD == "2":
        out["worker_peak_mb"] = [
            e.submit(peak_mb).result() for e in _parallel._EXECUTORS if e
        ]
    elif METHOD == "dask":
        out["worker_peak_mb"] = list(client.run(peak_mb).values())
print(json.dumps(out))
"""

SINGLE = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(row, method, threads, grid_side=5):
    env = dict(os.environ)
    for key in SINGLE:
        env.pop(key, None)
    if threads == "single":
        env.update(SINGLE)
    out = subprocess.run(
        [sys.executable, "-c", CASE, row, method, str(grid_side)],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spread(values):
    return f"{min(values):.2f} (+{max(values) - min(values):.2f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", nargs="+", default=["mlp", "logistic", "ridge"])
    parser.add_argument("--threads", nargs="+", default=["default", "single"])
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    print(f"{os.cpu_count()} cores; {repeat} run(s) of each, interleaved\n")

    measured = {}
    for row in args.rows:
        methods = ["1", "2"] + ([] if args.no_dask or row != "mlp" else ["dask"])
        for threads in args.threads:
            for _ in range(repeat):
                for method in methods:
                    result = run(row, method, threads)
                    measured.setdefault((row, threads, method), []).append(result)
                    print(f"  {row} {threads} n_jobs={method}: {result}", flush=True)

    print(
        "\n| search | threads | n_jobs=1 (s) | n_jobs=2 (s) | speedup | dask(2) (s) "
        "| dask / n_jobs=2 | rows | best cv_loss 1 = 2 | worker start (s) "
        "| of which refit (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in args.rows:
        for threads in args.threads:
            one = measured[(row, threads, "1")]
            two = measured[(row, threads, "2")]
            dask = measured.get((row, threads, "dask"))
            t1 = min(r["wall"] for r in one)
            t2 = min(r["wall"] for r in two)
            dask_cells = ("-", "-")
            if dask:
                td = min(r["wall"] for r in dask)
                dask_cells = (_spread([r["wall"] for r in dask]), f"{td / t2:.2f}")
            same = one[0]["best_loss"] == two[0]["best_loss"]
            print(
                f"| {row} | {threads} | {_spread([r['wall'] for r in one])} "
                f"| {_spread([r['wall'] for r in two])} | {t1 / t2:.2f}x "
                f"| {dask_cells[0]} | {dask_cells[1]} | {one[0]['rows']} "
                f"| {one[0]['best_loss']:.6g} {'=' if same else '!='} "
                f"{two[0]['best_loss']:.6g} | {two[0]['startup']:.1f} "
                f"| {min(r['refit'] for r in one):.2f} |"
            )

    print(
        "\n| search | threads | peak MB n_jobs=1 | n_jobs=2: caller + workers | ratio |"
    )
    print("|---|---|---|---|---|")
    for row in args.rows:
        for threads in args.threads:
            one = measured[(row, threads, "1")][0]
            two = measured[(row, threads, "2")][0]
            workers = two.get("worker_peak_mb", [])
            total = two["peak_mb"] + sum(workers)
            print(
                f"| {row} | {threads} | {one['peak_mb']:.0f} | {two['peak_mb']:.0f} + "
                f"{' + '.join(f'{w:.0f}' for w in workers)} = {total:.0f} "
                f"| {total / one['peak_mb']:.2f} |"
            )

    if "mlp" in args.rows:
        _project(measured, args.threads[-1], 2 if args.quick else 5)


def _project(measured, threads, side):
    one = measured[("mlp", threads, "1")]
    two = measured[("mlp", threads, "2")]
    t1 = min(r["wall"] for r in one)
    t2 = min(r["wall"] for r in two)
    steps = one[0]["steps"]
    folds = 4
    cost = t1 / (steps * folds)
    trip = run("ridge", "overhead", threads)
    overhead = max(0.0, trip["per_step_2"] - trip["per_step_1"] / 2)
    print(
        f"\nMLP n_jobs=2 measured: {t2:.1f} s; with the model below: "
        f"{steps * (math.ceil(folds / 2) * cost + overhead):.1f} s"
    )
    grid = [run("mlp", "gridsearch", threads, side) for _ in range(2)]
    fit_cost = min(g["wall"] for g in grid) / grid[0]["fits"]
    n_fits = 25 * 5
    print(
        f"\nProjection ({threads} threads): a fold's step c = {cost:.3f} s, "
        f"overhead per step o = {overhead:.3f} s, {steps} steps; GridSearchCV "
        f"{fit_cost:.3f} s per fit (from {grid[0]['fits']} fits), "
        f"{n_fits} fits for 5 x 5 candidates x 5 folds.\n"
    )
    print("| workers | HypergradSearchCV (s) | speedup | GridSearchCV (s) | speedup |")
    print("|---|---|---|---|---|")
    ours1 = steps * 5 * cost
    grid1 = n_fits * fit_cost
    for workers in (1, 2, 8, 16):
        ours = steps * (
            math.ceil(5 / workers) * cost + (overhead if workers > 1 else 0)
        )
        theirs = math.ceil(n_fits / workers) * fit_cost
        print(
            f"| {workers} | {ours:.1f} | {ours1 / ours:.1f}x | {theirs:.1f} "
            f"| {grid1 / theirs:.1f}x |"
        )


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()

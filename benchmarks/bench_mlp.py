"""Tuning MLPs: HypergradSearchCV against grid, random and TPE search.

Two problems, each a ``make_pipeline(StandardScaler(), MLP)`` with
``hidden_layer_sizes=(64,)``, ``max_iter=100``, ``solver="adam"`` and
``random_state=0``, searched on the same ``KFold(5, shuffle=True,
random_state=0)`` splits, in this one process:

- digits (bundled): MLPClassifier, selected by the CV log-loss;
- make_regression(2000, 50, noise=10, random_state=0): MLPRegressor,
  selected by the CV mean squared error.

Methods:

- HypergradSearchCV over alpha, learning_rate_init and beta_1: ``n_init``
  coarse points (the loss alone), then at most ``n_iter`` evaluations of the
  gradient phase (trial points, the loss alone, and hypergradients where the
  loss decreased). The default budget is 10 and 10: as many coarse points as
  TPE's random start-up trials, and a gradient phase that costs, on average,
  what the others' remaining trials cost. With one thread, a point evaluated
  for its loss alone takes about 1 to 1.3 s (5 folds), a hypergradient
  about 3.5 s, or 2.5 s at a point whose loss was just computed (the trust
  region's accepted steps), and a trial of the others about 1.3 s;
- GridSearchCV, 5 x 5 over alpha x learning_rate_init;
- RandomizedSearchCV, 25 draws over the three;
- Optuna's TPE sampler, 25 trials over the three (skipped with a note if
  ``import optuna`` fails).

Each method's chosen point is then evaluated the same way, by
``cross_validate`` on the same splits, for its CV loss (log-loss or MSE) and
score (accuracy or R^2). Wall times are per method; memory is the peak
resident set size sampled every 10 ms during the method, and the process's
peak at the end (``ru_maxrss``). ``--timings`` also prints the cost of one
fold: scikit-learn's fit, our value only, and value and hypergradient in
forward and reverse mode, from scratch or after the value at the same
point. ``--seed`` seeds the searches' own draws (the
data, folds and networks stay the same). ``--match-time`` compares at equal
wall time instead: Optuna's TPE runs first, then HypergradSearchCV with an
unbounded ``n_iter``, stopped by a callback before it would run past TPE's
time. Run it single-threaded (``OMP_NUM_THREADS=1
OPENBLAS_NUM_THREADS=1``): on a 2-core machine, two BLAS threads made the fits
3 to 10 times slower.

Usage::

    python benchmarks/bench_mlp.py [--datasets digits regression]
        [--n-init 10] [--n-iter 10] [--methods HypergradSearchCV ...]
        [--seed 0] [--match-time] [--timings] [--output results.json]
"""

import argparse
import json
import resource
import threading
import time
import warnings

import numpy as np
from scipy.stats import loguniform, uniform
from sklearn.base import clone
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_validate,
)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhypergrad import FoldData, HypergradSearchCV
from skhypergrad._models._mlp import MLPClassifierModel, MLPRegressorModel

ALPHA = (1e-5, 1e1)
LEARNING_RATE = (1e-4, 1e-1)
BETA_1 = (0.5, 0.99)
N_TRIALS = 25


def load(name):
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=100, random_state=0)
        return X, y, mlp, ("neg_log_loss", "accuracy")
    if name == "regression":
        X, y = make_regression(2000, 50, noise=10, random_state=0)
        mlp = MLPRegressor(hidden_layer_sizes=(64,), max_iter=100, random_state=0)
        return X, y, mlp, ("neg_mean_squared_error", "r2")
    raise ValueError(f"unknown dataset {name!r}")


def splits_of(X):
    return list(KFold(5, shuffle=True, random_state=0).split(X))


class PeakRSS:
    """Peak resident set size of this process while the block runs."""

    def __enter__(self):
        self.peak = self.start = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()


class TimeBudget:
    """A HypergradSearchCV callback: stop before running past ``seconds``.

    The search stops once the next evaluation, if it took as long as the
    longest so far, would end after ``seconds``.
    """

    def __init__(self, seconds):
        self.seconds = seconds
        self.last = self.longest = 0.0

    def __call__(self, state):
        self.longest = max(self.longest, state.elapsed - self.last)
        self.last = state.elapsed
        return state.elapsed + self.longest > self.seconds


def run_hypergrad(pipeline, X, y, splits, loss, n_init, n_iter, seed, callbacks=None):
    name = pipeline.steps[-1][0]
    search = HypergradSearchCV(
        pipeline,
        {
            f"{name}__alpha": ALPHA,
            f"{name}__learning_rate_init": LEARNING_RATE,
            f"{name}__beta_1": BETA_1,
        },
        scoring=loss,
        cv=splits,
        n_init=n_init,
        n_iter=n_iter,
        random_state=seed,
        refit=False,
        callbacks=callbacks,
    ).fit(X, y)
    return search.best_params_, len(search.cv_results_["params"])


def run_grid(pipeline, X, y, splits, loss):
    name = pipeline.steps[-1][0]
    search = GridSearchCV(
        pipeline,
        {
            f"{name}__alpha": np.geomspace(*ALPHA, 5),
            f"{name}__learning_rate_init": np.geomspace(*LEARNING_RATE, 5),
        },
        scoring=loss,
        cv=splits,
        refit=False,
    ).fit(X, y)
    return search.best_params_, 25


def run_random(pipeline, X, y, splits, loss, seed):
    name = pipeline.steps[-1][0]
    search = RandomizedSearchCV(
        pipeline,
        {
            f"{name}__alpha": loguniform(*ALPHA),
            f"{name}__learning_rate_init": loguniform(*LEARNING_RATE),
            f"{name}__beta_1": uniform(BETA_1[0], BETA_1[1] - BETA_1[0]),
        },
        n_iter=N_TRIALS,
        scoring=loss,
        cv=splits,
        random_state=seed,
        refit=False,
    ).fit(X, y)
    return search.best_params_, N_TRIALS


def run_optuna(pipeline, X, y, splits, loss, seed):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = pipeline.steps[-1][0]

    def objective(trial):
        params = {
            f"{name}__alpha": trial.suggest_float("alpha", *ALPHA, log=True),
            f"{name}__learning_rate_init": trial.suggest_float(
                "learning_rate_init", *LEARNING_RATE, log=True
            ),
            f"{name}__beta_1": trial.suggest_float("beta_1", *BETA_1),
        }
        scores = cross_validate(
            clone(pipeline).set_params(**params), X, y, cv=splits, scoring=loss
        )["test_score"]
        return -float(np.mean(scores))

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=N_TRIALS)
    best = study.best_trial.params
    return {f"{name}__{key}": value for key, value in best.items()}, N_TRIALS


def evaluate(pipeline, params, X, y, splits, scoring):
    """CV loss and score at ``params``, the same way for every method."""
    loss, score = scoring
    results = cross_validate(
        clone(pipeline).set_params(**params), X, y, cv=splits, scoring=[loss, score]
    )
    return -float(np.mean(results[f"test_{loss}"])), float(
        np.mean(results[f"test_{score}"])
    )


def benchmark(name, n_init, n_iter, with_optuna, only=None, seed=0, match=False):
    X, y, mlp, scoring = load(name)
    pipeline = make_pipeline(StandardScaler(), mlp)
    splits = splits_of(X)
    methods = {
        f"HypergradSearchCV (n_init={n_init}, n_iter={n_iter})": lambda: run_hypergrad(
            pipeline, X, y, splits, scoring[0], n_init, n_iter, seed
        ),
        "GridSearchCV (5x5)": lambda: run_grid(pipeline, X, y, splits, scoring[0]),
        f"RandomizedSearchCV ({N_TRIALS})": lambda: run_random(
            pipeline, X, y, splits, scoring[0], seed
        ),
    }
    if with_optuna:
        methods[f"Optuna TPE ({N_TRIALS})"] = lambda: run_optuna(
            pipeline, X, y, splits, scoring[0], seed
        )
    if only:
        methods = {m: run for m, run in methods.items() if m.split()[0] in only}
    if match:
        # Optuna first; then the gradient search, with no limit on n_iter but
        # Optuna's wall time.
        optuna_time = {}
        methods = {
            f"Optuna TPE ({N_TRIALS})": methods[f"Optuna TPE ({N_TRIALS})"],
            f"HypergradSearchCV (n_init={n_init}, TPE's time)": lambda: run_hypergrad(
                pipeline,
                X,
                y,
                splits,
                scoring[0],
                n_init,
                1000,
                seed,
                callbacks=TimeBudget(optuna_time["seconds"]),
            ),
        }
    rows = []
    for method, run in methods.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with PeakRSS() as memory:
                start = time.perf_counter()
                params, evaluations = run()
                seconds = time.perf_counter() - start
            cv_loss, cv_score = evaluate(pipeline, params, X, y, splits, scoring)
        if match and not rows:
            optuna_time["seconds"] = seconds
        rows.append(
            {
                "dataset": name,
                "method": method,
                "seconds": seconds,
                "evaluations": evaluations,
                "cv_loss": cv_loss,
                "cv_score": cv_score,
                "peak_rss_mb": memory.peak / 2**20,
                "rss_increase_mb": (memory.peak - memory.start) / 2**20,
                "params": {k.split("__")[-1]: float(v) for k, v in params.items()},
            }
        )
        print(f"  {method}: {seconds:.1f} s", flush=True)
    reference = rows[0]["seconds"]
    for row in rows:
        row["time_ratio"] = row["seconds"] / reference
    return rows


def fold_timings(name, repeats=3):
    """One fold: sklearn's fit, value only, value and hypergradient."""
    X, y, mlp, _ = load(name)
    train, test = splits_of(X)[0]
    scaler = StandardScaler().fit(X[train])
    X_train, X_test = scaler.transform(X[train]), scaler.transform(X[test])
    model_class = MLPClassifierModel if name == "digits" else MLPRegressorModel
    three = {"alpha": 1e-4, "learning_rate_init": 1e-3, "beta_1": 0.9}
    one = {"alpha": 1e-4}

    data = FoldData(X_train, y[train], X_test, y[test])

    def value(mode, params):
        return model_class(mode).fold(mlp, data).solve(params).loss

    def value_and_grad(mode, params):
        solution = model_class(mode).fold(mlp, data).solve(params, differentiate=True)
        return solution.loss, solution.hypergradient(list(params))

    def value_then_grad():
        # The hypergradient of a solution computed for its loss alone: the
        # search's trust region asks for it at each step it accepts.
        solution = model_class("reverse").fold(mlp, data).solve(three)
        return solution.hypergradient(list(three))

    cases = {
        "sklearn fit": lambda: clone(mlp).fit(X_train, y[train]),
        "value only": lambda: value("reverse", three),
        "value+grad, 3 hp, reverse": lambda: value_and_grad("reverse", three),
        "value, then value+grad there, 3 hp, reverse": value_then_grad,
        "value+grad, 3 hp, forward": lambda: value_and_grad("forward", three),
        "value+grad, 1 hp, reverse": lambda: value_and_grad("reverse", one),
        "value+grad, 1 hp, forward": lambda: value_and_grad("forward", one),
    }
    times = {case: [] for case in cases}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(repeats):  # interleaved, so that load changes hit all
            for case, function in cases.items():
                start = time.perf_counter()
                function()
                times[case].append(time.perf_counter() - start)
    fit = np.median(times["sklearn fit"])
    return [
        {
            "dataset": name,
            "case": case,
            "median_seconds": float(np.median(t)),
            "min_seconds": float(np.min(t)),
            "ratio_to_fit": float(np.median(t) / fit),
        }
        for case, t in times.items()
    ]


def markdown(rows):
    lines = [
        "| dataset | method | evaluations | time (s) | time ratio | CV loss | CV score "
        "| peak RSS (MB) | RSS increase (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['evaluations']} "
            f"| {r['seconds']:.1f} | {r['time_ratio']:.2f} "
            f"| {r['cv_loss']:.4g} | {r['cv_score']:.4f} "
            f"| {r['peak_rss_mb']:.0f} | {r['rss_increase_mb']:.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "regression"])
    parser.add_argument("--n-init", type=int, default=10)
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--timings", action="store_true")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=["HypergradSearchCV", "GridSearchCV", "RandomizedSearchCV", "Optuna"],
        help="run only these methods (default: all)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the searches' own draws (the coarse points, the random "
        "draws, TPE's sampler); the data, folds and networks stay the same",
    )
    parser.add_argument(
        "--match-time",
        action="store_true",
        help="run Optuna TPE, then HypergradSearchCV with n_iter unbounded but "
        "stopped (by a callback) before it would run past TPE's wall time",
    )
    parser.add_argument("--output", help="write the results as JSON to this file")
    args = parser.parse_args()

    try:
        import optuna  # noqa: F401

        with_optuna = True
    except ImportError:
        with_optuna = False
        print("optuna is not installed: skipping Optuna TPE (pip install optuna).")

    results = {"searches": [], "fold_timings": []}
    if args.timings:
        for name in args.datasets:
            results["fold_timings"].extend(fold_timings(name))
        print("| dataset | one fold | median (s) | min (s) | ratio to sklearn fit |")
        print("|---|---|---|---|---|")
        for r in results["fold_timings"]:
            print(
                f"| {r['dataset']} | {r['case']} | {r['median_seconds']:.3f} "
                f"| {r['min_seconds']:.3f} | {r['ratio_to_fit']:.2f} |"
            )
        print()
    for name in args.datasets:
        print(f"{name}:", flush=True)
        results["searches"].extend(
            benchmark(
                name,
                args.n_init,
                args.n_iter,
                with_optuna,
                args.methods,
                args.seed,
                args.match_time,
            )
        )
    print(markdown(results["searches"]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak RSS of the whole process: {peak:.0f} MB")
    results["process_peak_rss_mb"] = peak
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

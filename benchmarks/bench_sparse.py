"""Sparse and large data: HypergradSearchCV against scikit-learn's searches.

Rows (select with ``--rows``):

- ``ridge-sparse``: sparse X, 100,000 x 1,000,000 with 20 nonzeros a row,
  Ridge alpha, against GridSearchCV (20 alphas, sparse) and RidgeCV(cv=5);
- ``ridge-wide`` and ``ridge-tall``: dense 1,000 x 50,000 and 200,000 x 500,
  the same methods;
- ``mlp``: MLPClassifier on a sparse 5,000 x 100,000 bag of words, alpha and
  learning_rate_init, against GridSearchCV 5 x 5. The goal is memory: what
  the search adds to the process (its peak RSS minus the RSS after the
  imports and the data) at most twice the sparse input plus the weights'
  checkpoints (one fold's Adam state, weights and two moments, at the start
  of each of ``max_iter`` epochs). A second table gives these numbers;
- ``text-logistic``: a synthetic news-like corpus (20 classes, 20,000
  documents, a Zipfian vocabulary of about 50,000 terms), TfidfVectorizer +
  LogisticRegression, C, against LogisticRegressionCV(Cs=20) and
  GridSearchCV (20 values of C).

Every method of a row searches the same range on the same KFold(5) splits.
Each run is a separate process (``--worker``), single-threaded (threadpoolctl
limits BLAS and OpenMP to one thread), that makes the data, times the search
and reports its peak RSS (``ru_maxrss``, data included; the data's own size
is printed in the table). Methods are interleaved across ``--repeat`` rounds;
the table gives the minimum time and the spread (max - min). The chosen
hyperparameters are then scored on the same splits by one yardstick: for
Ridge the exact CV MSE (``cross_val_hypergrad``, which equals the dense
closed form to 1e-8), for the classifiers scikit-learn's own fit and
``neg_log_loss``.

``--size quick`` (the default) divides the rows' sizes by about 10 so that
the whole script runs in minutes on a loaded 2-core machine; ``--size full``
is the issue's sizes, where GridSearchCV takes hours; ``--size medium``
(``ridge-sparse`` only: 30,000 x 300,000) is in between, to see how the
ratio scales.

Usage::

    python benchmarks/bench_sparse.py [--rows ridge-sparse mlp ...]
        [--size quick|medium|full] [--repeat 2] [--output results.json]
        [--baseline /path/to/a/checkout/of/main] [--methods GridSearchCV ...]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp

SIZES = {
    "ridge-sparse": {
        "full": (100_000, 1_000_000, 20),
        "medium": (30_000, 300_000, 20),
        "quick": (10_000, 100_000, 20),
    },
    "ridge-wide": {"full": (1_000, 50_000), "quick": (300, 10_000)},
    "ridge-tall": {"full": (200_000, 500), "quick": (20_000, 200)},
    "mlp": {"full": (5_000, 100_000), "quick": (1_000, 20_000)},
    "text-logistic": {"full": (20_000, 50_000, 20), "quick": (2_000, 10_000, 5)},
}
METHODS = {
    "ridge-sparse": ["HypergradSearchCV", "GridSearchCV", "RidgeCV"],
    "ridge-wide": ["HypergradSearchCV", "GridSearchCV", "RidgeCV"],
    "ridge-tall": ["HypergradSearchCV", "GridSearchCV", "RidgeCV"],
    "mlp": ["HypergradSearchCV", "GridSearchCV"],
    "text-logistic": ["HypergradSearchCV", "LogisticRegressionCV", "GridSearchCV"],
}
ALPHAS = (1e-3, 1e3)
N_GRID = 20


def splits_of(n_samples):
    from sklearn.model_selection import KFold

    return list(KFold(5, shuffle=True, random_state=0).split(np.zeros(n_samples)))


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def sparse_regression(n, p, per_row, seed=0):
    """Rows with ``per_row`` nonzeros at Zipf-distributed columns."""
    rng = np.random.RandomState(seed)
    # Column popularity decays as 1/rank, as the words of a text do.
    weights = 1.0 / np.arange(1, p + 1)
    cols = rng.choice(p, size=n * per_row, p=weights / weights.sum())
    X = sp.csr_matrix(
        (rng.rand(n * per_row), cols, np.arange(0, n * per_row + 1, per_row)),
        shape=(n, p),
    )
    X.sum_duplicates()
    coef = rng.randn(p) * (rng.rand(p) < 0.1)
    y = X @ coef + 0.5 * rng.randn(n)
    return X, y


def dense_regression(n, p, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, p)
    coef = rng.randn(p) * (rng.rand(p) < 0.1)
    return X, X @ coef + 5.0 * rng.randn(n)


def bag_of_words(n, p, n_classes=5, words_per_doc=60, seed=0):
    """Counts of Zipfian words, each class over-using its own words."""
    rng = np.random.RandomState(seed)
    y = rng.randint(n_classes, size=n)
    base = 1.0 / np.arange(1, p + 1)
    rows, cols = [], []
    for i in range(n):
        topical = np.roll(base, 50 * y[i] + 10)
        words = np.concatenate(
            [
                rng.choice(p, words_per_doc // 2, p=base / base.sum()),
                rng.choice(p, words_per_doc // 2, p=topical / topical.sum()),
            ]
        )
        rows.append(np.full(len(words), i))
        cols.append(words)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, p))
    return X, y


def news_corpus(n_docs, n_terms, n_classes, seed=0):
    """Documents of Zipfian words, each class with its own topical words."""
    rng = np.random.RandomState(seed)
    vocabulary = np.array([f"w{k}" for k in range(n_terms)])
    base = 1.0 / np.arange(1, n_terms + 1) ** 1.1
    base /= base.sum()
    y = rng.randint(n_classes, size=n_docs)
    topics = [rng.choice(n_terms, 200, replace=False) for _ in range(n_classes)]
    docs = []
    for label in y:
        length = rng.randint(50, 300)
        general = rng.choice(n_terms, length, p=base)
        topical = rng.choice(topics[label], length // 5)
        docs.append(" ".join(vocabulary[np.concatenate([general, topical])]))
    return np.array(docs, dtype=object), y


def make_data(row, size):
    shape = SIZES[row][size]
    if row == "ridge-sparse":
        return sparse_regression(*shape)
    if row in ("ridge-wide", "ridge-tall"):
        return dense_regression(*shape)
    if row == "mlp":
        return bag_of_words(*shape)
    return news_corpus(*shape)


def rss_mb():
    """The process's resident memory now, in MB (Linux; else its peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mlp_checkpoints_nbytes(X, y):
    """One fold's Adam state (weights and two moments) at each epoch's start."""
    estimator = mlp_estimator()
    units = [X.shape[1], *estimator.hidden_layer_sizes, len(np.unique(y))]
    n_params = sum(a * b + b for a, b in zip(units[:-1], units[1:], strict=True))
    return 3 * n_params * 8 * estimator.max_iter


def data_nbytes(X):
    if sp.issparse(X):
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    if X.dtype == object:
        return sum(len(d) for d in X)
    return X.nbytes


# --------------------------------------------------------------------------
# Methods (in the worker process)
# --------------------------------------------------------------------------


def ridge_search(method, splits):
    from sklearn.linear_model import Ridge, RidgeCV
    from sklearn.model_selection import GridSearchCV

    from skhypergrad import HypergradSearchCV

    mse = "neg_mean_squared_error"
    grid = np.logspace(np.log10(ALPHAS[0]), np.log10(ALPHAS[1]), N_GRID)
    if method == "HypergradSearchCV":
        return HypergradSearchCV(
            Ridge(), {"alpha": ALPHAS}, scoring=mse, cv=splits, refit=False
        )
    if method == "GridSearchCV":
        return GridSearchCV(
            Ridge(), {"alpha": grid}, scoring=mse, cv=splits, refit=False
        )
    return RidgeCV(alphas=grid, cv=splits, scoring=mse)


def mlp_estimator():
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=(32,),
        max_iter=10,
        batch_size=200,
        random_state=0,
        n_iter_no_change=100,
    )


def mlp_search(method, splits):
    from sklearn.model_selection import GridSearchCV

    from skhypergrad import HypergradSearchCV

    ranges = {"alpha": (1e-5, 1e-1), "learning_rate_init": (1e-4, 1e-2)}
    if method == "HypergradSearchCV":
        return HypergradSearchCV(
            mlp_estimator(), ranges, scoring="neg_log_loss", cv=splits, refit=False
        )
    grid = {
        name: np.logspace(np.log10(low), np.log10(high), 5)
        for name, (low, high) in ranges.items()
    }
    return GridSearchCV(
        mlp_estimator(), grid, scoring="neg_log_loss", cv=splits, refit=False
    )


def text_pipeline(C=1.0):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(), LogisticRegression(C=C, max_iter=1000))


def text_search(method, splits):
    """The text row: its speed is the logistic solver's on sparse X."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    from skhypergrad import HypergradSearchCV

    Cs = np.logspace(-2, 3, N_GRID)
    if method == "HypergradSearchCV":
        return HypergradSearchCV(
            text_pipeline(),
            {"logisticregression__C": (1e-2, 1e3)},
            scoring="neg_log_loss",
            cv=splits,
            refit=False,
        )
    if method == "LogisticRegressionCV":
        return make_pipeline(
            TfidfVectorizer(),
            LogisticRegressionCV(
                Cs=Cs, cv=splits, scoring="neg_log_loss", max_iter=1000
            ),
        )
    return GridSearchCV(
        text_pipeline(),
        {"logisticregression__C": Cs},
        scoring="neg_log_loss",
        cv=splits,
        refit=False,
    )


def chosen(row, search):
    if row.startswith("ridge"):
        alpha = getattr(search, "alpha_", None)
        return {
            "alpha": float(alpha if alpha is not None else search.best_params_["alpha"])
        }
    if row == "text-logistic" and hasattr(search, "steps"):
        return {"logisticregression__C": float(search.steps[-1][1].C_[0])}
    return {k: float(v) for k, v in search.best_params_.items()}


def yardstick(row, X, y, splits, params):
    """The CV loss of the chosen point, the same way for every method."""
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    if row.startswith("ridge"):
        from sklearn.linear_model import Ridge

        from skhypergrad import cross_val_hypergrad

        loss, _ = cross_val_hypergrad(Ridge(), X, y, params=params, cv=splits)
        return loss
    estimator = mlp_estimator() if row == "mlp" else text_pipeline()
    estimator = clone(estimator).set_params(**params)
    return -cross_val_score(estimator, X, y, cv=splits, scoring="neg_log_loss").mean()


def worker(row, method, size):
    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")
    X, y = make_data(row, size)
    splits = splits_of(len(y))
    make = {"mlp": mlp_search, "text-logistic": text_search}.get(row, ridge_search)
    search = make(method, splits)
    # Imports (the search's module included) and data: what the search adds
    # to the process is its peak RSS minus this.
    imports_mb = rss_mb()
    with threadpool_limits(limits=1):
        start = time.perf_counter()
        search.fit(X, y)
        seconds = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        params = chosen(row, search)
        loss = yardstick(row, X, y, splits, params)
    n_points = (
        len(search.cv_results_["params"]) if hasattr(search, "cv_results_") else N_GRID
    )
    result = dict(
        row=row,
        method=method,
        size=size,
        seconds=seconds,
        peak_mb=peak_mb,
        imports_mb=imports_mb,
        data_mb=data_nbytes(X) / 2**20,
        params=params,
        cv_loss=float(loss),
        points=n_points,
    )
    if row == "mlp":
        result["checkpoints_mb"] = mlp_checkpoints_nbytes(X, y) / 2**20
    print(json.dumps(result))


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def run(rows, size, repeat, baseline=None, only=None):
    runs = {}
    for _ in range(repeat):
        for row in rows:
            methods = [
                (method, None) for method in METHODS[row] if not only or method in only
            ]
            if baseline is not None:
                methods.insert(1, ("HypergradSearchCV", baseline))
            for method, path in methods:
                env = None
                if path is not None:
                    env = dict(os.environ, PYTHONPATH=path)
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", row, method, size],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                if path is not None:
                    method = result["method"] = "HypergradSearchCV (baseline)"
                print(
                    f"  {row} {method}: {result['seconds']:.1f} s, "
                    f"{result['peak_mb']:.0f} MB",
                    file=sys.stderr,
                )
                runs.setdefault((row, method), []).append(result)
    table = []
    for results in runs.values():
        times = [r["seconds"] for r in results]
        first = dict(results[0])
        first.update(
            seconds=min(times),
            spread=max(times) - min(times),
            repeats=len(results),
        )
        # Memory: the run of highest peak.
        highest = max(results, key=lambda r: r["peak_mb"])
        first.update(peak_mb=highest["peak_mb"], imports_mb=highest["imports_mb"])
        table.append(first)
    return table


def print_table(table):
    print(
        "| row | method | time (s), min | spread (s) | time / Hypergrad | points "
        "| chosen | CV loss | peak RSS (MB) | data (MB) |"
    )
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in table:
        reference = next(
            t["seconds"]
            for t in table
            if t["row"] == r["row"] and t["method"] == "HypergradSearchCV"
        )
        params = ", ".join(
            f"{k.split('__')[-1]}={v:.3g}" for k, v in r["params"].items()
        )
        print(
            f"| {r['row']} ({r['size']}) | {r['method']} | {r['seconds']:.2f} | "
            f"{r['spread']:.2f} | {r['seconds'] / reference:.1f}x | {r['points']} | "
            f"{params} | {r['cv_loss']:.6g} | {r['peak_mb']:.0f} | "
            f"{r['data_mb']:.1f} |"
        )
    print_memory_table([r for r in table if r["row"] == "mlp"])


def print_memory_table(table):
    """The MLP row's goal: added memory <= 2 x (sparse input + checkpoints)."""
    if not table:
        return
    print()
    print(
        "| row | method | peak RSS (MB) | imports + data (MB) | added (MB) "
        "| sparse input (MB) | checkpoints (MB) | added / (input + checkpoints) "
        "| peak / (input + checkpoints) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in table:
        goal = r["data_mb"] + r["checkpoints_mb"]
        added = r["peak_mb"] - r["imports_mb"]
        print(
            f"| {r['row']} ({r['size']}) | {r['method']} | {r['peak_mb']:.0f} | "
            f"{r['imports_mb']:.0f} | {added:.0f} | "
            f"{r['data_mb']:.1f} | {r['checkpoints_mb']:.0f} | "
            f"{added / goal:.2f} | {r['peak_mb'] / goal:.2f} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", nargs="+", choices=list(SIZES), default=list(SIZES)[:4]
    )
    parser.add_argument("--size", choices=["quick", "medium", "full"], default="quick")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--output", help="also write the rows as JSON to this path")
    parser.add_argument(
        "--baseline",
        help="also time HypergradSearchCV from the skhypergrad of this source "
        "tree (a checkout of main), interleaved with the others",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        help="run only these methods (HypergradSearchCV is always run: the "
        "ratios are to it)",
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    missing = [row for row in args.rows if args.size not in SIZES[row]]
    if missing:
        parser.error(f"--size {args.size} is not defined for {', '.join(missing)}")
    only = None if not args.methods else {"HypergradSearchCV", *args.methods}
    table = run(args.rows, args.size, args.repeat, args.baseline, only)
    print(
        f"size={args.size}, repeat={args.repeat}, single-threaded, each run in "
        "its own process"
    )
    print_table(table)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(table, f, indent=2)


if __name__ == "__main__":
    main()

"""Tuning LogisticRegression's C: HypergradSearchCV against LogisticRegressionCV.

For each dataset, every method searches C over (1e-4, 1e4) on the same
StratifiedKFold(5, shuffle=True, random_state=0) splits, in this one process,
scored by the CV log-loss:

- HypergradSearchCV (a coarse pass, then gradient steps on the CV log-loss),
- LogisticRegressionCV(Cs=20) on a 20-point log grid (a warm-started lbfgs
  path at its default tol=1e-4),
- with ``--methods``, also GridSearchCV on the same 20 points, or
  LogisticRegressionCV at a tighter ``tol`` (1e-5 or 1e-6), which is what
  it takes to approach the CV log-loss of exact solves where its default
  stops far from the optimum.

The datasets (dense ones standardized once, up front):

- ``breast_cancer`` (569 x 30), ``digits`` (1,797 x 64, 10 classes),
  ``classification`` (make_classification 5,000 x 100),
- ``tall``: make_classification 100,000 x 50, 5 classes,
- ``text``: a synthetic news-like corpus (20 classes, 20,000 documents,
  Zipfian vocabulary of about 50,000 terms, see :func:`news_like`), tf-idf
  of the 5,000 most frequent terms, sparse,
- ``text_full``: the same corpus on its full vocabulary, sparse.

``--quick`` shrinks ``tall`` to 20,000 rows and the corpora to 5,000
documents. Methods are interleaved (one run of each, ``--repeat`` times) and
each is timed as the best of its runs, with the spread (slowest / fastest).
``--threads 1`` holds BLAS and OpenMP to one thread (threadpoolctl);
``default`` leaves them. The C each method chooses is then re-scored by one
exact cross-validation on the same splits: scikit-learn's newton-cholesky at
tol=1e-10 for dense data, and for the sparse corpora (whose 100,000 to
1,000,000 parameters newton-cholesky cannot factorize) skhypergrad's own
exact solves (``cross_val_hypergrad``, whose coefficients the tests check
against scikit-learn's). ``--memory`` also runs each method once in a fresh
process and reports its peak resident memory (``ru_maxrss``) and that of
the data alone.

Usage::

    python benchmarks/bench_logistic.py [--datasets digits ...] [--quick]
        [--threads 1|default] [--repeat 3] [--memory] [--verbose]
        [--output results.json]
"""

import argparse
import functools
import inspect
import json
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skhypergrad import HypergradSearchCV, cross_val_hypergrad

LOW, HIGH, N_POINTS = 1e-4, 1e4, 20
MAX_ITER = 1000
DATASETS = ["breast_cancer", "digits", "classification", "tall", "text", "text_full"]


def news_like(n_documents, max_features=None, n_terms=50_000, n_classes=20, seed=0):
    """Tf-idf of a synthetic news-like corpus, as a CSR matrix, and labels.

    Term ``r`` (from 1) of the vocabulary has the Zipfian frequency
    ``1 / (r + 2.7)**1.07``. Each class draws 2% of the vocabulary as its
    topic, whose terms get a weight of the square root of their frequency;
    a document of the class draws its tokens (a log-normal number, median
    120) 88% from the common distribution and 12% from its topic. With
    ``max_features``, only the most frequent terms are kept (as
    ``TfidfVectorizer(max_features=...)``).
    """
    rng = np.random.default_rng(seed)
    common = 1.0 / (np.arange(1, n_terms + 1) + 2.7) ** 1.07
    common /= common.sum()
    labels = rng.integers(n_classes, size=n_documents)
    lengths = np.maximum(rng.lognormal(np.log(120), 0.6, n_documents), 5).astype(int)
    rows, columns = [], []
    for label in range(n_classes):
        topic = np.zeros(n_terms)
        terms = rng.choice(n_terms, size=n_terms // 50, replace=False)
        topic[terms] = np.sqrt(common[terms])
        cumulative = np.cumsum(0.88 * common + 0.12 * topic / topic.sum())
        documents = np.flatnonzero(labels == label)
        document_of_token = np.repeat(documents, lengths[documents])
        draws = rng.random(len(document_of_token)) * cumulative[-1]
        rows.append(document_of_token)
        columns.append(np.minimum(np.searchsorted(cumulative, draws), n_terms - 1))
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    counts = sp.csr_matrix(
        (np.ones(len(rows)), (rows, columns)), shape=(n_documents, n_terms)
    )
    counts.sum_duplicates()
    counts = counts[:, np.flatnonzero(counts.getnnz(axis=0))]
    if max_features is not None:
        frequency = np.asarray(counts.sum(axis=0)).ravel()
        counts = counts[
            :, np.sort(np.argsort(-frequency, kind="stable")[:max_features])
        ]
    return TfidfTransformer().fit_transform(counts).tocsr(), labels


def load(name, quick=False):
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
    elif name == "digits":
        X, y = load_digits(return_X_y=True)
    elif name == "classification":
        X, y = make_classification(5000, 100, random_state=0)
    elif name == "tall":
        X, y = make_classification(
            20_000 if quick else 100_000,
            50,
            n_informative=10,
            n_classes=5,
            random_state=0,
        )
    elif name in ("text", "text_full"):
        return news_like(5_000 if quick else 20_000, 5_000 if name == "text" else None)
    else:
        raise ValueError(f"unknown dataset {name!r}")
    return StandardScaler().fit_transform(X), y


def splits_of(X, y):
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    return list(cv.split(X, y))


def run_hypergrad(X, y, splits, verbose=0):
    search = HypergradSearchCV(
        LogisticRegression(max_iter=MAX_ITER),
        {"C": (LOW, HIGH)},
        scoring="neg_log_loss",
        cv=splits,
        verbose=verbose,
    ).fit(X, y)
    return search.best_params_["C"], len(search.cv_results_["params"])


def run_logistic_cv(X, y, splits, tol=1e-4):
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
        tol=tol,
        **options,
    ).fit(X, y)
    return float(np.ravel(model.C_)[0]), N_POINTS


def run_grid(X, y, splits):
    search = GridSearchCV(
        LogisticRegression(max_iter=MAX_ITER),
        {"C": np.geomspace(LOW, HIGH, N_POINTS)},
        scoring="neg_log_loss",
        cv=splits,
    ).fit(X, y)
    return search.best_params_["C"], N_POINTS


METHODS = {
    "HypergradSearchCV": run_hypergrad,
    "LogisticRegressionCV (20)": run_logistic_cv,
    # Its lbfgs path at tighter tolerances: what it costs to reach the CV
    # log-loss of exact solves where its default tol=1e-4 stops far from the
    # optimum (large C on text).
    "LogisticRegressionCV (20, tol=1e-5)": functools.partial(run_logistic_cv, tol=1e-5),
    "LogisticRegressionCV (20, tol=1e-6)": functools.partial(run_logistic_cv, tol=1e-6),
    "GridSearchCV (20)": run_grid,
}


def exact_cv(C, X, y, splits):
    """CV log-loss (and accuracy, for dense data) of C at the exact optimum."""
    if sp.issparse(X):
        loss, _ = cross_val_hypergrad(
            LogisticRegression(C=C, max_iter=MAX_ITER), X, y, params={}, cv=splits
        )
        return float(loss), np.nan
    scores = cross_validate(
        LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10, max_iter=100),
        X,
        y,
        cv=splits,
        scoring=["neg_log_loss", "accuracy"],
    )
    return -scores["test_neg_log_loss"].mean(), scores["test_accuracy"].mean()


def benchmark(name, methods, repeat, quick):
    X, y = load(name, quick)
    splits = splits_of(X, y)
    seconds = {method: [] for method in methods}
    chosen = {}
    warned = dict.fromkeys(methods, 0)
    for _ in range(repeat):
        # Interleaved: a busy moment of the shared machine hits every method.
        for method in methods:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                start = time.perf_counter()
                chosen[method] = METHODS[method](X, y, splits)
                seconds[method].append(time.perf_counter() - start)
            warned[method] = sum(
                issubclass(w.category, ConvergenceWarning) for w in caught
            )
    rows = []
    for method in methods:
        C, n_points = chosen[method]
        log_loss, accuracy = exact_cv(C, X, y, splits)
        rows.append(
            {
                "dataset": name,
                "shape": list(X.shape),
                "sparse": sp.issparse(X),
                "n_classes": len(np.unique(y)),
                "method": method,
                "seconds": min(seconds[method]),
                "spread": max(seconds[method]) / min(seconds[method]),
                "runs": seconds[method],
                "C": float(C),
                "points": n_points,
                "cv_log_loss": float(log_loss),
                "cv_accuracy": float(accuracy),
                "convergence_warnings": warned[method],
            }
        )
    reference = rows[[r["method"] for r in rows].index("LogisticRegressionCV (20)")]
    for row in rows:
        row["time_ratio"] = row["seconds"] / reference["seconds"]
        row["log_loss_difference"] = row["cv_log_loss"] - reference["cv_log_loss"]
    return rows


def child(name, method, quick, threads):
    """Run one method once in this fresh process; print its peak memory."""
    with threadpool_limits(limits=threads):
        X, y = load(name, quick)
        splits = splits_of(X, y)
        data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            METHODS[method](X, y, splits)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"data_mb": data, "peak_mb": peak}))


def peak_memory(name, method, quick, threads):
    command = [sys.executable, __file__, "--child", name, method]
    command += ["--threads", str(threads or "default")] + (["--quick"] if quick else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(rows):
    memory = any("peak_mb" in row for row in rows)
    lines = [
        "| dataset | method | time (s) | spread | ratio | points | C | CV log-loss "
        "| CV accuracy |" + (" peak MB | ratio |" if memory else ""),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|---:|" if memory else ""),
    ]
    for row in rows:
        shape = "x".join(str(n) for n in row["shape"])
        line = (
            f"| {row['dataset']} {shape}{' sparse' if row['sparse'] else ''} | "
            f"{row['method']} | {row['seconds']:.2f} | {row['spread']:.2f} | "
            f"{row['time_ratio']:.2f} | {row['points']} | {row['C']:.4g} | "
            f"{row['cv_log_loss']:.5f} | {row['cv_accuracy']:.4f} |"
        )
        if memory:
            line += f" {row['peak_mb']:.0f} | {row['memory_ratio']:.2f} |"
        lines.append(line)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["breast_cancer", "digits", "classification", "tall", "text"],
        choices=DATASETS,
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["HypergradSearchCV", "LogisticRegressionCV (20)"],
        choices=list(METHODS),
    )
    parser.add_argument("--quick", action="store_true", help="smaller tall and text")
    parser.add_argument("--threads", default="1", help="1 (default) or 'default'")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each method")
    parser.add_argument(
        "--memory", action="store_true", help="peak memory, a process per method"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="HypergradSearchCV prints each point it evaluates, with the time",
    )
    parser.add_argument("--output", help="write the results as JSON to this path")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = None if args.threads == "default" else int(args.threads)
    if args.verbose:
        METHODS["HypergradSearchCV"] = functools.partial(run_hypergrad, verbose=1)
    if args.child:
        child(*args.child, args.quick, threads)
        return
    if "LogisticRegressionCV (20)" not in args.methods:
        args.methods.append("LogisticRegressionCV (20)")

    rows = []
    for name in args.datasets:
        with threadpool_limits(limits=threads):
            dataset_rows = benchmark(name, args.methods, args.repeat, args.quick)
        if args.memory:
            for row in dataset_rows:
                row.update(peak_memory(name, row["method"], args.quick, threads))
            reference = dataset_rows[
                [r["method"] for r in dataset_rows].index("LogisticRegressionCV (20)")
            ]
            for row in dataset_rows:
                row["memory_ratio"] = row["peak_mb"] / reference["peak_mb"]
        rows += dataset_rows
        print(markdown(dataset_rows), flush=True)
    print()
    print(f"threads: {args.threads}")
    print(markdown(rows))
    if args.output:
        with open(args.output, "w") as file:
            json.dump(rows, file, indent=2)


if __name__ == "__main__":
    main()

"""The default BLAS threads against one thread, for each model's hypergradient.

Each case runs ``cross_val_hypergrad`` in a fresh process twice: with the
environment as it is (BLAS picks its threads: one per core) and with
``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1``; the table
gives the median of ``--repeat`` runs of each and their ratio. The models
hold BLAS to one thread while they solve and differentiate, so the ratio
should be about 1: a search in the default environment is not slower than
one run single-threaded.

Cases (digits, standardized, KFold(4)): MLPClassifier(hidden_layer_sizes=(64,),
max_iter=100, random_state=0) with ``alpha`` and ``learning_rate_init``;
LogisticRegression with ``C``; Ridge with ``alpha``.

Usage::

    python benchmarks/bench_threads.py [--repeat 3]
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

CASE = r"""
import json, time, warnings
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from skhypergrad import cross_val_hypergrad

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
cases = {
    "mlp": (MLPClassifier(hidden_layer_sizes=(64,), max_iter=100, random_state=0),
            {"alpha": 1e-4, "learning_rate_init": 1e-3}),
    "logistic": (LogisticRegression(max_iter=1000), {"C": 1.0}),
    "ridge": (Ridge(), {"alpha": 1.0}),
}
estimator, params = cases[CASE_NAME]
warnings.simplefilter("ignore", ConvergenceWarning)
start = time.perf_counter()
cross_val_hypergrad(estimator, X, y.astype(float) if CASE_NAME == "ridge" else y,
                    params=params, cv=KFold(4))
print(json.dumps(time.perf_counter() - start))
"""

SINGLE = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# The variables this machine may set for old OpenBLAS builds change which
# kernel runs; both runs keep them as they are.


def run(case, single):
    env = dict(os.environ)
    for key in SINGLE:
        env.pop(key, None)
    if single:
        env.update(SINGLE)
    code = CASE.replace("CASE_NAME", repr(case))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=["mlp", "logistic", "ridge"])
    args = parser.parse_args()
    print("| case | default threads (s) | one thread (s) | ratio |")
    print("|---|---:|---:|---:|")
    for case in args.cases:
        times = {True: [], False: []}
        for _ in range(args.repeat):  # interleaved, so that load changes hit both
            for single in (False, True):
                times[single].append(run(case, single))
        default, one = np.median(times[False]), np.median(times[True])
        spread = (
            f" [{min(times[False]):.2f}-{max(times[False]):.2f}]"
            f" / [{min(times[True]):.2f}-{max(times[True]):.2f}]"
        )
        print(f"| {case} | {default:.2f} | {one:.2f} | {default / one:.2f} |{spread}")


if __name__ == "__main__":
    main()

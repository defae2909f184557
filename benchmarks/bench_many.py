"""Many hyperparameters: a penalty per feature (FeatureWeights) on held-out data.

Each task draws ``--repeats`` random train/test splits (10 by default, 3
with ``--quick``); every method is fitted on the training half (its own
cross-validation inside it, 5 folds) and scored on the test half. The
tables give the mean ± standard deviation of the held-out loss over the
splits, the mean ratio to the first baseline (RidgeCV or
LogisticRegressionCV) with the number of splits where the method beats it,
and the median fitting time. Methods run one after the other on each split,
interleaved, in one process; the machine is shared, so times are indicative.

Tasks (the issue's table):

- ``sparse``: ``make_regression``, 400 rows split half/half, 60 features of
  which 8 informative, noise 20. HypergradSearchCV tunes 60 log-weights of
  ``FeatureWeights`` before a Ridge; against RidgeCV, LassoCV, ElasticNetCV,
  ARDRegression, Optuna's TPE on the same 60 log-weights for the same wall
  time as the hypergradient search, and the oracle (RidgeCV on the 8
  informative features);
- ``classification``: ``make_classification``, 600 rows half/half, 100
  features of which 8 informative; LogisticRegression with 100 weights
  against LogisticRegressionCV (L2, and L1 with saga) and Optuna's TPE;
- ``mixed``: numeric and one-hot columns, one weight per original column
  (``groups=``), against the same pipeline with one alpha;
- ``real``: diabetes (Ridge), breast_cancer and digits (LogisticRegression),
  70/30 splits, against RidgeCV / LogisticRegressionCV.

``--cost`` also times one hypergradient with 1,000 weights against the
scalar one (Ridge 2,000 x 1,000, LogisticRegression 5,000 x 1,000), after
and including each fold's preparation; ``--memory`` measures the peak
memory of each method of the ``sparse`` task in a process of its own.

Run ``python benchmarks/bench_many.py --quick`` (3 splits, without the
unpenalized logistic search, the slowest method), or without ``--quick``
for the full size; ``--tasks sparse mixed`` runs some tasks.
"""

import argparse
import inspect
import json
import multiprocessing
import resource
import time
import warnings

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    make_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    ARDRegression,
    ElasticNetCV,
    LassoCV,
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    RidgeCV,
)
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.model_selection import (
    KFold,
    StratifiedKFold,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skhypergrad import FeatureWeights, HypergradSearchCV

LOW, HIGH = 1e-3, 1e3
# Set by --quick: the unpenalized logistic search, the slowest method (its
# weights run to the top of the range, where the solves are ill-conditioned),
# is left out.
QUICK = False
ALPHAS = np.logspace(-3, 5, 50)
N_ITER = 100


def _cv(classification, seed):
    kind = StratifiedKFold if classification else KFold
    return kind(5, shuffle=True, random_state=seed)


# --- Methods ----------------------------------------------------------------


def weighted_search(model, scoring, groups=None, weights_penalty="auto", scaler=True):
    """HypergradSearchCV over the weights of FeatureWeights before ``model``."""

    def fit(X, y, cv):
        steps = [StandardScaler()] if scaler else []
        pipe = make_pipeline(*steps, FeatureWeights(groups=groups), model)
        return HypergradSearchCV(
            pipe,
            {"featureweights__weights": (LOW, HIGH)},
            scoring=scoring,
            cv=cv,
            n_iter=N_ITER,
            weights_penalty=weights_penalty,
        ).fit(X, y)

    return fit


def ridge_cv(X, y, cv):
    return make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS, cv=cv)).fit(X, y)


def lasso_cv(X, y, cv):
    return make_pipeline(StandardScaler(), LassoCV(cv=cv, max_iter=20000)).fit(X, y)


def elastic_net_cv(X, y, cv):
    return make_pipeline(
        StandardScaler(),
        ElasticNetCV(
            l1_ratio=[0.1, 0.5, 0.7, 0.9, 0.95, 0.99, 1.0], cv=cv, max_iter=20000
        ),
    ).fit(X, y)


def ard(X, y, cv):
    return make_pipeline(StandardScaler(), ARDRegression()).fit(X, y)


def logistic_cv(penalty):
    def fit(X, y, cv):
        options = {"Cs": 20, "cv": cv, "scoring": "neg_log_loss", "max_iter": 5000}
        parameters = inspect.signature(LogisticRegressionCV).parameters
        if "use_legacy_attributes" in parameters:
            options["use_legacy_attributes"] = False  # scikit-learn >= 1.9
        if penalty == "l1":
            options["solver"] = "saga"
            if "l1_ratios" in parameters:
                options["l1_ratios"] = (1.0,)
            else:
                options["penalty"] = "l1"
        elif "l1_ratios" in parameters:
            options["l1_ratios"] = (0.0,)
        return make_pipeline(StandardScaler(), LogisticRegressionCV(**options)).fit(
            X, y
        )

    return fit


def optuna_tpe(model, scoring, seconds_of):
    """Optuna's TPE on the same log-weights, for the hypergradient's wall time."""

    def fit(X, y, cv):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pipe = make_pipeline(StandardScaler(), FeatureWeights(), model)
        n = X.shape[1]

        def objective(trial):
            weights = [
                trial.suggest_float(f"w{j}", LOW, HIGH, log=True) for j in range(n)
            ]
            pipe.set_params(featureweights__weights=np.array(weights))
            return cross_val_score(pipe, X, y, cv=cv, scoring=scoring).mean()

        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=0)
        )
        study.optimize(objective, timeout=seconds_of["hypergrad"])
        best = np.array([study.best_params[f"w{j}"] for j in range(n)])
        fit.n_trials = len(study.trials)
        return pipe.set_params(featureweights__weights=best).fit(X, y)

    return fit


# --- Tasks ------------------------------------------------------------------


def sparse_task(seed):
    X, y = make_regression(400, 60, n_informative=8, noise=20.0, random_state=seed)
    return X, y, False


def classification_task(seed):
    X, y = make_classification(
        600, 100, n_informative=8, n_redundant=0, random_state=seed
    )
    return X, y, True


def mixed_task(seed):
    """6 numeric columns (2 informative), 6 categorical ones of 5 levels (2)."""
    rng = np.random.RandomState(seed)
    n = 400
    numeric = rng.normal(size=(n, 6))
    categories = rng.randint(0, 5, size=(n, 6))
    effects = rng.normal(scale=3.0, size=(6, 5))
    effects[2:] = 0.0
    y = (
        numeric[:, 0] * 4.0
        - numeric[:, 1] * 3.0
        + sum(effects[k][categories[:, k]] for k in range(6))
        + rng.normal(scale=3.0, size=n)
    )
    return np.hstack([numeric, categories]), y, False


def mixed_preprocessing():
    return ColumnTransformer(
        [
            ("numeric", StandardScaler(), list(range(6))),
            (
                "categorical",
                OneHotEncoder(categories=[list(range(5))] * 6),
                list(range(6, 12)),
            ),
        ],
        sparse_threshold=0,
    )


MIXED_GROUPS = np.concatenate([np.arange(6), np.repeat(np.arange(6, 12), 5)])


def mixed_weighted(X, y, cv):
    pipe = make_pipeline(
        mixed_preprocessing(), FeatureWeights(groups=MIXED_GROUPS), Ridge()
    )
    return HypergradSearchCV(
        pipe,
        {"featureweights__weights": (LOW, HIGH)},
        scoring="neg_mean_squared_error",
        cv=cv,
        n_iter=N_ITER,
    ).fit(X, y)


def mixed_one_alpha(X, y, cv):
    pipe = make_pipeline(mixed_preprocessing(), Ridge())
    return HypergradSearchCV(
        pipe, {"ridge__alpha": (1e-3, 1e5)}, scoring="neg_mean_squared_error", cv=cv
    ).fit(X, y)


def real_task(name):
    def load(seed):
        loader = {
            "diabetes": load_diabetes,
            "breast_cancer": load_breast_cancer,
            "digits": load_digits,
        }[name]
        X, y = loader(return_X_y=True)
        return X, y, name != "diabetes"

    return load


def regression_methods(seconds_of):
    mse = "neg_mean_squared_error"
    return {
        "RidgeCV": ridge_cv,
        "hypergrad": weighted_search(Ridge(), mse),
        "hypergrad, weights_penalty=0": weighted_search(
            Ridge(), mse, weights_penalty=0.0
        ),
        "LassoCV": lasso_cv,
        "ElasticNetCV": elastic_net_cv,
        "ARDRegression": ard,
        "Optuna TPE (same time)": optuna_tpe(Ridge(), mse, seconds_of),
    }


def classification_methods(seconds_of, optuna=True, l1=True):
    nll = "neg_log_loss"
    # newton-cholesky: the refit, and each of TPE's trials, converges where lbfgs
    # takes max_iter on weights of 1e3.
    model = LogisticRegression(solver="newton-cholesky", max_iter=1000)
    methods = {
        "LogisticRegressionCV l2": logistic_cv("l2"),
        "hypergrad": weighted_search(model, nll),
    }
    if optuna and not QUICK:
        # The search unprotected against overfitting its CV loss.
        methods["hypergrad, weights_penalty=0"] = weighted_search(
            model, nll, weights_penalty=0.0
        )
    if l1:
        methods["LogisticRegressionCV l1 (saga)"] = logistic_cv("l1")
    if optuna:
        methods["Optuna TPE (same time)"] = optuna_tpe(model, nll, seconds_of)
    return methods


def held_out_loss(estimator, X, y, classification):
    if classification:
        return log_loss(y, estimator.predict_proba(X), labels=np.unique(y))
    return mean_squared_error(y, estimator.predict(X))


def run_task(name, load, methods_of, repeats):
    """Every method on every split; the rows of the table."""
    losses, seconds, trials = {}, {}, {}
    for seed in range(repeats):
        X, y, classification = load(seed)
        if name == "sparse":
            # The oracle knows which 8 features are informative.
            _, _, coef = make_regression(
                400, 60, n_informative=8, noise=20.0, coef=True, random_state=seed
            )
            informative = np.flatnonzero(coef)
        X_train, X_test, y_train, y_test = train_test_split(
            X,
            y,
            test_size=0.5 if name in ("sparse", "classification", "mixed") else 0.3,
            random_state=seed,
            stratify=y if classification else None,
        )
        cv = _cv(classification, seed)
        seconds_of = {}
        methods = methods_of(seconds_of)
        if name == "sparse":
            methods["oracle ridge (8 informative)"] = _oracle(informative)
        for method, fit in methods.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", UserWarning)
                start = time.perf_counter()
                estimator = fit(X_train, y_train, cv)
                elapsed = time.perf_counter() - start
            if method == "hypergrad":
                seconds_of["hypergrad"] = elapsed
            losses.setdefault(method, []).append(
                held_out_loss(estimator, X_test, y_test, classification)
            )
            seconds.setdefault(method, []).append(elapsed)
            if hasattr(fit, "n_trials"):
                trials.setdefault(method, []).append(fit.n_trials)
        print(f"  {name}: split {seed + 1}/{repeats} done", flush=True)
    baseline = next(iter(losses))
    rows = []
    for method, values in losses.items():
        values = np.array(values)
        ratio = values / np.array(losses[baseline])
        rows.append(
            {
                "task": name,
                "method": method,
                "mean": float(values.mean()),
                "std": float(values.std()),
                "ratio": float(ratio.mean()),
                "wins": int(np.sum(ratio < 1)),
                "splits": len(values),
                "seconds": float(np.median(seconds[method])),
                "optuna_trials": float(np.mean(trials[method]))
                if method in trials
                else None,
            }
        )
    return rows


def _oracle(informative):
    def fit(X, y, cv):
        return make_pipeline(
            ColumnTransformer([("informative", "passthrough", informative)]),
            StandardScaler(),
            RidgeCV(alphas=ALPHAS, cv=cv),
        ).fit(X, y)

    return fit


def real_methods(name):
    def methods(seconds_of):
        if name == "diabetes":
            mse = "neg_mean_squared_error"
            return {
                "RidgeCV": ridge_cv,
                "hypergrad": weighted_search(Ridge(), mse),
            }
        return classification_methods(seconds_of, optuna=False, l1=False)

    return methods


def mixed_methods(seconds_of):
    return {
        "one alpha (HypergradSearchCV)": mixed_one_alpha,
        "RidgeCV (one-hot, one alpha)": lambda X, y, cv: make_pipeline(
            mixed_preprocessing(), RidgeCV(alphas=ALPHAS, cv=cv)
        ).fit(X, y),
        "hypergrad, a weight per column group": mixed_weighted,
    }


# --- Cost of one hypergradient -----------------------------------------------


def cost(quick):
    """Seconds of a hypergradient with 1,000 weights against the scalar one."""
    from skhypergrad._objective import CrossValObjective

    rows = []
    sizes = {
        "Ridge": (make_regression, (2000, 1000), Ridge(), "alpha", 10.0),
        "LogisticRegression": (
            make_classification,
            (5000, 1000),
            LogisticRegression(),
            "C",
            0.1,
        ),
    }
    for model_name, (make, shape, model, scalar, value) in sizes.items():
        if quick:
            shape = (shape[0] // 4, shape[1] // 4)
        X, y = make(*shape, random_state=0)
        splits = list(KFold(5).split(X))
        pipe = make_pipeline(FeatureWeights(), model)
        step = type(model).__name__.lower()
        times = {}
        # Interleaved: scalar, vector, scalar, vector.
        for kind in ["scalar", "vector"] * 2:
            names = [f"{step}__{scalar}"]
            if kind == "vector":
                names.append("featureweights__weights")
            objective = CrossValObjective(pipe, X, y, splits, names)
            start = time.perf_counter()
            objective.prepare()
            prepared = time.perf_counter() - start
            rng = np.random.RandomState(0)
            evaluations = []
            for i in range(3):
                point = {names[0]: value * (1.0 + 0.1 * i)}
                if kind == "vector":
                    point[names[1]] = np.exp(rng.normal(0.0, 0.3, X.shape[1]))
                start = time.perf_counter()
                objective.evaluate(point, differentiate=True)
                evaluations.append(time.perf_counter() - start)
            best = times.setdefault(kind, [np.inf, np.inf])
            best[0] = min(best[0], prepared)
            best[1] = min(best[1], min(evaluations))
        for kind, (prepared, evaluation) in times.items():
            rows.append(
                {
                    "model": model_name,
                    "shape": list(X.shape),
                    "hyperparameters": kind,
                    "prepare_seconds": prepared,
                    "hypergradient_seconds": evaluation,
                    "first_call_seconds": prepared + evaluation,
                }
            )
    return rows


# --- Memory -----------------------------------------------------------------


def _peak_of(method, queue):
    X, y, _ = sparse_task(0)
    methods = regression_methods({"hypergrad": 5.0})
    methods[method](X[:200], y[:200], _cv(False, 0))
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_memory():
    """Peak resident memory (MB) of each method of the sparse task, alone."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for method in regression_methods({"hypergrad": 5.0}):
        queue = context.Queue()
        process = context.Process(target=_peak_of, args=(method, queue))
        process.start()
        peak = queue.get()
        process.join()
        rows.append({"method": method, "peak_MB": peak})
    return rows


# --- Main -------------------------------------------------------------------


TASKS = {
    "sparse": (sparse_task, regression_methods),
    "classification": (classification_task, classification_methods),
    "mixed": (mixed_task, mixed_methods),
    "diabetes": (real_task("diabetes"), real_methods("diabetes")),
    "breast_cancer": (real_task("breast_cancer"), real_methods("breast_cancer")),
    "digits": (real_task("digits"), real_methods("digits")),
}


def print_table(rows):
    print(
        "| task | method | held-out loss (mean ± std) | ratio to baseline | "
        "wins | median seconds |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        trials = f" ({row['optuna_trials']:.0f} trials)" if row["optuna_trials"] else ""
        print(
            f"| {row['task']} | {row['method']}{trials} | {row['mean']:.4g} ± "
            f"{row['std']:.3g} | {row['ratio']:.3f} | {row['wins']}/{row['splits']} | "
            f"{row['seconds']:.2f} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 splits per task")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--output", default=None, help="write the rows as JSON")
    args = parser.parse_args()
    global QUICK
    QUICK = args.quick
    repeats = args.repeats or (3 if args.quick else 10)
    out = {"tasks": []}
    for name in args.tasks:
        load, methods = TASKS[name]
        out["tasks"].extend(run_task(name, load, methods, repeats))
    if out["tasks"]:
        print_table(out["tasks"])
    if args.cost:
        out["cost"] = cost(args.quick)
        print("\n| model | shape | hyperparameters | prepare (s) | hypergradient (s) |")
        print("|---|---|---|---|---|")
        for row in out["cost"]:
            print(
                f"| {row['model']} | {row['shape']} | {row['hyperparameters']} | "
                f"{row['prepare_seconds']:.2f} | {row['hypergradient_seconds']:.3f} |"
            )
    if args.memory:
        out["memory"] = peak_memory()
        print("\n| method (sparse task, one split) | peak memory (MB) |")
        print("|---|---|")
        for row in out["memory"]:
            print(f"| {row['method']} | {row['peak_MB']:.0f} |")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()

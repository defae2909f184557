"""Write the intersphinx inventories of the projects these docs link to.

The documentation is built with no network (``make docs`` must pass where
only package registries are reachable), so Sphinx cannot download the
``objects.inv`` of scikit-learn, NumPy, SciPy, joblib, dask and matplotlib.
Instead, ``conf.py`` points ``intersphinx_mapping`` at the small inventories
in this folder, written by this script. Each lists the objects the docs
(pages, docstrings and gallery code) refer to, with the page and anchor where
that project's own documentation has them: the same entries its full
``objects.inv`` holds. An object the docs start to refer to is added to
``PROJECTS`` below, and the inventories written again (``make docs`` fails
while a committed inventory differs from what this script writes)::

    python docs/intersphinx/make_inventories.py

The format is Sphinx's inventory version 2: four header lines, then
zlib-compressed lines ``name domain:role priority uri display-name``, where
``$`` at the end of ``uri`` stands for ``name`` and ``-`` for a display name
equal to ``name``.
"""

import zlib
from pathlib import Path

HERE = Path(__file__).parent

# project -> name and version for the header, base URL, the URL of an
# object's page relative to the base ("{name}": its full name; "$" in the
# anchor: the same), and the objects as (name, domain:role). Each of these
# projects documents every public function, class and method on a page of
# its own (scikit-learn's methods are on their class's page: none is listed).
PROJECTS = {
    "sklearn": {
        "project": "scikit-learn",
        "version": "stable",
        "url": "https://scikit-learn.org/stable/",
        "page": "modules/generated/{name}.html#$",
        "objects": [
            ("sklearn.datasets.load_breast_cancer", "py:function"),
            ("sklearn.datasets.load_diabetes", "py:function"),
            ("sklearn.exceptions.ConvergenceWarning", "py:class"),
            ("sklearn.linear_model.LogisticRegression", "py:class"),
            ("sklearn.linear_model.LogisticRegressionCV", "py:class"),
            ("sklearn.linear_model.Ridge", "py:class"),
            ("sklearn.linear_model.RidgeCV", "py:class"),
            ("sklearn.model_selection.GridSearchCV", "py:class"),
            ("sklearn.model_selection.KFold", "py:class"),
            ("sklearn.model_selection.RandomizedSearchCV", "py:class"),
            ("sklearn.model_selection.StratifiedKFold", "py:class"),
            ("sklearn.model_selection.cross_val_score", "py:function"),
            ("sklearn.model_selection.cross_validate", "py:function"),
            ("sklearn.neural_network.MLPClassifier", "py:class"),
            ("sklearn.neural_network.MLPRegressor", "py:class"),
            ("sklearn.pipeline.Pipeline", "py:class"),
            ("sklearn.pipeline.make_pipeline", "py:function"),
            ("sklearn.preprocessing.StandardScaler", "py:class"),
        ],
        # The glossary terms the docstrings that HypergradSearchCV inherits
        # from scikit-learn refer to.
        "terms": ["fit"],
    },
    "numpy": {
        "project": "NumPy",
        "version": "stable",
        "url": "https://numpy.org/doc/stable/",
        "page": "reference/generated/{name}.html#$",
        "objects": [
            ("numpy.argsort", "py:function"),
            ("numpy.geomspace", "py:function"),
            ("numpy.logspace", "py:function"),
            ("numpy.ndarray", "py:class"),
        ],
    },
    "scipy": {
        "project": "SciPy",
        "version": "stable",
        "url": "https://docs.scipy.org/doc/scipy/",
        "page": "reference/generated/{name}.html#$",
        "objects": [
            # The distributions are instances, documented as data.
            ("scipy.stats.loguniform", "py:data"),
            ("scipy.stats.uniform", "py:data"),
        ],
    },
    "joblib": {
        "project": "joblib",
        "version": "stable",
        "url": "https://joblib.readthedocs.io/en/stable/",
        "page": "generated/{name}.html#$",
        "objects": [
            ("joblib.Parallel", "py:class"),
            ("joblib.parallel_backend", "py:class"),
            ("joblib.parallel_config", "py:class"),
        ],
    },
    "dask": {
        "project": "Dask.distributed",
        "version": "stable",
        "url": "https://distributed.dask.org/en/stable/",
        "page": "api.html#$",
        "objects": [
            ("distributed.Client", "py:class"),
            ("distributed.LocalCluster", "py:class"),
        ],
    },
    "matplotlib": {
        "project": "Matplotlib",
        "version": "stable",
        "url": "https://matplotlib.org/stable/",
        "page": "api/_as_gen/{name}.html#$",
        "objects": [
            ("matplotlib.axes.Axes.contourf", "py:method"),
            ("matplotlib.axes.Axes.plot", "py:method"),
            ("matplotlib.figure.Figure.savefig", "py:method"),
            ("matplotlib.pyplot.show", "py:function"),
            ("matplotlib.pyplot.subplots", "py:function"),
        ],
    },
}


def inventory_lines(spec):
    """The lines of one project's inventory, sorted."""
    lines = []
    for name, role in spec["objects"]:
        lines.append(f"{name} {role} 1 {spec['page'].format(name=name)} -")
    for term in spec.get("terms", []):
        lines.append(f"{term} std:term -1 glossary.html#term-{term} -")
    return sorted(lines)


def is_current(path, spec):
    """Whether the inventory at ``path`` lists what ``spec`` lists."""
    if not path.exists():
        return False
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    body = zlib.decompress(data[header_end:]).decode()
    return body.splitlines() == inventory_lines(spec)


def write_inventory(path, spec):
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {spec['project']}\n"
        f"# Version: {spec['version']}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(line + "\n" for line in inventory_lines(spec))
    path.write_bytes(header.encode() + zlib.compress(body.encode(), 9))


def main():
    for key, spec in PROJECTS.items():
        path = HERE / f"{key}.inv"
        write_inventory(path, spec)
        print(f"wrote {path} ({len(spec['objects'])} objects)")


if __name__ == "__main__":
    main()

"""Run the snippets of the documentation's pages (``--doctest-glob='*.rst'``)."""

import matplotlib
import pytest

matplotlib.use("Agg")

# The pages only: not the Sphinx configuration, its extensions, or what a
# build generates here.
collect_ignore_glob = [
    "conf.py",
    "_ext/*",
    "intersphinx/*",
    "_build/*",
    "auto_examples/*",
    "gen_modules/*",
]


@pytest.fixture(autouse=True)
def _page_sandbox(tmp_path, monkeypatch):
    """Each page runs in a temporary folder, and leaves no model registered.

    A page may save a figure, or register a model of its own.
    """
    import matplotlib.pyplot as plt

    from skhypergrad._models import _REGISTRY

    monkeypatch.chdir(tmp_path)
    registered = dict(_REGISTRY)
    yield
    _REGISTRY.clear()
    _REGISTRY.update(registered)
    plt.close("all")

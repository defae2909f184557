"""Sphinx configuration of the skhypergrad documentation.

Built by ``make docs`` (``sphinx -W --keep-going -b html docs docs/_build/html``):
every warning is an error. The gallery runs each ``examples/plot_*.py``.
"""

import os
import sys
import warnings

# Document the checkout these files are in, installed or not.
sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))
sys.path.insert(0, os.path.abspath("intersphinx"))

from pathlib import Path  # noqa: E402

from make_inventories import PROJECTS, is_current  # noqa: E402
from sphinx.util import logging  # noqa: E402

import skhypergrad  # noqa: E402

logger = logging.getLogger(__name__)

project = "skhypergrad"
author = "The skhypergrad developers"
copyright = "The skhypergrad developers"
release = skhypergrad.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    # MathJax is copied into the built site, which then needs no network.
    "sphinx-mathjax-offline",
    # .. pipe-table:: renders the Markdown tables the benchmarks print.
    "pipe_table",
]

templates_path = ["_templates"]
# numpydoc shows the docstring of a property listed under Attributes: the
# properties HypergradSearchCV inherits from scikit-learn (n_features_in_,
# classes_) refer to terms of scikit-learn's glossary, linked by intersphinx.
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"

# -- Links to other projects ------------------------------------------------
# The build runs with no network: each project's inventory is a small file in
# intersphinx/, written by intersphinx/generate.py, which lists the objects
# these docs refer to with their pages on that project's site. A reference to
# an object not listed stays plain text: add it to generate.py.
intersphinx_mapping = {
    name: (spec["url"], os.path.join("intersphinx", f"{name}.inv"))
    for name, spec in PROJECTS.items()
}


def _check_inventories(app):
    for name, spec in PROJECTS.items():
        path = Path(app.srcdir, "intersphinx", f"{name}.inv")
        if not is_current(path, spec):
            logger.warning(
                f"{path} does not list what intersphinx/make_inventories.py "
                "does: run python docs/intersphinx/make_inventories.py"
            )


# -- API reference ----------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": False}
# numpydoc renders the docstrings; the class template lists the methods.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- Gallery ----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Execute every examples/plot_*.py (and only those).
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "doc_module": ("skhypergrad",),
    "backreferences_dir": "gen_modules/backreferences",
    "image_scrapers": ("matplotlib",),
    "image_srcset": ["2x"],
    "matplotlib_animations": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "show_memory": False,
}

# The examples draw with matplotlib; no window may open while building.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message="FigureCanvasAgg is non-interactive, and thus cannot be shown",
)

# -- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skhypergrad {release}"
html_static_path = ["_static"]
html_css_files = ["skhypergrad.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    # The examples' two-panel figures and the benchmark tables get the width
    # of the page-toc column.
    "secondary_sidebar_items": {"auto_examples/*": [], "benchmarks": []},
}
html_sidebars = {"index": [], "getting_started": [], "benchmarks": []}


def setup(app):
    app.connect("builder-inited", _check_inventories)

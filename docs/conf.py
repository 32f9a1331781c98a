"""Sphinx configuration of the sklearn-attns documentation.

Build (warnings are errors):

    tox -e docs
    # or, with the ``docs`` extra installed:
    sphinx-build -W -b html docs docs/_build/html

The examples gallery executes ``examples/plot_*.py``; set
``SKLEARN_ATTNS_DOCS_PLOT_GALLERY=0`` (or pass ``-D plot_gallery=0``) to build the
pages without running them.
"""

import os
import warnings
from pathlib import Path

import torch

import sklearn_attns

HERE = Path(__file__).resolve().parent

# -- Project ---------------------------------------------------------------------------

project = "sklearn-attns"
author = "sklearn-attns developers"
copyright = "sklearn-attns developers"
release = sklearn_attns.__version__
version = ".".join(release.split(".")[:2])

# -- General ---------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints",
                    "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]

# Every cross-reference must resolve: a link to a missing page or object is an error
# under -W. Other projects' objects are left unlinked (the build reaches no network).
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(sklearn|joblib|matplotlib|numpy|scipy|torch|dask|ray)(\..*)?")]

# -- autodoc / autosummary / numpydoc ------------------------------------------------------

autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"
# Members without a docstring of their own stay out: this keeps torch's generic
# ``nn.Module.forward`` text off the pages of the network modules.
autodoc_inherit_docstrings = False
add_module_names = False

# numpydoc writes the member tables of classes itself; autosummary would list them a
# second time (and warn about members without a page).
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- MyST -------------------------------------------------------------------------------

myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# -- sphinx-gallery ---------------------------------------------------------------------


def _env_flag(name, default=True):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


# Run the examples unless told not to (``-D plot_gallery=0`` still overrides this).
# sphinx-gallery declares this value as a string that evaluates to a bool.
plot_gallery = str(_env_flag("SKLEARN_ATTNS_DOCS_PLOT_GALLERY", True))

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "doc_module": ("sklearn_attns",),
    "backreferences_dir": None,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
}

# The examples train small networks, where a second torch thread gains little and, on a
# busy machine, costs a great deal (the threads spin waiting for each other). The
# gallery runs with one torch thread unless SKLEARN_ATTNS_DOCS_TORCH_THREADS says
# otherwise; tests/test_examples.py does the same through OMP_NUM_THREADS.
torch.set_num_threads(int(os.environ.get("SKLEARN_ATTNS_DOCS_TORCH_THREADS", "1")))

# matplotlib without a display, as in the test of the examples.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")

# -- Short cross-references in the package's docstrings ----------------------------------
# Docstrings say :class:`HybridSolverRegressor` or :meth:`sample_initial_conditions`
# without the module, and :func:`sklearn_attns.make_trajectories` by its top-level
# alias. Where such a name matches exactly one documented object of the package, link
# it there.


def _resolve_package_shorthand(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    target = target.removeprefix("sklearn_attns.")
    if not target or target.startswith(("sklearn.", "joblib.", "torch.", "numpy.")):
        return None
    domain = env.get_domain("py")
    matches = [name for name in domain.objects
               if name.startswith("sklearn_attns.") and name.endswith("." + target)]
    if len(matches) != 1:
        return None
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], matches[0], node, contnode)


def _skip_generated_members(app, what, name, obj, skip, options):
    # scikit-learn's metadata-routing setters (set_fit_request, set_score_request, ...)
    # are generated on every estimator class; they are scikit-learn's API, not ours.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("missing-reference", _resolve_package_shorthand)
    app.connect("autodoc-skip-member", _skip_generated_members)


# -- HTML -------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-attns {release}"
html_static_path = []
html_theme_options = {
    # The top navbar lists the root toctree: user guide, examples, API, results, benchmarks.
    "header_links_before_dropdown": 6,
    "navbar_align": "left",
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# The left sidebar shows the pages of the current section; the landing page and the
# results (whose wide tables need the room) have none.
html_sidebars = {"index": [], "results": []}

"""Sphinx configuration of fastnn's documentation.

Build (from the repository root, after building fastnn): ``sphinx-build -n -W --keep-going
docs docs/_build/html``. Nitpicky, warnings as errors: a reference that resolves nowhere, a
docstring numpydoc cannot read or an example that raises fails the build. The build has no
network: no intersphinx; the third-party names the docstrings mention are listed in
``nitpick_ignore_regex`` below, and only those.
"""
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import fastnn  # noqa: E402

project = "fastnn"
author = "the fastnn developers"
copyright = "the fastnn developers, BSD-3-Clause"
release = fastnn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "fastnn_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5",
                    "sg_execution_times.rst"]
templates_path = ["_templates"]
default_role = "literal"  # a single-backtick name in a docstring is code, never a dangling link

# -- the reference ---------------------------------------------------------------------
nitpicky = True
autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "none"          # the docstrings say the types
autodoc_inherit_docstrings = True
autosummary_generate = False        # the summaries link to the module pages; no stub pages
numpydoc_show_class_members = False  # autodoc's :members: lists the methods
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = True
numpydoc_xref_aliases = {
    # fastnn's own names as the docstrings write them
    "Sequential": "fastnn.network.Sequential",
    "Parameter": "fastnn.layers.Parameter",
    "Layer": "fastnn.layers.Layer",
    "Callback": "fastnn.callbacks.Callback",
    "History": "fastnn.callbacks.History",
    "Optimizer": "fastnn.optimizers.Optimizer",
    "Schedule": "fastnn.schedules.Schedule",
    "Monitor": "fastnn.diagnostics.Monitor",
    "DiagnosticsRecord": "fastnn.diagnostics.DiagnosticsRecord",
    "Preprocessor": "fastnn.datasets.Preprocessor",
    "Loss": "fastnn.losses.Loss",
    "Model": "fastnn.io.Model",
    # third-party and standard names: link targets in their own docs (ignored below)
    "ndarray": "numpy.ndarray",
    "array": "numpy.ndarray",
    "array-like": "numpy.typing.ArrayLike",
    "Generator": "numpy.random.Generator",
    "path-like": "os.PathLike",
    "path": "os.PathLike",
    "callable": "collections.abc.Callable",
    "iterable": "collections.abc.Iterable",
    "sequence": "collections.abc.Sequence",
    # numpydoc's defaults point into Python's docs through intersphinx, which is offline here
    **{name: name for name in ("None", "True", "False", "bool", "int", "float", "str", "dict",
                               "list", "tuple", "object", "bytes", "complex")},
}
# Words of the type descriptions that are prose, not names.
numpydoc_xref_ignore = {
    "of", "or", "and", "optional", "default", "shape", "in", "instance", "with", "a", "an", "the",
    "same", "as", "to", "each", "one", "per", "any", "if", "for", "on", "from", "by", "not",
    "fitted", "loaded", "model", "file", "int", "float", "str", "bool", "dict", "list", "tuple",
    "None", "True", "False", "bytes", "object", "type", "set", "frozenset", "complex",
    "float32", "float64", "int64", "uint8", "dtype", "labels", "targets", "values",
    # names inside shapes and tuples: "array (n, in_features)", "(X_train, y_train, ...)"
    "n", "k", "rows", "cols", "batch", "features", "in_features", "out_features", "value",
    "X_train", "y_train", "X_test", "y_test", "X_val", "y_val", "X_batch", "y_batch",
    "objects", "schedule", "optimizer", "init", "activation",
}

# Names that are not fastnn's: Python's, NumPy's and the optional extras' (no intersphinx
# offline). Everything of fastnn must resolve.
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|scipy|sklearn|torch|onnx|onnxruntime|matplotlib|dask|dask_ml|"
               r"distributed|joblib|tqdm|threadpoolctl|pandas)(\..*)?"),
    (r"py:.*", r"(os|io|pathlib|collections|collections\.abc|typing|numbers|argparse|"
               r"json|warnings|enum|abc|builtins|zipfile|contextlib)\..*"),
    (r"py:.*", r"(int|float|str|bool|bytes|dict|list|tuple|set|frozenset|object|type|complex|"
               r"slice|range|None|NotImplemented|Ellipsis|callable|iterable|"
               r"Exception|BaseException|ValueError|TypeError|RuntimeError|KeyError|IndexError|"
               r"OSError|FileNotFoundError|ImportError|AssertionError|ArithmeticError|"
               r"FloatingPointError|OverflowError|NotImplementedError|StopIteration|"
               r"UserWarning|RuntimeWarning|DeprecationWarning|FutureWarning|Warning|"
               r"NamedTuple|tuple\[.*\]|typing\..*)"),
]

# Absolute-value bars in the docstrings' formulas (|a| >= 1 − ε) are text, not substitutions.
ABSOLUTE_VALUES = ("a", "z", "w", "L", "L‴", "μ_B − μ")
rst_prolog = "\n".join(f".. |{x}| replace:: \\|{x}\\|" for x in ABSOLUTE_VALUES) + "\n"

# -- README and benchmarks/README.md are included, not copied ---------------------------
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
# The README's sections keep their own heading levels when a guide page includes them.
suppress_warnings = ["myst.header"]

# -- the gallery: examples/*.py run at build time ---------------------------------------
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("FASTNN_TEST_DATA", str(ROOT.parent / "shared" / "data"))
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",        # every plot_*.py runs; failing examples fail the build
    "within_subsection_order": "fastnn_docs.gallery_order",
    "image_scrapers": ("matplotlib", "fastnn_docs.png_scraper"),
    "reset_modules": ("matplotlib", "fastnn_docs.reset_threads"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "backreferences_dir": None,
    "doc_module": ("fastnn",),
    "min_reported_time": 1,
}

# -- HTML ------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fastnn {release}"
html_static_path = ["_static"]
html_css_files = ["fastnn.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# "On this page" lists a class's methods under it by their own names (partial_fit(), not
# MLPClassifier.partial_fit()), short enough for the column.
toc_object_entries_show_parents = "hide"
html_sidebars = {"index": [], "design": []}
html_show_sourcelink = False

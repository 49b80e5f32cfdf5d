"""Sphinx helpers for fastnn's documentation.

- numpydoc keeps the docstrings' own sections (``Shape``, ``Hooks``, ...), which it would
  otherwise drop with an "Unknown section" warning: each is rendered as a rubric after Notes.
- ``fastnn.X`` in a docstring resolves to where X is documented (``fastnn.layers.X``): the
  reference documents every object once, in the module that defines it.
- ``.. fastnn-toplevel::`` lists ``fastnn.__all__`` in summary tables, grouped by module.
- ``.. fastnn-kernel-doc:: FAMILY`` shows the design notes of a compiled kernel family
  (``fastnn_c.<FAMILY>.__doc__``).
- ``.. fastnn-cli-help::`` shows ``fastnn COMMAND --help`` for every command.
- Repository files the pages name (``benchmarks/estimator_vs_sklearn.py``, README.md), as
  code or in prose, link to a page of the build that shows the file (``_repo/<path>.html``):
  the reader of the built pages has no checkout beside them.
- ``png_scraper`` hands sphinx-gallery the PNG files an example writes (fastnn's plots are
  files: ``result.plot(path)``), and ``reset_threads`` restores fastnn's thread count
  after each example.
"""
import importlib
import inspect
import os
import re
import shutil
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from numpydoc import docscrape, docscrape_sphinx
from sphinx.util.docutils import SphinxDirective

# -- numpydoc: keep the docstrings' own sections ------------------------------------------

_setitem = docscrape.NumpyDocString.__setitem__


def _keep_unknown_section(self, key, value):
    if key in self._parsed_data:
        _setitem(self, key, value)
    else:
        self.__dict__.setdefault("_fastnn_sections", []).append((key, value))


def _str_section_and_own(self, name):
    out = _str_section(self, name)
    if name == "Notes":
        for title, content in self.__dict__.get("_fastnn_sections", []):
            out += [f".. rubric:: {title}", ""] + list(content) + [""]
    return out


_str_section = docscrape_sphinx.SphinxDocString._str_section
docscrape.NumpyDocString.__setitem__ = _keep_unknown_section
docscrape_sphinx.SphinxDocString._str_section = _str_section_and_own


# -- fastnn.X -> the module that documents X ------------------------------------------------

def _canonical_name(target):
    """``module.qualname`` of the fastnn object ``target`` names, or None."""
    import fastnn

    name = target[len("fastnn."):] if target.startswith("fastnn.") else target
    obj = fastnn
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if inspect.ismodule(obj):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or not module.startswith("fastnn"):
        return None
    return f"{module}.{qualname}"


def _resolve_fastnn(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    canonical = _canonical_name(target)
    if canonical is None or canonical == target:
        return None
    domain = env.get_domain("py")
    builder = app.builder
    for role in ("obj", "class", "func", "meth", "attr", "exc", "data", "mod"):
        resolved = domain.resolve_xref(env, node["refdoc"], builder, role, canonical,
                                       node, contnode)
        if resolved is not None:
            return resolved
    return None


# -- autodoc: what a reader of the reference can follow ----------------------------------------

def _public_bases(app, name, obj, options, bases):
    """Show a private base class (``_NamedActivation``) as its public bases (``Activation``)."""
    def public(cls):
        if cls.__name__.startswith("_") and cls.__module__.startswith("fastnn"):
            return [b for base in cls.__bases__ for b in public(base)]
        return [cls]

    replaced = [b for base in bases for b in public(base)]
    bases[:] = [b for i, b in enumerate(replaced) if b not in replaced[:i]]


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Leave out methods another library generates on fastnn's classes (scikit-learn's
    ``set_*_request`` metadata-routing methods): their docstrings are that library's."""
    module = getattr(obj, "__module__", None) or ""
    if what == "class" and module.startswith("sklearn."):
        return True
    return None


# -- directives ------------------------------------------------------------------------------

class TopLevelSummary(SphinxDirective):
    """Summary tables of ``fastnn.__all__``: submodules first, then the names by module."""

    def run(self):
        import fastnn

        modules, groups = [], {}
        for name in fastnn.__all__:
            obj = getattr(fastnn, name)
            if inspect.ismodule(obj):
                modules.append(obj.__name__)
            elif name == "__version__":
                continue
            elif "._" in obj.__module__:  # defined in a private module: documented as fastnn.X
                groups.setdefault("fastnn", []).append(f"fastnn.{name}")
            else:
                groups.setdefault(obj.__module__, []).append(_canonical_name(name))
        # Entries relative to the page's current module, fastnn (autosummary's convention).
        lines = [".. rubric:: Submodules", "", ".. autosummary::", ""]
        lines += [f"   {m.removeprefix('fastnn.')}" for m in sorted(modules)] + [""]
        for module in sorted(groups):
            lines += [f".. rubric:: From :mod:`{module}`", "", ".. autosummary::", ""]
            if module == "fastnn":
                lines[-4] = ".. rubric:: Threads"
            lines += [f"   ~{n.removeprefix('fastnn.')}" for n in groups[module]] + [""]
        return self.parse_text_to_nodes("\n".join(lines))


class KernelDoc(SphinxDirective):
    """The module docstring of a compiled kernel family, as a literal block."""

    required_arguments = 1

    def run(self):
        import fastnn_c

        family = self.arguments[0]
        if family not in fastnn_c.__all__:
            raise self.error(f"fastnn_c has no kernel family {family!r}")
        doc = inspect.cleandoc(getattr(fastnn_c, family).__doc__ or "")
        if not doc:
            raise self.error(f"fastnn_c.{family} has no docstring")
        block = nodes.literal_block(doc, doc)
        block["language"] = "text"
        return [block]


class CliHelp(SphinxDirective):
    """``fastnn --help`` and ``fastnn COMMAND --help`` of every command, as literal blocks."""

    option_spec = {"commands": directives.unchanged}

    def run(self):
        import argparse

        from fastnn.cli import build_parser

        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        out = []
        columns = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "100"  # argparse wraps to this width
        try:
            for name, command in [("fastnn", parser), *sub.choices.items()]:
                title = name if name == "fastnn" else f"fastnn {name}"
                section = nodes.section(ids=[f"cli-{name}"])
                section += nodes.title(title, title)
                text = command.format_help()
                block = nodes.literal_block(text, text)
                block["language"] = "text"
                section += block
                out.append(section)
        finally:
            if columns is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = columns
        return out


# -- repository files named on the pages -------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
#: A repository path as the pages write it: folders and a file name with a suffix, or one of
#: the top-level files. Checked against the checkout before it becomes a link.
REPO_PATH = re.compile(r"(?<![\w/.$~-])((?:[\w.-]+/)+[\w.-]+\.[A-Za-z]\w*|(?:README|CONTRIBUTING|"
                       r"CHANGELOG)\.md|setup\.py|pyproject\.toml)(?![\w/-])")
#: Folders the pages may name that are not the repository's (the data, the build's output).
NOT_REPOSITORY = ("docs/_build/", "../")
_REPO_FILES_SHOWN = set()  # the files linked in this build (the pages are written in one process)


def repo_file(text):
    """The repository file ``text`` names (a path relative to the root), or None."""
    path = text.strip()
    if (REPO_PATH.fullmatch(path) is None or path.startswith(NOT_REPOSITORY)
            or not (ROOT / path).is_file()):
        return None
    return path


def _link_repo_files(app, doctree, docname):
    """Make each repository file a page names, in code or in prose, a link to its copy."""
    depth = "../" * docname.count("/")
    def link(path, child):
        _REPO_FILES_SHOWN.add(path)
        ref = nodes.reference("", "", internal=False, refuri=f"{depth}_repo/{path}.html")
        ref["classes"].append("fastnn-repo-file")
        ref += child
        return ref

    skip = (nodes.reference, nodes.literal_block, nodes.raw, nodes.comment, nodes.target)
    for node in list(doctree.findall(nodes.literal)):
        path = repo_file(node.astext())
        if path is not None and not isinstance(node.parent, skip):
            node.replace_self(link(path, node.deepcopy()))
    for node in list(doctree.findall(nodes.Text)):
        parent = node.parent
        if isinstance(parent, (nodes.literal, nodes.FixedTextElement, *skip)):
            continue
        text = str(node)
        pieces, last = [], 0
        for match in REPO_PATH.finditer(text):
            path = repo_file(match.group(1))
            if path is None:
                continue
            pieces += [nodes.Text(text[last:match.start(1)]), link(path, nodes.Text(path))]
            last = match.end(1)
        if pieces:
            pieces.append(nodes.Text(text[last:]))
            index = parent.index(node)
            parent[index:index + 1] = pieces


def _write_repo_files(app, exception):
    """Write ``_repo/<path>.html``: each linked repository file, highlighted, read-only."""
    if exception is not None or app.builder.format != "html":
        return
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, guess_lexer_for_filename
    from pygments.util import ClassNotFound

    for path in sorted(_REPO_FILES_SHOWN):
        code = (ROOT / path).read_text(encoding="utf-8")
        try:
            lexer = guess_lexer_for_filename(path, code)
        except ClassNotFound:
            lexer = TextLexer()
        out = Path(app.outdir) / "_repo" / f"{path}.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        formatter = HtmlFormatter(full=True, title=f"fastnn: {path}",
                                  prestyles="white-space: pre-wrap; overflow-wrap: anywhere;")
        out.write_text(highlight(code, lexer, formatter), encoding="utf-8")


# -- sphinx-gallery --------------------------------------------------------------------------

def png_scraper(block, block_vars, gallery_conf):
    """Move the PNG files a code block wrote into its working folder into the gallery.

    fastnn's plots are written to files (``Monitor.plot(path)``, ``result.plot(path)``,
    ``plotting.plot_history(history, path)``); an example writes them beside itself and this
    scraper shows them below the block that wrote them, leaving examples/ as it was.
    """
    from sphinx_gallery.scrapers import figure_rst

    pngs = sorted(Path.cwd().glob("*.png"), key=os.path.getmtime)
    image_paths = block_vars["image_path_iterator"]
    names = []
    for png, destination in zip(pngs, image_paths):
        shutil.move(png, destination)
        names.append(destination)
    return figure_rst(names, gallery_conf["src_dir"])


#: The gallery's order: the texts' experiments first, then the tools.
GALLERY_ORDER = ("plot_vanishing_gradients.py", "plot_activations.py", "plot_relu_variants.py",
                 "plot_batch_norm.py", "plot_optimizers.py", "plot_schedules.py",
                 "plot_gradcheck.py", "plot_monitor_warnings.py")


def gallery_order(filename):
    """Sort key of an example: its place in ``GALLERY_ORDER``, unknown files last by name."""
    name = os.path.basename(filename)
    return (GALLERY_ORDER.index(name) if name in GALLERY_ORDER else len(GALLERY_ORDER), name)


_DEFAULT_THREADS = []


def reset_threads(gallery_conf, fname):
    """Each example starts with the thread count fastnn had when the build started."""
    import fastnn

    if not _DEFAULT_THREADS:
        _DEFAULT_THREADS.append(fastnn.get_num_threads())
    fastnn.set_num_threads(_DEFAULT_THREADS[0])


def setup(app):
    app.add_directive("fastnn-toplevel", TopLevelSummary)
    app.add_directive("fastnn-kernel-doc", KernelDoc)
    app.add_directive("fastnn-cli-help", CliHelp)
    app.connect("missing-reference", _resolve_fastnn)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("doctree-resolved", _link_repo_files)
    app.connect("build-finished", _write_repo_files)
    importlib.import_module("fastnn")  # fail early, with the import error, if fastnn is not built
    return {"version": "1", "parallel_read_safe": True,
            "parallel_write_safe": False}  # the linked repository files are collected while writing

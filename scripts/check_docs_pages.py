"""Check what a reader meets on the built pages, beyond the names ``check_docs_names.py`` checks.

Usage (after ``sphinx-build ... docs docs/_build/html``):

    python scripts/check_docs_pages.py [docs/_build/html]

- Each API page opens with one of its module's main names, those of ``fastnn.__all__`` and
  their base classes in the module (``api/layers.html`` opened with the internal
  ``write_count()`` before ``Parameter``, ``Layer`` and ``Dense``); a module with none of
  them opens with a class or function, not a constant.
- The module list of the API reference holds modules only: every entry is ``fastnn.<name>``.
- Every repository file a page names in code (``benchmarks/estimator_vs_sklearn.py``) is a
  link, and every link to a repository file (``_repo/<path>.html``) has its page.
- No figure's title or label spells a norm as ``||x||``: the figures are checked where they
  are drawn (tests/test_plotting.py); here, no page's text does so either.

Exits 1, naming each problem, otherwise 0.
"""
import html as html_lib
import importlib
import inspect
import re
import sys
from pathlib import Path

import fastnn

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HTML = ROOT / "docs" / "_build" / "html"
_OBJECT = re.compile(r'<dl class="py (\w+)">\s*<dt class="sig sig-object py" id="(fastnn\.[\w.]+)"')
_CODE = re.compile(r'<code class="[^"]*literal[^"]*">(.*?)</code>', re.S)
_REPO_LINK = re.compile(r'href="(?:\.\./)*_repo/([^"#]+)\.html"')
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
from fastnn_docs import repo_file  # noqa: E402  (the rule the build links repository files by)


def main_names(module):
    """Names of ``module`` that open its page: exported by fastnn, and their bases there."""
    exported = {id(getattr(fastnn, n)) for n in fastnn.__all__}
    main = set()
    for name, obj in vars(module).items():
        if id(obj) in exported and getattr(obj, "__module__", None) == module.__name__:
            main.add(name)
            for base in inspect.getmro(obj)[1:] if inspect.isclass(obj) else ():
                if base.__module__ == module.__name__ and not base.__name__.startswith("_"):
                    main.add(base.__name__)
    return main


def api_order_problems(html):
    problems = []
    for page in sorted((html / "api").glob("*.html")):
        module_name = f"fastnn.{page.stem}"
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # not a module's page (index, the CLI's)
            continue
        main = main_names(module)
        entries = [(kind, i.rsplit(".", 1)[1]) for kind, i in _OBJECT.findall(page.read_text("utf-8"))
                   if i.count(".") == module_name.count(".") + 1 and i.startswith(module_name + ".")]
        names = [name for _, name in entries]
        if main and names and names[0] not in main:
            problems.append(f"api/{page.name} opens with {names[0]}, not with one of its main "
                            f"names ({', '.join(sorted(main & set(names)))})")
        elif entries and entries[0][0] == "data" and any(k != "data" for k, _ in entries):
            problems.append(f"api/{page.name} opens with the constant {names[0]}, not with a "
                            "class or function")
    return problems


def module_list_problems(html):
    text = (html / "api" / "index.html").read_text(encoding="utf-8")
    section = text.split('id="modules"', 1)[-1]
    entries = re.findall(r'<li class="toctree-l1"><a class="reference internal" href="[^"]+">(.*?)</a>',
                         section)
    return [f"api/index.html: the module list holds {html_lib.unescape(e)!r}, not a module"
            for e in entries if not re.fullmatch(r"fastnn\.\w+", html_lib.unescape(e))]


def page_problems(html):
    problems = []
    for page in sorted(html.rglob("*.html")):
        rel = page.relative_to(html)
        if rel.parts[0] in ("_modules", "_static", "_sources", "_repo"):
            continue
        text = page.read_text(encoding="utf-8")
        body = text.split('<article class="bd-article">', 1)[-1].split("</article>", 1)[0]
        # A code literal that names a repository file and is not inside a link.
        outside_links = re.sub(r"<a [^>]*>.*?</a>", "", body, flags=re.S)
        for code in _CODE.findall(outside_links):
            words = html_lib.unescape(re.sub(r"<[^>]+>", "", code))
            if repo_file(words) is not None:
                problems.append(f"{rel}: {words} is named but not linked")
        for path in _REPO_LINK.findall(text):
            if not (html / "_repo" / f"{path}.html").is_file():
                problems.append(f"{rel}: links to _repo/{path}.html, which the build did not write")
        prose = html_lib.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<pre.*?</pre>", "", body, flags=re.S)))
        for match in re.finditer(r"\|\|\s?\\?[A-Za-z]", prose):
            context = prose[match.start():match.start() + 20]
            problems.append(f"{rel}: a norm written as ASCII bars: {context!r}")
    return problems


def main(argv):
    html = Path(argv[1]) if len(argv) > 1 else DEFAULT_HTML
    if not (html / "index.html").is_file():
        sys.exit(f"{html}/index.html not found: build the documentation first")
    problems = api_order_problems(html) + module_list_problems(html) + page_problems(html)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problems on the built pages ({html})")
        return 1
    print(f"the built pages in {html}: API pages open with their main names, the module list "
          "holds modules, repository files are linked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

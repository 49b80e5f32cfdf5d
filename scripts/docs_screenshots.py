"""Screenshot every page of the built documentation in headless Chromium, to look at them.

Usage (after ``sphinx-build ... docs docs/_build/html``):

    python scripts/docs_screenshots.py OUT_DIR [--html docs/_build/html] [--widths 1280 800]

Writes ``OUT_DIR/<page>-<width>.png`` for every ``.html`` page of the build (the search
page, the generated index, the highlighted sources of ``_modules/`` and the repository
files' copies in ``_repo/`` left out), at each width, 900 px high: the page as a reader
first sees it, with the sidebars and any horizontal scrollbar; with ``--full``, also
``OUT_DIR/<page>-<width>-full.png``, as tall as the page. It prints, per page and width,
the elements wider than their box (code blocks that scroll, a page wider than the window),
which a reader would scroll sideways to read. Needs
``chromium`` (Debian's package) or ``$CHROMIUM``; keep OUT_DIR outside the repository.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = {"search.html", "genindex.html", "py-modindex.html"}

# Appended to a copy of each page: measures the page once it has laid out, and writes the
# result where --dump-dom shows it.
_PROBE = """<script>
window.addEventListener("load", () => {
  const wide = [];
  for (const el of document.querySelectorAll("pre, table, .highlight, img, .bd-toc-item, nav a")) {
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== "visible") {
      wide.push(el.tagName.toLowerCase() + ": " + el.textContent.trim().slice(0, 60));
    }
  }
  const root = document.documentElement;
  const out = {page_width: root.scrollWidth, window_width: root.clientWidth,
               height: root.scrollHeight, wide: wide};
  const pre = document.createElement("pre");
  pre.id = "fastnn-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def pages(html):
    """The built pages, relative to ``html``, sorted."""
    found = []
    for path in sorted(html.rglob("*.html")):
        rel = path.relative_to(html)
        if rel.parts[0] in ("_modules", "_static", "_sources", "_repo") or str(rel) in SKIPPED:
            continue
        found.append(rel)
    return found


def chromium(*args):
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("chromium not found: apt-get install chromium, or set CHROMIUM")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars=false",
           "--virtual-time-budget=2000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def measure(page, width):
    """Layout figures of ``page`` (a path) at ``width``: page and window width, height, wide."""
    probe = page.with_name(f".probe-{width}-{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
                     encoding="utf-8")
    try:
        dom = chromium(f"--window-size={width},900", "--dump-dom", probe.as_uri()).stdout
    finally:
        probe.unlink()
    match = re.search(r'<pre id="fastnn-probe"[^>]*>(.*?)</pre>', dom, re.S)
    if match is None:
        return None
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">"))


def shoot(html, rel, width, out, full):
    page = html / rel
    name = str(rel.with_suffix("")).replace(os.sep, "__")
    figures = measure(page, width)
    chromium(f"--screenshot={out / f'{name}-{width}.png'}", f"--window-size={width},900",
             page.as_uri())
    if full and figures is not None:
        tall = min(max(figures["height"], 900), 16000)
        chromium(f"--screenshot={out / f'{name}-{width}-full.png'}",
                 f"--window-size={width},{tall}", page.as_uri())
    return name, width, figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files (outside the repository)")
    parser.add_argument("--html", type=Path, default=ROOT / "docs" / "_build" / "html")
    parser.add_argument("--widths", type=int, nargs="+", default=[1280, 800])
    parser.add_argument("--full", action="store_true",
                        help="also write <page>-<width>-full.png, as tall as the page")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    if not (args.html / "index.html").is_file():
        sys.exit(f"{args.html}/index.html not found: build the documentation first")
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [(rel, width) for rel in pages(args.html) for width in args.widths]
    problems = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        for name, width, figures in pool.map(lambda t: shoot(args.html, *t, args.out, args.full), todo):
            if figures is None:
                print(f"{name} at {width}px: not measured")
                continue
            notes = []
            if figures["page_width"] > figures["window_width"]:
                notes.append(f"page {figures['page_width']} px wide in a "
                             f"{figures['window_width']} px window")
            notes += [f"scrolls sideways: {w}" for w in figures["wide"]]
            problems += bool(notes)
            print(f"{name} at {width}px: " + ("; ".join(notes) if notes else "fits"))
    print(f"{len(todo)} screenshots of {len(todo) // len(args.widths)} pages in {args.out}; "
          f"{problems} with something wider than its box")
    return 0


if __name__ == "__main__":
    sys.exit(main())

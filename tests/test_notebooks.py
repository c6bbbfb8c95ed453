"""Every notebook in the table of contents follows the book's convention (CONTRIBUTING.md).

These checks are static (nothing is executed): nbval re-executes the notebooks and compares outputs.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from toc import ROOT, book_config, colab_install, toc_notebooks

NOTEBOOKS = toc_notebooks()


def _code_cells(path):
    nb = nbformat.read(ROOT / path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code"]


def test_toc_lists_notebooks():
    assert NOTEBOOKS, "_toc.yml lists no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_colab_cell_first_and_points_at_this_repository(path):
    url = book_config()["repository"]["url"].rstrip("/")
    branch = book_config()["repository"].get("branch", "main")
    first = _code_cells(path)[0].source
    assert '"google.colab" in sys.modules' in first, f"{path}: first code cell is not the Colab install cell"
    m = colab_install(path)
    expected = f'%pip install -q "ntp_lib[EXTRAS] @ git+{url}@{branch}"'
    assert m is not None, f"{path}: Colab cell must have the line {expected} ([EXTRAS] optional)"
    assert (m["url"], m["branch"]) == (url, branch), (
        f"{path}: Colab cell installs from {m['url']}@{m['branch']}, not {url}@{branch} (repository in _config.yml)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_setup_and_parameters_cells(path):
    cells = _code_cells(path)
    setups = [c for c in cells if re.search(r"\bntp_lib\.setup\(", c.source)]
    assert len(setups) == 1, f"{path}: expected exactly one ntp_lib.setup(...) call, found {len(setups)}"
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{path}: expected one cell tagged 'parameters', found {len(params)}"
    assert re.search(r'^SCALE = "cpu"', params[0].source, re.M), f"{path}: parameters cell must set SCALE = \"cpu\""
    assert re.search(r'^# Run time at SCALE = "cpu": .*measured', params[0].source, re.M), (
        f"{path}: the parameters cell must state the measured run time (# Run time at SCALE = \"cpu\": ...)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_committed_executed_without_errors(path):
    cells = _code_cells(path)
    unrun = [i for i, c in enumerate(cells) if c.execution_count is None and c.source.strip()]
    assert not unrun, f"{path}: code cells {unrun} have no stored execution: nbval would not compare them"
    counts = [c.execution_count for c in cells if c.execution_count is not None]
    assert counts == list(range(1, len(counts) + 1)), f"{path}: not executed top to bottom in one run"
    errors = [i for i, c in enumerate(cells) for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path}: code cells {errors} have a stored error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_no_noise_in_compared_outputs(path):
    """Timings, progress bars and warnings go to stderr (not compared), never to stdout."""
    for i, cell in enumerate(_code_cells(path)):
        for out in cell.outputs:
            text = out.get("text", "") if out.output_type == "stream" and out.name == "stdout" else ""
            assert "it/s" not in text and "Warning" not in text, f"{path}: cell {i} prints noise to stdout"

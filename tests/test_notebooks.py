"""Every notebook in the table of contents follows the book's convention (CONTRIBUTING.md).

These checks are static (nothing is executed): nbval re-executes the notebooks and compares outputs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from tools.toc import COLAB_INSTALL, COLAB_NO_DEPS, ROOT, book_config, colab_install, toc_notebooks

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
    # Its other %pip lines: only pinned packages installed without their dependencies, inside the same if.
    for line in first.splitlines():
        if "%pip" in line and not COLAB_INSTALL.search(line):
            assert COLAB_NO_DEPS.match(line) and line.startswith("    "), (
                f'{path}: Colab cell line {line.strip()!r} is neither the ntp_lib install nor an indented '
                f'%pip install -q --no-deps "NAME==VERSION"')


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


# --------------------------------------------------------------------------- one convention (CONTRIBUTING.md)

#: Glue keys (and equation labels) start with the part's prefix, so a key says where it is made.
PREFIX = {"00-front": "fm_", "01-implicit-bias": "ib_", "02-pitfalls": "ps_", "03-bottleneck": "bn_"}


def _prefix(path) -> str:
    return PREFIX[Path(path).parent.name]


def _tree(source: str) -> ast.Module:
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


def _markdown(path) -> list[str]:
    nb = nbformat.read(ROOT / path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_scale_comes_from_one_helper(path):
    """Scale-dependent values come from ntp_lib.at_scale (or a preset's at_scale), never an if or a dict."""
    for i, cell in enumerate(_code_cells(path)):
        code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith("#"))
        bad = re.search(r"\[SCALE\]|SCALE\s*[!=]=|\bif\s+SCALE\b", code)
        assert not bad, f"{path}: cell {i} derives a value from SCALE with {bad.group()!r}: use ntp_lib.at_scale"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_online_comes_from_one_helper(path):
    for i, cell in enumerate(_code_cells(path)[1:], start=1):  # the Colab cell is the one place for google.colab
        assert not re.search(r'"google\.colab" in sys\.modules|environ[^\n]*NTP_ONLINE|getenv\([^)]*NTP_ONLINE',
                             cell.source), (
            f"{path}: cell {i} decides by itself whether it is online: use ONLINE = ntp_lib.online()")
        for node in ast.walk(_tree(cell.source)):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ONLINE" for t in node.targets):
                assert ast.unparse(node.value) in ("ntp_lib.online()", "online()"), (
                    f"{path}: cell {i}: ONLINE = {ast.unparse(node.value)}; use ntp_lib.online()")


def _library_constants() -> set[str]:
    import importlib

    names = set()
    for module in ("runtime", "corpus", "gpt", "train", "lm", "models", "recorded", "ngram", "implicit_bias",
                   "pathstar", "bottleneck"):
        mod = importlib.import_module(f"ntp_lib.{module}")
        names |= {n for n in dir(mod) if n.isupper() and not n.startswith("_")}
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_no_library_name_redefined(path):
    """A notebook that assigns PYTHIA_SIZES hides the library's: import it or choose another name."""
    constants = _library_constants()
    for i, cell in enumerate(_code_cells(path)):
        for node in _tree(cell.source).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            for t in targets:
                for name in ast.walk(t):
                    assert not (isinstance(name, ast.Name) and name.id in constants), (
                        f"{path}: cell {i} assigns {name.id}, a name ntp_lib exports: import it or rename")


def _glue_calls(path):
    for i, cell in enumerate(_code_cells(path)):
        for node in ast.walk(_tree(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "glue":
                yield i, node


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_glue_keys_and_values(path):
    """glue("<prefix>_name", number): the key names its part, the value is not pre-formatted text."""
    prefix = _prefix(path)
    for i, call in _glue_calls(path):
        key, value = call.args[:2]
        head = key.values[0] if isinstance(key, ast.JoinedStr) else key
        assert isinstance(head, ast.Constant) and str(head.value).startswith(prefix), (
            f"{path}: cell {i}: glue key {ast.unparse(key)} must start with {prefix!r}")
        formatted = isinstance(value, ast.JoinedStr) or (
            isinstance(value, ast.Call) and getattr(value.func, "attr", None) == "format")
        assert not formatted, (f"{path}: cell {i}: glue {ast.unparse(key)} glues formatted text "
                               f"{ast.unparse(value)}: glue the number, format it in the prose")


GLUE_REF = re.compile(r"\{glue(?::text)?\}`([^`:]+)(?::([^`]*))?`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_glued_values_format_as_the_prose_asks(path):
    """Every {glue:text}`key:spec` finds its key in the committed outputs and the spec formats the value
    (a NumPy scalar, whose text is np.float64(...), does not format: glue float(...))."""
    from myst_nb.core.variables import format_plain_text

    nb = nbformat.read(ROOT / path, as_version=4)
    glued = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook")
            if meta:
                glued[meta["name"]] = out["data"].get(meta["mime_prefix"] + "text/plain")
    for text in _markdown(path):
        for key, spec in GLUE_REF.findall(text):
            assert key in glued, f"{path}: the prose refers to glue key {key!r}, which no cell glues"
            if spec:
                try:
                    format_plain_text(glued[key], spec)
                except (ValueError, TypeError) as err:
                    pytest.fail(f"{path}: {{glue:text}}`{key}:{spec}` cannot format {glued[key]!r}: {err}")


TYPED_EQUATION_NUMBER = re.compile(r"(?<![\w{`$'])\(\d{1,2}[a-h]?\)(?:-\(\d{1,2}[a-h]?\))?")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=str)
def test_equations_are_referenced_by_label(path):
    """A numbered equation is referred to with {eq}`label`, not a number typed in the prose
    ("the paper's (6a)" may quote the paper's own number beside the reference)."""
    for text in _markdown(path):
        prose = re.sub(r"\$\$.*?\$\$|\$[^$\n]+\$|```.*?```|`[^`\n]*`", " ", text, flags=re.S)
        prose = re.sub(r"paper's \(\d{1,2}[a-h]?\)(?:-\(\d{1,2}[a-h]?\))?", " ", prose)
        typed = TYPED_EQUATION_NUMBER.findall(prose)
        assert not typed, f"{path}: equation numbers typed in the prose {typed}: label the equation, use {{eq}}"

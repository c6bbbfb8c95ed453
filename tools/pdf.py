"""The whole book as one PDF, instructor or student edition (``make pdf``, ``make pdf-student``).

    python tools/pdf.py instructor     # -> _build/latex/ntp-live.pdf
    python tools/pdf.py student        # -> _build/student/latex/ntp-live.pdf (no solutions)

Jupyter Book 1's own LaTeX build (its build function with the overrides its ``--builder pdflatex``
passes), then Sphinx's generated Makefile (latexmk and XeLaTeX, ``make all-pdf``). The student edition
overrides one setting, sphinx-exercise's ``hide_solutions``, as ``make book-student`` does. Needs
XeLaTeX, latexmk and xindy (``make pdf`` installs Debian's packages if they are missing).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

try:
    from tools.toc import ROOT
except ModuleNotFoundError:  # run as a script: python tools/pdf.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tools.toc import ROOT

EDITIONS = {"instructor": ROOT / "_build" / "latex", "student": ROOT / "_build" / "student" / "latex"}
TEX_TOOLS = ("xelatex", "latexmk", "xindy")
PDF_NAME = "ntp-live.pdf"   # _config.yml: latex.latex_documents.targetname


def missing_tex_tools() -> list[str]:
    return [t for t in TEX_TOOLS if shutil.which(t) is None]


def build(edition: str, outdir: Path | None = None) -> Path:
    """Build one edition's PDF; returns its path. Raises SystemExit with the reason on failure."""
    from jupyter_book.sphinx import build_sphinx

    if edition not in EDITIONS:
        raise SystemExit(f"edition must be one of {list(EDITIONS)}, got {edition!r}")
    missing = missing_tex_tools()
    if missing:
        raise SystemExit(f"the PDF needs {', '.join(missing)}: run `make pdf` (it installs Debian's TeX packages)")
    out = Path(outdir or EDITIONS[edition]).resolve()
    overrides = {"external_toc_path": "_toc.yml", "latex_individualpages": False}
    if edition == "student":
        overrides["hide_solutions"] = True
    code = build_sphinx(str(ROOT), str(out), noconfig=True, path_config=str(ROOT / "_config.yml"),
                        confoverrides=overrides, builder="latex", keep_going=True,
                        doctreedir=str(out.parent / ".doctrees-latex"))
    if code:
        raise SystemExit(f"the LaTeX build of the {edition} edition failed (exit {code})")
    done = subprocess.run(["make", "all-pdf", "LATEXMKOPTS=-quiet -interaction=nonstopmode"], cwd=out,
                          capture_output=True, text=True)
    pdf = out / PDF_NAME
    if done.returncode != 0 or not pdf.exists():
        raise SystemExit(f"latexmk failed on {out / 'ntp-live.tex'} (exit {done.returncode}):\n"
                         f"{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return pdf


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else "instructor"))

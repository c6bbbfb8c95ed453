"""The PDF of the book (``make pdf``, ``make pdf-student``; ``make test`` builds both before pytest).

Each edition's outline has one entry per page of _toc.yml, under its title, in the book's order; the
instructor edition has every exercise with its solution, the student edition every exercise, numbered
the same, and no solution. Skipped only where TeX is missing (``make install-tex`` says why).
"""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest

from tools.pdf import EDITIONS, PDF_NAME
from tools.toc import ROOT, toc_pages

pypdf = pytest.importorskip("pypdf")


def _title(page) -> str:
    path = ROOT / page
    text = (next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
            if path.suffix == ".ipynb" else path.read_text())
    title = re.search(r"^# (.+)$", text, flags=re.M).group(1)
    return _plain(re.sub(r"\{[\w:]+\}`([^`]*)`", r"\1", title).split("$")[0])[:30]


def _plain(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


@pytest.fixture(scope="module", params=list(EDITIONS))
def pdf(request):
    path = EDITIONS[request.param] / PDF_NAME
    if not path.exists():
        if shutil.which("xelatex") is None:
            pytest.skip("no xelatex here, so no PDF: make install-tex")
        pytest.fail(f"{path} is missing: build it (python tools/pdf.py {request.param})")
    reader = pypdf.PdfReader(str(path))
    outline: list[str] = []

    def walk(items):
        for item in items:
            walk(item) if isinstance(item, list) else outline.append(_plain(item.title))

    walk(reader.outline)
    text = "\n".join(p.extract_text() or "" for p in reader.pages)
    return request.param, outline, text


def test_outline_has_every_page_in_order(pdf):
    edition, outline, _ = pdf
    position = -1
    for page in toc_pages():
        if page.stem == "intro":
            continue  # the root page is the PDF's title page, not an outline entry
        title = _title(page)
        hits = [i for i, entry in enumerate(outline) if entry.startswith(title)]
        assert hits, f"{edition} PDF: no outline entry for {page} ({title!r})"
        later = [i for i in hits if i > position]
        assert later, f"{edition} PDF: {page} is out of the book's order in the outline"
        position = later[0]


def test_exercises_and_solutions(pdf):
    edition, _, text = pdf
    exercises = set(re.findall(r"Exercise (\d+\.\d+)", text))
    solutions = re.findall(r"Solution to Exercise", text)
    assert len(exercises) > 40, (edition, len(exercises))
    if edition == "student":
        assert not solutions, f"the student PDF has {len(solutions)} solutions"
    else:
        assert len(solutions) > 40, f"the instructor PDF has only {len(solutions)} solutions"

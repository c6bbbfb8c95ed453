"""The course kit (chapters/98-teaching) agrees with the chapters it describes.

The syllabus and the instructor guides quote facts that live in the notebooks: each notebook's measured run time
(the first line of its parameters cell), whether it has cells that need the internet (``if ONLINE:``), its
exercises. These checks are static: they read the notebooks and the pages, and fail with what to update when a
chapter changes. (The build, with -n, checks that every label and citation the pages use resolves.)
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools.toc import ROOT, toc_notebooks, toc_pages

TEACHING = ROOT / "chapters" / "98-teaching"
SYLLABUS = TEACHING / "syllabus.md"
#: Each instructor guide and the folder of the part it covers.
GUIDES = {"guide-implicit-bias.md": "01-implicit-bias", "guide-pitfalls.md": "02-pitfalls",
          "guide-bottleneck.md": "03-bottleneck"}
#: A parameters cell's first line: '# Run time at SCALE = "cpu": about 10 s on a 2-core CPU, ... (measured 14 s ...'
RUN_TIME = re.compile(r'^# Run time at SCALE = "cpu": (?P<about>about [^,(]+?) on a 2-core CPU.*'
                      r'\(measured (?P<s>\d+) s')
#: A run-time row of a page's table: | {ref}`label` | about 10 s (14 s) | no |   (or Colab: cells need the internet)
ROW = re.compile(r"^\| \{ref\}`(?P<label>[\w-]+)` \| (?P<about>[^|(]+?) \((?P<measured>[^|)]+)\) "
                 r"\| (?P<net>[^|]+?) \|$", re.M)
#: A run time quoted in the prose: {ref}`label` (about 10 s)
INLINE = re.compile(r"\{ref\}`(?P<label>[\w-]+)`\s+\((?P<about>about [^)]+)\)")


def _notebook_facts(path: Path) -> dict:
    nb = nbformat.read(ROOT / path, as_version=4)
    label = re.match(r"\(([\w-]+)\)=", nb.cells[0].source)
    assert label, f"{path}: the first cell does not open with a (label)= target"
    params = [c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    first = params[0].splitlines()[0] if params else ""
    run_time = RUN_TIME.match(first)
    assert run_time, (f"{path}: the parameters cell's first line {first!r} is not in the form the course kit reads "
                      "('# Run time at SCALE = \"cpu\": about ... on a 2-core CPU ... (measured N s ...')")
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return {"path": path, "label": label[1], "about": run_time["about"], "measured": f"{run_time['s']} s",
            "online": any("if ONLINE:" in c.source for c in nb.cells if c.cell_type == "code"),
            "exercises": re.findall(r"^[:`]{3,}\{exercise\}[^\n]*\n:label: ([\w-]+)", markdown, re.M)}


NOTEBOOKS = {facts["label"]: facts for facts in map(_notebook_facts, toc_notebooks())}
PAGES = sorted(TEACHING.glob("*.md"))


def test_course_kit_is_in_the_book():
    listed = {p for p in toc_pages() if p.parent == TEACHING.relative_to(ROOT)}
    assert listed == {p.relative_to(ROOT) for p in PAGES}, f"_toc.yml lists {sorted(map(str, listed))}"
    assert set(GUIDES) | {SYLLABUS.name} == {p.name for p in PAGES}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_run_times_and_internet_are_the_notebooks(page):
    """Every run time a page quotes, in a table or in the prose, is the one its notebook's parameters cell states."""
    text = page.read_text()
    wrong = []
    for row in ROW.finditer(text):
        facts = NOTEBOOKS.get(row["label"])
        if facts is None:
            continue
        net = "Colab" if facts["online"] else "no"
        quoted = (row["about"], row["measured"], row["net"])
        if quoted != (facts["about"], facts["measured"], net):
            stated = (facts["about"], facts["measured"], net)
            wrong.append(f"table row for {row['label']}: {quoted}, the notebook: {stated}")
    for quote in INLINE.finditer(text):
        facts = NOTEBOOKS.get(quote["label"])
        if facts is not None and quote["about"] != facts["about"]:
            wrong.append(f"({quote['about']}) after {quote['label']}, the notebook says {facts['about']}")
    assert not wrong, f"{page.name} quotes run times the notebooks no longer state:\n  " + "\n  ".join(wrong)


def _table(page: Path) -> list[str]:
    return [row["label"] for row in ROW.finditer(page.read_text()) if row["label"] in NOTEBOOKS]


def test_syllabus_table_has_every_notebook_once():
    assert sorted(_table(SYLLABUS)) == sorted(NOTEBOOKS), "the syllabus's compute table must list every notebook once"


@pytest.mark.parametrize("guide", sorted(GUIDES))
def test_guide_table_has_its_parts_notebooks(guide):
    part = [label for label, f in NOTEBOOKS.items() if f["path"].parent.name == GUIDES[guide]]
    assert part and sorted(_table(TEACHING / guide)) == sorted(part), f"{guide}: its timing table must list {part}"


def test_seminar_covers_every_chapter_and_exercise():
    """Plan B runs every notebook and lists every exercise of the book: a new exercise must be placed in a week."""
    text = SYLLABUS.read_text()
    seminar = text[text.index("## Plan B"):]
    referenced = set(re.findall(r"\{ref\}`([\w-]+)`", seminar))
    missing = sorted(set(NOTEBOOKS) - referenced)
    assert not missing, f"the 6-week seminar of {SYLLABUS.name} does not run {missing}"
    exercises = {e: f["label"] for f in NOTEBOOKS.values() for e in f["exercises"]}
    missing = sorted(set(exercises) - referenced)
    assert not missing, (f"the 6-week seminar of {SYLLABUS.name} assigns no {missing} "
                         f"(from {sorted({exercises[e] for e in missing})}): add each to its week's Exercises")

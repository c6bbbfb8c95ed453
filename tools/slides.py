"""One reveal.js deck per part of the book, built from its executed notebooks (``make slides``).

    python tools/slides.py [OUTDIR]     # writes OUTDIR/<part>.html (default _build/slides)

A deck is written as MyST Markdown (``OUTDIR/src/<part>.md``, its figures beside it) and built by
Sphinx with sphinx-revealjs, the reveal.js builder of the Sphinx ecosystem (reveal.js ships inside
its wheel). Each chapter gives a slide with its objectives; each of its sections a slide with the
section's definitions, theorems and display equations, or its opening paragraph; each figure a slide.
Code, setup cells, exercises and solutions stay in the book. MyST roles become plain text, glued
values the notebook's values, citations "Author (year)". Math is typeset by the book's own MathJax
(``_vendor/mathjax``), so a deck works offline.
"""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import nbformat
import yaml

try:
    from tools.toc import ROOT
except ModuleNotFoundError:  # run as a script: python tools/slides.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tools.toc import ROOT

#: Part caption prefix in _toc.yml -> the deck's file name.
PARTS = {"Part I": "implicit-bias", "Part II": "pitfalls", "Part III": "bottleneck"}
#: Blocks of the book kept on slides: sphinx-proof's theorem-like directives.
KEPT_BLOCKS = ("definition", "theorem", "proposition", "lemma", "corollary", "conjecture", "remark")
#: Longest opening paragraph put on a section slide as is; a longer one gives its first sentence.
LEAD_CHARS = 420

_ROLE = re.compile(r"\{(?:ref|eq|numref|doc|prf:ref|term)\}`([^`]*)`")
_CITE = re.compile(r"\{cite(?::(p|t|ps|ts))?\}`([^`]*)`")
_GLUE = re.compile(r"\{glue(?::text)?\}`([^`]+)`")
_FENCE = re.compile(r"^(:{3,}|`{3,})\{(prf:)?(\w+)\}[ \t]*(.*?)\n(.*?)^\1[ \t]*$", re.M | re.S)
_OPTION = re.compile(r"^:[\w-]+:.*$\n?", re.M)


def part_notebooks() -> dict[str, list[Path]]:
    """The executed notebooks of each part, in the order of _toc.yml (graded exercises left out)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    out: dict[str, list[Path]] = {}
    for part in toc["parts"]:
        name = next((v for k, v in PARTS.items() if part["caption"].startswith(k + ":")), None)
        if name is None:
            continue
        files = [c["file"] for ch in part["chapters"] for c in [ch, *ch.get("sections", [])]]
        out[name] = [ROOT / f"{f}.ipynb" for f in files
                     if (ROOT / f"{f}.ipynb").exists() and not f.endswith("graded-exercises")]
    return out


def part_title(name: str) -> str:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    prefix = next(k for k, v in PARTS.items() if v == name)
    return next(p["caption"] for p in toc["parts"] if p["caption"].startswith(prefix + ":"))


def glued(nb) -> dict[str, str]:
    """The values a notebook glued (MyST-NB's scrapbook outputs), as their plain-text reprs."""
    values = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook", {})
            text = o.get("data", {}).get(meta.get("mime_prefix", "") + "text/plain")
            if meta.get("name") and text is not None:
                values[meta["name"]] = text
    return values


def citations() -> dict[str, tuple[str, str]]:
    """Bibliography key -> (authors, year): "Author", "Author & Author" or "Author et al."."""
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(ROOT / "references.bib")).entries.items():
        names = [" ".join(p.last_names) for p in entry.persons.get("author", [])]
        who = names[0] if len(names) == 1 else " & ".join(names) if len(names) == 2 else f"{names[0]} et al."
        out[key] = (_latex_to_text(who), entry.fields.get("year", "n.d."))
    return out


def _latex_to_text(s: str) -> str:
    return re.sub(r"[{}]", "", re.sub(r"\\[`'\"^~]\{?(\w)\}?", r"\1", s))


def _glue_value(raw: str | None, spec: str) -> str:
    if raw is None:
        return "…"
    try:
        value = eval(raw, {"__builtins__": {}})  # the repr of a number or a string, glued by the notebook
        return format(value, spec)
    except Exception:
        return raw.strip("'\"")


def label_titles() -> dict[str, str]:
    """Every label of the book -> what a reference to it should read: a heading, or a definition's
    or theorem's title ("Definition (title)"), or "Eq. (n) of “page”" for the n-th labelled equation of a page."""
    from tools.toc import toc_pages

    out: dict[str, str] = {}
    for page in toc_pages():
        path = ROOT / page
        text = ("\n\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
                if path.suffix == ".ipynb" else path.read_text())
        for m in re.finditer(r"^\(([^)\s]+)\)=\s*\n#+\s+(.*)$", text, flags=re.M):
            out[m.group(1)] = re.sub(r"\{[\w:]+\}`([^`<]*?)\s*(<[^>]*>)?`", r"\1", m.group(2)).strip()
        for m in re.finditer(r"^(?::{3,}|`{3,})\{(?:prf:)?(\w+)\}[ \t]*(.*)\n:label:\s*(\S+)", text, flags=re.M):
            kind, title = m.group(1).title(), m.group(2).strip()
            out[m.group(3)] = f"{kind} ({title})" if title else kind
        heading = re.search(r"^# (.+)$", text, flags=re.M)
        title = heading.group(1).strip() if heading else page.stem
        for n, m in enumerate(re.finditer(r"\$\$[ \t]*\(([\w:.-]+)\)", text), start=1):
            out[m.group(1)] = f"Eq. ({n}) of “{title}”"   # Sphinx numbers a page's labelled equations 1, 2, ...
    return out


def to_markdown(src: str, values: dict[str, str], cites: dict, titles: dict[str, str]) -> str:
    """Book MyST -> slide Markdown: labels, roles, glue and citations as plain text; theorem-like
    blocks as bold-titled paragraphs; other directives (admonitions) unwrapped."""

    def block(m: re.Match) -> str:
        kind, title, body = m.group(3), m.group(4).strip(), _OPTION.sub("", m.group(5)).strip()
        if kind in KEPT_BLOCKS:  # one block for the slide: its blank lines become empty HTML comments
            body = re.sub(r"\n\s*\n", "\n<!-- -->\n", body)
            return f"**{kind.title()}{' (' + title + ')' if title else ''}.**\n<!-- -->\n{body}\n"
        if kind in ("exercise", "solution", "code-cell", "glue:figure"):
            return ""
        return body + "\n"

    src = re.sub(r"^\([^)\s]+\)=[ \t]*$\n?", "", src, flags=re.M)             # (label)=
    for _ in range(3):                                                       # nested fences
        src = _FENCE.sub(block, src)
    src = _GLUE.sub(lambda m: _glue_value(values.get(m.group(1).split(":")[0]),
                                          m.group(1).split(":", 1)[1] if ":" in m.group(1) else ""), src)

    def cite(m: re.Match) -> str:
        found = [cites.get(k.strip(), (k.strip(), "")) for k in m.group(2).split(",")]
        if m.group(1) in ("t", "ts"):
            return "; ".join(f"{who} ({year})" for who, year in found)
        return "(" + "; ".join(f"{who}, {year}" for who, year in found) + ")"

    def role(m: re.Match) -> str:
        text = m.group(1)
        if m.group(0).startswith("{eq}"):
            return m.group(0)          # kept: the deck numbers its own labelled equations (see deck_markdown)
        explicit = re.match(r"(.*?)\s*<.*>$", text)
        if explicit:
            return explicit.group(1).strip()
        return titles.get(text.strip(), "the book")

    src = _CITE.sub(cite, src)
    return _ROLE.sub(role, src)


def _lead(paragraph: str) -> str:
    if len(paragraph) <= LEAD_CHARS:
        return paragraph
    outside_math = re.sub(r"\$[^$]*\$", lambda m: "x" * len(m.group(0)), paragraph)
    end = re.search(r"[.:](\s+)(?=[A-Z*])", outside_math)
    return paragraph[:end.start() + 1] if end and end.start() < 2 * LEAD_CHARS else paragraph[:LEAD_CHARS] + " …"


def _slide_blocks(md: str, slides: list[dict]) -> None:
    """Add one markdown cell's blocks to ``slides`` (dicts with a heading, a body and whether the
    slide has its lead paragraph): a heading opens a slide; definitions, theorems and display equations
    are kept; so is the first paragraph (shortened), and a list or table that it announces with ":"."""
    for blk in re.split(r"\n\s*\n", md.strip()):
        heading = re.match(r"^(#{1,6})\s+(.*)$", blk)
        if heading and "\n" not in blk:
            level = "##" if len(heading.group(1)) == 1 else "###"
            slides.append({"heading": f"{level} {heading.group(2)}", "body": [], "lead": False})
            continue
        if not slides:
            continue
        slide, body = slides[-1], slides[-1]["body"]
        announced = bool(body) and body[-1].rstrip().endswith(":")
        if "$$" in blk or re.match(r"\*\*\w+( \(.*?\))?\.\*\*", blk):
            body.append(blk)
        elif (blk.lstrip().startswith(("- ", "|")) and announced
              or blk.lstrip().startswith("- ") and slide["heading"].startswith("## ") and len(body) <= 1):
            body.append(blk)                          # the list or table a lead announces, or objectives
            slide["lead"] = True
        elif not slide["lead"] and not blk.startswith(("|", "```", "<", ">")):
            body.append(_lead(blk))
            slide["lead"] = True


def deck_markdown(name: str, paths: list[Path], figures: Path) -> str:
    """The MyST source of one part's deck; figures are written under ``figures``."""
    cites, titles = citations(), label_titles()
    figures.mkdir(parents=True, exist_ok=True)
    slides: list[dict] = []
    n_fig = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        values = glued(nb)
        for cell in nb.cells:
            if cell.cell_type == "markdown" and not re.search(r"\{(exercise|solution)", cell.source):
                _slide_blocks(to_markdown(cell.source, values, cites, titles), slides)
            for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
                png = o.get("data", {}).get("image/png")
                if png and slides:
                    n_fig += 1
                    (figures / f"fig-{n_fig:02d}.png").write_bytes(base64.b64decode(png))
                    title = re.sub(r"^#+\s*|\s*\(figure\)$", "", slides[-1]["heading"]).strip()
                    slides.append({"heading": f"### {title} (figure)", "lead": True,
                                   "body": [f"![{title}]({figures.name}/fig-{n_fig:02d}.png)"]})
    lines = [f"# {part_title(name)}", "",
             "Slides built from the executed notebooks of *Next-token prediction, live*; every number "
             "on them comes from the run that the book's chapter shows.", ""]
    for slide in slides:
        lines.extend([slide["heading"], "", *(x for b in slide["body"] for x in (b, "")), ""])
    deck = "\n".join(lines)
    # An {eq} reference to an equation the deck shows stays a reference (Sphinx numbers it); one to an
    # equation left in the book reads "Eq. (n) of <chapter>".
    shown = set(re.findall(r"^\$\$[ \t]*\(([\w:.-]+)\)[ \t]*$", deck, flags=re.M))
    return re.sub(r"\{eq\}`([^`]+)`",
                  lambda m: m.group(0) if m.group(1) in shown else titles.get(m.group(1), "the equation"), deck)


CONF = '''\
# Generated by tools/slides.py: the Sphinx configuration of the slide decks.
extensions = ["myst_parser", "sphinx_revealjs", "sphinx.ext.mathjax"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 0
exclude_patterns = ["_build"]
html_extra_path = [{vendor!r}]
mathjax_path = "../mathjax/tex-chtml.js"   # relative to _static; html_extra_path puts it at the root
html_favicon = {favicon!r}
revealjs_style_theme = "white"
revealjs_static_path = ["_static"]
revealjs_css_files = ["deck.css"]
revealjs_script_conf = {{"hash": True, "slideNumber": "c/t", "width": 1280, "height": 800, "margin": 0.04}}
suppress_warnings = ["myst.header"]
'''

CSS = '''\
.reveal { font-size: 26px; }
.reveal h1 { font-size: 1.9em; } .reveal h2 { font-size: 1.45em; } .reveal h3 { font-size: 1.15em; }
.reveal .slides section { text-align: left; }
.reveal .slides section img { display: block; margin: 0.4em auto; max-height: 560px; max-width: 100%; }
.reveal mjx-container[display="true"] { font-size: 90%; }
'''


def build(outdir: Path) -> list[Path]:
    """Write and build every part's deck into ``outdir``; returns the HTML files."""
    from sphinx.cmd.build import build_main

    outdir = Path(outdir).resolve()
    src = outdir / "src"
    (src / "_static").mkdir(parents=True, exist_ok=True)
    conf = CONF.format(vendor=str(ROOT / "_vendor"), favicon=str(ROOT / "_static" / "favicon.svg"))
    (src / "conf.py").write_text(conf)
    (src / "_static" / "deck.css").write_text(CSS)
    names = []
    for name, paths in part_notebooks().items():
        (src / f"{name}.md").write_text(deck_markdown(name, paths, src / f"{name}-figures"))
        names.append(name)
    (src / "index.md").write_text("# Slides\n\n```{toctree}\n" + "\n".join(names) + "\n```\n")
    code = build_main(["-b", "revealjs", "-W", "--keep-going", "-q", "-d", str(outdir / ".doctrees"),
                       str(src), str(outdir)])
    if code:
        raise SystemExit(f"the slide build failed (sphinx-build exit {code}); see the messages above")
    return [outdir / f"{n}.html" for n in names]


if __name__ == "__main__":
    for p in build(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "_build" / "slides")):
        print(p)

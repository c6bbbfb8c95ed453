"""The slide decks (``make slides``), built into a temporary folder and opened in headless Chromium.

Each deck is one part of the book: it loads with no console error and no request leaving 127.0.0.1,
reveal.js is ready, every chapter of the part has its slide, MathJax typeset every formula (no error,
no undefined macro, no literal ``$`` left in the text, at least as many displayed formulas as the
deck's source has) and every image is a non-empty picture.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from tests.test_browser import _serve, browser  # noqa: F401 - the browser fixture
from tools.slides import build, part_notebooks, to_markdown

DECKS = list(part_notebooks())

# Read back once MathJax is done: formulas typeset, displayed ones, errors, and text with a "$" outside formulas.
REPORT_JS = r"""() => {
  const root = document.querySelector('.reveal .slides');
  const errors = Array.from(root.querySelectorAll('mjx-merror, [data-mjx-error]')).map(e => e.textContent);
  for (const el of root.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]')) {
    if (el.textContent.startsWith('\\')) errors.push(`undefined macro ${el.textContent}`);
  }
  const dollars = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.nodeValue.includes('$') && !n.parentElement.closest('mjx-container, code, pre, script')) {
      dollars.push(n.nodeValue.slice(0, 80));
    }
  }
  return {typeset: root.querySelectorAll('mjx-container').length,
          displayed: root.querySelectorAll('mjx-container[display="true"]').length,
          errors, dollars,
          chapters: Array.from(root.querySelectorAll('section > section > h2, section > h2')).map(h => h.textContent),
          slides: root.querySelectorAll('section').length,
          images: Array.from(root.querySelectorAll('img')).map(i => [i.getAttribute('src'), i.naturalWidth])};
}"""


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    out = tmp_path_factory.mktemp("slides")
    paths = build(out)
    assert [p.stem for p in paths] == DECKS
    yield from _serve(out, "tools/slides.py")


def test_to_markdown_keeps_theorems_and_math_and_drops_myst_syntax():
    src = ("(lbl)=\n# Title\n\n:::{prf:definition} Rank\n:label: def-x\nThe rank of $W$ {cite:p}`godey2024small`.\n"
           ":::\n\n$$\nx = 1\n$$ (eq-x)\n\nSee {ref}`the text <lbl>` and {glue:text}`k:.2f`.\n")
    md = to_markdown(src, {"k": "0.4567"}, {"godey2024small": ("Godey et al.", "2024")}, {})
    assert md.startswith("# Title")
    assert "**Definition (Rank).**\n<!-- -->\nThe rank of $W$ (Godey et al., 2024)." in md
    assert "$$\nx = 1\n$$ (eq-x)\n" in md
    assert "See the text and 0.46." in md
    assert ":label:" not in md and "{" not in md.replace("{prf", "")


@pytest.mark.parametrize("name", DECKS)
def test_deck_in_browser(decks, browser, name):  # noqa: F811 - browser is the fixture
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith((decks, "data:")) else problems.append(f"off-host {r.url}"))
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{decks}/{name}.html", wait_until="load")
    page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=30_000)
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
    page.evaluate("() => MathJax.startup.promise")
    report = page.evaluate(REPORT_JS)
    page.close()
    assert not problems, problems
    # Every chapter of the part has its slide, titled as in the book (compared up to its first formula).
    for path in part_notebooks()[name]:
        first = next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        title = _plain(re.search(r"^# (.+)$", first, flags=re.M).group(1).split("$")[0])[:40]
        assert any(title in _plain(h) for h in report["chapters"]), (title, report["chapters"])
    assert report["typeset"] > 20 and report["displayed"] > 0, report
    assert not report["errors"], report["errors"]
    assert not report["dollars"], report["dollars"]
    assert report["images"] and all(w > 0 for _, w in report["images"]), report["images"]


def _plain(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()

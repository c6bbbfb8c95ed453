"""The built HTML book, opened in a real headless browser (Debian's Chromium driven by Playwright).

For every page in _toc.yml: it loads with no console error, no failed request and no uncaught
exception; its math is typeset by the book's own MathJax (no raw ``$$`` or ``\\(`` left); every
image is a non-empty picture; and a notebook page's Colab button opens that very notebook.

The math is also read back: no literal ``$`` in the prose (outside code and cell outputs), no MathJax
error or undefined macro, and no formula whose TeX is prose. The last two catch a ``$$`` block written
inside a directive (``:::{prf:definition}``) without blank lines around it: MyST then pairs the
dollars wrongly, and the sentence after the formula, its ``{cite}`` role and its code end up typeset
as one formula, with stray ``$`` left in the text.

The student edition (``make book-student``: the same book built with sphinx-exercise's ``hide_solutions``) is
checked against this one, page by page: it loads cleanly, it holds no solution and no text of one, and it holds
every exercise of the instructor edition, with the same number, title and statement; the instructor edition
keeps one solution per exercise.

Needs ``_build/html`` and ``_build/student/html`` (both built first by ``make test``) and ``/usr/bin/chromium``
(``apt-get install chromium``), or ``NTP_CHROMIUM`` pointing at another Chromium binary.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading

import pytest

from tools.toc import ROOT, book_config, toc_pages

HTML = ROOT / "_build" / "html"
STUDENT_HTML = ROOT / "_build" / "student" / "html"  # make book-student
CHROMIUM = os.environ.get("NTP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PAGES = toc_pages()


def _serve(directory, build_command):
    """Serve ``directory`` on 127.0.0.1 for the module's tests; yields its base URL."""
    if not (directory / "index.html").exists():
        pytest.fail(f"{directory} has no index.html: build it first ({build_command})")
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # one line per request would bury a failure's message
            pass

    handler = functools.partial(QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def server():
    yield from _serve(HTML, "make build, or jb build . -W -n --keep-going")


@pytest.fixture(scope="module")
def student_server():
    yield from _serve(STUDENT_HTML, "make build-student")


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set NTP_CHROMIUM)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def _colab_url(page_path) -> str:
    repo = book_config()["repository"]
    org_repo = re.sub(r"^https://github\.com/", "", repo["url"].rstrip("/"))
    prefix = repo.get("path_to_book", "").strip("/")
    nb = f"{prefix}/{page_path.as_posix()}" if prefix else page_path.as_posix()
    return f"https://colab.research.google.com/github/{org_repo}/blob/{repo.get('branch', 'main')}/{nb}"


# Read back from the page once MathJax is done: every formula's TeX source (MathJax 3 keeps it in
# startup.document.math), MathJax errors and undefined macros, and every literal "$" in the text of
# <main> outside code, preformatted text, cell outputs and formulas, quoted with its surroundings
# (the formulas shown as \(TeX\)).
MATH_REPORT_JS = r"""() => {
  const doc = window.MathJax && window.MathJax.startup && window.MathJax.startup.document;
  const items = doc ? Array.from(doc.math) : [];
  const texOf = new Map(items.filter(m => m.typesetRoot).map(m => [m.typesetRoot, m.math]));
  const texAt = el => {
    const box = el && el.closest('mjx-container');
    return box && texOf.has(box) ? texOf.get(box) : '?';
  };
  const errors = new Map();
  for (const el of document.querySelectorAll('mjx-merror, [data-mjx-error], .merror, merror')) {
    const box = el.closest('mjx-container') || el;
    if (!errors.has(box)) {
      errors.set(box, {message: el.getAttribute('data-mjx-error') || el.getAttribute('title') || el.textContent,
                       tex: texAt(el)});
    }
  }
  // noundefined renders an unknown \macro as its name in red instead of failing.
  for (const el of document.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]')) {
    if (el.textContent.startsWith('\\')) {
      errors.set(el.closest('mjx-container') || el, {message: `undefined macro ${el.textContent}`, tex: texAt(el)});
    }
  }
  const dollars = [];
  const root = document.querySelector('main');
  const skip = 'code, pre, kbd, samp, tt, textarea, script, style, .highlight, .cell_output, .output, '
             + '.output_area, mjx-container';
  const walker = root ? document.createTreeWalker(root, NodeFilter.SHOW_TEXT) : null;
  for (let node = walker && walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.nodeValue.includes('$') || node.parentElement.closest(skip)) continue;
    const block = node.parentElement.closest('p, li, dt, dd, td, th, h1, h2, h3, h4, h5, h6, figcaption, '
                                            + 'blockquote, section, div') || node.parentElement;
    let text = '', at = 0;
    const walk = n => {
      if (n === node) at = text.length + n.nodeValue.indexOf('$');
      if (n.nodeType === Node.TEXT_NODE) text += n.nodeValue;
      else if (n.nodeType === Node.ELEMENT_NODE && n.matches('mjx-container'))
        text += texOf.has(n) ? `\\(${texOf.get(n)}\\)` : '[formula]';
      else if (n.nodeType === Node.ELEMENT_NODE && !n.matches('script, style')) n.childNodes.forEach(walk);
    };
    walk(block);
    dollars.push(text.slice(Math.max(0, at - 70), at + 70));
  }
  return {math: items.map(m => ({tex: m.math, display: m.display})), errors: Array.from(errors.values()), dollars};
}"""

# Macros whose argument is text, a name or a label, not mathematics: their {...} is dropped before
# looking for prose in a formula, so \text{subject to (6a) and (6b)} is fine.
_TEXT_ARG = re.compile(r"\\(?:text[a-z]*|mbox|hbox|math(?:rm|it|bf|sf|tt|cal|bb|frak)|operatorname\*?|"
                       r"label|tag\*?|ref|eqref|begin|end)\s*(?=\{)")
_WORD = re.compile(r"\(?([A-Za-z]+)[,.;:!?)]?")
_ROLE = re.compile(r"\{(?:cite|ref|eq|numref|doc|prf:ref|term|download)\b[^}]*\}")


def _outside_text_args(tex: str) -> str:
    """``tex`` with every text-like macro and its braced argument (nesting included) blanked out."""
    out, i = [], 0
    while (m := _TEXT_ARG.search(tex, i)) is not None:
        out.append(tex[i:m.start()])
        depth, j = 0, m.end()
        while j < len(tex):
            depth += {"{": 1, "}": -1}.get(tex[j], 0) if tex[j - 1] != "\\" else 0
            j += 1
            if depth == 0:
                break
        out.append(" ")
        i = j
    out.append(tex[i:])
    return "".join(out)


def tex_prose(tex: str) -> str | None:
    """Why the TeX source of a typeset formula looks like prose swallowed into it, or None.

    Prose is a MyST role (``{cite:p}`...```), a backquote outside ``\\text{...}``, or a run of plain
    words (letters only, between spaces) with three or more of them two letters long or longer:
    "an irreducible term" and "a collapsed cone gives" are prose, the variables "B, T, C" are not.
    """
    if (role := _ROLE.search(tex)) is not None:
        return f"a MyST role {role.group(0)}"
    bare = re.sub(r"\\[A-Za-z]+\*?|\\.", " ", _outside_text_args(tex))
    if "`" in bare:
        return "a backquote"
    run: list[str] = []
    for token in [*bare.split(), ""]:
        if (word := _WORD.fullmatch(token)) is not None:
            run.append(word.group(1))
        elif sum(len(w) > 1 for w in run) >= 3:
            return f"the words {' '.join(run)!r}"
        else:
            run = []
    return None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


# Read back from a page once MathJax is done: its exercises (id, numbered title, statement), each solution's
# title, whole text and text blocks (paragraphs, list items, code and outputs, table cells), the text of <main>,
# and that text with the solutions taken out. Text is textContent with whitespace collapsed, so folded and
# unfolded content read alike.
EDITION_REPORT_JS = r"""() => {
  const norm = s => (s || '').replace(/\s+/g, ' ').trim();
  const main = document.querySelector('main');
  const title = el => norm(el.querySelector('.admonition-title') && el.querySelector('.admonition-title').textContent);
  const exercises = Array.from(main.querySelectorAll('div.exercise')).map(el => ({
    id: el.id, title: title(el), statement: norm((el.querySelector('section') || el).textContent)}));
  const solutions = Array.from(main.querySelectorAll('div.solution')).map(el => ({
    title: title(el), text: norm((el.querySelector('section') || el).textContent),
    blocks: Array.from(el.querySelectorAll('p, li, pre, td, dd')).map(b => norm(b.textContent))}));
  const outside = main.cloneNode(true);
  outside.querySelectorAll('div.solution').forEach(el => el.remove());
  return {exercises, solutions, text: norm(main.textContent), outside: norm(outside.textContent)};
}"""

#: A solution's text block shorter than this is not looked for in the student edition ("Yes.", one formula).
MIN_SOLUTION_BLOCK = 40
#: The instructor edition's EDITION_REPORT_JS per page, kept by test_page_in_browser for the student-edition check.
_INSTRUCTOR_REPORTS: dict[str, dict] = {}


def _open(browser, server, url):
    """A new page at ``url``, loaded and typeset by MathJax; returns it, the response, and the list that collects
    its console errors, uncaught exceptions and failed requests to ``server``."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught exception: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}")
            if r.url.startswith(server) else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    response = page.goto(url, wait_until="load")
    if response is not None and response.ok and page.evaluate("() => typeof window.MathJax !== 'undefined'"):
        page.wait_for_function("() => window.MathJax.startup && window.MathJax.startup.promise", timeout=30_000)
        page.evaluate("() => window.MathJax.startup.promise")
    return page, response, problems


@pytest.mark.parametrize("page_path", PAGES, ids=str)
def test_page_in_browser(server, browser, page_path):
    url = f"{server}/{page_path.with_suffix('.html').as_posix()}"
    page, response, problems = _open(browser, server, url)
    assert response is not None and response.ok, f"{page_path}: {url} did not load"

    _INSTRUCTOR_REPORTS[page_path.with_suffix(".html").as_posix()] = page.evaluate(EDITION_REPORT_JS)

    # Math: MathJax has finished typesetting (_open waits for it); look for raw TeX left in the text.
    has_mathjax = page.evaluate("() => typeof window.MathJax !== 'undefined'")
    main = page.locator("main").first
    text = main.inner_text()
    math_nodes = page.locator("main .math, main span.math, main div.math").count()
    typeset = page.locator("main mjx-container").count()
    assert "$$" not in text, f"{page_path}: raw $$ left in the page"
    assert not re.search(r"\\\(|\\\[", text), f"{page_path}: raw \\( or \\[ left in the page"
    if math_nodes:
        assert has_mathjax and typeset >= math_nodes, (
            f"{page_path}: {math_nodes} math elements but {typeset} typeset by MathJax")
    report = page.evaluate(MATH_REPORT_JS)
    bad_math = [f"literal $ in the text: {_short(t)}" for t in report["dollars"]]
    bad_math += [f"MathJax error {e['message']!r} in \\({_short(e['tex'])}\\)" for e in report["errors"]]
    bad_math += [f"{'display' if m['display'] else 'inline'} formula holding prose ({why}): \\({_short(m['tex'])}\\)"
                 for m in report["math"] if (why := tex_prose(m["tex"]))]
    if bad_math:  # typically a $$ block inside a directive (:::{prf:...}) with no blank line before or after it
        pytest.fail(f"{page_path}: {len(bad_math)} math problem(s) (formulas quoted as \\(TeX\\); a $$ block inside "
                    "a directive needs a blank line before and after it):\n  " + "\n  ".join(bad_math))

    # Figures: every image in the page body is a loaded, non-empty picture.
    images = page.evaluate("""() => Array.from(document.querySelectorAll('main img')).map(
        img => ({src: img.getAttribute('src'), w: img.naturalWidth, h: img.naturalHeight, ok: img.complete}))""")
    empty = [im["src"] for im in images if not (im["ok"] and im["w"] > 1 and im["h"] > 1)]
    assert not empty, f"{page_path}: empty or missing images {empty}"

    # Notebooks: the Colab launch button opens this very notebook at the book's branch.
    if page_path.suffix == ".ipynb":
        hrefs = page.evaluate("""() => Array.from(document.querySelectorAll('a[href*="colab.research.google.com"]'))
                                 .map(a => a.getAttribute('href'))""")
        assert _colab_url(page_path) in hrefs, f"{page_path}: Colab button {hrefs} != {_colab_url(page_path)}"
        assert images, f"{page_path}: a notebook page with no figure"

    page.close()
    assert not problems, f"{page_path}: " + "; ".join(problems)


@pytest.mark.parametrize("page_path", PAGES, ids=str)
def test_student_edition_page(server, student_server, browser, page_path):
    """The student edition's page: every exercise of the instructor edition's, numbered alike, and no solution."""
    path = page_path.with_suffix(".html").as_posix()
    if path not in _INSTRUCTOR_REPORTS:  # test_page_in_browser did not run first (a -k selection): read it here
        page, response, _ = _open(browser, server, f"{server}/{path}")
        assert response is not None and response.ok, f"instructor edition: {path} did not load"
        _INSTRUCTOR_REPORTS[path] = page.evaluate(EDITION_REPORT_JS)
        page.close()
    teacher = _INSTRUCTOR_REPORTS[path]
    page, response, problems = _open(browser, student_server, f"{student_server}/{path}")
    assert response is not None and response.ok, f"student edition: {path} did not load"
    student = page.evaluate(EDITION_REPORT_JS)
    page.close()

    assert len(teacher["solutions"]) == len(teacher["exercises"]), (
        f"{path}: the instructor edition shows {len(teacher['solutions'])} solutions for {len(teacher['exercises'])} "
        "exercises; make book must keep every solution (is hide_solutions set in _config.yml?)")
    assert not student["solutions"], (
        f"{path}: the student edition shows {[s['title'] for s in student['solutions']]}")
    ids = ([e["id"] for e in teacher["exercises"]], [e["id"] for e in student["exercises"]])
    assert ids[1] == ids[0], f"{path}: the student edition has exercises {ids[1]}, the instructor edition {ids[0]}"
    for mine, theirs in zip(student["exercises"], teacher["exercises"]):
        assert mine == theirs, (f"{path}, exercise {theirs['id']}: the student edition shows "
                                f"{_short(mine['title'])!r}: {_short(mine['statement'])!r}, the instructor edition "
                                f"{_short(theirs['title'])!r}: {_short(theirs['statement'])!r}")
    # The solutions' text, where it is a solution's own (not also in the rest of the page), must be gone.
    leaked = [block for solution in teacher["solutions"] for block in (solution["text"], *solution["blocks"])
              if len(block) >= MIN_SOLUTION_BLOCK and block not in teacher["outside"] and block in student["text"]]
    assert not leaked, f"{path}: solution text in the student edition: " + "; ".join(_short(b) for b in leaked)
    assert not problems, f"student edition, {path}: " + "; ".join(problems)


@pytest.mark.parametrize("tex, prose", [
    (r"L(N, T) = E + \frac{A}{N^{\alpha}} + \frac{B}{T^{\beta}}", False),
    (r"\min_W \lVert W \rVert \quad \text{subject to (6a) and (6b)}", False),
    (r"x \in \mathbb{R}^{B, T, C}", False),
    (r"an irreducible term", True),
    (r"the second equality {cite:p}`eckart1936approximation`. W-error(0) = 1", True),
    (r"matrix is needed (`ntp_lib.bottleneck.anisotropy`)", True),
])
def test_tex_prose_tells_formulas_from_swallowed_prose(tex, prose):
    """The rule itself (no browser): what a broken $$ pairing typesets is caught, real formulas are not."""
    assert (tex_prose(tex) is not None) == prose, tex_prose(tex)

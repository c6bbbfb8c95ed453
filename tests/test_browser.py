"""The built HTML book, opened in a real headless browser (Debian's Chromium driven by Playwright).

For every page in _toc.yml: it loads with no console error, no failed request and no uncaught
exception; its math is typeset by the book's own MathJax (no raw ``$$`` or ``\\(`` left); every
image is a non-empty picture; and a notebook page's Colab button opens that very notebook.

Needs ``_build/html`` (``jb build .``, run first by ``make test``) and ``/usr/bin/chromium``
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
from toc import ROOT, book_config, toc_pages

HTML = ROOT / "_build" / "html"
CHROMIUM = os.environ.get("NTP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PAGES = toc_pages()


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail(f"{HTML} has no index.html: build the book first (jb build . -W -n --keep-going)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


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


@pytest.mark.parametrize("page_path", PAGES, ids=str)
def test_page_in_browser(server, browser, page_path):
    url = f"{server}/{page_path.with_suffix('.html').as_posix()}"
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught exception: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}")
            if r.url.startswith(server) else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{page_path}: {url} did not load"

    # Math: wait for MathJax to finish typesetting, then look for raw TeX left in the text.
    has_mathjax = page.evaluate("() => typeof window.MathJax !== 'undefined'")
    if has_mathjax:
        page.wait_for_function("() => window.MathJax.startup && window.MathJax.startup.promise", timeout=30_000)
        page.evaluate("() => window.MathJax.startup.promise")
    main = page.locator("main").first
    text = main.inner_text()
    math_nodes = page.locator("main .math, main span.math, main div.math").count()
    typeset = page.locator("main mjx-container").count()
    assert "$$" not in text, f"{page_path}: raw $$ left in the page"
    assert not re.search(r"\\\(|\\\[", text), f"{page_path}: raw \\( or \\[ left in the page"
    if math_nodes:
        assert has_mathjax and typeset >= math_nodes, (
            f"{page_path}: {math_nodes} math elements but {typeset} typeset by MathJax")

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
